"""The handle-based span API (no SDK), the engine's lifecycle, and errors
raised as OtlpxError with the library's message."""

from __future__ import annotations

import os

import pytest
from _util import by_id

import otlpx
from otlpx import OtlpxError, SpanContext, SpanKind, Status, StatusCode


def test_handle_spans_arrive_intact(sink, engine_args):
    with otlpx.Engine(**engine_args, service_name="handles", resource={"r": 1.5}) as engine:
        tracer = engine.tracer("handles", "0.1")
        assert engine.tracer("handles", "0.1") is tracer, "tracers are cached"
        root = tracer.start_span(
            "root",
            kind=SpanKind.SERVER,
            start_time_ns=1_700_000_000_000_000_000,
            attributes={"s": "x", "i": 7, "f": 0.25, "b": True, "ints": [1, 2], "raw": b"\x01"},
        )
        root.set_attribute("late", "yes").add_event("ev", {"n": 1}, timestamp_ns=1_700_000_000_000_000_100)
        root.update_name("root-renamed")
        remote = SpanContext.from_traceparent("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "a=b")
        root.add_link(remote, {"why": "batch"})
        with tracer.start_span("child", parent=root, kind="CLIENT") as child:
            child.set_status(StatusCode.OK)
        with pytest.raises(KeyError):
            with tracer.start_span("fails", parent=root):
                raise KeyError("missing")
        ctx = root.get_span_context()
        assert root.end(1_700_000_000_000_000_999) is True
        remote_child = tracer.start_span("remote-child", parent=remote)
        remote_child.set_status("error", "went wrong")
        remote_child.end()
        engine.flush(10)
        got = {s["name"]: s for s in by_id(sink.wait_for(4)).values()}
        stats = engine.stats()
    assert sorted(got) == ["child", "fails", "remote-child", "root-renamed"]
    r = got["root-renamed"]
    assert r["span_id"] == f"{ctx.span_id:016x}" and r["trace_id"] == f"{ctx.trace_id:032x}"
    assert (r["kind"], r["parent_span_id"], r["flags"]) == (2, "", 0x101)
    assert (r["start_time_unix_nano"], r["end_time_unix_nano"]) == (1_700_000_000_000_000_000, 1_700_000_000_000_000_999)
    assert r["attributes"] == {"s": "x", "i": 7, "f": 0.25, "b": True, "ints": [1, 2], "raw": {"bytes": "01"}, "late": "yes"}
    assert r["events"] == [
        {"name": "ev", "time_unix_nano": 1_700_000_000_000_000_100, "attributes": {"n": 1}, "dropped_attributes_count": 0}
    ]
    (link,) = r["links"]
    assert (link["trace_id"], link["span_id"], link["trace_state"], link["attributes"]) == (
        "0af7651916cd43dd8448eb211c80319c",
        "b7ad6b7169203331",
        "a=b",
        {"why": "batch"},
    )
    assert r["scope"] == {"name": "handles", "version": "0.1"}
    assert r["resource"]["service.name"] == "handles" and r["resource"]["r"] == 1.5
    c = got["child"]
    assert (c["trace_id"], c["parent_span_id"], c["kind"], c["status"]["code"]) == (r["trace_id"], r["span_id"], 3, 1)
    f = got["fails"]
    assert f["status"] == {"code": 2, "message": "KeyError: 'missing'"}
    assert f["events"][0]["name"] == "exception"
    assert f["events"][0]["attributes"]["exception.type"] == "KeyError"
    rc = got["remote-child"]
    assert (rc["trace_id"], rc["parent_span_id"], rc["flags"]) == ("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331", 0x301)
    assert rc["trace_state"] == "a=b"
    assert rc["status"] == {"code": 2, "message": "went wrong"}
    assert stats.recorded == 4 and stats.exported == 4 and stats.dropped == 0


def test_misuse_raises_otlpx_error_with_the_status_and_its_text():
    with otlpx.Engine(ignore_environment=True, export=False) as engine:
        span = engine.tracer("errors").start_span("once")
        span.end()
        with pytest.raises(OtlpxError) as e:
            span.set_attribute("k", "v")
        assert e.value.status == Status.INVALID_HANDLE
        assert "otlpx_span_set_attributes" in e.value.message and "span has ended" in e.value.message
        with pytest.raises(OtlpxError) as e:
            span.end()
        assert e.value.status == Status.INVALID_HANDLE
        with pytest.raises(OtlpxError) as e:
            engine.tracer("errors").start_span("bad kind", kind=99)
        assert e.value.status == Status.INVALID_ARGUMENT
        with pytest.raises(OtlpxError) as e:
            engine.flush(1)
        assert e.value.status == Status.NOT_EXPORTING, "export off: nothing to flush"
        assert "NOT_EXPORTING" in str(e.value)
    with pytest.raises(OtlpxError) as e:
        engine.stats()
    assert e.value.status == Status.INVALID_HANDLE and "closed" in e.value.message
    engine.close()  # idempotent


def test_configuration_errors_carry_the_library_message():
    with pytest.raises(OtlpxError) as e:
        otlpx.Engine(endpoint="ftp://nowhere", ignore_environment=True)
    assert e.value.status == Status.CONFIG
    assert "otlpx_engine_new" in e.value.message
    assert "ftp://nowhere" in e.value.message or "endpoint" in e.value.message, e.value.message
    with pytest.raises(OtlpxError) as e:
        otlpx.Engine(toml="[batch]\nmax_export_batch_size = 'many'\n", ignore_environment=True)
    assert e.value.status == Status.CONFIG
    assert "<otlpx_config_set_toml>:2" in e.value.message, e.value.message
    with pytest.raises(OtlpxError) as e:
        otlpx.Engine(protocol="carrier-pigeon", ignore_environment=True)
    assert e.value.status == Status.INVALID_ARGUMENT and "carrier-pigeon" in e.value.message
    with pytest.raises(OtlpxError) as e:
        otlpx.Engine(ring_bytes_per_cpu=1000, ignore_environment=True)
    assert e.value.status == Status.CONFIG and e.value.message.count(":") >= 2, e.value.message


def test_records_after_shutdown_are_refused_quietly(sink, engine_args):
    engine = otlpx.Engine(**engine_args)
    tracer = engine.tracer("late")
    span = tracer.start_span("open-at-shutdown")
    engine.shutdown(5)
    assert span.end() is False, "refused (SHUT_DOWN), not raised"
    with pytest.raises(OtlpxError) as e:
        tracer.start_span("after")
    assert e.value.status == Status.SHUT_DOWN
    engine.close()
    with pytest.raises(OtlpxError) as e:
        tracer.start_span("after-free")
    assert e.value.status in (Status.INVALID_HANDLE, Status.SHUT_DOWN)


def test_a_missing_library_is_a_clear_import_error(tmp_path):
    import subprocess
    import sys

    env = dict(os.environ, OTLPX_LIBRARY=str(tmp_path / "libnothing.so"))
    r = subprocess.run([sys.executable, "-c", "import otlpx"], env=env, capture_output=True, text=True)
    assert r.returncode != 0
    assert "cannot load the otlpx C library" in r.stderr and "libnothing.so" in r.stderr and "OTLPX_LIBRARY" in r.stderr
