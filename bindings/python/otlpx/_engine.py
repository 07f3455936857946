"""Engines, tracers and handle-based spans over the C ABI; loggers are in
:mod:`otlpx._logs`."""

from __future__ import annotations

import ctypes
import dataclasses
import enum
import threading
import traceback
from ctypes import byref, c_size_t, c_uint64, c_void_p
from typing import Any, Iterable, Mapping, NamedTuple, Optional, Union

from . import _attrs, _ffi
from ._ffi import OtlpxError, Status, check, error
from ._logs import Logger, signal_number

__all__ = [
    "Engine",
    "Tracer",
    "Span",
    "SpanContext",
    "SpanKind",
    "StatusCode",
    "Stats",
]


class SpanKind(enum.IntEnum):
    """A span's role, numbered as OTLP (and otlpx) number it. (The Python
    SDK's ``opentelemetry.trace.SpanKind`` numbers INTERNAL..CONSUMER 0..4;
    it is accepted too, by name.)"""

    INTERNAL = 1
    SERVER = 2
    CLIENT = 3
    PRODUCER = 4
    CONSUMER = 5


class StatusCode(enum.IntEnum):
    """A span's outcome, numbered as OTLP numbers it."""

    UNSET = 0
    OK = 1
    ERROR = 2


def kind_number(kind: Any) -> int:
    if kind is None:
        return SpanKind.INTERNAL
    if isinstance(kind, int):
        return int(kind)
    name = kind.upper() if isinstance(kind, str) else getattr(kind, "name", None)
    if name in SpanKind.__members__:
        return SpanKind[name]
    raise OtlpxError(Status.INVALID_ARGUMENT, f"unknown span kind {kind!r}")


def status_number(code: Any) -> int:
    if isinstance(code, int):
        return int(code)
    name = getattr(code, "name", None) or (code.upper() if isinstance(code, str) else None)
    if name in StatusCode.__members__:
        return StatusCode[name]
    raise OtlpxError(Status.INVALID_ARGUMENT, f"unknown status code {code!r}")


_Stats = dataclasses.make_dataclass(
    "Stats", [(name, int) for name in _ffi.STATS_FIELDS], frozen=True
)


class Stats(_Stats):  # type: ignore[misc, valid-type]
    """An engine's counters for one signal (``otlpx_stats``): ``recorded ==
    exported + dropped_* + in_flight + in_rings`` in every snapshot."""

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)

    @property
    def dropped(self) -> int:
        """All spans dropped, for any reason."""
        return sum(v for k, v in self.as_dict().items() if k.startswith("dropped_"))


class SpanContext(NamedTuple):
    """A span's identity (W3C Trace Context): ids as ints, as the
    OpenTelemetry API has them."""

    trace_id: int
    span_id: int
    trace_flags: int = 1
    is_remote: bool = False
    trace_state: str = ""

    @property
    def traceparent(self) -> str:
        """The ``traceparent`` header value."""
        return f"00-{self.trace_id:032x}-{self.span_id:016x}-{self.trace_flags:02x}"

    @classmethod
    def from_traceparent(cls, header: str, tracestate: str = "") -> "SpanContext":
        """A remote parent from a ``traceparent`` header value."""
        parts = header.strip().split("-")
        if len(parts) < 4 or len(parts[1]) != 32 or len(parts[2]) != 16:
            raise ValueError(f"not a traceparent: {header!r}")
        return cls(int(parts[1], 16), int(parts[2], 16), int(parts[3][:2], 16), True, tracestate)


def _context_struct(ctx: Any, keep: list) -> _ffi.otlpx_span_context:
    """An ``otlpx_span_context`` from our SpanContext or the OpenTelemetry
    API's (whose trace state is a TraceState)."""
    c = _ffi.otlpx_span_context()
    ctypes.memmove(c.trace_id, int(ctx.trace_id).to_bytes(16, "big"), 16)
    ctypes.memmove(c.span_id, int(ctx.span_id).to_bytes(8, "big"), 8)
    c.trace_flags = int(getattr(ctx, "trace_flags", 1)) & 0xFF
    c.is_remote = 1 if getattr(ctx, "is_remote", False) else 0
    state = getattr(ctx, "trace_state", "") or ""
    if not isinstance(state, str):
        state = state.to_header()
    if state:
        sb = _attrs.encode_text(state)
        keep.append(sb)
        c.trace_state.ptr = _ffi.address_of(sb) + _ffi.BYTES_OFFSET
        c.trace_state.len = len(sb)
    return c


def _text(s: Any) -> bytes:
    return s if isinstance(s, bytes) else _attrs.encode_text(s)


class Engine:
    """An otlpx engine: per-CPU rings, workers and an OTLP exporter.

    Every argument is optional; what is not given comes from the standard
    ``OTEL_*`` environment (``OTEL_EXPORTER_OTLP_ENDPOINT``,
    ``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES``, ...) and the
    ``OTLPX_CONFIG`` file, unless ``ignore_environment`` is true. Without
    an endpoint anywhere the engine exports to the OpenTelemetry default,
    ``http://localhost:4317`` (gRPC) or ``http://localhost:4318/v1/traces``
    (HTTP), ``/v1/logs`` for logs; ``export=False`` (or every signal's
    ``OTEL_*_EXPORTER=none``) makes it record without exporting. ``shutdown_timeout_ms`` bounds how long
    freeing the engine may flush when nothing shut it down first (default
    5000; ``close()`` and ``shutdown()`` take their own timeout).

    ``protocol``: ``"grpc"`` or ``"http/protobuf"``; ``compression``:
    ``None``/``"none"``, ``"gzip"`` or ``"zstd"``; ``headers``: a mapping
    or (name, value) pairs; ``resource``: a mapping of attributes or an
    ``opentelemetry.sdk.resources.Resource``; ``toml``: an ``otlpx.toml``
    document; ``sampler`` (``OTEL_TRACES_SAMPLER`` names, for handle
    spans only) with ``sampler_arg``.

    The engine is thread-safe and fork-safe (the library restarts its
    workers in a forked child). ``close()`` (or leaving a ``with`` block)
    shuts it down and frees it; garbage collection does the same.
    """

    _SAMPLERS = {
        "always_on": 0,
        "always_off": 1,
        "traceidratio": 2,
        "parentbased_always_on": 3,
        "parentbased_always_off": 4,
        "parentbased_traceidratio": 5,
    }
    _PROTOCOLS = {"grpc": 0, "http/protobuf": 1, "http": 1}
    _COMPRESSIONS = {"none": 0, "gzip": 1, "zstd": 2}

    def __init__(
        self,
        endpoint: Optional[str] = None,
        protocol: Optional[str] = None,
        compression: Optional[str] = None,
        service_name: Optional[str] = None,
        headers: Union[Mapping[str, str], Iterable[tuple], None] = None,
        resource: Any = None,
        toml: Optional[str] = None,
        ignore_environment: bool = False,
        sampler: Optional[str] = None,
        sampler_arg: float = 1.0,
        export_timeout_ms: Optional[int] = None,
        schedule_delay_ms: Optional[int] = None,
        max_batch_spans: Optional[int] = None,
        ring_bytes_per_cpu: Optional[int] = None,
        admin_address: Optional[str] = None,
        disabled: Optional[bool] = None,
        export: Optional[bool] = None,
        shutdown_timeout_ms: Optional[int] = None,
    ) -> None:
        self._ptr: Optional[int] = None
        self._tracers: dict = {}
        self._loggers: dict = {}
        self._lock = threading.Condition()
        self._blocking_calls = 0
        cfg = c_void_p()
        check(_ffi.otlpx_config_new(byref(cfg)), "otlpx_config_new")
        consumed = False
        try:
            S = _ffi.CONFIG_SETTERS

            def setter(name: str, *args: Any) -> None:
                check(S[name](cfg, *args), f"{name}{args!r}")

            def text(name: str, value: Any) -> None:
                b = _text(value)
                check(S[name](cfg, b, len(b)), f"{name}({value!r})")

            # Order: the TOML document first, so that explicit arguments win.
            if toml is not None:
                text("otlpx_config_set_toml", toml)
            if ignore_environment:
                setter("otlpx_config_ignore_environment", 1)
            if endpoint is not None:
                text("otlpx_config_set_endpoint", endpoint)
            if protocol is not None:
                p = self._PROTOCOLS.get(str(protocol).lower())
                if p is None:
                    raise OtlpxError(Status.INVALID_ARGUMENT, f"unknown protocol {protocol!r} (grpc, http/protobuf)")
                setter("otlpx_config_set_protocol", p)
            if compression is not None:
                c = self._COMPRESSIONS.get(str(compression).lower())
                if c is None:
                    raise OtlpxError(Status.INVALID_ARGUMENT, f"unknown compression {compression!r} (none, gzip, zstd)")
                setter("otlpx_config_set_compression", c)
            if service_name is not None:
                text("otlpx_config_set_service_name", service_name)
            if admin_address is not None:
                text("otlpx_config_set_admin_address", admin_address)
            for name, value in (headers.items() if hasattr(headers, "items") else headers or ()):
                nb, vb = _text(name), _text(value)
                check(_ffi.otlpx_config_add_header(cfg, nb, len(nb), vb, len(vb)), f"otlpx_config_add_header({name!r})")
            attrs = getattr(resource, "attributes", resource) or {}
            for key, value in attrs.items():
                keep: list = []
                ptr, n, buf = _attrs.attribute_array({key: value}, keep.append)
                if n:  # (None says nothing)
                    check(
                        _ffi.otlpx_config_add_resource_attribute(cfg, ptr),
                        f"otlpx_config_add_resource_attribute({key!r})",
                    )
            if sampler is not None:
                s = self._SAMPLERS.get(str(sampler).lower())
                if s is None:
                    raise OtlpxError(Status.INVALID_ARGUMENT, f"unknown sampler {sampler!r} ({', '.join(self._SAMPLERS)})")
                check(_ffi.otlpx_config_set_sampler(cfg, s, float(sampler_arg)), f"otlpx_config_set_sampler({sampler!r})")
            for name, value in (
                ("otlpx_config_set_export_timeout_ms", export_timeout_ms),
                ("otlpx_config_set_schedule_delay_ms", schedule_delay_ms),
                ("otlpx_config_set_max_batch_spans", max_batch_spans),
                ("otlpx_config_set_ring_bytes_per_cpu", ring_bytes_per_cpu),
                ("otlpx_config_set_shutdown_timeout_ms", shutdown_timeout_ms),
            ):
                if value is not None:
                    setter(name, int(value))
            if disabled is not None:
                setter("otlpx_config_set_disabled", 1 if disabled else 0)
            if export is not None:
                setter("otlpx_config_set_export", 1 if export else 0)
            out = c_void_p()
            consumed = True
            check(_ffi.otlpx_engine_new(cfg, byref(out)), "otlpx_engine_new")
            self._ptr = out.value
        finally:
            if not consumed:
                _ffi.otlpx_config_free(cfg)

    @classmethod
    def from_env(cls) -> "Engine":
        """An engine configured by the ``OTEL_*`` environment alone."""
        return cls()

    # -- lifecycle ---------------------------------------------------------

    def _live(self) -> int:
        ptr = self._ptr
        if ptr is None:
            raise OtlpxError(Status.INVALID_HANDLE, "the engine is closed")
        return ptr

    def _blocking(self, f, timeout_s: float, what: str) -> None:
        with self._lock:
            ptr = self._live()
            self._blocking_calls += 1
        try:
            check(f(ptr, max(0, int(timeout_s * 1000))), what)
        finally:
            with self._lock:
                self._blocking_calls -= 1
                self._lock.notify_all()

    def flush(self, timeout_s: float = 30.0) -> None:
        """Sends everything recorded so far, waiting at most ``timeout_s``.
        Raises :class:`OtlpxError` (``EXPORT_FAILED`` when spans were
        dropped on export, ``TIMEOUT``, ``NOT_EXPORTING``)."""
        self._blocking(_ffi.otlpx_engine_flush, timeout_s, "otlpx_engine_flush")

    def shutdown(self, timeout_s: float = 30.0) -> None:
        """Flushes for at most ``timeout_s``, then stops the workers; later
        spans are refused. A second call does nothing."""
        self._blocking(_ffi.otlpx_engine_shutdown, timeout_s, "otlpx_engine_shutdown")

    def close(self, timeout_s: float = 30.0) -> None:
        """Shuts the engine down (flushing for at most ``timeout_s``) and
        frees it; its tracers and spans are then refused. Idempotent."""
        with self._lock:
            ptr = self._ptr
            if ptr is None:
                return
            self._ptr = None
        try:
            _ffi.otlpx_engine_shutdown(ptr, max(0, int(timeout_s * 1000)))
        finally:
            with self._lock:
                while self._blocking_calls:
                    self._lock.wait(0.1)
            # Through the GIL-keeping library: no other call on this engine
            # (all of them keep the GIL too) can run meanwhile.
            _ffi.otlpx_engine_free(ptr)

    @property
    def closed(self) -> bool:
        return self._ptr is None

    def __enter__(self) -> "Engine":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close(5.0)
        except Exception:  # interpreter teardown: nothing useful to do
            pass

    # -- tracers and stats -------------------------------------------------

    def tracer(self, name: str, version: str = "") -> "Tracer":
        """The tracer of instrumentation scope ``name`` / ``version``
        (cached: the same arguments give the same tracer)."""
        key = (name, version or "")
        t = self._tracers.get(key)
        if t is None:
            t = self._tracers[key] = Tracer(self, self._tracer_ptr(name, version or ""), name, version or "")
        return t

    def _tracer_ptr(self, name: str, version: str) -> int:
        nb, vb = _text(name), _text(version)
        out = c_void_p()
        check(
            _ffi.otlpx_engine_tracer(self._live(), nb, len(nb), vb, len(vb), byref(out)),
            f"otlpx_engine_tracer({name!r}, {version!r})",
        )
        return out.value

    def logger(self, name: str, version: str = "") -> Logger:
        """The logger of instrumentation scope ``name`` / ``version``
        (cached: the same arguments give the same logger)."""
        key = (name, version or "")
        lg = self._loggers.get(key)
        if lg is None:
            nb, vb = _text(name), _text(version or "")
            out = c_void_p()
            check(
                _ffi.otlpx_engine_logger(self._live(), nb, len(nb), vb, len(vb), byref(out)),
                f"otlpx_engine_logger({name!r}, {version!r})",
            )
            lg = self._loggers[key] = Logger(self, out.value, name, version or "")
        return lg

    def stats(self, signal: Any = "traces") -> Stats:
        """A snapshot of the engine's counters for ``signal``: ``"traces"``
        (spans, the default) or ``"logs"`` (log records), or a
        :class:`otlpx.Signal`. Each signal keeps its own accounting."""
        s = _ffi.otlpx_stats()
        check(
            _ffi.otlpx_engine_signal_stats(self._live(), signal_number(signal), byref(s), ctypes.sizeof(s)),
            "otlpx_engine_signal_stats",
        )
        return Stats(**{name: getattr(s, name) for name in _ffi.STATS_FIELDS})

    def drain(self, signal: Any = "traces", max_items: int = 512) -> bytes:
        """For an engine built with ``export=False``: takes up to
        ``max_items`` of ``signal``'s items out of the rings and returns them
        framed as one OTLP ``Export*ServiceRequest`` (protobuf bytes, as a
        receiver gets them); ``b""`` when there is nothing to take. For
        callers that send the bytes themselves, and for tests."""
        ptr, sig = self._live(), signal_number(signal)
        buf = ctypes.create_string_buffer(64 * 1024)
        n, items = c_size_t(0), c_size_t(0)
        status = _ffi.otlpx_engine_drain(ptr, sig, int(max_items), buf, len(buf), byref(n), byref(items))
        if status == Status.BUFFER_TOO_SMALL:
            # The engine kept the request for the next call.
            buf = ctypes.create_string_buffer(n.value)
            status = _ffi.otlpx_engine_drain(ptr, sig, int(max_items), buf, len(buf), byref(n), byref(items))
        check(status, "otlpx_engine_drain")
        return buf.raw[: n.value]

    def __repr__(self) -> str:
        return f"<otlpx.Engine {'closed' if self._ptr is None else hex(self._ptr)}>"


class Tracer:
    """An instrumentation scope of an engine: begins handle-based spans."""

    __slots__ = ("engine", "ptr", "name", "version", "_vp")

    def __init__(self, engine: Engine, ptr: int, name: str, version: str) -> None:
        self.engine = engine  # keeps the engine (which owns the tracer) alive
        self.ptr = ptr
        self.name = name
        self.version = version
        self._vp = c_void_p(ptr)

    def start_span(
        self,
        name: str,
        kind: Any = SpanKind.INTERNAL,
        parent: Any = None,
        start_time_ns: int = 0,
        attributes: Optional[Mapping[str, Any]] = None,
        links: Iterable[Any] = (),
    ) -> "Span":
        """Begins a span. ``parent``: a :class:`Span` of this engine, a
        :class:`SpanContext` (e.g. from ``SpanContext.from_traceparent``)
        or an OpenTelemetry ``SpanContext``; None for a root span.
        ``start_time_ns``: 0 for now. ``links``: SpanContexts, or
        (context, attributes) pairs. Use it as a context manager to end it
        (an exception sets ERROR and records an ``exception`` event)."""
        keep: list = []
        opts = _ffi.otlpx_span_options()
        opts.kind = kind_number(kind)
        opts.start_time_unix_nano = int(start_time_ns)
        if isinstance(parent, Span):
            opts.parent_span = parent.handle
        elif parent is not None:
            ctx = _context_struct(parent, keep)
            keep.append(ctx)
            opts.parent_context = ctypes.addressof(ctx)
        nb = _text(name)
        out = c_uint64()
        status = _ffi.otlpx_span_begin(self._vp, nb, len(nb), byref(opts), byref(out))
        if status:
            raise error(status, f"otlpx_span_begin({name!r})")
        span = Span(out.value, self)
        if attributes:
            span.set_attributes(attributes)
        for link in links:
            if isinstance(link, tuple) and len(link) == 2 and not isinstance(link[0], int):
                span.add_link(link[0], link[1])
            else:
                span.add_link(link)
        return span

    def __repr__(self) -> str:
        return f"<otlpx.Tracer {self.name!r} {self.version!r}>"


class Span:
    """An open handle-based span (``otlpx_span``). Used by one thread at a
    time; calls after ``end()`` raise ``OtlpxError(INVALID_HANDLE)``."""

    __slots__ = ("handle", "tracer", "__weakref__")

    def __init__(self, handle: int, tracer: Tracer) -> None:
        self.handle = handle
        self.tracer = tracer

    def _check(self, status: int, what: str) -> "Span":
        if status:
            raise error(status, what)
        return self

    def set_attribute(self, key: str, value: Any) -> "Span":
        return self.set_attributes({key: value})

    def set_attributes(self, attributes: Mapping[str, Any]) -> "Span":
        keep: list = []
        ptr, n, buf = _attrs.attribute_array(attributes, keep.append)
        return self._check(_ffi.otlpx_span_set_attributes(self.handle, ptr, n), "otlpx_span_set_attributes")

    def add_event(self, name: str, attributes: Optional[Mapping[str, Any]] = None, timestamp_ns: int = 0) -> "Span":
        keep: list = []
        ptr, n, buf = _attrs.attribute_array(attributes or {}, keep.append)
        nb = _text(name)
        return self._check(
            _ffi.otlpx_span_add_event(self.handle, nb, len(nb), int(timestamp_ns), ptr, n),
            f"otlpx_span_add_event({name!r})",
        )

    def add_link(self, context: Any, attributes: Optional[Mapping[str, Any]] = None) -> "Span":
        keep: list = []
        if isinstance(context, Span):
            context = context.get_span_context()
        ctx = _context_struct(context, keep)
        ptr, n, buf = _attrs.attribute_array(attributes or {}, keep.append)
        return self._check(_ffi.otlpx_span_add_link(self.handle, byref(ctx), ptr, n), "otlpx_span_add_link")

    def set_status(self, code: Any, description: str = "") -> "Span":
        """``code``: a :class:`StatusCode`, its number or name, or an
        OpenTelemetry ``StatusCode``. The description is kept for ERROR."""
        db = _text(description or "")
        return self._check(
            _ffi.otlpx_span_set_status(self.handle, status_number(code), db, len(db)), "otlpx_span_set_status"
        )

    def update_name(self, name: str) -> "Span":
        nb = _text(name)
        return self._check(_ffi.otlpx_span_update_name(self.handle, nb, len(nb)), "otlpx_span_update_name")

    def record_exception(self, exc: BaseException, attributes: Optional[Mapping[str, Any]] = None) -> "Span":
        """Adds an ``exception`` event as the OpenTelemetry conventions
        name its attributes."""
        attrs = {
            "exception.type": type(exc).__qualname__,
            "exception.message": str(exc),
            "exception.stacktrace": "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)),
        }
        attrs.update(attributes or {})
        return self.add_event("exception", attrs)

    def get_span_context(self) -> SpanContext:
        c = _ffi.otlpx_span_context()
        self._check(_ffi.otlpx_span_get_context(self.handle, byref(c)), "otlpx_span_get_context")
        state = ctypes.string_at(c.trace_state.ptr, c.trace_state.len).decode() if c.trace_state.len else ""
        return SpanContext(
            int.from_bytes(bytes(c.trace_id), "big"),
            int.from_bytes(bytes(c.span_id), "big"),
            c.trace_flags,
            bool(c.is_remote),
            state,
        )

    def end(self, end_time_ns: int = 0) -> bool:
        """Ends the span and records it (``end_time_ns`` 0: now). Returns
        whether it was recorded: False when dropped (ring full, too large)
        or the engine was shut down, as the engine's stats count. Raises
        for a span already ended or in use by another thread."""
        status = _ffi.otlpx_span_end(self.handle, int(end_time_ns))
        if status in (Status.RING_FULL, Status.TOO_LARGE, Status.SHUT_DOWN):
            return False
        self._check(status, "otlpx_span_end")
        return True

    def discard(self) -> None:
        """Ends the span without recording it."""
        self._check(_ffi.otlpx_span_discard(self.handle), "otlpx_span_discard")

    def __enter__(self) -> "Span":
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc is not None:
            try:
                self.record_exception(exc)
                self.set_status(StatusCode.ERROR, f"{exc_type.__name__}: {exc}")
            except OtlpxError:
                pass
        self.end()

    def __repr__(self) -> str:
        return f"<otlpx.Span {self.handle:#x}>"
