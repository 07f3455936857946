//! Log records of any shape through the C ABI's `otlpx_logger_emit`: an
//! `otlpx_log_record` built from the input, every pointer valid but every
//! content arbitrary (bytes that are not UTF-8, unknown type numbers, bool
//! array bytes past 1, severities past 24, bodies nested past the depth
//! bound, arrays that repeat one pointer many times over). A model of the
//! documented rules says whether the record is valid; the call must agree:
//! a valid record is recorded (or dropped and counted) and decodes, from
//! `otlpx_engine_drain`, with the body it was given; an invalid one is
//! refused and counted in `calls_refused`, never recorded, never a panic.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as Av;
use opentelemetry_proto::tonic::common::v1::{AnyValue, ArrayValue, KeyValue, KeyValueList};
use otlpx_ffi::engine::{otlpx_engine, otlpx_engine_drain, otlpx_engine_signal_stats, otlpx_stats};
use otlpx_ffi::logs::{
    OTLPX_MAX_BODY_DEPTH, OTLPX_MAX_BODY_VALUES, otlpx_logger, otlpx_logger_emit,
};
use otlpx_ffi::otlpx_status;
use otlpx_ffi::types::{
    otlpx_any_key_value, otlpx_any_value, otlpx_attribute, otlpx_log_record, otlpx_signal,
    otlpx_str, otlpx_value_type as T,
};
use prost::Message;
use std::ffi::c_void;
use std::sync::OnceLock;

#[derive(Arbitrary, Debug)]
enum Body {
    /// `STRING`: any bytes, UTF-8 or not.
    Str(Vec<u8>),
    Bool(i64),
    Int(i64),
    Double(f64),
    Bytes(Vec<u8>),
    StrArray(Vec<Vec<u8>>),
    /// Bytes past 1 are not bools.
    BoolArray(Vec<u8>),
    IntArray(Vec<i64>),
    DoubleArray(Vec<f64>),
    BytesArray(Vec<Vec<u8>>),
    Array(Vec<Body>),
    Map(Vec<(Vec<u8>, Body)>),
    /// An array of `n` copies of one value: the copies share its pointers.
    Repeat(u8, Box<Body>),
    /// Any type number, with empty contents.
    Raw(u32),
}

#[derive(Arbitrary, Debug)]
struct Input {
    ring_log2: u8,
    severity: u8,
    text: Vec<u8>,
    event_name: Vec<u8>,
    time: u64,
    observed: u64,
    body: Option<Body>,
    attrs: Vec<(Vec<u8>, Body)>,
    context: Option<([u8; 16], [u8; 8], u8)>,
}

/// Deeper than this the harness stops building (its own recursion), well
/// past the library's bound.
const HARNESS_DEPTH: usize = 3 * OTLPX_MAX_BODY_DEPTH as usize;

/// Owns every C array a record points into. Inner vectors never move
/// their elements once filled (only the outer vectors grow), so the
/// pointers stay valid for the call.
#[derive(Default)]
struct Store {
    values: Vec<Vec<otlpx_any_value>>,
    entries: Vec<Vec<otlpx_any_key_value>>,
    strs: Vec<Vec<otlpx_str>>,
}

fn s(b: &[u8]) -> otlpx_str {
    otlpx_str {
        ptr: b.as_ptr().cast(),
        len: b.len(),
    }
}

fn value(t: u32) -> otlpx_any_value {
    otlpx_any_value {
        r#type: t,
        string: otlpx_str {
            ptr: std::ptr::null(),
            len: 0,
        },
        int_value: 0,
        double_value: 0.0,
        array: std::ptr::null(),
        array_len: 0,
    }
}

fn array<E>(t: T, items: &[E]) -> otlpx_any_value {
    otlpx_any_value {
        array: items.as_ptr().cast::<c_void>(),
        array_len: items.len(),
        ..value(t as u32)
    }
}

impl Store {
    fn strs(&mut self, items: &[Vec<u8>]) -> &[otlpx_str] {
        self.strs.push(items.iter().map(|b| s(b)).collect());
        self.strs.last().unwrap()
    }

    /// The C value of `b` (depth: its level, the body's being 1).
    fn build(&mut self, b: &Body, depth: usize) -> otlpx_any_value {
        if depth > HARNESS_DEPTH {
            return otlpx_any_value {
                int_value: 1,
                ..value(T::Int as u32)
            };
        }
        match b {
            Body::Str(v) => otlpx_any_value {
                string: s(v),
                ..value(T::String as u32)
            },
            Body::Bool(v) => otlpx_any_value {
                int_value: *v,
                ..value(T::Bool as u32)
            },
            Body::Int(v) => otlpx_any_value {
                int_value: *v,
                ..value(T::Int as u32)
            },
            Body::Double(v) => otlpx_any_value {
                double_value: *v,
                ..value(T::Double as u32)
            },
            Body::Bytes(v) => otlpx_any_value {
                string: s(v),
                ..value(T::Bytes as u32)
            },
            Body::StrArray(v) => array(T::StringArray, self.strs(v)),
            Body::BytesArray(v) => array(T::BytesArray, self.strs(v)),
            Body::BoolArray(v) => array(T::BoolArray, v),
            Body::IntArray(v) => array(T::IntArray, v),
            Body::DoubleArray(v) => array(T::DoubleArray, v),
            Body::Array(items) => {
                let built: Vec<otlpx_any_value> =
                    items.iter().map(|i| self.build(i, depth + 1)).collect();
                self.values.push(built);
                array(T::Array, self.values.last().unwrap())
            }
            Body::Map(entries) => {
                let built: Vec<otlpx_any_key_value> = entries
                    .iter()
                    .map(|(k, v)| otlpx_any_key_value {
                        key: s(k),
                        value: self.build(v, depth + 1),
                    })
                    .collect();
                self.entries.push(built);
                array(T::Map, self.entries.last().unwrap())
            }
            Body::Repeat(n, inner) => {
                let one = self.build(inner, depth + 1);
                self.values.push(vec![one; usize::from(*n)]);
                array(T::Array, self.values.last().unwrap())
            }
            Body::Raw(t) => value(*t),
        }
    }

    fn attribute(&mut self, key: &[u8], b: &Body) -> otlpx_attribute {
        let v = self.build(b, 1);
        otlpx_attribute {
            key: s(key),
            r#type: v.r#type,
            string: v.string,
            int_value: v.int_value,
            double_value: v.double_value,
            array: v.array,
            array_len: v.array_len,
        }
    }
}

/// Whether the library must take the body `b` at level `depth` (the
/// body's is 1): the documented rules, counting values as the library
/// does (`count`, saturating, however the pointers share). Allocates
/// nothing, and stops as soon as the count passes the bound.
fn valid(b: &Body, depth: u32, count: &mut u64) -> bool {
    let utf8 = |v: &[u8]| std::str::from_utf8(v).is_ok();
    if depth as usize > HARNESS_DEPTH {
        return false; // built as an int, but past the depth bound anyway
    }
    let mut add = |n: usize| {
        *count = count.saturating_add(n as u64);
        *count <= u64::from(OTLPX_MAX_BODY_VALUES)
    };
    // A nested array or map with elements at the deepest level is refused.
    let nests = |n: usize| n == 0 || depth < OTLPX_MAX_BODY_DEPTH;
    match b {
        Body::Str(v) => utf8(v),
        Body::Bool(_) | Body::Int(_) | Body::Double(_) | Body::Bytes(_) => true,
        Body::StrArray(v) => add(v.len()) && v.iter().all(|e| utf8(e)),
        Body::BytesArray(v) => add(v.len()),
        Body::BoolArray(v) => add(v.len()) && v.iter().all(|&b| b <= 1),
        Body::IntArray(v) => add(v.len()),
        Body::DoubleArray(v) => add(v.len()),
        Body::Array(items) => {
            nests(items.len())
                && add(items.len())
                && items.iter().all(|i| nested_valid(i, depth + 1, count))
        }
        Body::Map(entries) => {
            nests(entries.len())
                && add(entries.len())
                && entries
                    .iter()
                    .all(|(k, v)| utf8(k) && nested_valid(v, depth + 1, count))
        }
        // Never read when empty; otherwise each copy counts and is checked.
        Body::Repeat(n, inner) => {
            let n = usize::from(*n);
            nests(n) && add(n) && (0..n).all(|_| nested_valid(inner, depth + 1, count))
        }
        Body::Raw(t) => (1..=12).contains(t),
    }
}

/// A value inside an array or map: type 0 is not one.
fn nested_valid(b: &Body, depth: u32, count: &mut u64) -> bool {
    !matches!(b, Body::Raw(0)) && valid(b, depth, count)
}

/// The OTLP value a valid body arrives as.
fn expected(b: &Body) -> Av {
    fn text(v: &[u8]) -> Av {
        Av::StringValue(String::from_utf8(v.to_vec()).expect("checked valid"))
    }
    fn arr(values: Vec<Av>) -> Av {
        Av::ArrayValue(ArrayValue {
            values: values
                .into_iter()
                .map(|v| AnyValue { value: Some(v) })
                .collect(),
        })
    }
    match b {
        Body::Str(v) => text(v),
        Body::Bool(v) => Av::BoolValue(*v != 0),
        Body::Int(v) => Av::IntValue(*v),
        Body::Double(v) => Av::DoubleValue(*v),
        Body::Bytes(v) => Av::BytesValue(v.clone()),
        Body::StrArray(v) => arr(v.iter().map(|e| text(e)).collect()),
        Body::BytesArray(v) => arr(v.iter().map(|e| Av::BytesValue(e.clone())).collect()),
        Body::BoolArray(v) => arr(v.iter().map(|&b| Av::BoolValue(b == 1)).collect()),
        Body::IntArray(v) => arr(v.iter().map(|&i| Av::IntValue(i)).collect()),
        Body::DoubleArray(v) => arr(v.iter().map(|&d| Av::DoubleValue(d)).collect()),
        Body::Array(items) => arr(items.iter().map(expected).collect()),
        Body::Map(entries) => Av::KvlistValue(KeyValueList {
            values: entries
                .iter()
                .map(|(k, v)| KeyValue {
                    key: String::from_utf8(k.clone()).expect("checked valid"),
                    value: Some(AnyValue {
                        value: Some(expected(v)),
                    }),
                    ..KeyValue::default()
                })
                .collect(),
        }),
        Body::Repeat(n, inner) => {
            let n = usize::from(*n);
            if n == 0 {
                return arr(Vec::new());
            }
            arr(vec![expected(inner); n])
        }
        Body::Raw(t) => match *t {
            1 => Av::StringValue(String::new()),
            2 => Av::BoolValue(false),
            3 => Av::IntValue(0),
            4 => Av::DoubleValue(0.0),
            5 => Av::BytesValue(Vec::new()),
            6..=11 => arr(Vec::new()),
            _ => Av::KvlistValue(KeyValueList::default()),
        },
    }
}

/// Whether an attribute of `b` is valid (plain types only).
fn attribute_ok(key: &[u8], b: &Body) -> bool {
    let plain = match b {
        Body::Array(_) | Body::Map(_) | Body::Repeat(..) => false,
        Body::Raw(t) => (1..=10).contains(t),
        _ => true,
    };
    plain && std::str::from_utf8(key).is_ok() && valid(b, 1, &mut 0)
}

/// One record-only engine per ring size (64 bytes to 1 MiB), with its
/// logger; built once, reused by every input.
fn engine(ring_log2: u8) -> (&'static otlpx_engine, &'static otlpx_logger) {
    struct Pair(*mut otlpx_engine, *const otlpx_logger);
    // SAFETY: both are thread-safe handles, never freed.
    unsafe impl Send for Pair {}
    // SAFETY: as above.
    unsafe impl Sync for Pair {}
    static ENGINES: [OnceLock<Pair>; 15] = [const { OnceLock::new() }; 15];
    let i = usize::from(ring_log2 % 15);
    let pair = ENGINES[i].get_or_init(|| {
        use otlpx_ffi::config::*;
        use otlpx_ffi::engine::otlpx_engine_new;
        use otlpx_ffi::logs::otlpx_engine_logger;
        let toml = "[workers]\nrings = 1\n";
        let mut config = std::ptr::null_mut();
        let mut e = std::ptr::null_mut();
        let mut l = std::ptr::null();
        // SAFETY: every pointer is to a live local or a static string.
        unsafe {
            assert_eq!(otlpx_config_new(&mut config), otlpx_status::Ok);
            assert_eq!(otlpx_config_ignore_environment(config, 1), otlpx_status::Ok);
            assert_eq!(otlpx_config_set_export(config, 0), otlpx_status::Ok);
            assert_eq!(
                otlpx_config_set_toml(config, toml.as_ptr().cast(), toml.len()),
                otlpx_status::Ok
            );
            assert_eq!(
                otlpx_config_set_ring_bytes_per_cpu(config, 1 << (6 + i)),
                otlpx_status::Ok
            );
            assert_eq!(otlpx_engine_new(config, &mut e), otlpx_status::Ok);
            assert_eq!(
                otlpx_engine_logger(e, "fuzz".as_ptr().cast(), 4, std::ptr::null(), 0, &mut l),
                otlpx_status::Ok
            );
        }
        Pair(e, l)
    });
    // SAFETY: never freed.
    unsafe { (&*pair.0, &*pair.1) }
}

fn stats(e: &otlpx_engine) -> otlpx_stats {
    let mut s = otlpx_stats::default();
    // SAFETY: a live engine and a local.
    let st = unsafe {
        otlpx_engine_signal_stats(
            e,
            otlpx_signal::Logs as u32,
            &mut s,
            size_of::<otlpx_stats>(),
        )
    };
    assert_eq!(st, otlpx_status::Ok);
    s
}

fuzz_target!(|input: Input| {
    let (e, logger) = engine(input.ring_log2);
    let mut store = Store::default();
    let attrs: Vec<otlpx_attribute> = input
        .attrs
        .iter()
        .map(|(k, b)| store.attribute(k, b))
        .collect();
    let body = input.body.as_ref().map_or(value(0), |b| store.build(b, 1));
    let (trace_id, span_id, flags) = input.context.unwrap_or_default();
    let record = otlpx_log_record {
        time_unix_nano: input.time,
        observed_time_unix_nano: input.observed,
        severity_number: u32::from(input.severity),
        severity_text: s(&input.text),
        body,
        attributes: attrs.as_ptr(),
        attributes_len: attrs.len(),
        event_name: s(&input.event_name),
        trace_id,
        span_id,
        trace_flags: flags,
        has_span_context: u8::from(input.context.is_some()),
    };

    // The model: is it valid, and if so what body must arrive?
    // Type 0 at the top is no body; anywhere else it is refused.
    let body_in = input.body.as_ref().filter(|b| !matches!(b, Body::Raw(0)));
    let take = input.severity <= 24
        && std::str::from_utf8(&input.text).is_ok()
        && std::str::from_utf8(&input.event_name).is_ok()
        && input
            .context
            .is_none_or(|(t, s, _)| t != [0; 16] && s != [0; 8])
        && input.attrs.iter().all(|(k, b)| attribute_ok(k, b))
        && body_in.is_none_or(|b| valid(b, 1, &mut 1));

    let before = stats(e);
    // SAFETY: every pointer is into `store`, `input` or `attrs`, alive
    // and unmodified for the call.
    let status = unsafe { otlpx_logger_emit(logger, &record) };
    let after = stats(e);
    let taken = matches!(
        status,
        otlpx_status::Ok | otlpx_status::RingFull | otlpx_status::TooLarge
    );
    assert_eq!(taken, take, "{status:?} for {input:?}");
    assert_eq!(after.recorded - before.recorded, u64::from(taken));
    assert_eq!(
        after.calls_refused - before.calls_refused,
        u64::from(!taken)
    );
    if !taken {
        assert!(
            matches!(
                status,
                otlpx_status::InvalidArgument | otlpx_status::InvalidUtf8
            ),
            "{status:?}"
        );
    }

    let mut buf = vec![0_u8; 1 << 21];
    let (mut len, mut items) = (0, 0);
    // SAFETY: a live engine; `buf` and the outputs are locals.
    let st = unsafe {
        otlpx_engine_drain(
            e,
            otlpx_signal::Logs as u32,
            16,
            buf.as_mut_ptr(),
            buf.len(),
            &mut len,
            &mut items,
        )
    };
    assert_eq!(st, otlpx_status::Ok);
    assert_eq!(items, usize::from(status == otlpx_status::Ok));
    if items == 1 {
        let req = ExportLogsServiceRequest::decode(&buf[..len]).expect("our request decodes");
        let r = &req.resource_logs[0].scope_logs[0].log_records[0];
        assert_eq!(r.severity_number, i32::from(input.severity));
        if input.time != 0 {
            assert_eq!(r.time_unix_nano, input.time);
        }
        if input.observed != 0 {
            assert_eq!(r.observed_time_unix_nano, input.observed);
        }
        assert_eq!(r.event_name.as_bytes(), &input.event_name[..]);
        assert!(r.attributes.len() <= input.attrs.len());
        let got = r.body.as_ref().and_then(|b| b.value.clone());
        let want = body_in.map(expected);
        // Debug text: NaN equals NaN, -0.0 differs from 0.0.
        assert_eq!(format!("{got:?}"), format!("{want:?}"));
        if let Some((t, s, f)) = input.context {
            assert_eq!(
                (&r.trace_id[..], &r.span_id[..], r.flags),
                (&t[..], &s[..], u32::from(f))
            );
        } else {
            assert!(r.trace_id.is_empty() && r.span_id.is_empty());
        }
    }
});
