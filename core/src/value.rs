//! Attribute values as the OpenTelemetry data model defines them: a
//! primitive (string, bool, i64, f64, bytes) or a homogeneous array of one.
//!
//! Values borrow what they hold, so recording an attribute never allocates:
//! the bytes are encoded straight into the span's protobuf form when it is
//! set.

/// An attribute value, borrowed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Value<'a> {
    /// A UTF-8 string.
    Str(&'a str),
    /// A boolean.
    Bool(bool),
    /// A signed 64-bit integer.
    I64(i64),
    /// A 64-bit float.
    F64(f64),
    /// Raw bytes.
    Bytes(&'a [u8]),
    /// An array of strings.
    StrArray(&'a [&'a str]),
    /// An array of booleans.
    BoolArray(&'a [bool]),
    /// An array of integers.
    I64Array(&'a [i64]),
    /// An array of floats.
    F64Array(&'a [f64]),
    /// An array of byte strings.
    BytesArray(&'a [&'a [u8]]),
}

/// A key and its value: one attribute.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct KeyValue<'a> {
    /// The attribute name, e.g. `http.request.method`.
    pub key: &'a str,
    /// The attribute value.
    pub value: Value<'a>,
}

impl<'a> KeyValue<'a> {
    /// An attribute from anything that converts to a [`Value`].
    ///
    /// ```
    /// use otlpx::{KeyValue, Value};
    /// let kv = KeyValue::new("http.response.status_code", 200);
    /// assert_eq!(kv.value, Value::I64(200));
    /// ```
    pub fn new(key: &'a str, value: impl Into<Value<'a>>) -> Self {
        Self {
            key,
            value: value.into(),
        }
    }
}

macro_rules! from_value {
    ($($t:ty => |$v:ident| $e:expr),* $(,)?) => {
        $(impl<'a> From<$t> for Value<'a> {
            fn from($v: $t) -> Self { $e }
        })*
    };
}

from_value! {
    &'a str => |v| Value::Str(v),
    &'a String => |v| Value::Str(v),
    bool => |v| Value::Bool(v),
    i64 => |v| Value::I64(v),
    i32 => |v| Value::I64(v.into()),
    i16 => |v| Value::I64(v.into()),
    i8 => |v| Value::I64(v.into()),
    u32 => |v| Value::I64(v.into()),
    u16 => |v| Value::I64(v.into()),
    u8 => |v| Value::I64(v.into()),
    f64 => |v| Value::F64(v),
    f32 => |v| Value::F64(v.into()),
    &'a [u8] => |v| Value::Bytes(v),
    &'a [&'a str] => |v| Value::StrArray(v),
    &'a [bool] => |v| Value::BoolArray(v),
    &'a [i64] => |v| Value::I64Array(v),
    &'a [f64] => |v| Value::F64Array(v),
    &'a [&'a [u8]] => |v| Value::BytesArray(v),
}
