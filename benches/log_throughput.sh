#!/usr/bin/env bash
# Log pipeline throughput, side by side with rsyslog (run by hand, not in CI).
#
# Generates N 200-byte JSON lines (the shape of SLOS.md §5) in a temp file,
# then measures, for each tool, CPU-seconds per million lines, lines/s and
# peak RSS while it reads the whole file and writes every event out:
#   sidewatch: file tail → parse → correlate → enrich → redact → stdout (/dev/null)
#   rsyslog:   imfile → mmjsonparse → set a field → omfile (its own config, temp dir)
#
# Lines starting with `RESULT` are for benches/compare.sh.
#
#   benches/log_throughput.sh [lines]     (default 1000000)
set -euo pipefail
cd "$(dirname "$0")/.."
lines=${1:-1000000}

if ! command -v rsyslogd >/dev/null; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q rsyslog
fi
. benches/release_bin.sh

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
                '"user":"u%d","pad":"' % (i % 1000, i, i % 2000, i))
        line += "x" * (197 - len(line)) + '"}'  # 199 characters + newline
        json.loads(line)  # every line is valid JSON
        f.write(line + "\n")
PY
size=$(stat -c %s "$work/app.log")
echo "   $(awk -v s="$size" -v n="$lines" 'BEGIN {printf "%.1f MiB, %.0f bytes/line", s/1048576, s/n}')"

ticks=$(getconf CLK_TCK)
cpu_seconds() { awk -v hz="$ticks" '{printf "%.3f", ($14 + $15) / hz}' "/proc/$1/stat"; }
peak_kib() { awk '/VmHWM/ {print $2}' "/proc/$1/status"; }
now() { date +%s.%N; }

# ---- sidewatch
. benches/log_setup.sh "$work/app.log"
echo "== sidewatch"
start=$(now)
"$bin" run --config "$work/sidewatch.toml" > /dev/null &
pid=$!
while :; do
  n=$(delivered); n=${n:-0}
  [ "${n%.*}" -ge "$lines" ] && break
  kill -0 "$pid" 2>/dev/null || { echo "sidewatch exited"; exit 1; }
  sleep 0.05
done
end=$(now)
sw_cpu=$(cpu_seconds "$pid"); sw_peak=$(peak_kib "$pid")
sw_wall=$(awk -v a="$start" -v b="$end" 'BEGIN {printf "%.3f", b - a}')
kill -TERM "$pid"; wait "$pid" || true

# ---- rsyslog
mkdir -p "$work/rs"
cat > "$work/rsyslog.conf" <<CONF
global(workDirectory="$work/rs" maxMessageSize="64k")
module(load="imfile" mode="polling" PollingInterval="1")
module(load="mmjsonparse")
template(name="json" type="list") { property(name="\$!all-json") constant(value="\n") }
ruleset(name="app") {
  action(type="mmjsonparse" cookie="" useRawMsg="on")
  set \$!sidewatch_bench = "1";
  action(type="omfile" file="$work/rsyslog.out" template="json")
}
input(type="imfile" File="$work/app.log" Tag="app" ruleset="app" freshStartTail="off")
CONF
echo "== rsyslog $(rsyslogd -v | head -1 | awk '{print $2}')"
start=$(now)
rsyslogd -n -f "$work/rsyslog.conf" -i "$work/rsyslog.pid" 2>/dev/null &
pid=$!
while :; do
  n=$( { wc -l < "$work/rsyslog.out"; } 2>/dev/null || echo 0)
  [ "$n" -ge "$lines" ] && break
  kill -0 "$pid" 2>/dev/null || { echo "rsyslogd exited"; exit 1; }
  sleep 0.05
done
end=$(now)
rs_cpu=$(cpu_seconds "$pid"); rs_peak=$(peak_kib "$pid")
rs_wall=$(awk -v a="$start" -v b="$end" 'BEGIN {printf "%.3f", b - a}')
kill -TERM "$pid"; wait "$pid" || true

echo
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
printf "%-10s %14s %12s %14s %10s\n" tool "CPU-s/M lines" "lines/s" "lines/CPU-s" "peak RSS"
report() {
  awk -v t="$1" -v c="$2" -v w="$3" -v p="$4" -v n="$lines" 'BEGIN {
    printf "%-10s %14.2f %12.0f %14.0f %7.1f MiB\n", t, c / n * 1e6, n / w, n / c, p / 1024 }'
}
report sidewatch "$sw_cpu" "$sw_wall" "$sw_peak"
report rsyslog "$rs_cpu" "$rs_wall" "$rs_peak"
awk -v a="$sw_cpu" -v b="$rs_cpu" -v c="$sw_peak" -v d="$rs_peak" 'BEGIN {
  printf "ratios (rsyslog / sidewatch): CPU %.2fx, peak RSS %.2fx\n", b / a, d / c }'
awk -v n="$lines" -v sc="$sw_cpu" -v sw="$sw_wall" -v sp="$sw_peak" -v rc="$rs_cpu" -v rw="$rs_wall" -v rp="$rs_peak" 'BEGIN {
  printf "RESULT rsyslog.sidewatch_cpu_s_per_m %.3f\nRESULT rsyslog.rsyslog_cpu_s_per_m %.3f\n", sc / n * 1e6, rc / n * 1e6
  printf "RESULT rsyslog.sidewatch_lines_per_s %.0f\nRESULT rsyslog.rsyslog_lines_per_s %.0f\n", n / sw, n / rw
  printf "RESULT rsyslog.sidewatch_peak_rss_mib %.1f\nRESULT rsyslog.rsyslog_peak_rss_mib %.1f\n", sp / 1024, rp / 1024 }'
