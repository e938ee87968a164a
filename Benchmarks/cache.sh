#!/usr/bin/env bash
# The response cache: (1) exact-hit latency through the release gateway at 16 connections, against
# the same route uncached (the harness's nginx mock upstream, wrk); (2) the semantic index's lookup
# latency, recall and memory at 10,000 and 100,000 vectors of 384 dimensions (HNSW), clustered and random.
#
#   Benchmarks/cache.sh
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bench="${BENCH_DIR:-$root/../shared/bench}"
[ -x "$bench/mock/serve.sh" ] || { echo "Benchmarks/cache.sh: no harness at $bench (set BENCH_DIR)" >&2; exit 1; }
port="${SWITCHYARD_BENCH_PORT:-18085}"
cd "$root"
swift build -c release --product switchyard
state="$(mktemp -d)"
cat > "$state/gateway.yaml" <<YAML
server: { listen: 127.0.0.1:$port, state_dir: $state/state, log_level: warning }
providers:
  mock: { kind: openai-compatible, base_url: http://127.0.0.1:18080/v1, max_connections: 128 }
routes:
  uncached: { targets: [{ provider: mock, model: gpt-4o-mini }] }
  cached:
    targets: [{ provider: mock, model: gpt-4o-mini }]
    cache: { ttl: 1h, always: true }
YAML
taskset -c 0 "$bench/mock/serve.sh" > "$state/mock.log" 2>&1 &
mock=$!
taskset -c 1 .build/release/switchyard serve --config "$state/gateway.yaml" 2> "$state/gateway.log" &
gateway=$!
trap 'kill $gateway 2>/dev/null; pkill -f "llm-gw-mock" 2>/dev/null; kill $mock 2>/dev/null; wait 2>/dev/null; rm -rf "$state"' EXIT
for _ in $(seq 1 50); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.2; done
for model in uncached cached uncached cached; do
  result="$(cd "$bench" && BENCH_MODEL=$model taskset -c 0 wrk -t1 -c16 -d8s --latency -s post.lua "http://127.0.0.1:$port/v1/chat/completions" 2>&1)"
  echo "$model: $(echo "$result" | awk '/Requests\/sec/ {print $2 " req/s"}'), p50 $(echo "$result" | awk '$1=="50%" {print $2}'), p99 $(echo "$result" | awk '$1=="99%" {print $2}')"
done
for entries in 10000 100000; do
  for distribution in clustered random; do .build/release/switchyard benchmark semantic-index --entries "$entries" --distribution "$distribution"; done
done
