#!/usr/bin/env bash
# The SwiftNIO floor beside nginx proxy_pass, in one run of the shared harness (chat mode): what a
# proxy written on SwiftNIO's HTTP/1.1 codecs reaches on the gateway's core when it does nothing else
# (nio-floor), and one that frames HTTP/1.1 from the bytes itself (nio-raw).
#   Benchmarks/nio-floor/run.sh          # BENCH_DIR as for Benchmarks/run.sh
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
bench="${BENCH_DIR:-$here/../../../shared/bench}"
[ -x "$bench/run.sh" ] || { echo "nio-floor: no harness at $bench (set BENCH_DIR)" >&2; exit 1; }
port="${FLOOR_PORT:-18099}"
raw_port="${RAW_FLOOR_PORT:-18098}"
cpus="${GATEWAY_CPUS-1}"
(cd "$here" && swift build -c release)
taskset -c "$cpus" "$here/.build/release/NIOFloor" "$port" 18080 &
floor=$!
taskset -c "$cpus" "$here/.build/release/NIOFloor" "$raw_port" 18080 raw &
raw=$!
trap 'kill $floor $raw 2>/dev/null; wait $floor $raw 2>/dev/null' EXIT
TARGETS="${TARGETS:-nginx}" MODES="${MODES:-chat}" GATEWAY_CPUS="$cpus" bash "$bench/run.sh" \
  "nio-floor=http://127.0.0.1:$port" "nio-raw=http://127.0.0.1:$raw_port"
