#!/usr/bin/env bash
# The overhead benchmark: Switchyard (release build, pinned to one core) measured in the same run as
# direct access, nginx proxy_pass and LiteLLM, with the shared harness (wrk + nginx mock upstream).
#
#   Benchmarks/run.sh                         # everything, about 8 minutes
#   TARGETS="direct nginx" Benchmarks/run.sh  # without LiteLLM
#
# The harness lives outside this repository: BENCH_DIR (default ../shared/bench); run its setup.sh once.
# All traffic stays on 127.0.0.1, and every run is bounded in time.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bench="${BENCH_DIR:-$root/../shared/bench}"
[ -x "$bench/run.sh" ] || { echo "Benchmarks/run.sh: no harness at $bench (set BENCH_DIR)" >&2; exit 1; }
port="${SWITCHYARD_BENCH_PORT:-18083}"
cpus="${GATEWAY_CPUS-1}"

cd "$root"
swift build -c release --product switchyard
state="$(mktemp -d)"
export SWITCHYARD_LISTEN="127.0.0.1:$port" SWITCHYARD_STATE_DIR="$state"
if [ -n "$cpus" ]; then
  taskset -c "$cpus" .build/release/switchyard serve --config Benchmarks/gateway.yaml 2> "$state/gateway.log" &
else
  .build/release/switchyard serve --config Benchmarks/gateway.yaml 2> "$state/gateway.log" &
fi
gateway=$!
trap 'kill $gateway 2>/dev/null; wait $gateway 2>/dev/null; rm -rf "$state"' EXIT
for _ in $(seq 1 50); do
  curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break
  sleep 0.2
done
curl -sf "http://127.0.0.1:$port/readyz" >/dev/null || { cat "$state/gateway.log" >&2; exit 1; }
GATEWAY_CPUS="$cpus" bash "$bench/run.sh" "switchyard=http://127.0.0.1:$port"
