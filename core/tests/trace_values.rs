//! The conversions people write: `set_attribute` with each type a Rust
//! service has at hand (owned strings, every integer width, `usize` from
//! `len()`, `f32`, arrays of them) compiles and arrives with the right
//! OTLP type; unsigned values past `i64::MAX` arrive as their decimal
//! digits, never wrapped; `record_exception` writes the `exception` event
//! with the source chain. Decoded with the official OTLP types.

use bytes::BytesMut;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, any_value::Value as Av};
use opentelemetry_proto::tonic::trace::v1::Span as PSpan;
use otlpx::{Array, Engine, KeyValue, Value};
use prost::Message;
use std::borrow::Cow;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

fn engine() -> Engine {
    Engine::builder().export(false).build().unwrap()
}

fn drain_one(engine: &Engine) -> PSpan {
    let mut out = BytesMut::new();
    assert_eq!(engine.drain_traces(&mut out, 512), 1);
    let req = ExportTraceServiceRequest::decode(&out[..]).unwrap();
    req.resource_spans[0].scope_spans[0].spans[0].clone()
}

fn attrs(attributes: &[opentelemetry_proto::tonic::common::v1::KeyValue]) -> HashMap<String, Av> {
    attributes
        .iter()
        .map(|kv| {
            let v = kv.value.clone().and_then(|v| v.value).expect("a value");
            (kv.key.clone(), v)
        })
        .collect()
}

fn s(v: &str) -> Av {
    Av::StringValue(v.to_owned())
}

fn array(items: Vec<Av>) -> Av {
    Av::ArrayValue(opentelemetry_proto::tonic::common::v1::ArrayValue {
        values: items
            .into_iter()
            .map(|v| AnyValue { value: Some(v) })
            .collect(),
    })
}

#[test]
// References to values convert too: that is what the borrows test.
#[allow(clippy::needless_borrows_for_generic_args)]
fn every_listed_type_converts_and_arrives_with_its_otlp_type() {
    let engine = engine();
    let tracer = engine.tracer("values", "");
    let body = vec![0u8; 512];
    let mut span = tracer.start("all types");
    span.set_attribute("usize", body.len());
    span.set_attribute("u64", 7u64);
    span.set_attribute("u32", 8u32);
    span.set_attribute("u16", 9u16);
    span.set_attribute("u8", 10u8);
    span.set_attribute("i32", -11i32);
    span.set_attribute("i16", -12i16);
    span.set_attribute("i8", -13i8);
    span.set_attribute("isize", -14isize);
    span.set_attribute("i64", i64::MIN);
    span.set_attribute("f32", 1.5f32);
    span.set_attribute("f64", 2.25f64);
    span.set_attribute("bool", true);
    span.set_attribute("str", "borrowed");
    span.set_attribute("string", String::from("owned"));
    span.set_attribute("&string", &String::from("by ref"));
    span.set_attribute("cow", Cow::<str>::Owned("cow".into()));
    span.set_attribute("arc", Arc::<str>::from("arc"));
    span.set_attribute("rc", Rc::<str>::from("rc"));
    span.set_attribute("box", Box::<str>::from("box"));
    span.set_attribute("bytes", &body[..2]);
    span.set_attribute("vec_bytes", vec![1u8, 2]);
    span.set_attribute("vec_string", vec![String::from("a"), String::from("b")]);
    span.set_attribute("slice_str", &["x", "y"][..]);
    span.set_attribute("array_u32", [1u32, 2, 3]);
    span.set_attribute("vec_usize", vec![4usize, 5]);
    span.set_attribute("vec_f32", vec![0.5f32]);
    span.set_attribute("vec_bool", vec![true, false]);
    span.set_attribute("vec_arc", vec![Arc::<str>::from("p"), Arc::from("q")]);
    span.set_attribute("vec_i32", &vec![-1i32, 1]);
    span.set_attribute("value", Value::I64(99));
    span.end();

    let got = attrs(&drain_one(&engine).attributes);
    let want: Vec<(&str, Av)> = vec![
        ("usize", Av::IntValue(512)),
        ("u64", Av::IntValue(7)),
        ("u32", Av::IntValue(8)),
        ("u16", Av::IntValue(9)),
        ("u8", Av::IntValue(10)),
        ("i32", Av::IntValue(-11)),
        ("i16", Av::IntValue(-12)),
        ("i8", Av::IntValue(-13)),
        ("isize", Av::IntValue(-14)),
        ("i64", Av::IntValue(i64::MIN)),
        ("f32", Av::DoubleValue(1.5)),
        ("f64", Av::DoubleValue(2.25)),
        ("bool", Av::BoolValue(true)),
        ("str", s("borrowed")),
        ("string", s("owned")),
        ("&string", s("by ref")),
        ("cow", s("cow")),
        ("arc", s("arc")),
        ("rc", s("rc")),
        ("box", s("box")),
        ("bytes", Av::BytesValue(vec![0, 0])),
        ("vec_bytes", Av::BytesValue(vec![1, 2])),
        ("vec_string", array(vec![s("a"), s("b")])),
        ("slice_str", array(vec![s("x"), s("y")])),
        (
            "array_u32",
            array(vec![Av::IntValue(1), Av::IntValue(2), Av::IntValue(3)]),
        ),
        ("vec_usize", array(vec![Av::IntValue(4), Av::IntValue(5)])),
        ("vec_f32", array(vec![Av::DoubleValue(0.5)])),
        (
            "vec_bool",
            array(vec![Av::BoolValue(true), Av::BoolValue(false)]),
        ),
        ("vec_arc", array(vec![s("p"), s("q")])),
        ("vec_i32", array(vec![Av::IntValue(-1), Av::IntValue(1)])),
        ("value", Av::IntValue(99)),
    ];
    assert_eq!(got.len(), want.len());
    for (key, value) in want {
        assert_eq!(got.get(key), Some(&value), "{key}");
    }
}

#[test]
fn unsigned_values_past_i64_max_arrive_as_decimal_strings_never_wrapped() {
    let engine = engine();
    let tracer = engine.tracer("values", "");
    let mut span = tracer.start("big");
    span.set_attribute("max_i64", i64::MAX as u64);
    span.set_attribute("just_past", i64::MAX as u64 + 1);
    span.set_attribute("max", u64::MAX);
    span.set_attribute("usize_max", usize::MAX);
    // One big item: every item of the array is a string, so it stays
    // homogeneous.
    span.set_attribute("mixed", vec![1u64, u64::MAX]);
    span.set_attribute("small", vec![1u64, 2]);
    span.end();
    let got = attrs(&drain_one(&engine).attributes);
    assert_eq!(got["max_i64"], Av::IntValue(i64::MAX));
    assert_eq!(got["just_past"], s("9223372036854775808"));
    assert_eq!(got["max"], s("18446744073709551615"));
    assert_eq!(got["usize_max"], s(&usize::MAX.to_string()));
    assert_eq!(got["mixed"], array(vec![s("1"), s("18446744073709551615")]));
    assert_eq!(got["small"], array(vec![Av::IntValue(1), Av::IntValue(2)]));
}

#[test]
fn key_values_take_borrowed_owned_types_too() {
    let engine = engine();
    let tracer = engine.tracer("values", "");
    let name = String::from("a name");
    let tags = vec![String::from("t1"), String::from("t2")];
    let arc: Arc<str> = Arc::from("shared");
    let mut span = tracer.start("event");
    span.add_event(
        "with owned values",
        &[
            KeyValue::new("string", &name),
            KeyValue::new("tags", &tags),
            KeyValue::new("arc", &arc),
            KeyValue::new("size", tags.len()),
            KeyValue::new("u64s", Array::new(&[3u64, 4][..])),
        ],
    );
    span.end();
    let event = &drain_one(&engine).events[0];
    let got = attrs(&event.attributes);
    assert_eq!(got["string"], s("a name"));
    assert_eq!(got["tags"], array(vec![s("t1"), s("t2")]));
    assert_eq!(got["arc"], s("shared"));
    assert_eq!(got["size"], Av::IntValue(2));
    assert_eq!(got["u64s"], array(vec![Av::IntValue(3), Av::IntValue(4)]));
}

#[derive(Debug)]
struct Outer(std::io::Error);

impl std::fmt::Display for Outer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("cannot load the cart")
    }
}

impl std::error::Error for Outer {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

#[test]
fn record_exception_writes_the_exception_event_with_its_source_chain() {
    let engine = engine();
    let tracer = engine.tracer("values", "");
    let mut span = tracer.start("op");
    let error = Outer(std::io::Error::new(
        std::io::ErrorKind::ConnectionRefused,
        "connection refused",
    ));
    span.record_exception(&error);
    // A boxed error and one without a source.
    let boxed: Box<dyn std::error::Error + Send + Sync> = "plain".into();
    span.record_exception(&*boxed);
    span.end();
    let span = drain_one(&engine);
    assert_eq!(span.events.len(), 2);
    let first = &span.events[0];
    assert_eq!(first.name, "exception");
    let got = attrs(&first.attributes);
    assert_eq!(got["exception.message"], s("cannot load the cart"));
    let Av::StringValue(kind) = &got["exception.type"] else {
        panic!("{got:?}")
    };
    assert!(kind.ends_with("Outer"), "{kind}");
    assert_eq!(
        got["exception.stacktrace"],
        s("cannot load the cart\n\nCaused by:\n    0: connection refused")
    );
    let second = attrs(&span.events[1].attributes);
    assert_eq!(second["exception.message"], s("plain"));
    assert!(!second.contains_key("exception.stacktrace"));
    // Recording an exception leaves the status alone.
    assert!(span.status.is_none_or(|s| s.code == 0));
}
