"""The shared-database test: three replicas behind HAProxy keeping keys, the ledger and the audit log in one PostgreSQL.

Started here, on loopback, stopped at the end (every wait bounded): a PostgreSQL from Debian's
`postgresql` (initdb into a temporary folder, as the `postgres` user when run as root), one upstream
simulator, three gateway replicas on 127.0.0.1, .2 and .3 with `database: postgres://…`, started at
the same moment, and HAProxy round-robin in front. It checks that:

  1. the three replicas, started together, migrate the schema once (one replica applies each step);
  2. a key created on replica 1 answers on replica 2 at once; revoked on replica 2, it is refused on
     replica 3 within 1 s; the audit log names the replica that created it;
  3. `switchyard usage` and the tenants endpoint of any one replica show the fleet's numbers;
  4. `kill -9` of a replica under load: every request answered 200 has exactly one ledger row, except
     rows of the killed replica inside the measured loss window, and none has two;
  5. PostgreSQL stopped for 10 s under load: requests keep being served, the rows wait on the
     replicas' disks and drain when it returns, none lost and none doubled;
  6. Responses API conversations continue on any replica: one passed through to one of two
     simulators (each keeps only its own responses) goes back to that one from every replica, and
     one the gateway keeps (translated to an Anthropic-shaped upstream) is rebuilt on every replica.

Usage: database.py SWITCHYARD_BINARY. Exits non-zero on the first failed check.
"""

import json
import os
import shutil
import subprocess
import sys
import threading
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fleet as common  # noqa: E402  (the components and checks' helpers: processes, requests, waits)
from fleet import check, chat, fail, free_port, log, request, start, wait_until  # noqa: E402

BINARY = common.BINARY
WORK = common.WORK
LOAD_KEY = "sk-sy-fleetdb-load-0123456789abcdef"
PG_BIN = sorted((os.path.join("/usr/lib/postgresql", version, "bin") for version in os.listdir("/usr/lib/postgresql")), key=lambda p: int(p.split("/")[-2]))[-1]


class Postgres:
    def __init__(self):
        self.port = free_port()
        self.directory = os.path.join(WORK, "pg")
        self.as_server_user = ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups"] if os.getuid() == 0 else []
        # PostgreSQL runs as `postgres`, which must reach its folder: the test's folder is 0700.
        os.chmod(WORK, 0o755)
        os.makedirs(self.directory)
        if os.getuid() == 0:
            shutil.chown(self.directory, "postgres", "postgres")
        subprocess.run(self.as_server_user + [f"{PG_BIN}/initdb", "-D", f"{self.directory}/data", "-A", "trust", "-U", "postgres", "--no-sync"],
                       check=True, capture_output=True, timeout=60)
        self.process = None

    def start(self):
        self.process = start("postgres", self.as_server_user + [
            f"{PG_BIN}/postgres", "-D", f"{self.directory}/data", "-p", str(self.port), "-k", self.directory,
            "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "max_connections=200",
        ])
        wait_until("PostgreSQL takes queries", lambda: subprocess.run(
            [f"{PG_BIN}/pg_isready", "-q", "-h", "127.0.0.1", "-p", str(self.port)], timeout=5).returncode == 0, seconds=15)

    def stop(self):
        """A fast shutdown (SIGINT): open connections are ended, as when a database restarts."""
        self.process.send_signal(2)
        self.process.wait(30)

    def sql(self, statement, database="switchyard"):
        result = subprocess.run([f"{PG_BIN}/psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", database, "-At", "-v",
                                 "ON_ERROR_STOP=1", "-c", statement], capture_output=True, text=True, timeout=30)
        check(result.returncode == 0, f"psql {statement!r}: {result.stderr.strip()}")
        return result.stdout.strip()


class Replica(common.Replica):
    def __init__(self, number, database_url, simulator_port, second_simulator_port):
        super().__init__(number, None, None, config=lambda host, port, state_dir: gateway_config(
            host, port, state_dir, database_url, simulator_port, second_simulator_port))

    def launch(self):
        self.process = start(self.name, [BINARY, "serve", "--config", self.config])

    def cli(self, *arguments, answer_json=True):
        result = subprocess.run([BINARY, *arguments, "--socket", self.socket] + (["--json"] if answer_json else []), capture_output=True, text=True, timeout=30)
        check(result.returncode == 0, f"switchyard {' '.join(arguments)} on {self.name}: {result.stderr.strip()}")
        return json.loads(result.stdout) if answer_json else result.stdout

    def backlog(self):
        """Ledger rows this replica has not yet written (queued and journalled), from /metrics."""
        text = request(f"{self.base}/metrics", timeout=5).body
        return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith("switchyard_ledger_backlog_rows{"))


def gateway_config(host, port, state_dir, database_url, simulator_port, second_simulator_port):
    return f"""
server: {{ listen: "{host}:{port}", state_dir: "{state_dir}", log_level: notice, anonymous: false }}
database: "{database_url}"
providers:
  sim: {{ kind: simulator, base_url: "http://127.0.0.1:{simulator_port}/v1" }}
  sim2: {{ kind: simulator, base_url: "http://127.0.0.1:{second_simulator_port}/v1" }}
  sim-claude: {{ kind: simulator, dialect: anthropic, base_url: "http://127.0.0.1:{simulator_port}/v1" }}
prices:
  fleetdb-priced: {{ input: 100, output: 400 }}
tenants:
  load: {{ keys: {{ ci: {{ key: "{LOAD_KEY}" }} }} }}
  team: {{}}
routes:
  priced: {{ targets: [{{ provider: sim, model: fleetdb-priced }}] }}
  convo: {{ targets: [{{ provider: sim, model: gpt-4o-mini }}, {{ provider: sim2, model: gpt-4o-mini }}] }}
  claude: {{ targets: [{{ provider: sim-claude, model: claude-sonnet-4-5 }}] }}
"""


def load(balancer, seconds, threads, during):
    """Clients through the balancer for `seconds`, each request with its own id; `during(elapsed)` is
    called from the main thread as time passes. Returns [(request id, status, answered at)]."""
    answers = []
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds

    def client(_):
        while time.monotonic() < stop_at:
            request_id = f"fleetdb-{uuid.uuid4().hex}"
            body = {"model": "priced", "max_tokens": 8, "messages": [{"role": "user", "content": "Hello database"}]}
            answer = request(f"{balancer}/v1/chat/completions", body, LOAD_KEY, timeout=30, headers={"x-request-id": request_id})
            with lock:
                answers.append((request_id, answer.status, time.monotonic()))

    workers = [threading.Thread(target=client, args=(index,)) for index in range(threads)]
    for worker in workers:
        worker.start()
    began = time.monotonic()
    while any(worker.is_alive() for worker in workers):
        during(time.monotonic() - began)
        time.sleep(0.05)
    for worker in workers:
        worker.join(60)
    return answers


def ledger_rows(postgres, ids):
    """How many ledger rows each request id has."""
    counts = {}
    for line in postgres.sql("SELECT request_id, COUNT(*) FROM ledger WHERE request_id LIKE 'fleetdb-%' GROUP BY request_id").splitlines():
        request_id, count = line.split("|")
        counts[request_id] = int(count)
    return {request_id: counts.get(request_id, 0) for request_id in ids}, counts


def drained(replicas):
    deadline = time.time() + 60
    while time.time() < deadline:
        if all(replica.backlog() == 0 for replica in replicas):
            return
        time.sleep(0.2)
    states = []
    for replica in replicas:
        text = request(f"{replica.base}/metrics", timeout=5).body
        states.append(f"{replica.name}: " + ", ".join(line for line in text.splitlines() if line.startswith("switchyard_ledger_")))
    fail("every replica's ledger backlog is written: not within 60 s\n" + "\n".join(states))


# MARK: the checks


def migrations_run_once(postgres, replicas):
    steps = int(postgres.sql("SELECT COUNT(*) FROM switchyard_schema"))
    applied = []
    for replica in replicas:
        with open(os.path.join(WORK, f"{replica.name}.log"), errors="replace") as file:
            applied += [line for line in file if "database migrated" in line]
    log(f"migrations: {steps} steps in the schema table, {len(applied)} applied across three replicas started at once")
    check(steps == len(applied) and steps >= 9, f"{steps} steps recorded, {len(applied)} migrations logged: a step ran twice or not at all")


def keys_are_the_fleets(postgres, replicas):
    created = replicas[0].cli("keys", "create", "--tenant", "team", "--name", "fleet")
    key, key_id = created["key"], created["view"]["id"]
    answer = chat(replicas[1].base, "priced", key)
    check(answer.status == 200, f"a key created on replica 1 was refused on replica 2: {answer.status} {answer.body[:200]}")
    revoked_at = time.monotonic()
    replicas[1].cli("keys", "revoke", key_id, answer_json=False)
    refused_after = None
    while time.monotonic() - revoked_at < 5:
        answer = chat(replicas[2].base, "priced", key)
        if answer.status == 401:
            refused_after = time.monotonic() - revoked_at
            break
        time.sleep(0.02)
    check(refused_after is not None, "a key revoked on replica 2 still works on replica 3 after 5 s")
    audit = postgres.sql(f"SELECT replica FROM audit_log WHERE action = 'key_create' AND target = '{key_id}'")
    log(f"keys: created on replica 1, answered on replica 2 at once; revoked on replica 2, refused on replica 3 after {refused_after * 1000:.0f} ms; "
        f"audit row by {audit}")
    check(refused_after <= 1.0, f"the revocation took {refused_after:.2f} s to reach replica 3 (at most 1 s)")
    # A replica is named by its host name and port; on one machine the port tells them apart.
    check(audit.endswith(f":{replicas[0].port}"), f"the audit row names replica {audit!r}, not replica 1 (port {replicas[0].port})")


def usage_is_the_fleets(postgres, balancer, replicas):
    for _ in range(30):
        check(chat(balancer, "priced", LOAD_KEY).status == 200, "a request through the balancer failed")
    drained(replicas)
    stored = int(postgres.sql("SELECT COUNT(*) FROM ledger WHERE tenant = 'load'"))
    usage = replicas[1].cli("usage", "--tenant", "load")
    reported = sum(line["requests"] for line in usage)
    tenants = {}

    def fleet_numbers():
        answer = subprocess.run(["curl", "-sf", "--max-time", "5", "--unix-socket", replicas[2].socket, "http://admin/v1/tenants"],
                                capture_output=True, text=True, timeout=10)
        tenants.update({tenant["name"]: tenant for tenant in json.loads(answer.stdout or "[]")})
        return tenants.get("load", {}).get("requestsToday") == stored

    wait_until("replica 3's tenants show the fleet's requests", fleet_numbers, seconds=15, interval=0.5)
    log(f"usage: {stored} rows for tenant load in PostgreSQL; replica 2's `switchyard usage` reports {reported}, "
        f"replica 3's tenants endpoint {tenants['load']['requestsToday']} requests and ${tenants['load']['costTodayUsd']:.6f} today")
    check(reported == stored, f"`switchyard usage` on replica 2 says {reported} requests; the shared ledger holds {stored}")


def a_killed_replica_loses_at_most_its_last_flush(postgres, balancer, replicas):
    killed = {}

    def during(elapsed):
        if elapsed >= 2.0 and not killed:
            replicas[0].process.kill()
            killed["at"] = time.monotonic()

    answers = load(balancer, 4.5, 8, during)
    drained(replicas[1:])
    ok = [(request_id, at) for request_id, status, at in answers if status == 200]
    rows, _ = ledger_rows(postgres, [request_id for request_id, _ in ok])
    doubled = [request_id for request_id, count in rows.items() if count > 1]
    missing = [(request_id, at) for request_id, at in ok if rows[request_id] == 0]
    window = max((killed["at"] - at for _, at in missing), default=0.0)
    log(f"kill -9: {len(ok)} requests answered 200, {len(missing)} without a ledger row (answered at most {window * 1000:.0f} ms before the kill), "
        f"{len(doubled)} with two")
    check(not doubled, f"requests with two ledger rows: {doubled[:5]}")
    # A row is written within one flush interval (25 ms) of its answer; a loaded 2-core machine gets slack.
    check(all(killed["at"] - at <= 1.0 for _, at in missing), f"rows lost for answers given {window:.2f} s before the kill")
    replicas[0].start()


def a_database_outage_loses_no_row(postgres, balancer, replicas):
    phases = {}

    def during(elapsed):
        if elapsed >= 2.0 and "stopped" not in phases:
            postgres.stop()
            phases["stopped"] = time.monotonic()
        if elapsed >= 12.0 and "started" not in phases:
            postgres.start()
            phases["started"] = time.monotonic()

    answers = load(balancer, 15.0, 6, during)
    waiting = sum(replica.backlog() for replica in replicas)
    began = time.monotonic()
    drained(replicas)
    took = time.monotonic() - began
    ok = [(request_id, at) for request_id, status, at in answers if status == 200]
    during_outage = [request_id for request_id, at in ok if phases["stopped"] <= at <= phases["started"]]
    rows, _ = ledger_rows(postgres, [request_id for request_id, _ in ok])
    missing = [request_id for request_id, count in rows.items() if count == 0]
    doubled = [request_id for request_id, count in rows.items() if count > 1]
    statuses = sorted({status for _, status, _ in answers})
    log(f"PostgreSQL stopped 10 s: {len(ok)} answered 200 ({len(during_outage)} during the outage), statuses {statuses}; "
        f"{waiting:.0f} rows were waiting after the load, written {took:.1f} s later; {len(missing)} missing, {len(doubled)} doubled")
    check(len(during_outage) > 0, "no request was served while PostgreSQL was stopped")
    check(not missing, f"answered requests without a ledger row: {missing[:5]}")
    check(not doubled, f"requests with two ledger rows: {doubled[:5]}")


def responses_continue_on_any_replica(replicas):
    for route in ("convo", "claude"):
        first = request(f"{replicas[0].base}/v1/responses", {"model": route, "input": "Remember the word fleet."}, LOAD_KEY)
        check(first.status == 200, f"a Responses request on {route} failed: {first.status} {first.body[:300]}")
        previous, provider = first.json()["id"], first.headers.get("x-switchyard-provider")
        # Each replica in turn, twice: `convo` balances between the simulators, so a follow-up sent to
        # the wrong one is refused by it (it does not keep the other's responses).
        for turn, replica in enumerate(replicas[1:] + replicas + replicas):
            answer = request(f"{replica.base}/v1/responses", {"model": route, "input": f"Turn {turn}.", "previous_response_id": previous}, LOAD_KEY)
            check(answer.status == 200, f"turn {turn} of {route} on {replica.name}: {answer.status} {answer.body[:300]}")
            check(answer.headers.get("x-switchyard-provider") == provider, f"turn {turn} of {route} went to {answer.headers.get('x-switchyard-provider')}, not {provider}")
            check(answer.json().get("previous_response_id") == previous, f"turn {turn} of {route} does not continue {previous}")
            previous = answer.json()["id"]
        kept = request(f"{replicas[2].base}/v1/responses/{previous}", key=LOAD_KEY)
        check(kept.status == 200 and kept.json().get("id") == previous, f"the last {route} response is not readable on {replicas[2].name}: {kept.status}")
    log("Responses conversations continue on every replica, passed through or kept by the gateway")


def main():
    postgres = Postgres()
    postgres.start()
    postgres.sql("CREATE DATABASE switchyard", database="postgres")
    database_url = f"postgres://postgres@127.0.0.1:{postgres.port}/switchyard?sslmode=disable"
    simulator_port = free_port()
    second_simulator_port = free_port()
    for name, port in (("simulator", simulator_port), ("simulator-2", second_simulator_port)):
        start(name, [BINARY, "simulate", "--port", str(port), "--ttft", "1ms", "--tps", "0"])
        wait_until(f"the {name} is up", lambda: request(f"http://127.0.0.1:{port}/healthz", timeout=1).status == 200)
    replicas = [Replica(number, database_url, simulator_port, second_simulator_port) for number in (1, 2, 3)]
    for replica in replicas:
        replica.launch()
    for replica in replicas:
        wait_until(f"{replica.name} is ready", lambda: request(f"{replica.base}/readyz", timeout=1).status == 200)
    balancer_port = free_port()
    with open(os.path.join(WORK, "haproxy.cfg"), "w") as file:
        file.write(common.haproxy_config(balancer_port, replicas))
    start("haproxy", ["haproxy", "-db", "-f", os.path.join(WORK, "haproxy.cfg")])
    balancer = f"http://127.0.0.1:{balancer_port}"
    wait_until("HAProxy serves", lambda: request(f"{balancer}/readyz", timeout=1).status == 200)
    log(f"PostgreSQL on :{postgres.port}, simulator on :{simulator_port}, replicas {', '.join(r.base for r in replicas)}, HAProxy on :{balancer_port}")

    migrations_run_once(postgres, replicas)
    keys_are_the_fleets(postgres, replicas)
    usage_is_the_fleets(postgres, balancer, replicas)
    a_killed_replica_loses_at_most_its_last_flush(postgres, balancer, replicas)
    a_database_outage_loses_no_row(postgres, balancer, replicas)
    responses_continue_on_any_replica(replicas)
    log("OK")


if __name__ == "__main__":
    try:
        main()
    finally:
        common.stop_all()
        shutil.rmtree(WORK, ignore_errors=True)
