#!/usr/bin/env bash
# The overhead benchmark: Switchyard (release build, pinned to one core) measured in the same run as
# direct access, nginx proxy_pass and LiteLLM, with the shared harness (wrk + nginx mock upstream);
# then the HTTPS lane (the mock behind an nginx TLS front, as a hosted vendor's endpoint is, with
# nginx `proxy_pass https://` to the same front as the floor), and the translated lane (Anthropic
# Messages in, OpenAI chat out) beside the same gateway's OpenAI chat, in the same run.
#
#   Benchmarks/run.sh                         # everything, about 12 minutes
#   TARGETS="direct nginx" Benchmarks/run.sh  # without LiteLLM
#   SWITCHYARD_FAST_LANE=false Benchmarks/run.sh   # the framework lane only
#
# The harness lives outside this repository: BENCH_DIR (default ../shared/bench); run its setup.sh once.
# All traffic stays on 127.0.0.1, and every run is bounded in time.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bench="${BENCH_DIR:-$root/../shared/bench}"
[ -x "$bench/run.sh" ] || { echo "Benchmarks/run.sh: no harness at $bench (set BENCH_DIR)" >&2; exit 1; }
port="${SWITCHYARD_BENCH_PORT:-18083}"
https_port="${SWITCHYARD_BENCH_HTTPS_PORT:-18084}"
cpus="${GATEWAY_CPUS-1}"
side_cpus="${LOADGEN_CPUS-0}"
binary="${BINARY:-$root/.build/release/switchyard}"

cd "$root"
[ -n "${BINARY:-}" ] || swift build -c release --product switchyard
state="$(mktemp -d)"
pids=()
cleanup() {
  for pid in ${pids[@]+"${pids[@]}"}; do kill "$pid" 2>/dev/null || true; done
  for pid in ${pids[@]+"${pids[@]}"}; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$state"
}
trap cleanup EXIT
# exec: started in the background, the process is the one whose pid is kept (and stopped at the end).
pinned() { local on=$1; shift; if [ -n "$on" ]; then exec taskset -c "$on" "$@"; else exec "$@"; fi; }
wait_ready() { # url log
  for _ in $(seq 1 50); do
    curl -sf "$1" >/dev/null && return 0
    sleep 0.2
  done
  cat "$2" >&2
  exit 1
}

# The HTTPS front and its floor (shared/bench/tls): a certificate made for this run, trusted by the
# gateway through its provider's tls.ca_file (nothing is added to the system's trust store).
export BENCH_TLS_DIR="$state/tls"
mkdir -p "$BENCH_TLS_DIR"
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$BENCH_TLS_DIR/key.pem" -out "$BENCH_TLS_DIR/cert.pem" -days 2 \
  -subj "/CN=127.0.0.1" -addext "subjectAltName=IP:127.0.0.1,DNS:localhost" 2>/dev/null
for conf in tls-front nginx-tls; do sed "s|@PREFIX@|$BENCH_TLS_DIR|g" "$bench/tls/$conf.conf" > "$BENCH_TLS_DIR/$conf.conf"; done
pinned "$side_cpus" nginx -p "$BENCH_TLS_DIR" -c "$BENCH_TLS_DIR/tls-front.conf" -g 'daemon off;' &
pids+=($!)
pinned "$cpus" nginx -p "$BENCH_TLS_DIR" -c "$BENCH_TLS_DIR/nginx-tls.conf" -g 'daemon off;' &
pids+=($!)

# The gateway twice: in front of the plain mock, and in front of the TLS front.
SWITCHYARD_LISTEN="127.0.0.1:$port" SWITCHYARD_STATE_DIR="$state/plain" \
  pinned "$cpus" "$binary" serve --config Benchmarks/gateway.yaml 2> "$state/gateway.log" &
pids+=($!)
SWITCHYARD_LISTEN="127.0.0.1:$https_port" SWITCHYARD_STATE_DIR="$state/https" \
  pinned "$cpus" "$binary" serve --config Benchmarks/gateway-https.yaml 2> "$state/gateway-https.log" &
pids+=($!)
wait_ready "http://127.0.0.1:$port/readyz" "$state/gateway.log"
wait_ready "http://127.0.0.1:$https_port/readyz" "$state/gateway-https.log"

# The front serves only the instant mock: the slow modes stay with the plain targets.
GATEWAY_CPUS="$cpus" bash "$bench/run.sh" "switchyard=http://127.0.0.1:$port" \
  "switchyard-https=http://127.0.0.1:$https_port" "nginx-https=http://127.0.0.1:18181"

# Translated against same-dialect, one gateway, one mock, alternating: Anthropic Messages in and
# OpenAI chat out, and OpenAI chat in and out, c64 each.
duration="${DURATION:-10}"
MOCK_PORT=18080 pinned "$side_cpus" bash "$bench/mock/serve.sh" > "$state/mock.log" 2>&1 &
pids+=($!)
wait_ready "http://127.0.0.1:18080/health" "$state/mock.log"
echo
echo "translated (Anthropic Messages in, OpenAI chat out) against same-dialect, c64, ${duration}s each"
printf '%-22s %10s %10s\n' lane "req/s" "vs same"
same=0
for round in 1 2; do
  for kind in same translated; do
    if [ "$kind" = same ]; then
      body="$bench/payloads/chat.json" path=/v1/chat/completions model=gpt-4o-mini
    else
      body="$bench/payloads/messages.json" path=/v1/messages model=claude-sonnet-4-6
    fi
    result=$(cd "$bench" && BENCH_BODY="$body" BENCH_PATH="$path" BENCH_MODEL="$model" \
      pinned "$side_cpus" wrk -t1 -c64 -d"${duration}s" --timeout 10s -s post.lua "http://127.0.0.1:$port" | grep '^RESULT' || true)
    rps=$(sed -n 's/.* rps=\([0-9.]*\).*/\1/p' <<<"$result")
    [ "$kind" = same ] && same=${rps:-0}
    printf '%-22s %10s %10s\n' "$kind (round $round)" "${rps:-?}" "$(awk -v a="${rps:-0}" -v b="$same" 'BEGIN{ if (b > 0) printf "%.2f", a / b; else print "-" }')"
  done
done
