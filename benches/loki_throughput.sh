#!/usr/bin/env bash
# Tail → stages → Loki sink (protobuf + snappy) throughput, and the disk
# buffer during an outage (run by hand, not in CI).
#
# Generates N 200-byte JSON lines in a temp file, then:
#   1. "up":     a loopback Loki stand-in (Python, answers 204 to every push
#                after reading the body) receives everything; reports lines/s,
#                CPU-seconds per million lines and peak RSS of sidewatch.
#   2. "outage": nothing listens at the Loki URL; sidewatch reads the whole
#                file into its memory + disk buffer; reports how fast the disk
#                buffer filled (MB/s, bytes on disk / time) and peak RSS.
#
#   benches/loki_throughput.sh [lines]     (default 1000000)
set -euo pipefail
cd "$(dirname "$0")/.."
lines=${1:-1000000}
cargo build --release --quiet
bin=${CARGO_TARGET_DIR:-$PWD/target}/release/sidewatch

work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

echo "== generating $lines lines"
python3 - "$work/app.log" "$lines" <<'PY'
import json, sys
path, n = sys.argv[1], int(sys.argv[2])
with open(path, "w") as f:
    for i in range(n):
        line = ('{"timestamp":"2025-12-07T10:30:00.%03dZ","level":"info","request_id":"req-%08x",'
                '"message":"Chat message processed","intent":"faq","latency_ms":%d,'
                '"app":"chatbot","user":"u%d","pad":"' % (i % 1000, i, i % 2000, i))
        line += "x" * (197 - len(line)) + '"}'  # 199 characters + newline
        json.loads(line)  # every line is valid JSON
        f.write(line + "\n")
PY

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
ticks=$(getconf CLK_TCK)
cpu_seconds() { awk -v hz="$ticks" '{printf "%.3f", ($14 + $15) / hz}' "/proc/$1/stat"; }
peak_kib() { awk '/VmHWM/ {print $2}' "/proc/$1/status"; }
now() { date +%s.%N; }
metric() {
  curl -s "http://127.0.0.1:$admin/metrics" 2>/dev/null | awk -v m="$1" 'index($0, m) == 1 {print $2}' | head -1
}

loki=$(free_port)
write_config() {
  admin=$(free_port)
  rm -rf "$work/state"
  cat > "$work/sidewatch.toml" <<TOML
[admin]
listen = "127.0.0.1:$admin"
[self_log]
level = "error"
[process]
enabled = false
[logs]
state_dir = "$work/state"
[[logs.sources]]
name = "bench"
include = ["$work/app.log"]
[[logs.sinks]]
name = "loki"
type = "loki"
url = "http://127.0.0.1:$loki"
[logs.sinks.delivery]
disk_buffer_max_bytes = 4294967296
TOML
}

echo "== up: loopback Loki stand-in on :$loki"
python3 - "$loki" <<'PY' &
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(204); self.send_header("Content-Length", "0"); self.end_headers()
    def log_message(self, *a): pass
ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
PY
server=$!
sleep 0.5
write_config
start=$(now)
"$bin" run --config "$work/sidewatch.toml" &
pid=$!
while :; do
  n=$(metric 'sidewatch_sink_events_total{sink="loki",outcome="delivered"}'); n=${n:-0}
  [ "${n%.*}" -ge "$lines" ] && break
  kill -0 "$pid" 2>/dev/null || { echo "sidewatch exited"; exit 1; }
  sleep 0.05
done
end=$(now)
cpu=$(cpu_seconds "$pid"); peak=$(peak_kib "$pid")
kill -TERM "$pid"; wait "$pid" || true
kill "$server"; wait "$server" 2>/dev/null || true
awk -v a="$start" -v b="$end" -v n="$lines" -v c="$cpu" -v p="$peak" 'BEGIN {
  printf "   %.0f lines/s wall, %.2f CPU-s per M lines (%.0f lines per CPU-second), peak RSS %.1f MiB\n",
    n / (b - a), c * 1e6 / n, n / c, p / 1024 }'

echo "== outage: nothing listens on :$loki"
write_config
start=$(now)
"$bin" run --config "$work/sidewatch.toml" &
pid=$!
while :; do
  n=$(metric 'sidewatch_log_events_total{source="bench",outcome="ok"}'); n=${n:-0}
  [ "${n%.*}" -ge "$lines" ] && break
  kill -0 "$pid" 2>/dev/null || { echo "sidewatch exited"; exit 1; }
  sleep 0.05
done
sleep 1
end=$(now)
disk=$(metric 'sidewatch_buffer_bytes{sink="loki",medium="disk"}')
events=$(metric 'sidewatch_buffer_events{sink="loki",medium="disk"}')
peak=$(peak_kib "$pid")
kill -TERM "$pid"; wait "$pid" || true
awk -v a="$start" -v b="$end" -v d="${disk:-0}" -v e="${events:-0}" -v p="$peak" 'BEGIN {
  printf "   disk buffer: %d events, %.1f MB in %.2f s = %.1f MB/s (bounded by the pipeline), peak RSS %.1f MiB\n",
    e, d / 1e6, b - a - 1, d / 1e6 / (b - a - 1), p / 1024 }'
