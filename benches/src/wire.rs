//! Counting the items of an encoded OTLP export request (the spans of an
//! `ExportTraceServiceRequest`, the log records of an
//! `ExportLogsServiceRequest`, the metrics of an
//! `ExportMetricsServiceRequest`) without decoding it.
//!
//! The receiver must not become the bottleneck of a load test, and building
//! prost message structs costs about 1.5 CPU-seconds per million spans. This
//! walker reads the protobuf wire format instead: it follows only the path
//! `resource_<signal> (1)` → `scope_<signal> (2)` → items `(2)`, counts the
//! occurrences of the last field and skips everything else by its wire type,
//! never copying a byte. Traces (`resource_spans` → `scope_spans` →
//! `spans`), logs (`resource_logs` → `scope_logs` → `log_records`) and
//! metrics (`resource_metrics` → `scope_metrics` → `metrics`) share those
//! field numbers, so one walker counts all three. For metrics the path
//! ends at a `Metric`: it counts metrics, not their data points (as otlpx
//! counts a metric as one item).
//!
//! Invariants: every read is bounds-checked, so any input, however
//! malformed, gives `Ok` or a [`WireError`] and never panics; nesting is a
//! fixed three levels (no recursion, so no stack exhaustion on hostile
//! input); the walker accepts no more than prost would on the path it
//! follows (bad varints, keys, wire types and overrunning lengths are
//! errors), while the contents of the items themselves are not checked.

use std::fmt;

/// The largest field number protobuf allows (2^29 - 1).
const MAX_FIELD_NUMBER: u64 = (1 << 29) - 1;

/// Protobuf wire types.
const WIRE_VARINT: u8 = 0;
const WIRE_FIXED64: u8 = 1;
const WIRE_LEN: u8 = 2;
const WIRE_FIXED32: u8 = 5;

/// Why an encoded message could not be walked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum WireError {
    /// The input ends inside a key, a varint or a fixed-size value.
    Truncated,
    /// A varint is longer than 10 bytes or overflows 64 bits.
    BadVarint,
    /// A key has field number 0 or one above 2^29 - 1.
    BadFieldNumber,
    /// A wire type that proto3 does not use (groups, 6, 7), or the wrong
    /// wire type for one of the fields the walker follows.
    BadWireType {
        /// The wire type found.
        wire_type: u8,
    },
    /// A length-delimited field claims more bytes than remain.
    LengthOverrun {
        /// The length the field claims.
        length: u64,
        /// The bytes that remain after the length prefix.
        remaining: usize,
    },
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Truncated => f.write_str("truncated protobuf message"),
            Self::BadVarint => f.write_str("invalid varint"),
            Self::BadFieldNumber => f.write_str("invalid field number"),
            Self::BadWireType { wire_type } => write!(f, "invalid wire type {wire_type}"),
            Self::LengthOverrun { length, remaining } => write!(
                f,
                "length-delimited field of {length} bytes with only {remaining} remaining"
            ),
        }
    }
}

impl std::error::Error for WireError {}

/// Counts the items in an encoded `ExportTraceServiceRequest` (its spans),
/// `ExportLogsServiceRequest` (its log records) or
/// `ExportMetricsServiceRequest` (its metrics).
///
/// An empty input is a valid empty request (0 items).
///
/// # Errors
///
/// A [`WireError`] if the bytes are not a well-formed protobuf message along
/// the path `resource_*` (1) → `scope_*` (2) → items (2).
///
/// # Examples
///
/// ```
/// use otlpx_bench::wire::count_items;
///
/// // resource_spans { scope_spans { spans {} spans {} } }, or as well
/// // resource_logs { scope_logs { log_records {} log_records {} } },
/// // resource_metrics { scope_metrics { metrics {} metrics {} } }
/// let request = [0x0a, 0x06, 0x12, 0x04, 0x12, 0x00, 0x12, 0x00];
/// assert_eq!(count_items(&request), Ok(2));
/// assert!(count_items(&request[..5]).is_err());
/// ```
pub fn count_items(request: &[u8]) -> Result<u64, WireError> {
    let mut items = 0u64;
    let mut request = Reader::new(request);
    while let Some(field) = request.next_field()? {
        let Some(resource_group) = field.nested(1)? else {
            continue;
        };
        let mut resource_group = Reader::new(resource_group);
        while let Some(field) = resource_group.next_field()? {
            let Some(scope_group) = field.nested(2)? else {
                continue;
            };
            let mut scope_group = Reader::new(scope_group);
            while let Some(field) = scope_group.next_field()? {
                if field.nested(2)?.is_some() {
                    items += 1;
                }
            }
        }
    }
    Ok(items)
}

/// One field of a message: its number and, for a length-delimited field,
/// its contents (other wire types have already been skipped).
struct Field<'a> {
    number: u64,
    wire_type: u8,
    contents: &'a [u8],
}

impl<'a> Field<'a> {
    /// The contents of this field if it is the embedded message `number`,
    /// `None` if it is another field.
    ///
    /// # Errors
    ///
    /// [`WireError::BadWireType`] if it is field `number` but not
    /// length-delimited.
    fn nested(&self, number: u64) -> Result<Option<&'a [u8]>, WireError> {
        if self.number != number {
            return Ok(None);
        }
        if self.wire_type != WIRE_LEN {
            return Err(WireError::BadWireType {
                wire_type: self.wire_type,
            });
        }
        Ok(Some(self.contents))
    }
}

/// A cursor over the fields of one message.
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Self { rest: bytes }
    }

    /// The next field, `None` at the end of the message.
    fn next_field(&mut self) -> Result<Option<Field<'a>>, WireError> {
        if self.rest.is_empty() {
            return Ok(None);
        }
        let key = self.varint()?;
        let number = key >> 3;
        // The low 3 bits of the key: the cast cannot truncate.
        let wire_type = (key & 7) as u8;
        if number == 0 || number > MAX_FIELD_NUMBER {
            return Err(WireError::BadFieldNumber);
        }
        let contents = match wire_type {
            WIRE_VARINT => {
                self.varint()?;
                &[][..]
            }
            WIRE_FIXED64 => self.take(8)?,
            WIRE_FIXED32 => self.take(4)?,
            WIRE_LEN => {
                let length = self.varint()?;
                let remaining = self.rest.len();
                match usize::try_from(length) {
                    Ok(length) if length <= remaining => self.take(length)?,
                    _ => return Err(WireError::LengthOverrun { length, remaining }),
                }
            }
            _ => return Err(WireError::BadWireType { wire_type }),
        };
        Ok(Some(Field {
            number,
            wire_type,
            contents,
        }))
    }

    /// Reads a varint of at most 10 bytes whose value fits 64 bits.
    fn varint(&mut self) -> Result<u64, WireError> {
        let mut value = 0u64;
        for (i, &byte) in self.rest.iter().enumerate().take(10) {
            // The 10th byte holds bit 63 only.
            if i == 9 && byte > 1 {
                return Err(WireError::BadVarint);
            }
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                self.rest = &self.rest[i + 1..];
                return Ok(value);
            }
        }
        if self.rest.len() >= 10 {
            Err(WireError::BadVarint)
        } else {
            Err(WireError::Truncated)
        }
    }

    /// The next `n` bytes.
    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        if n > self.rest.len() {
            return Err(WireError::Truncated);
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{
        AnyValue, InstrumentationScope, KeyValue, any_value,
    };
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
    use prost::Message;

    fn attribute(key: &str, value: i64) -> KeyValue {
        KeyValue {
            key: key.to_owned(),
            value: Some(AnyValue {
                value: Some(any_value::Value::IntValue(value)),
            }),
            ..KeyValue::default()
        }
    }

    /// A request with one resource group per entry of `groups`, each with
    /// one scope group per entry of the inner slice, holding that many spans.
    fn request(groups: &[&[usize]]) -> Vec<u8> {
        let resource_spans = groups
            .iter()
            .map(|scopes| ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![attribute("pid", 4711)],
                    ..Resource::default()
                }),
                scope_spans: scopes
                    .iter()
                    .map(|&n| ScopeSpans {
                        scope: Some(InstrumentationScope {
                            name: "wire-test".to_owned(),
                            ..InstrumentationScope::default()
                        }),
                        spans: (0..n)
                            .map(|i| Span {
                                trace_id: vec![7; 16],
                                span_id: vec![9; 8],
                                name: format!("span {i}"),
                                start_time_unix_nano: 1_700_000_000_000_000_000,
                                end_time_unix_nano: 1_700_000_000_000_000_500,
                                attributes: vec![attribute("i", i as i64)],
                                ..Span::default()
                            })
                            .collect(),
                        schema_url: "https://opentelemetry.io/schemas/1.26.0".to_owned(),
                    })
                    .collect(),
                schema_url: String::new(),
            })
            .collect();
        ExportTraceServiceRequest { resource_spans }.encode_to_vec()
    }

    #[test]
    fn wire_counts_spans_across_groups() {
        assert_eq!(count_items(&request(&[&[3]])), Ok(3));
        assert_eq!(count_items(&request(&[&[2, 5], &[0], &[1, 1, 1]])), Ok(10));
        assert_eq!(count_items(&request(&[&[512]])), Ok(512));
    }

    #[test]
    fn wire_counts_log_records_across_groups() {
        use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
        use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};

        let groups: [&[usize]; 3] = [&[2, 5], &[0], &[1, 1, 1]];
        let resource_logs = groups
            .iter()
            .map(|scopes| ResourceLogs {
                resource: Some(Resource {
                    attributes: vec![attribute("pid", 4711)],
                    ..Resource::default()
                }),
                scope_logs: scopes
                    .iter()
                    .map(|&n| ScopeLogs {
                        scope: Some(InstrumentationScope {
                            name: "wire-test".to_owned(),
                            ..InstrumentationScope::default()
                        }),
                        log_records: (0..n)
                            .map(|i| LogRecord {
                                time_unix_nano: 1_700_000_000_000_000_000,
                                severity_number: 9,
                                body: Some(AnyValue {
                                    value: Some(any_value::Value::StringValue(format!("{i}"))),
                                }),
                                attributes: vec![attribute("i", i as i64)],
                                trace_id: vec![7; 16],
                                span_id: vec![9; 8],
                                ..LogRecord::default()
                            })
                            .collect(),
                        schema_url: String::new(),
                    })
                    .collect(),
                schema_url: String::new(),
            })
            .collect();
        let bytes = ExportLogsServiceRequest { resource_logs }.encode_to_vec();
        assert_eq!(count_items(&bytes), Ok(10));
    }

    #[test]
    fn wire_counts_metrics_not_their_data_points() {
        use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
        use opentelemetry_proto::tonic::metrics::v1::{
            Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, metric::Data,
            number_data_point,
        };

        let groups: [&[usize]; 3] = [&[2, 5], &[0], &[1, 1, 1]];
        let resource_metrics = groups
            .iter()
            .map(|scopes| ResourceMetrics {
                resource: Some(Resource {
                    attributes: vec![attribute("pid", 4711)],
                    ..Resource::default()
                }),
                scope_metrics: scopes
                    .iter()
                    .map(|&n| ScopeMetrics {
                        scope: Some(InstrumentationScope {
                            name: "wire-test".to_owned(),
                            ..InstrumentationScope::default()
                        }),
                        metrics: (0..n)
                            .map(|i| Metric {
                                name: format!("m{i}"),
                                // Three points each: counted once, as a metric.
                                data: Some(Data::Gauge(Gauge {
                                    data_points: (0..3)
                                        .map(|p| NumberDataPoint {
                                            attributes: vec![attribute("p", p)],
                                            time_unix_nano: 1_700_000_000_000_000_000,
                                            value: Some(number_data_point::Value::AsInt(p)),
                                            ..NumberDataPoint::default()
                                        })
                                        .collect(),
                                })),
                                ..Metric::default()
                            })
                            .collect(),
                        schema_url: String::new(),
                    })
                    .collect(),
                schema_url: String::new(),
            })
            .collect();
        let bytes = ExportMetricsServiceRequest { resource_metrics }.encode_to_vec();
        assert_eq!(count_items(&bytes), Ok(10));
    }

    #[test]
    fn wire_empty_request_has_no_spans() {
        assert_eq!(count_items(&[]), Ok(0));
        assert_eq!(count_items(&request(&[])), Ok(0));
        assert_eq!(count_items(&request(&[&[], &[0, 0]])), Ok(0));
    }

    #[test]
    fn wire_skips_unknown_fields_of_every_wire_type() {
        let mut bytes = request(&[&[2]]);
        // Field 9 of each wire type proto3 uses, appended at the top level.
        bytes.extend_from_slice(&[0x48, 0x96, 0x01]); // varint 150
        bytes.extend_from_slice(&[0x49, 1, 2, 3, 4, 5, 6, 7, 8]); // fixed64
        bytes.extend_from_slice(&[0x4a, 0x02, 0xaa, 0xbb]); // length-delimited
        bytes.extend_from_slice(&[0x4d, 1, 2, 3, 4]); // fixed32
        assert_eq!(count_items(&bytes), Ok(2));
    }

    #[test]
    fn wire_every_truncation_is_an_error() {
        let bytes = request(&[&[2, 1], &[3]]);
        for len in 1..bytes.len() {
            // Some prefixes end exactly at a field boundary of the top
            // level: those are valid requests with fewer spans.
            match count_items(&bytes[..len]) {
                Ok(spans) => assert!(spans < 6, "prefix of {len} bytes"),
                Err(e) => assert!(
                    matches!(e, WireError::Truncated | WireError::LengthOverrun { .. }),
                    "prefix of {len} bytes: {e}"
                ),
            }
        }
        // Cut inside the first resource group's length: always an error.
        assert!(count_items(&bytes[..bytes.len() - 1]).is_err());
    }

    #[test]
    fn wire_malformed_inputs_are_errors() {
        // An 11-byte varint key.
        assert_eq!(count_items(&[0xff; 11]), Err(WireError::BadVarint));
        // A 10-byte varint whose last byte overflows 64 bits.
        let mut overflow = vec![0x0a];
        overflow.extend_from_slice(&[0xff; 9]);
        overflow.push(0x02);
        assert_eq!(count_items(&overflow), Err(WireError::BadVarint));
        // A key cut short.
        assert_eq!(count_items(&[0x80]), Err(WireError::Truncated));
        // A length past the end.
        assert_eq!(
            count_items(&[0x0a, 0x05, 0x12, 0x00]),
            Err(WireError::LengthOverrun {
                length: 5,
                remaining: 2
            })
        );
        // A nested length past the end of its parent.
        assert!(matches!(
            count_items(&[0x0a, 0x02, 0x12, 0x03]),
            Err(WireError::LengthOverrun { .. })
        ));
        // A huge length.
        let huge = [
            0x0a, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
        ];
        assert!(matches!(
            count_items(&huge),
            Err(WireError::LengthOverrun { .. })
        ));
        // Field number 0.
        assert_eq!(count_items(&[0x02, 0x00]), Err(WireError::BadFieldNumber));
        // Groups and wire types 6 and 7.
        for key in [0x0b, 0x0c, 0x0e, 0x0f] {
            assert!(matches!(
                count_items(&[key, 0x00]),
                Err(WireError::BadWireType { .. })
            ));
        }
        // resource_spans with a varint instead of a message.
        assert_eq!(
            count_items(&[0x08, 0x01]),
            Err(WireError::BadWireType { wire_type: 0 })
        );
        // A truncated fixed64 and fixed32.
        assert_eq!(count_items(&[0x49, 1, 2, 3]), Err(WireError::Truncated));
        assert_eq!(count_items(&[0x4d, 1]), Err(WireError::Truncated));
    }

    #[test]
    fn wire_never_panics_on_mutated_input() {
        // Every single-byte mutation of a real request, plus pseudo-random
        // noise: any result is fine, a panic is not.
        let bytes = request(&[&[2, 1], &[3]]);
        for i in 0..bytes.len() {
            for value in [0x00, 0x01, 0x02, 0x07, 0x0a, 0x12, 0x7f, 0x80, 0xff] {
                let mut mutated = bytes.clone();
                mutated[i] = value;
                let _ = count_items(&mutated);
            }
        }
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        for _ in 0..2000 {
            let noise: Vec<u8> = (0..64)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    state as u8
                })
                .collect();
            let _ = count_items(&noise);
        }
    }
}
