"""The real `switchyard` binary on a loopback port, with a config of the test's own; its JSON log in
a file (a pipe nobody reads would fill and stall it)."""
import json
import os
import re
import subprocess
import tempfile
import time
import urllib.request

import openai
import pytest

BINARY = os.environ.get("SWITCHYARD_BIN", os.path.join(os.path.dirname(__file__), "../../.build/debug/switchyard"))


class GatewayProcess:
    def __init__(self, config, lane="fast", environment=None):
        """`config` makes the YAML from the state directory's path; `environment` adds variables."""
        self.lane = lane
        self.directory = tempfile.TemporaryDirectory()
        state = self.directory.name
        config_path = os.path.join(state, "switchyard.yaml")
        with open(config_path, "w") as handle:
            handle.write(config(state))
        extra = environment or {}
        environment = {key: value for key, value in os.environ.items() if not key.endswith("_API_KEY") and not key.startswith("OTEL_")}
        environment["SWITCHYARD_LOG_FORMAT"] = "json"
        environment.update(extra)
        self.log_path = os.path.join(state, "gateway.log")
        self.log = open(self.log_path, "w")
        self.process = subprocess.Popen([BINARY, "serve", "--config", config_path], stderr=self.log, stdout=subprocess.DEVNULL, env=environment)
        self.url = None
        deadline = time.monotonic() + 30
        while self.url is None and time.monotonic() < deadline and self.process.poll() is None:
            with open(self.log_path) as handle:
                match = re.search(r"listening on (http://127\.0\.0\.1:\d+)", handle.read())
            if match:
                self.url = match.group(1)
            else:
                time.sleep(0.05)
        if self.url is None:
            with open(self.log_path) as handle:
                text = handle.read()
            self.stop()
            pytest.fail("the gateway did not start:\n" + text)

    def openai(self, key="sk-local-unused"):
        return openai.OpenAI(base_url=self.url + "/v1", api_key=key, max_retries=0, timeout=20)

    def log_lines(self):
        with open(self.log_path) as handle:
            return [json.loads(line) for line in handle if line.startswith("{")]

    def exposition(self):
        with urllib.request.urlopen(self.url + "/metrics", timeout=10) as response:
            return response.read().decode()

    def metric(self, name, labels):
        """The value of one series (0 when it is not there yet)."""
        for line in self.exposition().splitlines():
            if line.startswith(f"{name}{{{labels}}} "):
                return float(line.split()[-1])
        return 0.0

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()
        self.directory.cleanup()
