"""otlpx under the OpenTelemetry Python SDK: a ``SpanProcessor`` (the fast
path) and a ``SpanExporter`` (for pipelines that keep a
``BatchSpanProcessor``).

::

    provider.add_span_processor(otlpx.SpanProcessor(endpoint="http://localhost:4317"))

``on_end`` converts the finished span in the ending thread and hands it
to ``otlpx_tracer_record_span``, which encodes it straight into a per-CPU
ring; batching, encoding of requests, compression and export happen on
the engine's own native threads, outside the GIL.

The resource is the engine's, fixed when it is built: pass ``resource=``
(an SDK ``Resource`` or a mapping) to the processor, or set
``OTEL_SERVICE_NAME`` / ``OTEL_RESOURCE_ATTRIBUTES``; the provider's
resource is not read from the spans. Sampling is the SDK's: spans it did
not sample never reach ``on_end`` (unsampled ones that do are skipped).
"""

from __future__ import annotations

import logging
import struct
import threading
from typing import Any, Optional, Sequence

from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace import SpanProcessor as _SdkSpanProcessor
from opentelemetry.sdk.trace.export import SpanExporter as _SdkSpanExporter
from opentelemetry.sdk.trace.export import SpanExportResult
from opentelemetry.sdk.util import BoundedList
from opentelemetry.trace import SpanContext, TraceFlags, TraceState
from opentelemetry.trace import SpanKind as _SdkKind
from opentelemetry.trace import StatusCode as _SdkStatusCode
from opentelemetry.trace.span import DEFAULT_TRACE_STATE

from . import _attrs, _ffi
from ._engine import Engine
from ._ffi import (
    ATTR_SIZE,
    BYTES_OFFSET,
    EVENT_ITEM,
    LINK_ITEM,
    SPAN,
    OtlpxError,
    Status,
    address_of,
)

__all__ = ["SpanProcessor", "SpanExporter", "SpanRecorder"]

_log = logging.getLogger("otlpx")

# The SDK numbers kinds INTERNAL..CONSUMER 0..4; OTLP (and otlpx) 1..5:
# `kind._value_ + 1`. Status codes are numbered as OTLP numbers them.
if [k._value_ + 1 for k in _SdkKind] != [1, 2, 3, 4, 5] or [
    c._value_ for c in (_SdkStatusCode.UNSET, _SdkStatusCode.OK, _SdkStatusCode.ERROR)
] != [0, 1, 2]:  # pragma: no cover - every API release so far
    raise ImportError("otlpx: this opentelemetry-api numbers SpanKind or StatusCode unexpectedly")
_ZERO8 = bytes(8)
_EMPTY = b""
_EMPTY_PTR = address_of(_EMPTY) + BYTES_OFFSET
_NAME_CACHE_MAX = 4096
_SCOPE_CACHE_MAX = 1024
_STATE_CACHE_MAX = 1024
_DEFAULT_STATE = DEFAULT_TRACE_STATE
_record = _ffi.record_span_raw
_pack_span = SPAN.pack_into


def _ctx_is_tuple() -> bool:
    """Whether a SpanContext unpacks as (trace_id, span_id, is_remote,
    trace_flags, trace_state, is_valid), as every SDK release so far
    builds it: much cheaper than its properties."""
    state = TraceState([("k", "v")])
    ctx = SpanContext(3, 4, is_remote=True, trace_flags=TraceFlags(1), trace_state=state)
    try:
        t, sid, remote, flags, st, _ = ctx
    except (TypeError, ValueError):
        return False
    return (t, sid, remote, flags, st) == (3, 4, True, 1, state)


_CTX_IS_TUPLE = _ctx_is_tuple()
_formats: dict = {}


def _events_format(n: int) -> struct.Struct:
    f = _formats.get(("e", n))
    if f is None:
        f = struct.Struct("@" + EVENT_ITEM * n)
        if n <= 256:
            _formats[("e", n)] = f
    return f


def _links_format(n: int) -> struct.Struct:
    f = _formats.get(("l", n))
    if f is None:
        f = struct.Struct("@" + LINK_ITEM * n)
        if n <= 256:
            _formats[("l", n)] = f
    return f


class _PublicView:
    """A ReadableSpan-like object read through its public properties only,
    for spans that lack the SDK's private fields."""

    def __init__(self, span: Any) -> None:
        self._context = span.context
        self._parent = span.parent
        self._name = span.name
        self._kind = span.kind
        self._start_time = span.start_time
        self._end_time = span.end_time
        self._status = span.status
        self._attributes = span.attributes
        self._events = span.events
        self._links = span.links
        self._instrumentation_scope = getattr(span, "instrumentation_scope", None)
        self.dropped_attributes = getattr(span, "dropped_attributes", 0)
        self.dropped_events = getattr(span, "dropped_events", 0)
        self.dropped_links = getattr(span, "dropped_links", 0)


class SpanRecorder:
    """Converts SDK ``ReadableSpan``s into ``otlpx_finished_span``s and
    records them; the shared engine of :class:`SpanProcessor` and
    :class:`SpanExporter`."""

    def __init__(self, engine: Optional[Engine] = None, **engine_kwargs: Any) -> None:
        if engine is not None and engine_kwargs:
            raise TypeError("pass either an engine or engine arguments, not both")
        if engine is None:
            engine = Engine(**engine_kwargs)
            self._owns_engine = True
        else:
            self._owns_engine = False
        self.engine = engine
        # id(scope) -> (scope, tracer pointer): the scope object is kept so
        # that its id cannot be reused by another while cached.
        self._tracers: dict = {}
        self._names: dict = {}
        self._lock = threading.Lock()
        self._warned: set = set()
        # id(trace state) -> (state, pointer, length, bytes).
        self._states: dict = {}

    # -- tracers -----------------------------------------------------------

    def _tracer(self, scope: Any) -> Any:
        with self._lock:
            hit = self._tracers.get(id(scope))
            if hit is not None:
                return hit[1]
            name = getattr(scope, "name", "") or ""
            version = getattr(scope, "version", "") or ""
            tracer = self.engine.tracer(name, version)
            if len(self._tracers) >= _SCOPE_CACHE_MAX:
                self._tracers.clear()
            self._tracers[id(scope)] = (scope, tracer._vp)
            return tracer._vp

    # -- recording ---------------------------------------------------------

    def record(self, span: ReadableSpan) -> int:
        """Records one finished span; returns the ``otlpx_status`` (0: ok).
        Never raises for what the span holds."""
        s = _attrs.scratch()
        s.busy = True
        try:
            try:
                return self._record_into(s, span)
            except AttributeError:
                return self._record_into(s, _PublicView(span))
        except OtlpxError as e:
            return int(e.status)
        except Exception as e:  # a span no SDK would build: say so once
            key = type(e).__name__
            if key not in self._warned:
                self._warned.add(key)
                _log.warning("otlpx: span not recorded: %s: %s", key, e)
            return int(Status.INVALID_ARGUMENT)
        finally:
            s.busy = False

    def _record_into(self, s: _attrs.Scratch, span: Any) -> int:
        ctx = span._context
        if _CTX_IS_TUPLE:
            trace_id, span_id, _, trace_flags, state, _ = ctx
        else:
            trace_id, span_id = ctx.trace_id, ctx.span_id
            trace_flags, state = ctx.trace_flags, ctx.trace_state
        if not trace_flags & 1:
            return 0  # not sampled: the SDK should not even have sent it
        scope = span._instrumentation_scope
        hit = self._tracers.get(id(scope))
        tracer = hit[1] if hit is not None else self._tracer(scope)

        keep: list = []
        ka = keep.append
        collect = _attrs.collect
        items_of = _attrs.items_of
        out: list = []

        # Attributes: the span's, then each event's and each link's, in one
        # array that events and links point into.
        a = span._attributes
        if type(a) is BoundedAttributes:
            dropped_attrs = a.dropped
            a = a._dict
        else:
            dropped_attrs = getattr(span, "dropped_attributes", 0)
        if a:
            n, d = collect(a.items(), out, ka)
            dropped_attrs += d
        else:
            n = 0
        used = n

        events = span._events
        if type(events) is BoundedList:
            dropped_events = events.dropped
            events = events._dq
        else:
            dropped_events = getattr(span, "dropped_events", 0)
        if events:
            placed = []
            for e in events:
                try:  # the SDK's Event
                    ename, ets, ea = e._name, e._timestamp, e._attributes
                except AttributeError:
                    ename, ets, ea = e.name, e.timestamp, e.attributes
                if type(ea) is BoundedAttributes:
                    edropped = ea.dropped
                    ea = ea._dict
                else:
                    edropped = 0
                if ea:
                    en, d = collect(ea.items(), out, ka)
                    edropped += d
                else:
                    en = 0
                placed.append((ename, ets, used, en, edropped))
                used += en
            n_events = len(placed)
        else:
            n_events = 0

        links = span._links
        if type(links) is BoundedList:
            dropped_links = links.dropped
            links = links._dq
        else:
            dropped_links = getattr(span, "dropped_links", 0)
        if links:
            lplaced = []
            for link in links:
                litems, ldropped = items_of(link.attributes)
                ln, d = collect(litems, out, ka)
                lplaced.append((link, used, ln, ldropped + d))
                used += ln
            n_links = len(lplaced)
        else:
            n_links = 0

        if used:
            if used > s.attrs_cap:
                s.grow_attrs(used)
            _attrs.pack_attrs(s.attrs, out, used, ka)
        base = s.attrs_addr
        if n_events:
            if n_events > s.events_cap:
                s.grow_events(n_events)
            eargs: list = []
            eext = eargs.extend
            names = self._names
            for ename, ets, at, en, edropped in placed:
                nb = names.get(ename)
                if nb is None:
                    nb = self._name_bytes(ename)
                    ka(nb)
                eext((address_of(nb) + BYTES_OFFSET, len(nb), ets or 0, base + at * ATTR_SIZE, en, edropped))
            _events_format(n_events).pack_into(s.events, 0, *eargs)
        if n_links:
            if n_links > s.links_cap:
                s.grow_links(n_links)
            largs: list = []
            lext = largs.extend
            for link, at, ln, ldropped in lplaced:
                lc = link.context
                lsp, lsl = self._state(lc.trace_state, ka)
                lext(
                    (
                        lc.trace_id.to_bytes(16, "big"),
                        lc.span_id.to_bytes(8, "big"),
                        lc.trace_flags & 0xFF,
                        1 if lc.is_remote else 0,
                        lsp,
                        lsl,
                        base + at * ATTR_SIZE,
                        ln,
                        ldropped,
                    )
                )
            _links_format(n_links).pack_into(s.links, 0, *largs)

        # The span itself.
        parent = span._parent
        if parent is not None:
            pid = parent.span_id.to_bytes(8, "big")
            premote = 1 if parent.is_remote else 0
        else:
            pid = _ZERO8
            premote = 0
        if state is _DEFAULT_STATE or not state:
            sp, sl = _EMPTY_PTR, 0
        else:
            sp, sl = self._state(state, ka)
        if trace_id == s.trace_id:
            tb = s.trace_id_bytes
        else:
            tb = trace_id.to_bytes(16, "big")
            s.trace_id, s.trace_id_bytes = trace_id, tb
        name = span._name
        nb = self._names.get(name)
        if nb is None:
            nb = self._name_bytes(name)
            ka(nb)
        status = span._status
        code = status.status_code._value_ if status is not None else 0
        if code == 2 and status.description:
            mb = _attrs.encode_text(status.description)
            ka(mb)
            mp, ml = address_of(mb) + BYTES_OFFSET, len(mb)
        else:
            mp, ml = _EMPTY_PTR, 0
        kind = span._kind
        _pack_span(
            s.span,
            0,
            tb,
            span_id.to_bytes(8, "big"),
            trace_flags & 0xFF,
            premote,
            pid,
            sp,
            sl,
            address_of(nb) + BYTES_OFFSET,
            len(nb),
            kind._value_ + 1 if kind is not None else 1,
            span._start_time or 0,
            span._end_time or 0,
            code,
            mp,
            ml,
            base,
            n,
            s.events_addr,
            n_events,
            s.links_addr,
            n_links,
            dropped_attrs,
            dropped_events,
            dropped_links,
        )
        # `keep` holds every bytes object the structs point into until here.
        status = _record(tracer, s.span_addr)
        del keep
        return status

    def _state(self, state: Any, ka: Any) -> tuple:
        """(pointer, length) of a trace state's header; cached per state
        object (immutable), so a trace's spans encode it once."""
        if not state:
            return _EMPTY_PTR, 0
        hit = self._states.get(id(state))
        if hit is not None and hit[0] is state:
            ka(hit[3])  # another thread may clear the cache meanwhile
            return hit[1], hit[2]
        sb = _attrs.encode_text(state.to_header())
        ka(sb)
        if len(self._states) >= _STATE_CACHE_MAX:
            self._states.clear()
        self._states[id(state)] = (state, address_of(sb) + BYTES_OFFSET, len(sb), sb)
        return address_of(sb) + BYTES_OFFSET, len(sb)

    def _name_bytes(self, name: Any) -> bytes:
        nb = self._names.get(name)
        if nb is None:
            nb = _attrs.encode_text(name if name is not None else "")
            if len(self._names) < _NAME_CACHE_MAX and type(name) is str:
                self._names[name] = nb
        return nb

    # -- lifecycle ---------------------------------------------------------

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


class SpanProcessor(_SdkSpanProcessor):
    """A span processor that records each finished span into an otlpx
    engine: ``provider.add_span_processor(otlpx.SpanProcessor(endpoint=...))``.

    Give it an :class:`otlpx.Engine`, or the arguments to build one (see
    :class:`otlpx.Engine`; ``resource=`` takes an SDK ``Resource`` too).
    ``on_end`` never blocks and never raises: a span the engine cannot
    take (full ring, shut down) is dropped and counted in
    ``engine.stats()``.
    """

    def __init__(self, engine: Optional[Engine] = None, **engine_kwargs: Any) -> None:
        self.recorder = SpanRecorder(engine, **engine_kwargs)
        self.engine = self.recorder.engine
        self.on_end = self.recorder.record  # type: ignore[method-assign]

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        pass

    def on_end(self, span: ReadableSpan) -> None:  # replaced per instance
        self.recorder.record(span)

    def shutdown(self) -> None:
        """Shuts the engine down (flushing first); frees it if this
        processor built it."""
        self.recorder.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Sends everything recorded so far; False on timeout, or when spans
        were dropped on export."""
        return self.recorder.force_flush(timeout_millis)


class SpanExporter(_SdkSpanExporter):
    """A span exporter over an otlpx engine, for pipelines that keep the
    SDK's ``BatchSpanProcessor``; :class:`SpanProcessor` is the fast path
    (no SDK queue, no worker thread holding the GIL)."""

    def __init__(self, engine: Optional[Engine] = None, **engine_kwargs: Any) -> None:
        self.recorder = SpanRecorder(engine, **engine_kwargs)
        self.engine = self.recorder.engine

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Records every span; FAILURE if any was not taken (the engine's
        stats say why)."""
        record = self.recorder.record
        ok = True
        for span in spans:
            if record(span):
                ok = False
        return SpanExportResult.SUCCESS if ok else SpanExportResult.FAILURE

    def shutdown(self) -> None:
        self.recorder.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.recorder.force_flush(timeout_millis)
