#!/usr/bin/env bash
# The shared-database test (docs/fleet.md): a real PostgreSQL, one upstream simulator, three gateway
# replicas with `database: postgres://…` on 127.0.0.1-3 and HAProxy in front of them, all on loopback
# and started and stopped here, every wait bounded. Tests/Fleet/database.py drives it and says what it checks.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
bin="${SWITCHYARD:-$root/.build/debug/switchyard}"
[ -x "$bin" ] || { echo "database: build first (swift build)" >&2; exit 1; }
for tool in haproxy python3 curl; do
  command -v "$tool" >/dev/null || { echo "database: $tool is missing (scripts/bootstrap installs it)" >&2; exit 1; }
done
ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || { echo "database: PostgreSQL is missing (scripts/bootstrap installs it)" >&2; exit 1; }
exec python3 "$root/Tests/Fleet/database.py" "$bin"
