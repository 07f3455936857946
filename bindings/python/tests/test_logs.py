"""Log records through otlpx: Logger.emit without the SDK, the
``logging`` handler (levels, extra, exceptions, correlation with the
current OpenTelemetry span) and the SDK's logs drop-ins (processor and
exporter). Records are read back from a record-only engine's drain and
decoded with the official OTLP types; one test exports to the sink."""

from __future__ import annotations

import logging
import threading

import pytest
from _util import any_value, drain_logs, log_attrs
from opentelemetry._logs import LogRecord as ApiLogRecord
from opentelemetry._logs import SeverityNumber
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import (
    BatchLogRecordProcessor,
    InMemoryLogRecordExporter,
    SimpleLogRecordProcessor,
)
from opentelemetry.sdk.trace import TracerProvider

import otlpx
import otlpx.logging
from otlpx import OtlpxError, Severity, Status

T0 = 1_700_000_000_000_000_000


@pytest.fixture
def engine():
    with otlpx.Engine(export=False, ignore_environment=True, service_name="py-logs") as e:
        yield e


def one(engine):
    records = drain_logs(engine)
    assert len(records) == 1, records
    return records[0]


def body(record):
    return any_value(record.body) if record.HasField("body") else None


# -- Logger.emit -------------------------------------------------------------


def test_every_field_arrives(engine):
    logger = engine.logger("py.logs", "1.2")
    assert engine.logger("py.logs", "1.2") is logger, "loggers are cached"
    ctx = otlpx.SpanContext(0x0102030405060708090A0B0C0D0E0F10, 0x1112131415161718, trace_flags=1)
    assert logger.emit(
        Severity.WARN,
        "payment retried",
        {"order.id": 1042, "retry": True, "tags": ("a", "b")},
        severity_text="warning",
        event_name="payment.retry",
        timestamp_ns=T0 + 1,
        observed_timestamp_ns=T0 + 2,
        context=ctx,
    )
    scope, version, r = one(engine)
    assert (scope, version) == ("py.logs", "1.2")
    assert (r.time_unix_nano, r.observed_time_unix_nano) == (T0 + 1, T0 + 2)
    assert (r.severity_number, r.severity_text) == (13, "warning")
    assert body(r) == "payment retried"
    assert log_attrs(r) == {"order.id": 1042, "retry": True, "tags": ["a", "b"]}
    assert r.event_name == "payment.retry"
    assert r.trace_id == (0x0102030405060708090A0B0C0D0E0F10).to_bytes(16, "big")
    assert r.span_id == (0x1112131415161718).to_bytes(8, "big")
    assert r.flags == 1
    stats = engine.stats("logs")
    assert (stats.recorded, stats.calls_refused) == (1, 0)
    assert engine.stats().recorded == 0, "spans are counted apart"


def test_defaults_and_severity_forms(engine):
    logger = engine.logger("py.logs")
    logger.emit(Severity.INFO, "started")
    logger.emit(SeverityNumber.ERROR2, "sdk enum")  # the SDK's enum works too
    logger.emit(10)
    logger.emit()
    records = [r for _, _, r in drain_logs(engine)]
    r = records[0]
    assert (r.severity_number, r.severity_text, body(r)) == (9, "INFO", "started")
    assert r.time_unix_nano > 0 and r.time_unix_nano == r.observed_time_unix_nano
    assert not r.trace_id and not r.span_id, "no implicit context"
    assert (records[1].severity_number, records[1].severity_text) == (18, "ERROR2")
    assert (records[2].severity_text, body(records[2])) == ("INFO2", None)
    assert (records[3].severity_number, records[3].severity_text) == (0, "")


def test_bodies_of_every_kind(engine):
    logger = engine.logger("py.bodies")
    bodies = [
        "text",
        True,
        -7,
        2**63 - 1,
        2.5,
        b"\x00\xff",
        ["mixed", 1, 2.5, False, b"\x01", ["nested", {"k": "v"}], ()],
        {"a": {"b": {"c": [1, 2, 3]}}, "empty": {}, "list": [], 3: "key as text"},
        ("tuple", "too"),
    ]
    for b in bodies:
        logger.emit(Severity.INFO, b)
    got = [body(r) for _, _, r in drain_logs(engine)]
    want = [list(b) if isinstance(b, tuple) else b for b in bodies]
    want[6] = ["mixed", 1, 2.5, False, b"\x01", ["nested", {"k": "v"}], []]
    want[7] = {"a": {"b": {"c": [1, 2, 3]}}, "empty": {}, "list": [], "3": "key as text"}
    assert got == want


def test_values_without_a_type(engine):
    logger = engine.logger("py.bodies")

    class Custom:
        def __str__(self):
            return "custom!"

    logger.emit(
        Severity.INFO,
        {"none": None, "list": [1, None, 2], "big": 2**70, "obj": Custom()},
        {"kept": 1, "dropped": None, "nested": {"x": 1}},
    )
    logger.emit(Severity.INFO, None)
    r1, r2 = [r for _, _, r in drain_logs(engine)]
    # None is left out of maps and arrays; ints past 64 bits and other
    # objects become text. Attributes keep the attribute rules: a map is
    # its JSON text.
    assert body(r1) == {"list": [1, 2], "big": str(2**70), "obj": "custom!"}
    assert log_attrs(r1) == {"kept": 1, "nested": '{"x":1}'}
    assert body(r2) is None


def test_bad_input_raises_and_is_counted(engine):
    logger = engine.logger("py.bad")
    for severity in (25, 255, 2**32 - 1):
        with pytest.raises(OtlpxError) as e:
            logger.emit(severity, "x")
        assert e.value.status == Status.INVALID_ARGUMENT
        assert not logger.enabled(severity)
    with pytest.raises(OtlpxError) as e:
        logger.emit(-1, "x")
    assert e.value.status == Status.INVALID_ARGUMENT

    deep = 42
    for _ in range(otlpx._ffi.MAX_BODY_DEPTH - 1):
        deep = [deep]
    assert logger.emit(Severity.INFO, deep), "16 levels are fine"
    with pytest.raises(OtlpxError) as e:
        logger.emit(Severity.INFO, [deep])
    assert e.value.status == Status.INVALID_ARGUMENT and "deeper" in e.value.message
    cycle: list = []
    cycle.append(cycle)
    with pytest.raises(OtlpxError):
        logger.emit(Severity.INFO, {"self": cycle})
    # Lone surrogates are not UTF-8: replaced, not refused.
    assert logger.emit(Severity.INFO, "bad \udcff text", severity_text="t\udcff")

    stats = engine.stats("logs")
    # The severities the library saw (the negative one never reached it);
    # the bodies refused in Python never reached it either.
    assert stats.calls_refused == 3
    assert stats.recorded == 2
    records = drain_logs(engine)
    assert body(records[1][2]) == "bad ? text"


def test_enabled_and_closed_engine():
    e = otlpx.Engine(export=False, ignore_environment=True)
    logger = e.logger("py")
    assert logger.enabled(Severity.INFO) and logger.enabled(0) and logger.enabled(24)
    e.close()
    assert not logger.enabled(Severity.INFO)
    with pytest.raises(OtlpxError) as err:
        logger.emit(Severity.INFO, "late")
    assert err.value.status == Status.INVALID_HANDLE
    with pytest.raises(OtlpxError):
        e.logger("another")


def test_shutdown_engine_drops(engine):
    logger = engine.logger("py")
    engine.shutdown(1)
    assert logger.emit(Severity.INFO, "after shutdown") is False
    assert not logger.enabled(Severity.INFO)


def test_threads(engine):
    logger = engine.logger("py.threads")
    errors = []

    def work(t):
        try:
            for i in range(300):
                assert logger.emit(Severity.INFO, {"thread": t, "i": i, "tags": ["x", t]}, {"t": t})
        except Exception as ex:  # pragma: no cover - reported below
            errors.append(ex)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors
    records = drain_logs(engine)
    assert len(records) == 1200
    assert sorted((body(r)["thread"], body(r)["i"]) for _, _, r in records) == [
        (t, i) for t in range(4) for i in range(300)
    ]


def test_exported_to_the_receiver(sink, engine_args):
    with otlpx.Engine(**engine_args, service_name="py-logs-export") as e:
        logger = e.logger("py.export")
        for i in range(25):
            assert logger.emit(Severity.INFO, f"record {i}", {"i": i})
        e.flush(10)
        stats = e.stats("logs")
    assert (stats.recorded, stats.exported, stats.dropped) == (25, 25, 0)
    assert stats.export_requests >= 1


# -- the logging handler -----------------------------------------------------


@pytest.fixture
def handler(engine):
    h = otlpx.logging.OtlpxHandler(engine)
    log = logging.getLogger("py.app")
    old_level, old_propagate = log.level, log.propagate
    log.addHandler(h)
    log.setLevel(1)
    log.propagate = False
    try:
        yield h
    finally:
        log.removeHandler(h)
        log.setLevel(old_level)
        log.propagate = old_propagate


def test_handler_levels(engine, handler):
    log = logging.getLogger("py.app")
    log.debug("d")
    log.info("i")
    log.warning("w")
    log.error("e")
    log.critical("c")
    log.log(25, "between")
    log.log(5, "below debug")
    got = [(r.severity_number, r.severity_text, body(r)) for _, _, r in drain_logs(engine)]
    assert got == [
        (5, "DEBUG", "d"),
        (9, "INFO", "i"),
        (13, "WARNING", "w"),
        (17, "ERROR", "e"),
        (21, "CRITICAL", "c"),
        (12, "Level 25", "between"),
        (1, "Level 5", "below debug"),
    ]
    assert [otlpx.logging.severity_of(n) for n in (0, 10, 20, 30, 40, 50, 53, 99)] == [0, 5, 9, 13, 17, 21, 24, 24]


def test_handler_message_extra_and_standard_attributes(engine, handler):
    log = logging.getLogger("py.app")
    log.info("order %s of %d", "o-1", 3, extra={"user": "u-7", "attempt": 2, "none": None})  # the line
    line = test_handler_message_extra_and_standard_attributes.__code__.co_firstlineno + 2
    log.info({"event": "checkout", "items": [1, 2]})
    (scope, version, r), (_, _, structured) = drain_logs(engine)
    assert (scope, version) == ("py.app", ""), "the scope is the logger's name"
    assert body(r) == "order o-1 of 3"
    attrs = log_attrs(r)
    assert attrs.pop("user") == "u-7" and attrs.pop("attempt") == 2
    assert "none" not in attrs
    assert attrs == {
        "code.file.path": __file__,
        "code.line.number": line,
        "code.function.name": "test_handler_message_extra_and_standard_attributes",
        "thread.id": threading.get_ident(),
        "thread.name": threading.current_thread().name,
    }
    assert T0 < r.time_unix_nano <= r.observed_time_unix_nano
    assert body(structured) == {"event": "checkout", "items": [1, 2]}, "a structured message stays one"


def test_handler_formatter(engine, handler):
    handler.setFormatter(logging.Formatter("%(levelname)s:%(name)s:%(message)s"))
    logging.getLogger("py.app").warning("careful %s", "now")
    (_, _, r), = drain_logs(engine)
    assert body(r) == "WARNING:py.app:careful now"


def test_handler_exceptions(engine, handler):
    log = logging.getLogger("py.app")
    try:
        raise ValueError("bad value 42")
    except ValueError:
        log.exception("it failed")
    log.info("with stack", stack_info=True)
    (_, _, r), (_, _, s) = drain_logs(engine)
    attrs = log_attrs(r)
    assert (r.severity_number, body(r)) == (17, "it failed")
    assert attrs["exception.type"] == "ValueError"
    assert attrs["exception.message"] == "bad value 42"
    trace = attrs["exception.stacktrace"]
    assert trace.startswith("Traceback (most recent call last):") and "ValueError: bad value 42" in trace
    assert "test_handler_exceptions" in trace
    assert log_attrs(s)["code.stacktrace"].startswith("Stack (most recent call last):")
    assert "exception.type" not in log_attrs(s)


def test_handler_correlates_with_the_current_sdk_span(engine, handler):
    tracer = TracerProvider().get_tracer("py.test")
    log = logging.getLogger("py.app")
    log.info("outside")
    with tracer.start_as_current_span("request") as span:
        log.info("inside")
        ctx = span.get_span_context()
    (_, _, outside), (_, _, inside) = drain_logs(engine)
    assert not outside.trace_id and not outside.span_id and outside.flags == 0
    assert inside.trace_id == ctx.trace_id.to_bytes(16, "big")
    assert inside.span_id == ctx.span_id.to_bytes(8, "big")
    # The W3C flags as the SDK has them (sampled; newer SDKs add "random").
    assert inside.flags == int(ctx.trace_flags) and inside.flags & 1


def test_handler_never_raises(engine):
    seen = []
    h = otlpx.logging.OtlpxHandler(engine)
    h.handleError = seen.append  # type: ignore[method-assign]
    log = logging.getLogger("py.closed")
    log.addHandler(h)
    log.propagate = False
    try:
        engine.close()
        log.error("after close")  # no exception reaches the caller
    finally:
        log.removeHandler(h)
    assert len(seen) == 1 and seen[0].getMessage() == "after close"


def test_handler_owns_an_engine_it_builds():
    h = otlpx.logging.OtlpxHandler(export=False, ignore_environment=True)
    e = h.engine
    h.close()
    assert e.closed
    with pytest.raises(TypeError):
        otlpx.logging.OtlpxHandler(e, export=False)


# -- the OpenTelemetry SDK's logs --------------------------------------------


def sdk_provider(processor):
    provider = LoggerProvider()
    memory = InMemoryLogRecordExporter()
    provider.add_log_record_processor(SimpleLogRecordProcessor(memory))
    provider.add_log_record_processor(processor)
    return provider, memory


def emit_sdk_records(provider):
    logger = provider.get_logger("sdk.scope", "2.0")
    tracer = TracerProvider().get_tracer("py.test")
    with tracer.start_as_current_span("work"):
        logger.emit(
            ApiLogRecord(
                timestamp=T0 + 5,
                observed_timestamp=T0 + 6,
                severity_number=SeverityNumber.WARN2,
                severity_text="warn2",
                body={"msg": "structured", "n": [1, 2]},
                attributes={"a": 1, "b": "two", "seq": (1, 2)},
                event_name="sdk.event",
            )
        )
    logger.emit(ApiLogRecord(severity_number=SeverityNumber.INFO, body="plain"))


def assert_same_as_the_sdk(engine, memory):
    sent = memory.get_finished_logs()
    got = drain_logs(engine)
    assert len(got) == len(sent) == 2
    for readable, (scope, version, r) in zip(sent, got):
        lr = readable.log_record
        assert (scope, version) == ("sdk.scope", "2.0")
        assert r.severity_number == lr.severity_number.value
        assert r.severity_text == (lr.severity_text or lr.severity_number.name)
        assert body(r) == lr.body
        assert log_attrs(r) == {k: list(v) if isinstance(v, tuple) else v for k, v in lr.attributes.items()}
        # No timestamp: the engine's "now" at emit (0 means now to the C ABI).
        assert r.time_unix_nano == lr.timestamp if lr.timestamp else r.time_unix_nano > T0
        assert r.observed_time_unix_nano == lr.observed_timestamp
        assert r.event_name == (lr.event_name or "")
        assert r.trace_id == (lr.trace_id.to_bytes(16, "big") if lr.trace_id else b"")
        assert r.span_id == (lr.span_id.to_bytes(8, "big") if lr.span_id else b"")
        assert r.flags == (int(lr.trace_flags) if lr.trace_id else 0)
    assert got[0][2].trace_id, "the first was emitted inside a span"


def test_sdk_processor(engine):
    processor = otlpx.LogRecordProcessor(engine)
    provider, memory = sdk_provider(processor)
    emit_sdk_records(provider)
    assert_same_as_the_sdk(engine, memory)
    assert processor.force_flush() is True, "nothing to flush is not a failure"
    provider.shutdown()
    assert engine.stats("logs").recorded == 2


def test_sdk_exporter_behind_the_batch_processor(engine):
    exporter = otlpx.LogRecordExporter(engine)
    provider, memory = sdk_provider(BatchLogRecordProcessor(exporter))
    emit_sdk_records(provider)
    provider.force_flush()
    assert_same_as_the_sdk(engine, memory)
    provider.shutdown()


def test_sdk_processor_builds_and_owns_an_engine():
    processor = otlpx.LogRecordProcessor(export=False, ignore_environment=True)
    provider, _ = sdk_provider(processor)
    provider.get_logger("x").emit(ApiLogRecord(severity_number=SeverityNumber.INFO, body="hi"))
    assert processor.engine.stats("logs").recorded == 1
    provider.shutdown()
    assert processor.engine.closed
