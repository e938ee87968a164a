#!/usr/bin/env bash
# SDK conformance: the official Python SDKs (from PyPI, into a venv) against the real gateway binary.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="$root/.build/conformance-venv"
if [ ! -x "$venv/bin/pytest" ] || ! cmp -s "$here/requirements.txt" "$venv/requirements.txt"; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check -r "$here/requirements.txt"
  cp "$here/requirements.txt" "$venv/requirements.txt"
fi
export SWITCHYARD_BIN="${SWITCHYARD_BIN:-$root/.build/debug/switchyard}"
[ -x "$SWITCHYARD_BIN" ] || (cd "$root" && swift build --product switchyard)
cd "$here"
exec "$venv/bin/pytest" -q -p no:cacheprovider "$@"
