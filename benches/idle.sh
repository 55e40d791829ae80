#!/usr/bin/env bash
# Idle footprint: sidewatch (release) with 3 probe targets every 5 s against a
# local HTTP server; reports RSS and CPU share of one core over a window.
#
#   benches/idle.sh [seconds]     (default 60)
set -euo pipefail
cd "$(dirname "$0")/.."
window=${1:-60}
cargo build --release --quiet
bin=${CARGO_TARGET_DIR:-target}/release/sidewatch

work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
mkdir -p "$work/www"
echo '{"status":"ok","checks":{"db":"ok","redis":"ok"}}' > "$work/www/health"
app_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
admin_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
python3 -m http.server "$app_port" --bind 127.0.0.1 --directory "$work/www" >/dev/null 2>&1 &

cat > "$work/sidewatch.toml" <<TOML
[admin]
listen = "127.0.0.1:$admin_port"
[self_log]
level = "warn"
[[health.targets]]
name = "app"
url = "http://127.0.0.1:$app_port/health"
interval = "5s"
[[health.targets]]
name = "app-ready"
url = "http://127.0.0.1:$app_port/health"
interval = "5s"
[[health.targets]]
name = "app-port"
tcp = "127.0.0.1:$app_port"
interval = "5s"
TOML
"$bin" run --config "$work/sidewatch.toml" &
pid=$!
sleep 5  # warm-up: first probes, allocator settles

ticks=$(getconf CLK_TCK)
cpu() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
start_cpu=$(cpu); start=$(date +%s.%N)
sleep "$window"
end_cpu=$(cpu); end=$(date +%s.%N)
rss_kib=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
hwm_kib=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
fds=$(ls "/proc/$pid/fd" | wc -l)
threads=$(awk '/Threads/ {print $2}' "/proc/$pid/status")
size=$(stat -c %s "$bin")

echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -m), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
awk -v r="$rss_kib" -v h="$hwm_kib" 'BEGIN {printf "idle RSS: %.1f MiB (peak %.1f MiB)\n", r/1024, h/1024}'
awk -v c0="$start_cpu" -v c1="$end_cpu" -v t0="$start" -v t1="$end" -v hz="$ticks" \
  'BEGIN {printf "idle CPU: %.3f %% of one core over %.0f s\n", 100*(c1-c0)/hz/(t1-t0), t1-t0}'
echo "open fds: $fds, threads: $threads"
awk -v s="$size" 'BEGIN {printf "binary size: %.2f MiB (release, LTO, stripped)\n", s/1048576}'
