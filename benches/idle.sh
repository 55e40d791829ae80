#!/usr/bin/env bash
# Idle footprint: sidewatch (release) with 3 probe targets every 5 s against a
# local HTTP server; reports RSS and CPU share of one core over a window.
#
#   benches/idle.sh [seconds]     (default 60)
set -euo pipefail
cd "$(dirname "$0")/.."
window=${1:-60}
. benches/three_targets.sh
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
