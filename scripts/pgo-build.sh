#!/usr/bin/env bash
# A profile-guided release build of sidewatch (PGO): builds an instrumented
# binary, runs it on a training load, and builds again with the profile.
# The training load is what a sidecar spends its CPU on: the reverse proxy
# (HTTP/1.1 keep-alive GETs and POSTs with bodies, short-lived client
# connections (a request each), access log on and off,
# `wrk` against an nginx `return 200` upstream) and the log path (a file of
# JSON lines tailed, parsed, correlated, enriched, redacted, written out).
# Code the load does not reach is still built, only without the profile's
# hints, so every feature works as in a plain release build.
#
#   scripts/pgo-build.sh [seconds per proxy run]   (default 5)
#
# Prints the built binary's path last: target/pgo/<host>/release/sidewatch.
# The builds name the host target (`--target`), so the flags reach
# sidewatch and its dependencies but not build scripts or proc macros: only
# the binary is instrumented and trained.
# Needs llvm-tools (`rustup component add llvm-tools`), nginx, wrk, curl and
# python3 (`apt-get install -y nginx-light wrk curl python3`); installs
# what is missing when run as root.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-5}
root=$PWD
profiles=$root/target/pgo-profiles

sysroot=$(rustc --print sysroot)
host=$(rustc -vV | awk '/^host:/ {print $2}')
profdata=$sysroot/lib/rustlib/$host/bin/llvm-profdata
if [ ! -x "$profdata" ]; then
  rustup component add llvm-tools
fi
need=()
for pkg in nginx-light wrk curl python3; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}"
fi

echo "== instrumented build" >&2
rm -rf "$profiles" && mkdir -p "$profiles"
RUSTFLAGS="-Cprofile-generate=$profiles" cargo build --release --locked \
  --bin sidewatch --target "$host" --target-dir target/pgo-generate >&2
trainee=$root/target/pgo-generate/$host/release/sidewatch

echo "== training: the proxy" >&2
. benches/proxy_peers.sh
start_upstream
body=$work/body
head -c 16384 /dev/zero > "$body"
cat > "$work/post.lua" <<LUA
wrk.method = "POST"
wrk.body = io.open("$body"):read("*a")
wrk.headers["traceparent"] = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
LUA
for access_log in true false; do
  listen=$(port)
  proxy_config "$work/train.toml" "$(port)" "$listen" "$nginx_port" "$access_log" 2
  "$trainee" run --config "$work/train.toml" >/dev/null 2>"$work/train.err" &
  trained=$!
  ports=("$listen") && wait_ready
  wrk -t2 -c50 -d"${secs}s" "http://127.0.0.1:$listen/" >&2
  wrk -t2 -c50 -d"${secs}s" -H "x-request-id: req-1" "http://127.0.0.1:$listen/api/users/42" >&2
  wrk -t1 -c10 -d"$(( (secs + 1) / 2 ))s" -s "$work/post.lua" "http://127.0.0.1:$listen/upload" >&2
  wrk -t2 -c50 -d"$(( (secs + 1) / 2 ))s" -H "Connection: close" "http://127.0.0.1:$listen/" >&2
  kill -TERM "$trained" && wait "$trained" || true
done

echo "== training: the log path" >&2
python3 - "$work/app.log" 300000 <<'PY'
import sys
path, n = sys.argv[1], int(sys.argv[2])
with open(path, "w") as f:
    for i in range(n):
        f.write('{"timestamp":"2025-12-07T10:30:00.%03dZ","level":"info","request_id":"req-%08x",'
                '"message":"Chat message processed","intent":"faq","latency_ms":%d,'
                '"user":"u%d","token":"sk_live_%016x"}\n' % (i % 1000, i, i % 2000, i, i))
        if i % 1000 == 0:
            f.write("not json at all %d\n" % i)
PY
. benches/log_setup.sh "$work/app.log"
"$trainee" run --config "$work/sidewatch.toml" >/dev/null 2>"$work/train.err" &
trained=$!
for _ in $(seq 600); do
  n=$(delivered); n=${n:-0}
  [ "${n%.*}" -ge 300000 ] && break
  sleep 0.1
done
kill -TERM "$trained" && wait "$trained" || true
# A profile of a run that stalled would build a binary tuned for nothing.
if [ "${n%.*}" -lt 300000 ]; then
  echo "training: the log path delivered ${n%.*} of 300000 lines in 60 s; its stderr:" >&2
  cat "$work/train.err" >&2
  exit 1
fi

echo "== optimised build" >&2
"$profdata" merge -o "$profiles/merged.profdata" "$profiles"/*.profraw
RUSTFLAGS="-Cprofile-use=$profiles/merged.profdata" cargo build --release --locked \
  --bin sidewatch --target "$host" --target-dir target/pgo >&2
echo "$root/target/pgo/$host/release/sidewatch"
