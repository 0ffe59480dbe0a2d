#!/usr/bin/env python3
"""Decode goprobe's OTLP/JSON with the official OTLP protobuf definitions.

Reads OTLP/JSON (one ExportTraceServiceRequest per line) on stdin and parses
each line with google.protobuf.json_format.Parse in strict mode
(ignore_unknown_fields=False: unknown or mistyped fields are errors). The one
documented OTLP/JSON deviation from the protobuf JSON mapping is undone
first: trace and span ids are hex there, base64 in plain protobuf JSON.

Prints every decoded span as one JSON line in goprobe's span schema, so the
caller can compare them with its input. Exits 3 when the packages are missing.
"""
import base64
import json
import sys

try:
    from google.protobuf import json_format
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
    from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status
except ImportError as err:
    print(f"missing Python packages (pip install opentelemetry-proto protobuf): {err}", file=sys.stderr)
    sys.exit(3)

ID_FIELDS = {"traceId": 16, "spanId": 8, "parentSpanId": 8}
KINDS = {Span.SPAN_KIND_INTERNAL: "internal", Span.SPAN_KIND_SERVER: "server", Span.SPAN_KIND_CLIENT: "client",
         Span.SPAN_KIND_PRODUCER: "producer", Span.SPAN_KIND_CONSUMER: "consumer"}
CODES = {Status.STATUS_CODE_UNSET: "unset", Status.STATUS_CODE_OK: "ok", Status.STATUS_CODE_ERROR: "error"}


def hex_ids_to_base64(node):
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ID_FIELDS and isinstance(value, str):
                raw = bytes.fromhex(value)
                if value and len(raw) != ID_FIELDS[key]:
                    raise ValueError(f"{key} {value!r} has {len(raw)} bytes")
                node[key] = base64.b64encode(raw).decode()
            else:
                hex_ids_to_base64(value)
    elif isinstance(node, list):
        for item in node:
            hex_ids_to_base64(item)


def any_value(v):
    which = v.WhichOneof("value")
    if which == "array_value":
        return [any_value(x) for x in v.array_value.values]
    if which in ("string_value", "bool_value", "int_value", "double_value"):
        return getattr(v, which)
    raise ValueError(f"unexpected AnyValue {which}")


def attrs(kvs):
    return {kv.key: any_value(kv.value) for kv in kvs}


for number, line in enumerate(sys.stdin, 1):
    if not line.strip():
        continue
    doc = json.loads(line)
    hex_ids_to_base64(doc)
    request = ExportTraceServiceRequest()
    try:
        json_format.Parse(json.dumps(doc), request, ignore_unknown_fields=False)
    except json_format.ParseError as err:
        print(f"line {number}: strict parse failed: {err}", file=sys.stderr)
        sys.exit(1)
    for rs in request.resource_spans:
        resource = attrs(rs.resource.attributes)
        for ss in rs.scope_spans:
            assert ss.scope.name == "goprobe", ss.scope.name
            for s in ss.spans:
                span = {"trace_id": s.trace_id.hex(), "span_id": s.span_id.hex()}
                if s.parent_span_id:
                    span["parent_span_id"] = s.parent_span_id.hex()
                span.update({
                    "name": s.name, "kind": KINDS[s.kind],
                    "start_time_unix_nano": s.start_time_unix_nano, "end_time_unix_nano": s.end_time_unix_nano,
                    "attributes": attrs(s.attributes),
                    "status": {"code": CODES[s.status.code]},
                    "events": [{"name": e.name, "time_unix_nano": e.time_unix_nano, "attributes": attrs(e.attributes)}
                               for e in s.events],
                    "resource": resource,
                })
                if s.status.message:
                    span["status"]["message"] = s.status.message
                print(json.dumps(span))
