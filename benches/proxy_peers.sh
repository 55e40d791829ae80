# Sourced by proxy.sh, proxy_rounds.sh, proxy_latency.sh, proxy_profile.sh
# and soak.sh: the proxy benchmarks'
# upstream and peer, each started in the background in $work.
#   port                        a free loopback port
#   stop_all                    kills every pid in $pids, removes $work (an EXIT trap)
#   start_nginx PORT [grpc]     nginx `return 200 "ok\n"` (Debian nginx-light),
#                               one worker, keep-alive without limit; sets nginx_pid.
#                               With `grpc`, HTTP/2 cleartext (prior knowledge)
#                               answering as a gRPC server ends a call:
#                               `grpc-status: 0` in trailers after a short body
#   start_haproxy PORT UPSTREAM [log|h2]
#                               haproxy 2.6 (Debian) in HTTP mode with
#                               keep-alive and connection reuse; sets haproxy_pid.
#                               With `h2`, HTTP/2 cleartext on both sides.
#                               With `log`, it also writes a JSON access log
#                               line per request to its stdout (discarded, as
#                               sidewatch's is) and adds an X-Request-ID:
#                               like for like with sidewatch's access log
#   proxy_config FILE ADMIN_PORT LISTEN_PORT UPSTREAM_PORT ACCESS_LOG THREADS
#                               writes a sidewatch config: the proxy only
#                               (process collector off), access log to stdout
#   start_upstream              makes $work and $pids, sets the EXIT trap and
#                               starts nginx on a free port; sets nginx_port
#   start_sidewatch_runs BIN UPSTREAM_PORT
#                               BIN with the access log on and off (and
#                               $BASELINE_BIN too, when set), proxy.threads =
#                               $PROXY_THREADS (default 1); appends each to
#                               $names, $ports, $procs and $pids
#   wait_ready                  waits until every port in $ports answers
#   summarize_rounds FILE SECS UNIT BENCH
#                               from FILE's lines `name count cpu_before
#                               cpu_after` (CPU in ticks), prints each name's
#                               median UNITs/s against haproxy's and CPU-µs per
#                               UNIT (no CPU for `direct`), with RESULT lines
#                               for compare.sh (BENCH.name_rps, _cpu_us_per_req)

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

stop_all() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}

start_nginx() {
  local listen="127.0.0.1:$1" location='return 200 "ok\n";'
  if [ "${2:-}" = grpc ]; then
    listen="$listen http2"
    location='default_type application/grpc; add_trailer grpc-status 0; add_trailer grpc-message ""; return 200 "ok";'
  fi
  cat > "$work/nginx.conf" <<CONF
daemon off;
worker_processes 1;
pid $work/nginx.pid;
error_log $work/nginx.err;
events { worker_connections 1024; }
http {
  access_log off;
  keepalive_requests 1000000;
  server {
    listen $listen;
    location / { $location }
  }
}
CONF
  nginx -c "$work/nginx.conf" -p "$work" &
  nginx_pid=$!
}

proxy_config() {
  cat > "$1" <<CONF
[admin]
listen = "127.0.0.1:$2"
[process]
enabled = false
[proxy]
listen = "127.0.0.1:$3"
upstream = "127.0.0.1:$4"
access_log = $5
threads = $6
[[logs.sinks]]
type = "stdout"
CONF
}

start_haproxy() {
  local log_lines="" proto="" config=$work/haproxy${3:+_$3}.cfg
  [ "${3:-}" = h2 ] && proto=" proto h2"
  if [ "${3:-}" = log ]; then
    log_lines=$(cat <<'LOG'
  log stdout format raw local0
  unique-id-format %{+X}o%ci:%cp_%fi:%fp_%Ts_%rt:%pid
  unique-id-header X-Request-ID
  log-format '{"timestamp":"%trg","method":"%HM","path":"%HPO","status":%ST,"duration_ms":%Tr,"request_bytes":%U,"response_bytes":%B,"correlation_id":"%ID"}'
LOG
)
  fi
  cat > "$config" <<CONF
global
  maxconn 4096
defaults
  mode http
  timeout connect 2s
  timeout client 60s
  timeout server 60s
  option http-keep-alive
frontend f
  bind 127.0.0.1:$1$proto
  default_backend b
$log_lines
backend b
  http-reuse always
  server app 127.0.0.1:$2$proto
CONF
  haproxy -f "$config" -db >/dev/null 2>&1 &
  haproxy_pid=$!
}

start_sidewatch_runs() {
  local runs=("$1 true" "$1 false") run run_bin access_log listen name
  [ -n "${BASELINE_BIN:-}" ] && runs+=("$BASELINE_BIN true" "$BASELINE_BIN false")
  for run in "${runs[@]}"; do
    read -r run_bin access_log <<<"$run"
    listen=$(port)
    name=sidewatch_log_$access_log
    [ "$run_bin" != "$1" ] && name=baseline_log_$access_log
    proxy_config "$work/$name.toml" "$(port)" "$listen" "$2" "$access_log" "${PROXY_THREADS:-1}"
    "$run_bin" run --config "$work/$name.toml" >/dev/null 2>"$work/$name.err" &
    pids+=($!); procs+=($!); ports+=("$listen"); names+=("$name")
  done
}

wait_ready() {
  local p
  for p in "${ports[@]}"; do
    for _ in $(seq 50); do curl -sf "http://127.0.0.1:$p/" >/dev/null && break; sleep 0.1; done
  done
}

start_upstream() {
  work=$(mktemp -d)
  pids=()
  trap stop_all EXIT
  nginx_port=$(port)
  start_nginx "$nginx_port"
  pids+=($nginx_pid)
}

summarize_rounds() {
  python3 - "$2" "$(getconf CLK_TCK)" "$1" "$3" "$4" <<'PY'
import statistics, sys
secs, hz, path, unit, bench = float(sys.argv[1]), float(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
runs = {}
for line in open(path):
    name, count, before, after = line.split()
    count = int(count)
    runs.setdefault(name, []).append((count / secs, (int(after) - int(before)) / hz * 1e6 / max(count, 1)))
peer = statistics.median(rps for rps, _ in runs["haproxy"])
for name, measured in runs.items():
    rps = statistics.median(r for r, _ in measured)
    cpu = statistics.median(c for _, c in measured)
    each = " ".join("%.0f" % r for r, _ in measured)
    cpu_text = "" if name == "direct" else "%5.1f µs CPU/%s" % (cpu, unit)
    print("%-20s median %7.0f %s/s  %.2f of haproxy  %s   runs: %s" % (name, rps, unit, rps / peer, cpu_text, each))
    print("RESULT %s.%s_rps %.0f" % (bench, name, rps))
    if name != "direct":
        print("RESULT %s.%s_cpu_us_per_req %.1f" % (bench, name, cpu))
PY
}
