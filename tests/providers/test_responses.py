"""OpenAI's Responses API (``POST /v1/responses``) against the fake, the official SDK as the oracle.

The ``openai`` backend asks the Responses-only models there (the catalogue's
``responses`` capability, or a name the rule recognises), or every model with
``backends.openai.api: responses``; compatible servers keep Chat Completions.
"""

from __future__ import annotations

import json

import pytest

import ttt_magic
from tests.fakes import SENTINEL_KEY, collect, run
from tests.fakes.openai_fake import OpenAIFake
from ttt_magic import configure
from ttt_magic.backends import responses
from ttt_magic.backends.openai import OpenAIBackend, OpenAICompatibleBackend, OpenRouterBackend
from ttt_magic.errors import ProviderError
from ttt_magic.models import StreamEnd
from ttt_magic.registry import model_registry
from ttt_magic.secrets import Secret


def backend_for(fake: OpenAIFake, **extra) -> OpenAIBackend:
    config = {"openai_base_url": fake.base_url, "openai_api_key": Secret(SENTINEL_KEY), "timeout": 5.0}
    config.update(extra)
    return OpenAIBackend(config)


def stream(backend, prompt="Hi", **kwargs):
    return run(collect(backend.astream(prompt, **kwargs)))


def responses_requests(fake) -> list:
    return [r for r in fake.requests if r.path.endswith("/responses")]


# --------------------------------------------------------------------------- which API


@pytest.mark.parametrize(
    ("model", "api"),
    [
        ("o3-pro", "responses"),
        ("gpt-5-pro", "responses"),
        ("gpt-5-codex", "responses"),
        ("codex-mini-latest", "responses"),
        ("openai/o1-pro", "responses"),
        ("gpt-7-codex", "responses"),  # not catalogued: the name rule
        ("gpt-5.5-pro-2026-04-23", "responses"),
        ("gpt-4o-mini", "chat"),
        ("o3", "chat"),
        ("gpt-5", "chat"),
    ],
)
def test_the_api_is_chosen_per_model(model, api):
    assert OpenAIBackend({}).api_for(model) == api


def test_the_api_setting_overrides_and_compatible_servers_keep_chat():
    assert OpenAIBackend({"api": "responses"}).api_for("gpt-4o-mini") == "responses"
    assert OpenAIBackend({"api": "chat"}).api_for("o3-pro") == "chat"
    assert OpenAICompatibleBackend({"name": "lab", "base_url": "http://x/v1"}).api_for("o3-pro") == "chat"
    assert OpenRouterBackend({}).api_for("openai/o3-pro") == "chat"
    lab = OpenAICompatibleBackend({"name": "lab", "base_url": "http://x/v1", "api": "responses"})
    assert lab.api_for("anything") == "responses"


def test_responses_only_models_are_catalogued_and_marked():
    for name in ("o3-pro", "o1-pro", "gpt-5-pro", "gpt-5-codex", "gpt-5.1-codex", "codex-mini-latest"):
        info = model_registry.get_model(name)
        assert info is not None and info.provider == "openai" and "responses" in info.capabilities, name
        assert info.cost(1_000_000, 1_000_000) is not None
    assert "responses" not in model_registry.get_model("gpt-4o-mini").capabilities


# --------------------------------------------------------------------------- the request


def test_build_request_shape():
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello."},
        {"role": "user", "content": "Again"},
    ]
    body = responses.build_request(
        messages, model="gpt-4o-mini", temperature=0.2, max_tokens=50, stream=True, schema={"type": "object"}
    )
    assert body["instructions"] == "Be brief."
    assert body["input"] == [dict(m) for m in messages[1:]]
    assert (body["temperature"], body["max_output_tokens"], body["stream"], body["store"]) == (
        0.2,
        50,
        True,
        False,
    )
    assert body["text"]["format"] == {
        "type": "json_schema",
        "name": "answer",
        "schema": {"type": "object"},
        "strict": False,
    }
    assert "messages" not in body and "max_tokens" not in body
    thinking = responses.build_request(
        messages[1:2], model="o3-pro", temperature=0.2, reasoning=True, effort="high"
    )
    assert "temperature" not in thinking and "instructions" not in thinking
    assert thinking["reasoning"] == {"effort": "high"}


def test_image_parts_become_input_images():
    _, items = responses.to_input(
        [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What?"},
                    {"type": "image", "mime_type": "image/png", "data": b"\x89PNG"},
                ],
            }
        ]
    )
    assert items[0]["content"][0] == {"type": "input_text", "text": "What?"}
    assert items[0]["content"][1] == {"type": "input_image", "image_url": "data:image/png;base64,iVBORw=="}


# --------------------------------------------------------------------------- streamed and not


def test_stream_text_usage_cost_and_request(openai_fake):
    parts, end, error = stream(
        backend_for(openai_fake),
        "Say hello",
        model="o3-pro",
        system="Be brief.",
        temperature=0.3,
        max_tokens=99,
    )
    assert error is None
    assert parts == ["Hello", ", ", "world", "!"]
    assert isinstance(end, StreamEnd)
    assert (end.model, end.tokens_in, end.tokens_out, end.finish_reason) == ("o3-pro", 12, 4, "stop")
    assert end.cost == pytest.approx(model_registry.get_model("o3-pro").cost(12, 4))
    assert end.metadata["api"] == "responses" and end.metadata["response_id"] == "resp_fake123"
    req = openai_fake.last
    assert (req.method, req.path) == ("POST", "/v1/responses")
    assert req.headers["authorization"] == f"Bearer {SENTINEL_KEY}"
    body = req.json
    assert body["instructions"] == "Be brief." and body["input"] == [{"role": "user", "content": "Say hello"}]
    assert body["max_output_tokens"] == 99 and body["stream"] is True
    assert "temperature" not in body  # a reasoning model takes only its default


def test_not_streamed(openai_fake):
    answer = run(backend_for(openai_fake).ask("Hi", model="gpt-5-pro"))
    assert answer.succeeded and answer == "Hello, world!"
    assert (answer.tokens_in, answer.tokens_out, answer.metadata["finish_reason"]) == (12, 4, "stop")
    assert openai_fake.last.path == "/v1/responses" and "stream" not in openai_fake.last.json


def test_any_model_through_responses_when_configured(openai_fake):
    parts, _end, error = stream(
        backend_for(openai_fake, api="responses"), model="gpt-4o-mini", temperature=0.4
    )
    assert error is None and "".join(parts) == "Hello, world!"
    assert openai_fake.last.path == "/v1/responses" and openai_fake.last.json["temperature"] == 0.4


def test_reasoning_tokens_and_summary(openai_fake):
    openai_fake.reasoning_tokens = 3
    openai_fake.reasoning_summary = "Greeting asked for."
    parts, end, error = stream(backend_for(openai_fake), model="o3-pro")
    assert error is None and "".join(parts) == "Hello, world!"
    assert end.metadata["reasoning_tokens"] == 3
    assert end.reasoning == "Greeting asked for."


def test_effort_goes_to_reasoning_effort(openai_fake):
    configure(openai_base_url=openai_fake.base_url, openai_api_key=SENTINEL_KEY)
    answer = ttt_magic.ask("Hi", backend="openai", model="o3-pro", effort="high")
    assert answer.succeeded, answer.error
    assert openai_fake.last.json["reasoning"] == {"effort": "high"}
    ttt_magic.ask("Hi", backend="openai", model="o3", effort="low")
    assert openai_fake.last.json["reasoning_effort"] == "low"  # Chat Completions' name for it


def test_incomplete_is_a_length_finish(openai_fake):
    openai_fake.fail_next("incomplete")
    parts, end, error = stream(backend_for(openai_fake), model="o3-pro", max_tokens=4)
    assert error is None and "".join(parts) == "Hello, world!"
    assert end.finish_reason == "length" and end.metadata["incomplete_reason"] == "max_output_tokens"
    openai_fake.fail_next("incomplete")
    answer = run(backend_for(openai_fake).ask("Hi", model="o3-pro", max_tokens=4))
    assert answer.succeeded and answer.metadata["truncated"] is True


@pytest.mark.parametrize(
    ("kind", "expected", "retryable", "text"),
    [
        ("failed", "stream_error", True, "Hello, world!"),
        ("error_event", "stream_error", True, "Hello"),
        ("truncated", "truncated", True, "Hello, world!"),
        ("malformed", "malformed", True, "Hello"),
        ("reset", "connection", True, "Hello"),
        ("empty", "empty", False, ""),
    ],
)
def test_stream_faults(openai_fake, kind, expected, retryable, text):
    openai_fake.fail_next(kind, after=5)
    parts, end, error = stream(backend_for(openai_fake), model="o3-pro")
    assert end is None and isinstance(error, ProviderError)
    assert (error.kind, error.retryable) == (expected, retryable), error
    assert "".join(parts) == text
    assert SENTINEL_KEY not in str(error)


def test_a_failed_or_empty_body_unstreamed(openai_fake):
    openai_fake.fail_next("failed")
    answer = run(backend_for(openai_fake).ask("Hi", model="o3-pro"))
    assert answer.failed and "The model failed" in answer.error
    openai_fake.fail_next("empty")
    answer = run(backend_for(openai_fake).ask("Hi", model="o3-pro"))
    assert answer.failed and "empty body" in answer.error


@pytest.mark.parametrize("streamed", [True, False])
def test_a_refusal_fails_with_its_text_kept(openai_fake, streamed):
    openai_fake.refusal = "I can't help with that."
    configure(openai_base_url=openai_fake.base_url, openai_api_key=SENTINEL_KEY)
    if streamed:
        chunks = ttt_magic.stream("bad", backend="openai", model="o3-pro")
        assert "".join(chunks) == "I can't help with that."
        answer = chunks.response
    else:
        answer = ttt_magic.ask("bad", backend="openai", model="o3-pro")
    assert answer.failed and "refused" in answer.error and answer.text == "I can't help with that."
    assert answer.tokens_out == 4


def test_a_schema_is_sent_as_text_format_and_the_answer_parsed(openai_fake):
    openai_fake.answer = ['{"city": ', '"Oslo"}']
    configure(openai_base_url=openai_fake.base_url, openai_api_key=SENTINEL_KEY)
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    answer = ttt_magic.ask("Capital of Norway?", backend="openai", model="o3-pro", schema=schema)
    assert answer.succeeded, answer.error
    assert answer.data == {"city": "Oslo"}
    sent = openai_fake.last.json["text"]["format"]
    assert sent["type"] == "json_schema" and sent["schema"]["properties"] == schema["properties"]


def test_chat_only_parameters_are_refused_before_sending(openai_fake):
    _, _, error = stream(backend_for(openai_fake), model="o3-pro", stop=["\n"], seed=1)
    assert (error.kind, error.retryable) == ("bad_request", False)
    assert "stop=" in str(error) and "seed=" in str(error)
    assert responses_requests(openai_fake) == []


def test_a_responses_only_model_sent_to_chat_says_which_api(openai_fake):
    _, _, error = stream(backend_for(openai_fake, api="chat"), model="o3-pro")
    assert (error.status, error.kind) == (404, "wrong_api")
    assert "Responses API" in str(error) and "backends.openai.api" in error.hint


def test_through_the_cloud_backend(openai_fake):
    configure(openai_base_url=openai_fake.base_url, openai_api_key=SENTINEL_KEY)
    answer = ttt_magic.ask("Hi", model="o3-pro")
    assert answer.succeeded and answer == "Hello, world!", answer.error
    assert openai_fake.last.path == "/v1/responses"
    chunks = ttt_magic.stream("Hi", model="gpt-5-codex")
    assert "".join(chunks) == "Hello, world!" and chunks.response.tokens_out == 4


# --------------------------------------------------------------------------- SDK oracle


def test_official_sdk_reads_the_fake_like_we_do(openai_fake):
    import openai

    openai_fake.reasoning_tokens = 2
    client = openai.OpenAI(base_url=openai_fake.base_url, api_key=SENTINEL_KEY, max_retries=0)
    sdk_parts, sdk_usage, sdk_types = [], None, []
    for event in client.responses.create(model="o3-pro", input="Hi", instructions="Be brief.", stream=True):
        sdk_types.append(event.type)
        if event.type == "response.output_text.delta":
            sdk_parts.append(event.delta)
        elif event.type == "response.completed":
            usage = event.response.usage
            sdk_usage = (
                usage.input_tokens,
                usage.output_tokens,
                usage.output_tokens_details.reasoning_tokens,
            )
            assert event.response.output_text == openai_fake.text
    sdk_request = openai_fake.last
    parts, end, _ = stream(backend_for(openai_fake), model="o3-pro", system="Be brief.")
    assert "".join(sdk_parts) == "".join(parts) == openai_fake.text
    assert sdk_usage == (end.tokens_in, end.tokens_out, end.metadata["reasoning_tokens"])
    assert sdk_types[0] == "response.created" and sdk_types[-1] == "response.completed"
    assert sdk_request.path == openai_fake.last.path
    assert sdk_request.json["instructions"] == openai_fake.last.json["instructions"]

    whole = client.responses.create(model="o3-pro", input=[{"role": "user", "content": "Hi"}])
    ours = run(backend_for(openai_fake).ask("Hi", model="o3-pro"))
    assert whole.output_text == ours.text == openai_fake.text
    assert (whole.usage.input_tokens, whole.usage.output_tokens) == (ours.tokens_in, ours.tokens_out)
    assert whole.status == "completed"


def test_official_sdk_sees_the_same_stream_errors(openai_fake):
    import openai

    client = openai.OpenAI(base_url=openai_fake.base_url, api_key=SENTINEL_KEY, max_retries=0)
    openai_fake.fail_next("error_event", after=5)
    types = [e.type for e in client.responses.create(model="o3-pro", input="x", stream=True)]
    assert "error" in types
    openai_fake.fail_next("failed")
    final = [e for e in client.responses.create(model="o3-pro", input="x", stream=True)][-1]
    assert final.type == "response.failed" and final.response.error.code == "server_error"
    openai_fake.fail_next("incomplete")
    final = [e for e in client.responses.create(model="o3-pro", input="x", stream=True)][-1]
    assert final.type == "response.incomplete"
    assert final.response.incomplete_details.reason == "max_output_tokens"
    with pytest.raises(openai.NotFoundError):
        client.responses.create(model="nope", input="x")
    with pytest.raises(openai.BadRequestError, match="stop"):
        client.post("/responses", body={"model": "o3-pro", "input": "x", "stop": ["\n"]}, cast_to=object)


def test_the_event_stream_reads_compatible_servers_without_event_names():
    state = responses.EventStream("lab", model="m")
    assert state.handle(None, json.dumps({"type": "response.output_text.delta", "delta": "Hi"})) == "Hi"
    state.handle(
        None,
        json.dumps(
            {
                "type": "response.completed",
                "response": {"status": "completed", "usage": {"input_tokens": 1, "output_tokens": 2}},
            }
        ),
    )
    end = state.end()
    assert (end.tokens_in, end.tokens_out, end.finish_reason) == (1, 2, "stop")
