"""Spans made by the real OpenTelemetry Python SDK, recorded through
otlpx.SpanProcessor (and otlpx.SpanExporter), arrive at the receiver
intact: every field compared with what the SDK span had."""

from __future__ import annotations

import pytest
from _util import by_id, expected_json
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import (
    Link,
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    TraceState,
    set_span_in_context,
)

import otlpx

# One attribute of every type the SDK keeps and otlpx carries.
ALL_TYPES = {
    "str": "hello ünïcode ✓",
    "empty.str": "",
    "bool.true": True,
    "bool.false": False,
    "int": -42,
    "int.max": 2**63 - 1,
    "int.min": -(2**63),
    "float": 3.25,
    "float.big": 1e300,
    "bytes": b"\x00\xff\x10",
    "strs": ("a", "", "ü"),
    "bools": (True, False, True),
    "ints": (1, -2, 2**62),
    "floats": (0.5, -1.25),
    "bytess": (b"x", b""),
    "empty.seq": (),
}

RESOURCE = {"service.name": "otlpx-python-sdk", "deployment.environment": "test", "r.int": 7, "r.list": ("a", "b")}


def remote_parent() -> SpanContext:
    return SpanContext(
        trace_id=0x0102030405060708090A0B0C0D0E0F10,
        span_id=0x1112131415161718,
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
        trace_state=TraceState([("vendor", "v1"), ("k", "x")]),
    )


def provider_with(processor, **kwargs):
    """A provider with an in-memory copy of every span beside ``processor``."""
    provider = TracerProvider(**kwargs)
    memory = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    provider.add_span_processor(processor)
    return provider, memory


def assert_arrived_intact(sink, memory, resource=RESOURCE):
    sent = memory.get_finished_spans()
    assert sent, "the test made spans"
    received = by_id(sink.wait_for(len(sent)))
    assert len(received) == len(sent), f"sent {len(sent)}, received {len(received)}"
    for span in sent:
        got = received[f"{span.context.span_id:016x}"]
        for k, v in resource.items():
            want = list(v) if isinstance(v, tuple) else v
            assert got["resource"].get(k) == want, f"resource {k}: {got['resource']}"
        assert got == expected_json(span, got["resource"]), span.name
    return received


def test_sdk_spans_of_every_shape_arrive_intact(sink, engine_args):
    processor = otlpx.SpanProcessor(resource=Resource(RESOURCE), **engine_args)
    provider, memory = provider_with(processor, resource=Resource.create({"ignored": "yes"}))
    t1 = provider.get_tracer("scope.a", "1.2.3")
    t2 = provider.get_tracer("scope.b")

    other = SpanContext(
        trace_id=0xAAAA0000000000000000000000000001,
        span_id=0xBBBB000000000001,
        is_remote=False,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
        trace_state=TraceState([("lk", "lv")]),
    )
    remote_other = SpanContext(0xCC, 0xDD, is_remote=True, trace_flags=TraceFlags(0))
    parent = set_span_in_context(NonRecordingSpan(remote_parent()))
    with t1.start_as_current_span(
        "server ✓",
        context=parent,
        kind=SpanKind.SERVER,
        attributes=ALL_TYPES,
        links=[Link(other, {"link.attr": "x", "n": 3}), Link(remote_other)],
    ) as root:
        root.add_event("ev1", {"e.int": 1, "e.strs": ("p", "q")}, timestamp=1_234_567_890_123_456_789)
        root.add_event("ev-no-attributes")
        with t1.start_as_current_span("client", kind=SpanKind.CLIENT) as c:
            c.set_status(Status(StatusCode.ERROR, "boom ✗"))
        with t2.start_as_current_span("producer", kind=SpanKind.PRODUCER) as p:
            p.set_status(Status(StatusCode.OK))
            p.set_attribute("late", 1.5)
        t2.start_span("consumer", kind=SpanKind.CONSUMER).end()
        t1.start_span("internal").end()
        t1.start_span("timed", start_time=1_000_000_000_000_000_001).end(end_time=1_000_000_000_000_000_999)
        with pytest.raises(ValueError):
            with t1.start_as_current_span("fails"):
                raise ValueError("bad input")
    assert processor.force_flush(10_000)
    received = assert_arrived_intact(sink, memory)

    by_name = {s["name"]: s for s in received.values()}
    # Spot checks of what the comparison above implies, spelled out.
    root = by_name["server ✓"]
    assert root["trace_id"] == "0102030405060708090a0b0c0d0e0f10"
    assert root["parent_span_id"] == "1112131415161718"
    assert root["flags"] == 0x301, "sampled, parent remote"
    assert root["trace_state"] == "vendor=v1,k=x"
    assert root["kind"] == 2
    assert root["attributes"]["bytes"] == {"bytes": "00ff10"}
    assert root["attributes"]["int.min"] == -(2**63)
    assert root["links"][1]["flags"] == 0x300
    assert [s["kind"] for s in map(by_name.get, ["internal", "client", "producer", "consumer"])] == [1, 3, 4, 5]
    assert by_name["client"]["status"] == {"code": 2, "message": "boom ✗"}
    assert by_name["producer"]["status"] == {"code": 1, "message": ""}
    assert by_name["fails"]["events"][0]["name"] == "exception"
    assert by_name["timed"]["start_time_unix_nano"] == 1_000_000_000_000_000_001
    assert by_name["consumer"]["scope"] == {"name": "scope.b", "version": ""}
    assert root["scope"] == {"name": "scope.a", "version": "1.2.3"}
    assert root["resource"]["service.name"] == "otlpx-python-sdk"
    assert "ignored" not in root["resource"], "the engine's resource, not the provider's"
    provider.shutdown()
    assert processor.engine.closed, "the processor built its engine: it frees it"


def test_dropped_counts_and_limits_travel(sink, engine_args):
    engine = otlpx.Engine(**engine_args, service_name="limits")
    limits = SpanLimits(
        max_span_attributes=2,
        max_events=1,
        max_links=1,
        max_event_attributes=1,
        max_link_attributes=1,
    )
    provider, memory = provider_with(otlpx.SpanProcessor(engine), span_limits=limits)
    tracer = provider.get_tracer("limits")
    ctx = SpanContext(0x1, 0x2, is_remote=False, trace_flags=TraceFlags(1))
    span = tracer.start_span(
        "limited",
        attributes={"a": 1, "b": 2, "c": 3, "d": 4},
        links=[Link(ctx, {"x": 1, "y": 2}), Link(ctx, {"z": 3})],
    )
    for i in range(3):
        span.add_event(f"e{i}", {"p": i, "q": i})
    span.end()
    engine.flush(10)
    got = assert_arrived_intact(sink, memory, resource={"service.name": "limits"})
    (s,) = got.values()
    assert (s["dropped_attributes_count"], s["dropped_events_count"], s["dropped_links_count"]) == (2, 2, 1)
    assert s["events"][0]["dropped_attributes_count"] == 1
    # (The SDK applies no limit to a link's attributes given at start; the
    # comparison above checked the link's count against the SDK's.)
    # An engine the processor did not build is shut down, not freed.
    provider.shutdown()
    assert not engine.closed
    engine.close()


def test_unsampled_and_odd_spans_are_handled_without_raising(sink, engine_args):
    processor = otlpx.SpanProcessor(**engine_args, service_name="odd")
    provider, memory = provider_with(processor)
    tracer = provider.get_tracer("odd")
    unsampled = ReadableSpan(
        name="unsampled",
        context=SpanContext(0x5, 0x6, is_remote=False, trace_flags=TraceFlags(0)),
        start_time=1,
        end_time=2,
    )
    processor.on_end(unsampled)
    # Values otlpx has no type for: sent as JSON text (None dropped and
    # counted); an int past 64 bits as its text; a lone surrogate replaced.
    with tracer.start_as_current_span("odd") as span:
        span.set_attribute("mixed", (1, "a"))
        span.set_attribute("nested", ((1, 2), (3,)))
        span.set_attribute("mapping", {"k": "v"})
        span.set_attribute("huge", 2**70)
        span.set_attribute("surrogate", "a\ud800b")
        span.set_attribute("none", None)
        span.set_attribute("with.none", ("a", None))
    assert processor.force_flush(10_000)
    (got,) = sink.wait_for(1)
    attrs = got["attributes"]
    assert got["name"] == "odd", "the unsampled span was skipped"
    assert attrs["mixed"] == '[1,"a"]'
    assert attrs["nested"] == "[[1,2],[3]]"
    assert attrs["huge"] == str(2**70)
    assert attrs["with.none"] == '["a",null]'
    assert attrs["surrogate"] == "a?b"
    sdk = memory.get_finished_spans()[0]
    if "mapping" in sdk.attributes:
        assert attrs["mapping"] == '{"k":"v"}'
    if "none" in sdk.attributes:
        assert "none" not in attrs
        assert got["dropped_attributes_count"] == sdk.dropped_attributes + 1
    processor.shutdown()
    # After shutdown, spans are refused quietly: on_end never raises.
    with tracer.start_as_current_span("after-shutdown"):
        pass


def test_span_exporter_under_the_batch_span_processor(sink, engine_args):
    exporter = otlpx.SpanExporter(**engine_args, resource={"service.name": "exporter"})
    provider, memory = provider_with(BatchSpanProcessor(exporter, schedule_delay_millis=50))
    tracer = provider.get_tracer("bsp", "9")
    for i in range(50):
        with tracer.start_as_current_span(f"s{i}", attributes={"i": i, "tag": "x" * i}) as s:
            s.add_event("e", {"i": i})
    assert provider.force_flush(10_000)
    assert exporter.force_flush(10_000)
    assert_arrived_intact(sink, memory, resource={"service.name": "exporter"})
    provider.shutdown()
    assert exporter.engine.closed
    assert exporter.export(memory.get_finished_spans()[:1]) == SpanExportResult.FAILURE


def test_one_line_switch_flushes_at_provider_shutdown(sink):
    provider = TracerProvider()
    provider.add_span_processor(otlpx.SpanProcessor(endpoint=sink.grpc, ignore_environment=True))
    with provider.get_tracer("switch").start_as_current_span("one-line"):
        pass
    provider.shutdown()  # no flush: shutdown sends what was recorded
    (got,) = sink.wait_for(1)
    assert got["name"] == "one-line"


def test_threads_ending_spans_at_once_each_get_their_own_buffers(sink, engine_args):
    import threading

    processor = otlpx.SpanProcessor(**engine_args, service_name="threads")
    provider, memory = provider_with(processor)
    tracer = provider.get_tracer("threads")

    def work(t: int) -> None:
        for i in range(150):
            attrs = {f"k{j}": f"t{t}-s{i}-v{j}" for j in range(t + 1)}
            attrs["seq"] = tuple(range(i % 7))
            with tracer.start_as_current_span(f"t{t}-s{i}", attributes=attrs) as span:
                span.add_event(f"e{t}", {"i": i, "t": "x" * t})

    import sys

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads mid-conversion, often
    try:
        for th in threads:
            th.start()
        for th in threads:
            th.join()
    finally:
        sys.setswitchinterval(interval)
    assert processor.force_flush(10_000)
    assert_arrived_intact(sink, memory, resource={"service.name": "threads"})
    provider.shutdown()
