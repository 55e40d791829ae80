#!/usr/bin/env bash
# Proxy throughput and latency, one run, same upstream: nginx `return 200`
# (Debian nginx) reached directly, through haproxy (Debian; the baseline
# peer), and through sidewatch's proxy with access logs on (events through
# the log pipeline to a stdout sink sent to /dev/null) and off. Saturation
# with wrk (50 connections, 2 threads); reports req/s, p50/p99, the ratios
# to direct and to haproxy, and the proxy's CPU-µs per request and RSS.
# Then fixed-rate latency with oha (`cargo install oha`; skipped with a note
# when missing): 2000 req/s with latency correction, p50/p99 and what each
# proxy adds to direct.
# Run by hand (root, Debian 12); installs missing packages. The machine is
# shared, so keep runs short and read the numbers as rough. Lines starting
# with `RESULT` are for benches/compare.sh.
#
#   benches/proxy.sh [seconds per run]   (default 5)
#
# SIDEWATCH_BIN runs a ready build instead of building the checkout.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-5}
conns=50

need=()
for pkg in nginx-light haproxy wrk python3 curl; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}"
fi
. benches/release_bin.sh

. benches/proxy_peers.sh
start_upstream
haproxy_port=$(port); sw_port=$(port); admin_port=$(port)
start_haproxy "$haproxy_port" "$nginx_port"
pids+=($haproxy_pid)

start_sidewatch() { # $1 = access_log true|false
  proxy_config "$work/sw.toml" "$admin_port" "$sw_port" "$nginx_port" "$1" "${PROXY_THREADS:-1}"
  "$bin" run --config "$work/sw.toml" >/dev/null 2>"$work/sw.err" &
  sw_pid=$!
  pids+=($sw_pid)
  for _ in $(seq 50); do curl -sf "http://127.0.0.1:$sw_port/" >/dev/null && return; sleep 0.1; done
  echo "sidewatch did not start:" >&2; cat "$work/sw.err" >&2; exit 1
}

# latency NAME PORT: "NAME<TAB>p50 ms<TAB>p99 ms" at 2000 req/s (oha).
latency() {
  command -v oha >/dev/null || return 0
  oha -z "${secs}s" -q 2000 --latency-correction -c "$conns" --no-tui \
    --output-format json "http://127.0.0.1:$2/" |
    python3 -c 'import json, sys
d = json.load(sys.stdin); p = d["latencyPercentiles"]
assert d["summary"]["successRate"] == 1.0, d["summary"]
print("%s\t%.3f\t%.3f" % (sys.argv[1], p["p50"] * 1e3, p["p99"] * 1e3))' "$1"
}

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# wrk's latency ("750.00us", "1.88ms", "1.02s") in milliseconds.
ms() { awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /us$/) n /= 1000; else if (v ~ /[0-9]s$/ && v !~ /ms$/) n *= 1000; printf "%.3f", n }'; }

# run KEY NAME PORT [PID]: one wrk run; with PID, CPU-µs per request and RSS of it.
run() {
  local key=$1; shift
  local name=$1 port=$2 pid=${3:-} before after out
  curl -sf "http://127.0.0.1:$port/" >/dev/null
  wrk -t2 -c$conns -d1s "http://127.0.0.1:$port/" >/dev/null # warm-up
  [ -n "$pid" ] && before=$(cpu_ticks "$pid")
  out=$(wrk -t2 -c$conns -d"${secs}s" --latency "http://127.0.0.1:$port/")
  local rps p50 p99 reqs
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  reqs=$(awk '/requests in/ {print $1}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  local extra=""
  if [ -n "$pid" ]; then
    after=$(cpu_ticks "$pid")
    local hz; hz=$(getconf CLK_TCK)
    extra=$(awk -v b="$before" -v a="$after" -v n="$reqs" -v hz="$hz" \
      'BEGIN {printf "%.1f", (a-b)/hz*1e6/n}')
    echo "RESULT proxy.${key}_cpu_us_per_req $extra" >> "$work/results"
    echo "RESULT proxy.${key}_rss_mib $(awk '/VmRSS/ {printf "%.1f", $2/1024}' "/proc/$pid/status")" >> "$work/results"
    extra="$extra µs CPU/req, RSS $(awk '/VmRSS/ {printf "%.1f MiB", $2/1024}' "/proc/$pid/status")"
  fi
  printf 'RESULT proxy.%s_rps %s\nRESULT proxy.%s_p50_ms %s\nRESULT proxy.%s_p99_ms %s\n' \
    "$key" "$rps" "$key" "$(ms "$p50")" "$key" "$(ms "$p99")" >> "$work/results"
  printf '%-26s %10s req/s  p50 %-8s p99 %-8s %s\n' "$name" "$rps" "$p50" "$p99" "$extra"
  echo "$name $rps" >> "$work/rps"
}

echo "machine: $(nproc) cores, $(uname -m), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); load: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "wrk -t2 -c$conns -d${secs}s, upstream nginx return 200; every process shares the 2 cores"
sleep 0.5
run direct "direct (nginx)" "$nginx_port"
run haproxy "haproxy $(haproxy -v | awk 'NR==1 {print $3}')" "$haproxy_port" "$haproxy_pid"
start_sidewatch true
run sidewatch_log "sidewatch (access log on)" "$sw_port" "$sw_pid"
latency_on=$(latency "sidewatch (access log on)" "$sw_port")
kill "$sw_pid"; wait "$sw_pid" 2>/dev/null || true
start_sidewatch false
run sidewatch "sidewatch (access log off)" "$sw_port" "$sw_pid"
curl -s "http://127.0.0.1:$admin_port/metrics" | grep -E '^http_requests_total' | head -3
if command -v oha >/dev/null; then
  echo "fixed rate: oha -z ${secs}s -q 2000 --latency-correction -c $conns (p50 / p99, added to direct)"
  direct=$(latency "direct (nginx)" "$nginx_port")
  { echo "$direct"
    latency "haproxy" "$haproxy_port"
    echo "$latency_on"
    latency "sidewatch (access log off)" "$sw_port"
  } | awk -F'\t' 'NR==1 {d50=$(NF-1); d99=$NF}
      {printf "%-26s p50 %.3f ms  p99 %.3f ms  added %+.3f / %+.3f ms\n", $1, $(NF-1), $NF, $(NF-1)-d50, $NF-d99}'
else
  echo "fixed-rate latency skipped: oha is not installed (cargo install oha)"
fi
awk '{r=$NF; $NF=""} NR==1 {d=r} NR==2 {h=r; printf "%s: %.2f of direct\n", $0, r/d}
     NR>2 {printf "%s: %.2f of direct, %.2f of haproxy\n", $0, r/d, r/h}' "$work/rps"
cat "$work/results"
