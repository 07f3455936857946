"""otlpx under the OpenTelemetry Python SDK's logs: a
``LogRecordProcessor`` (the fast path) and a ``LogRecordExporter`` (for
pipelines that keep the SDK's ``BatchLogRecordProcessor``).

::

    from opentelemetry.sdk._logs import LoggerProvider
    provider = LoggerProvider()
    provider.add_log_record_processor(otlpx.LogRecordProcessor(endpoint="http://localhost:4317"))

``on_emit`` hands each record to ``otlpx_logger_emit`` in one C call, in
the emitting thread; batching, encoding and export run on the engine's
native threads. Every field of the SDK's record is carried: body (maps and
lists natively), severity number and text, attributes, timestamp and
observed timestamp, trace id, span id and flags, event name; the scope is
the record's instrumentation scope. The resource is the engine's, as for
:class:`otlpx.SpanProcessor`.

The SDK's logs API lives in ``opentelemetry.sdk._logs`` (an underscore:
not yet stable); this module is the only one that imports it.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Optional, Sequence

from opentelemetry.sdk._logs import LogRecordProcessor as _SdkLogRecordProcessor

try:
    from opentelemetry.sdk._logs.export import LogRecordExporter as _SdkLogRecordExporter
    from opentelemetry.sdk._logs.export import LogRecordExportResult
except ImportError:  # pragma: no cover - SDK releases before the rename
    from opentelemetry.sdk._logs.export import LogExporter as _SdkLogRecordExporter  # type: ignore[no-redef]
    from opentelemetry.sdk._logs.export import LogExportResult as LogRecordExportResult  # type: ignore[no-redef]

from . import _logs
from ._engine import Engine
from ._ffi import OtlpxError, Status

__all__ = ["LogRecordProcessor", "LogRecordExporter", "LogRecorder"]

_log = logging.getLogger("otlpx")
_SCOPE_CACHE_MAX = 1024


class LogRecorder:
    """Converts SDK log records (``ReadWriteLogRecord`` or
    ``ReadableLogRecord``) into ``otlpx_log_record``s and emits them; the
    shared engine of :class:`LogRecordProcessor` and
    :class:`LogRecordExporter`."""

    def __init__(self, engine: Optional[Engine] = None, **engine_kwargs: Any) -> None:
        if engine is not None and engine_kwargs:
            raise TypeError("pass either an engine or engine arguments, not both")
        self._owns_engine = engine is None
        self.engine = engine if engine is not None else Engine(**engine_kwargs)
        # id(scope) -> (scope, logger pointer): the scope is kept so that
        # its id cannot be reused by another while cached.
        self._loggers: dict = {}
        self._lock = threading.Lock()
        self._warned: set = set()

    def _logger(self, scope: Any) -> Any:
        hit = self._loggers.get(id(scope))
        if hit is not None:
            return hit[1]
        with self._lock:
            name = getattr(scope, "name", "") or ""
            version = getattr(scope, "version", "") or ""
            vp = self.engine.logger(name, version)._vp
            if len(self._loggers) >= _SCOPE_CACHE_MAX:
                self._loggers.clear()
            self._loggers[id(scope)] = (scope, vp)
            return vp

    def record(self, log_record: Any) -> int:
        """Emits one SDK log record; returns the ``otlpx_status`` (0: ok).
        Never raises for what the record holds."""
        try:
            lr = log_record.log_record
            trace_id = lr.trace_id or 0
            span_id = lr.span_id or 0
            has = 1 if trace_id and span_id else 0
            return _logs.emit_record(
                self._logger(log_record.instrumentation_scope),
                lr.severity_number,
                lr.body,
                lr.attributes,
                lr.severity_text,
                getattr(lr, "event_name", None),
                lr.timestamp,
                lr.observed_timestamp,
                trace_id.to_bytes(16, "big") if has else _logs._ZERO16,
                span_id.to_bytes(8, "big") if has else _logs._ZERO8,
                int(lr.trace_flags or 0) & 0xFF if has else 0,
                has,
            )
        except OtlpxError as e:
            return int(e.status)
        except Exception as e:  # a record no SDK would build: say so once
            key = type(e).__name__
            if key not in self._warned:
                self._warned.add(key)
                _log.warning("otlpx: log record not emitted: %s: %s", key, e)
            return int(Status.INVALID_ARGUMENT)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        try:
            self.engine.flush(timeout_millis / 1000.0)
            return True
        except OtlpxError as e:
            # An engine without an exporter has nothing to flush.
            return e.status == Status.NOT_EXPORTING

    def shutdown(self) -> None:
        if self.engine.closed:
            return
        try:
            if self._owns_engine:
                self.engine.close()
            else:
                self.engine.shutdown()
        except OtlpxError as e:
            _log.warning("otlpx: shutdown: %s", e)


class LogRecordProcessor(_SdkLogRecordProcessor):
    """A log record processor that emits each record into an otlpx engine:
    ``provider.add_log_record_processor(otlpx.LogRecordProcessor(endpoint=...))``.

    Give it an :class:`otlpx.Engine`, or the arguments to build one.
    ``on_emit`` never blocks and never raises: a record the engine cannot
    take (full ring, shut down) is dropped and counted in
    ``engine.stats("logs")``.
    """

    def __init__(self, engine: Optional[Engine] = None, **engine_kwargs: Any) -> None:
        self.recorder = LogRecorder(engine, **engine_kwargs)
        self.engine = self.recorder.engine

    def on_emit(self, log_record: Any) -> None:
        self.recorder.record(log_record)

    # Older SDK releases call `emit`, with a LogData holding the same two
    # fields (log_record, instrumentation_scope).
    emit = on_emit

    def shutdown(self) -> None:
        """Shuts the engine down (flushing first); frees it if this
        processor built it."""
        self.recorder.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Sends everything emitted so far; False on timeout, or when records
        were dropped on export."""
        return self.recorder.force_flush(timeout_millis)


class LogRecordExporter(_SdkLogRecordExporter):
    """A log record exporter over an otlpx engine, for pipelines that keep
    the SDK's ``BatchLogRecordProcessor``; :class:`LogRecordProcessor` is
    the fast path (no SDK queue, no worker thread holding the GIL)."""

    def __init__(self, engine: Optional[Engine] = None, **engine_kwargs: Any) -> None:
        self.recorder = LogRecorder(engine, **engine_kwargs)
        self.engine = self.recorder.engine

    def export(self, batch: Sequence[Any]) -> LogRecordExportResult:
        """Emits every record; FAILURE if any was not taken (the engine's
        stats say why)."""
        record = self.recorder.record
        ok = True
        for r in batch:
            if record(r):
                ok = False
        return LogRecordExportResult.SUCCESS if ok else LogRecordExportResult.FAILURE

    def shutdown(self) -> None:
        self.recorder.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.recorder.force_flush(timeout_millis)
