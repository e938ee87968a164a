#!/usr/bin/env bash
# The console's cost when nobody touches it: CPU time of switchyard-console at a 1 s refresh in a
# 120x40 tmux pane, over SECONDS_EACH (default 60) seconds, attached to a gateway with no traffic and
# to the demo with its synthetic traffic (a redraw every refresh, events streaming in).
#   CONSOLE=.build/release/switchyard-console GATEWAY=.build/debug/switchyard bash Benchmarks/console-idle.sh
set -euo pipefail
cd "$(dirname "$0")/.."
console="${CONSOLE:-.build/release/switchyard-console}"
gateway_bin="${GATEWAY:-.build/debug/switchyard}"
seconds="${SECONDS_EACH:-60}"
[ -x "$console" ] && [ -x "$gateway_bin" ] || { echo "build first: swift build -c release --product switchyard-console; swift build --product switchyard" >&2; exit 1; }
work="$(mktemp -d)"
session="sy-idle-$$"
gateway=""
cleanup() {
  tmux kill-session -t "$session" 2>/dev/null || true
  [ -n "$gateway" ] && kill "$gateway" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

measure() {
  local label="$1"; shift
  rm -rf "$work/state"
  SWITCHYARD_LOG_LEVEL=warning "$gateway_bin" serve "$@" --listen 127.0.0.1:0 --state-dir "$work/state" 2>>"$work/gateway.log" &
  gateway=$!
  for _ in $(seq 1 100); do [ -S "$work/state/admin.sock" ] && break; sleep 0.1; done
  tmux new-session -d -s "$session" -x 120 -y 40 "exec $console --socket $work/state/admin.sock --refresh 1s"
  sleep 5
  local pid
  pid="$(tmux list-panes -t "$session" -F '#{pane_pid}')"
  local before after
  before="$(ticks "$pid")"
  sleep "$seconds"
  after="$(ticks "$pid")"
  python3 -c "import os; t=$after-$before; hz=os.sysconf('SC_CLK_TCK'); print(f'$label: {t} ticks in $seconds s = {100*t/hz/$seconds:.2f}% of a core')"
  tmux kill-session -t "$session"
  kill "$gateway"; wait "$gateway" 2>/dev/null || true; gateway=""
}

echo "console: $console ($(file -b "$console" | cut -d, -f1)); $(nproc) cores"
measure "no traffic (zero-config gateway)"
measure "demo traffic (serve --demo)" --demo
