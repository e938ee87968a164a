"""The simulator's Responses API (the OpenAI shape, state included), driven by the official SDK: the
upstream the gateway's Responses pass-through is tested against, and the zero-key demo's."""
import os
import re
import subprocess
import time

import openai
import pytest

from gateway_process import BINARY


@pytest.fixture(scope="module")
def simulator():
    with __import__("socket").socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen([BINARY, "simulate", "--port", str(port), "--ttft", "0ms", "--tps", "0"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="sk-simulated", max_retries=0, timeout=10)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            client.models.list()
            break
        except openai.APIConnectionError:
            time.sleep(0.05)
    yield client
    process.terminate()
    process.wait(timeout=10)


TOOLS = [{"type": "function", "name": "get_weather", "description": "The weather in a city.",
          "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]


def test_a_whole_answer_has_text_and_exact_usage(simulator):
    response = simulator.responses.create(model="gpt-4.1-mini", input="Tell me about gateways.")
    assert response.id.startswith("resp_") and response.status == "completed"
    assert response.output_text and response.output[0].type == "message"
    assert response.usage.total_tokens == response.usage.input_tokens + response.usage.output_tokens > 0
    # Deterministic: the same prompt, the same answer.
    assert simulator.responses.create(model="gpt-4.1-mini", input="Tell me about gateways.").output_text == response.output_text


def test_a_stream_is_the_event_sequence_the_sdk_assembles(simulator):
    events = list(simulator.responses.create(model="gpt-4.1-mini", input="Stream please.", stream=True))
    types = [event.type for event in events]
    assert types[:2] == ["response.created", "response.in_progress"] and types[-1] == "response.completed"
    assert [event.sequence_number for event in events] == list(range(len(events)))
    text = "".join(event.delta for event in events if event.type == "response.output_text.delta")
    assert text == events[-1].response.output_text and events[-1].response.usage.output_tokens > 0
    with simulator.responses.stream(model="gpt-4.1-mini", input="Stream please.") as stream:
        final = stream.get_final_response()
    assert final.output_text == text


def test_a_function_calling_loop_over_previous_response_id(simulator):
    first = simulator.responses.create(model="gpt-4.1-mini", input="What is the weather in Paris?", tools=TOOLS)
    (call,) = [item for item in first.output if item.type == "function_call"]
    assert call.name == "get_weather" and call.call_id.startswith("call_")
    second = simulator.responses.create(
        model="gpt-4.1-mini", previous_response_id=first.id, tools=TOOLS,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "sunny, 21 C"}],
    )
    assert second.output_text and not [item for item in second.output if item.type == "function_call"]
    # The kept conversation counts: the follow-up's prompt holds the first turn too.
    alone = simulator.responses.create(
        model="gpt-4.1-mini", tools=TOOLS, input=[{"type": "function_call_output", "call_id": call.call_id, "output": "sunny, 21 C"}],
    )
    assert second.usage.input_tokens > alone.usage.input_tokens


def test_a_stream_of_calls_gives_the_arguments_whole(simulator):
    events = list(simulator.responses.create(model="gpt-4.1-mini", input="Weather in Oslo?", tools=TOOLS, stream=True))
    arguments = "".join(event.delta for event in events if event.type == "response.function_call_arguments.delta")
    (done,) = [event for event in events if event.type == "response.function_call_arguments.done"]
    assert arguments == done.arguments and events[-1].response.output[0].arguments == arguments


def test_kept_responses_are_retrieved_and_deleted_and_unknown_ids_refused(simulator):
    response = simulator.responses.create(model="gpt-4.1-mini", input="Keep me.")
    assert simulator.responses.retrieve(response.id).output_text == response.output_text
    simulator.responses.delete(response.id)
    with pytest.raises(openai.NotFoundError):
        simulator.responses.retrieve(response.id)
    with pytest.raises(openai.BadRequestError) as refused:
        simulator.responses.create(model="gpt-4.1-mini", previous_response_id=response.id, input="Again?")
    assert refused.value.code == "previous_response_not_found" and refused.value.param == "previous_response_id"
    unkept = simulator.responses.create(model="gpt-4.1-mini", input="Forget me.", store=False)
    with pytest.raises(openai.BadRequestError):
        simulator.responses.create(model="gpt-4.1-mini", previous_response_id=unkept.id, input="Again?")


def test_faults_come_as_the_sdk_knows_them(simulator):
    with pytest.raises(openai.RateLimitError):
        simulator.responses.create(model="gpt-4.1-mini:fault=429", input="Hi")
    events = []
    with pytest.raises(Exception):
        for event in simulator.responses.create(model="gpt-4.1-mini:fault=stream-error", input="Hi", stream=True):
            events.append(event)
    assert events and all(event.type != "response.completed" for event in events)
