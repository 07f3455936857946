//! Retry: which failed requests go again, and when, as the OTLP
//! specification says ("Failures", "Throttling", in the OTLP protocol
//! document).
//!
//! * gRPC: `CANCELLED`, `DEADLINE_EXCEEDED`, `ABORTED`, `OUT_OF_RANGE`,
//!   `UNAVAILABLE` and `DATA_LOSS` are retryable; `RESOURCE_EXHAUSTED`
//!   only when the status carries a `google.rpc.RetryInfo`; every other
//!   code is final.
//! * HTTP: 429, 502, 503 and 504 are retryable, nothing else.
//! * No answer at all (connection refused or dropped, no answer within the
//!   attempt's timeout) is retryable: the request may or may not have
//!   arrived, and OTLP delivery is at least once.
//! * The receiver's own delay (`RetryInfo.retry_delay`, `Retry-After` in
//!   seconds or as an HTTP date) is honoured as given; otherwise the wait
//!   is exponential backoff with full jitter: uniform in `[0, min(max,
//!   initial × 2^n)]` before the `n`-th retry (counting from 0), so that
//!   clients that failed together do not come back together.
//!
//! A request is retried until its deadline (the batch export timeout,
//! `OTEL_BSP_EXPORT_TIMEOUT`) would pass before the next attempt; then it
//! is given up. The bytes sent again are the ones first framed and
//! compressed: nothing is re-encoded.

pub use crate::config::{RETRY_INITIAL_BACKOFF_MS_DEFAULT, RETRY_MAX_BACKOFF_MS_DEFAULT};

use crate::config::RetryPolicy;
use std::time::{Duration, SystemTime};

/// What a failure says about sending the request again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Retry {
    /// Final: sending the same bytes again cannot help.
    Never,
    /// Retryable after the client's own backoff.
    Backoff,
    /// Retryable after this long, as the receiver asked.
    After(Duration),
}

impl RetryPolicy {
    /// How long to wait before retry number `n` (from 0) after a failure
    /// saying `retry`, with `random` a uniformly random `u64`; `None`:
    /// do not retry.
    pub(crate) fn delay(&self, retry: Retry, n: u32, random: u64) -> Option<Duration> {
        if !self.enabled {
            return None;
        }
        match retry {
            Retry::Never => None,
            Retry::After(delay) => Some(delay),
            Retry::Backoff => {
                let bound = self
                    .initial
                    .saturating_mul(1u32.checked_shl(n.min(31)).unwrap_or(u32::MAX))
                    .min(self.max);
                // Full jitter: uniform in [0, bound], at nanosecond grain.
                let nanos = u64::try_from(bound.as_nanos()).unwrap_or(u64::MAX);
                Some(Duration::from_nanos(
                    ((u128::from(random) * (u128::from(nanos) + 1)) >> 64) as u64,
                ))
            }
        }
    }
}

/// Whether a gRPC status code is retryable, given whether the status
/// carries a `RetryInfo` (which makes `RESOURCE_EXHAUSTED` retryable).
pub(crate) fn grpc_code_retryable(code: i32, has_retry_info: bool) -> bool {
    match code {
        // CANCELLED, DEADLINE_EXCEEDED, ABORTED, OUT_OF_RANGE, UNAVAILABLE,
        // DATA_LOSS
        1 | 4 | 10 | 11 | 14 | 15 => true,
        // RESOURCE_EXHAUSTED: "only if the server can recover", which it
        // says by sending RetryInfo.
        8 => has_retry_info,
        _ => false,
    }
}

/// Whether an HTTP status is retryable.
pub(crate) fn http_status_retryable(status: u16) -> bool {
    matches!(status, 429 | 502 | 503 | 504)
}

/// The decision for a failure the specification lists as `retryable` (or
/// not), with the receiver's delay `hint` if it sent one. A zero delay
/// falls back to backoff: taken as given it would retry at once, again and
/// again.
pub(crate) fn decide(retryable: bool, hint: Option<Duration>) -> Retry {
    match hint {
        _ if !retryable => Retry::Never,
        Some(delay) if !delay.is_zero() => Retry::After(delay),
        _ => Retry::Backoff,
    }
}

/// `google.rpc.Status`, with the details this module reads.
#[derive(Clone, PartialEq, prost::Message)]
struct StatusWithDetails {
    #[prost(message, repeated, tag = "3")]
    details: Vec<Any>,
}

/// `google.protobuf.Any`.
#[derive(Clone, PartialEq, prost::Message)]
struct Any {
    #[prost(string, tag = "1")]
    type_url: String,
    #[prost(bytes = "vec", tag = "2")]
    value: Vec<u8>,
}

/// `google.rpc.RetryInfo`.
#[derive(Clone, PartialEq, prost::Message)]
struct RetryInfo {
    #[prost(message, optional, tag = "1")]
    retry_delay: Option<ProtoDuration>,
}

/// `google.protobuf.Duration`.
#[derive(Clone, PartialEq, prost::Message)]
struct ProtoDuration {
    #[prost(int64, tag = "1")]
    seconds: i64,
    #[prost(int32, tag = "2")]
    nanos: i32,
}

const RETRY_INFO_TYPE: &str = "type.googleapis.com/google.rpc.RetryInfo";

/// The `RetryInfo` delay in a `grpc-status-details-bin` value (base64 of
/// a `google.rpc.Status`, padded or not), if there is one: `Some(delay)`
/// for a RetryInfo (zero when it has no delay or a negative one).
/// Anything undecodable is treated as no RetryInfo.
pub(crate) fn grpc_retry_info(details_bin: &[u8]) -> Option<Duration> {
    use base64::Engine;
    let engine = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
    );
    let raw = engine.decode(details_bin.trim_ascii()).ok()?;
    let status = <StatusWithDetails as prost::Message>::decode(&raw[..]).ok()?;
    let any = status
        .details
        .iter()
        .find(|a| a.type_url == RETRY_INFO_TYPE)?;
    let info = <RetryInfo as prost::Message>::decode(&any.value[..]).ok()?;
    Some(info.retry_delay.map_or(Duration::ZERO, |d| {
        if d.seconds < 0 || d.nanos < 0 {
            Duration::ZERO
        } else {
            Duration::new(d.seconds as u64, d.nanos.min(999_999_999) as u32)
        }
    }))
}

/// The delay a `Retry-After` value asks for: a whole number of seconds,
/// or an HTTP date (a date already past means now). `None` if it is
/// neither.
pub(crate) fn http_retry_after(value: &[u8], now: SystemTime) -> Option<Duration> {
    let text = std::str::from_utf8(value).ok()?.trim();
    if let Ok(seconds) = text.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let when = httpdate::parse_http_date(text).ok()?;
    Some(when.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spec_lists_decide_what_is_retried() {
        let retryable: Vec<i32> = (0..=16)
            .filter(|&c| grpc_code_retryable(c, false))
            .collect();
        assert_eq!(retryable, [1, 4, 10, 11, 14, 15]);
        assert!(grpc_code_retryable(8, true));
        assert!(
            !grpc_code_retryable(3, true),
            "RetryInfo makes only 8 retryable"
        );
        let retryable: Vec<u16> = (100..600).filter(|&s| http_status_retryable(s)).collect();
        assert_eq!(retryable, [429, 502, 503, 504]);
        let second = Duration::from_secs(1);
        assert_eq!(decide(true, Some(second)), Retry::After(second));
        assert_eq!(decide(true, Some(Duration::ZERO)), Retry::Backoff);
        assert_eq!(decide(true, None), Retry::Backoff);
        assert_eq!(decide(false, Some(second)), Retry::Never);
    }

    #[test]
    fn backoff_is_full_jitter_under_a_doubling_capped_bound() {
        let p = RetryPolicy {
            enabled: true,
            initial: Duration::from_millis(100),
            max: Duration::from_millis(1000),
        };
        let bound = |n| p.delay(Retry::Backoff, n, u64::MAX).unwrap();
        assert_eq!(bound(0), Duration::from_millis(100));
        assert_eq!(bound(1), Duration::from_millis(200));
        assert_eq!(bound(3), Duration::from_millis(800));
        assert_eq!(bound(4), Duration::from_millis(1000));
        assert_eq!(bound(40), Duration::from_millis(1000));
        assert_eq!(p.delay(Retry::Backoff, 2, 0), Some(Duration::ZERO));
        let half = p.delay(Retry::Backoff, 2, u64::MAX / 2).unwrap();
        assert!(half.abs_diff(Duration::from_millis(200)) < Duration::from_micros(1));
        // A receiver's delay is taken as given, even above the cap.
        let asked = Duration::from_secs(7);
        assert_eq!(p.delay(Retry::After(asked), 0, 0), Some(asked));
        assert_eq!(p.delay(Retry::Never, 0, 0), None);
        let off = RetryPolicy {
            enabled: false,
            ..p
        };
        assert_eq!(off.delay(Retry::After(asked), 0, 0), None);
    }

    fn details_with(delay: Option<ProtoDuration>, type_url: &str) -> Vec<u8> {
        use base64::Engine;
        let info = prost::Message::encode_to_vec(&RetryInfo { retry_delay: delay });
        let status = prost::Message::encode_to_vec(&StatusWithDetails {
            details: vec![
                Any {
                    type_url: "type.googleapis.com/google.rpc.DebugInfo".into(),
                    value: vec![1, 2, 3],
                },
                Any {
                    type_url: type_url.into(),
                    value: info,
                },
            ],
        });
        base64::engine::general_purpose::STANDARD_NO_PAD
            .encode(status)
            .into_bytes()
    }

    #[test]
    fn retry_info_is_found_among_the_details() {
        let d = |seconds, nanos| Some(ProtoDuration { seconds, nanos });
        assert_eq!(
            grpc_retry_info(&details_with(d(1, 500_000_000), RETRY_INFO_TYPE)),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(
            grpc_retry_info(&details_with(None, RETRY_INFO_TYPE)),
            Some(Duration::ZERO)
        );
        assert_eq!(
            grpc_retry_info(&details_with(d(-1, 0), RETRY_INFO_TYPE)),
            Some(Duration::ZERO)
        );
        assert_eq!(grpc_retry_info(&details_with(d(1, 0), "other")), None);
        // Padded base64 too; garbage is no RetryInfo.
        let mut padded = details_with(d(2, 0), RETRY_INFO_TYPE);
        while !padded.len().is_multiple_of(4) {
            padded.push(b'=');
        }
        assert_eq!(grpc_retry_info(&padded), Some(Duration::from_secs(2)));
        assert_eq!(grpc_retry_info(b"%%%"), None);
        assert_eq!(grpc_retry_info(b"AAAA"), None);
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_784_000_000);
        assert_eq!(http_retry_after(b" 3 ", now), Some(Duration::from_secs(3)));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(90));
        assert_eq!(
            http_retry_after(later.as_bytes(), now),
            Some(Duration::from_secs(90))
        );
        let past = httpdate::fmt_http_date(now - Duration::from_secs(90));
        assert_eq!(http_retry_after(past.as_bytes(), now), Some(Duration::ZERO));
        assert_eq!(http_retry_after(b"-1", now), None);
        assert_eq!(http_retry_after(b"soon", now), None);
        assert_eq!(http_retry_after(&[0xff], now), None);
    }
}
