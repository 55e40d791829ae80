#!/usr/bin/env bash
# Log-derived metrics, side by side with mtail (run by hand, not in CI).
#
# Generates N valid JSON request lines of about 200 bytes, then measures, for each tool,
# CPU-seconds per million lines and peak RSS while it turns the whole file
# into the same two metrics: a counter by `intent` and a latency histogram
# (latency_ms → seconds, SLO buckets) by `intent`.
#   sidewatch: file tail → parse (JSON) → correlate → rules (exemplars), three ways:
#              full (enrich, redact, stdout sink to /dev/null), lean (no enrich or
#              redact, stdout), metrics-only (no enrich or redact, `discard` sink:
#              what mtail does — metrics from logs, no forwarding)
#   mtail:     --one_shot over the same file, a regex program (no JSON parser)
#
# Lines starting with `RESULT` are for benches/compare.sh.
#
#   benches/log_metrics.sh [lines]     (default 1000000)
#   FEATURES=mimalloc benches/log_metrics.sh     (build with mimalloc)
set -euo pipefail
cd "$(dirname "$0")/.."
lines=${1:-1000000}

if ! command -v mtail >/dev/null; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q mtail
fi
cargo build --release --quiet ${FEATURES:+--features "$FEATURES"}
bin=${CARGO_TARGET_DIR:-$PWD/target}/release/sidewatch

work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

echo "== generating $lines lines"
python3 - "$work/app.log" "$lines" <<'PY'
import sys
path, n = sys.argv[1], int(sys.argv[2])
intents = ["faq", "billing", "smalltalk", "order"]
with open(path, "w") as f:
    for i in range(n):
        line = ('{"timestamp":"2025-12-07T10:30:00.%03dZ","level":"info","request_id":"req-%08x",'
                '"message":"Chat message processed","intent":"%s","latency_ms":%d,'
                '"pod":"chatbot-service-xyz","user":"u%d"' % (i % 1000, i, intents[i % 4], (i * 37) % 3000, i))
        line += ',"pad":"' + "x" * max(0, 199 - len(line) - 10) + '"}'
        f.write(line + "\n")
PY

ticks=$(getconf CLK_TCK)
cpu_seconds() { awk -v hz="$ticks" '{printf "%.3f", ($14 + $15) / hz}' "/proc/$1/stat"; }
peak_kib() { awk '/VmHWM/ {print $2}' "/proc/$1/status"; }
now() { date +%s.%N; }

rules='
[[log_metrics]]
name = "app_messages_total"
labels = { intent = "intent" }
[[log_metrics]]
name = "app_latency_seconds"
type = "histogram"
value_field = "latency_ms"
value_unit = "ms"
labels = { intent = "intent" }
'
run_sidewatch() { # name extra-stage-config sink-type
  local port; port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  rm -rf "$work/state"
  cat > "$work/sidewatch.toml" <<TOML
[admin]
listen = "127.0.0.1:$port"
[self_log]
level = "warn"
[process]
enabled = false
[logs]
state_dir = "$work/state"
[[logs.sources]]
name = "bench"
include = ["$work/app.log"]
[[logs.sinks]]
type = "${3:-stdout}"
$2
$rules
TOML
  local start end pid n
  start=$(now)
  "$bin" run --config "$work/sidewatch.toml" > /dev/null &
  pid=$!
  while :; do
    n=$(curl -s "http://127.0.0.1:$port/metrics" 2>/dev/null |
      awk '/^app_latency_seconds_count/ {s += $2} END {printf "%d", s}')
    [ "${n:-0}" -ge "$lines" ] && break
    kill -0 "$pid" 2>/dev/null || { echo "sidewatch exited"; exit 1; }
    sleep 0.05
  done
  end=$(now)
  eval "${1}_cpu=$(cpu_seconds "$pid") ${1}_peak=$(peak_kib "$pid")"
  eval "${1}_wall=$(awk -v a="$start" -v b="$end" 'BEGIN {printf "%.3f", b - a}')"
  curl -s -H 'Accept: application/openmetrics-text' "http://127.0.0.1:$port/metrics" |
    grep -m1 'app_latency_seconds_bucket.*# {trace_id=' > "$work/exemplar" || true
  kill -TERM "$pid"; wait "$pid" || true
}

echo "== sidewatch (every stage)"
run_sidewatch full ""
echo "   exemplar: $(cut -c1-110 "$work/exemplar")"
echo "== sidewatch (lean: no enrich, no redact)"
lean='[logs.stages.enrich]
pod = false
[logs.stages.redact]
enabled = false'
run_sidewatch lean "$lean"
echo "== sidewatch (metrics only: lean, discard sink)"
run_sidewatch only "$lean" discard

mkdir -p "$work/progs"
cat > "$work/progs/app.mtail" <<'MTAIL'
counter app_messages_total by intent
histogram app_latency_seconds by intent buckets 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0

/"intent":"(?P<intent>[^"]*)","latency_ms":(?P<latency_ms>\d+)/ {
  app_messages_total[$intent]++
  app_latency_seconds[$intent] = $latency_ms / 1000.0
}
MTAIL
echo "== mtail $(mtail --version 2>&1 | awk '{print $3; exit}')"
start=$(now)
/usr/bin/time -f "%U %S %M" -o "$work/mtail.time" \
  mtail --one_shot --one_shot_format prometheus --progs "$work/progs" --logs "$work/app.log" \
  > "$work/mtail.out" 2>/dev/null
end=$(now)
read -r mu ms mt_peak < "$work/mtail.time"
mt_cpu=$(awk -v a="$mu" -v b="$ms" 'BEGIN {printf "%.3f", a + b}')
mt_wall=$(awk -v a="$start" -v b="$end" 'BEGIN {printf "%.3f", b - a}')
mt_count=$(awk '/^app_latency_seconds_count/ {s += $2} END {printf "%d", s}' "$work/mtail.out")
[ "$mt_count" -eq "$lines" ] || { echo "mtail counted $mt_count of $lines lines"; exit 1; }

echo
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), load $(cut -d' ' -f1-3 /proc/loadavg)"
printf "%-20s %14s %12s %10s\n" tool "CPU-s/M lines" "lines/s" "peak RSS"
report() {
  awk -v t="$1" -v c="$2" -v w="$3" -v p="$4" -v n="$lines" 'BEGIN {
    printf "%-20s %14.2f %12.0f %7.1f MiB\n", t, c / n * 1e6, n / w, p / 1024 }'
}
report "sidewatch (full)" "$full_cpu" "$full_wall" "$full_peak"
report "sidewatch (lean)" "$lean_cpu" "$lean_wall" "$lean_peak"
report "sidewatch (metrics)" "$only_cpu" "$only_wall" "$only_peak"
report mtail "$mt_cpu" "$mt_wall" "$mt_peak"
awk -v a="$full_cpu" -v l="$lean_cpu" -v o="$only_cpu" -v b="$mt_cpu" -v c="$only_peak" -v d="$mt_peak" 'BEGIN {
  printf "ratios (mtail / sidewatch): CPU %.2fx full, %.2fx lean, %.2fx metrics-only; peak RSS %.2fx (metrics-only)\n", b / a, b / l, b / o, d / c }'
awk -v n="$lines" -v fc="$full_cpu" -v oc="$only_cpu" -v ow="$only_wall" -v op="$only_peak" -v fp="$full_peak" \
    -v mc="$mt_cpu" -v mw="$mt_wall" -v mp="$mt_peak" 'BEGIN {
  printf "RESULT mtail.sidewatch_full_cpu_s_per_m %.3f\nRESULT mtail.sidewatch_full_peak_rss_mib %.1f\n", fc / n * 1e6, fp / 1024
  printf "RESULT mtail.sidewatch_metrics_cpu_s_per_m %.3f\nRESULT mtail.mtail_cpu_s_per_m %.3f\n", oc / n * 1e6, mc / n * 1e6
  printf "RESULT mtail.sidewatch_metrics_lines_per_s %.0f\nRESULT mtail.mtail_lines_per_s %.0f\n", n / ow, n / mw
  printf "RESULT mtail.sidewatch_metrics_peak_rss_mib %.1f\nRESULT mtail.mtail_peak_rss_mib %.1f\n", op / 1024, mp / 1024 }'
