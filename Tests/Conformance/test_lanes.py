"""Which lane served: the fast lane counts what it answers, and with `server.fast_lane: false` it answers nothing."""
import openai


def test_the_switch_decides_which_lane_serves_chat_completions(gateway):
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key="sk-local-unused", max_retries=0, timeout=20)
    served_before, skipped_before = gateway.metrics()
    client.chat.completions.create(model="fast", messages=[{"role": "user", "content": "Hello"}])
    for _ in client.chat.completions.create(model="fast", messages=[{"role": "user", "content": "Hello"}], stream=True):
        pass
    served, skipped = gateway.metrics()
    if gateway.lane == "fast":
        assert served - served_before == 2, f"fast-lane requests {served_before} -> {served}, skipped {skipped}"
    else:
        # Nothing in this session reached the fast lane, and every request was left to the framework as `disabled`.
        assert served == 0, f"fast-lane requests: {served}"
        assert skipped.get("disabled", 0) - skipped_before.get("disabled", 0) >= 2, f"skipped {skipped_before} -> {skipped}"
