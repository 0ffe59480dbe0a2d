#!/usr/bin/env python3
"""Write N synthetic spans in goprobe's span NDJSON schema (src/span.rs) to stdout.

Realistic shape: traces of 1-8 spans (a server span with client calls and
nested internal work), written in end order (children before their parent),
a few services interleaved, semantic-convention attributes. Deterministic.
Usage: gen_spans.py N [SEED]
"""
import json
import random
import sys

n = int(sys.argv[1])
rng = random.Random(int(sys.argv[2]) if len(sys.argv) > 2 else 1)
services = [("users", 4101, "/usr/local/bin/users"), ("orders", 4102, "/usr/local/bin/orders"), ("gateway", 4103, "/srv/gateway")]
routes = ["/users/{id}", "/orders", "/orders/{id}/items", "/healthz", "/search"]
out = sys.stdout
t = 1_700_000_000_000_000_000
written = 0
trace_no = 0
while written < n:
    trace_no += 1
    trace_id = "%032x" % rng.getrandbits(128)
    svc, pid, exe = rng.choice(services)
    resource = {"service.name": svc, "process.pid": pid, "process.executable.path": exe, "process.runtime.version": "go1.22.10"}
    route = rng.choice(routes)
    method = rng.choice(["GET", "GET", "GET", "POST"])
    t += rng.randint(10_000, 2_000_000)
    start = t
    dur = rng.randint(200_000, 50_000_000)
    root_id = "%016x" % rng.getrandbits(64)
    spans = []
    cursor = start + dur // 20
    for _ in range(rng.randint(0, min(7, n - written - 1))):
        cdur = rng.randint(10_000, max(10_001, dur // 8))
        cid = "%016x" % rng.getrandbits(64)
        status = rng.choice([200, 200, 200, 404, 500])
        spans.append({
            "trace_id": trace_id, "span_id": cid, "parent_span_id": root_id, "name": "GET",
            "kind": "client", "start_time_unix_nano": cursor, "end_time_unix_nano": cursor + cdur,
            "attributes": {"http.request.method": "GET", "url.full": "http://backend:8080/v1/items?id=%d" % rng.randint(1, 10**6),
                           "server.address": "backend", "server.port": 8080, "http.response.status_code": status},
            "status": {"code": "error", "message": "HTTP 500"} if status == 500 else {"code": "unset"},
            "events": [], "resource": resource})
        cursor += cdur + rng.randint(1000, 100_000)
    code = rng.choice([200, 200, 200, 200, 404, 500])
    spans.append({
        "trace_id": trace_id, "span_id": root_id, "name": "%s %s" % (method, route), "kind": "server",
        "start_time_unix_nano": start, "end_time_unix_nano": max(start + dur, cursor),
        "attributes": {"http.request.method": method, "url.path": route.replace("{id}", str(rng.randint(1, 9999))),
                       "http.route": route, "http.response.status_code": code, "network.protocol.version": "1.1",
                       "client.address": "10.0.%d.%d" % (rng.randint(0, 255), rng.randint(1, 254)), "user_agent.original": "curl/8.5.0"},
        "status": {"code": "error"} if code >= 500 else {"code": "unset"},
        "events": [], "resource": resource})
    spans.sort(key=lambda s: s["end_time_unix_nano"])
    for s in spans:
        out.write(json.dumps(s, separators=(",", ":")))
        out.write("\n")
    written += len(spans)
