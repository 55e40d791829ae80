#!/usr/bin/env bash
# Every side-by-side comparison in one command (run by hand, not in CI):
# builds the release binary, installs the peers when missing (Debian 12 apt
# packages), runs each comparison script under its own time limit in its own
# session, and prints one Markdown table of ratios (sidewatch ÷ peer) with the
# machine it ran on.
#
#   exporters  benches/collectors.sh 100 (PROBES=1): sidewatch's PostgreSQL +
#              Redis + pool collectors and 3 health probes vs
#              prometheus-postgres-exporter + prometheus-redis-exporter +
#              prometheus-blackbox-exporter on the same servers and targets
#   rsyslog    benches/log_throughput.sh 1000000: file → JSON parse → file/stdout
#   mtail      benches/log_metrics.sh 1000000: metrics from the same log lines
#   haproxy    benches/proxy.sh 5: wrk through each proxy to one nginx
#
#   benches/compare.sh      (about 5 minutes; at most 17 minutes after the build)
# Each part's full output is printed after it; a part that fails or runs out
# of time is reported in the table and the others still run. Every process a
# part leaves behind in its session is listed and stopped (by PID).
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
for pkg in postgresql redis-server prometheus-postgres-exporter prometheus-redis-exporter \
  prometheus-blackbox-exporter rsyslog mtail haproxy nginx-light wrk python3 curl time; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q "${need[@]}"
fi
cargo build --release --quiet

out=$(mktemp -d)
part_pid=""
cleanup() {
  trap - EXIT INT TERM
  [ -n "$part_pid" ] && kill -TERM -- "-$part_pid" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$out"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

machine="$(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo), $(. /etc/os-release; echo "$PRETTY_NAME"), kernel $(uname -r)"
started=$(date -u '+%F %H:%M UTC')
load_start=$(cut -d' ' -f1-3 /proc/loadavg)

declare -A result status took
# part NAME SECONDS COMMAND…: runs COMMAND in a session of its own under a time limit.
part() {
  local name=$1 limit=$2; shift 2
  echo "== $name (limit ${limit} s): $*"
  local t0=$SECONDS rc=0
  setsid timeout -k 10 "$limit" "$@" >"$out/$name.log" 2>&1 &
  part_pid=$!
  wait "$part_pid" || rc=$?
  took[$name]=$((SECONDS - t0))
  local left
  left=$(pgrep -s "$part_pid" || true)
  if [ -n "$left" ]; then
    echo "   left behind in its session (stopping them): $(ps -o pid=,comm= -p $(echo $left | tr ' ' ',') | xargs)"
    kill -TERM $left 2>/dev/null || true
  fi
  part_pid=""
  sed 's/^/   /' "$out/$name.log"
  case $rc in
    0) status[$name]="ok" ;;
    124 | 137) status[$name]="TIMED OUT after ${limit} s" ;;
    *) status[$name]="FAILED (exit $rc)" ;;
  esac
  while read -r _ key value; do result[$key]=$value; done < <(grep '^RESULT ' "$out/$name.log" || true)
}

part exporters 240 env PROBES=1 benches/collectors.sh 100
part rsyslog 300 benches/log_throughput.sh 1000000
part mtail 300 benches/log_metrics.sh 1000000
part haproxy 180 benches/proxy.sh 5

load_end=$(cut -d' ' -f1-3 /proc/loadavg)
r() { echo "${result[$1]:-}"; }
# row PART MEASURE SIDEWATCH PEER UNIT BETTER: one line of the table.
row() {
  local part=$1 measure=$2 sw=$3 peer=$4 unit=$5 better=$6 ratio="—"
  if [ -n "$sw" ] && [ -n "$peer" ]; then
    ratio=$(awk -v a="$sw" -v b="$peer" 'BEGIN {if (b > 0) printf "**%.2f×**", a / b; else print "—"}')
  fi
  printf '| %s | %s | %s | %s | %s | %s |\n' "$part" "$measure" "${sw:-—}${sw:+${unit:+ $unit}}" "${peer:-—}${peer:+${unit:+ $unit}}" "$ratio" "$better"
}

echo
echo "machine: $machine"
echo "run: $started, $(nproc)-core load average $load_start at the start, $load_end at the end"
for p in exporters rsyslog mtail haproxy; do echo "  $p: ${status[$p]} in ${took[$p]} s"; done
echo
echo "| peer | measure | sidewatch | peer | sidewatch ÷ peer | better |"
echo "|---|---|---|---|---|---|"
v() { dpkg-query -W -f='${Version}' "$1" 2>/dev/null | sed 's/^[0-9]*://; s/-[^-]*$//'; }
n=$(r collectors.scrapes)
row "postgres_exporter $(v prometheus-postgres-exporter) + redis_exporter $(v prometheus-redis-exporter) + blackbox_exporter $(v prometheus-blackbox-exporter) (PG + Redis + pool + 3 probes)" \
  "CPU-seconds per ${n:-100} scrapes" "$(r collectors.sidewatch_cpu_s)" "$(r collectors.exporters_cpu_s)" s lower
row "" "RSS (exporters summed)" "$(r collectors.sidewatch_rss_mib)" "$(r collectors.exporters_rss_mib)" MiB lower
row "rsyslog $(v rsyslog) (imfile → mmjsonparse → omfile)" "CPU-seconds per M lines" \
  "$(r rsyslog.sidewatch_cpu_s_per_m)" "$(r rsyslog.rsyslog_cpu_s_per_m)" s lower
row "" "lines/s" "$(r rsyslog.sidewatch_lines_per_s)" "$(r rsyslog.rsyslog_lines_per_s)" "" higher
row "" "peak RSS" "$(r rsyslog.sidewatch_peak_rss_mib)" "$(r rsyslog.rsyslog_peak_rss_mib)" MiB lower
row "mtail $(v mtail) (counter + histogram by intent)" "CPU-seconds per M lines, metrics only" \
  "$(r mtail.sidewatch_metrics_cpu_s_per_m)" "$(r mtail.mtail_cpu_s_per_m)" s lower
row "" "CPU-seconds per M lines, sidewatch also forwarding (every stage)" \
  "$(r mtail.sidewatch_full_cpu_s_per_m)" "$(r mtail.mtail_cpu_s_per_m)" s lower
row "" "peak RSS, metrics only" "$(r mtail.sidewatch_metrics_peak_rss_mib)" "$(r mtail.mtail_peak_rss_mib)" MiB lower
row "haproxy $(v haproxy) (wrk -c50, nginx upstream; sidewatch access log off)" "requests/s" \
  "$(r proxy.sidewatch_rps)" "$(r proxy.haproxy_rps)" "" higher
row "" "p50 latency" "$(r proxy.sidewatch_p50_ms)" "$(r proxy.haproxy_p50_ms)" ms lower
row "" "p99 latency" "$(r proxy.sidewatch_p99_ms)" "$(r proxy.haproxy_p99_ms)" ms lower
row "" "proxy CPU per request" "$(r proxy.sidewatch_cpu_us_per_req)" "$(r proxy.haproxy_cpu_us_per_req)" µs lower
row "" "proxy RSS" "$(r proxy.sidewatch_rss_mib)" "$(r proxy.haproxy_rss_mib)" MiB lower
row "haproxy $(v haproxy), sidewatch access log on (events → stdout sink)" "requests/s" \
  "$(r proxy.sidewatch_log_rps)" "$(r proxy.haproxy_rps)" "" higher
row "" "proxy CPU per request" "$(r proxy.sidewatch_log_cpu_us_per_req)" "$(r proxy.haproxy_cpu_us_per_req)" µs lower
failed=0
for p in exporters rsyslog mtail haproxy; do [ "${status[$p]}" = ok ] || failed=1; done
exit $failed
