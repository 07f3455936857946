//! Front doors for other instrumentation APIs: a `tracing` layer
//! ([`tracing`], feature `tracing`) and a `log` logger ([`log`], feature
//! `log`). Each translates into the engine's own calls ([`Logger::emit`],
//! [`Tracer::span`]) and does nothing else: no queue, no configuration and
//! no accounting of its own.
//!
//! What they share lives here:
//!
//! - [`Scopes`]: an event's *target* (a module path, or what the caller
//!   named) is the instrumentation scope name its records are sent under,
//!   as `opentelemetry-appender-tracing` and `opentelemetry-appender-log`
//!   do. A fixed-size open-addressing table maps a target to its
//!   [`Logger`] and [`Tracer`]; a slot is filled once (`OnceLock`) and then
//!   only read, so a lookup is a hash of a few words, one Acquire load and
//!   a compare: no lock, no reference count, no allocation.
//! - The self-loop guard: targets of the engine itself and of the crates
//!   it runs on ([`is_excluded_target`]), and every thread the engine owns
//!   (named `otlpx-…`, [`on_engine_thread`]), are never recorded, so the
//!   engine's diagnostics never feed its own pipeline whatever subscriber
//!   or logger the application installs.
//! - [`FieldBuf`]: a per-thread buffer that fields are copied into
//!   (numbers as they are, strings and `Debug` output as ranges of one
//!   reused `String`), or encoded into as OTLP attributes as they are
//!   visited (a `tracing` event's); and [`Attrs`], an attribute slice
//!   built on the stack. Once a thread is warm, a record allocates
//!   nothing.
//!
//! Invariants: a slot of the table, once set, never changes, and its
//! scope's name is the target it was filled for, so a slot whose name
//! compares equal is the answer; ranges in a [`FieldBuf`] index its own
//! `text` and `bytes`, which only grow until [`FieldBuf::clear`].

// Built with one integration alone, some of the shared parts go unused.
#![cfg_attr(not(all(feature = "tracing", feature = "log")), allow(dead_code))]

#[cfg(feature = "log")]
pub mod log;
#[cfg(feature = "tracing")]
pub mod tracing;

use crate::engine::{Engine, Inner};
use crate::logs::Logger;
use crate::proto::EncodedAttributes;
use crate::trace::Tracer;
use crate::value::{KeyValue, Value};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, OnceLock, PoisonError, Weak};

/// Crates whose records and spans are never recorded: otlpx itself (its
/// diagnostics use the target `otlpx` or its module paths,
/// `otlpx::worker`, …) and the crates its export path runs on. An
/// application that uses them too loses their telemetry through otlpx:
/// the price of never feeding the pipeline its own traffic.
pub const EXCLUDED_CRATES: &[&str] = &[
    "otlpx",
    "otlpx_ffi",
    "tonic",
    "h2",
    "hyper",
    "hyper_util",
    "hyper_rustls",
    "rustls",
    "tokio",
    "tokio_util",
    "tokio_rustls",
    "tower",
    "tower_http",
    "reqwest",
];

/// Whether `target` belongs to an [excluded crate](EXCLUDED_CRATES): its
/// first path segment (up to `::`) is one of them. `hyper_util::client`
/// is excluded, `hyperfine` and `my_app::hyper` are not.
pub(crate) fn is_excluded_target(target: &str) -> bool {
    let krate = target.split_once("::").map_or(target, |(krate, _)| krate);
    EXCLUDED_CRATES.contains(&krate)
}

/// Whether this thread is one of the engine's own (`otlpx-worker-N`,
/// `otlpx-io`, `otlpx-spool`, `otlpx-admin`, …): everything there is the
/// engine's own work. Read from the thread's name once per thread, then a
/// plain thread-local load.
pub(crate) fn on_engine_thread() -> bool {
    /// 0: not looked at yet; 1: an engine thread; 2: any other.
    const UNKNOWN: u8 = 0;
    const ENGINE: u8 = 1;
    const OTHER: u8 = 2;
    thread_local! {
        static KIND: Cell<u8> = const { Cell::new(UNKNOWN) };
    }
    KIND.try_with(|kind| match kind.get() {
        UNKNOWN => {
            let engine = std::thread::current()
                .name()
                .is_some_and(|name| name.starts_with("otlpx-"));
            kind.set(if engine { ENGINE } else { OTHER });
            engine
        }
        k => k == ENGINE,
    })
    // Thread teardown: nothing of ours can be recorded then anyway.
    .unwrap_or(true)
}

/// The scope (logger and tracer) records of one target go under.
pub(crate) struct Scope {
    /// The target, which is also the scope's name.
    name: Box<str>,
    pub(crate) logger: Logger,
    pub(crate) tracer: Tracer,
    /// Never recorded: see [`is_excluded_target`].
    pub(crate) excluded: bool,
}

/// Where a [`Scope`] lives in [`Scopes`]: small, `'static`, and kept in a
/// span's state to resume it under the same tracer.
#[derive(Clone)]
pub(crate) enum ScopeId {
    /// The fallback scope (named `""`).
    Base,
    /// A slot of the table.
    Slot(u32),
    /// Past the table: kept in the overflow map.
    Overflow(Arc<Scope>),
}

/// Slots in the table: room for an application's distinct targets (one
/// per module that logs) with probing to spare. A power of two.
const SLOTS: usize = 1024;
/// Slots probed before a target goes to the overflow map.
const MAX_PROBES: usize = 32;
/// Targets the overflow map keeps before further ones share the base
/// scope (a target made per record would otherwise grow it without end).
const MAX_OVERFLOW: usize = 4096;

/// Target → scope, for one integration instance. See the module docs.
pub(crate) struct Scopes {
    /// Held weakly: a layer or logger installed for the life of the
    /// process must not keep the engine from shutting down when the
    /// application drops it. Upgraded only to register a new scope.
    engine: Weak<Inner>,
    /// Scope `""`: for targets past both tables, and for new targets once
    /// the engine is gone (records then go nowhere anyway).
    base: Scope,
    slots: Box<[OnceLock<Box<Scope>>]>,
    overflow: Mutex<HashMap<Box<str>, Arc<Scope>>>,
}

impl Scopes {
    pub(crate) fn new(engine: &Engine) -> Self {
        Self {
            engine: Arc::downgrade(&engine.inner),
            base: Scope {
                name: "".into(),
                logger: engine.logger("", ""),
                tracer: engine.tracer("", ""),
                excluded: false,
            },
            slots: (0..SLOTS).map(|_| OnceLock::new()).collect(),
            overflow: Mutex::new(HashMap::new()),
        }
    }

    /// The fallback scope: its logger answers `enabled` for every scope.
    pub(crate) fn base(&self) -> &Scope {
        &self.base
    }

    /// The scope of `target`, registered with the engine the first time.
    pub(crate) fn lookup(&self, target: &str) -> ScopeId {
        match find_or_fill(
            &self.slots,
            hash(target),
            |scope| *scope.name == *target,
            || self.make(target),
        ) {
            // `i < SLOTS`, which fits in a u32.
            Some(i) => ScopeId::Slot(i as u32),
            None => self.lookup_overflow(target),
        }
    }

    #[cold]
    fn lookup_overflow(&self, target: &str) -> ScopeId {
        let mut map = self.overflow.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(scope) = map.get(target) {
            return ScopeId::Overflow(Arc::clone(scope));
        }
        if map.len() >= MAX_OVERFLOW {
            return ScopeId::Base;
        }
        let scope = Arc::new(self.make(target));
        map.insert(target.into(), Arc::clone(&scope));
        ScopeId::Overflow(scope)
    }

    /// The scope `id` names.
    pub(crate) fn get<'a>(&'a self, id: &'a ScopeId) -> &'a Scope {
        match id {
            ScopeId::Base => &self.base,
            ScopeId::Slot(i) => self
                .slots
                .get(*i as usize)
                .and_then(OnceLock::get)
                .map_or(&self.base, |scope| scope),
            ScopeId::Overflow(scope) => scope,
        }
    }

    /// A new scope for `target`: registered with the engine unless the
    /// target is excluded (its records are never written) or the engine
    /// is gone.
    #[cold]
    fn make(&self, target: &str) -> Scope {
        let excluded = is_excluded_target(target);
        let engine = if excluded {
            None
        } else {
            self.engine.upgrade()
        };
        match engine {
            // The handle is dropped right after; were it the last one (the
            // application dropping its engine at this very moment), the
            // engine would shut down here, as on any last drop.
            Some(inner) => {
                let engine = Engine { inner };
                Scope {
                    name: target.into(),
                    logger: engine.logger(target, ""),
                    tracer: engine.tracer(target, ""),
                    excluded,
                }
            }
            None => Scope {
                name: target.into(),
                logger: self.base.logger.clone(),
                tracer: self.base.tracer.clone(),
                excluded,
            },
        }
    }
}

/// The slot of an open-addressing table of set-once slots (see the module
/// docs) whose entry `is` the one looked for, filling the first empty slot
/// on the way with `make`; `None` when `MAX_PROBES` slots from `hash` hold
/// others. Two threads filling one slot at once: one entry wins, the other
/// is dropped, and its thread probes on if the winner is not its entry.
pub(crate) fn find_or_fill<T>(
    slots: &[OnceLock<Box<T>>],
    hash: usize,
    is: impl Fn(&T) -> bool,
    make: impl Fn() -> T,
) -> Option<usize> {
    debug_assert!(slots.len().is_power_of_two());
    let mask = slots.len() - 1;
    let mut i = hash & mask;
    for _ in 0..MAX_PROBES {
        let slot = &slots[i];
        let entry = match slot.get() {
            Some(entry) => entry,
            None => slot.get_or_init(|| Box::new(make())),
        };
        if is(entry) {
            return Some(i);
        }
        i = (i + 1) & mask;
    }
    None
}

/// A cheap hash of a target: its length and its first and last eight
/// bytes (module paths sharing a prefix differ at the end), mixed by
/// multiplication. Collisions only cost a probe.
fn hash(s: &str) -> usize {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;
    let b = s.as_bytes();
    let word = |part: &[u8]| {
        let mut w = [0u8; 8];
        let n = part.len().min(8);
        w[..n].copy_from_slice(&part[..n]);
        u64::from_le_bytes(w)
    };
    let mut h = (b.len() as u64).wrapping_mul(K);
    h = (h ^ word(b)).wrapping_mul(K);
    h = (h ^ word(&b[b.len().saturating_sub(8)..])).wrapping_mul(K);
    // The high bits are the best mixed.
    (h >> 32) as usize
}

/// A field's name: the instrumentation's own `&'static str` (every
/// `tracing` field), or copied into the buffer's text (`log` keys).
#[derive(Clone, Copy, Debug)]
pub(crate) enum Key {
    Static(&'static str),
    Text(usize, usize),
}

/// A field's value as buffered: numbers as they are, strings and bytes as
/// ranges of the buffer's `text` and `bytes`.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Item {
    I64(i64),
    U64(u64),
    F64(f64),
    Bool(bool),
    Str(usize, usize),
    Bytes(usize, usize),
}

/// Fields copied out of an event, a span or a `log` record; see the
/// module docs.
#[derive(Debug, Default)]
pub(crate) struct FieldBuf {
    pub(crate) items: Vec<(Key, Item)>,
    text: String,
    bytes: Vec<u8>,
    /// Attributes encoded as they were visited (events; see
    /// [`EncodedAttributes`]), beside the items kept as values.
    pub(crate) attributes: EncodedAttributes,
}

/// Text a thread's buffer keeps between records; a record that needed
/// more (a huge `Debug` value) gives the excess back afterwards.
const KEEP_TEXT_BYTES: usize = 16 << 10;
/// Field buffers a thread keeps for spans not yet started.
const POOLED_BUFFERS: usize = 64;

impl FieldBuf {
    pub(crate) fn clear(&mut self) {
        self.items.clear();
        self.text.clear();
        self.bytes.clear();
        self.attributes.clear();
    }

    /// Clears, and hands back memory past what a thread keeps.
    fn recycle(&mut self) {
        self.clear();
        if self.text.capacity() > KEEP_TEXT_BYTES {
            self.text.shrink_to(KEEP_TEXT_BYTES);
        }
        if self.bytes.capacity() > KEEP_TEXT_BYTES {
            self.bytes.shrink_to(KEEP_TEXT_BYTES);
        }
        if self.attributes.capacity() > KEEP_TEXT_BYTES {
            self.attributes = EncodedAttributes::default();
        }
    }

    pub(crate) fn push(&mut self, key: Key, item: Item) {
        self.items.push((key, item));
    }

    /// Copies `s` in; the range it now occupies.
    pub(crate) fn text(&mut self, s: &str) -> (usize, usize) {
        let start = self.text.len();
        self.text.push_str(s);
        (start, self.text.len())
    }

    /// Formats `args` in; the range it now occupies. A `Debug` or
    /// `Display` impl that fails leaves what it wrote.
    pub(crate) fn format(&mut self, args: std::fmt::Arguments<'_>) -> (usize, usize) {
        let start = self.text.len();
        let _ = self.text.write_fmt(args);
        (start, self.text.len())
    }

    pub(crate) fn push_str(&mut self, key: Key, s: &str) {
        let (start, end) = self.text(s);
        self.push(key, Item::Str(start, end));
    }

    pub(crate) fn push_fmt(&mut self, key: Key, args: std::fmt::Arguments<'_>) {
        let (start, end) = self.format(args);
        self.push(key, Item::Str(start, end));
    }

    pub(crate) fn push_bytes(&mut self, key: Key, b: &[u8]) {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(b);
        self.push(key, Item::Bytes(start, self.bytes.len()));
    }

    /// A key's text.
    pub(crate) fn key(&self, key: Key) -> &str {
        match key {
            Key::Static(s) => s,
            Key::Text(start, end) => self.text.get(start..end).unwrap_or(""),
        }
    }

    /// An item's value, borrowing the buffer.
    pub(crate) fn value(&self, item: Item) -> Value<'_> {
        match item {
            Item::I64(v) => Value::I64(v),
            Item::U64(v) => Value::U64(v),
            Item::F64(v) => Value::F64(v),
            Item::Bool(v) => Value::Bool(v),
            Item::Str(start, end) => Value::Str(self.text.get(start..end).unwrap_or("")),
            Item::Bytes(start, end) => Value::Bytes(self.bytes.get(start..end).unwrap_or(&[])),
        }
    }

    /// An item's text, if it is a string.
    pub(crate) fn str(&self, item: Item) -> Option<&str> {
        match self.value(item) {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The last value of the field named `key`.
    pub(crate) fn find(&self, key: &str) -> Option<Item> {
        self.items
            .iter()
            .rev()
            .find(|(k, _)| self.key(*k) == key)
            .map(|&(_, item)| item)
    }

    /// Appends `other`'s fields (their ranges moved to where their bytes
    /// land here).
    pub(crate) fn append(&mut self, other: &FieldBuf) {
        let (text, bytes) = (self.text.len(), self.bytes.len());
        self.text.push_str(&other.text);
        self.bytes.extend_from_slice(&other.bytes);
        self.items.extend(other.items.iter().map(|&(key, item)| {
            let key = match key {
                Key::Text(s, e) => Key::Text(s + text, e + text),
                k => k,
            };
            let item = match item {
                Item::Str(s, e) => Item::Str(s + text, e + text),
                Item::Bytes(s, e) => Item::Bytes(s + bytes, e + bytes),
                i => i,
            };
            (key, item)
        }));
    }
}

thread_local! {
    /// The buffer an event's (or a `record()`'s) fields are copied into.
    static SCRATCH: RefCell<FieldBuf> = RefCell::new(FieldBuf::default());
    /// Buffers for the fields of spans not yet started (see
    /// `tracing::SpanState`), given back when they start.
    static POOL: RefCell<Vec<FieldBuf>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` with this thread's scratch buffer, cleared. A re-entrant call
/// (a `Debug` impl that logs while its record is being built) or one
/// during thread teardown gets a fresh buffer instead: it allocates, it
/// never fails. (`FnMut`, so that the fallback can call `f` when the
/// thread-local closure did not.)
pub(crate) fn with_scratch<R>(mut f: impl FnMut(&mut FieldBuf) -> R) -> R {
    let mut out = None;
    let _ = SCRATCH.try_with(|cell| {
        if let Ok(mut buf) = cell.try_borrow_mut() {
            buf.clear();
            out = Some(f(&mut buf));
            buf.recycle();
        }
    });
    match out {
        Some(out) => out,
        None => f(&mut FieldBuf::default()),
    }
}

/// A buffer for a span's fields: pooled per thread.
pub(crate) fn take_buffer() -> FieldBuf {
    POOL.try_with(|pool| pool.try_borrow_mut().ok()?.pop())
        .ok()
        .flatten()
        .unwrap_or_default()
}

/// Gives a buffer back to this thread's pool.
pub(crate) fn give_buffer(mut buf: FieldBuf) {
    buf.recycle();
    let _ = POOL.try_with(|pool| {
        if let Ok(mut pool) = pool.try_borrow_mut()
            && pool.len() < POOLED_BUFFERS
        {
            pool.push(buf);
        }
    });
}

/// Attributes kept on the stack; a record with more spills to the heap.
const STACK_ATTRIBUTES: usize = 16;

/// An attribute slice built on the stack (see the module docs).
pub(crate) struct Attrs<'a> {
    stack: [KeyValue<'a>; STACK_ATTRIBUTES],
    len: usize,
    heap: Vec<KeyValue<'a>>,
}

impl<'a> Attrs<'a> {
    pub(crate) fn new() -> Self {
        Self {
            stack: [KeyValue {
                key: "",
                value: Value::Bool(false),
            }; STACK_ATTRIBUTES],
            len: 0,
            heap: Vec::new(),
        }
    }

    pub(crate) fn push(&mut self, key: &'a str, value: Value<'a>) {
        let kv = KeyValue { key, value };
        if self.heap.is_empty() {
            if let Some(slot) = self.stack.get_mut(self.len) {
                *slot = kv;
                self.len += 1;
                return;
            }
            self.heap.extend_from_slice(&self.stack);
        }
        self.heap.push(kv);
    }

    pub(crate) fn as_slice(&self) -> &[KeyValue<'a>] {
        if self.heap.is_empty() {
            &self.stack[..self.len]
        } else {
            &self.heap
        }
    }
}

/// The keys of the code location attributes, in the semantic conventions'
/// names; the module path goes in `code.namespace` (the conventions now
/// fold it into `code.function.name`, which neither `tracing` nor `log`
/// knows).
pub(crate) const LOCATION_KEYS: [&str; 3] =
    ["code.file.path", "code.line.number", "code.namespace"];

/// The code location attributes, those known.
pub(crate) fn location<'a>(
    file: Option<&'a str>,
    line: Option<u32>,
    module: Option<&'a str>,
) -> impl Iterator<Item = (&'static str, Value<'a>)> {
    let [file_key, line_key, module_key] = LOCATION_KEYS;
    [
        file.map(|file| (file_key, Value::Str(file))),
        line.map(|line| (line_key, Value::I64(line.into()))),
        module.map(|module| (module_key, Value::Str(module))),
    ]
    .into_iter()
    .flatten()
}

/// Pushes the code location attributes onto `attrs`.
pub(crate) fn push_location<'a>(
    attrs: &mut Attrs<'a>,
    file: Option<&'a str>,
    line: Option<u32>,
    module: Option<&'a str>,
) {
    for (key, value) in location(file, line, module) {
        attrs.push(key, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excluded_targets_are_whole_crate_names() {
        for t in [
            "otlpx",
            "otlpx::worker",
            "h2::proto",
            "hyper_util::client",
            "tokio",
        ] {
            assert!(is_excluded_target(t), "{t}");
        }
        for t in ["otlpxy", "h2o::x", "my_app::hyper", "hyperfine", "", "app"] {
            assert!(!is_excluded_target(t), "{t}");
        }
    }

    #[test]
    fn appended_fields_keep_their_values() {
        let mut a = FieldBuf::default();
        a.push_str(Key::Static("a"), "one");
        let mut b = FieldBuf::default();
        b.push_str(Key::Static("b"), "two");
        let (s, e) = b.text("key");
        b.push_bytes(Key::Text(s, e), &[1, 2]);
        b.push(Key::Static("n"), Item::I64(3));
        a.append(&b);
        let got: Vec<_> = a
            .items
            .iter()
            .map(|&(k, v)| (a.key(k).to_owned(), format!("{:?}", a.value(v))))
            .collect();
        assert_eq!(
            got,
            [
                ("a".into(), "Str(\"one\")".into()),
                ("b".into(), "Str(\"two\")".into()),
                ("key".into(), "Bytes([1, 2])".into()),
                ("n".into(), "I64(3)".into()),
            ]
        );
        assert_eq!(a.find("b").and_then(|i| a.str(i)), Some("two"));
    }

    #[test]
    fn attrs_spill_past_the_stack() {
        let keys: Vec<String> = (0..STACK_ATTRIBUTES + 3).map(|i| i.to_string()).collect();
        let mut attrs = Attrs::new();
        for (i, k) in keys.iter().enumerate() {
            attrs.push(k, Value::I64(i as i64));
        }
        let got: Vec<i64> = attrs
            .as_slice()
            .iter()
            .map(|kv| match kv.value {
                Value::I64(v) => v,
                _ => -1,
            })
            .collect();
        assert_eq!(got, (0..keys.len() as i64).collect::<Vec<_>>());
    }

    #[test]
    fn the_scratch_buffer_survives_reentry() {
        let inner = with_scratch(|outer| {
            outer.push_str(Key::Static("outer"), "x");
            with_scratch(|inner| {
                assert!(inner.items.is_empty(), "a fresh buffer, not the outer one");
                inner.push_str(Key::Static("inner"), "y");
                inner.items.len()
            })
        });
        assert_eq!(inner, 1);
    }

    #[test]
    fn targets_find_their_scope_and_excluded_ones_register_none() {
        let engine = Engine::builder().export(false).build().unwrap();
        let scopes = Scopes::new(&engine);
        let a = scopes.lookup("app::orders");
        let b = scopes.lookup("app::users");
        assert_eq!(&*scopes.get(&a).name, "app::orders");
        assert_eq!(&*scopes.get(&b).name, "app::users");
        assert_eq!(
            scopes.get(&scopes.lookup("app::orders")).logger.scope,
            scopes.get(&a).logger.scope
        );
        assert_ne!(scopes.get(&a).logger.scope, scopes.get(&b).logger.scope);
        let h2 = scopes.lookup("h2::codec");
        assert!(scopes.get(&h2).excluded);
        assert_eq!(scopes.get(&h2).logger.scope, scopes.base().logger.scope);
    }

    #[test]
    fn a_full_table_overflows_into_the_map() {
        let engine = Engine::builder().export(false).build().unwrap();
        let scopes = Scopes::new(&engine);
        let mut overflowed = 0;
        for i in 0..SLOTS + 10 {
            let name = format!("t{i}");
            let id = scopes.lookup(&name);
            assert_eq!(&*scopes.get(&id).name, name);
            overflowed += usize::from(matches!(id, ScopeId::Overflow(_)));
        }
        assert!(overflowed >= 10, "{overflowed}");
    }
}
