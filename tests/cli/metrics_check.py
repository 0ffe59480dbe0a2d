#!/usr/bin/env python3
"""Read goprobe's metrics with outside parsers and print what they saw.

    metrics_check.py prom   < exposition   # prometheus_client's text parser
    metrics_check.py otlp   < otlp.jsonl   # official OTLP protobufs, strict

Prints one JSON line per histogram series / counter sample, in a form the
Rust test compares with its own computation from the spans:

    {"metric": NAME, "labels": {...}, "count": N, "sum": S, "buckets": {le: cumulative}}
    {"metric": NAME, "labels": {...}, "value": V}

For OTLP, per-bucket counts are turned into cumulative ones keyed by the
upper bound (as Prometheus writes them), and "unit"/"temporality" are
added. Exits 3 when the packages are missing, 1 when parsing fails.
"""
import json
import sys


def prom(text):
    try:
        from prometheus_client.parser import text_string_to_metric_families
    except ImportError as err:
        print(f"missing Python package (pip install prometheus_client): {err}", file=sys.stderr)
        sys.exit(3)
    out = []
    for family in text_string_to_metric_families(text):
        series = {}
        for s in family.samples:
            labels = {k: v for k, v in s.labels.items() if k != "le"}
            key = json.dumps(labels, sort_keys=True)
            if family.type == "histogram":
                entry = series.setdefault(key, {"metric": family.name, "type": "histogram", "labels": labels, "buckets": {}})
                if s.name.endswith("_bucket"):
                    entry["buckets"][s.labels["le"]] = s.value
                elif s.name.endswith("_sum"):
                    entry["sum"] = s.value
                elif s.name.endswith("_count"):
                    entry["count"] = s.value
            else:
                out.append({"metric": s.name, "type": family.type, "labels": labels, "value": s.value})
        out.extend(series.values())
    return out


def otlp(text):
    try:
        from google.protobuf import json_format
        from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
        from opentelemetry.proto.metrics.v1.metrics_pb2 import AggregationTemporality
    except ImportError as err:
        print(f"missing Python packages (pip install opentelemetry-proto protobuf): {err}", file=sys.stderr)
        sys.exit(3)

    def value(v):
        which = v.WhichOneof("value")
        return getattr(v, which)

    out = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        request = ExportMetricsServiceRequest()
        try:
            json_format.Parse(line, request, ignore_unknown_fields=False)
        except json_format.ParseError as err:
            print(f"line {number}: strict parse failed: {err}", file=sys.stderr)
            sys.exit(1)
        for rm in request.resource_metrics:
            resource = {kv.key: value(kv.value) for kv in rm.resource.attributes}
            for sm in rm.scope_metrics:
                assert sm.scope.name == "goprobe", sm.scope.name
                for m in sm.metrics:
                    kind = m.WhichOneof("data")
                    if kind == "histogram":
                        temporality = AggregationTemporality.Name(m.histogram.aggregation_temporality)
                        for p in m.histogram.data_points:
                            cumulative, buckets = 0, {}
                            bounds = list(p.explicit_bounds) + [float("inf")]
                            for bound, c in zip(bounds, p.bucket_counts):
                                cumulative += c
                                buckets[repr(bound)] = cumulative
                            out.append({"line": number, "metric": m.name, "unit": m.unit, "type": "histogram",
                                        "temporality": temporality, "resource": resource,
                                        "labels": {kv.key: value(kv.value) for kv in p.attributes},
                                        "count": p.count, "sum": p.sum, "min": p.min, "max": p.max,
                                        "buckets": buckets, "start": p.start_time_unix_nano, "time": p.time_unix_nano})
                    elif kind == "sum":
                        temporality = AggregationTemporality.Name(m.sum.aggregation_temporality)
                        for p in m.sum.data_points:
                            out.append({"line": number, "metric": m.name, "unit": m.unit, "type": "counter",
                                        "temporality": temporality, "monotonic": m.sum.is_monotonic,
                                        "resource": resource,
                                        "labels": {kv.key: value(kv.value) for kv in p.attributes},
                                        "value": p.as_int})
                    else:
                        print(f"line {number}: unexpected metric kind {kind}", file=sys.stderr)
                        sys.exit(1)
    return out


if __name__ == "__main__":
    mode = sys.argv[1] if len(sys.argv) > 1 else ""
    if mode not in ("prom", "otlp"):
        print("usage: metrics_check.py prom|otlp < input", file=sys.stderr)
        sys.exit(2)
    text = sys.stdin.read()
    for item in (prom if mode == "prom" else otlp)(text):
        print(json.dumps(item, sort_keys=True))
