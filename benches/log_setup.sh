# Sourced by log_throughput.sh and log_soak.sh: writes $work/sidewatch.toml
# for one file source (the glob in $1) forwarding to stdout, on a free
# loopback admin port ($port), with checkpoints in $work/state; defines
# `delivered`, the sink's delivered count read from /metrics.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir -p "$work/state"
cat > "$work/sidewatch.toml" <<TOML
[admin]
listen = "127.0.0.1:$port"
[self_log]
level = "warn"
[process]
enabled = false
[logs]
state_dir = "$work/state"
[[logs.sources]]
name = "bench"
include = ["$1"]
[[logs.sinks]]
type = "stdout"
TOML
delivered() {
  curl -s "http://127.0.0.1:$port/metrics" 2>/dev/null |
    awk '/^sidewatch_sink_events_total\{.*outcome="delivered"/ {print $2}' | head -1
}
