#!/usr/bin/env bash
# What tracing costs: the same release gateway and config with tracing off, at 1 % sampling
# (`parentbased_traceidratio`, 0.01) and at 100 % (`always_on`), alternating in one run, chat mode,
# through the shared harness (throughput, latency, and the gateway's CPU per request). Spans go to an
# OTLP/HTTP sink on loopback that reads each export and answers 200 (no decoding, so its CPU stays
# small); the sink counts what it received, to check the exporter kept up. BEFORE=path/to/switchyard
# adds a build from before tracing existed, with the same config, to tell "off" from "never there".
#
#   Benchmarks/tracing.sh   # DURATION=8 CONCURRENCY="64" ROUNDS=2 GATEWAY_CPUS=1 SINK_CPUS=0 BEFORE=
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bench="${BENCH_DIR:-$root/../shared/bench}"
[ -x "$bench/run.sh" ] || { echo "Benchmarks/tracing.sh: no harness at $bench (set BENCH_DIR)" >&2; exit 1; }
port="${SWITCHYARD_BENCH_PORT:-18083}"
binary="${BINARY:-$root/.build-release/release/switchyard}"
cd "$root"
[ -x "$binary" ] || swift build -c release --product switchyard --scratch-path .build-release
work="$(mktemp -d)"
gateway=""
sink=""
trap '[ -n "$gateway" ] && kill $gateway 2>/dev/null; [ -n "$sink" ] && kill $sink 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT

cat > "$work/sink.py" <<'PY'
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

received = {"exports": 0, "bytes": 0}


class Sink(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *_):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        received["exports"] += 1
        received["bytes"] += len(body)
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()

    def do_GET(self):
        text = f"{received['exports']} {received['bytes']}\n".encode()
        self.send_response(200)
        self.send_header("content-length", str(len(text)))
        self.end_headers()
        self.wfile.write(text)


server = ThreadingHTTPServer(("127.0.0.1", 0), Sink)
print(server.server_address[1], flush=True)
server.serve_forever()
PY
coproc SINK { exec taskset -c "${SINK_CPUS-0}" python3 "$work/sink.py"; }
sink=$SINK_PID
read -r sink_port <&"${SINK[0]}"

modes="off ratio always"
[ -n "${BEFORE:-}" ] && modes="before $modes" && cp Benchmarks/gateway.yaml "$work/before.yaml"
for mode in off ratio always; do
  { cat Benchmarks/gateway.yaml
    case "$mode" in
      ratio) echo "tracing: { endpoint: \"http://127.0.0.1:$sink_port\", sampler: parentbased_traceidratio, sample_ratio: 0.01 }" ;;
      always) echo "tracing: { endpoint: \"http://127.0.0.1:$sink_port\", sampler: always_on }" ;;
    esac
  } > "$work/$mode.yaml"
done

run() { # mode
  rm -rf "$work/state"
  if curl -sf "http://127.0.0.1:$port/readyz" >/dev/null; then echo "Benchmarks/tracing.sh: something already answers on port $port" >&2; exit 1; fi
  env -u OTEL_EXPORTER_OTLP_ENDPOINT -u OTEL_TRACES_EXPORTER SWITCHYARD_LISTEN="127.0.0.1:$port" SWITCHYARD_STATE_DIR="$work/state" \
    taskset -c "${GATEWAY_CPUS-1}" "$([ "$1" = before ] && echo "$BEFORE" || echo "$binary")" serve --config "$work/$1.yaml" 2> "$work/gateway-$1.log" &
  gateway=$!
  for _ in $(seq 1 50); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.2; done
  kill -0 "$gateway" 2>/dev/null || { cat "$work/gateway-$1.log" >&2; echo "Benchmarks/tracing.sh: the gateway did not start (is port $port taken?)" >&2; exit 1; }
  grep -o '"msg":"requests are traced[^}]*' "$work/gateway-$1.log" | sed 's/^/  /' || true
  TARGETS=" " MODES=chat CONCURRENCY="${CONCURRENCY:-64}" DURATION="${DURATION:-8}" WARMUP=2 SDK_CHECK=0 SDK_ANTHROPIC_TARGETS=" " \
    bash "$bench/run.sh" "switchyard=http://127.0.0.1:$port" 2>&1 | grep -E "^closed +switchyard" || true
  local spans
  spans="$(curl -sf "http://127.0.0.1:$port/metrics" | awk '/^switchyard_trace_spans_total/ { printf "%s ", $0 }')"
  [ -n "$spans" ] && echo "  spans: $spans; sink: $(curl -sf "http://127.0.0.1:$sink_port/") (exports, bytes so far)"
  kill "$gateway"; wait "$gateway" 2>/dev/null || true; gateway=""
}
printf '%-9s %-10s %-5s %6s %10s %9s %9s %9s %7s %9s %8s %7s\n' kind target mode load rps p50_ms p90_ms p99_ms errors gw_us/req mock_us/r gw_MB
for round in $(seq 1 "${ROUNDS:-2}"); do
  for mode in $modes; do
    echo "tracing: $mode (round $round):"; run "$mode"
  done
done
