#!/usr/bin/env bash
# What sharing limits through Redis costs a keyed request: the same release gateway and config, with a
# declared key that has request, token, concurrency and daily-budget limits, run with `state: local`
# and with `state: redis://…` (a redis-server started here, persistence off), alternating
# (local, redis, local, redis), chat mode, through the shared harness. For the Redis runs it also
# reports the script runs a request cost (each admission and each settlement is one `EVALSHA`, one
# round trip; lease renewals and heartbeats are periodic) and the CPU redis-server spent a request.
#
#   Benchmarks/fleet.sh          # DURATION=8 CONCURRENCY="16 64" ROUNDS=2; REDIS_CPUS=0 GATEWAY_CPUS=1
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bench="${BENCH_DIR:-$root/../shared/bench}"
[ -x "$bench/run.sh" ] || { echo "Benchmarks/fleet.sh: no harness at $bench (set BENCH_DIR)" >&2; exit 1; }
port="${SWITCHYARD_BENCH_PORT:-18083}"
binary="${BINARY:-$root/.build-release/release/switchyard}"
cd "$root"
[ -x "$binary" ] || swift build -c release --product switchyard --scratch-path .build-release
work="$(mktemp -d)"
gateway=""
redis=""
trap '[ -n "$gateway" ] && kill $gateway 2>/dev/null; [ -n "$redis" ] && kill $redis 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT

redis_port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')"
taskset -c "${REDIS_CPUS-0}" redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no --dir "$work" \
  --daemonize no --logfile "$work/redis.log" &
redis=$!
for _ in $(seq 1 50); do redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break; sleep 0.1; done

key="sk-sy-benchfleet0000000000000000000000000000"
for state in local redis; do
  { cat Benchmarks/gateway.yaml
    cat <<YAML
tenants:
  bench:
    keys:
      bench: { key: "$key", limits: { rpm: 100000000, tpm: 1000000000, concurrency: 100000 }, budget: { daily_usd: 1000000 } }
YAML
    [ "$state" = redis ] && echo "state: redis://127.0.0.1:$redis_port"
  } > "$work/$state.yaml"
done

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# Scripts run so far (EVALSHA and EVAL): the round trips that admission and settlement make.
scripts() { redis-cli -p "$redis_port" info commandstats | tr -d '\r' | awk -F'[:=,]' '/^cmdstat_(evalsha|eval):/ {sum += $3} END {printf "%d", sum}'; }
run() { # state
  rm -rf "$work/state"
  SWITCHYARD_LISTEN="127.0.0.1:$port" SWITCHYARD_STATE_DIR="$work/state" \
    taskset -c "${GATEWAY_CPUS-1}" "$binary" serve --config "$work/$1.yaml" 2> "$work/gateway-$1.log" &
  gateway=$!
  for _ in $(seq 1 50); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.2; done
  local commands0 redis0 lines
  commands0="$(scripts)"
  redis0="$(ticks $redis)"
  lines="$(TARGETS=" " MODES=chat CONCURRENCY="${CONCURRENCY:-16 64}" DURATION="${DURATION:-8}" WARMUP=2 SDK_CHECK=0 SDK_ANTHROPIC_TARGETS=" " \
    BENCH_TOKEN="$key" bash "$bench/run.sh" "switchyard=http://127.0.0.1:$port" 2>&1 | grep -E "^closed +switchyard")"
  echo "$lines"
  local served commands redis_us
  served="$(curl -s "http://127.0.0.1:$port/metrics" | awk '/^switchyard_requests_total\{/ {sum += $NF} END {printf "%d", sum}')"
  commands="$(( $(scripts) - commands0 ))"
  redis_us="$(( ( $(ticks $redis) - redis0 ) * 1000000 / $(getconf CLK_TCK) / (served > 0 ? served : 1) ))"
  if [ "$1" = redis ]; then
    awk -v c="$commands" -v s="$served" -v r="$redis_us" 'BEGIN { printf "  redis: %d script runs for %d requests (%.2f a request), redis-server CPU %d us a request\n", c, s, (s ? c / s : 0), r }'
  fi
  kill "$gateway"; wait "$gateway" 2>/dev/null || true; gateway=""
}
printf '%-9s %-10s %-5s %6s %10s %9s %9s %9s %7s %9s %8s %7s\n' kind target mode load rps p50_ms p90_ms p99_ms errors gw_us/req mock_us/r gw_MB
for round in $(seq 1 "${ROUNDS:-2}"); do
  echo "state: local (round $round):"; run local
  echo "state: redis (round $round):"; run redis
done
