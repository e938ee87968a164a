#!/usr/bin/env bash
# End-to-end test of switchyard-console: the gateway on `make demo`'s configuration with its
# synthetic traffic (and more), the console in tmux at 120×40 (capture-pane reads the screen,
# send-keys types). Checks that tenants' spend rises, the cache's hit ratio appears, the flaky
# provider's breaker opens and closes, and live numbers change; drains a provider through the
# console and confirms through the admin API that it gets no new traffic; kills the gateway and sees the disconnected state, restarts it and sees the console
# recover. With SCREENSHOTS=DIR it also saves the captured text of each screen there.
#
# Everything runs on 127.0.0.1 with bounded waits; the binaries come from `swift build`.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
bin="$root/.build/debug"
[ -x "$bin/switchyard" ] && [ -x "$bin/switchyard-console" ] || { echo "e2e: build first (swift build)" >&2; exit 1; }
command -v tmux >/dev/null || { echo "e2e: tmux is missing (scripts/bootstrap installs it)" >&2; exit 1; }

work="$(mktemp -d)"
session="switchyard-e2e-$$"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')"
gateway=""
traffic=""
cleanup() {
  tmux kill-session -t "$session" 2>/dev/null || true
  [ -n "$traffic" ] && kill "$traffic" 2>/dev/null || true
  [ -n "$gateway" ] && kill "$gateway" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "e2e FAIL: $*" >&2; echo "--- screen ---" >&2; screen >&2 || true; exit 1; }

# The demo's configuration and its own synthetic traffic (what `make demo` runs): tenants with
# budgets, a cached route, a flaky provider.
start_gateway() {
  SWITCHYARD_LOG_LEVEL=warning "$bin/switchyard" serve --demo --listen "127.0.0.1:$port" --state-dir "$work/state" 2>> "$work/gateway.log" &
  gateway=$!
  for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && return 0; sleep 0.1; done
  fail "the gateway did not start: $(tail -5 "$work/gateway.log")"
}
ctl() { SWITCHYARD_ADMIN_SOCKET="$work/state/admin.sock" "$bin/switchyard" ctl "$@"; }
screen() { tmux capture-pane -p -t "$session"; }
# Waits up to $2 seconds for a line of the screen to match the regular expression $1.
wait_for_match() {
  local deadline=$((SECONDS + $2))
  while [ $SECONDS -lt $deadline ]; do
    screen | grep -qE -- "$1" && return 0
    sleep 0.5
  done
  fail "nothing matched '$1'"
}
breaker_of() { ctl status --json | python3 -c "import json,sys; print(next(t['breaker'] for t in json.load(sys.stdin)['targets'] if t['provider']=='$1'))"; }
# Waits up to $2 seconds (default 10) for the screen to contain $1.
wait_for() {
  local deadline=$((SECONDS + ${2:-10}))
  while [ $SECONDS -lt $deadline ]; do
    screen | grep -qF -- "$1" && return 0
    sleep 0.2
  done
  fail "'$1' did not appear"
}
shot() { [ -n "${SCREENSHOTS:-}" ] && { mkdir -p "$SCREENSHOTS"; screen > "$SCREENSHOTS/$1.txt"; } || true; }
requests_to() { ctl status --json | python3 -c "import json,sys; print(next(t['requests1m'] for t in json.load(sys.stdin)['targets'] if t['provider']=='$1'))"; }

start_gateway
# More than the demo's own pace, so that the drain check below sees enough requests, and gpt-4.1
# (over the flaky provider) often enough that its breaker opens soon.
( for _ in $(seq 1 3000); do
    curl -s -o /dev/null "http://127.0.0.1:$port/v1/chat/completions" -H 'content-type: application/json' \
      -d '{"model":"gpt-4.1","messages":[{"role":"user","content":"Hello"}]}' &
    curl -s -o /dev/null "http://127.0.0.1:$port/v1/chat/completions" -H 'content-type: application/json' \
      -d '{"model":"claude-sonnet-4-5","messages":[{"role":"user","content":"Hello"}],"stream":true}'
    wait
    sleep 0.02
  done ) &
traffic=$!

tmux new-session -d -s "$session" -x 120 -y 40 "SWITCHYARD_ADMIN_SOCKET=$work/state/admin.sock $bin/switchyard-console --refresh 500ms"
wait_for "● live"
wait_for "requests/s"
first="$(screen | grep -F "requests/s" | awk '{print $3}')"
sleep 2
second="$(screen | grep -F "requests/s" | awk '{print $3}')"
[ "$first" != "$second" ] || fail "requests/s did not change ($first)"
echo "e2e: live numbers change ($first → $second req/s)"

tmux send-keys -t "$session" 2
wait_for "TARGET"
wait_for "sim-claude/claude"
wait_for "breaker_open" 30
echo "e2e: the flaky provider's breaker opened"
shot providers
# Select sim-claude (rows are sorted by provider, then model: flaky, sim ×3, sim-claude…) and drain it.
tmux send-keys -t "$session" j j j j d
wait_for "Drain sim-claude?"
tmux send-keys -t "$session" y
wait_for "provider sim-claude drained"
wait_for "drained"
[ "$(ctl status --json | python3 -c "import json,sys; print(next(t['health'] for t in json.load(sys.stdin)['targets'] if t['provider']=='sim-claude'))")" = drained ] \
  || fail "the admin API does not show sim-claude drained"
# A request already in flight when the drain landed finishes there (as the console says), so
# only requests that started after it count: an event's time is its end, less its latency.
drained_at="$(date +%s.%N)"
events="$(SWITCHYARD_ADMIN_SOCKET="$work/state/admin.sock" timeout 3 "$bin/switchyard" ctl events --json 2>/dev/null || true)"
read -r sent_all sent_drained < <(echo "$events" | python3 -c "
import json, sys
started_after = [e for e in map(json.loads, filter(str.strip, sys.stdin))
                 if e.get('kind') == 'request' and e['time'] - (e.get('latencyMs') or 0) / 1000 > $drained_at]
print(len(started_after), sum(e.get('provider') == 'sim-claude' for e in started_after))")
[ "$sent_all" -gt 5 ] || fail "only $sent_all requests started in 3 s: the check would prove nothing"
[ "$sent_drained" = 0 ] || fail "sim-claude still got $sent_drained requests started after the drain"
echo "e2e: drained through the console; none of the next $sent_all requests reached sim-claude"

tmux send-keys -t "$session" 4
wait_for "Routes"
shot routes
tmux send-keys -t "$session" 6
wait_for "Live log"
wait_for "→ sim/gpt-4"
shot log
tmux send-keys -t "$session" 7
wait_for "One replica"
shot fleet-one-replica
tmux send-keys -t "$session" 3
wait_for "initech"
spent() { screen | awk '$2 == "acme" && $3 ~ /^[0-9]+$/ { print $3 }'; }
first="$(spent)"
for _ in $(seq 1 40); do [ "$(spent)" != "$first" ] && break; sleep 0.5; done
[ "$(spent)" != "$first" ] || fail "acme's requests did not rise on screen ($first)"
echo "e2e: the tenants' spend rises on screen (acme $first → $(spent) requests today)"
# The selected tenant's day: its models and keys, read from the ledger.
wait_for "today ─"
wait_for "sk-sy-demo" 15
wait_for "LAST REFUSALS"
shot tenants
# The demo's keys are declared in its config: a revoke from the console is refused, and says why.
tmux send-keys -t "$session" x
wait_for "Revoke a key of"
tmux send-keys -t "$session" Enter
wait_for "It stops working at once"
tmux send-keys -t "$session" y
wait_for "refused (409)"
echo "e2e: a revoke through the console is answered with the gateway's reply (409: declared in the config file)"
tmux send-keys -t "$session" 5
wait_for "semantic hits"
wait_for_match "hit rate +[1-9]" 90
echo "e2e: the cache's hit ratio appears"
shot cache
# The flaky provider's breaker, open above, closes again once a probe succeeds (it rests 15-30 s).
for _ in $(seq 1 240); do [ "$(breaker_of flaky)" = closed ] && break; sleep 0.5; done
[ "$(breaker_of flaky)" = closed ] || fail "the flaky provider's breaker did not close within 120 s"
echo "e2e: the flaky provider's breaker closed again"
# And opened by hand: flaky is the first row, four above sim-claude.
tmux send-keys -t "$session" 2
wait_for "TARGET"
tmux send-keys -t "$session" k k k k o
wait_for "Open the breaker of flaky/"
tmux send-keys -t "$session" y
wait_for "breaker opened: flaky/"
[ "$(breaker_of flaky)" != closed ] || fail "the admin API does not show flaky's breaker opened from the console"
echo "e2e: the console opened the flaky provider's breaker"
# The tenants again, for the captured screen: by now with a few minutes of spend behind them.
tmux send-keys -t "$session" 3
wait_for "today ─"
sleep 2
shot tenants
tmux send-keys -t "$session" '?'
wait_for "Keys (any key closes)"
shot help
tmux send-keys -t "$session" x 1
wait_for "Last 10 s"
sleep 1
shot overview

kill "$gateway"; wait "$gateway" 2>/dev/null || true; gateway=""
wait_for "○ down" 10
wait_for "disconnected for" 5
shot disconnected
echo "e2e: the console shows the gateway down"
start_gateway
wait_for "● live" 10
echo "e2e: the console reconnected by itself"

tmux send-keys -t "$session" q
for _ in $(seq 1 50); do tmux has-session -t "$session" 2>/dev/null || break; sleep 0.1; done
tmux has-session -t "$session" 2>/dev/null && fail "q did not quit the console"
echo "e2e: OK"
