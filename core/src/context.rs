//! Span identity: trace and span ids, trace flags and state, the
//! [`SpanContext`] that carries them, and the W3C `traceparent` header.
//!
//! Ids come from a per-thread wyrand generator (one multiply, no lock, no
//! syscall) seeded from the standard library's per-process random keys; an id
//! is never all zeros, which W3C Trace Context reserves for "invalid".
//!
//! A forked child inherits its forking thread's generator state (and the
//! standard library's keys): `crate::engine::fork` calls [`reseed_after_fork`] in
//! the child so that parent and child never draw the same ids.

use std::cell::Cell;
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;

/// A 16-byte trace id. Never all zeros when generated here.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct TraceId(pub [u8; 16]);

/// An 8-byte span id. Never all zeros when generated here.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct SpanId(pub [u8; 8]);

impl TraceId {
    /// The invalid, all-zero id.
    pub const INVALID: Self = Self([0; 16]);

    /// A new random, valid trace id.
    pub fn random() -> Self {
        new_ids().0
    }

    /// Whether the id is not all zeros.
    pub fn is_valid(&self) -> bool {
        *self != Self::INVALID
    }
}

impl SpanId {
    /// The invalid, all-zero id.
    pub const INVALID: Self = Self([0; 8]);

    /// A new random, valid span id.
    pub fn random() -> Self {
        new_ids().1
    }

    /// Whether the id is not all zeros.
    pub fn is_valid(&self) -> bool {
        *self != Self::INVALID
    }
}

fn write_hex(out: &mut [u8], bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for (pair, b) in out.chunks_exact_mut(2).zip(bytes) {
        pair[0] = HEX[usize::from(b >> 4)];
        pair[1] = HEX[usize::from(b & 0xf)];
    }
}

macro_rules! hex_fmt {
    ($t:ty, $n:expr) => {
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let mut buf = [0u8; $n * 2];
                write_hex(&mut buf, &self.0);
                // The buffer holds only ASCII hex digits.
                f.write_str(std::str::from_utf8(&buf).map_err(|_| fmt::Error)?)
            }
        }
        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(self, f)
            }
        }
    };
}
hex_fmt!(TraceId, 16);
hex_fmt!(SpanId, 8);

/// W3C trace flags (the low 8 bits of OTLP's `flags` field).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default, Debug)]
pub struct TraceFlags(pub u8);

impl TraceFlags {
    /// The `sampled` flag: the caller may have recorded this trace.
    pub const SAMPLED: Self = Self(0x01);
    /// No flags set.
    pub const NONE: Self = Self(0);

    /// Whether the `sampled` flag is set.
    pub fn is_sampled(self) -> bool {
        self.0 & Self::SAMPLED.0 != 0
    }
}

/// Vendor-specific trace state (the W3C `tracestate` header), kept opaque.
/// Cloning is a reference-count increment, never a copy of the text.
#[derive(Clone, Default, PartialEq, Eq, Hash, Debug)]
pub struct TraceState(Option<Arc<str>>);

impl TraceState {
    /// No trace state.
    pub const EMPTY: Self = Self(None);

    /// Trace state from a `tracestate` header value, stored as given (minus
    /// surrounding white space).
    pub fn from_header(value: &str) -> Self {
        let v = value.trim();
        if v.is_empty() {
            Self(None)
        } else {
            Self(Some(Arc::from(v)))
        }
    }

    /// Trace state from a `tracestate` header value, validated as W3C
    /// Trace Context asks of a receiver: at most 32 `key=value` list
    /// members with well-formed, distinct keys and values. Empty members
    /// and white space around members are dropped; what is kept is the
    /// members joined by `,`.
    ///
    /// # Errors
    ///
    /// [`TraceStateError`] naming what is wrong; the specification says a
    /// malformed `tracestate` is discarded whole.
    ///
    /// ```
    /// use otlpx::{TraceState, TraceStateError};
    /// let state = TraceState::parse("rojo=00f067aa0ba902b7, ,congo=t61rcWkgMzE")?;
    /// assert_eq!(state.as_str(), "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE");
    /// assert_eq!(TraceState::parse("Rojo=1"), Err(TraceStateError::Member));
    /// assert_eq!(TraceState::parse("a=1,a=2"), Err(TraceStateError::DuplicateKey));
    /// # Ok::<(), TraceStateError>(())
    /// ```
    pub fn parse(header: &str) -> Result<Self, TraceStateError> {
        let mut members: Vec<(&str, &str)> = Vec::new();
        for member in header.split(',').map(|m| m.trim_matches([' ', '\t'])) {
            if member.is_empty() {
                continue;
            }
            if members.len() == MAX_TRACESTATE_MEMBERS {
                return Err(TraceStateError::TooManyMembers);
            }
            let (key, value) = member.split_once('=').ok_or(TraceStateError::Member)?;
            if !is_tracestate_key(key) || !is_tracestate_value(value) {
                return Err(TraceStateError::Member);
            }
            if members.iter().any(|&(k, _)| k == key) {
                return Err(TraceStateError::DuplicateKey);
            }
            members.push((key, value));
        }
        if members.is_empty() {
            return Ok(Self::EMPTY);
        }
        let mut text = String::with_capacity(header.len());
        for (i, (key, value)) in members.into_iter().enumerate() {
            if i > 0 {
                text.push(',');
            }
            text.push_str(key);
            text.push('=');
            text.push_str(value);
        }
        Ok(Self(Some(Arc::from(text))))
    }

    /// The header value; empty when there is none.
    pub fn as_str(&self) -> &str {
        self.0.as_deref().unwrap_or("")
    }
}

/// Most list members a `tracestate` may have (W3C Trace Context).
const MAX_TRACESTATE_MEMBERS: usize = 32;

/// A `tracestate` key: `simple-key` (a lowercase letter, then up to 255 of
/// `a-z 0-9 _ - * /`) or `multi-tenant-key` (`tenant@system`: a tenant of
/// a lowercase letter or digit then up to 240 more, a system of a
/// lowercase letter then up to 13 more).
fn is_tracestate_key(key: &str) -> bool {
    /// A first byte `first` accepts, then up to `max_rest` more of the key
    /// alphabet.
    fn part(s: &str, first: fn(&u8) -> bool, max_rest: usize) -> bool {
        match s.as_bytes() {
            [f, rest @ ..] => {
                first(f)
                    && rest.len() <= max_rest
                    && rest
                        .iter()
                        .all(|c| matches!(c, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' | b'*' | b'/'))
            }
            [] => false,
        }
    }
    let lower = |c: &u8| c.is_ascii_lowercase();
    match key.split_once('@') {
        None => part(key, lower, 255),
        Some((tenant, system)) => {
            part(
                tenant,
                |c| c.is_ascii_lowercase() || c.is_ascii_digit(),
                240,
            ) && part(system, lower, 13)
        }
    }
}

/// A `tracestate` value: 1 to 256 printable ASCII characters but `,` and
/// `=`, spaces allowed except at the end.
fn is_tracestate_value(value: &str) -> bool {
    let v = value.as_bytes();
    (1..=256).contains(&v.len())
        && v.iter()
            .all(|&c| matches!(c, 0x20..=0x2B | 0x2D..=0x3C | 0x3E..=0x7E))
        && v.last() != Some(&b' ')
}

/// Why a `tracestate` header was rejected ([`TraceState::parse`]).
#[derive(Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TraceStateError {
    /// More than 32 list members.
    #[error("tracestate has more than 32 list members")]
    TooManyMembers,
    /// A list member is not `key=value` with a valid key and value.
    #[error("tracestate has a list member that is not a valid key=value")]
    Member,
    /// A key appears more than once.
    #[error("tracestate has a key more than once")]
    DuplicateKey,
}

debug_as_display!(TraceStateError);

/// What identifies a span and travels with it across process boundaries.
#[derive(Clone, PartialEq, Eq, Hash, Default, Debug)]
pub struct SpanContext {
    /// The trace the span belongs to.
    pub trace_id: TraceId,
    /// The span's own id.
    pub span_id: SpanId,
    /// W3C trace flags.
    pub trace_flags: TraceFlags,
    /// Whether this context came from another process (a parsed header).
    pub is_remote: bool,
    /// Vendor trace state.
    pub trace_state: TraceState,
}

impl SpanContext {
    /// Whether both ids are valid (non-zero).
    pub fn is_valid(&self) -> bool {
        self.trace_id.is_valid() && self.span_id.is_valid()
    }

    /// Parses a W3C `traceparent` header into a remote context.
    ///
    /// Accepts version `00` exactly as specified, and higher versions (except
    /// the invalid `ff`) by their first four fields, as the specification
    /// asks of forward-compatible parsers.
    ///
    /// # Errors
    ///
    /// [`TraceparentError`] naming what is wrong: length, version, a
    /// non-lowercase-hex digit, a missing `-`, or an all-zero id.
    ///
    /// ```
    /// use otlpx::SpanContext;
    /// let ctx = SpanContext::from_traceparent(
    ///     "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    /// )?;
    /// assert!(ctx.trace_flags.is_sampled() && ctx.is_remote);
    /// assert_eq!(ctx.traceparent().as_str(),
    ///     "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
    /// # Ok::<(), otlpx::TraceparentError>(())
    /// ```
    pub fn from_traceparent(header: &str) -> Result<Self, TraceparentError> {
        let h = header.trim().as_bytes();
        if h.len() < TRACEPARENT_LEN {
            return Err(TraceparentError::Length);
        }
        let mut version = [0u8; 1];
        parse_hex(&h[0..2], &mut version)?;
        if version[0] == 0xff {
            return Err(TraceparentError::Version);
        }
        if (version[0] == 0 && h.len() != TRACEPARENT_LEN)
            || (h.len() > TRACEPARENT_LEN && h[TRACEPARENT_LEN] != b'-')
        {
            return Err(TraceparentError::Length);
        }
        if h[2] != b'-' || h[35] != b'-' || h[52] != b'-' {
            return Err(TraceparentError::Separator);
        }
        let mut trace_id = TraceId::INVALID;
        parse_hex(&h[3..35], &mut trace_id.0)?;
        let mut span_id = SpanId::INVALID;
        parse_hex(&h[36..52], &mut span_id.0)?;
        let mut flags = [0u8; 1];
        parse_hex(&h[53..55], &mut flags)?;
        if !trace_id.is_valid() || !span_id.is_valid() {
            return Err(TraceparentError::ZeroId);
        }
        Ok(Self {
            trace_id,
            span_id,
            // Version 00 defines only the sampled bit; keep the others for
            // newer versions as the specification says.
            trace_flags: TraceFlags(if version[0] == 0 {
                flags[0] & 1
            } else {
                flags[0]
            }),
            is_remote: true,
            trace_state: TraceState::EMPTY,
        })
    }

    /// The context as a version-00 `traceparent` header, without allocating.
    pub fn traceparent(&self) -> Traceparent {
        let mut b = [b'-'; TRACEPARENT_LEN];
        b[0] = b'0';
        b[1] = b'0';
        write_hex(&mut b[3..35], &self.trace_id.0);
        write_hex(&mut b[36..52], &self.span_id.0);
        write_hex(&mut b[53..55], &[self.trace_flags.0]);
        Traceparent(b)
    }
}

const TRACEPARENT_LEN: usize = 55;

/// A formatted `traceparent` header value (55 ASCII bytes, on the stack).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Traceparent([u8; TRACEPARENT_LEN]);

impl Traceparent {
    /// The header value.
    pub fn as_str(&self) -> &str {
        // Built only from ASCII hex digits and dashes.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl fmt::Display for Traceparent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Traceparent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

/// Why a `traceparent` header was rejected.
#[derive(Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TraceparentError {
    /// Too short, or the wrong length for its version.
    #[error("traceparent has the wrong length")]
    Length,
    /// Version `ff`, which the specification forbids.
    #[error("traceparent version ff is invalid")]
    Version,
    /// A field is not lowercase hexadecimal.
    #[error("traceparent holds a character that is not lowercase hex")]
    Hex,
    /// A `-` is missing between fields.
    #[error("traceparent fields are not separated by '-'")]
    Separator,
    /// The trace id or the span id is all zeros.
    #[error("traceparent has an all-zero trace id or span id")]
    ZeroId,
}

debug_as_display!(TraceparentError);

fn parse_hex(src: &[u8], out: &mut [u8]) -> Result<(), TraceparentError> {
    fn nibble(c: u8) -> Result<u8, TraceparentError> {
        match c {
            b'0'..=b'9' => Ok(c - b'0'),
            b'a'..=b'f' => Ok(c - b'a' + 10),
            _ => Err(TraceparentError::Hex),
        }
    }
    for (o, pair) in out.iter_mut().zip(src.chunks_exact(2)) {
        *o = nibble(pair[0])? << 4 | nibble(pair[1])?;
    }
    Ok(())
}

thread_local! {
    /// wyrand state; 0 means "not seeded yet" (a seed is never 0).
    static RNG: Cell<u64> = const { Cell::new(0) };
}

fn seed() -> u64 {
    // RandomState draws its keys from the OS once per thread and varies them
    // per instance; hashing a per-thread address adds entropy across threads.
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    RNG.with(|c| h.write_usize(c as *const Cell<u64> as usize));
    h.finish() | 1
}

/// One wyrand step: the next state and its output.
#[inline]
fn wyrand(s: u64) -> (u64, u64) {
    let s = s.wrapping_add(0xa076_1d64_78bd_642f);
    let t = u128::from(s) * u128::from(s ^ 0xe703_7ed1_a0b4_28db);
    (s, (t >> 64) as u64 ^ t as u64)
}

/// A valid trace id and a valid span id from one visit to this thread's
/// generator (a root span needs both; a child uses only the span id).
#[inline]
pub(crate) fn new_ids() -> (TraceId, SpanId) {
    let draw = |mut s: u64| {
        let mut next = || {
            // Zero is not a valid id; wyrand yields it with probability 2^-64.
            loop {
                let (n, v) = wyrand(s);
                s = n;
                if v != 0 {
                    return v;
                }
            }
        };
        let (hi, lo, span) = (next(), next(), next());
        let mut t = [0; 16];
        t[..8].copy_from_slice(&hi.to_be_bytes());
        t[8..].copy_from_slice(&lo.to_be_bytes());
        (s, (TraceId(t), SpanId(span.to_be_bytes())))
    };
    // Outside a live thread-local (thread teardown), seed afresh.
    RNG.try_with(|c| {
        let (s, ids) = draw(match c.get() {
            0 => seed(),
            s => s,
        });
        c.set(s);
        ids
    })
    .unwrap_or_else(|_| {
        let seed = std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish()
            | 1;
        draw(seed).1
    })
}

/// Reseeds this thread's generator in a forked child (called from the
/// `fork` module's child handler, on the thread that forked): from fresh OS
/// entropy, the child's pid and the inherited state, so that the child's
/// sequence is unrelated to the parent's, which goes on from that state.
///
/// Only allocation-free calls: `getrandom(2)` (non-blocking: before the
/// kernel's pool is ready it fails, and the pid, the clock and the old
/// state still make the seed differ from the parent's) and `getpid`.
pub(crate) fn reseed_after_fork() {
    let mut entropy = crate::entropy::os_entropy();
    // `std::process::id` is `getpid()`: never the parent's pid.
    entropy ^= u64::from(std::process::id()).rotate_left(32);
    // A clock reading too, for the case without OS entropy: two children
    // of one parent can see each other's recycled pids. (Miri's isolation
    // has no clock.)
    #[cfg(not(miri))]
    {
        entropy ^= std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
    }
    let _ = RNG.try_with(|c| {
        // Two rounds of wyrand mix the inputs into every bit; `| 1`: a
        // seed is never 0 ("not seeded").
        let (s, a) = wyrand(c.get() ^ entropy);
        let (_, b) = wyrand(s ^ a.rotate_left(29));
        c.set(b | 1);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a forked child would draw without a reseed is what its parent
    /// draws next; after one, the two sequences share nothing (and two
    /// reseeds from one state differ too).
    #[test]
    fn reseed_after_fork_breaks_the_inherited_sequence() {
        let _ = new_ids(); // seeded
        let at_fork = RNG.with(Cell::get);
        let draw = || (0..8).map(|_| new_ids()).collect::<Vec<_>>();
        let parent = draw();
        RNG.with(|c| c.set(at_fork));
        assert_eq!(draw(), parent, "same state, same sequence");
        let mut children = Vec::new();
        for _ in 0..2 {
            RNG.with(|c| c.set(at_fork));
            reseed_after_fork();
            assert_ne!(RNG.with(Cell::get), at_fork);
            children.push(draw());
        }
        for child in &children {
            for (trace, span) in child {
                assert!(trace.is_valid() && span.is_valid());
                assert!(parent.iter().all(|(t, s)| t != trace && s != span));
            }
        }
        assert_ne!(children[0], children[1]);
    }

    #[test]
    fn tracestate_parse_validates_keys_values_and_count() {
        let ok = |h: &str| TraceState::parse(h).map(|s| s.as_str().to_owned());
        assert_eq!(ok(""), Ok(String::new()));
        assert_eq!(ok(" , \t,"), Ok(String::new()));
        assert_eq!(ok("a=1 , b=x y,\tc@d=3"), Ok("a=1,b=x y,c@d=3".into()));
        assert_eq!(ok("0tenant@sys-1=v"), Ok("0tenant@sys-1=v".into()));
        assert_eq!(
            ok(&format!("k={}", "v".repeat(256))).map(|s| s.len()),
            Ok(258)
        );
        let members = |n: usize| {
            (0..n)
                .map(|i| format!("k{i}=v"))
                .collect::<Vec<_>>()
                .join(",")
        };
        assert!(TraceState::parse(&members(32)).is_ok());
        use TraceStateError as E;
        let long_key = format!("{}=v", "k".repeat(257));
        let long_value = format!("k={}", "v".repeat(257));
        let too_many = members(33);
        let bad = [
            (too_many.as_str(), E::TooManyMembers),
            ("a=1,a=2", E::DuplicateKey),
            ("A=1", E::Member),
            ("1a=1", E::Member),
            ("a", E::Member),
            ("a=", E::Member),
            ("a=b=c", E::Member),
            ("a =1", E::Member),
            ("a@b@c=1", E::Member),
            ("a@1b=1", E::Member),
            ("a@bcdefghijklmnop=1", E::Member),
            ("a=\u{e9}", E::Member),
            (long_key.as_str(), E::Member),
            (long_value.as_str(), E::Member),
        ];
        for (h, e) in bad {
            assert_eq!(TraceState::parse(h), Err(e), "{h}");
        }
    }

    #[test]
    fn ids_are_valid_and_distinct() {
        let a = TraceId::random();
        let b = TraceId::random();
        assert!(a.is_valid() && b.is_valid());
        assert_ne!(a, b);
        assert_ne!(SpanId::random(), SpanId::random());
    }

    #[test]
    fn traceparent_round_trip_and_errors() {
        let s = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let c = SpanContext::from_traceparent(s).unwrap();
        assert_eq!(c.traceparent().as_str(), s);
        assert_eq!(c.trace_id.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        use TraceparentError as E;
        let bad = [
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0",
                E::Length,
            ),
            (
                "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                E::Version,
            ),
            (
                "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
                E::Hex,
            ),
            (
                "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                E::Separator,
            ),
            (
                "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
                E::ZeroId,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
                E::ZeroId,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
                E::Length,
            ),
        ];
        for (h, e) in bad {
            assert_eq!(SpanContext::from_traceparent(h), Err(e), "{h}");
        }
        // A future version may append fields after a dash.
        let v = SpanContext::from_traceparent(
            "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-09-extra",
        )
        .unwrap();
        assert_eq!(v.trace_flags, TraceFlags(9));
    }
}
