#!/usr/bin/env bash
# /metrics latency at a fixed 500 req/s from 50 connections (oha), against
# sidewatch (release) with the default metric set and 3 probe targets.
#
#   benches/metrics_latency.sh [seconds]   (default 30; needs `cargo install oha`)
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-30}
command -v oha >/dev/null || { echo "oha is missing: run 'cargo install oha'" >&2; exit 1; }
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
sleep 3
bytes=$(curl -s "http://127.0.0.1:$admin_port/metrics" | wc -c 2>/dev/null || echo "?")
echo "machine: $(nproc) cores, $(uname -m), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "/metrics body: $bytes bytes"
oha --no-tui -q 500 -c 50 -z "${duration}s" "http://127.0.0.1:$admin_port/metrics" | tee "$work/oha.txt" \
  | grep -E "Success rate|Requests/sec|Slowest|Fastest|Average|(50|90|99|99.9)(\.00)?% in" || true
awk '/VmRSS/ {printf "sidewatch RSS after the run: %.1f MiB\n", $2/1024}' "/proc/$pid/status"
