"""The official `anthropic` Python SDK, unchanged, against the gateway's Anthropic Messages ingress.

Requests are translated through the canonical model to the OpenAI-shaped simulator and back.
"""
import anthropic
import openai
import pytest

WEATHER = {"name": "get_weather", "description": "Weather for a city",
           "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}
PIXEL = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="


@pytest.fixture()
def client(gateway_url):
    return anthropic.Anthropic(base_url=gateway_url, api_key="sk-ant-local-unused", max_retries=0, timeout=20)


def ask(text="Hello"):
    return [{"role": "user", "content": text}]


# "fast" is translated to an OpenAI-shaped upstream and back, "local" to Ollama's native API and back,
# "gemini" to Gemini's generateContent and back;
# "claude" passes through to an Anthropic one.
ROUTES = ["fast", "claude", "local", "gemini"]


@pytest.mark.parametrize("route", ROUTES)
def test_non_streaming_message(client, route):
    message = client.messages.create(model=route, max_tokens=256, messages=ask())
    assert message.type == "message" and message.role == "assistant"
    assert message.stop_reason == "end_turn"
    assert message.content[0].type == "text" and message.content[0].text
    assert message.usage.input_tokens > 0 and message.usage.output_tokens > 0


def test_usage_is_exactly_what_the_upstream_reported(client, gateway_url):
    message = client.messages.create(model="fast", max_tokens=256, system="Be brief.", messages=ask("Count me"))
    upstream = openai.OpenAI(base_url=gateway_url + "/v1", api_key="x", max_retries=0).chat.completions.create(
        model="fast", max_tokens=256,
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Count me"}])
    assert message.usage.input_tokens == upstream.usage.prompt_tokens
    assert message.usage.output_tokens == upstream.usage.completion_tokens
    assert message.content[0].text == upstream.choices[0].message.content


@pytest.mark.parametrize("route", ROUTES)
def test_streaming_text_matches_the_whole_message(client, route):
    whole = client.messages.create(model=route, max_tokens=256, messages=ask("Stream me"))
    with client.messages.stream(model=route, max_tokens=256, messages=ask("Stream me")) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == whole.content[0].text
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens == whole.usage.output_tokens
    assert final.usage.input_tokens == whole.usage.input_tokens


@pytest.mark.parametrize("route", ROUTES)
def test_streaming_tool_use_is_reassembled_by_the_sdk(client, route):
    with client.messages.stream(model=route, max_tokens=256, messages=ask("Weather in Paris?"), tools=[WEATHER]) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "tool_use"
    calls = [block for block in final.content if block.type == "tool_use"]
    assert len(calls) == 1 and calls[0].name == "get_weather"
    assert isinstance(calls[0].input, dict) and "city" in calls[0].input


@pytest.mark.parametrize("route", ROUTES)
def test_tool_result_round_trip(client, route):
    first = client.messages.create(model=route, max_tokens=256, messages=ask("Weather in Paris?"), tools=[WEATHER])
    call = next(block for block in first.content if block.type == "tool_use")
    second = client.messages.create(model=route, max_tokens=256, tools=[WEATHER], messages=[
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": first.content},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "18C and sunny"}]},
    ])
    assert second.stop_reason == "end_turn"
    assert second.content[0].type == "text"


def test_base64_images_are_accepted(client):
    message = client.messages.create(model="fast", max_tokens=64, messages=[{"role": "user", "content": [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PIXEL}},
        {"type": "text", "text": "What is this?"}]}])
    assert message.content[0].text


def test_unknown_model_raises_not_found(client):
    with pytest.raises(anthropic.NotFoundError):
        client.messages.create(model="claude-nope", max_tokens=10, messages=ask())


def test_invalid_parameter_raises_bad_request(client):
    with pytest.raises(anthropic.BadRequestError) as raised:
        client.messages.create(model="fast", max_tokens=10, messages=ask(), extra_body={"temperature": 3})
    assert "temperature" in str(raised.value)


@pytest.mark.parametrize("route", ["limited", "claude-limited", "gemini-limited"])
def test_upstream_rate_limit_raises_rate_limit_error(client, route):
    with pytest.raises(anthropic.RateLimitError):
        client.messages.create(model=route, max_tokens=10, messages=ask())


@pytest.mark.parametrize("model", ["cut", "flaky", "claude-cut", "claude-flaky", "gemini-cut"])
def test_a_stream_that_fails_midway_raises(client, model):
    with pytest.raises(anthropic.APIError):
        with client.messages.stream(model=model, max_tokens=64, messages=ask()) as stream:
            for _ in stream:
                pass


def test_count_tokens_estimates_and_grows_with_the_prompt(client):
    short = client.messages.count_tokens(model="fast", messages=ask("Hi"))
    long = client.messages.count_tokens(model="fast", messages=ask("Hi " * 400), tools=[WEATHER])
    assert 0 < short.input_tokens < long.input_tokens


def test_count_tokens_for_an_unknown_model_raises_not_found(client):
    with pytest.raises(anthropic.NotFoundError):
        client.messages.count_tokens(model="nope", messages=ask())


def test_models_lists_the_route_aliases_in_anthropics_shape(client):
    ids = [model.id for model in client.models.list()]
    assert "claude" in ids and "fast" in ids
