#!/usr/bin/env bash
# The ledger under a real process's death. Two runs of the real binary with the simulator:
#  1. load, then SIGTERM: every request that completed has exactly one ledger row;
#  2. load, then kill -9: the database opens cleanly (PRAGMA integrity_check = ok) and every request
#     that completed more than one flush interval (25 ms) and a batch's write before the kill has its row; the script
#     reports the measured loss window (how long before the kill the oldest missing request ended);
#     more than a second fails.
# Loopback only, bounded loops; needs python3 (its sqlite3 module reads the database).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
bin="$root/.build/debug/switchyard"
[ -x "$bin" ] || { echo "ledger: build first (swift build)" >&2; exit 1; }
work="$(mktemp -d)"
gateway=""
trap '[ -n "$gateway" ] && kill -9 "$gateway" 2>/dev/null; rm -rf "$work"' EXIT
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')"
cat > "$work/gateway.yaml" <<YAML
server: { listen: 127.0.0.1:$port, state_dir: $work/state, log_level: warning }
providers: { sim: { kind: simulator } }
routes: { m: { targets: [{ provider: sim, model: gpt-4o-mini }] } }
simulator: { ttft: 1ms, tokens_per_second: 0 }
YAML

start() {
  "$bin" serve --config "$work/gateway.yaml" 2>> "$work/gateway.log" &
  gateway=$!
  for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && return 0; sleep 0.1; done
  echo "ledger: the gateway did not start" >&2; exit 1
}

# Sends requests for about $1 seconds from 4 clients; writes "<request id> <end time>" lines to $2.
load() {
  python3 - "$port" "$1" "$2" <<'PY'
import json, sys, threading, time, urllib.request
port, seconds, out = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
lines, lock = [], threading.Lock()
body = json.dumps({"model": "m", "messages": [{"role": "user", "content": "Hello"}]}).encode()
def client(n):
    end = time.time() + seconds
    i = 0
    while time.time() < end and i < 5000:
        i += 1
        request_id = f"dur-{n}-{i}-{time.time_ns()}"
        req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/chat/completions", data=body,
            headers={"content-type": "application/json", "x-request-id": request_id})
        try:
            with urllib.request.urlopen(req, timeout=5) as response:
                response.read()
                done = time.time()
            with lock: lines.append(f"{request_id} {done}")
        except Exception:
            return
threads = [threading.Thread(target=client, args=(n,)) for n in range(4)]
[t.start() for t in threads]; [t.join() for t in threads]
open(out, "w").write("\n".join(lines) + "\n")
PY
}

check() {
  python3 - "$work/state/switchyard.sqlite" "$1" "$2" "$3" <<'PY'
import sqlite3, sys
db, completed_file, killed_at, mode = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]
connection = sqlite3.connect(db)
integrity = connection.execute("PRAGMA integrity_check").fetchone()[0]
rows = {}
for (request_id,) in connection.execute("SELECT request_id FROM ledger"):
    rows[request_id] = rows.get(request_id, 0) + 1
completed = [line.split() for line in open(completed_file) if line.strip()]
missing = [(rid, float(t)) for rid, t in completed if rid not in rows]
duplicated = [rid for rid, count in rows.items() if count > 1]
print(f"{mode}: {len(completed)} requests completed, {len(rows)} ledger rows, integrity {integrity}, "
      f"{len(missing)} missing, {len(duplicated)} duplicated")
if integrity != "ok" or duplicated: sys.exit(1)
if mode == "sigterm" and missing: sys.exit(1)
if mode == "kill":
    if missing:
        window = killed_at - min(t for _, t in missing)
        print(f"kill: loss window {window * 1000:.0f} ms (rows of requests that ended within it before the kill)")
        # One flush interval (25 ms) plus a batch's write time; a loaded CI machine gets slack.
        if window > 1.0: sys.exit(1)
    else:
        print("kill: no row lost")
PY
}

start
load 3 "$work/completed-1.txt"
kill -TERM "$gateway"; wait "$gateway" 2>/dev/null || true; gateway=""
check "$work/completed-1.txt" 0 sigterm

rm -rf "$work/state"
start
load 3 "$work/completed-2.txt" &
loader=$!
sleep 2
kill -9 "$gateway"; killed_at="$(python3 -c 'import time; print(time.time())')"
wait "$gateway" 2>/dev/null || true; gateway=""
wait "$loader" || true
check "$work/completed-2.txt" "$killed_at" kill
echo "ledger: OK"
