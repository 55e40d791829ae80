#!/usr/bin/env bash
# Soak (run by hand, not in CI; bounded: SECONDS + at most ~16 min to drain and stop).
#
# sidewatch (release) for SECONDS with everything on at once:
#   - tails an app log written at RATE lines/s (numbered 200-byte JSON lines),
#     renamed away every 30 s (`app.log` -> `app.log.K`, glob `app.log*`); a
#     rotated file is deleted once three rotations old and acknowledged to its
#     end in sidewatch's checkpoint (possibly while sidewatch still holds it open);
#   - forwards every line (full stage chain) to a Loki sink, JSON + gzip, whose
#     destination (benches/soak_support.py, the contract of
#     tests/logs_support/loki.rs) fails for OUTAGE_FOR s every OUTAGE_EVERY s,
#     answering 503 and refusing connections in turn;
#   - proxies REQ_RATE req/s (8 keep-alive clients) to nginx `return 200`,
#     with access-log events into the same pipeline;
#   - is SIGKILLed 3 times (at 22 %, 52 % and 82 % of the run) and restarted
#     2 s later with the same config, checkpoints and disk buffer.
# RSS and open FDs are sampled every 10 s. At the end every line written must
# have reached the stand-in (multiset check per line number, each received
# line compared with what was written), duplicates are counted and must all
# be explained by a SIGKILL (a second copy of a line written before the latest
# SIGKILL: in flight, or acknowledged but not yet checkpointed), and RSS/FDs
# must be flat after the warm-up (max of the last third ≤ max of the first
# third + 10 %). Prints a Markdown results table; exit 1 when a check fails.
#
#   benches/soak.sh [seconds]        (default 600)
#   SOAK_LOG=file benches/soak.sh    keeps sidewatch's own log (retries, rotations) in file
#   RATE=50000 REQ_RATE=1000 OUTAGE_EVERY=120 OUTAGE_FOR=20 benches/soak.sh 600
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-600}
rate=${RATE:-50000}
req_rate=${REQ_RATE:-1000}
every=${OUTAGE_EVERY:-120}
outage=${OUTAGE_FOR:-20}
warmup=${WARMUP:-60}

need=()
for pkg in nginx-light python3 curl; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}"
fi
cargo build --release --quiet
bin=${CARGO_TARGET_DIR:-$PWD/target}/release/sidewatch
support=$PWD/benches/soak_support.py

work=$(mktemp -d)
pids=()
sw_pid=""
cleanup() {
  trap - EXIT INT TERM
  local p
  for p in "${pids[@]}" $sw_pid; do kill -TERM "$p" 2>/dev/null || true; done
  for _ in 1 2 3 4 5 6 7 8 9 10; do
    local alive=""
    for p in "${pids[@]}" $sw_pid; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ -z "$alive" ] && break
    sleep 0.5
  done
  for p in "${pids[@]}" $sw_pid; do kill -KILL "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  # SOAK_LOG=file keeps sidewatch's own log (warnings: retries, rotations).
  [ -n "${SOAK_LOG:-}" ] && cp "$work/sidewatch.err" "$SOAK_LOG" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
admin=$(port); loki=$(port); control=$(port); proxy=$(port); app=$(port)
mkdir -p "$work/logs" "$work/state"

. benches/proxy_peers.sh
start_nginx "$app"
pids+=($nginx_pid)

cat > "$work/sidewatch.toml" <<TOML
[admin]
listen = "127.0.0.1:$admin"
[self_log]
level = "warn"
[shutdown]
grace_period = "2s"
[logs]
state_dir = "$work/state"
[[logs.sources]]
name = "app"
include = ["$work/logs/app.log*"]
[[logs.sinks]]
name = "loki"
type = "loki"
url = "http://127.0.0.1:$loki"
encoding = "json"
[proxy]
listen = "127.0.0.1:$proxy"
upstream = "127.0.0.1:$app"
TOML

ticks=$(getconf CLK_TCK)
cpu_total=0
start_sidewatch() {
  "$bin" run --config "$work/sidewatch.toml" >/dev/null 2>>"$work/sidewatch.err" &
  sw_pid=$!
}
retire_sidewatch() { # adds the process's CPU time to the total
  local c
  c=$(awk -v hz="$ticks" '{printf "%.2f", ($14 + $15) / hz}' "/proc/$sw_pid/stat" 2>/dev/null || echo 0)
  cpu_total=$(awk -v a="$cpu_total" -v b="$c" 'BEGIN {print a + b}')
}
metric() {
  { curl -s -m 2 "http://127.0.0.1:$admin/metrics" 2>/dev/null || true; } |
    awk -v m="$1" 'index($0, m) == 1 && !found {print $2; found = 1}'
}
stats() { curl -s -m 10 "http://127.0.0.1:$control/?n=${1:-0}" || true; }
field() { python3 -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }

python3 "$support" loki "$loki" "$control" "$every" "$outage" "$seconds" > "$work/loki.out" 2>&1 &
pids+=($!)
sleep 0.5
start_sidewatch
for _ in $(seq 50); do curl -sf -o /dev/null "http://127.0.0.1:$proxy/" && break; sleep 0.1; done
python3 "$support" writer "$work/logs/app.log" "$seconds" "$rate" "$work/state/checkpoints-app.json" "$work/written" "$work/progress" &
writer=$!; pids+=($writer)
python3 "$support" traffic 127.0.0.1 "$proxy" "$req_rate" "$seconds" "$work/traffic.json" &
pids+=($!)
t0=$SECONDS

kills=()
for f in 22 52 82; do kills+=($((seconds * f / 100))); done
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo); load at start $(cut -d' ' -f1-3 /proc/loadavg)"
echo "soak: ${seconds} s, ${rate} lines/s, rename rotation every 30 s, Loki down ${outage} s every ${every} s (503 / refused in turn), ${req_rate} req/s through the proxy, SIGKILL at ${kills[*]} s"
printf "%6s %4s %8s %5s %8s %12s %10s %12s\n" "t (s)" run "RSS MiB" FDs "lag (s)" "unread MiB" "disk MiB" "received"
run=1
next_sample=10
k=0
while kill -0 "$writer" 2>/dev/null; do
  sleep 1
  t=$((SECONDS - t0))
  if [ $k -lt 3 ] && [ "$t" -ge "${kills[$k]}" ]; then
    # The boundary ("lines written before the SIGKILL") is read after the
    # kill: read before it, the lines written in between (about 10 ms of
    # them) could reach the old process and, resent after the restart,
    # count as unexplained duplicates. 50 ms lets the writer's burst in
    # progress at the kill record its count.
    retire_sidewatch
    kill -KILL "$sw_pid"; wait "$sw_pid" 2>/dev/null || true
    sleep 0.05
    curl -s -m 2 -X POST "http://127.0.0.1:$control/kill?written=$(tr -d ' ' < "$work/progress")" >/dev/null
    echo "  -- t=$t s: SIGKILL sidewatch (run $run); restart in 2 s" | tee -a "$work/events"
    sleep 2
    start_sidewatch
    run=$((run + 1)); k=$((k + 1))
  fi
  if [ "$t" -ge $next_sample ]; then
    next_sample=$((next_sample + 10))
    rss=$(awk '/VmRSS/ {print $2}' "/proc/$sw_pid/status" 2>/dev/null || echo 0)
    fds=$(ls "/proc/$sw_pid/fd" 2>/dev/null | wc -l)
    lag=$(metric 'sidewatch_log_lag_seconds{source="app"}')
    unread=$(metric 'sidewatch_log_unread_bytes{source="app"}')
    disk=$(metric 'sidewatch_buffer_bytes{sink="loki",medium="disk"}')
    got=$(stats | field received 2>/dev/null || echo '?')
    printf "%6d %4d %8.1f %5d %8.1f %12.1f %10.1f %12s\n" "$t" "$run" "$(awk -v r="$rss" 'BEGIN {print r/1024}')" \
      "$fds" "${lag:-0}" "$(awk -v u="${unread:-0}" 'BEGIN {print u/1048576}')" \
      "$(awk -v d="${disk:-0}" 'BEGIN {print d/1048576}')" "$got"
    echo "$t $run $rss $fds" >> "$work/samples"
  fi
done
wait "$writer" || { echo "writer failed"; exit 1; }
read -r written rotations undeleted < "$work/written"

# Drain: wait while lines keep arriving (until all are there, 60 s without
# progress, or 900 s in all).
drain_start=$SECONDS
last=-1
last_change=$SECONDS
while :; do
  now=$(stats "$written")
  missing=$(field missing <<<"$now" 2>/dev/null || echo '?')
  [ "$missing" = 0 ] && break
  got=$(field distinct <<<"$now" 2>/dev/null || echo '?')
  if [ "$got" != "$last" ]; then last=$got; last_change=$SECONDS; fi
  [ $((SECONDS - last_change)) -ge 60 ] && break
  [ $((SECONDS - drain_start)) -ge 900 ] && break
  sleep 2
done
drain=$((SECONDS - drain_start))
sleep 3 # let late duplicates (if any) arrive before counting
for _ in $(seq 100); do [ -s "$work/traffic.json" ] && break; sleep 0.2; done
final=$(stats "$written")
dropped_access=$(metric 'sidewatch_proxy_access_log_dropped_total')
retries=$({ curl -s -m 2 "http://127.0.0.1:$admin/metrics" || true; } | awk '/^sidewatch_sink_retries_total\{sink="loki"/ {s += $2} END {print s + 0}')
dead=$(metric 'sidewatch_dead_letter_events_total{sink="loki"}')
corrupt=$(metric 'sidewatch_buffer_corrupt_tails_total{sink="loki"}')
buffer_left=$(du -sk "$work/state" | cut -f1)
retire_sidewatch
kill -TERM "$nginx_pid" 2>/dev/null || true
kill -TERM "$sw_pid"; sw_exit=0; wait "$sw_pid" || sw_exit=$?
sw_pid=""
crashes=$(grep -ciE 'panicked|fatal' "$work/sidewatch.err" || true)

python3 - "$final" "$work/traffic.json" "$work/samples" "$warmup" <<PY
import json, sys
s = json.loads(sys.argv[1]); tr = json.load(open(sys.argv[2]))
rows = [tuple(int(x) for x in l.split()) for l in open(sys.argv[3])]
warm = [r for r in rows if r[0] > int(sys.argv[4])]
third = max(1, len(warm) // 3)
early, late = warm[:third], warm[-third:]
rss_e, rss_l = max(r[2] for r in early) / 1024, max(r[2] for r in late) / 1024
fd_e, fd_l = max(r[3] for r in early), max(r[3] for r in late)
rss_min, rss_max = min(r[2] for r in warm) / 1024, max(r[2] for r in warm) / 1024
fd_min, fd_max = min(r[3] for r in warm), max(r[3] for r in warm)
rss_flat = rss_l <= rss_e * 1.10
fd_flat = fd_l <= fd_e * 1.10 + 1
lines = int("$written"); secs = int("$seconds")
checks = {
    "lost": s["missing"] == 0, "mismatched": s["mismatched"] == 0 and s["beyond_written"] == 0,
    "unexplained duplicates": s["unexplained_duplicates"] == 0, "RSS flat": rss_flat, "FDs flat": fd_flat,
    "bad requests": s["bad_requests"] == 0, "clean exit": int("$sw_exit") == 0 and int("$crashes") == 0,
}
ok = all(checks.values())
errors = ", ".join("%s %d" % kv for kv in sorted(tr["errors"].items())) or "none"
print()
print("| soak, %s s | result |" % secs)
print("|---|---|")
print("| lines written | %d (%.0f lines/s), %s rename rotations, %s rotated files not yet deleted at the end |" % (lines, lines / secs, "$rotations", "$undeleted"))
print("| lines lost (multiset of line numbers, content compared) | **%d** (%d of %d arrived; the last %s s after the writer stopped) |" % (s["missing"], s["distinct"], lines, "$drain"))
print("| lines altered / unknown | %d / %d |" % (s["mismatched"], s["beyond_written"]))
same_run = sum(c for k, c in s["duplicates_by"].items() if k.split("@")[0].split(">")[0] == k.split("@")[0].split(">")[1])
print("| duplicates | %d (%.2f %% of lines), %d not explained by a SIGKILL; %d of them with both copies sent after the same restart (disk-buffered events re-read from an older checkpoint) |" % (s["duplicates"], 100.0 * s["duplicates"] / max(lines, 1), s["unexplained_duplicates"], same_run))
print("| SIGKILL restarts | %d (at ${kills[*]} s), same config, checkpoints and disk buffer |" % s["kills"])
print("| Loki outages | %d × %s s (503 and refused in turn); %d of %d push requests failed, %s retries counted in the last run; dead letters %s, corrupt buffer tails %s |" % (max(0, (secs - 1) // $every), "$outage", s["failed_push_requests"], s["push_requests"], "$retries", "${dead:-0}" or 0, "${corrupt:-0}" or 0))
print("| proxy requests | %d sent (%.0f req/s), %d ok, %d failed (%s) |" % (tr["sent"], tr["sent"] / tr["seconds"], tr["ok"], tr["failed"], errors))
print("| access-log events at Loki | %d (dropped on a full queue, last run: %s) |" % (s["access_events"], "${dropped_access:-0}"))
print("| RSS after %s s warm-up | %.1f–%.1f MiB; max first third %.1f, last third %.1f (%+.1f %%): %s |" % (sys.argv[4], rss_min, rss_max, rss_e, rss_l, 100 * (rss_l - rss_e) / rss_e, "flat" if rss_flat else "**GROWING**"))
print("| open FDs after warm-up | %d–%d; max first third %d, last third %d: %s |" % (fd_min, fd_max, fd_e, fd_l, "flat" if fd_flat else "**GROWING**"))
print("| sidewatch CPU | %.1f CPU-s in all (%.2f CPU-s per M lines, proxy included) |" % (float("$cpu_total"), float("$cpu_total") / max(lines, 1) * 1e6))
print("| state dir at the end | %.1f MiB (checkpoints, disk buffer); exit code %s at SIGTERM, %s panics |" % (int("$buffer_left") / 1024, "$sw_exit", "$crashes"))
print()
print("checks: " + ", ".join("%s %s" % (k, "ok" if v else "FAILED") for k, v in checks.items()))
if s["duplicates"]:
    by = {}
    for key, count in s["duplicates_by"].items():
        pair, at = key.split("@")
        lo, hi, total = by.get(pair, (10**9, 0, 0))
        by[pair] = (min(lo, int(at)), max(hi, int(at)), total + count)
    print("duplicates by run of the first copy > run of the second (arrival seconds):",
          "; ".join("%s: %d (%d–%d s)" % (p, v[2], v[0], v[1]) for p, v in sorted(by.items())))
if s["missing"]:
    print("first missing line numbers:", s["first_missing"])
sys.exit(0 if ok else 1)
PY
