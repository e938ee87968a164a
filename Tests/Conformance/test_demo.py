"""`switchyard serve --demo` (what `make demo` runs): the demo configuration and its own synthetic
traffic, with nobody typing: every tenant spends, the cached route hits (exactly and reworded),
anonymous curl still works. Waits are bounded; the traffic is the gateway's own, on loopback."""
import json
import os
import re
import subprocess
import tempfile
import time
import urllib.request

import pytest

from gateway_process import BINARY

TENANTS = ["acme", "globex", "initech"]


@pytest.fixture(scope="module")
def demo():
    directory = tempfile.TemporaryDirectory()
    log_path = os.path.join(directory.name, "gateway.log")
    environment = {key: value for key, value in os.environ.items() if not key.endswith("_API_KEY") and not key.startswith("OTEL_")}
    environment["SWITCHYARD_LOG_FORMAT"] = "json"
    with open(log_path, "w") as log:
        process = subprocess.Popen([BINARY, "serve", "--demo", "--listen", "127.0.0.1:0", "--state-dir", directory.name],
                                   stderr=log, stdout=subprocess.DEVNULL, env=environment)
    url = None
    deadline = time.monotonic() + 30
    while url is None and time.monotonic() < deadline and process.poll() is None:
        with open(log_path) as handle:
            match = re.search(r"listening on (http://127\.0\.0\.1:\d+)", handle.read())
        url = match.group(1) if match else None
        time.sleep(0.05)
    if url is None:
        process.kill()
        pytest.fail("the demo did not start:\n" + open(log_path).read())
    yield url, os.path.join(directory.name, "admin.sock")
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
    directory.cleanup()


def exposition(url):
    with urllib.request.urlopen(url + "/metrics", timeout=10) as response:
        return response.read().decode()


def tenants(socket):
    result = subprocess.run([BINARY, "tenants", "list", "--socket", socket, "--json"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_the_demo_traffic_shows_spend_for_every_tenant_and_cache_hits(demo):
    url, socket = demo
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        text = exposition(url)
        spending = {tenant for tenant in TENANTS if re.search(rf'switchyard_tenant_cost_usd_total{{tenant="{tenant}"}} [0-9.e-]*[1-9]', text)}
        hits = {result for result in ("hit", "semantic-hit") if f'switchyard_cache_lookups_total{{route="support",result="{result}"}}' in text}
        if spending == set(TENANTS) and hits == {"hit", "semantic-hit"}:
            break
        time.sleep(1)
    assert spending == set(TENANTS), text
    assert hits == {"hit", "semantic-hit"}, text
    listed = json.dumps(tenants(socket))
    assert all(tenant in listed for tenant in TENANTS)


def test_an_anonymous_curl_still_works(demo):
    url, _ = demo
    request = urllib.request.Request(url + "/v1/chat/completions", method="POST", headers={"content-type": "application/json"},
                                     data=json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hello"}]}).encode())
    with urllib.request.urlopen(request, timeout=30) as response:
        answer = json.loads(response.read())
        assert answer["choices"][0]["message"]["content"] and float(response.headers["x-switchyard-cost-usd"]) > 0
