#!/usr/bin/env bash
# Builds the libFuzzer harness (Fuzz/Package.swift, with the fuzzer and address sanitizers) and runs
# each target in turn, one process at a time, bounded by time and/or runs.
#
#   Fuzz/run.sh [seconds-per-target] [runs-per-target] [target...]
#
# seconds: -max_total_time for each target (default 60); runs: -runs (default -1, unbounded);
# targets: all when none is named. The committed seed corpus (Fuzz/corpus/<target>) is read, never
# written: what a run discovers goes to .build-fuzz/corpus/<target>, crashes and their inputs to
# .build-fuzz/crashes/<target>/, each target's log to .build-fuzz/logs/<target>.log.
# Exits non-zero when a target crashes, trips a sanitizer, times out, runs out of memory or breaks
# one of the harness's properties. Replay an input with:
#   SWIFT_BACKTRACE=enable=no FUZZ_TARGET=<target> .build-fuzz/release/SwitchyardFuzz <file>
#
# FUZZ_CONFIGURATION=debug builds without optimization: a third of the build time and bounds checks on
# every unsafe buffer access (which release builds leave out), at a third to a fifth of the speed. The
# short run of `make test-fuzz` uses it; long runs want release (the default).
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-60}
runs=${2:--1}
shift $(($# < 2 ? $# : 2))
all_targets=(request-head response-head chunked json openai-patch openai-request anthropic-request embeddings-request
  responses openai-stream openai-relay anthropic-stream gemini-stream ollama-stream config)
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${all_targets[@]}")

scratch=.build-fuzz
configuration=${FUZZ_CONFIGURATION:-release}
swift build -c "$configuration" --package-path Fuzz --scratch-path "$scratch" --product SwitchyardFuzz \
  -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library
binary="$scratch/$configuration/SwitchyardFuzz"

dictionary() {
  case "$1" in
    request-head | response-head | chunked) echo http ;;
    *-stream | openai-relay) echo stream ;;
    config) echo yaml ;;
    *) echo json ;;
  esac
}

# Longest input: room for a request head past its 16 KiB limit; small elsewhere, which keeps the
# executions fast (every parser's limits above that are framing limits the heads cover).
max_length() {
  case "$1" in
    request-head) echo 17000 ;;
    config) echo 8192 ;;
    *) echo 4096 ;;
  esac
}

failed=()
printf '%-20s %14s %10s  %s\n' target executions "per second" result
for target in "${targets[@]}"; do
  [ -d "Fuzz/corpus/$target" ] || { echo "run.sh: unknown target '$target' (no Fuzz/corpus/$target)" >&2; exit 2; }
  mkdir -p "$scratch/corpus/$target" "$scratch/crashes/$target" "$scratch/logs"
  log="$scratch/logs/$target.log"
  status=0
  # Swift's own crash reporter reads memory ASan guards; libFuzzer reports the crash instead.
  SWIFT_BACKTRACE=enable=no FUZZ_TARGET=$target "$binary" "$scratch/corpus/$target" "Fuzz/corpus/$target" \
    -dict="Fuzz/dict/$(dictionary "$target").dict" -max_len="$(max_length "$target")" \
    -max_total_time="$seconds" -runs="$runs" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$scratch/crashes/$target/" >"$log" 2>&1 || status=$?
  executions=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  if [ "$status" -eq 0 ]; then
    result=ok
  else
    artifact=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -1)
    result="FAILED (exit $status): ${artifact:-see $log}"
    failed+=("$target")
  fi
  printf '%-20s %14s %10s  %s\n' "$target" "${executions:-?}" "${rate:-?}" "$result"
done

if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzzing found failures in: ${failed[*]} (logs in $scratch/logs)" >&2
  exit 1
fi
