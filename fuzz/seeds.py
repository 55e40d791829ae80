#!/usr/bin/env python3
"""Writes the committed seed corpora (fuzz/corpus/<target>/) from inputs the
unit tests, tests/inject and sidewatch.example.toml use. Re-run after
changing it: python3 fuzz/seeds.py"""

import json
import os
import struct
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def write(target, name, data):
    path = os.path.join(HERE, "corpus", target)
    os.makedirs(path, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(path, name), "wb") as f:
        f.write(data)


def read(*parts):
    with open(os.path.join(ROOT, *parts), "rb") as f:
        return f.read()


# parse -> correlate -> redact
write("log_chain", "json_lines",
      '{"timestamp":"2025-12-07T10:30:00.123Z","level":"info","request_id":"req-0000002a",'
      '"message":"Chat message processed","intent":"faq","latency_ms":145,"user":"u-1","route":"/api/chat"}\n'
      '{"level":"error","msg":"boom","traceparent":"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}\n')
write("log_chain", "secrets",
      '{"password":"hunter2","headers":{"authorization":"Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig"},'
      '"message":"card 4111 1111 1111 1111 from 10.0.0.1 mail a@b.example api_key=AKIAIOSFODNN7EXAMPLE"}\n')
write("log_chain", "plain_and_odd",
      'plain text line with x-request-id abc\n\n[1,2,3]\n"just a string"\n{"a":{"b":{"c":[{"d":1}]}}}\n'
      '{"x_request_id":"r1","http.request_id":"r2","sidewatch.truncated":true}\n')
write("log_chain", "nested_deep", "[" * 200 + "]" * 200 + "\n" + '{"a":' * 130 + "1" + "}" * 130)

# config loader: first byte even = TOML, odd = YAML
write("config_load", "example_toml", b"\x00" + read("sidewatch.example.toml"))
for name in ("demo.toml", "log-metrics.toml", "log-metrics-red.toml"):
    write("config_load", name.replace(".", "_"), b"\x00" + read("examples", name))
write("config_load", "small_yaml",
      "\x01admin:\n  listen: 127.0.0.1:4790\nhealth:\n  targets:\n    - name: app\n      url: http://127.0.0.1:8080/health\n"
      "logs:\n  sources:\n    - name: app\n      path: /var/log/app/*.log\n")
write("config_load", "bad_toml", '\x00[admin]\nlisten = "nope"\nunknown = 1\n[[health.targets]]\nurl = ""\n')

# route normaliser: template lines, then the path
write("route_normalize", "templates", "/users/{id}\n/orders/{order}/items\n/v1/{x}/static\n/orders/A-77/items?page=2")
write("route_normalize", "ids", "/u/550e8400-e29b-41d4-a716-446655440000/x")
write("route_normalize", "url", "https://example.com/a/7?x\n/t/eyJhbGciOiJIUzI1NiJ9xyz\n/api/v2/search?q=1#top")
write("route_normalize", "long", "/seg" * 200)
write("route_normalize", "unicode", "/caf\u00e9/\u00e9\u00e9\u00e9/{id}\n/caf\u00e9/" + "\u00e9" * 200)

# health bodies
write("health_body", "checks", '{"status":"ok","checks":{"db":"ok","redis":"fail","cache":true}}')
write("health_body", "spring",
      '{"status":"DOWN","components":{"db":{"status":"UP","components":{"primary":{"status":"UP"},'
      '"replica":{"status":"DOWN"}}},"diskSpace":{"status":"UP","details":{"free":1}}}}')
write("health_body", "details", '{"status":"UP","details":{"redis":{"status":"DOWN"},"version":"1.2"}}')
write("health_body", "rfc_draft",
      '{"status":"warn","checks":{"db:responseTime":[{"status":"pass"},{"status":"fail"}],"uptime":[{"status":"warn"}]}}')
write("health_body", "microprofile", '{"status":"UP","checks":[{"name":"db","status":"UP"},{"name":"disk","status":"DOWN"}]}')
write("health_body", "garbage", b"\x00\xff garbage")

# pool JSON: a document alone, or a mapping (first line) and a document
docs = {
    "hikaricp": {"pools": [{"poolName": "main", "activeConnections": 3, "idleConnections": 7,
                            "totalConnections": 10, "threadsAwaitingConnection": 2, "maximumPoolSize": 10}]},
    "sqlalchemy": {"pools": {"main": {"size": 5, "checked_in": 2, "checked_out": 3, "overflow": -2, "max_overflow": 10}}},
    "go_sql": {"primary": {"MaxOpenConnections": 0, "OpenConnections": 5, "InUse": 2, "Idle": 3,
                           "WaitCount": 7, "WaitDuration": 1500000000}, "replica": {"Idle": 1, "InUse": 0}},
    "node_postgres": {"totalCount": 10, "idleCount": 4, "waitingCount": 1},
    "deadpool": {"max_size": 16, "size": 5, "available": -2, "waiting": 2},
}
for name, doc in docs.items():
    write("pool_mapping", name, json.dumps(doc))
custom = {"pools": "/pools", "idle": "/idle", "used": "/active", "max": "/max", "pending": "/pending",
          "wait_time": "/wait_ms", "wait_time_unit": "ms"}
write("pool_mapping", "custom",
      json.dumps(custom) + "\n" + json.dumps({"pools": {"primary": {"active": 4, "idle": "6", "max": 10, "pending": 0, "wait_ms": 250}}}))
write("pool_mapping", "custom_escaped",
      json.dumps({"pools": "/a~1b/c~0d", "name": "/n"}) + "\n" + json.dumps({"a/b": {"c~d": [{"n": "x", "idle": 1}]}}))

# inject: first byte = option bits
for name in sorted(os.listdir(os.path.join(ROOT, "tests", "inject"))):
    if name.endswith(".yaml") and not name.endswith(".out.yaml"):
        bits = b"\x02" if "takeover" in name else (b"\x01" if "classic" in name else b"\x00")
        write("inject_yaml", name.replace(".", "_"), bits + read("tests", "inject", name))
write("inject_yaml", "anchors", "\x00kind: Pod\nmetadata: &m {name: p, annotations: {sidewatch.io/inject: enabled}}\n"
      "spec:\n  containers:\n    - name: app\n      image: a\n      ports: [{containerPort: 80}]\nother: *m\n---\n--- !!str x\n")

# StatsD datagrams
write("statsd_parse", "counters", "api.users.requests:1|c\napi.users.requests:2|c|@0.5\napi.orders.requests:1|c")
write("statsd_parse", "gauges", "queue.depth:10|g\nqueue.depth:+5|g\nqueue.depth:-3|g")
write("statsd_parse", "timer_tags", "db.query:250|ms|@0.5|#table:users,env:prod\nchat.faq.latency:12.5|ms")
write("statsd_parse", "hist_dist_sets", "payload:1500|h\npayload:2:3|d\nvisitors:alice|s\nvisitors:bob|s\nvisitors:alice|s")
write("statsd_parse", "influx_tags", "login,region=eu:1|c\nlogout#region=us:1|c\nx:1|c\nx:1|g\nx:1|c|#new:label\n")
write("statsd_parse", "hostile", 'evil:1|c|#q:a"b\\c,le:1,__x:2,bad-key:3\ndebug.x:1|c\nt:1|c|c:abc|T1700000000\n:|\n')


# disk-buffer segments: magic, version, records (len, crc, payload)
def record(source, read_at_ns, raw_len, fields):
    payload = bytes([len(source)]) + source.encode() + struct.pack("<QI", read_at_ns, raw_len) + json.dumps(fields).encode()
    return struct.pack("<II", len(payload), zlib.crc32(payload)) + payload


head = b"SWDB" + struct.pack("<I", 1)
r1 = record("app", 1700000000000000000, 120, {"message": "hello", "level": "info", "n": 1})
r2 = record("proxy", 1700000000500000000, 80, {"method": "GET", "route": "/users/{id}", "status": 200})
r3 = record("app", 0, 0, {})
write("disk_segment", "two_records", head + r1 + r2)
write("disk_segment", "torn_tail", head + r1 + r2[:-5])
write("disk_segment", "bad_crc", head + r1[:4] + b"\0\0\0\0" + r1[8:] + r3)
write("disk_segment", "empty_fields", head + r3 + r3)
write("disk_segment", "payload_only", r1[8:])
write("disk_segment", "foreign", b"NOPE" + struct.pack("<I", 1) + r1)

# "billion laughs": refused before expanding (regression seeds)
laughs = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]\n" for i in range(1, 9))
write("inject_yaml", "billion_laughs", "\x00kind: ConfigMap\n" + laughs)
write("config_load", "billion_laughs_yaml", "\x01admin: {}\n" + laughs)
