"""Loggers over the C ABI: ``otlpx_logger_emit`` of one whole
``otlpx_log_record`` per call, and Python values as log bodies.

A body is any value: ``str``, ``bool``, ``int`` (64-bit; larger ones go as
their decimal text), ``float``, ``bytes``, a list or tuple (an array of
values of any kinds) or a mapping (a map, keys as text), nested up to
``OTLPX_MAX_BODY_DEPTH`` (16) levels; anything else goes as its ``str()``.
``None`` is no body at the top, and is left out of arrays and maps (the
C ABI has no empty value). Attribute values keep the attribute rules of
:mod:`otlpx._attrs` (no maps or mixed arrays: those go as JSON text).
"""

from __future__ import annotations

import ctypes
import enum
import struct
from typing import Any, Mapping, Optional

from . import _attrs, _ffi
from ._ffi import ANY_ITEM, BYTES_OFFSET, ENTRY_ITEM, LOG_RECORD, OtlpxError, Status, address_of, error

__all__ = ["Logger", "Severity", "Signal"]


class Signal(enum.IntEnum):
    """``otlpx_signal``: which signal's counters or items a call is about."""

    TRACES = 1
    LOGS = 2


class Severity(enum.IntEnum):
    """A log record's severity, an OTLP ``SeverityNumber``: the first of
    each of the six ranges (any number from 0 to 24 is valid; the SDK's
    ``opentelemetry._logs.SeverityNumber`` is accepted too)."""

    UNSPECIFIED = 0
    TRACE = 1
    DEBUG = 5
    INFO = 9
    WARN = 13
    ERROR = 17
    FATAL = 21


def signal_number(signal: Any) -> int:
    if isinstance(signal, int):
        return int(signal)
    name = signal.upper() if isinstance(signal, str) else getattr(signal, "name", None)
    if name in Signal.__members__:
        return Signal[name]
    raise OtlpxError(Status.INVALID_ARGUMENT, f"unknown signal {signal!r} (traces, logs)")


def severity_number(severity: Any) -> int:
    """A severity's number: an int, a :class:`Severity`, the SDK's
    ``SeverityNumber`` (its ``.value``), or None (unspecified)."""
    if severity is None:
        return 0
    n = int(getattr(severity, "value", severity))
    if not 0 <= n <= 0xFFFFFFFF:
        raise OtlpxError(Status.INVALID_ARGUMENT, f"severity {severity!r} is not 0..24")
    return n


# otlpx_value_type, and the fields of "no value".
STRING, BOOL, INT, DOUBLE, BYTES, ARRAY, MAP = 1, 2, 3, 4, 5, 11, 12
_NONE = (0, 0, 0, 0, 0.0, 0, 0)
_INT_MIN, _INT_MAX = -(2**63), 2**63 - 1

_formats: dict = {}


def _items_format(item: str, n: int) -> struct.Struct:
    f = _formats.get((item, n))
    if f is None:
        f = struct.Struct("@" + item * n)
        if n <= 256:
            _formats[(item, n)] = f
    return f


class _Body:
    """Converts one body: the ``bytes`` objects its C structs point into go
    to ``keep``; ``left`` counts down the values it may still hold."""

    __slots__ = ("keep", "left")

    def __init__(self, keep) -> None:
        self.keep = keep
        self.left = _ffi.MAX_BODY_VALUES - 1

    def _text(self, s: str) -> tuple:
        b = _attrs.encode_text(s)
        self.keep(b)
        return (STRING, address_of(b) + BYTES_OFFSET, len(b), 0, 0.0, 0, 0)

    def _count(self, n: int, depth: int) -> None:
        if n and depth >= _ffi.MAX_BODY_DEPTH:
            raise OtlpxError(
                Status.INVALID_ARGUMENT,
                f"otlpx_logger_emit: a log body nests deeper than {_ffi.MAX_BODY_DEPTH} levels",
            )
        self.left -= n
        if self.left < 0:
            raise OtlpxError(
                Status.INVALID_ARGUMENT,
                f"otlpx_logger_emit: a log body holds more than {_ffi.MAX_BODY_VALUES} values",
            )

    def fields(self, v: Any, depth: int) -> Optional[tuple]:
        """The 7 fields of ``v`` as an ``otlpx_any_value`` at level
        ``depth`` (the body's is 1); None for ``None``."""
        t = type(v)
        if t is str:
            return self._text(v)
        if t is bool:
            return (BOOL, 0, 0, 1 if v else 0, 0.0, 0, 0)
        if t is int:
            if _INT_MIN <= v <= _INT_MAX:
                return (INT, 0, 0, v, 0.0, 0, 0)
            return self._text(str(v))
        if t is float:
            return (DOUBLE, 0, 0, 0, v, 0, 0)
        if v is None:
            return None
        if t is dict or isinstance(v, Mapping):
            self._count(len(v), depth)
            flat: list = []
            n = 0
            for k, x in v.items():
                f = self.fields(x, depth + 1)
                if f is None:
                    continue
                kb = _attrs.encode_text(k)
                self.keep(kb)
                flat.extend((address_of(kb) + BYTES_OFFSET, len(kb)))
                flat.extend(f)
                n += 1
            return self._packed(MAP, ENTRY_ITEM, flat, n)
        if t is list or t is tuple or isinstance(v, (list, tuple)):
            self._count(len(v), depth)
            flat = []
            n = 0
            for x in v:
                f = self.fields(x, depth + 1)
                if f is None:
                    continue
                flat.extend(f)
                n += 1
            return self._packed(ARRAY, ANY_ITEM, flat, n)
        if isinstance(v, (bytes, bytearray, memoryview)):
            b = bytes(v)
            self.keep(b)
            return (BYTES, address_of(b) + BYTES_OFFSET, len(b), 0, 0.0, 0, 0)
        if isinstance(v, bool):
            return (BOOL, 0, 0, 1 if v else 0, 0.0, 0, 0)
        if isinstance(v, int):
            return self.fields(int(v), depth)
        if isinstance(v, float):
            return (DOUBLE, 0, 0, 0, float(v), 0, 0)
        return self._text(str(v))

    def _packed(self, t: int, item: str, flat: list, n: int) -> tuple:
        if not n:
            return (t, 0, 0, 0, 0.0, 0, 0)
        b = _items_format(item, n).pack(*flat)
        self.keep(b)
        return (t, 0, 0, 0, 0.0, address_of(b) + BYTES_OFFSET, n)


def body_fields(body: Any, keep) -> tuple:
    """The 7 ``otlpx_any_value`` fields of a log body (type 0: none)."""
    if body is None:
        return _NONE
    f = _Body(keep).fields(body, 1)
    return _NONE if f is None else f


def _attribute_array(attributes: Any, keep) -> tuple:
    """(address, count) of an ``otlpx_attribute[]`` over a mapping, a
    ``BoundedAttributes`` or (key, value) pairs; ``None`` values are left
    out (the C ABI has no empty value)."""
    if not attributes:
        return 0, 0
    items, _ = _attrs.items_of(attributes) if hasattr(attributes, "items") else (attributes, 0)
    out: list = []
    n, _ = _attrs.collect(items, out, keep)
    if not n:
        return 0, 0
    fmt = _attrs.attrs_format(n)
    try:
        b = fmt.pack(*out)
    except struct.error:
        _attrs.fix_ints(out, keep)
        b = fmt.pack(*out)
    keep(b)
    return address_of(b) + BYTES_OFFSET, n


_ZERO16 = bytes(16)
_ZERO8 = bytes(8)


def _ids(context: Any) -> tuple:
    """(trace id bytes, span id bytes, flags, has) of a span context (ours,
    or the OpenTelemetry API's); an invalid or absent one is none."""
    if context is None:
        return _ZERO16, _ZERO8, 0, 0
    trace_id = int(getattr(context, "trace_id", 0) or 0)
    span_id = int(getattr(context, "span_id", 0) or 0)
    if not trace_id or not span_id:
        return _ZERO16, _ZERO8, 0, 0
    flags = int(getattr(context, "trace_flags", 0) or 0) & 0xFF
    return trace_id.to_bytes(16, "big"), span_id.to_bytes(8, "big"), flags, 1


def emit_record(
    vp: Any,
    severity: Any,
    body: Any,
    attributes: Any,
    severity_text: Optional[str],
    event_name: Optional[str],
    timestamp_ns: Optional[int],
    observed_timestamp_ns: Optional[int],
    trace_id: bytes,
    span_id: bytes,
    trace_flags: int,
    has_context: int,
) -> int:
    """Builds an ``otlpx_log_record`` and emits it through the logger
    ``vp`` (a ``c_void_p``); returns the status. Raises
    :class:`OtlpxError` for a body past the depth or size bound."""
    keep: list = []
    ka = keep.append
    bf = body_fields(body, ka)
    ap, an = _attribute_array(attributes, ka)
    tb = _attrs.encode_text(severity_text) if severity_text else b""
    eb = _attrs.encode_text(event_name) if event_name else b""
    rec = LOG_RECORD.pack(
        int(timestamp_ns or 0),
        int(observed_timestamp_ns or 0),
        severity_number(severity),
        address_of(tb) + BYTES_OFFSET,
        len(tb),
        *bf,
        ap,
        an,
        address_of(eb) + BYTES_OFFSET,
        len(eb),
        trace_id,
        span_id,
        trace_flags,
        has_context,
    )
    # `keep`, `tb`, `eb` and `rec` hold every byte the record points to.
    status = _ffi.otlpx_logger_emit(vp, address_of(rec) + BYTES_OFFSET)
    del keep
    return status


class Logger:
    """An instrumentation scope of an engine that emits log records; from
    :meth:`otlpx.Engine.logger`. Thread-safe; owned by its engine (calls
    after the engine is closed raise ``INVALID_HANDLE``)."""

    __slots__ = ("engine", "ptr", "name", "version", "_vp")

    def __init__(self, engine: Any, ptr: int, name: str, version: str) -> None:
        self.engine = engine  # keeps the engine (which owns the logger) alive
        self.ptr = ptr
        self.name = name
        self.version = version
        self._vp = ctypes.c_void_p(ptr)

    def enabled(self, severity: Any = Severity.UNSPECIFIED) -> bool:
        """Whether a record of ``severity`` would be emitted (False once the
        engine is shut down or closed)."""
        n = severity_number(severity)
        return bool(_ffi.otlpx_logger_enabled(self._vp, n))

    def emit(
        self,
        severity: Any = Severity.UNSPECIFIED,
        body: Any = None,
        attributes: Optional[Mapping[str, Any]] = None,
        *,
        severity_text: Optional[str] = None,
        event_name: Optional[str] = None,
        timestamp_ns: Optional[int] = None,
        observed_timestamp_ns: Optional[int] = None,
        context: Any = None,
    ) -> bool:
        """Emits one log record. ``severity``: 0 to 24 (a :class:`Severity`,
        a number, or the SDK's ``SeverityNumber``); ``severity_text``: as
        the source wrote it (default: the severity's name); ``body``: any
        value (see the module docs); ``timestamp_ns`` and
        ``observed_timestamp_ns``: nanoseconds since the epoch (default:
        now); ``context``: the span context to correlate with (ours or the
        OpenTelemetry API's) -- there is no implicit current span here.

        Returns True when recorded (or filtered by severity), False when
        dropped (full ring, too large, engine shut down: counted in
        ``engine.stats("logs")``). Raises :class:`OtlpxError` for what the
        library refuses (a severity past 24, a body nested too deep or too
        large), counted in ``calls_refused``."""
        tid, sid, flags, has = _ids(context)
        status = emit_record(
            self._vp,
            severity,
            body,
            attributes,
            severity_text,
            event_name,
            timestamp_ns,
            observed_timestamp_ns,
            tid,
            sid,
            flags,
            has,
        )
        if status in (Status.RING_FULL, Status.TOO_LARGE, Status.SHUT_DOWN):
            return False
        if status:
            raise error(status, "otlpx_logger_emit")
        return True

    def __repr__(self) -> str:
        return f"<otlpx.Logger {self.name!r} {self.version!r}>"
