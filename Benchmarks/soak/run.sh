#!/usr/bin/env bash
# The soak (docs/performance.md): a mixed load against one gateway for DURATION seconds (default 600),
# its memory and open file descriptors sampled every second, the slope after warm-up printed.
#
#   Benchmarks/soak/run.sh                          # release build, 10 minutes
#   CONFIGURATION=debug DURATION=20 Benchmarks/soak/run.sh   # the short run `make test-soak` does
#   BINARY=path/to/switchyard Benchmarks/soak/run.sh         # a binary built elsewhere
#
# The simulated providers run as their own process (`switchyard simulate`), so the gateway's own
# memory is what is measured. All traffic stays on 127.0.0.1; every wait is bounded.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
configuration="${CONFIGURATION:-release}"
binary="${BINARY:-}"   # a switchyard binary built elsewhere; otherwise built here
if [ -z "$binary" ]; then
  swift build -c "$configuration" --product switchyard
  binary="$root/.build/$configuration/switchyard"
fi
export SOAK_PORT="${SOAK_PORT:-18183}" SOAK_SIM_PORT="${SOAK_SIM_PORT:-18190}"
export SOAK_STATE_DIR="$(mktemp -d)"
results="$root/Benchmarks/results"
mkdir -p "$results"
export SOAK_SAMPLES="$results/soak-$(date -u +%Y%m%dT%H%M%SZ).csv"

"$binary" simulate --port "$SOAK_SIM_PORT" --ttft 20ms --tps 2000 2> "$SOAK_STATE_DIR/simulator.log" &
simulator=$!
${GATEWAY_CPUS:+taskset -c "$GATEWAY_CPUS"} "$binary" serve --config Benchmarks/soak/gateway.yaml 2> "$SOAK_STATE_DIR/gateway.log" &
gateway=$!
cleanup() {
  kill "$gateway" "$simulator" 2>/dev/null || true
  wait "$gateway" "$simulator" 2>/dev/null || true
  rm -rf "$SOAK_STATE_DIR"
}
trap cleanup EXIT
for _ in $(seq 1 100); do
  curl -sf "http://127.0.0.1:$SOAK_PORT/readyz" >/dev/null && curl -sf "http://127.0.0.1:$SOAK_SIM_PORT/v1/models" >/dev/null && break
  sleep 0.2
done
curl -sf "http://127.0.0.1:$SOAK_PORT/readyz" >/dev/null || { echo "soak: the gateway did not start" >&2; cat "$SOAK_STATE_DIR/gateway.log" >&2; exit 1; }

status=0
SOAK_GATEWAY_PID="$gateway" python3 Benchmarks/soak/soak.py || status=$?
curl -sf "http://127.0.0.1:$SOAK_PORT/readyz" >/dev/null || { echo "soak: FAIL: the gateway stopped answering" >&2; status=1; }
ledger="$(sqlite3 "$SOAK_STATE_DIR/switchyard.sqlite" 'select count(*) from ledger' 2>/dev/null || echo '?')"
echo "soak: samples in $SOAK_SAMPLES; ledger rows so far: $ledger"
exit $status
