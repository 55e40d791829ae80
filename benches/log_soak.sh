#!/usr/bin/env bash
# Log pipeline soak (run by hand, not in CI): sidewatch tails an app log
# written at a fixed rate and rotated by rename every 30 s (rotated files
# older than three rotations are deleted, possibly while still open), and
# forwards every line to stdout (/dev/null). RSS, open FDs and the delivered
# count are sampled every 10 s; at the end the script waits until every line
# written has been delivered and reports whether RSS stayed flat after the
# warm-up (the last third's peak against the first third's).
#
#   benches/log_soak.sh [seconds] [lines/s]     (default 600 s at 100000 lines/s)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-600}
rate=${2:-100000}

. benches/release_bin.sh

work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
mkdir -p "$work/logs"

. benches/log_setup.sh "$work/logs/app.log*"

"$bin" run --config "$work/sidewatch.toml" > /dev/null &
pid=$!
sleep 1

# The app: `rate` 200-byte JSON lines per second, in bursts every 10 ms,
# rotated by rename every 30 s; prints how many lines it wrote.
python3 - "$work/logs/app.log" "$seconds" "$rate" > "$work/written" <<'PY' &
import os, sys, time
path, seconds, rate = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
per_tick = max(1, rate // 100)
start = time.monotonic(); last_rotation = start; n = 0; rotations = 0
f = open(path, "a", buffering=1 << 20)
while time.monotonic() - start < seconds:
    tick = time.monotonic()
    lines = []
    for _ in range(per_tick):
        line = ('{"timestamp":"2025-12-07T10:30:00Z","level":"info","request_id":"req-%010d",'
                '"message":"Chat message processed","intent":"faq","latency_ms":%d,"pad":"' % (n, n % 2000))
        lines.append(line + "x" * (197 - len(line)) + '"}\n')
        n += 1
    f.write("".join(lines))
    if tick - last_rotation >= 30:
        f.close()
        rotations += 1
        os.rename(path, "%s.%d" % (path, rotations))
        old = "%s.%d" % (path, rotations - 3)
        if os.path.exists(old):
            os.remove(old)
        f = open(path, "a", buffering=1 << 20)
        last_rotation = tick
    f.flush()
    pause = 0.01 - (time.monotonic() - tick)
    if pause > 0:
        time.sleep(pause)
f.close()
print(n)
PY
writer=$!

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); ${seconds} s at ${rate} lines/s, rename rotation every 30 s"
printf "%8s %10s %6s %12s\n" "t (s)" "RSS MiB" "FDs" "delivered"
samples="$work/samples"
t=0
while kill -0 "$writer" 2>/dev/null; do
  sleep 10; t=$((t + 10))
  rss=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
  fds=$(ls "/proc/$pid/fd" | wc -l)
  printf "%8d %10.1f %6d %12s\n" "$t" "$(awk -v r="$rss" 'BEGIN {print r/1024}')" "$fds" "$(delivered)"
  echo "$t $rss $fds" >> "$samples"
done
wait "$writer"
written=$(cat "$work/written")
deadline=$((SECONDS + 120))
while :; do
  n=$(delivered); n=${n%.*}
  [ "${n:-0}" -ge "$written" ] && break
  [ $SECONDS -ge $deadline ] && { echo "only ${n:-0} of $written lines delivered after 120 s"; exit 1; }
  sleep 0.5
done
peak=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
kill -TERM "$pid"; wait "$pid" || true

echo "written $written, delivered $n (lines of rotated files deleted before they were read would be missing: none)"
awk -v peak="$peak" '
  { t[NR] = $1; rss[NR] = $2; fds[NR] = $3 }
  END {
    third = int(NR / 3); if (third < 1) third = 1
    for (i = 1; i <= third; i++) if (rss[i] > early) early = rss[i]
    for (i = NR - third + 1; i <= NR; i++) if (rss[i] > late) late = rss[i]
    for (i = 1; i <= NR; i++) { if (fds[i] > maxfd) maxfd = fds[i]; if (mfd == "" || fds[i] < mfd) mfd = fds[i] }
    printf "RSS peak %.1f MiB; first third max %.1f MiB, last third max %.1f MiB (%+.1f %%); FDs %d..%d\n",
      peak / 1024, early / 1024, late / 1024, 100 * (late - early) / early, mfd, maxfd
  }' "$samples"
