"""The Responses API passed through to upstreams that serve it: only `model` is rewritten on the way
up (store, encrypted reasoning, built-in tools pass untouched), the answer comes back byte for byte,
whole or event for event, with its usage accounted; a cut stream ends with an error event; a
follow-up goes back to the provider that keeps the response; retrieve, input items, cancel and
delete are asked of it, for the caller's tenant only."""
import json
import os
import secrets
import urllib.request
from http.server import BaseHTTPRequestHandler

import openai
import pytest

from gateway_process import GatewayProcess
from otlp_receiver import LoopbackUpstream

FIXTURES = os.path.join(os.path.dirname(__file__), "../EngineTests/Fixtures/providers")
RECORDED_ID = "resp_6859a4ad7d3c81999e9e02548c91e2a8077218073e9990d3"
KEYS = {"acme": "sk-sy-passthrough-acme-0123456789abcdef", "globex": "sk-sy-passthrough-globex-0123456789abcdef"}


def fixture(name):
    with open(os.path.join(FIXTURES, name), "rb") as handle:
        return handle.read()


class ResponsesUpstream(LoopbackUpstream):
    """An upstream that serves the Responses API from recordings: each answer a recorded one under a
    fresh id, sent in small pieces; every request it got kept as (method, path, body)."""

    def __init__(self):
        self.requests = []
        self.sent = {}
        self.cut = False
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_):
                pass

            def answer(self, status, payload, content_type="application/json"):
                self.send_response(status)
                self.send_header("content-type", content_type)
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                # Small pieces: events and JSON split anywhere.
                for start in range(0, len(payload), 7):
                    self.wfile.write(payload[start:start + 7])
                    self.wfile.flush()

            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("content-length", "0")))
                upstream.requests.append(("POST", self.path, raw))
                if self.path.endswith("/cancel"):
                    return self.answer(400, json.dumps({"error": {"message": "Cannot cancel a response that was not created with background=true.",
                                                                  "type": "invalid_request_error", "param": None, "code": None}}).encode())
                body = json.loads(raw)
                previous = body.get("previous_response_id")
                if previous is not None and previous not in upstream.sent:
                    return self.answer(400, json.dumps({"error": {"message": f"Previous response with id '{previous}' not found.",
                                                                  "type": "invalid_request_error", "param": "previous_response_id",
                                                                  "code": "previous_response_not_found"}}).encode())
                fresh = "resp_" + secrets.token_hex(24)
                if body.get("stream"):
                    payload = fixture("openai-responses-stream-text.sse").replace(RECORDED_ID.encode(), fresh.encode())
                    if upstream.cut:
                        payload = payload[:payload.index(b"event: response.completed")]
                    upstream.sent[fresh] = payload
                    return self.answer(200, payload, "text/event-stream")
                payload = fixture("openai-responses-nonstream-reasoning.json")
                recorded = json.loads(payload)["id"]
                payload = payload.replace(recorded.encode(), fresh.encode())
                upstream.sent[fresh] = payload
                self.answer(200, payload)

            def do_GET(self):
                upstream.requests.append(("GET", self.path, b""))
                identifier = self.path.split("/")[3].split("?")[0]
                if self.path.split("?")[0].endswith("/input_items"):
                    return self.answer(200, json.dumps({"object": "list", "data": [], "first_id": None, "last_id": None, "has_more": False}).encode())
                if identifier not in upstream.sent:
                    return self.answer(404, json.dumps({"error": {"message": f"Response with id '{identifier}' not found.",
                                                                  "type": "invalid_request_error", "param": None, "code": None}}).encode())
                self.answer(200, upstream.sent[identifier])

            def do_DELETE(self):
                upstream.requests.append(("DELETE", self.path, b""))
                identifier = self.path.split("/")[3]
                upstream.sent.pop(identifier, None)
                self.answer(200, json.dumps({"id": identifier, "object": "response", "deleted": True}).encode())

        self.serve(Handler)


CONFIG = """
server: {{ listen: 127.0.0.1:0, state_dir: {state} }}
providers:
  recorded: {{ kind: openai-compatible, base_url: "{upstream}", responses_api: true }}
  sim: {{ kind: simulator }}
  sim-two: {{ kind: simulator }}
  sim-chat: {{ kind: simulator, responses_api: false }}
  sim-claude: {{ kind: simulator, dialect: anthropic }}
prices:
  gpt-4.1: {{ input: 2, output: 8 }}
routes:
  pass: {{ targets: [{{ provider: recorded, model: gpt-4.1 }}] }}
  balanced: {{ targets: [{{ provider: sim, model: gpt-4o-mini }}, {{ provider: sim-two, model: gpt-4o-mini }}] }}
  elsewhere: {{ targets: [{{ provider: sim-claude, model: claude-sonnet-4-5 }}] }}
  chat-only: {{ targets: [{{ provider: sim-chat, model: gpt-4o-mini }}] }}
  cached: {{ cache: {{ ttl: 1h }}, targets: [{{ provider: sim, model: gpt-4o-mini }}] }}
tenants:
  acme: {{ keys: {{ ci: {{ key: "{acme}" }} }} }}
  globex: {{ keys: {{ ci: {{ key: "{globex}" }} }} }}
simulator: {{ ttft: 0ms, tokens_per_second: 0 }}
"""


@pytest.fixture(scope="module")
def upstream():
    server = ResponsesUpstream()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def gateway(upstream):
    process = GatewayProcess(lambda state: CONFIG.format(state=state, upstream=upstream.base_url, **KEYS), lane="framework")
    yield process
    process.stop()


def client(gateway, tenant="acme"):
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key=KEYS[tenant], max_retries=0, timeout=20)


def post(gateway, body, tenant="acme"):
    request = urllib.request.Request(gateway.url + "/v1/responses", data=json.dumps(body).encode(), method="POST",
                                     headers={"content-type": "application/json", "authorization": "Bearer " + KEYS[tenant]})
    with urllib.request.urlopen(request, timeout=20) as response:
        return response.read(), dict(response.headers)


def token_sum(gateway, token_type):
    """gen_ai_client_token_usage's sum for Responses requests to `pass`."""
    wanted = ['gen_ai_operation_name="responses"', 'gen_ai_request_model="pass"', f'gen_ai_token_type="{token_type}"']
    for line in gateway.exposition().splitlines():
        if line.startswith("gen_ai_client_token_usage_sum{") and all(label in line for label in wanted):
            return float(line.split()[-1])
    return 0.0


def test_only_the_model_is_rewritten_on_the_way_up(gateway, upstream):
    body = {
        "model": "pass", "store": False, "include": ["reasoning.encrypted_content"], "reasoning": {"effort": "high", "summary": "auto"},
        "tools": [{"type": "web_search_preview"}, {"type": "code_interpreter", "container": {"type": "auto"}}],
        "input": [
            {"role": "user", "content": [{"type": "input_text", "text": "Search, then think."}]},
            {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "gAAAAB" + "x" * 64},
        ],
        "metadata": {"ticket": "42"}, "service_tier": "flex", "text": {"verbosity": "low"},
    }
    before = len(upstream.requests)
    answer, _ = post(gateway, body)
    method, path, sent = upstream.requests[before]
    assert (method, path) == ("POST", "/v1/responses")
    assert json.loads(sent) == {**body, "model": "gpt-4.1"}
    assert sent == json.dumps(body).encode().replace(b'"model": "pass"', b'"model": "gpt-4.1"')
    assert answer == upstream.sent[json.loads(answer)["id"]]


def test_a_whole_answer_comes_back_as_it_came_with_its_usage_accounted(gateway, upstream):
    recorded = json.loads(fixture("openai-responses-nonstream-reasoning.json"))["usage"]
    inputs, outputs = token_sum(gateway, "input"), token_sum(gateway, "output")
    answer, headers = post(gateway, {"model": "pass", "input": "Think first."})
    assert answer == upstream.sent[json.loads(answer)["id"]]
    assert headers["x-switchyard-provider"] == "recorded"
    assert float(headers["x-switchyard-cost-usd"]) == pytest.approx((recorded["input_tokens"] * 2 + recorded["output_tokens"] * 8) / 1e6)
    assert token_sum(gateway, "input") - inputs == recorded["input_tokens"]
    assert token_sum(gateway, "output") - outputs == recorded["output_tokens"]


def test_a_stream_is_relayed_event_for_event(gateway, upstream):
    inputs, outputs = token_sum(gateway, "input"), token_sum(gateway, "output")
    answer, headers = post(gateway, {"model": "pass", "input": "Stream it.", "stream": True})
    assert headers["Content-Type"].startswith("text/event-stream")
    created = json.loads(answer.split(b"\n")[1][len(b"data: "):])["response"]["id"]
    assert answer == upstream.sent[created]
    with client(gateway).responses.stream(model="pass", input="Stream it.") as stream:
        final = stream.get_final_response()
    assert final.usage.input_tokens == 10 and final.usage.output_tokens == 62
    assert token_sum(gateway, "input") - inputs == 20 and token_sum(gateway, "output") - outputs == 124


def test_a_cut_stream_ends_with_an_error_event_never_a_completion(gateway, upstream):
    upstream.cut = True
    try:
        answer, _ = post(gateway, {"model": "pass", "input": "Stream it.", "stream": True})
        with pytest.raises(openai.APIError):
            with client(gateway).responses.stream(model="pass", input="Stream it.") as stream:
                for _ in stream:
                    pass
    finally:
        upstream.cut = False
    events = [json.loads(block.split("data: ", 1)[1]) for block in answer.decode().split("\n\n") if block.strip()]
    assert "response.completed" not in [event["type"] for event in events]
    last, before = events[-1], events[-2]
    assert last["type"] == "error" and last["sequence_number"] == before["sequence_number"] + 1
    assert "before response.completed" in last["error"]["message"]


def test_a_follow_up_goes_back_to_the_provider_that_keeps_the_response(gateway):
    api = client(gateway)
    first = api.responses.with_raw_response.create(model="balanced", input="Remember the number 7.")
    provider = first.headers["x-switchyard-provider"]
    previous = first.parse().id
    for turn in range(12):
        answer = api.responses.with_raw_response.create(model="balanced", input=f"Turn {turn}.", previous_response_id=previous)
        assert answer.headers["x-switchyard-provider"] == provider
        previous = answer.parse().id
        assert answer.parse().previous_response_id is not None


def test_a_follow_up_on_a_route_that_does_not_reach_the_keeper_is_refused_clearly(gateway):
    first = client(gateway).responses.create(model="balanced", input="Hello.")
    with pytest.raises(openai.BadRequestError) as refused:
        client(gateway).responses.create(model="elsewhere", input="Go on.", previous_response_id=first.id)
    assert refused.value.code == "previous_response_not_found" and "does not route to" in refused.value.message


def test_a_conversation_the_gateway_keeps_continues_on_a_responses_upstream(gateway):
    api = client(gateway)
    first = api.responses.create(model="elsewhere", input="My name is Ada.")
    assert len(first.id) == len("resp_") + 48
    second = api.responses.create(model="balanced", input="What is my name?", previous_response_id=first.id)
    assert second.previous_response_id == first.id and second.output_text
    assert [item.type for item in api.responses.input_items.list(second.id).data][-1] == "message"


def test_a_chat_only_upstream_gets_a_translation(gateway):
    response = client(gateway).responses.create(model="chat-only", input="Hello.")
    assert len(response.id) == len("resp_") + 48 and response.output_text


def test_retrieve_input_items_cancel_and_delete_ask_the_upstream_for_the_callers_tenant_only(gateway, upstream):
    acme, globex = client(gateway, "acme"), client(gateway, "globex")
    response = acme.responses.create(model="pass", input="Keep me.")
    assert acme.responses.retrieve(response.id).id == response.id
    assert acme.responses.input_items.list(response.id).data == []
    assert ("GET", f"/v1/responses/{response.id}/input_items", b"") in upstream.requests
    with pytest.raises(openai.BadRequestError) as refused:
        acme.responses.cancel(response.id)
    assert "background" in refused.value.message
    for call in (globex.responses.retrieve, globex.responses.delete, globex.responses.cancel, globex.responses.input_items.list):
        with pytest.raises(openai.NotFoundError):
            call(response.id)
    acme.responses.delete(response.id)
    assert ("DELETE", f"/v1/responses/{response.id}", b"") in upstream.requests
    with pytest.raises(openai.NotFoundError):
        acme.responses.retrieve(response.id)


def test_a_response_the_gateway_made_cannot_be_cancelled(gateway):
    response = client(gateway).responses.create(model="elsewhere", input="Hello.")
    with pytest.raises(openai.BadRequestError) as refused:
        client(gateway).responses.cancel(response.id)
    assert "background" in refused.value.message


@pytest.mark.parametrize("model", ["pass", "elsewhere"])
def test_background_mode_is_refused_with_the_reason(gateway, model):
    with pytest.raises(openai.BadRequestError) as refused:
        client(gateway).responses.create(model=model, input="Later.", background=True)
    assert refused.value.param == "background" and "accounted" in refused.value.message


def test_an_unknown_previous_response_is_refused_before_any_upstream_call(gateway, upstream):
    before = len(upstream.requests)
    with pytest.raises(openai.BadRequestError) as refused:
        client(gateway).responses.create(model="pass", input="Go on.", previous_response_id="resp_unknown_to_us")
    assert refused.value.code == "previous_response_not_found" and len(upstream.requests) == before


def test_the_cache_answers_a_repeated_request_with_a_response_of_its_own(gateway):
    api = client(gateway)
    question = "Cache me " + secrets.token_hex(4)
    first = api.responses.with_raw_response.create(model="cached", input=question, temperature=0)
    assert first.headers["x-switchyard-cache"] == "miss"
    again = api.responses.with_raw_response.create(model="cached", input=question, temperature=0, store=True)
    assert again.headers["x-switchyard-cache"] == "hit"
    assert again.parse().id != first.parse().id and again.parse().output_text == first.parse().output_text
    assert again.parse().usage.output_tokens == first.parse().usage.output_tokens
    with api.responses.stream(model="cached", input=question, temperature=0) as stream:
        streamed = stream.get_final_response()
    assert streamed.output_text == first.parse().output_text and streamed.id not in (first.parse().id, again.parse().id)
    # A cached answer is kept like any other: it can be read and continued.
    assert api.responses.retrieve(again.parse().id).output_text == first.parse().output_text
    follow = api.responses.create(model="cached", input="And then?", previous_response_id=again.parse().id, temperature=0)
    assert follow.previous_response_id == again.parse().id and follow.output_text
    with pytest.raises(openai.NotFoundError):
        client(gateway, "globex").responses.retrieve(again.parse().id)


def test_a_request_only_an_upstream_can_answer_is_never_cached(gateway):
    api = client(gateway)
    question = "Search " + secrets.token_hex(4)
    for _ in range(2):
        answer = api.responses.with_raw_response.create(model="cached", input=question, temperature=0, tools=[{"type": "web_search_preview"}])
        assert answer.headers.get("x-switchyard-cache") == "bypass"
