"""Starts the real `switchyard` binary on a loopback port for the SDK conformance tests.

The gateway runs with a config whose providers are the built-in simulator (no keys, no network),
and routes that provoke each failure the SDKs must handle. Every test runs twice: with the fast lane
on (`server.fast_lane: true`, test id `fast`) and off (`false`, id `framework`), one gateway per lane.
"""
import os
import re
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass

import pytest

CONFIG = """
server:
  listen: 127.0.0.1:0
  state_dir: {state}
  fast_lane: {fast_lane}
providers:
  sim:
    kind: simulator
    timeouts: {{ connect: 1s, first_byte: 5s, idle: 2s, total: 20s }}
  sim-claude:
    kind: simulator
    dialect: anthropic
    timeouts: {{ connect: 1s, first_byte: 5s, idle: 2s, total: 20s }}
  sim-local:
    kind: simulator
    dialect: ollama
    timeouts: {{ connect: 1s, first_byte: 5s, idle: 2s, total: 20s }}
  sim-gemini:
    kind: simulator
    dialect: gemini
    timeouts: {{ connect: 1s, first_byte: 5s, idle: 2s, total: 20s }}
routes:
  gemini:
    targets: [{{ provider: sim-gemini, model: gemini-2.5-flash }}]
  gemini-embed:
    targets: [{{ provider: sim-gemini, model: text-embedding-004 }}]
  gemini-limited:
    targets: [{{ provider: sim-gemini, model: "g:fault=429" }}]
  gemini-cut:
    targets: [{{ provider: sim-gemini, model: "g:fault=cut" }}]
  local:
    targets: [{{ provider: sim-local, model: "llama3.2:latest" }}]
  local-embed:
    targets: [{{ provider: sim-local, model: nomic-embed-text }}]
  claude:
    targets: [{{ provider: sim-claude, model: claude-sonnet-4-5-20250929 }}]
  claude-limited:
    targets: [{{ provider: sim-claude, model: "c:fault=429" }}]
  claude-cut:
    targets: [{{ provider: sim-claude, model: "c:fault=cut" }}]
  claude-flaky:
    targets: [{{ provider: sim-claude, model: "c:fault=stream-error" }}]
  fast:
    targets: [{{ provider: sim, model: gpt-4o-mini-2024-07-18 }}]
  limited:
    targets: [{{ provider: sim, model: "m:fault=429" }}]
  broken:
    targets: [{{ provider: sim, model: "m:fault=500" }}]
  cut:
    targets: [{{ provider: sim, model: "m:fault=cut" }}]
  flaky:
    targets: [{{ provider: sim, model: "m:fault=stream-error" }}]
  embedder:
    targets: [{{ provider: sim, model: text-embedding-3-small }}]
simulator: {{ ttft: 0ms, tokens_per_second: 0 }}
"""


@dataclass(frozen=True)
class Gateway:
    url: str
    lane: str

    def metrics(self):
        """The gateway's fast-lane counters: requests it served, and requests it left by reason."""
        with urllib.request.urlopen(self.url + "/metrics", timeout=10) as response:
            text = response.read().decode()
        served, skipped = 0, {}
        for line in text.splitlines():
            if line.startswith("switchyard_fast_lane_requests_total "):
                served = int(float(line.split()[-1]))
            match = re.match(r'switchyard_fast_lane_skipped_total\{reason="([a-z_]+)"\} (\S+)$', line)
            if match:
                skipped[match.group(1)] = int(float(match.group(2)))
        return served, skipped


@pytest.fixture(scope="session", params=["fast", "framework"])
def gateway(request):
    """The real binary on one lane: every test that uses it runs once per lane."""
    lane = request.param
    binary = os.environ.get("SWITCHYARD_BIN", os.path.join(os.path.dirname(__file__), "../../.build/debug/switchyard"))
    with tempfile.TemporaryDirectory() as state:
        config_path = os.path.join(state, "switchyard.yaml")
        with open(config_path, "w") as handle:
            handle.write(CONFIG.format(state=state, fast_lane="true" if lane == "fast" else "false"))
        environment = {key: value for key, value in os.environ.items() if not key.endswith("_API_KEY")}
        process = subprocess.Popen(
            [binary, "serve", "--config", config_path],
            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=environment,
        )
        url = None
        deadline = time.monotonic() + 30
        lines = []
        while url is None and time.monotonic() < deadline:
            line = process.stderr.readline()
            if not line:
                break
            lines.append(line)
            match = re.search(r"listening on (http://127\.0\.0\.1:\d+)", line)
            if match:
                url = match.group(1)
        if url is None:
            process.kill()
            pytest.fail("the gateway did not start:\n" + "".join(lines))
        try:
            yield Gateway(url=url, lane=lane)
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                pytest.fail("the gateway did not stop within 10 s of SIGTERM")


@pytest.fixture()
def gateway_url(gateway):
    return gateway.url
