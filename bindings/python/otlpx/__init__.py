"""otlpx for Python: the otlpx exporter engine (a native library, through
ctypes) under the OpenTelemetry Python SDK, or on its own.

With the SDK, one line::

    provider.add_span_processor(otlpx.SpanProcessor(endpoint="http://localhost:4317"))

Without it: ``otlpx.Engine(...).tracer("lib").start_span("work")``.

Logs: ``otlpx.Engine(...).logger("lib").emit(otlpx.Severity.INFO, "hello")``;
Python's ``logging`` through ``otlpx.logging.OtlpxHandler(engine)``; the
SDK's logs through ``otlpx.LogRecordProcessor`` / ``otlpx.LogRecordExporter``.

The library is found through ``OTLPX_LIBRARY`` (a path), else the
checkout's ``target/release`` then ``target/debug``, else
``ctypes.util.find_library("otlpx_ffi")``.
"""

from ._engine import Engine, Span, SpanContext, SpanKind, Stats, StatusCode, Tracer
from ._ffi import OtlpxError, Status, library_path, version
from ._logs import Logger, Severity, Signal

__all__ = [
    "Engine",
    "Tracer",
    "Span",
    "SpanContext",
    "SpanKind",
    "StatusCode",
    "Stats",
    "Logger",
    "Severity",
    "Signal",
    "OtlpxError",
    "Status",
    "SpanProcessor",
    "SpanExporter",
    "LogRecordProcessor",
    "LogRecordExporter",
    "library_path",
    "version",
]

__version__ = "0.1.0"


def __getattr__(name: str):
    # The SDK integrations import opentelemetry-sdk: only when asked for.
    if name in ("SpanProcessor", "SpanExporter"):
        from . import sdk

        return getattr(sdk, name)
    if name in ("LogRecordProcessor", "LogRecordExporter"):
        from . import sdk_logs

        return getattr(sdk_logs, name)
    if name == "logging":
        import importlib

        return importlib.import_module(".logging", __name__)
    raise AttributeError(f"module 'otlpx' has no attribute {name!r}")
