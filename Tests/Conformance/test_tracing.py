"""Traces: the real binary exports OpenTelemetry spans over OTLP/HTTP to a real receiver
(`otlp_receiver.py`, decoding with PyPI's `opentelemetry-proto`), on both lanes. Each test finds its
request's trace by the request id it sent and checks the span tree: names, parents, kinds and the
GenAI attributes; and that the collector being away never fails a request.
"""
import secrets
import socket
import subprocess
import time

import anthropic
import openai
import pytest

from gateway_process import GatewayProcess
from otlp_receiver import Receiver, RecordingUpstream

KEY = "sk-sy-trace-limited-0123456789abcdef"

CONFIG = """
server:
  listen: 127.0.0.1:0
  state_dir: {state}
  fast_lane: {fast_lane}
  log_level: debug
tracing:
  endpoint: {endpoint}
  service_name: switchyard-under-test
  resource_attributes: {{ deployment.environment: ci }}
  capture_content: {capture}
  max_queue_size: {queue}
providers:
  sim:
    kind: simulator
    timeouts: {{ connect: 1s, first_byte: 5s, idle: 2s, total: 20s }}
  sim-claude:
    kind: simulator
    dialect: anthropic
  recorder:
    kind: openai-compatible
    base_url: {recorder}
routes:
  fast:
    targets: [{{ provider: sim, model: gpt-4o-mini-2024-07-18 }}]
  claude:
    targets: [{{ provider: sim-claude, model: claude-sonnet-4-5-20250929 }}]
  recorded:
    targets: [{{ provider: recorder, model: recorded-model }}]
  retried:
    targets: [{{ provider: sim, model: "m:fault=500" }}]
    retry: {{ attempts: 2, backoff: 10ms }}
    fallbacks: [fast]
  broken:
    targets: [{{ provider: sim, model: "m:fault=500" }}]
  hedged:
    strategy: priority
    targets: [{{ provider: sim, model: "slow-model:ttft=3s" }}, {{ provider: sim, model: gpt-4o-mini-2024-07-18 }}]
    hedge: {{ initial: 200ms }}
  paced:
    targets: [{{ provider: sim, model: "paced-model:tps=40" }}]
  flaky:
    targets: [{{ provider: sim, model: "m:fault=stream-error" }}]
  cached:
    targets: [{{ provider: sim, model: cached-model }}]
    cache: {{ ttl: 10m, always: true }}
  semantic:
    targets: [{{ provider: sim, model: semantic-model }}]
    cache: {{ ttl: 10m, always: true, semantic: {{ threshold: 0.5, embedder: {{ provider: sim, model: text-embedding-3-small }} }} }}
tenants:
  limited: {{ keys: {{ ci: {{ key: "{key}", limits: {{ rpm: 1 }} }} }} }}
simulator: {{ ttft: 0ms, tokens_per_second: 0 }}
"""


def traced_gateway(lane, endpoint, recorder, capture=False, queue=2048, redis=None):
    def config(state):
        text = CONFIG.format(
            state=state, fast_lane="true" if lane == "fast" else "false", endpoint=endpoint, recorder=recorder,
            capture="true" if capture else "false", key=KEY, queue=queue,
        )
        return text + (f"state: redis://127.0.0.1:{redis}\n" if redis else "")
    return GatewayProcess(config, lane=lane)


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def receiver():
    receiver = Receiver()
    yield receiver
    receiver.stop()


@pytest.fixture(scope="module")
def recorder():
    upstream = RecordingUpstream()
    yield upstream
    upstream.stop()


@pytest.fixture(scope="module", params=["fast", "framework"])
def traced(request, receiver, recorder):
    gateway = traced_gateway(request.param, receiver.endpoint, recorder.base_url)
    yield gateway
    gateway.stop()


def request_id():
    return "trace-test-" + secrets.token_hex(6)


def by_request(request_id):
    return lambda span: span.attributes.get("switchyard.request_id") == request_id


def children(spans, parent):
    return [span for span in spans if span.parent_id == parent.span_id]


def server_of(spans):
    (server,) = [span for span in spans if span.kind == "server"]
    return server


def attempts_of(spans, server):
    return sorted((span for span in children(spans, server) if span.kind == "client"), key=lambda span: span.start)


def test_a_plain_request_continues_the_clients_trace_with_genai_spans(traced, receiver, recorder):
    trace_id, parent_id = secrets.token_hex(16), secrets.token_hex(8)
    rid = request_id()
    sent_before = len(recorder.traceparents)
    answer = traced.openai().chat.completions.create(
        model="recorded", messages=[{"role": "user", "content": "Hello"}],
        extra_headers={"traceparent": f"00-{trace_id}-{parent_id}-01", "x-request-id": rid},
    )
    assert answer.choices[0].message.content == "Hi there"
    spans = receiver.trace(by_request(rid))
    server = server_of(spans)
    assert server.trace_id == trace_id and server.parent_id == parent_id, "the client's trace is continued"
    assert server.name == "POST /v1/chat/completions"
    assert server.resource["service.name"] == "switchyard-under-test" and server.resource["deployment.environment"] == "ci"
    attributes = server.attributes
    assert attributes["gen_ai.operation.name"] == "chat"
    assert attributes["gen_ai.provider.name"] == "openai-compatible"
    assert attributes["gen_ai.request.model"] == "recorded"
    assert attributes["gen_ai.response.model"] == "recorded-model"
    assert attributes["gen_ai.usage.input_tokens"] == 7 and attributes["gen_ai.usage.output_tokens"] == 2
    assert attributes["gen_ai.usage.cache_read.input_tokens"] == 0 and attributes["gen_ai.usage.cache_creation.input_tokens"] == 0
    assert attributes["gen_ai.response.finish_reasons"] == ["stop"]
    assert attributes["http.response.status_code"] == 200 and attributes["switchyard.route"] == "recorded"
    assert attributes["switchyard.lane"] == traced.lane
    assert "gen_ai.input.messages" not in attributes and "gen_ai.output.messages" not in attributes, "content is off by default"
    assert server.status != "error"
    assert not [span for span in children(spans, server) if span.name == "switchyard.admission"], "an anonymous caller has no limits to check"
    (attempt,) = attempts_of(spans, server)
    assert attempt.name == "chat recorded-model"
    assert attempt.attributes["gen_ai.provider.name"] == "openai-compatible"
    assert attempt.attributes["switchyard.attempt.outcome"] == "won" and attempt.attributes["switchyard.attempt.delivered"] is True
    assert attempt.attributes["http.response.status_code"] == 200 and attempt.attributes["server.address"] == "127.0.0.1"
    assert server.start <= attempt.start <= attempt.end <= server.end
    # The upstream was sent the attempt's own span as its parent, in the same trace.
    assert recorder.traceparents[sent_before:] == [f"00-{trace_id}-{attempt.span_id}-01"]
    # The request's log lines carry its trace and span ids.
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        lines = [line for line in traced.log_lines() if line.get("gw.request_id") == rid and line.get("msg") == "request completed"]
        if lines:
            break
        time.sleep(0.1)
    assert lines and lines[0].get("trace_id") == trace_id and lines[0].get("span_id") == server.span_id, lines
    assert traced.metric("switchyard_trace_spans_total", 'outcome="exported"') >= len(spans)


def test_a_client_that_does_not_sample_is_followed_and_its_context_passed_on(traced, receiver, recorder):
    trace_id, parent_id = secrets.token_hex(16), secrets.token_hex(8)
    unsampled = f"00-{trace_id}-{parent_id}-00"
    sent_before = len(recorder.traceparents)
    marker = request_id()
    traced.openai().chat.completions.create(
        model="recorded", messages=[{"role": "user", "content": "Hello"}], extra_headers={"traceparent": unsampled, "x-request-id": marker},
    )
    assert recorder.traceparents[sent_before:] == [unsampled]
    # A later sampled request's trace arriving means the exporter has sent what it had.
    follow = request_id()
    traced.openai().chat.completions.create(model="fast", messages=[{"role": "user", "content": "Hi"}], extra_headers={"x-request-id": follow})
    receiver.trace(by_request(follow))
    assert not [span for span in receiver.spans if span.trace_id == trace_id], "the client said not to sample"


def test_a_streamed_requests_span_lasts_until_its_last_byte(traced, receiver):
    rid = request_id()
    stream = traced.openai().chat.completions.create(
        model="paced", messages=[{"role": "user", "content": "Count to five"}], stream=True,
        stream_options={"include_usage": True}, extra_headers={"x-request-id": rid},
    )
    arrivals, chunks = [], []
    for chunk in stream:
        arrivals.append(time.time_ns())
        chunks.append(chunk)
    assert chunks and chunks[-1].usage is not None
    spans = receiver.trace(by_request(rid))
    server = server_of(spans)
    assert server.parent_id == "", "a request without a traceparent starts a trace"
    # The span covers the whole relay: it ends after the last chunk went out, not at the head.
    relayed = arrivals[-1] - arrivals[0]
    assert relayed > 100_000_000, f"the paced stream took {relayed / 1e6:.0f} ms"
    assert server.end - arrivals[0] >= relayed * 0.8, (server.end - arrivals[0], relayed)
    assert server.attributes["gen_ai.request.stream"] is True
    assert server.attributes["gen_ai.usage.output_tokens"] == chunks[-1].usage.completion_tokens
    assert server.attributes["gen_ai.response.time_to_first_chunk"] > 0
    (attempt,) = attempts_of(spans, server)
    assert attempt.attributes["gen_ai.request.stream"] is True and attempt.attributes["gen_ai.response.time_to_first_chunk"] > 0
    assert server.start <= attempt.start <= attempt.end <= server.end
    assert attempt.end - arrivals[0] >= relayed * 0.8, "the winning attempt lasts as long as its stream"
    assert attempt.attributes["switchyard.attempt.delivered"] is True


def test_a_stream_that_breaks_after_its_first_byte_is_a_failed_span(traced, receiver):
    rid = request_id()
    received = []
    with pytest.raises(openai.APIError):
        for chunk in traced.openai().chat.completions.create(
            model="flaky", messages=[{"role": "user", "content": "Hi"}], stream=True, extra_headers={"x-request-id": rid},
        ):
            received.append(chunk)
    assert received, "the stream broke after its first byte"
    spans = receiver.trace(by_request(rid))
    server = server_of(spans)
    assert server.status == "error" and server.attributes["error.type"]
    assert server.attributes["http.response.status_code"] == 200, "the head had gone out"
    (attempt,) = attempts_of(spans, server)
    assert attempt.status == "error" and attempt.attributes["switchyard.attempt.outcome"] == "failed"
    assert attempt.attributes["switchyard.attempt.delivered"] is True, "the client got its bytes before it broke"


def test_retries_and_the_fallback_are_one_span_each(traced, receiver):
    rid = request_id()
    answer = traced.openai().chat.completions.create(
        model="retried", messages=[{"role": "user", "content": "Hello"}], extra_headers={"x-request-id": rid},
    )
    assert answer.choices[0].message.content
    spans = receiver.trace(by_request(rid))
    server = server_of(spans)
    attempts = attempts_of(spans, server)
    assert len(attempts) >= 2, [span.name for span in attempts]
    failed, winner = attempts[:-1], attempts[-1]
    for attempt in failed:
        assert attempt.name == "chat m:fault=500"
        assert attempt.status == "error" and attempt.attributes["error.type"]
        assert attempt.attributes["http.response.status_code"] == 500
        assert attempt.attributes["switchyard.attempt.outcome"] == "failed" and attempt.attributes["switchyard.attempt.delivered"] is False
    assert winner.name == "chat gpt-4o-mini-2024-07-18" and winner.attributes["switchyard.route"] == "fast"
    assert winner.attributes["switchyard.attempt.outcome"] == "won" and winner.attributes["switchyard.attempt.delivered"] is True
    assert [attempt.attributes["switchyard.attempt.number"] for attempt in attempts] == list(range(1, len(attempts) + 1))
    assert server.attributes["switchyard.attempts"] == len(attempts)
    assert server.attributes["http.response.status_code"] == 200 and server.status != "error"


def test_the_upstreams_failed_answer_the_client_gets_is_the_delivered_attempt(traced, receiver):
    rid = request_id()
    with pytest.raises(openai.InternalServerError):
        traced.openai().chat.completions.create(model="broken", messages=[{"role": "user", "content": "Hello"}], extra_headers={"x-request-id": rid})
    spans = receiver.trace(by_request(rid))
    server = server_of(spans)
    assert server.status == "error" and server.attributes["http.response.status_code"] == 500
    attempts = attempts_of(spans, server)
    assert attempts and all(attempt.attributes["switchyard.attempt.outcome"] == "failed" for attempt in attempts)
    assert [attempt.attributes["switchyard.attempt.delivered"] for attempt in attempts] == [False] * (len(attempts) - 1) + [True]
    # Each failed attempt's span ends when it failed, not when the request did.
    assert all(attempt.end <= later.start for attempt, later in zip(attempts, attempts[1:]))


def test_a_hedge_and_the_attempt_it_beat_are_one_span_each(traced, receiver):
    rid = request_id()
    reply = traced.openai().chat.completions.with_raw_response.create(
        model="hedged", messages=[{"role": "user", "content": "Hello"}], extra_headers={"x-request-id": rid},
    )
    assert reply.headers["x-switchyard-hedged"] == "true"
    spans = receiver.trace(by_request(rid))
    server = server_of(spans)
    slow, hedge = attempts_of(spans, server)
    assert slow.name == "chat slow-model:ttft=3s" and hedge.name == "chat gpt-4o-mini-2024-07-18"
    assert slow.attributes["switchyard.attempt.outcome"] == "cancelled" and slow.attributes["switchyard.attempt.delivered"] is False
    assert slow.status != "error", "a hedge's loser is not the target's failure"
    assert hedge.attributes["switchyard.attempt.outcome"] == "won" and hedge.attributes["switchyard.attempt.delivered"] is True
    assert slow.start < hedge.start and slow.end <= server.end


def test_a_cache_hit_has_a_lookup_span_and_no_attempt(traced, receiver):
    prompt = "cache me " + secrets.token_hex(4)
    client = traced.openai()
    client.chat.completions.create(model="cached", messages=[{"role": "user", "content": prompt}])
    rid = request_id()
    hit = client.chat.completions.with_raw_response.create(
        model="cached", messages=[{"role": "user", "content": prompt}], extra_headers={"x-request-id": rid},
    )
    assert hit.headers["x-switchyard-cache"] == "hit"
    spans = receiver.trace(by_request(rid))
    server = server_of(spans)
    assert server.attributes["switchyard.cache"] == "hit" and server.attributes["switchyard.lane"] == "framework"
    assert server.attributes["gen_ai.response.model"] == "cached-model"
    (lookup,) = [span for span in children(spans, server) if span.name == "switchyard.cache.lookup"]
    assert lookup.attributes["switchyard.cache.outcome"] == "hit"
    assert attempts_of(spans, server) == [], "a hit calls no upstream"


def test_a_semantic_hit_shows_its_embedding_call(traced, receiver):
    client = traced.openai()
    words = secrets.token_hex(3)
    client.chat.completions.create(model="semantic", messages=[{"role": "user", "content": f"What is the capital of France {words}?"}])
    rid = request_id()
    hit = client.chat.completions.with_raw_response.create(
        model="semantic", messages=[{"role": "user", "content": f"what is the capital of france {words}"}], extra_headers={"x-request-id": rid},
    )
    assert hit.headers["x-switchyard-cache"] == "semantic-hit"
    spans = receiver.trace(by_request(rid))
    server = server_of(spans)
    assert server.attributes["switchyard.cache"] == "semantic-hit"
    (lookup,) = [span for span in children(spans, server) if span.name == "switchyard.cache.lookup"]
    assert lookup.attributes["switchyard.cache.outcome"] == "semantic-hit"
    (embedding,) = children(spans, lookup)
    assert embedding.name == "embeddings text-embedding-3-small" and embedding.kind == "client"
    assert embedding.attributes["gen_ai.operation.name"] == "embeddings" and embedding.attributes["gen_ai.usage.input_tokens"] > 0
    assert lookup.start <= embedding.start <= embedding.end <= lookup.end
    assert attempts_of(spans, server) == []


def test_a_request_refused_by_a_limit_shows_where_it_stopped(traced, receiver):
    client = traced.openai(key=KEY)
    first = request_id()
    try:
        client.chat.completions.create(model="fast", messages=[{"role": "user", "content": "one"}], extra_headers={"x-request-id": first})
        spans = receiver.trace(by_request(first))
        server = server_of(spans)
        (admission,) = [span for span in children(spans, server) if span.name == "switchyard.admission"]
        assert admission.attributes["switchyard.admission.outcome"] == "admitted" and server.attributes["switchyard.tenant"] == "limited"
        assert server.start <= admission.start <= admission.end <= attempts_of(spans, server)[0].start
    except openai.RateLimitError:
        pass  # this key's one request a minute went in an earlier run of this test
    rid = request_id()
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model="fast", messages=[{"role": "user", "content": "two"}], extra_headers={"x-request-id": rid})
    spans = receiver.trace(by_request(rid))
    server = server_of(spans)
    assert server.attributes["http.response.status_code"] == 429
    assert server.attributes["error.type"] == "rate_limited" and server.attributes["switchyard.tenant"] == "limited"
    assert server.status != "error", "a refusal is the caller's, not a failed server span"
    assert all(KEY not in str(value) for span in spans for value in span.attributes.values()), "the key is never on a span"
    (admission,) = [span for span in children(spans, server) if span.name == "switchyard.admission"]
    assert admission.attributes["switchyard.admission.outcome"] == "refused" and admission.attributes["error.type"] == "rate_limited"
    assert attempts_of(spans, server) == []


def test_anthropic_clients_are_traced_too(traced, receiver):
    rid = request_id()
    client = anthropic.Anthropic(base_url=traced.url, api_key="sk-local-unused", max_retries=0, timeout=20)
    message = client.messages.create(
        model="claude", max_tokens=64, messages=[{"role": "user", "content": "Hello"}], extra_headers={"x-request-id": rid},
    )
    spans = receiver.trace(by_request(rid))
    server = server_of(spans)
    assert server.name == "POST /v1/messages"
    assert server.attributes["gen_ai.provider.name"] == "simulator"
    assert server.attributes["gen_ai.usage.output_tokens"] == message.usage.output_tokens
    (attempt,) = attempts_of(spans, server)
    assert attempt.name == "chat claude-sonnet-4-5-20250929"


def test_content_is_recorded_only_when_the_operator_opts_in(receiver, recorder):
    gateway = traced_gateway("fast", receiver.endpoint, recorder.base_url, capture=True)
    try:
        for stream in (False, True):
            rid = request_id()
            reply = gateway.openai().chat.completions.create(
                model="recorded", messages=[{"role": "user", "content": "a secret prompt"}], stream=stream, extra_headers={"x-request-id": rid},
            )
            if stream:
                list(reply)
            server = server_of(receiver.trace(by_request(rid)))
            assert "a secret prompt" in server.attributes["gen_ai.input.messages"]
            assert "Hi" in server.attributes.get("gen_ai.output.messages", ""), (stream, server.attributes)
    finally:
        gateway.stop()


def test_a_dead_collector_fails_no_request(recorder):
    gateway = traced_gateway("fast", f"http://127.0.0.1:{free_port()}", recorder.base_url)
    try:
        client = gateway.openai()
        for index in range(20):
            answer = client.chat.completions.create(model="fast", messages=[{"role": "user", "content": f"n{index}"}], stream=index % 2 == 1)
            if index % 2 == 1:
                list(answer)
        deadline = time.monotonic() + 15
        while gateway.metric("switchyard_trace_spans_total", 'outcome="failed"') == 0 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert gateway.metric("switchyard_trace_spans_total", 'outcome="failed"') > 0, "the lost spans are counted"
        assert gateway.metric("switchyard_trace_spans_total", 'outcome="exported"') == 0
    finally:
        gateway.stop()


def test_a_slow_collector_costs_spans_not_requests(recorder):
    slow = Receiver(delay=3)
    gateway = traced_gateway("fast", slow.endpoint, recorder.base_url, queue=4)
    try:
        client = gateway.openai()
        for index in range(40):
            client.chat.completions.create(model="fast", messages=[{"role": "user", "content": f"n{index}"}])
        deadline = time.monotonic() + 15
        while gateway.metric("switchyard_trace_spans_total", 'outcome="dropped"') == 0 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert gateway.metric("switchyard_trace_spans_total", 'outcome="dropped"') > 0, "spans past the queue are dropped and counted"
    finally:
        gateway.stop()
        slow.stop()


@pytest.mark.parametrize("lane", ["fast", "framework"])
def test_shared_limits_show_their_redis_round_trip(lane, receiver, recorder):
    port = free_port()
    redis = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    gateway = None
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as connection:
                    connection.sendall(b"PING\r\n")
                    if connection.recv(16).startswith(b"+PONG"):
                        break
            except OSError:
                time.sleep(0.05)
        gateway = traced_gateway(lane, receiver.endpoint, recorder.base_url, redis=port)
        rid = request_id()
        gateway.openai(key=KEY).chat.completions.create(model="fast", messages=[{"role": "user", "content": "one"}], extra_headers={"x-request-id": rid})
        spans = receiver.trace(by_request(rid))
        server = server_of(spans)
        (admission,) = [span for span in children(spans, server) if span.name == "switchyard.admission"]
        assert admission.attributes["switchyard.admission.outcome"] == "admitted"
        (round_trip,) = children(spans, admission)
        assert round_trip.kind == "client" and round_trip.attributes["db.system.name"] == "redis"
        assert admission.start <= round_trip.start <= round_trip.end <= admission.end
    finally:
        if gateway:
            gateway.stop()
        redis.terminate()
        redis.wait(timeout=10)


def test_the_otel_variables_configure_it_and_sample_once(receiver, recorder):
    # No tracing block: the variables alone turn tracing on, name the service and sample half the requests.
    gateway = GatewayProcess(lambda state: f"""
server: {{ listen: 127.0.0.1:0, state_dir: {state} }}
providers: {{ sim: {{ kind: simulator }} }}
routes: {{ fast: {{ targets: [{{ provider: sim, model: gpt-4o-mini }}] }} }}
simulator: {{ ttft: 0ms, tokens_per_second: 0 }}
""", environment={
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, "OTEL_SERVICE_NAME": "from-the-environment",
        "OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.5", "OTEL_RESOURCE_ATTRIBUTES": "team=ai%20platform",
    })
    try:
        client = gateway.openai()
        marker = request_id()
        ids = [f"{marker}-{index}" for index in range(400)]
        for rid in ids:
            client.chat.completions.create(model="fast", messages=[{"role": "user", "content": "Hi"}], extra_headers={"x-request-id": rid})
        # Spans go out a second apart; the last request's batch has arrived once the count stops growing.
        seen, deadline = -1, time.monotonic() + 15
        while time.monotonic() < deadline:
            time.sleep(1.5)
            traced = [span for span in receiver.spans if span.kind == "server" and str(span.attributes.get("switchyard.request_id", "")).startswith(marker)]
            if len(traced) == seen:
                break
            seen = len(traced)
        # Binomial(400, 0.5): 200 ± 50 is five standard deviations; sampling twice would keep about 100.
        assert 150 <= len(traced) <= 250, f"{len(traced)} of 400 traced"
        assert {span.resource["service.name"] for span in traced} == {"from-the-environment"}
        assert {span.resource["team"] for span in traced} == {"ai platform"}
    finally:
        gateway.stop()
