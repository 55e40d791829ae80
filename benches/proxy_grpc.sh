#!/usr/bin/env bash
# gRPC-shaped HTTP/2 through the proxy, in interleaved rounds: h2load sends
# unary-call-sized POSTs (`content-type: application/grpc`, `te: trailers`,
# one 5-byte-framed 100-byte message) over h2c with prior knowledge to an
# nginx HTTP/2 cleartext upstream that answers each as a gRPC server ends a
# call (`grpc-status: 0` in trailers, after a short body) — reached directly,
# through haproxy (h2 on both sides, `proto h2`) and through sidewatch
# (`app_http2 = "grpc"`: HTTP/2 to the app), access log on and off. Prints
# each one's median calls/s and CPU-µs per call (from /proc, the proxy's own
# process). What it measures is the proxy's HTTP/2 path both ways; nginx
# stands in for a gRPC server (no protobuf is decoded on either side).
# Run by hand (Debian 12: apt-get install nghttp2-client nginx-light haproxy).
#
#   benches/proxy_grpc.sh [rounds] [seconds per run]   (default 5 × 3 s)
#
# SIDEWATCH_BIN and PROXY_THREADS work as in proxy_rounds.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-5}
secs=${2:-3}
for tool in h2load nginx haproxy; do
  command -v "$tool" >/dev/null || { echo "missing $tool: apt-get install nghttp2-client nginx-light haproxy" >&2; exit 1; }
done
. benches/release_bin.sh
. benches/proxy_peers.sh
work=$(mktemp -d)
pids=()
trap stop_all EXIT

# The upstream: nginx h2c, one worker, a gRPC-shaped answer.
upstream=$(port)
start_nginx "$upstream" grpc
pids+=($nginx_pid)
printf '\0\0\0\0\144%0100d' 0 > "$work/call" # gRPC frame: uncompressed, 100 bytes

names=(direct haproxy); ports=("$upstream" "$(port)"); procs=(0)
start_haproxy "${ports[1]}" "$upstream" h2
pids+=($haproxy_pid); procs+=($haproxy_pid)
for access_log in true false; do
  listen=$(port)
  proxy_config "$work/sw_$access_log.toml" "$(port)" "$listen" "$upstream" "$access_log" "${PROXY_THREADS:-1}"
  "$bin" run --config "$work/sw_$access_log.toml" >/dev/null 2>"$work/sw_$access_log.err" &
  pids+=($!); procs+=($!); ports+=("$listen"); names+=("sidewatch_log_$access_log")
done
sleep 1

h2() { # port seconds
  h2load -c 50 -m 10 -t 2 -D "$2" \
    -H 'content-type: application/grpc' -H 'te: trailers' -d "$work/call" \
    "http://127.0.0.1:$1/bench.v1.Echo/Call" 2>&1
}
for k in "${!ports[@]}"; do # every path answers 200 before the rounds
  out=$(h2 "${ports[$k]}" 1)
  grep -q '2xx, 0 3xx, 0 4xx, 0 5xx' <<<"$out" || { echo "${names[$k]}: not all 2xx:"; echo "$out"; exit 1; }
done
cpu_ticks() { [ "$1" = 0 ] && echo 0 || awk '{print $14 + $15}' "/proc/$1/stat"; }
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); load: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "proxy.threads = ${PROXY_THREADS:-1}; h2load -c 50 -m 10 -t 2, $rounds rounds of ${secs} s, interleaved"
for _ in $(seq "$rounds"); do
  for k in "${!names[@]}"; do
    h2 "${ports[$k]}" 1 >/dev/null # warm-up, outside the CPU measured
    before=$(cpu_ticks "${procs[$k]}")
    calls=$(h2 "${ports[$k]}" "$secs" | awk '/^requests:/ {print $8}')
    after=$(cpu_ticks "${procs[$k]}")
    echo "${names[$k]} $calls $before $after" >> "$work/runs"
  done
done
summarize_rounds "$work/runs" "$secs" call proxy_grpc
