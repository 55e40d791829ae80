#!/usr/bin/env bash
# Dependency collectors, side by side: sidewatch (PostgreSQL + Redis + app
# pool) against prometheus-postgres-exporter + prometheus-redis-exporter on the
# same servers. Reports collection-cycle time, RSS added by the collectors,
# connections held, and CPU-seconds + RSS per 100 scrapes (ratios sidewatch ÷
# exporters). Run by hand (root, Debian 12); installs missing packages.
# With PROBES=1, sidewatch also probes three health targets (two HTTP, one
# TCP, as benches/three_targets.sh) and prometheus-blackbox-exporter probes
# the same three on every scrape (counted with the exporters). Lines starting
# with `RESULT` are for benches/compare.sh.
#
#   benches/collectors.sh [scrapes]   (default 100)
#   PROBES=1 benches/collectors.sh 100
set -euo pipefail
cd "$(dirname "$0")/.."
scrapes=${1:-100}
probes=${PROBES:-0}
period=0.2   # seconds between scrapes; sidewatch collects on the same interval

need=()
pkgs=(postgresql redis-server prometheus-postgres-exporter prometheus-redis-exporter python3 curl)
[ "$probes" = 1 ] && pkgs+=(prometheus-blackbox-exporter)
for pkg in "${pkgs[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}"
fi
cargo build --release --quiet
bin=${CARGO_TARGET_DIR:-target}/release/sidewatch

work=$(mktemp -d); chown postgres "$work"
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
pg_port=$(port); redis_port=$(port); pool_port=$(port); sw_port=$(port); sw0_port=$(port); pge_port=$(port); re_port=$(port); bb_port=$(port)
pgbin=/usr/lib/postgresql/15/bin
cleanup() {
  kill $(jobs -p) 2>/dev/null || true
  runuser -u postgres -- "$pgbin/pg_ctl" -D "$work/data" stop -m fast >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

runuser -u postgres -- "$pgbin/initdb" -D "$work/data" -A trust -U postgres >/dev/null
runuser -u postgres -- "$pgbin/pg_ctl" -D "$work/data" -o "-p $pg_port -k $work -c listen_addresses=127.0.0.1" -l "$work/pg.log" start >/dev/null
redis-server --port "$redis_port" --save '' --appendonly no --daemonize no >/dev/null &
mkdir -p "$work/www/debug"
echo '{"pools":[{"poolName":"primary","activeConnections":3,"idleConnections":7,"totalConnections":10,"threadsAwaitingConnection":0,"maximumPoolSize":10}]}' > "$work/www/debug/pools"
echo '{"status":"ok","checks":{"db":"ok","redis":"ok"}}' > "$work/www/health"
python3 -m http.server "$pool_port" --bind 127.0.0.1 --directory "$work/www" >/dev/null 2>&1 &
sleep 1

dsn="postgres://postgres@127.0.0.1:$pg_port/postgres?sslmode=disable"
common="[self_log]
level = \"warn\"
[process]
interval = \"${period}s\""
cat > "$work/bare.toml" <<TOML
[admin]
listen = "127.0.0.1:$sw0_port"
$common
TOML
cat > "$work/full.toml" <<TOML
[admin]
listen = "127.0.0.1:$sw_port"
$common
[[postgres.servers]]
name = "main"
dsn = "$dsn"
interval = "${period}s"
[[redis.servers]]
name = "cache"
url = "redis://127.0.0.1:$redis_port"
interval = "${period}s"
[[pools.sources]]
name = "app"
url = "http://127.0.0.1:$pool_port/debug/pools"
preset = "hikaricp"
interval = "${period}s"
TOML
if [ "$probes" = 1 ]; then
  cat >> "$work/full.toml" <<TOML
[[health.targets]]
name = "app"
url = "http://127.0.0.1:$pool_port/health"
interval = "${period}s"
[[health.targets]]
name = "app-ready"
url = "http://127.0.0.1:$pool_port/health"
interval = "${period}s"
[[health.targets]]
name = "app-port"
tcp = "127.0.0.1:$pool_port"
interval = "${period}s"
TOML
  cat > "$work/blackbox.yml" <<YAML
modules:
  http_2xx:
    prober: http
    timeout: 5s
    http:
      preferred_ip_protocol: ip4
  tcp_connect:
    prober: tcp
    timeout: 5s
    tcp:
      preferred_ip_protocol: ip4
YAML
fi
"$bin" run --config "$work/bare.toml" & bare=$!
"$bin" run --config "$work/full.toml" & full=$!
DATA_SOURCE_NAME="$dsn" prometheus-postgres-exporter --web.listen-address="127.0.0.1:$pge_port" >/dev/null 2>&1 & pge=$!
prometheus-redis-exporter -web.listen-address "127.0.0.1:$re_port" -redis.addr "redis://127.0.0.1:$redis_port" >/dev/null 2>&1 & rexp=$!
bbe=""
if [ "$probes" = 1 ]; then
  prometheus-blackbox-exporter --config.file="$work/blackbox.yml" --web.listen-address="127.0.0.1:$bb_port" >/dev/null 2>&1 & bbe=$!
fi
probe_all() { # what Prometheus would scrape from blackbox_exporter for the three targets
  curl -s -o /dev/null "http://127.0.0.1:$bb_port/probe?module=http_2xx&target=http://127.0.0.1:$pool_port/health"
  curl -s -o /dev/null "http://127.0.0.1:$bb_port/probe?module=http_2xx&target=http://127.0.0.1:$pool_port/health"
  curl -s -o /dev/null "http://127.0.0.1:$bb_port/probe?module=tcp_connect&target=127.0.0.1:$pool_port"
}
sleep 3

ticks=$(getconf CLK_TCK)
cpu() { awk -v hz="$ticks" '{printf "%.3f", ($14 + $15) / hz}' "/proc/$1/stat"; }
rss() { awk '/VmRSS/ {printf "%.1f", $2/1024}' "/proc/$1/status"; }

# Collection-cycle time: each collector's last-run duration, sampled 20 times.
for _ in $(seq 1 20); do
  curl -s "http://127.0.0.1:$sw_port/metrics" | grep -E '^sidewatch_collector_duration_seconds\{collector="(postgres|redis|pool)/' >> "$work/durations"
  sleep "$period"
done
median_ms() { grep "collector=\"$1/" "$work/durations" | awk '{print $2}' | sort -n | awk '{a[NR]=$1} END {printf "%.2f", 1000*a[int((NR+1)/2)]}'; }
cycle=$(awk '{n[FNR]++} {sum[int((NR-1)/3)] += $2} END {for (i in sum) print sum[i]}' "$work/durations" | sort -n | awk '{a[NR]=$1} END {printf "%.2f", 1000*a[int((NR+1)/2)]}')

# CPU-seconds per N scrapes (sidewatch collects on its interval, the
# exporters on each scrape; the same wall time for both).
s0=$(cpu $full); p0=$(cpu $pge); r0=$(cpu $rexp); b0=0; [ -n "$bbe" ] && b0=$(cpu $bbe)
for _ in $(seq 1 "$scrapes"); do
  curl -s -o /dev/null "http://127.0.0.1:$sw_port/metrics"
  curl -s -o /dev/null "http://127.0.0.1:$pge_port/metrics"
  curl -s -o /dev/null "http://127.0.0.1:$re_port/metrics"
  [ -n "$bbe" ] && probe_all
  sleep "$period"
done
s1=$(cpu $full); p1=$(cpu $pge); r1=$(cpu $rexp); b1=0; [ -n "$bbe" ] && b1=$(cpu $bbe)
sw_cpu=$(awk -v a="$s0" -v b="$s1" 'BEGIN {printf "%.3f", b-a}')
ex_cpu=$(awk -v a="$p0" -v b="$p1" -v c="$r0" -v d="$r1" -v e="$b0" -v f="$b1" 'BEGIN {printf "%.3f", (b-a)+(d-c)+(f-e)}')
bb_rss=0; [ -n "$bbe" ] && bb_rss=$(rss $bbe)
sw_rss=$(rss $full); bare_rss=$(rss $bare); ex_rss=$(awk -v a="$(rss $pge)" -v b="$(rss $rexp)" -v c="$bb_rss" 'BEGIN {printf "%.1f", a+b+c}')
pg_conns=$(psql -h 127.0.0.1 -p "$pg_port" -U postgres -Atc "select count(*) from pg_stat_activity where application_name = 'sidewatch'")
redis_conns=$(redis-cli -p "$redis_port" client list | grep -c 'name=sidewatch' || true)

echo "machine: $(nproc) cores, $(uname -m), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(date -u +%F)"
echo "collector run, median of 20: postgres $(median_ms postgres) ms, redis $(median_ms redis) ms, pool $(median_ms pool) ms; all three summed $cycle ms (they run concurrently)"
echo "RSS: sidewatch with collectors ${sw_rss} MiB, without ${bare_rss} MiB (added $(awk -v a="$sw_rss" -v b="$bare_rss" 'BEGIN {printf "%.1f", a-b}') MiB)"
echo "connections held by sidewatch: PostgreSQL ${pg_conns}, Redis ${redis_conns}"
printf "%-34s %12s %12s %8s\n" "per $scrapes scrapes" sidewatch exporters ratio
printf "%-34s %12s %12s %8s\n" "CPU-seconds" "$sw_cpu" "$ex_cpu" "$(awk -v a="$sw_cpu" -v b="$ex_cpu" 'BEGIN {printf "%.2f", (b > 0 ? a/b : 0)}')"
printf "%-34s %12s %12s %8s\n" "RSS MiB" "$sw_rss" "$ex_rss" "$(awk -v a="$sw_rss" -v b="$ex_rss" 'BEGIN {printf "%.2f", a/b}')"
[ -n "$bbe" ] && echo "of which blackbox_exporter: CPU-seconds $(awk -v a="$b0" -v b="$b1" 'BEGIN {printf "%.3f", b-a}'), RSS ${bb_rss} MiB"
echo "RESULT collectors.scrapes $scrapes"
echo "RESULT collectors.probes $probes"
echo "RESULT collectors.sidewatch_cpu_s $sw_cpu"
echo "RESULT collectors.exporters_cpu_s $ex_cpu"
echo "RESULT collectors.sidewatch_rss_mib $sw_rss"
echo "RESULT collectors.exporters_rss_mib $ex_rss"
