#!/usr/bin/env python3
"""The soak's load and its sampler (Benchmarks/soak/run.sh starts the processes).

Workers send a mixed load to the gateway for DURATION seconds over keep-alive HTTP/1.1 connections of
their own (standard library only): whole and streamed answers, OpenAI and Anthropic clients, same
dialect and translated, a cached route, a virtual key, upstream faults (500s the retry absorbs, cut
streams, 429s) and clients that hang up mid-stream or mid-request, plus bad requests. Once a second
the gateway's resident memory and open file descriptors are read from /proc. At the end: counts by
kind and status, then the slope of memory and descriptors after warm-up (least squares).

Exit status: 0 when the gateway answered everything with an expected status and is still up; 1 if it
died, answered a 500, or a request went unanswered (a worker's read timed out).
"""
import asyncio
import json
import os
import random
import sys
import time

HOST = "127.0.0.1"
PORT = int(os.environ.get("SOAK_PORT", "18183"))
PID = int(os.environ["SOAK_GATEWAY_PID"])
DURATION = float(os.environ.get("DURATION", "600"))
WARMUP = float(os.environ.get("WARMUP", str(min(60.0, DURATION / 5))))
WORKERS = int(os.environ.get("WORKERS", "32"))
KEY = os.environ.get("SOAK_KEY", "sk-sy-soak0000000000000000000000000000000000")
SAMPLES = os.environ.get("SOAK_SAMPLES", "")
READ_TIMEOUT = 40.0

PROMPTS = [f"Question {n}: what does a gateway do with request {n}?" for n in range(64)]


def chat(model, stream=False, prompt=None, extra=None):
    body = {"model": model, "messages": [{"role": "user", "content": prompt or random.choice(PROMPTS)}], "max_tokens": 24}
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    body.update(extra or {})
    return json.dumps(body)


def messages(model, stream=False):
    body = {"model": model, "max_tokens": 24, "messages": [{"role": "user", "content": random.choice(PROMPTS)}]}
    if stream:
        body["stream"] = True
    return json.dumps(body)


# name, weight, method/path, body maker, extra headers, statuses that are fine, hang up after the head?
KINDS = [
    ("openai-whole", 20, "/v1/chat/completions", lambda: chat("fast"), {}, {200}, False),
    ("openai-stream", 14, "/v1/chat/completions", lambda: chat("fast", stream=True), {}, {200}, False),
    ("anthropic-same", 8, "/v1/messages", lambda: messages("claude"), {"anthropic-version": "2023-06-01"}, {200}, False),
    ("anthropic-translated-stream", 8, "/v1/messages", lambda: messages("fast", stream=True), {"anthropic-version": "2023-06-01"}, {200}, False),
    ("openai-translated", 6, "/v1/chat/completions", lambda: chat("claude"), {}, {200}, False),
    ("cached", 10, "/v1/chat/completions", lambda: chat("cached", prompt=random.choice(PROMPTS[:8]), extra={"temperature": 0}), {}, {200}, False),
    ("keyed", 10, "/v1/chat/completions", lambda: chat("fast"), {"authorization": f"Bearer {KEY}"}, {200}, False),
    ("flaky-failover", 6, "/v1/chat/completions", lambda: chat("flaky", stream=random.random() < 0.5), {}, {200}, False),
    ("upstream-cut", 4, "/v1/chat/completions", lambda: chat("cut", stream=True), {}, {200, 502, 503}, False),
    ("upstream-429", 3, "/v1/chat/completions", lambda: chat("limited"), {}, {429, 503}, False),
    ("hang-up-mid-stream", 6, "/v1/chat/completions", lambda: chat("fast", stream=True), {}, {200}, True),
    ("bad-json", 2, "/v1/chat/completions", lambda: '{"model":"fast","messages":[', {}, {400}, False),
    ("unknown-model", 2, "/v1/chat/completions", lambda: chat("nope"), {}, {404}, False),
    ("half-sent-request", 1, None, None, {}, set(), False),
]
WEIGHTS = [kind[1] for kind in KINDS]


class Stats:
    def __init__(self):
        self.by_kind = {}
        self.unexpected = []
        self.done = 0

    def count(self, kind, status):
        key = (kind, status)
        self.by_kind[key] = self.by_kind.get(key, 0) + 1
        self.done += 1


async def read_response(reader, hang_up):
    """Reads one response; returns (status, body). With hang_up, returns after the head and a first chunk."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), READ_TIMEOUT)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    if hang_up:
        await asyncio.wait_for(reader.read(64), READ_TIMEOUT)
        return status, b"", True
    body = b""
    if "content-length" in headers:
        body = await asyncio.wait_for(reader.readexactly(int(headers["content-length"])), READ_TIMEOUT)
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        while True:
            size_line = await asyncio.wait_for(reader.readuntil(b"\r\n"), READ_TIMEOUT)
            size = int(size_line.split(b";")[0], 16)
            chunk = await asyncio.wait_for(reader.readexactly(size + 2), READ_TIMEOUT)
            body += chunk[:-2]
            if size == 0:
                break
    else:
        body = await asyncio.wait_for(reader.read(), READ_TIMEOUT)
        return status, body, True
    closes = headers.get("connection", "").lower() == "close"
    return status, body, closes


async def worker(stats, deadline):
    reader = writer = None
    while time.monotonic() < deadline:
        kind = random.choices(KINDS, WEIGHTS)[0]
        name, _, path, make_body, headers, fine, hang_up = kind
        try:
            if writer is None:
                reader, writer = await asyncio.open_connection(HOST, PORT)
            if path is None:
                # A client that stops half-way through its body: the gateway must not hold it forever.
                writer.write(b"POST /v1/chat/completions HTTP/1.1\r\nhost: soak\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{\"model\":")
                await writer.drain()
                writer.close()
                reader = writer = None
                stats.count(name, "sent")
                continue
            body = make_body().encode()
            request = f"POST {path} HTTP/1.1\r\nhost: soak\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n"
            request += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
            writer.write(request.encode() + body)
            await writer.drain()
            status, answer, closes = await read_response(reader, hang_up)
            stats.count(name, status)
            if status not in fine:
                stats.unexpected.append((name, status, answer[:300].decode("utf-8", "replace")))
            if closes:
                writer.close()
                reader = writer = None
        except asyncio.TimeoutError:
            stats.count(name, "timeout")
            stats.unexpected.append((name, "timeout", ""))
            if writer:
                writer.close()
            reader = writer = None
        except (ConnectionError, asyncio.IncompleteReadError, OSError) as error:
            stats.count(name, type(error).__name__)
            if writer:
                writer.close()
            reader = writer = None
            if not os.path.exists(f"/proc/{PID}"):
                return


def sample():
    try:
        with open(f"/proc/{PID}/status") as status:
            rss = next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
        fds = len(os.listdir(f"/proc/{PID}/fd"))
        return rss, fds
    except (FileNotFoundError, ProcessLookupError, StopIteration):
        return None


async def sampler(stats, start, deadline, samples):
    while time.monotonic() < deadline:
        reading = sample()
        if reading is None:
            return
        samples.append((time.monotonic() - start, reading[0], reading[1], stats.done))
        await asyncio.sleep(1)


def slope(points):
    """Least-squares slope of (x, y) points."""
    n = len(points)
    if n < 2:
        return 0.0
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    spread = sum((x - mean_x) ** 2 for x, _ in points)
    return sum((x - mean_x) * (y - mean_y) for x, y in points) / spread if spread else 0.0


async def main():
    stats = Stats()
    samples = []
    start = time.monotonic()
    deadline = start + DURATION
    await asyncio.gather(sampler(stats, start, deadline, samples), *(worker(stats, deadline) for _ in range(WORKERS)))
    await asyncio.sleep(2)  # the last hang-ups and half-sent requests settle
    final = sample()

    print(f"soak: {DURATION:.0f} s, {WORKERS} connections, {stats.done} requests ({stats.done / DURATION:.0f}/s)")
    for (kind, status), count in sorted(stats.by_kind.items(), key=lambda item: (item[0][0], str(item[0][1]))):
        print(f"  {kind:30} {str(status):22} {count}")
    if SAMPLES:
        with open(SAMPLES, "w") as output:
            output.write("seconds,rss_kib,fds,requests\n")
            for t, rss, fds, done in samples:
                output.write(f"{t:.1f},{rss},{fds},{done}\n")
    after = [s for s in samples if s[0] >= WARMUP]
    if after:
        rss_slope = slope([(t, rss) for t, rss, _, _ in after]) * 60 / 1024
        fd_slope = slope([(t, fds) for t, _, fds, _ in after]) * 60
        rss_values = [rss for _, rss, _, _ in after]
        fd_values = [fds for _, _, fds, _ in after]
        print(f"after {WARMUP:.0f} s warm-up ({len(after)} samples):")
        print(f"  RSS  {rss_values[0] / 1024:.1f} MiB -> {rss_values[-1] / 1024:.1f} MiB (min {min(rss_values) / 1024:.1f}, max {max(rss_values) / 1024:.1f}); slope {rss_slope:+.3f} MiB/min")
        print(f"  fds  {fd_values[0]} -> {fd_values[-1]} (min {min(fd_values)}, max {max(fd_values)}); slope {fd_slope:+.3f}/min")
    if final:
        print(f"  after the load stopped: RSS {final[0] / 1024:.1f} MiB, fds {final[1]}")
    failed = False
    if final is None:
        print("FAIL: the gateway is gone")
        failed = True
    if stats.unexpected:
        print(f"FAIL: {len(stats.unexpected)} unexpected answers; the first ones:")
        for entry in stats.unexpected[:10]:
            print("  ", entry)
        failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
