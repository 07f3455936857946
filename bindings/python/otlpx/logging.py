"""otlpx under Python's ``logging``: a handler that turns each
``logging.LogRecord`` into one OpenTelemetry log record, emitted into an
otlpx engine in one C call.

::

    import logging, otlpx, otlpx.logging
    engine = otlpx.Engine(endpoint="http://localhost:4317", service_name="shop")
    logging.getLogger().addHandler(otlpx.logging.OtlpxHandler(engine))

What a record becomes:

* the instrumentation scope: the ``logging`` logger's name (as the
  OpenTelemetry SDK's handler and the Logs Bridge specification have it);
* severity: DEBUG 5, INFO 9, WARNING 13, ERROR 17, CRITICAL 21 (levels in
  between as the SDK maps them: 25 is INFO4), and the level's name as the
  severity text;
* body: the formatted message (the handler's formatter, if it has one); a
  dict or list logged with no arguments stays a structured body;
* attributes: the fields given with ``extra=``, ``code.file.path``,
  ``code.line.number``, ``code.function.name``, ``thread.id``,
  ``thread.name``, and for ``exc_info`` ``exception.type``,
  ``exception.message`` and ``exception.stacktrace`` (``stack_info``:
  ``code.stacktrace``);
* time: the record's creation; trace context: the OpenTelemetry span
  current when it was logged, if the ``opentelemetry-api`` is installed.

``emit`` never raises (``logging``'s ``handleError`` reports what went
wrong); records the engine drops (a full ring) are counted in
``engine.stats("logs")``.
"""

from __future__ import annotations

import logging
import traceback
from typing import Any, Optional

from . import _logs
from ._engine import Engine
from ._ffi import OtlpxError, Status

__all__ = ["OtlpxHandler", "severity_of"]

try:  # correlation with the current OpenTelemetry span, when there is one
    from opentelemetry.trace import get_current_span as _current_span
except ImportError:  # pragma: no cover - the API is optional
    _current_span = None

# The attributes every logging.LogRecord has: what is not among them came
# from `extra=` (or a filter).
_STANDARD = frozenset(
    vars(logging.LogRecord("n", logging.INFO, "p", 1, "m", None, None)).keys()
    | {"message", "asctime", "taskName", "getMessage"}
)


def severity_of(levelno: int) -> int:
    """The OpenTelemetry severity number of a ``logging`` level: DEBUG (10)
    is 5, INFO 9, WARNING 13, ERROR 17, CRITICAL 21; the levels up to 3
    above each take its next numbers (INFO + 5 is INFO4, 12); below DEBUG,
    TRACE (1); NOTSET (0) is unspecified; past CRITICAL + 3, FATAL4."""
    if levelno <= 0:
        return 0
    if levelno < 10:
        return 1
    if levelno > 53:
        return 24
    return 4 * (levelno // 10) + 1 + min(levelno % 10, 3)


class OtlpxHandler(logging.Handler):
    """A ``logging.Handler`` that emits each record into an otlpx engine.

    Give it an :class:`otlpx.Engine`, or the arguments to build one (it
    then closes the engine when it is closed). ``flush()`` flushes the
    engine (at most ``flush_timeout_s``)."""

    def __init__(
        self,
        engine: Optional[Engine] = None,
        level: int = logging.NOTSET,
        *,
        flush_timeout_s: float = 5.0,
        **engine_kwargs: Any,
    ) -> None:
        super().__init__(level)
        if engine is not None and engine_kwargs:
            raise TypeError("pass either an engine or engine arguments, not both")
        self._owns_engine = engine is None
        self.engine = engine if engine is not None else Engine(**engine_kwargs)
        self.flush_timeout_s = flush_timeout_s

    def _logger(self, name: str) -> Any:
        # The engine caches loggers by name: one C lookup per new name.
        return self.engine.logger(name or "root")

    def _body(self, record: logging.LogRecord) -> Any:
        if self.formatter is not None:
            return self.format(record)
        if not record.args and isinstance(record.msg, (dict, list, tuple)):
            return record.msg
        return record.getMessage()

    @staticmethod
    def _attributes(record: logging.LogRecord) -> dict:
        attrs = {k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")}
        attrs["code.file.path"] = record.pathname
        attrs["code.line.number"] = record.lineno
        attrs["code.function.name"] = record.funcName
        attrs["thread.id"] = record.thread
        attrs["thread.name"] = record.threadName
        if record.exc_info and record.exc_info[0] is not None:
            exc_type, exc, tb = record.exc_info
            attrs["exception.type"] = exc_type.__qualname__
            attrs["exception.message"] = str(exc)
            attrs["exception.stacktrace"] = "".join(traceback.format_exception(exc_type, exc, tb))
        if record.stack_info:
            attrs["code.stacktrace"] = record.stack_info
        return attrs

    def emit(self, record: logging.LogRecord) -> None:
        try:
            logger = self._logger(record.name)
            severity = severity_of(record.levelno)
            context = _current_span().get_span_context() if _current_span is not None else None
            tid, sid, flags, has = _logs._ids(context)
            status = _logs.emit_record(
                logger._vp,
                severity,
                self._body(record),
                self._attributes(record),
                record.levelname,
                None,
                int(record.created * 1e9),
                None,
                tid,
                sid,
                flags,
                has,
            )
            if status and status not in (Status.RING_FULL, Status.TOO_LARGE, Status.SHUT_DOWN):
                raise OtlpxError(status, f"otlpx_logger_emit: status {status}")
        except RecursionError:  # as logging's own handlers do
            raise
        except Exception:
            self.handleError(record)

    def flush(self) -> None:
        """Sends what was emitted so far (at most ``flush_timeout_s``); an
        engine that does not export has nothing to send."""
        if self.engine.closed:
            return
        try:
            self.engine.flush(self.flush_timeout_s)
        except OtlpxError:
            pass

    def close(self) -> None:
        try:
            if self._owns_engine:
                self.engine.close()
        finally:
            super().close()
