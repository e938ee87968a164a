#!/usr/bin/env bash
# The fleet test (docs/fleet.md): a real redis-server, one upstream simulator, three gateway replicas
# with `state: redis://…` on 127.0.0.1-3 and HAProxy round-robin in front of them, all on loopback and
# started and stopped here, every wait bounded. Tests/Fleet/fleet.py drives it and says what it checks.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
bin="${SWITCHYARD:-$root/.build/debug/switchyard}"
[ -x "$bin" ] && [ -x "$(dirname "$bin")/switchyard-console" ] || { echo "fleet: build first (swift build)" >&2; exit 1; }
for tool in redis-server redis-cli haproxy python3 tmux; do
  command -v "$tool" >/dev/null || { echo "fleet: $tool is missing (scripts/bootstrap installs it)" >&2; exit 1; }
done
exec python3 "$root/Tests/Fleet/fleet.py" "$bin"
