"""The official `openai` Python SDK, unchanged, against the gateway and its simulated providers."""
import base64
import json
import struct

import openai
import pytest

WEATHER_TOOLS = [
    {"type": "function", "function": {"name": "get_weather", "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}},
    {"type": "function", "function": {"name": "get_stock_price", "parameters": {
        "type": "object", "properties": {"ticker": {"type": "string"}}, "required": ["ticker"]}}},
]


@pytest.fixture()
def client(gateway_url):
    return openai.OpenAI(base_url=gateway_url + "/v1", api_key="sk-local-unused", max_retries=0, timeout=20)


def ask(text="Hello"):
    return [{"role": "user", "content": text}]


# "fast" is the fast path to an OpenAI-shaped upstream; "claude" is translated to an Anthropic one and back.
UPSTREAM_MODEL = {"fast": "gpt-4o-mini-2024-07-18", "claude": "claude-sonnet-4-5-20250929", "local": "llama3.2:latest",
                  "gemini": "gemini-2.5-flash"}
ROUTES = ["fast", "claude", "local", "gemini"]


@pytest.mark.parametrize("route", ROUTES)
def test_non_streaming_chat(client, route):
    completion = client.chat.completions.create(model=route, messages=ask())
    assert completion.model == UPSTREAM_MODEL[route]
    assert completion.choices[0].finish_reason == "stop"
    assert completion.choices[0].message.content
    assert completion.usage.prompt_tokens > 0
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + completion.usage.completion_tokens


def test_raw_response_carries_gateway_headers(client):
    raw = client.chat.completions.with_raw_response.create(model="fast", messages=ask())
    assert raw.headers["x-request-id"]
    assert int(raw.headers["x-switchyard-overhead-us"]) >= 0


@pytest.mark.parametrize("route", ROUTES)
def test_streaming_text_and_exact_usage(client, route):
    whole = client.chat.completions.create(model=route, messages=ask("Stream me"))
    stream = client.chat.completions.create(
        model=route, messages=ask("Stream me"), stream=True, stream_options={"include_usage": True})
    text, usage, finish = "", None, None
    for chunk in stream:
        if chunk.usage:
            usage = chunk.usage
        for choice in chunk.choices:
            text += choice.delta.content or ""
            finish = choice.finish_reason or finish
    assert text == whole.choices[0].message.content
    assert finish == "stop"
    assert usage is not None and usage.completion_tokens == whole.usage.completion_tokens
    assert usage.prompt_tokens == whole.usage.prompt_tokens


@pytest.mark.parametrize("route", ROUTES)
def test_streaming_without_usage_request_sends_no_empty_choices_chunk(client, route):
    stream = client.chat.completions.create(model=route, messages=ask(), stream=True)
    chunks = list(stream)
    # A naive `chunk.choices[0]` must not crash: the usage chunk we asked for upstream is not forwarded.
    assert all(chunk.choices for chunk in chunks)
    assert all(chunk.usage is None for chunk in chunks)


@pytest.mark.parametrize("route", ROUTES)
def test_streaming_parallel_tool_calls_are_reassembled_by_the_sdk(client, route):
    with client.chat.completions.stream(model=route, messages=ask("Weather in Paris and AAPL?"), tools=WEATHER_TOOLS) as stream:
        for _ in stream:
            pass
        final = stream.get_final_completion()
    calls = final.choices[0].message.tool_calls
    assert final.choices[0].finish_reason == "tool_calls"
    assert [call.function.name for call in calls] == ["get_weather", "get_stock_price"]
    assert "city" in json.loads(calls[0].function.arguments)
    assert "ticker" in json.loads(calls[1].function.arguments)
    assert all(call.id for call in calls) and len({call.id for call in calls}) == 2


@pytest.mark.parametrize("route", ROUTES)
def test_tool_results_round_trip(client, route):
    first = client.chat.completions.create(model=route, messages=ask("Weather in Paris and AAPL?"), tools=WEATHER_TOOLS)
    message = first.choices[0].message
    history = ask("Weather in Paris and AAPL?") + [message.model_dump(exclude_none=True)] + [
        {"role": "tool", "tool_call_id": call.id, "content": "ok"} for call in message.tool_calls]
    second = client.chat.completions.create(model=route, messages=history, tools=WEATHER_TOOLS)
    assert second.choices[0].finish_reason == "stop"
    assert second.choices[0].message.content


PIXEL = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="


@pytest.mark.parametrize("route", ROUTES)
def test_images_as_data_urls(client, route):
    completion = client.chat.completions.create(model=route, messages=[{"role": "user", "content": [
        {"type": "text", "text": "What is in this image?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64," + PIXEL}}]}])
    assert completion.choices[0].message.content
    # The simulators count an image as 85 prompt tokens, whichever dialect carried it.
    assert completion.usage.prompt_tokens > 85


def test_unknown_model_raises_not_found(client):
    with pytest.raises(openai.NotFoundError) as raised:
        client.chat.completions.create(model="no-such-model", messages=ask())
    assert "fast" in str(raised.value)


def test_bad_parameter_raises_bad_request(client):
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="fast", messages=ask(), stream_options={"include_usage": "yes"}, stream=True)


@pytest.mark.parametrize("route", ["limited", "claude-limited", "gemini-limited"])
def test_upstream_rate_limit_raises_rate_limit_error(client, route):
    with pytest.raises(openai.RateLimitError) as raised:
        client.chat.completions.create(model=route, messages=ask())
    assert raised.value.response.headers["retry-after"] == "1"


def test_upstream_server_error_raises_internal_server_error(client):
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model="broken", messages=ask())


@pytest.mark.parametrize("model", ["cut", "flaky", "claude-cut", "claude-flaky", "gemini-cut"])
def test_a_stream_that_fails_midway_raises_instead_of_ending_cleanly(client, model):
    stream = client.chat.completions.create(model=model, messages=ask(), stream=True)
    with pytest.raises(openai.APIError):
        for _ in stream:
            pass


@pytest.mark.parametrize("route,upstream", [
    ("embedder", "text-embedding-3-small"), ("local-embed", "nomic-embed-text"), ("gemini-embed", "text-embedding-004")])
def test_embeddings(client, route, upstream):
    result = client.embeddings.create(model=route, input=["hello world", "hello there"], dimensions=64)
    assert [item.index for item in result.data] == [0, 1]
    assert all(len(item.embedding) == 64 for item in result.data)
    assert result.model == upstream
    assert result.usage.prompt_tokens > 0


@pytest.mark.parametrize("route", ["embedder", "local-embed", "gemini-embed"])
def test_embeddings_as_base64_decode_to_the_same_vectors(client, route):
    floats = client.embeddings.create(model=route, input="hello", dimensions=8)
    encoded = client.embeddings.create(model=route, input="hello", dimensions=8, encoding_format="base64")
    vector = encoded.data[0].embedding
    if isinstance(vector, str):  # the SDK hands back what was asked for
        vector = list(struct.unpack("<8f", base64.b64decode(vector)))
    assert vector == pytest.approx(floats.data[0].embedding)


def test_models_lists_the_route_aliases(client):
    assert {model.id for model in client.models.list()} == {
        "fast", "limited", "broken", "cut", "flaky", "embedder", "claude", "claude-limited", "claude-cut", "claude-flaky",
        "local", "local-embed", "gemini", "gemini-limited", "gemini-cut", "gemini-embed"}
