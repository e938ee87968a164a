"""The Responses API through the gateway, with the official SDK: translated to OpenAI-, Anthropic-,
Gemini- and Ollama-shaped simulators, whole and streamed, a function-calling loop over
`previous_response_id` kept by the gateway, exact usage, tenants kept apart, broken streams failed."""
import json
import secrets

import openai
import pytest

from gateway_process import GatewayProcess

KEYS = {"acme": "sk-sy-responses-acme-0123456789abcdef", "globex": "sk-sy-responses-globex-0123456789abcdef"}

CONFIG = """
server: {{ listen: 127.0.0.1:0, state_dir: {state} }}
providers:
  sim: {{ kind: simulator }}
  sim-claude: {{ kind: simulator, dialect: anthropic }}
  sim-gemini: {{ kind: simulator, dialect: gemini }}
  sim-local: {{ kind: simulator, dialect: ollama }}
routes:
  fast: {{ targets: [{{ provider: sim, model: gpt-4o-mini }}] }}
  claude: {{ targets: [{{ provider: sim-claude, model: claude-sonnet-4-5 }}] }}
  gemini: {{ targets: [{{ provider: sim-gemini, model: gemini-2.5-flash }}] }}
  local: {{ targets: [{{ provider: sim-local, model: "llama3.2:latest" }}] }}
  cut: {{ targets: [{{ provider: sim-claude, model: "c:fault=cut" }}] }}
tenants:
  acme: {{ keys: {{ ci: {{ key: "{acme}" }} }} }}
  globex: {{ keys: {{ ci: {{ key: "{globex}" }} }} }}
simulator: {{ ttft: 0ms, tokens_per_second: 0 }}
"""

MODELS = ["fast", "claude", "gemini", "local"]
TOOLS = [{"type": "function", "name": "get_weather", "description": "The weather in a city.",
          "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]


@pytest.fixture(scope="module")
def gateway():
    process = GatewayProcess(lambda state: CONFIG.format(state=state, **KEYS), lane="framework")
    yield process
    process.stop()


def client(gateway, tenant="acme"):
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key=KEYS[tenant], max_retries=0, timeout=20)


@pytest.mark.parametrize("model", MODELS)
def test_a_whole_answer_with_the_usage_chat_reports(gateway, model):
    response = client(gateway).responses.create(model=model, input="Tell me about gateways.")
    assert response.id.startswith("resp_") and response.status == "completed" and response.output_text
    chat = client(gateway).chat.completions.create(model=model, messages=[{"role": "user", "content": "Tell me about gateways."}])
    assert response.output_text == chat.choices[0].message.content
    assert (response.usage.input_tokens, response.usage.output_tokens) == (chat.usage.prompt_tokens, chat.usage.completion_tokens)
    assert response.usage.total_tokens == response.usage.input_tokens + response.usage.output_tokens


@pytest.mark.parametrize("model", MODELS)
def test_a_stream_is_the_event_sequence_the_sdk_assembles(gateway, model):
    with client(gateway).responses.stream(model=model, input="Stream please.", instructions="Be brief.") as stream:
        events = list(stream)
        final = stream.get_final_response()
    types = [event.type for event in events]
    assert types[:2] == ["response.created", "response.in_progress"] and types[-1] == "response.completed"
    assert [event.sequence_number for event in events] == list(range(len(events)))
    assert "".join(event.delta for event in events if event.type == "response.output_text.delta") == final.output_text
    assert final.usage.output_tokens > 0 and final.instructions == "Be brief."


@pytest.mark.parametrize("model", MODELS)
def test_a_function_calling_loop_over_previous_response_id(gateway, model):
    api = client(gateway)
    first = api.responses.create(model=model, input="What is the weather in Paris?", tools=TOOLS)
    (call,) = [item for item in first.output if item.type == "function_call"]
    assert call.name == "get_weather" and json.loads(call.arguments)
    second = api.responses.create(
        model=model, previous_response_id=first.id, tools=TOOLS,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "sunny, 21 C"}],
    )
    assert second.output_text and second.previous_response_id == first.id
    # The kept conversation went upstream: the follow-up's prompt holds the first turn too.
    alone = api.responses.create(model=model, tools=TOOLS, input=[{"type": "function_call_output", "call_id": call.call_id, "output": "sunny, 21 C"}])
    assert second.usage.input_tokens > alone.usage.input_tokens


def test_structured_output_and_options_are_carried(gateway):
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"], "additionalProperties": False}
    response = client(gateway).responses.create(
        model="claude", input="Largest city in France?", max_output_tokens=64, temperature=0.2,
        text={"format": {"type": "json_schema", "name": "City", "schema": schema, "strict": True}},
    )
    assert response.status in ("completed", "incomplete") and response.text.format.type == "json_schema"
    assert response.max_output_tokens == 64 and response.temperature == 0.2


def test_kept_responses_are_read_deleted_and_kept_from_other_tenants(gateway):
    acme, globex = client(gateway, "acme"), client(gateway, "globex")
    response = acme.responses.create(model="fast", input="Keep me " + secrets.token_hex(3))
    assert acme.responses.retrieve(response.id).output_text == response.output_text
    items = acme.responses.input_items.list(response.id)
    assert [item.type for item in items.data] == ["message"] and items.data[0].content[0].text.startswith("Keep me")
    # Another tenant's id is unknown to it: not found, and no conversation to continue.
    with pytest.raises(openai.NotFoundError):
        globex.responses.retrieve(response.id)
    with pytest.raises(openai.BadRequestError) as refused:
        globex.responses.create(model="fast", previous_response_id=response.id, input="Again?")
    assert refused.value.code == "previous_response_not_found" and refused.value.param == "previous_response_id"
    acme.responses.delete(response.id)
    with pytest.raises(openai.NotFoundError):
        acme.responses.retrieve(response.id)
    unkept = acme.responses.create(model="fast", input="Forget me.", store=False)
    with pytest.raises(openai.BadRequestError):
        acme.responses.create(model="fast", previous_response_id=unkept.id, input="Again?")


def test_a_streamed_answer_is_kept_before_its_last_event(gateway):
    api = client(gateway)
    events = list(api.responses.create(model="claude", input="Stream and keep.", stream=True))
    completed = events[-1].response
    # Followed up the moment the stream ended.
    follow = api.responses.create(model="claude", previous_response_id=completed.id, input="And then?")
    assert follow.output_text and api.responses.retrieve(completed.id).output_text == completed.output_text


def test_a_cut_upstream_stream_is_an_error_never_a_completion(gateway):
    events = []
    with pytest.raises(Exception):
        for event in client(gateway).responses.create(model="cut", input="Hello", stream=True):
            events.append(event)
    assert all(event.type not in ("response.completed", "response.incomplete") for event in events)


def test_what_cannot_be_carried_is_a_400_in_the_responses_shape(gateway):
    with pytest.raises(openai.BadRequestError) as refused:
        client(gateway).responses.create(model="claude", input="Search the web", tools=[{"type": "web_search"}])
    assert refused.value.param == "tools[0]"


def test_input_tokens_are_an_estimate_marked_as_one(gateway):
    raw = client(gateway).responses.input_tokens.with_raw_response.count(model="fast", input="How many tokens is this?")
    assert raw.headers["x-switchyard-estimate"] == "true" and raw.parse().input_tokens > 0


def sent_to(gateway, provider):
    """Requests that reached `provider`, whatever their outcome."""
    return sum(float(line.split()[-1]) for line in gateway.exposition().splitlines()
               if line.startswith("switchyard_requests_total{") and f'provider="{provider}"' in line)


def test_a_kept_conversation_past_16_mib_is_refused_before_any_upstream_call(gateway):
    api = client(gateway)
    chunk = "word " * (1 << 20)  # 5 MiB of input a turn; the kept conversation grows by it each time
    previous = None
    for turn in range(3):
        response = api.responses.create(model="claude", input=chunk, previous_response_id=previous)
        previous = response.id
    requests_before = sent_to(gateway, "sim-claude")
    with pytest.raises(openai.BadRequestError) as refused:
        api.responses.create(model="claude", input=chunk, previous_response_id=previous)
    assert refused.value.param == "previous_response_id" and "16 MiB" in refused.value.message
    assert sent_to(gateway, "sim-claude") == requests_before
    # Without keeping it, the conversation can still be continued once more.
    assert api.responses.create(model="claude", input="Short.", previous_response_id=previous, store=False).output_text
