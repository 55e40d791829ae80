#!/usr/bin/env bash
# Proxy throughput in interleaved rounds: the same setup as proxy.sh (nginx
# `return 200` upstream, haproxy as the peer, sidewatch with access logs on
# and off, `wrk -t2 -c50`), but all four run at once and each round measures
# each of haproxy / sidewatch (log on) / sidewatch (log off) in turn, so a
# shared machine's slow minutes hit all of them alike. Prints every run and
# the medians: req/s, the ratio to haproxy's median, CPU-µs per request.
# Run by hand (root, Debian 12) after benches/proxy.sh has installed nginx,
# haproxy and wrk.
#
#   benches/proxy_rounds.sh [rounds] [seconds per run]   (default 5 × 3 s)
#
# With BASELINE_BIN set to another build of sidewatch (say, of the commit
# before a change), it runs too, access logs on and off, as
# `baseline_log_true` / `baseline_log_false`: an A/B of two builds in the
# same rounds. SIDEWATCH_BIN, when set, is run
# instead of building the checkout. PROXY_THREADS (default 1) sets
# `proxy.threads` of every sidewatch run. With HAPROXY_LOG=1 a second
# haproxy runs as `haproxy_log`, writing a JSON access-log line per request
# to its stdout (discarded, as sidewatch's is) and adding an X-Request-ID:
# the like-for-like peer of sidewatch with its access log on. Ratios stay
# against `haproxy`, the one without a log. With CLOSE=1 every request comes
# on a new client connection (`wrk -H 'Connection: close'`): the short-lived
# clients' case, where what counts is whether the proxy reuses its idle
# connections to the app. With BODY=N every request is a POST of N bytes
# (the path through sidewatch's keep-alive pool rather than the client
# connection's own app connection).
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-5}
secs=${2:-3}
. benches/release_bin.sh
wrk_args=(-t2 -c50)
[ "${CLOSE:-0}" = 1 ] && wrk_args+=(-H "Connection: close")

. benches/proxy_peers.sh
start_upstream
if [ -n "${BODY:-}" ]; then
  head -c "$BODY" /dev/zero | tr '\0' x > "$work/body"
  printf 'wrk.method = "POST"\nwrk.body = io.open("%s"):read("*a")\n' "$work/body" > "$work/post.lua"
  wrk_args+=(-s "$work/post.lua")
fi
names=(haproxy); ports=($(port)); procs=()
start_haproxy "${ports[0]}" "$nginx_port"
pids+=($haproxy_pid); procs+=($haproxy_pid)
if [ "${HAPROXY_LOG:-0}" = 1 ]; then
  names+=(haproxy_log); ports+=($(port))
  start_haproxy "${ports[1]}" "$nginx_port" log
  pids+=($haproxy_pid); procs+=($haproxy_pid)
fi
start_sidewatch_runs "$bin" "$nginx_port"
wait_ready

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); load: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "proxy.threads = ${PROXY_THREADS:-1}; wrk ${wrk_args[*]}, $rounds rounds of ${secs} s per proxy, interleaved"
for _ in $(seq "$rounds"); do
  for k in "${!names[@]}"; do
    wrk "${wrk_args[@]}" -d1s "http://127.0.0.1:${ports[$k]}/" >/dev/null # warm-up
    before=$(cpu_ticks "${procs[$k]}")
    requests=$(wrk "${wrk_args[@]}" -d"${secs}s" "http://127.0.0.1:${ports[$k]}/" | awk '/requests in/ {print $1}')
    after=$(cpu_ticks "${procs[$k]}")
    echo "${names[$k]} $requests $before $after" >> "$work/runs"
  done
done
summarize_rounds "$work/runs" "$secs" req proxy_rounds
