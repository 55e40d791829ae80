#!/usr/bin/env bash
# Where the proxy's CPU goes: sidewatch in front of nginx `return 200` under
# `wrk -t2 -c50`, sampled with `perf record` (cpu-clock, every 2 ms of CPU,
# DWARF call graphs), then the top symbols of the proxy loops and of the log
# pipeline, each as µs per request (samples × 2 ms / requests).
# Run by hand (root, Debian 12; apt-get install linux-perf nginx-light wrk).
#
#   benches/proxy_profile.sh [threads] [access_log true|false] [seconds]
#                                         (default 2 true 5)
#
# CLOSE=1 sends every request on a new client connection (`wrk -H
# 'Connection: close'`), as proxy_rounds.sh does.
#
# SIDEWATCH_BIN runs a ready build instead of building the checkout; build it
# with CARGO_PROFILE_RELEASE_STRIP=false so perf can name the symbols. The
# recording stays in $PERF_DATA (default /tmp/sidewatch-proxy.perf.data) for
# `perf report -i`. PERF_PERIOD sets the ns of CPU between samples.
set -euo pipefail
cd "$(dirname "$0")/.."
threads=${1:-2}
access_log=${2:-true}
secs=${3:-5}
data=${PERF_DATA:-/tmp/sidewatch-proxy.perf.data}
period=${PERF_PERIOD:-2000000} # ns of CPU between samples
export CARGO_PROFILE_RELEASE_STRIP=false # perf names the symbols
. benches/release_bin.sh
wrk_args=(-t2 -c50)
[ "${CLOSE:-0}" = 1 ] && wrk_args+=(-H "Connection: close")
for tool in perf wrk nginx; do
  command -v "$tool" >/dev/null || { echo "missing $tool: apt-get install linux-perf wrk nginx-light" >&2; exit 1; }
done

. benches/proxy_peers.sh
start_upstream
listen=$(port)
proxy_config "$work/sidewatch.toml" "$(port)" "$listen" "$nginx_port" "$access_log" "$threads"
"$bin" run --config "$work/sidewatch.toml" >/dev/null 2>"$work/sidewatch.err" &
sidewatch_pid=$!
pids+=($sidewatch_pid)
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$listen/" >/dev/null && break; sleep 0.1; done
wrk "${wrk_args[@]}" -d1s "http://127.0.0.1:$listen/" >/dev/null # warm-up

perf record -q -e cpu-clock -c "$period" --call-graph dwarf,16384 -p "$sidewatch_pid" -o "$data" \
  -- sleep "$((secs + 1))" 2>/dev/null &
perf_pid=$!
sleep 0.5
requests=$(wrk "${wrk_args[@]}" -d"${secs}s" "http://127.0.0.1:$listen/" | awk '/requests in/ {print $1}')
wait "$perf_pid" || true
echo "proxy.threads = $threads, access_log = $access_log: $requests requests in $secs s ($((requests / secs)) req/s)"

loops=$(seq -s, -f 'proxy-loop-%g' 0 $((threads - 1)))
top() { # comm filter, title
  echo "== $2 (µs per request, self time)"
  perf report -i "$data" -n --no-children --comm "$1" --sort sym -g none --stdio 2>/dev/null |
    awk -v req="$requests" -v us="$((period / 1000))" '/^ +[0-9.]+%/ && n < 25 {printf "%6.2f  %s\n", $2 * us / req, substr($0, index($0, $4)); n++}'
}
top "$loops" "proxy loops"
threads_seen=$(perf report -i "$data" --no-children --sort comm --stdio -g none 2>/dev/null | awk '/^ +[0-9.]+%/ {print $2}' | grep -v '^proxy-loop' | paste -sd, -)
[ -n "$threads_seen" ] && top "$threads_seen" "other threads ($threads_seen)"
