# Sourced by idle.sh and metrics_latency.sh: builds the release binary and
# starts sidewatch with 3 probe targets every 5 s against a local HTTP server
# (python3 -m http.server). Sets $bin, $work, $admin_port and $pid (sidewatch);
# everything it starts is stopped on exit.
. benches/release_bin.sh

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
