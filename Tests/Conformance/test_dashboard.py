"""`deploy/grafana/switchyard.json` is a dashboard Grafana loads, and every series its queries read
is one the gateway exports: a gateway is driven through every kind of request the panels show
(answers, streams, errors, cache and semantic hits, a tenant's spend, traced requests), then each
query's metric names are looked up in its `/metrics`.
"""
import json
import os
import re
import time

import pytest

from gateway_process import GatewayProcess
from otlp_receiver import Receiver

DASHBOARD = os.path.join(os.path.dirname(__file__), "../../deploy/grafana/switchyard.json")
KEY = "sk-sy-dashboard-tenant-0123456789abcdef"

CONFIG = """
server: {{ listen: 127.0.0.1:0, state_dir: {state} }}
tracing: {{ endpoint: {endpoint} }}
providers:
  sim: {{ kind: simulator }}
prices:
  priced-model: {{ input: 1000, output: 4000 }}
  cached-model: {{ input: 1000, output: 4000 }}
routes:
  priced: {{ targets: [{{ provider: sim, model: priced-model }}] }}
  broken: {{ targets: [{{ provider: sim, model: "m:fault=500" }}] }}
  cached:
    targets: [{{ provider: sim, model: cached-model }}]
    cache: {{ ttl: 10m, always: true, semantic: {{ threshold: 0.5, embedder: {{ provider: sim, model: text-embedding-3-small }} }} }}
tenants:
  acme: {{ keys: {{ ci: {{ key: "{key}" }} }} }}
simulator: {{ ttft: 0ms, tokens_per_second: 0 }}
"""

PANEL_TYPES = {"row", "timeseries", "bargauge", "state-timeline", "stat", "gauge", "table"}


@pytest.fixture(scope="module")
def dashboard():
    with open(DASHBOARD) as handle:
        return json.load(handle)


def test_the_dashboard_is_one_grafana_loads(dashboard):
    assert dashboard["title"] and dashboard["uid"] and isinstance(dashboard["schemaVersion"], int)
    variables = {variable["name"]: variable for variable in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids)), "panel ids are unique"
    cells = set()
    for panel in dashboard["panels"]:
        assert panel["type"] in PANEL_TYPES, panel["type"]
        position = panel["gridPos"]
        assert 0 <= position["x"] and position["x"] + position["w"] <= 24 and position["h"] > 0, panel["title"]
        for x in range(position["x"], position["x"] + position["w"]):
            for y in range(position["y"], position["y"] + position["h"]):
                assert (x, y) not in cells, f"'{panel['title']}' overlaps another panel"
                cells.add((x, y))
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["refId"] and target["expr"], panel["title"]
            assert target["expr"].count("(") == target["expr"].count(")"), target["expr"]
    titles = " ".join(panel["title"].lower() for panel in dashboard["panels"])
    for subject in ("requests per second", "fault domain", "latency", "time to first token", "cost per tenant", "cache hit ratio", "circuit breakers"):
        assert subject in titles, subject


def test_every_query_reads_series_the_gateway_exports(dashboard):
    receiver = Receiver()
    gateway = GatewayProcess(lambda state: CONFIG.format(state=state, endpoint=receiver.endpoint, key=KEY))
    try:
        client, tenant = gateway.openai(), gateway.openai(key=KEY)
        tenant.chat.completions.create(model="priced", messages=[{"role": "user", "content": "Hello"}])
        for _ in tenant.chat.completions.create(model="priced", messages=[{"role": "user", "content": "Hi"}], stream=True):
            pass
        with pytest.raises(Exception):
            client.chat.completions.create(model="broken", messages=[{"role": "user", "content": "Hello"}])
        for content in ("What is the capital of France?", "What is the capital of France?", "what is the capital of france"):
            client.chat.completions.create(model="cached", messages=[{"role": "user", "content": content}])
        # Spans are exported a second after they end.
        deadline = time.monotonic() + 10
        while gateway.metric("switchyard_trace_spans_total", 'outcome="exported"') == 0 and time.monotonic() < deadline:
            time.sleep(0.2)
        exposition = gateway.exposition()
    finally:
        gateway.stop()
        receiver.stop()
    exported = {re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", line).group(0) for line in exposition.splitlines() if line and not line.startswith("#")}
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            names = re.findall(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\{", target["expr"])
            assert names, f"'{panel['title']}' reads no metric: {target['expr']}"
            for name in names:
                assert name in exported, f"'{panel['title']}' reads {name}, which the gateway does not export"
