"""The fleet test: three replicas behind HAProxy sharing limits, budgets, leases and drains through Redis.

Started here, on loopback, stopped at the end (every wait bounded): a redis-server with persistence
off, one upstream simulator (`switchyard simulate`, which counts the requests it answers at once),
three gateway replicas on 127.0.0.1, 127.0.0.2 and 127.0.0.3 with `state: redis://…`, and HAProxy
round-robin in front of them. Through the load balancer it checks that:

  1. a key with a concurrency limit of 5, streamed at by 16 clients, never has more than 5 requests
     in flight at the simulator (fleet-wide, not per replica);
  2. a key with `rpm: 60` hammered by 30 clients for 10 s is admitted at most 60 + one a second;
  3. 200 concurrent requests of a tenant with a $1.00 daily budget: the spend in all replicas'
     ledgers is at most $1.00 and equals the sum of the answers' `x-switchyard-cost-usd`;
  4. `switchyard ctl drain P` on replica 1: a second later no replica sends to P, a replica started
     after the drain starts drained, and an undrain on replica 2 puts P back everywhere; a breaker
     opened by hand on replica 1 is open on every replica, and a reset on replica 2 closes it; a route edit
     and a config reload on one replica are every replica's a second later, and a replica whose own
     file is broken keeps its config and says why in the fleet's roll call;
  5. with `cache: { shared: true }`, an answer cached through one replica is a hit on the others, and
     a flush on one empties it for all;
  6. `kill -9` of a replica holding concurrency leases: the others keep serving, and the leases
     return within the documented time (`lease_ttl` plus a renewal period);
  7. Redis stopped mid-load: no request waits much longer than the admission timeout, the answers
     follow `on_error: deny` (503, Retry-After, in the caller's dialect), and service comes back by
     itself when Redis does;
  8. the console on replica 1's Fleet screen lists the three replicas, and one killed for good stays
     on screen marked gone.

Usage: fleet.py SWITCHYARD_BINARY. Exits non-zero on the first failed check.
"""

import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

BINARY = sys.argv[1]
WORK = tempfile.mkdtemp(prefix="switchyard-fleet-")
PROCESSES = []
LEASE_TTL = 3.0
ADMISSION_TIMEOUT = 0.3
KEYS = {
    "rate": "sk-sy-fleet-rate-0123456789abcdef",
    "money": "sk-sy-fleet-money-0123456789abcdef",
    "streams": "sk-sy-fleet-streams-0123456789abcdef",
    "lease": "sk-sy-fleet-lease-0123456789abcdef",
    "ops": "sk-sy-fleet-ops-0123456789abcdef",
}


def log(message):
    print(f"fleet: {message}", flush=True)


def fail(message):
    print(f"fleet FAIL: {message}", file=sys.stderr, flush=True)
    for name in sorted(os.listdir(WORK)):
        if name.endswith(".log"):
            with open(os.path.join(WORK, name), errors="replace") as file:
                tail = file.read()[-2000:]
            if tail.strip():
                print(f"--- {name} (tail) ---\n{tail}", file=sys.stderr)
    sys.exit(1)


def check(condition, message):
    if not condition:
        fail(message)


def free_port(host="127.0.0.1"):
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def start(name, arguments):
    handle = open(os.path.join(WORK, f"{name}.log"), "ab")
    process = subprocess.Popen(arguments, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True)
    PROCESSES.append(process)
    return process


def stop_all():
    for process in PROCESSES:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    deadline = time.time() + 10
    for process in PROCESSES:
        try:
            process.wait(timeout=max(0.1, deadline - time.time()))
        except subprocess.TimeoutExpired:
            process.kill()


def wait_until(what, predicate, seconds=15.0, interval=0.05):
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            if predicate():
                return
        except OSError:
            pass
        time.sleep(interval)
    fail(f"{what}: not within {seconds:.0f} s")


class Answer:
    def __init__(self, status, headers, body, seconds):
        self.status, self.headers, self.body, self.seconds = status, headers, body, seconds

    def header(self, name):
        return self.headers.get(name.lower())

    def json(self):
        try:
            return json.loads(self.body)
        except ValueError:
            return {}


def request(url, body=None, key=None, timeout=30.0, headers=None):
    """One HTTP request; the answer whatever its status (connection failures are status 0)."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method="POST" if data is not None else "GET")
    request.add_header("content-type", "application/json")
    if key:
        request.add_header("authorization", f"Bearer {key}")
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    began = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            payload = response.read()
            return Answer(response.status, {k.lower(): v for k, v in response.headers.items()}, payload.decode(errors="replace"), time.monotonic() - began)
    except urllib.error.HTTPError as error:
        payload = error.read()
        return Answer(error.code, {k.lower(): v for k, v in error.headers.items()}, payload.decode(errors="replace"), time.monotonic() - began)
    except (urllib.error.URLError, OSError) as error:
        return Answer(0, {}, str(error), time.monotonic() - began)


def chat(base, route, key, stream=False, max_tokens=16, dialect="openai"):
    if dialect == "anthropic":
        body = {"model": route, "max_tokens": max_tokens, "messages": [{"role": "user", "content": "Hello fleet"}]}
        return request(f"{base}/v1/messages", body, key)
    body = {"model": route, "max_tokens": max_tokens, "messages": [{"role": "user", "content": "Hello fleet"}]}
    if stream:
        body["stream"] = True
    return request(f"{base}/v1/chat/completions", body, key)


def in_parallel(count, work):
    """Runs work(index) on `count` threads started together; their results in order."""
    results = [None] * count
    barrier = threading.Barrier(count)

    def run(index):
        barrier.wait()
        results[index] = work(index)

    threads = [threading.Thread(target=run, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    check(all(not thread.is_alive() for thread in threads), "a client thread did not finish within 2 minutes")
    return results


# MARK: the components


class Redis:
    def __init__(self):
        self.port = free_port()
        self.process = None

    def start(self):
        self.process = start("redis", [
            "redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--dir", WORK, "--daemonize", "no",
        ])
        wait_until("redis-server answers", lambda: self.cli("PING") == "PONG", seconds=10)

    def stop(self):
        self.process.kill()
        self.process.wait(10)

    def cli(self, *arguments):
        result = subprocess.run(["redis-cli", "-p", str(self.port), *arguments], capture_output=True, text=True, timeout=5)
        return result.stdout.strip()


class Replica:
    def __init__(self, number, redis_port, simulator_port, config=None):
        """`config(host, port, state_dir)` writes another test's config (default: this test's)."""
        self.name = f"replica{number}"
        self.host = f"127.0.0.{number}"
        self.port = free_port(self.host)
        self.base = f"http://{self.host}:{self.port}"
        self.state_dir = os.path.join(WORK, self.name)
        self.socket = os.path.join(self.state_dir, "admin.sock")
        self.config = os.path.join(WORK, f"{self.name}.yaml")
        with open(self.config, "w") as file:
            file.write(config(self.host, self.port, self.state_dir) if config else gateway_config(self.host, self.port, self.state_dir, redis_port, simulator_port))
        self.process = None

    def start(self):
        self.process = start(self.name, [BINARY, "serve", "--config", self.config])
        wait_until(f"{self.name} is ready", lambda: request(f"{self.base}/readyz", timeout=1).status == 200)

    def ctl(self, *arguments):
        result = subprocess.run([BINARY, "ctl", *arguments, "--socket", self.socket], capture_output=True, text=True, timeout=20)
        check(result.returncode == 0, f"switchyard ctl {' '.join(arguments)} on {self.name}: {result.stderr.strip()}")
        return result.stdout

    def snapshot(self):
        result = subprocess.run(["curl", "-sf", "--max-time", "5", "--unix-socket", self.socket, "http://admin/v1/snapshot"], capture_output=True, text=True, timeout=10)
        check(result.returncode == 0, f"the admin snapshot of {self.name}: curl exit {result.returncode}")
        return json.loads(result.stdout)

    def ledger_spend(self, tenant):
        connection = sqlite3.connect(os.path.join(self.state_dir, "switchyard.sqlite"))
        try:
            return connection.execute("SELECT COALESCE(SUM(cost_usd), 0), COUNT(*) FROM ledger WHERE tenant = ?", (tenant,)).fetchone()
        finally:
            connection.close()


def gateway_config(host, port, state_dir, redis_port, simulator_port):
    upstream = f"http://127.0.0.1:{simulator_port}/v1"
    return f"""
server: {{ listen: "{host}:{port}", state_dir: "{state_dir}", log_level: warning, anonymous: false }}
state: {{ url: "redis://127.0.0.1:{redis_port}", on_error: deny, timeout: {int(ADMISSION_TIMEOUT * 1000)}ms, lease_ttl: {int(LEASE_TTL)}s }}
cache: {{ shared: true }}
providers:
  sim: {{ kind: simulator, base_url: "{upstream}" }}
  east: {{ kind: simulator, base_url: "{upstream}" }}
  west: {{ kind: simulator, base_url: "{upstream}" }}
prices:
  fleet-priced: {{ input: 1000, output: 4000 }}
tenants:
  rate: {{ keys: {{ ci: {{ key: "{KEYS['rate']}", limits: {{ rpm: 60 }} }} }} }}
  money: {{ budget: {{ daily_usd: 1.00 }}, keys: {{ ci: {{ key: "{KEYS['money']}" }} }} }}
  streams: {{ keys: {{ ci: {{ key: "{KEYS['streams']}", limits: {{ concurrency: 5 }} }} }} }}
  lease: {{ keys: {{ ci: {{ key: "{KEYS['lease']}", limits: {{ concurrency: 2 }} }} }} }}
  ops: {{ keys: {{ ci: {{ key: "{KEYS['ops']}", limits: {{ rpm: 1000000 }} }} }} }}
routes:
  fast: {{ targets: [{{ provider: sim, model: fleet-fast }}] }}
  priced: {{ targets: [{{ provider: sim, model: fleet-priced }}] }}
  slow: {{ targets: [{{ provider: sim, model: "fleet-slow:ttft=1200ms" }}] }}
  long: {{ targets: [{{ provider: sim, model: "fleet-long:ttft=30s" }}] }}
  pair: {{ targets: [{{ provider: east, model: fleet-fast }}, {{ provider: west, model: fleet-fast }}] }}
  cached: {{ targets: [{{ provider: sim, model: fleet-cached }}], cache: {{ ttl: 10m, always: true }} }}
"""


def haproxy_config(port, replicas):
    servers = "\n".join(f"  server {r.name} {r.host}:{r.port} check" for r in replicas)
    return f"""
global
  maxconn 2048
defaults
  mode http
  timeout connect 1s
  timeout client 60s
  timeout server 60s
  retries 3
  option redispatch 1
frontend gateway
  bind 127.0.0.1:{port}
  default_backend replicas
backend replicas
  balance roundrobin
  option httpchk GET /readyz
  default-server inter 300ms fall 1 rise 2
{servers}
"""


def simulator_peak(port):
    text = request(f"http://127.0.0.1:{port}/metrics").body
    running = peak = None
    for line in text.splitlines():
        if line.startswith("switchyard_simulator_requests_running_peak "):
            peak = float(line.split()[-1])
        elif line.startswith("vllm:num_requests_running"):
            running = float(line.split()[-1])
    return running, peak


# MARK: the checks


def concurrency_holds_fleet_wide(balancer, simulator_port):
    def client(_):
        return [chat(balancer, "slow", KEYS["streams"], stream=True).status for _ in range(3)]

    statuses = [status for results in in_parallel(16, client) for status in results]
    _, peak = simulator_peak(simulator_port)
    admitted, refused = statuses.count(200), statuses.count(429)
    log(f"concurrency 5: {admitted} streams admitted, {refused} refused, at most {peak:.0f} in flight at the simulator")
    check(admitted + refused == len(statuses), f"statuses other than 200 and 429: {sorted(set(statuses))}")
    check(admitted >= 5 and refused > 0, f"the limit was not exercised: {admitted} admitted, {refused} refused")
    check(peak is not None and 1 <= peak <= 5, f"{peak} requests at once at the simulator; the fleet-wide limit is 5")


def rate_limit_holds_fleet_wide(balancer):
    statuses = []
    lock = threading.Lock()
    began = time.monotonic()
    deadline = began + 10

    def client(_):
        while time.monotonic() < deadline:
            answer = chat(balancer, "fast", KEYS["rate"])
            with lock:
                statuses.append((answer.status, answer.body if answer.status not in (200, 429) else ""))

    in_parallel(30, client)
    elapsed = time.monotonic() - began
    codes = [status for status, _ in statuses]
    admitted = codes.count(200)
    allowance = 60 + int(elapsed) + 1
    log(f"rpm 60: {len(codes)} requests from 30 clients in {elapsed:.1f} s, {admitted} admitted (at most {allowance} allowed)")
    others = [entry for entry in statuses if entry[0] not in (200, 429)]
    check(not others, f"answers other than 200 and 429: {others[:3]}")
    check(60 <= admitted <= allowance, f"{admitted} admitted; one fleet-wide limit admits 60 plus one a second ({allowance})")


def budget_holds_fleet_wide(balancer, replicas):
    answers = in_parallel(200, lambda _: chat(balancer, "priced", KEYS["money"], max_tokens=20))
    admitted = [answer for answer in answers if answer.status == 200]
    refused = [answer for answer in answers if answer.status == 429]
    check(len(admitted) + len(refused) == 200, f"statuses other than 200 and 429: {sorted({a.status for a in answers})}")
    check(admitted and refused, f"the budget was not exercised: {len(admitted)} admitted, {len(refused)} refused")
    check(all("budget" in answer.body.lower() for answer in refused), f"a refusal does not name the budget: {refused[0].body}")
    charged = sum(float(answer.header("x-switchyard-cost-usd") or "nan") for answer in admitted)
    # The ledger writes in batches (every 25 ms): wait until every replica's rows are in.
    def books():
        return [replica.ledger_spend("money") for replica in replicas]
    wait_until("every answer has its ledger row", lambda: sum(count for _, count in books()) >= 200, seconds=10)
    spent = sum(amount for amount, _ in books())
    per_replica = ", ".join(f"${amount:.4f}" for amount, _ in books())
    log(f"budget $1.00: {len(admitted)} of 200 admitted, ledgers {per_replica} (sum ${spent:.6f}), answers' costs sum ${charged:.6f}")
    check(spent <= 1.0 + 1e-9, f"the tenant spent ${spent:.6f} of a $1.00 budget")
    check(abs(spent - charged) <= 1e-6 * len(admitted) + 1e-9, f"the books (${spent:.8f}) differ from the answers' costs (${charged:.8f})")
    check(sum(1 for amount, _ in books() if amount > 0) >= 2, f"the spend did not spread over replicas: {per_replica}")


def providers_used(base, count=30):
    used = set()
    for _ in range(count):
        answer = chat(base, "pair", KEYS["ops"])
        check(answer.status == 200, f"{base}: {answer.status} {answer.body[:300]}")
        used.add(answer.header("x-switchyard-provider"))
    return used


def drains_are_the_fleets(replicas, redis_port, simulator_port):
    replicas[0].ctl("drain", "east")
    time.sleep(1.0)
    for replica in replicas:
        used = providers_used(replica.base)
        check("east" not in used, f"{replica.name} still sends to east a second after the drain on replica1: {used}")
    late = Replica(4, redis_port, simulator_port)
    late.start()
    used = providers_used(late.base)
    check(used == {"west"}, f"a replica started after the drain sends to {used}")
    log("drain on replica1: within 1 s no replica sends to east; a replica started later starts drained")
    replicas[1].ctl("undrain", "east")
    time.sleep(1.0)
    for replica in replicas + [late]:
        used = providers_used(replica.base)
        check("east" in used, f"{replica.name} does not send to east a second after the undrain on replica2: {used}")
    log("undrain on replica2: within 1 s every replica sends to east again")
    late.process.terminate()
    late.process.wait(10)


def breakers_set_by_hand_are_the_fleets(replicas):
    """An operator's breaker open on one replica opens it on every replica; a reset on another closes it."""
    def breakers(replica, provider):
        return {target["breaker"] for target in replica.snapshot()["targets"] if target["provider"] == provider}

    replicas[0].ctl("breaker", "open", "east")
    for replica in replicas:
        wait_until(f"east's breakers open on {replica.name}", lambda: breakers(replica, "east") == {"open"}, seconds=5)
        used = providers_used(replica.base)
        check("east" not in used, f"{replica.name} still sends to east after the breaker was opened on replica1: {used}")
    replicas[1].ctl("breaker", "reset", "east")
    for replica in replicas:
        wait_until(f"east's breakers closed on {replica.name}", lambda: breakers(replica, "east") == {"closed"}, seconds=5)
        used = providers_used(replica.base)
        check("east" in used, f"{replica.name} does not send to east after the reset on replica2: {used}")
    log("breaker open on replica1: every replica opens it; reset on replica2: every replica closes it")


def edits_and_reloads_are_the_fleets(replicas):
    replicas[0].ctl("routes", "set", "pair", "--target", "west/fleet-fast")
    time.sleep(1.0)
    for replica in replicas:
        used = providers_used(replica.base, count=10)
        check(used == {"west"}, f"{replica.name} sends to {used} a second after the route edit on replica1")
    log("route edit on replica1: within 1 s every replica routes pair to west only")
    # Every replica's file gains a route; replica3's also a mistake, so its reload must change nothing.
    for replica in replicas:
        with open(replica.config, "a") as file:
            file.write("  added: { targets: [{ provider: sim, model: fleet-added }] }\n")
    with open(replicas[2].config, "a") as file:
        file.write("  broken: { targets: [{ provider: nowhere, model: m }] }\n")
    replicas[1].ctl("reload")
    time.sleep(1.0)
    for replica in replicas[:2]:
        answer = chat(replica.base, "added", KEYS["ops"])
        check(answer.status == 200, f"{replica.name} does not serve the reloaded route a second after the reload on replica2: {answer.status} {answer.body[:200]}")
        check(providers_used(replica.base, count=10) == {"east", "west"}, f"{replica.name} kept the route edit the reload discards")
    answer = chat(replicas[2].base, "added", KEYS["ops"])
    check(answer.status == 404, f"replica3, whose file is broken, answers the new route with {answer.status}")
    def problem_reported():
        fleet = replicas[0].snapshot().get("fleet") or []
        mine = [entry for entry in fleet if entry.get("address", "").startswith(replicas[2].host + ":")]
        return mine and "nowhere" in (mine[0].get("reloadProblem") or "")
    wait_until("replica3's rejected reload in the roll call", problem_reported, seconds=10, interval=0.2)
    log("reload on replica2: within 1 s every replica runs its new file; replica3's broken file is rejected there and named in the roll call")
    # Its file mended, the next reload anywhere brings replica3 in line.
    with open(replicas[2].config) as file:
        lines = [line for line in file if "broken:" not in line]
    with open(replicas[2].config, "w") as file:
        file.writelines(lines)
    replicas[0].ctl("reload")
    wait_until("replica3 serves the new route after the next reload", lambda: chat(replicas[2].base, "added", KEYS["ops"]).status == 200, seconds=5, interval=0.1)


def the_exact_cache_is_shared(replicas):
    def cache(replica, stream=False):
        answer = chat(replica.base, "cached", KEYS["ops"], stream=stream)
        check(answer.status == 200, f"{replica.name}: {answer.status} {answer.body[:200]}")
        return answer.header("x-switchyard-cache")

    check(cache(replicas[0]) == "miss", "the first request of a cached route was not a miss")
    # The store is written behind the answer: the others find it once it lands.
    wait_until("replica2 and replica3 answer from the shared cache", lambda: cache(replicas[1]) == "hit" and cache(replicas[2]) == "hit", seconds=5, interval=0.05)
    streamed = chat(replicas[2].base, "cached", KEYS["ops"], stream=True)
    check(streamed.header("x-switchyard-cache") == "hit" and (streamed.header("content-type") or "").startswith("text/event-stream")
          and "data: [DONE]" in streamed.body, f"a streamed request on replica3 was not replayed from the shared cache as a stream: {streamed.headers}")
    replicas[1].ctl("cache", "flush", "--route", "cached")
    time.sleep(1.0)
    for replica in replicas:
        entries = (replica.snapshot().get("cache") or {}).get("entries")
        check(entries == 0, f"{replica.name} still holds {entries} cached answers a second after the flush on replica2")
    # Nothing left in Redis either: the next request anywhere is a miss (and caches the answer again).
    check(cache(replicas[2]) == "miss", "replica3 answered from the cache after the flush on replica2")
    log("shared cache: an answer cached through replica1 was a hit on replica2 and replica3 (a streamed request replayed as a stream); a flush on replica2 emptied it for all")


def leases_of_a_killed_replica_return(balancer, replicas, simulator_port):
    victim, survivor = replicas[2], replicas[0]
    running_before, _ = simulator_peak(simulator_port)
    holders = [threading.Thread(target=chat, args=(victim.base, "long", KEYS["lease"], True)) for _ in range(2)]
    for holder in holders:
        holder.daemon = True
        holder.start()
    wait_until("the victim's two streams reach the simulator", lambda: simulator_peak(simulator_port)[0] >= running_before + 2, seconds=10)
    blocked = chat(survivor.base, "fast", KEYS["lease"])
    check(blocked.status == 429, f"with 2 of 2 leases held on {victim.name}, {survivor.name} answered {blocked.status}")
    victim.process.kill()
    killed = time.monotonic()
    victim.process.wait(10)

    served = []

    def keep_serving(_):
        for _ in range(20):
            served.append(chat(balancer, "fast", KEYS["ops"]).status)

    in_parallel(4, keep_serving)
    check(served.count(200) == len(served), f"after the kill, the balancer's answers were {sorted(set(served))}")
    returned = None
    while time.monotonic() - killed < LEASE_TTL * 4 + 10:
        if chat(survivor.base, "fast", KEYS["lease"]).status == 200:
            returned = time.monotonic() - killed
            break
        time.sleep(0.1)
    bound = LEASE_TTL + LEASE_TTL / 3 + 2.0
    check(returned is not None, "the killed replica's leases never came back")
    log(f"kill -9: {len(served)} requests through the balancer all answered; the leases came back {returned:.1f} s after the kill (lease_ttl {LEASE_TTL:.0f} s, bound {bound:.1f} s)")
    check(returned <= bound, f"the leases came back after {returned:.1f} s; documented: lease_ttl plus a renewal period ({bound:.1f} s)")
    # The victim comes back for the next check.
    victim.start()


def redis_outage_follows_the_policy(balancer, replicas, redis):
    answers = []
    lock = threading.Lock()
    phase = {"name": "before"}
    stop_at = time.monotonic() + 60

    def client(index):
        dialect = "anthropic" if index % 2 else "openai"
        while time.monotonic() < stop_at and phase["name"] != "done":
            answer = chat(balancer, "fast", KEYS["ops"], dialect=dialect)
            with lock:
                answers.append((phase["name"], dialect, answer))

    threads = [threading.Thread(target=client, args=(index,)) for index in range(6)]
    for thread in threads:
        thread.start()
    time.sleep(1.5)
    phase["name"] = "outage"
    redis.stop()
    time.sleep(3.0)
    phase["name"] = "recovering"
    redis.start()
    recovered = None
    began = time.monotonic()
    while time.monotonic() - began < 20:
        if all(chat(replica.base, "fast", KEYS["ops"]).status == 200 for replica in replicas):
            recovered = time.monotonic() - began
            break
        time.sleep(0.1)
    phase["name"] = "done"
    for thread in threads:
        thread.join(60)
    check(recovered is not None, "the replicas did not recover within 20 s of Redis's return")
    during = [(dialect, answer) for name, dialect, answer in answers if name == "outage"]
    denied = [(dialect, answer) for dialect, answer in during if answer.status == 503]
    slowest = max(answer.seconds for _, answer in during) if during else 0
    log(f"redis stopped: {len(during)} requests during the outage, {len(denied)} denied with 503, the slowest took {slowest * 1000:.0f} ms "
        f"(admission timeout {ADMISSION_TIMEOUT * 1000:.0f} ms); every replica answered again {recovered:.1f} s after Redis returned")
    check(denied, "no request was denied while Redis was stopped")
    check(all(answer.status in (200, 503) for _, answer in during), f"answers during the outage: {sorted({a.status for _, a in during})}")
    # Connecting gives up after 1 s at most and a command after the timeout; a loaded 2-core machine gets slack.
    check(slowest <= ADMISSION_TIMEOUT + 2.5, f"a request waited {slowest:.1f} s while Redis was stopped")
    for dialect, answer in denied:
        check(answer.header("retry-after") == "1", f"a denial without Retry-After: 1: {answer.headers}")
        error = answer.json().get("error", {})
        expected = "overloaded_error" if dialect == "anthropic" else "server_error"
        check(error.get("type") == expected, f"a {dialect} denial of type {error.get('type')}: {answer.body}")
        check("shared state" in error.get("message", ""), f"a denial that does not name its cause: {answer.body}")
    before = [answer.status for name, _, answer in answers if name == "before"]
    check(before and all(status == 200 for status in before), f"answers before the outage: {sorted(set(before))}")


def the_console_shows_a_replica_going_away(replicas):
    """The console on replica1's Fleet screen sees three replicas, then one killed for good kept on
    screen as gone (the roll call drops a replica silent for 10 s; the console remembers it)."""
    console = os.path.join(os.path.dirname(BINARY), "switchyard-console")
    session = f"sy-fleet-{os.getpid()}"

    def screen():
        return subprocess.run(["tmux", "capture-pane", "-p", "-t", session], capture_output=True, text=True, timeout=5).stdout

    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "120", "-y", "40",
                    f"exec {console} --socket {replicas[0].socket} --refresh 500ms"], check=True, timeout=10)
    try:
        subprocess.run(["tmux", "send-keys", "-t", session, "7"], check=True, timeout=5)
        wait_until("the console lists three replicas", lambda: "Fleet, 3 replicas up" in screen(), seconds=15)
        victim = replicas[2]
        victim.process.kill()
        victim.process.wait(10)
        wait_until("the console shows the killed replica gone", lambda: "gone: no heartbeat since" in screen() and "2 replicas up, 1 gone" in screen(), seconds=30)
        if os.environ.get("SCREENSHOTS"):
            os.makedirs(os.environ["SCREENSHOTS"], exist_ok=True)
            with open(os.path.join(os.environ["SCREENSHOTS"], "fleet.txt"), "w") as file:
                file.write(screen())
        log(f"the console on {replicas[0].name} shows {victim.name}, killed, as gone rather than dropping it")
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True, timeout=5)


def main():
    redis = Redis()
    redis.start()
    simulator_port = free_port()
    start("simulator", [BINARY, "simulate", "--port", str(simulator_port), "--ttft", "1ms", "--tps", "0"])
    wait_until("the simulator is up", lambda: request(f"http://127.0.0.1:{simulator_port}/healthz", timeout=1).status == 200)
    replicas = [Replica(number, redis.port, simulator_port) for number in (1, 2, 3)]
    for replica in replicas:
        replica.start()
    balancer_port = free_port()
    with open(os.path.join(WORK, "haproxy.cfg"), "w") as file:
        file.write(haproxy_config(balancer_port, replicas))
    start("haproxy", ["haproxy", "-db", "-f", os.path.join(WORK, "haproxy.cfg")])
    balancer = f"http://127.0.0.1:{balancer_port}"
    wait_until("HAProxy serves", lambda: request(f"{balancer}/readyz", timeout=1).status == 200)
    log(f"redis on :{redis.port}, simulator on :{simulator_port}, replicas {', '.join(r.base for r in replicas)}, HAProxy on :{balancer_port}")

    concurrency_holds_fleet_wide(balancer, simulator_port)
    rate_limit_holds_fleet_wide(balancer)
    budget_holds_fleet_wide(balancer, replicas)
    drains_are_the_fleets(replicas, redis.port, simulator_port)
    breakers_set_by_hand_are_the_fleets(replicas)
    edits_and_reloads_are_the_fleets(replicas)
    the_exact_cache_is_shared(replicas)
    leases_of_a_killed_replica_return(balancer, replicas, simulator_port)
    redis_outage_follows_the_policy(balancer, replicas, redis)
    the_console_shows_a_replica_going_away(replicas)
    log("OK")


if __name__ == "__main__":
    try:
        main()
    finally:
        stop_all()
        shutil.rmtree(WORK, ignore_errors=True)
