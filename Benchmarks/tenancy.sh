#!/usr/bin/env bash
# What keys, limits, budgets and the ledger cost: the same release gateway measured with anonymous
# requests and with a virtual key that has request, token, concurrency and budget limits (every
# request then authenticated, admitted, settled, priced and written to the SQLite ledger).
# Alternating runs (anonymous, keyed, anonymous, keyed) through the shared harness, chat mode.
#
#   Benchmarks/tenancy.sh          # DURATION=8 CONCURRENCY="16 64"
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bench="${BENCH_DIR:-$root/../shared/bench}"
[ -x "$bench/run.sh" ] || { echo "Benchmarks/tenancy.sh: no harness at $bench (set BENCH_DIR)" >&2; exit 1; }
port="${SWITCHYARD_BENCH_PORT:-18083}"
cd "$root"
swift build -c release --product switchyard
state="$(mktemp -d)"
export SWITCHYARD_LISTEN="127.0.0.1:$port" SWITCHYARD_STATE_DIR="$state"
key="$(.build/release/switchyard keys create --tenant bench --name bench --rpm 100000000 --tpm 1000000000 \
  --concurrency 100000 --budget-daily-usd 1000000 --state-dir "$state" | head -1)"
taskset -c "${GATEWAY_CPUS-1}" .build/release/switchyard serve --config Benchmarks/gateway.yaml 2> "$state/gateway.log" &
gateway=$!
trap 'kill $gateway 2>/dev/null; wait $gateway 2>/dev/null; rm -rf "$state"' EXIT
for _ in $(seq 1 50); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.2; done

run() {
  TARGETS=" " MODES=chat CONCURRENCY="${CONCURRENCY:-16 64}" DURATION="${DURATION:-8}" WARMUP=2 SDK_CHECK=0 SDK_ANTHROPIC_TARGETS=" " \
    BENCH_TOKEN="$1" bash "$bench/run.sh" "switchyard=http://127.0.0.1:$port" 2>&1 | grep -E "^closed +switchyard"
}
for round in 1 2; do
  echo "anonymous (round $round):"; run sk-bench-0000
  echo "with a key, limits, budget and ledger (round $round):"; run "$key"
done
echo "ledger rows written: $(sqlite3 "$state/switchyard.sqlite" 'select count(*) from ledger' 2>/dev/null || echo '(sqlite3 not installed)')"
