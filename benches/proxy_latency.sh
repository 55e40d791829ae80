#!/usr/bin/env bash
# Proxy latency at a fixed rate, in interleaved rounds: nginx `return 200`
# reached directly, through haproxy and through sidewatch (access log on and
# off), each round running `oha -q 2000 --latency-correction -c 50` against
# each in turn (1 s warm-up, then the measured run), so a shared machine's
# slow minutes hit all of them alike. Prints every run's p50/p99 and the
# medians with what each proxy adds to direct. The same setup as
# proxy_rounds.sh (BASELINE_BIN, SIDEWATCH_BIN, PROXY_THREADS and HAPROXY_LOG
# work the same: HAPROXY_LOG=1 adds `haproxy_log`, haproxy writing a JSON
# access-log line and adding an X-Request-ID per request, the like-for-like
# peer of sidewatch with its access log on);
# run by hand after benches/proxy.sh has installed nginx, haproxy and wrk,
# with oha on the PATH (`cargo install oha`).
#
#   benches/proxy_latency.sh [rounds] [seconds per run]   (default 3 × 4 s)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
secs=${2:-4}
command -v oha >/dev/null || { echo "missing oha: cargo install oha" >&2; exit 1; }
. benches/release_bin.sh

. benches/proxy_peers.sh
start_upstream
names=(direct haproxy); ports=("$nginx_port" "$(port)"); procs=()
start_haproxy "${ports[1]}" "$nginx_port"
pids+=($haproxy_pid)
if [ "${HAPROXY_LOG:-0}" = 1 ]; then
  names+=(haproxy_log); ports+=($(port))
  start_haproxy "${ports[2]}" "$nginx_port" log
  pids+=($haproxy_pid)
fi
start_sidewatch_runs "$bin" "$nginx_port"
wait_ready

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); load: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "proxy.threads = ${PROXY_THREADS:-1}; oha -q 2000 --latency-correction -c 50, $rounds rounds of ${secs} s, interleaved"
for _ in $(seq "$rounds"); do
  for k in "${!names[@]}"; do
    url="http://127.0.0.1:${ports[$k]}/"
    oha -z 1s -q 2000 --latency-correction -c 50 --no-tui "$url" >/dev/null 2>&1
    oha -z "${secs}s" -q 2000 --latency-correction -c 50 --no-tui --output-format json "$url" \
      >"$work/run.json" 2>/dev/null
    python3 - "${names[$k]}" "$work/run.json" <<'PY' | tee -a "$work/runs"
import json, sys
p = json.load(open(sys.argv[2]))["latencyPercentiles"]
print("%s %.3f %.3f" % (sys.argv[1], p["p50"] * 1e3, p["p99"] * 1e3))
PY
  done
done
python3 - "$work/runs" <<'PY'
import statistics, sys
runs = {}
for line in open(sys.argv[1]):
    name, p50, p99 = line.split()
    runs.setdefault(name, []).append((float(p50), float(p99)))
median = lambda name, i: statistics.median(r[i] for r in runs[name])
base50, base99 = median("direct", 0), median("direct", 1)
for name in runs:
    p50, p99 = median(name, 0), median(name, 1)
    print("%-20s median p50 %.3f ms  p99 %.3f ms  added +%.3f / +%.3f ms" % (name, p50, p99, p50 - base50, p99 - base99))
    print("RESULT proxy_latency.%s_added_p50_ms %.3f" % (name, p50 - base50))
    print("RESULT proxy_latency.%s_added_p99_ms %.3f" % (name, p99 - base99))
PY
