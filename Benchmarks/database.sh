#!/usr/bin/env bash
# What a shared PostgreSQL costs: the same release gateway and keyed config, with `database:` the
# SQLite file and with `database: postgres://…` (a PostgreSQL started here), alternating, chat mode,
# through the shared harness. Every request writes one ledger row; for PostgreSQL it also reports the
# rows a second that reached it and the CPU its server processes spent a row.
#
# Then the writes alone (`switchyard benchmark ledger`: rows a second in the writer's batches), and
# retention, on the PostgreSQL: a year of synthetic ledger rows (ROWS_PER_DAY a day, 365 days),
# the table's size and `switchyard usage --since 365d`'s time, `switchyard ledger rollup
# --keep-days 30`, and the same again.
#
#   Benchmarks/database.sh   # DURATION=8 CONCURRENCY="16 64" ROUNDS=2 LEDGER_ROWS=200000 ROWS_PER_DAY=10000; PG_CPUS=0 GATEWAY_CPUS=1
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bench="${BENCH_DIR:-$root/../shared/bench}"
[ -x "$bench/run.sh" ] || { echo "Benchmarks/database.sh: no harness at $bench (set BENCH_DIR)" >&2; exit 1; }
port="${SWITCHYARD_BENCH_PORT:-18083}"
binary="${BINARY:-$root/.build-release/release/switchyard}"
pgbin="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)"
cd "$root"
[ -x "$binary" ] || swift build -c release --product switchyard --scratch-path .build-release
work="$(mktemp -d)"
chmod 755 "$work"
gateway=""
postgres=""
as_postgres=()
[ "$(id -u)" -eq 0 ] && as_postgres=(setpriv --reuid=postgres --regid=postgres --init-groups)
trap '[ -n "$gateway" ] && kill $gateway 2>/dev/null; [ -n "$postgres" ] && kill -INT $postgres 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT

pg_port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')"
install -d "$work/pg"
[ "$(id -u)" -eq 0 ] && chown postgres:postgres "$work/pg"
"${as_postgres[@]}" "$pgbin/initdb" -D "$work/pg/data" -A trust -U postgres --no-sync > /dev/null
# Durable commits, as a production database has them (fsync and synchronous_commit on).
taskset -c "${PG_CPUS-0}" "${as_postgres[@]}" "$pgbin/postgres" -D "$work/pg/data" -p "$pg_port" -k "$work/pg" \
  -c listen_addresses=127.0.0.1 > "$work/pg/log" 2>&1 &
postgres=$!
for _ in $(seq 1 100); do "$pgbin/pg_isready" -q -h 127.0.0.1 -p "$pg_port" && break; sleep 0.1; done
psql_() { "$pgbin/psql" -h 127.0.0.1 -p "$pg_port" -U postgres -d switchyard -At -v ON_ERROR_STOP=1 -c "$1"; }
"$pgbin/psql" -h 127.0.0.1 -p "$pg_port" -U postgres -d postgres -q -c "CREATE DATABASE switchyard"
url="postgres://postgres@127.0.0.1:$pg_port/switchyard?sslmode=disable"

key="sk-sy-benchdatabase00000000000000000000000000"
for database in sqlite postgres; do
  { cat Benchmarks/gateway.yaml
    cat <<YAML
tenants:
  bench:
    keys:
      bench: { key: "$key", limits: { rpm: 100000000, tpm: 1000000000, concurrency: 100000 }, budget: { daily_usd: 1000000 } }
YAML
    [ "$database" = postgres ] && echo "database: \"$url\""
  } > "$work/$database.yaml"
done

# The server's CPU: the postmaster's own and its reaped children's (backends that ended), plus the
# backends still running.
pg_ticks() {
  local sum
  sum="$(awk '{print $14 + $15 + $16 + $17}' "/proc/$postgres/stat")"
  for pid in $(pgrep -P "$postgres"); do sum=$(( sum + $(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null || echo 0) )); done
  echo "$sum"
}
run() { # database
  rm -rf "$work/state"
  SWITCHYARD_LISTEN="127.0.0.1:$port" SWITCHYARD_STATE_DIR="$work/state" \
    taskset -c "${GATEWAY_CPUS-1}" "$binary" serve --config "$work/$1.yaml" 2> "$work/gateway-$1.log" &
  gateway=$!
  for _ in $(seq 1 50); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.2; done
  local rows0 pg0 began lines
  rows0="$(psql_ "SELECT COUNT(*) FROM ledger" 2>/dev/null || echo 0)"
  pg0="$(pg_ticks)"
  began="$(date +%s.%N)"
  lines="$(TARGETS=" " MODES=chat CONCURRENCY="${CONCURRENCY:-16 64}" DURATION="${DURATION:-8}" WARMUP=2 SDK_CHECK=0 SDK_ANTHROPIC_TARGETS=" " \
    BENCH_TOKEN="$key" bash "$bench/run.sh" "switchyard=http://127.0.0.1:$port" 2>&1 | grep -E "^closed +switchyard")"
  echo "$lines"
  kill "$gateway"; wait "$gateway" 2>/dev/null || true; gateway=""
  if [ "$1" = postgres ]; then
    local rows seconds pg_us
    rows="$(( $(psql_ "SELECT COUNT(*) FROM ledger") - rows0 ))"
    seconds="$(echo "$(date +%s.%N) - $began" | bc)"
    pg_us="$(( ( $(pg_ticks) - pg0 ) * 1000000 / $(getconf CLK_TCK) / (rows > 0 ? rows : 1) ))"
    awk -v r="$rows" -v s="$seconds" -v p="$pg_us" 'BEGIN { printf "  postgres: %d ledger rows in %.1f s (%.0f a second, warm-up included), server CPU %d us a row\n", r, s, r / s, p }'
  fi
}
printf '%-9s %-10s %-5s %6s %10s %9s %9s %9s %7s %9s %8s %7s\n' kind target mode load rps p50_ms p90_ms p99_ms errors gw_us/req mock_us/r gw_MB
for round in $(seq 1 "${ROUNDS:-2}"); do
  echo "database: sqlite (round $round):"; run sqlite
  echo "database: postgres (round $round):"; run postgres
done

echo "ledger writes alone (switchyard benchmark ledger, this process on core ${GATEWAY_CPUS-1}):"
taskset -c "${GATEWAY_CPUS-1}" "$binary" benchmark ledger --rows "${LEDGER_ROWS:-200000}" --database "$url" | sed 's/^/  /'

per_day="${ROWS_PER_DAY:-10000}"
echo "retention: $(( per_day * 365 )) rows over 365 days, 4 tenants, 8 keys, 3 routes"
psql_ "INSERT INTO ledger (entry_id, request_id, at, tenant, key_id, route, provider, model, outcome, status, input_tokens, cached_tokens,
  output_tokens, reasoning_tokens, cost_usd, latency_ms, ttft_ms, cache, attempts, cost_saved_usd, operation)
  SELECT 'bench_' || i, 'req_' || i, extract(epoch from now()) - (i % 365) * 86400 - (i % 86400)::float8 / 10, 'tenant' || (i % 4), 'key' || (i % 8),
    'route' || (i % 3), 'sim', 'model' || (i % 3), CASE WHEN i % 50 = 0 THEN 'upstream' ELSE 'success' END, 200, 500 + i % 700, 0, 100 + i % 300, 0,
    0.0001 * (i % 97), 120 + i % 400, 40, 'miss', 1, 0, 'chat'
  FROM generate_series(1, $(( per_day * 365 ))) AS i" > /dev/null
psql_ "VACUUM ANALYZE ledger" > /dev/null
measure() {
  local size started took
  size="$(psql_ "SELECT pg_size_pretty(pg_total_relation_size('ledger')) || ' ledger (' || (SELECT COUNT(*) FROM ledger) || ' rows), '
    || pg_size_pretty(pg_total_relation_size('ledger_daily')) || ' daily totals (' || (SELECT COUNT(*) FROM ledger_daily) || ' rows)'")"
  started="$(date +%s%N)"
  "$binary" usage --since 365d --database "$url" --json > /dev/null
  took="$(( ( $(date +%s%N) - started ) / 1000000 ))"
  echo "  $1: $size; switchyard usage --since 365d: $took ms"
}
measure "before"
started="$(date +%s%N)"
"$binary" ledger rollup --keep-days 30 --database "$url"
echo "  rollup took $(( ( $(date +%s%N) - started ) / 1000000 )) ms"
psql_ "VACUUM FULL ledger" > /dev/null
measure "after (VACUUM FULL)"
