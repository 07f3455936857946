"""Helpers shared by the tests: what the sink's JSON line for a span
should be."""

from __future__ import annotations


def by_id(spans: list[dict]) -> dict[str, dict]:
    """Spans by span id; fails on a duplicate."""
    out = {}
    for s in spans:
        assert s["span_id"] not in out, f"span {s['span_id']} received twice"
        out[s["span_id"]] = s
    return out


def value_json(v):
    """An attribute value as the sink writes it."""
    if isinstance(v, (bytes, bytearray)):
        return {"bytes": bytes(v).hex()}
    if isinstance(v, (tuple, list)):
        return [value_json(x) for x in v]
    return v


def attrs_json(attributes) -> dict:
    return {k: value_json(v) for k, v in (attributes or {}).items()}


def flags(trace_flags: int, remote: bool) -> int:
    # OTLP: W3C flags, plus "is_remote is known" (0x100) and "is remote" (0x200).
    return int(trace_flags) | 0x100 | (0x200 if remote else 0)


def expected_json(span, resource: dict) -> dict:
    """What the sink should have received for SDK ReadableSpan ``span``."""
    ctx = span.context
    parent = span.parent
    status = span.status
    scope = span.instrumentation_scope
    code = status.status_code.value
    return {
        "trace_id": f"{ctx.trace_id:032x}",
        "span_id": f"{ctx.span_id:016x}",
        "parent_span_id": f"{parent.span_id:016x}" if parent else "",
        "trace_state": ctx.trace_state.to_header(),
        "flags": flags(ctx.trace_flags, bool(parent and parent.is_remote)),
        "name": span.name,
        "kind": span.kind.value + 1,
        "start_time_unix_nano": span.start_time,
        "end_time_unix_nano": span.end_time,
        "status": {"code": code, "message": (status.description or "") if code == 2 else ""},
        "attributes": attrs_json(span.attributes),
        "dropped_attributes_count": span.dropped_attributes,
        "events": [
            {
                "name": e.name,
                "time_unix_nano": e.timestamp,
                "attributes": attrs_json(e.attributes),
                "dropped_attributes_count": e.dropped_attributes,
            }
            for e in span.events
        ],
        "dropped_events_count": span.dropped_events,
        "links": [
            {
                "trace_id": f"{l.context.trace_id:032x}",
                "span_id": f"{l.context.span_id:016x}",
                "trace_state": l.context.trace_state.to_header(),
                "flags": flags(l.context.trace_flags, l.context.is_remote),
                "attributes": attrs_json(l.attributes),
                "dropped_attributes_count": l.dropped_attributes,
            }
            for l in span.links
        ],
        "dropped_links_count": span.dropped_links,
        "scope": {"name": scope.name, "version": scope.version or ""},
        "resource": resource,
    }


def any_value(v):
    """An OTLP AnyValue (protobuf) as a Python value: maps as dicts (in
    order), arrays as lists, bytes as bytes; None when empty."""
    kind = v.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [any_value(x) for x in v.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: any_value(kv.value) for kv in v.kvlist_value.values}
    return getattr(v, kind)


def drain_logs(engine) -> list:
    """Every log record in a record-only engine's rings, as
    (scope name, scope version, LogRecord protobuf), in order."""
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

    out = []
    while True:
        data = engine.drain("logs")
        if not data:
            return out
        req = ExportLogsServiceRequest.FromString(data)
        for rl in req.resource_logs:
            for sl in rl.scope_logs:
                for r in sl.log_records:
                    out.append((sl.scope.name, sl.scope.version, r))


def log_attrs(record) -> dict:
    return {kv.key: any_value(kv.value) for kv in record.attributes}
