#!/usr/bin/env bash
# End-to-end test of switchyard-console: a real gateway with simulated providers and traffic, the
# console in tmux (capture-pane reads the screen, send-keys types). Checks that live numbers appear
# and change, drains a provider through the console and confirms through the admin API that it gets
# no new traffic, kills the gateway and sees the disconnected state, restarts it and sees the console
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

cat > "$work/gateway.yaml" <<YAML
server: { listen: 127.0.0.1:$port, state_dir: $work/state, log_level: warning }
providers:
  openai-east: { kind: simulator }
  openai-west: { kind: simulator }
  claude: { kind: simulator, dialect: anthropic }
routes:
  gpt-4o:
    targets: [{ provider: openai-east, model: gpt-4o, weight: 3 }, { provider: openai-west, model: gpt-4o, weight: 1 }]
    fallbacks: [claude]
  claude:
    targets: [{ provider: claude, model: claude-sonnet-4-5 }]
simulator: { ttft: 10ms, tokens_per_second: 0 }
YAML

start_gateway() {
  "$bin/switchyard" serve --config "$work/gateway.yaml" 2>> "$work/gateway.log" &
  gateway=$!
  for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && return 0; sleep 0.1; done
  fail "the gateway did not start: $(tail -5 "$work/gateway.log")"
}
ctl() { SWITCHYARD_ADMIN_SOCKET="$work/state/admin.sock" "$bin/switchyard" ctl "$@"; }
screen() { tmux capture-pane -p -t "$session"; }
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
( for _ in $(seq 1 3000); do
    curl -s -o /dev/null "http://127.0.0.1:$port/v1/chat/completions" -H 'content-type: application/json' \
      -d '{"model":"gpt-4o","messages":[{"role":"user","content":"Hello"}]}'
    curl -s -o /dev/null "http://127.0.0.1:$port/v1/chat/completions" -H 'content-type: application/json' \
      -d '{"model":"claude","messages":[{"role":"user","content":"Hello"}],"stream":true}'
    sleep 0.02
  done ) &
traffic=$!

tmux new-session -d -s "$session" -x 100 -y 30 "SWITCHYARD_ADMIN_SOCKET=$work/state/admin.sock $bin/switchyard-console --refresh 500ms"
wait_for "● live"
wait_for "requests/s"
first="$(screen | grep -F "requests/s" | awk '{print $3}')"
sleep 2
second="$(screen | grep -F "requests/s" | awk '{print $3}')"
[ "$first" != "$second" ] || fail "requests/s did not change ($first)"
echo "e2e: live numbers change ($first → $second req/s)"

tmux send-keys -t "$session" 2
wait_for "TARGET"
wait_for "openai-west/gpt-4o"
shot providers
# Select openai-west (rows are sorted by provider: claude, openai-east, openai-west) and drain it.
tmux send-keys -t "$session" j j d
wait_for "Drain openai-west?"
tmux send-keys -t "$session" y
wait_for "provider openai-west drained"
wait_for "drained"
[ "$(ctl status --json | python3 -c "import json,sys; print(next(t['health'] for t in json.load(sys.stdin)['targets'] if t['provider']=='openai-west'))")" = drained ] \
  || fail "the admin API does not show openai-west drained"
before="$(SWITCHYARD_ADMIN_SOCKET="$work/state/admin.sock" timeout 2 "$bin/switchyard" ctl events --json 2>/dev/null || true)"
sent_west="$(echo "$before" | grep -c '"provider":"openai-west"' || true)"
sent_all="$(echo "$before" | grep -c '"kind":"request"' || true)"
[ "$sent_all" -gt 10 ] || fail "only $sent_all requests seen in 2 s: the check would prove nothing"
[ "$sent_west" = 0 ] || fail "openai-west still got $sent_west requests after the drain"
echo "e2e: drained through the console; none of the next $sent_all requests reached openai-west"

tmux send-keys -t "$session" 4
wait_for "Routes"
shot routes
tmux send-keys -t "$session" 6
wait_for "Live log"
wait_for "→ openai-east/gpt-4o"
shot log
tmux send-keys -t "$session" 7
wait_for "One replica"
shot fleet
tmux send-keys -t "$session" 3
wait_for "No tenants"
shot tenants
tmux send-keys -t "$session" 5
wait_for "Response caching is not enabled"
shot cache
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
