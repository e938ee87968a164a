#!/usr/bin/env bash
# Does a slow /v1/events subscriber slow traffic down? Open-loop load at a fixed rate (the shared
# harness's ratebench.py) through the release gateway, first alone, then while a reader drains the
# admin event stream at 1 KiB/s (so its buffer fills and events are dropped for it).
#
#   Benchmarks/events.sh            # RATE=1000 DURATION=10
#
# The upstream is the in-process simulator answering at once. Everything stays on 127.0.0.1.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bench="${BENCH_DIR:-$root/../shared/bench}"
python="${PYTHON:-$bench/.venv/bin/python}"
[ -x "$python" ] || { echo "Benchmarks/events.sh: no $python (run $bench/setup.sh)" >&2; exit 1; }
rate="${RATE:-1000}"
duration="${DURATION:-10}"
port="${SWITCHYARD_BENCH_PORT:-18084}"

cd "$root"
swift build -c release --product switchyard
state="$(mktemp -d)"
cat > "$state/gateway.yaml" <<YAML
server: { listen: 127.0.0.1:$port, state_dir: $state/state, log_level: warning }
providers:
  sim: { kind: simulator }
routes:
  m: { targets: [{ provider: sim, model: m }] }
simulator: { ttft: 0ms, tokens_per_second: 0 }
YAML
taskset -c 1 .build/release/switchyard serve --config "$state/gateway.yaml" 2> "$state/gateway.log" &
gateway=$!
reader=""
trap 'kill $gateway $reader 2>/dev/null; wait $gateway 2>/dev/null; rm -rf "$state"' EXIT
for _ in $(seq 1 50); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.2; done

cpu_ticks() { awk '{print $14 + $15}' "/proc/$gateway/stat"; }

# One measured run; adds the gateway's CPU time per request (µs) to the harness's RESULT line.
load() {
  local before after result
  before=$(cpu_ticks)
  result=$(taskset -c 0 "$python" "$bench/ratebench.py" --url "http://127.0.0.1:$port/v1/chat/completions" \
    --rate "$rate" --duration "$duration" --model m 2>/dev/null | grep RESULT | sed 's/ svc_p50.*//')
  after=$(cpu_ticks)
  local requests; requests=$(( (rate * (duration + 2)) ))
  echo "$result gw_cpu_us_per_req=$(( (after - before) * 1000000 / $(getconf CLK_TCK) / requests ))"
}

load >/dev/null   # warm-up
# Alternating runs, so drift of the machine shows as a difference between the two runs without.
echo "without a subscriber:   $(load)"
taskset -c 0 curl -sN --limit-rate 1K --unix-socket "$state/state/admin.sock" http://localhost/v1/events -o /dev/null &
reader=$!
sleep 1
echo "with a slow subscriber: $(load)"
echo "gateway RSS with it:    $(ps -o rss= -p $gateway | awk '{printf "%.0f MB", $1/1024}')"
kill $reader; wait $reader 2>/dev/null || true; reader=""
echo "without, again:         $(load)"
