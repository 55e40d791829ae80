#!/usr/bin/env bash
# Where the two cores go at saturation: haproxy and sidewatch (access log on
# and off) behind wrk against nginx `return 200`, interleaved rounds. Per
# round and proxy: req/s, the share of the machine left idle (/proc/stat),
# CPU-µs per request of the proxy, of each of its threads (by name) and of
# nginx's worker. A proxy that spends less CPU per request than haproxy yet
# serves fewer requests leaves the cores idle more: this shows which.
# Medians at the end; drops and deliveries of the access log from /metrics.
# Run by hand (root, Debian 12), like benches/proxy_rounds.sh.
#
#   benches/proxy_where.sh [rounds] [seconds]   (default 3 rounds of 5 s)
#
# SIDEWATCH_BIN runs a ready build; PROXY_THREADS sets proxy.threads
# (default 2). PIPELINE_POLICY=idle|nice runs sidewatch's other threads
# (the log pipeline's) under SCHED_IDLE or at nice 19, an experiment: the
# proxy loops then get the cores first.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
secs=${2:-5}
. benches/release_bin.sh
. benches/proxy_peers.sh
start_upstream
names=(haproxy); ports=($(port)); procs=(); admins=(-)
start_haproxy "${ports[0]}" "$nginx_port"
pids+=($haproxy_pid); procs+=($haproxy_pid)
for log in true false; do
  listen=$(port); admin=$(port)
  proxy_config "$work/$log.toml" "$admin" "$listen" "$nginx_port" "$log" "${PROXY_THREADS:-2}"
  "$bin" run --config "$work/$log.toml" >/dev/null 2>"$work/$log.err" &
  pids+=($!); procs+=($!); ports+=("$listen"); names+=("sidewatch_log_$log"); admins+=("$admin")
done
wait_ready
if [ -n "${PIPELINE_POLICY:-}" ]; then
  for pid in "${procs[@]:1}"; do
    for task in /proc/"$pid"/task/*; do
      [ "$(cat "$task/comm")" = sidewatch ] || continue
      case $PIPELINE_POLICY in
        idle) chrt -i -p 0 "${task##*/}" ;;
        nice) renice -n 19 -p "${task##*/}" >/dev/null ;;
      esac
    done
  done
fi

ticks() { awk '{print $14 + $15}' "$1"; }
workers() { # nginx's worker processes' CPU ticks
  local total=0 child
  for child in $(cat /proc/"$nginx_pid"/task/*/children); do total=$((total + $(ticks /proc/"$child"/stat))); done
  echo "$total"
}
threads() { for t in /proc/"$1"/task/*; do echo "$(tr ' ' _ < "$t/comm") $(ticks "$t/stat")"; done; }
idle() { awk '/^cpu / {print $5 + $6}' /proc/stat; }

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); wrk -t2 -c50, ${secs} s runs"
for _ in $(seq "$rounds"); do
  for k in "${!names[@]}"; do
    wrk -t2 -c50 -d1s "http://127.0.0.1:${ports[$k]}/" >/dev/null # warm-up
    idle0=$(idle); nginx0=$(workers); proxy0=$(ticks /proc/"${procs[$k]}"/stat)
    threads "${procs[$k]}" > "$work/threads0"
    out=$(wrk -t2 -c50 -d"${secs}s" "http://127.0.0.1:${ports[$k]}/")
    idle1=$(idle); nginx1=$(workers); proxy1=$(ticks /proc/"${procs[$k]}"/stat)
    threads "${procs[$k]}" > "$work/threads1"
    reqs=$(awk '/requests in/ {print $1}' <<<"$out")
    per_thread=$(paste "$work/threads0" "$work/threads1" |
      awk -v n="$reqs" -v hz="$(getconf CLK_TCK)" '{t[$1] += ($4 - $2) / hz * 1e6 / n} END {for (k in t) printf "%s %.2f  ", k, t[k]}')
    awk -v name="${names[$k]}" -v n="$reqs" -v s="$secs" -v hz="$(getconf CLK_TCK)" -v cores="$(nproc)" \
      -v idle=$((idle1 - idle0)) -v nginx=$((nginx1 - nginx0)) -v proxy=$((proxy1 - proxy0)) -v threads="$per_thread" \
      'BEGIN {printf "%-20s %7.0f req/s  idle %4.1f %%  proxy %5.2f µs/req  nginx %4.2f µs/req   threads: %s\n",
              name, n / s, 100 * idle / (hz * s * cores), proxy / hz * 1e6 / n, nginx / hz * 1e6 / n, threads}' |
      tee -a "$work/rounds"
  done
done
echo "== medians"
python3 - "$work/rounds" <<'PY'
import statistics, sys
runs = {}
for line in open(sys.argv[1]):
    f = line.split()
    runs.setdefault(f[0], []).append((float(f[1]), float(f[4]), float(f[7])))
peer = statistics.median(r for r, _, _ in runs["haproxy"])
for name, rows in runs.items():
    rps, idle, cpu = (statistics.median(col) for col in zip(*rows))
    print("%-20s %7.0f req/s  %.3f of haproxy  idle %4.1f %%  proxy %5.2f µs/req" % (name, rps, rps / peer, idle, cpu))
PY
for k in 1 2; do
  echo "${names[$k]}: $(curl -s "http://127.0.0.1:${admins[$k]}/metrics" |
    awk '/^(sidewatch_proxy_access_log_dropped_total|sidewatch_sink_events_total)/ {printf "%s %s  ", $1, $2}')"
done
