#!/usr/bin/env bash
# Runs every fuzz target (or the ones named) for N seconds each, one after
# the other, niced, and prints per-target executions, exec/s, final corpus
# size and crashes. Run by hand (not in .ci/run):
#
#   fuzz/run.sh [seconds-per-target (default 600)] [target ...]
#
# Needs the nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz --locked`).
# New inputs go to fuzz/grown/<target>/ and findings to fuzz/artifacts/<target>/
# (both gitignored); the committed seeds in fuzz/corpus/<target>/ are only read.
# FUZZ_BIN=dir runs prebuilt binaries from dir (no build).
# Logs: $FUZZ_LOGS (default /tmp/sidewatch-fuzz)/<target>.log.
set -u
cd "$(dirname "$0")"
secs=${1:-600}
shift || true
all=(log_chain config_load route_normalize health_body pool_mapping inject_yaml statsd_parse disk_segment)
if [ $# -gt 0 ]; then targets=("$@"); else targets=("${all[@]}"); fi
logs=${FUZZ_LOGS:-/tmp/sidewatch-fuzz}
mkdir -p "$logs"
command -v cargo-fuzz >/dev/null || { echo "cargo-fuzz missing: cargo install cargo-fuzz --locked" >&2; exit 1; }
# FUZZ_BIN: run binaries already built (copied) there instead of building.
if [ -n "${FUZZ_BIN:-}" ]; then
  bin=$FUZZ_BIN
else
  nice -n 19 cargo +nightly fuzz build || exit 1
  bin=target/x86_64-unknown-linux-gnu/release
fi
echo "# $(date -u +%FT%TZ) $(uname -m), $(nproc) cores, ${secs}s per target, niced"
printf '%-16s %6s %12s %8s %7s %8s %s\n' target secs executions exec/s corpus crashes exit
for t in "${targets[@]}"; do
  mkdir -p "grown/$t" "artifacts/$t"
  dict=()
  [ -f "dict/$t.dict" ] && dict=("-dict=dict/$t.dict")
  start=$(date +%s)
  nice -n 19 "$bin/$t" -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 \
    -print_final_stats=1 -artifact_prefix="artifacts/$t/" "${dict[@]}" \
    "grown/$t" "corpus/$t" >"$logs/$t.log" 2>&1
  rc=$?
  took=$(( $(date +%s) - start ))
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$logs/$t.log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$logs/$t.log" | tail -1)
  corpus=$(grep -o 'corp: [0-9]*' "$logs/$t.log" | tail -1 | cut -d' ' -f2)
  crashes=$(find "artifacts/$t" -type f \( -name 'crash-*' -o -name 'timeout-*' -o -name 'oom-*' -o -name 'leak-*' \) -newermt "@$start" | wc -l)
  printf '%-16s %6s %12s %8s %7s %8s %s\n' "$t" "$took" "${execs:-?}" "${rate:-?}" "${corpus:-?}" "$crashes" "$rc"
done
