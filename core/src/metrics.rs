//! Metrics: the one door by which a metric enters the pipeline. The metrics
//! API (instruments, aggregation, collection) is not built yet; when it is,
//! a collection encodes each OTLP `Metric` message once and writes it here,
//! into the metrics' rings, as spans and log records are written into
//! theirs. From the rings on, metrics travel the same batching, framing,
//! compression, retry, failover, spool and accounting as the other
//! signals: `ExportMetricsServiceRequest` has the shape and field numbers
//! of the other requests, so the one framer frames it.
//!
//! Invariant: a record is a complete `ScopeMetrics.metrics` field (key,
//! length, then the `Metric` message with its data points), of kind
//! [`RecordKind::Metric`], tagged with its scope's catalog tag, so the
//! framer copies it verbatim under that scope.

use crate::proto::{Enc, field_len};
use crate::record::Recorder;
use crate::ring::{RecordKind, Signal, WriteError};

/// The key of `ScopeMetrics.metrics`: field 2, length-delimited (the same
/// as `ScopeSpans.spans` and `ScopeLogs.log_records`).
const SCOPE_METRICS_METRICS: u8 = (2 << 3) | 2;

/// Writes `metric`, an encoded OTLP `Metric` message of the scope whose
/// catalog tag is `scope`, into this CPU's metrics ring. Never blocks or
/// allocates; a full ring or a metric larger than half a ring drops it,
/// counted in the metrics' stats. With metrics off (see `Recorder::off`)
/// it does nothing.
///
/// # Errors
///
/// [`WriteError::Full`] or [`WriteError::TooLarge`]: the metric was
/// dropped (and counted).
pub(crate) fn write_metric(
    recorder: &Recorder,
    scope: u32,
    metric: &[u8],
) -> Result<(), WriteError> {
    if recorder.is_off(Signal::Metrics) {
        return Ok(());
    }
    let len = metric.len();
    recorder.rings(Signal::Metrics).local().try_write(
        RecordKind::Metric,
        scope,
        field_len(len),
        |slot| {
            let mut e = Enc::new(slot);
            e.len_prefix(SCOPE_METRICS_METRICS, len);
            e.bytes(metric);
            debug_assert!(e.is_full(), "metric length computed wrong");
        },
    )
}
