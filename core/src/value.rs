//! Attribute values as the OpenTelemetry data model defines them: a
//! primitive (string, bool, i64, f64, bytes) or a homogeneous array of one.
//!
//! Values borrow what they hold, so recording an attribute never allocates:
//! the bytes are encoded straight into the span's protobuf form when it is
//! set. [`ToValue`] is what the recording calls take: it lends a [`Value`]
//! out of owned types too (`String`, `Arc<str>`, `Vec<T>`), and out of every
//! integer type.
//!
//! OTLP has no unsigned integers: an unsigned value up to `i64::MAX` is an
//! int, a larger one its decimal digits as a string (an array holding one
//! such value is an array of such strings throughout, so that it stays
//! homogeneous). Nothing is clamped or wrapped.

use std::borrow::Cow;
use std::rc::Rc;
use std::sync::Arc;

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
    /// An unsigned integer: sent as an int up to `i64::MAX`, above it as
    /// its decimal digits (a string).
    U64(u64),
    /// An array of any [`ArrayItem`] type: `Vec<String>`, `[u32; 4]`, ….
    Array(Array<'a>),
}

/// A borrowed homogeneous array of any [`ArrayItem`] type, for
/// [`Value::Array`].
#[derive(Clone, Copy)]
pub struct Array<'a>(Items<'a>);

/// The slice an [`Array`] borrows, by item type.
#[derive(Clone, Copy)]
enum Items<'a> {
    Str(&'a [&'a str]),
    String(&'a [String]),
    Cow(&'a [Cow<'a, str>]),
    Arc(&'a [Arc<str>]),
    Rc(&'a [Rc<str>]),
    Box(&'a [Box<str>]),
    Bool(&'a [bool]),
    I8(&'a [i8]),
    I16(&'a [i16]),
    I32(&'a [i32]),
    I64(&'a [i64]),
    Isize(&'a [isize]),
    U16(&'a [u16]),
    U32(&'a [u32]),
    U64(&'a [u64]),
    Usize(&'a [usize]),
    F32(&'a [f32]),
    F64(&'a [f64]),
}

/// Calls `$body` with `$s` bound to the slice, whatever its item type.
macro_rules! each_items {
    ($items:expr, |$s:ident| $body:expr) => {
        match $items {
            Items::Str($s) => $body,
            Items::String($s) => $body,
            Items::Cow($s) => $body,
            Items::Arc($s) => $body,
            Items::Rc($s) => $body,
            Items::Box($s) => $body,
            Items::Bool($s) => $body,
            Items::I8($s) => $body,
            Items::I16($s) => $body,
            Items::I32($s) => $body,
            Items::I64($s) => $body,
            Items::Isize($s) => $body,
            Items::U16($s) => $body,
            Items::U32($s) => $body,
            Items::U64($s) => $body,
            Items::Usize($s) => $body,
            Items::F32($s) => $body,
            Items::F64($s) => $body,
        }
    };
}

impl<'a> Array<'a> {
    /// The array of `items`.
    pub fn new<T: ArrayItem>(items: &'a [T]) -> Self {
        T::array(items)
    }

    /// How many items it has.
    pub fn len(&self) -> usize {
        each_items!(self.0, |s| s.len())
    }

    /// Whether it has none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The item at `index`, as a value.
    pub fn get(&self, index: usize) -> Option<Value<'a>> {
        each_items!(self.0, |s| s.get(index).map(|item| item.to_value()))
    }

    /// Its items, as values.
    pub fn iter(&self) -> impl Iterator<Item = Value<'a>> + use<'a> {
        let array = *self;
        (0..array.len()).filter_map(move |i| array.get(i))
    }
}

impl std::fmt::Debug for Array<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// Arrays are equal when their items are, whatever their Rust item types
/// (`[1i32]` equals `[1i64]`).
impl PartialEq for Array<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

/// Anything that lends a [`Value`]: what
/// [`Span::set_attribute`](crate::Span::set_attribute) takes. Implemented
/// for strings (`str`, `String`, `Cow<str>`, `Arc<str>`, `Rc<str>`,
/// `Box<str>`), `bool`, every integer type, `f32`/`f64`, bytes (`[u8]`,
/// `Vec<u8>`), [`Value`] itself, references to any of these, and slices,
/// arrays and `Vec`s of [`ArrayItem`]s.
pub trait ToValue {
    /// The value, borrowing from `self`.
    fn to_value(&self) -> Value<'_>;
}

/// A type whose slices are attribute arrays: the scalar [`ToValue`] types
/// except `u8` (a `[u8]` is bytes), and `&str`. Sealed: implemented here
/// only.
pub trait ArrayItem: ToValue + Sized + sealed::Sealed {
    /// The array of `items`.
    #[doc(hidden)]
    fn array(items: &[Self]) -> Array<'_>;
}

mod sealed {
    pub trait Sealed {}
}

impl<T: ToValue + ?Sized> ToValue for &T {
    fn to_value(&self) -> Value<'_> {
        (**self).to_value()
    }
}

impl ToValue for Value<'_> {
    fn to_value(&self) -> Value<'_> {
        *self
    }
}

macro_rules! to_value {
    ($($t:ty, $variant:ident => |$v:ident| $e:expr),* $(,)?) => {
        $(impl ToValue for $t {
            #[inline]
            fn to_value(&self) -> Value<'_> {
                let $v = self;
                $e
            }
        }
        impl sealed::Sealed for $t {}
        impl ArrayItem for $t {
            fn array(items: &[Self]) -> Array<'_> {
                Array(Items::$variant(items))
            }
        })*
    };
}

impl ToValue for str {
    fn to_value(&self) -> Value<'_> {
        Value::Str(self)
    }
}

impl sealed::Sealed for &str {}
impl ArrayItem for &str {
    fn array<'s>(items: &'s [&str]) -> Array<'s> {
        Array(Items::Str(items))
    }
}

to_value! {
    String, String => |v| Value::Str(v),
    Cow<'_, str>, Cow => |v| Value::Str(v),
    Arc<str>, Arc => |v| Value::Str(v),
    Rc<str>, Rc => |v| Value::Str(v),
    Box<str>, Box => |v| Value::Str(v),
    bool, Bool => |v| Value::Bool(*v),
    i8, I8 => |v| Value::I64((*v).into()),
    i16, I16 => |v| Value::I64((*v).into()),
    i32, I32 => |v| Value::I64((*v).into()),
    i64, I64 => |v| Value::I64(*v),
    // isize is at most 64 bits on every platform Rust supports.
    isize, Isize => |v| Value::I64(*v as i64),
    u16, U16 => |v| Value::I64((*v).into()),
    u32, U32 => |v| Value::I64((*v).into()),
    u64, U64 => |v| Value::U64(*v),
    // usize is at most 64 bits on every platform Rust supports.
    usize, Usize => |v| Value::U64(*v as u64),
    f32, F32 => |v| Value::F64((*v).into()),
    f64, F64 => |v| Value::F64(*v),
}

impl ToValue for u8 {
    fn to_value(&self) -> Value<'_> {
        Value::I64((*self).into())
    }
}

impl ToValue for [u8] {
    fn to_value(&self) -> Value<'_> {
        Value::Bytes(self)
    }
}

impl ToValue for Vec<u8> {
    fn to_value(&self) -> Value<'_> {
        Value::Bytes(self)
    }
}

impl<T: ArrayItem> ToValue for [T] {
    fn to_value(&self) -> Value<'_> {
        Value::Array(Array::new(self))
    }
}

impl<T: ArrayItem> ToValue for Vec<T> {
    fn to_value(&self) -> Value<'_> {
        Value::Array(Array::new(self))
    }
}

impl<T: ArrayItem, const N: usize> ToValue for [T; N] {
    fn to_value(&self) -> Value<'_> {
        Value::Array(Array::new(self))
    }
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
    isize => |v| Value::I64(v as i64),
    u64 => |v| Value::U64(v),
    usize => |v| Value::U64(v as u64),
    u32 => |v| Value::I64(v.into()),
    u16 => |v| Value::I64(v.into()),
    u8 => |v| Value::I64(v.into()),
    &'a Cow<'a, str> => |v| Value::Str(v),
    &'a Arc<str> => |v| Value::Str(v),
    &'a Box<str> => |v| Value::Str(v),
    f64 => |v| Value::F64(v),
    f32 => |v| Value::F64(v.into()),
    &'a [u8] => |v| Value::Bytes(v),
    &'a [&'a str] => |v| Value::StrArray(v),
    &'a [bool] => |v| Value::BoolArray(v),
    &'a [i64] => |v| Value::I64Array(v),
    &'a [f64] => |v| Value::F64Array(v),
    &'a [&'a [u8]] => |v| Value::BytesArray(v),
    &'a Vec<u8> => |v| Value::Bytes(v),
    &'a [String] => |v| Value::Array(Array::new(v)),
    &'a Vec<String> => |v| Value::Array(Array::new(v)),
    &'a Vec<&'a str> => |v| Value::StrArray(v),
    &'a Vec<i64> => |v| Value::I64Array(v),
    &'a Vec<f64> => |v| Value::F64Array(v),
    &'a Vec<bool> => |v| Value::BoolArray(v),
}

impl<'a> From<Array<'a>> for Value<'a> {
    fn from(a: Array<'a>) -> Self {
        Value::Array(a)
    }
}
