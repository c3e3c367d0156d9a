"""OpenAI Chat Completions backends against a fake server speaking the real wire format.

The official ``openai`` SDK, pointed at the same fake, is the oracle that the
fake (and so our reading of it) matches the real API.
"""

from __future__ import annotations

import importlib.util
import json

import pytest

from tests.fakes import SENTINEL_KEY, collect, run
from tests.fakes.openai_fake import OpenAIFake
from ttt_magic.backends.openai import (
    ChunkStream,
    OpenAIBackend,
    OpenAICompatibleBackend,
    OpenRouterBackend,
    build_payload,
    is_reasoning_model,
)
from ttt_magic.errors import BackendUnavailable, ProviderError
from ttt_magic.models import StreamEnd
from ttt_magic.registry import model_registry
from ttt_magic.secrets import Secret


def price() -> float:
    """The fake's usage (12 in, 4 out) at the catalogue's gpt-4o-mini prices."""
    return model_registry.get_model("gpt-4o-mini").cost(12, 4)


def backend_for(fake: OpenAIFake, **extra) -> OpenAIBackend:
    config = {"openai_base_url": fake.base_url, "openai_api_key": Secret(SENTINEL_KEY), "timeout": 5.0}
    config.update(extra)
    return OpenAIBackend(config)


def stream(backend, prompt="Hi", **kwargs):
    return run(collect(backend.astream(prompt, **kwargs)))


# ----------------------------------------------------------------------------- happy paths


def test_stream_text_usage_cost_and_request(openai_fake):
    parts, end, error = stream(
        backend_for(openai_fake),
        "Say hello",
        model="gpt-4o-mini",
        system="Be brief.",
        temperature=0.2,
        max_tokens=50,
    )
    assert error is None
    assert parts == ["Hello", ", ", "world", "!"]
    assert isinstance(end, StreamEnd)
    assert (end.model, end.tokens_in, end.tokens_out, end.finish_reason) == ("gpt-4o-mini", 12, 4, "stop")
    assert end.cost == pytest.approx(price())
    assert end.metadata["provider_model"] == "gpt-4o-mini"
    req = openai_fake.last
    assert (req.method, req.path) == ("POST", "/v1/chat/completions")
    assert req.headers["authorization"] == f"Bearer {SENTINEL_KEY}"
    body = req.json
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Say hello"},
    ]
    assert (body["model"], body["temperature"], body["max_tokens"]) == ("gpt-4o-mini", 0.2, 50)


@pytest.mark.parametrize("style", ["empty", "null", "empty-delta", "missing"])
def test_every_shape_of_usage_chunk_is_read(openai_fake, style):
    openai_fake.usage_style = style
    parts, end, error = stream(backend_for(openai_fake), model="gpt-4o-mini")
    assert error is None and "".join(parts) == "Hello, world!"
    assert (end.tokens_in, end.tokens_out) == (12, 4)


def test_stream_without_usage_chunk_still_succeeds(openai_fake):
    openai_fake.usage_style = "none"
    parts, end, error = stream(backend_for(openai_fake), model="gpt-4o-mini")
    assert error is None and "".join(parts) == "Hello, world!"
    assert (end.tokens_in, end.tokens_out, end.finish_reason) == (None, None, "stop")


def test_history_is_sent_between_system_and_prompt(openai_fake):
    history = [{"role": "user", "content": "My name is Ada."}, {"role": "assistant", "content": "Hi Ada."}]
    stream(backend_for(openai_fake), "What is my name?", model="gpt-4o-mini", system="S", history=history)
    assert [m["role"] for m in openai_fake.last.json["messages"]] == ["system", "user", "assistant", "user"]


def test_non_stream_ask(openai_fake):
    answer = run(backend_for(openai_fake).ask("Hi", model="gpt-4o-mini"))
    assert answer.succeeded and answer == "Hello, world!"
    assert (answer.backend, answer.model) == ("openai", "gpt-4o-mini")
    assert (answer.tokens_in, answer.tokens_out) == (12, 4)
    assert answer.cost == pytest.approx(price())
    assert answer.metadata["finish_reason"] == "stop"
    assert "stream" not in openai_fake.last.json


@pytest.mark.parametrize(
    ("given", "sent"),
    [
        ("gpt-4o-mini", "gpt-4o-mini"),
        ("openai/gpt-4o-mini", "gpt-4o-mini"),
        ("4o-mini", "gpt-4o-mini"),
        ("nano", "gpt-4.1-nano"),
        (None, "gpt-4o-mini"),
    ],
)
def test_model_names_resolve(openai_fake, given, sent):
    _parts, _, error = stream(backend_for(openai_fake), model=given)
    assert error is None
    assert openai_fake.last.json["model"] == sent


def test_reasoning_models_get_max_completion_tokens_and_no_temperature(openai_fake):
    _, _end, error = stream(backend_for(openai_fake), model="o3-mini", temperature=0.3, max_tokens=99)
    assert error is None
    body = openai_fake.last.json
    assert body["max_completion_tokens"] == 99
    assert "max_tokens" not in body and "temperature" not in body


def test_catalogue_reasoning_capability_counts_for_openai_models(openai_fake):
    from ttt_magic.models import ModelInfo

    model_registry.add_model(
        ModelInfo(name="gpt-4o-mini-thinker", provider="openai", capabilities=["text", "reasoning"])
    )
    try:
        openai_fake.models.append("gpt-4o-mini-thinker")
        _, _, error = stream(backend_for(openai_fake), model="gpt-4o-mini-thinker", max_tokens=7)
        assert error is None and openai_fake.last.json["max_completion_tokens"] == 7
    finally:
        model_registry.remove_model("gpt-4o-mini-thinker")


def test_build_payload_rules():
    assert all(is_reasoning_model(m) for m in ("o1", "gpt-5-mini", "openai/o4-mini", "gpt-6-luna"))
    assert not is_reasoning_model("gpt-4o") and not is_reasoning_model("gpt-5-chat-latest")
    msgs = [{"role": "user", "content": "x"}]
    assert build_payload(msgs, model="o3", temperature=1.0)["temperature"] == 1.0
    plain = build_payload(msgs, model="gpt-4o", stream=False, extra={"stop": ["\n"], "seed": None})
    assert plain == {"model": "gpt-4o", "messages": msgs, "stop": ["\n"]}


def test_chunk_stream_ignores_other_choices_and_reads_reasoning_tokens():
    state = ChunkStream()
    assert (
        state.handle(
            None,
            json.dumps(
                {
                    "choices": [
                        {"index": 1, "delta": {"content": "no"}},
                        {"index": 0, "delta": {"content": "yes"}},
                    ]
                }
            ),
        )
        == "yes"
    )
    state.handle(
        None,
        json.dumps(
            {
                "choices": [],
                "usage": {
                    "prompt_tokens": 3,
                    "completion_tokens": 9,
                    "completion_tokens_details": {"reasoning_tokens": 6},
                },
            }
        ),
    )
    state.handle(None, "[DONE]")
    end = state.end()
    assert (end.tokens_in, end.tokens_out, end.metadata["reasoning_tokens"]) == (3, 9, 6)


def test_models_cached_and_status(openai_fake):
    backend = backend_for(openai_fake)

    async def go():
        first = await backend.models()
        second = await backend.models()
        status = await backend.status()
        return first, second, status

    first, second, status = run(go())
    assert first == second == ["gpt-4o-mini", "gpt-4.1-nano", "o3-mini", "o3-pro", "gpt-5-pro", "gpt-5-codex"]
    assert sum(r.path == "/v1/models" for r in openai_fake.requests) == 1  # status() uses the cache too
    assert status["available"] is True and status["base_url"] == openai_fake.url
    assert status["models"] == first


def test_no_key_means_unavailable_with_reason():
    backend = OpenAIBackend({"openai_base_url": "http://127.0.0.1:9/v1"})
    assert backend.is_available is False
    reason = backend.unavailable_reason
    assert "OPENAI_API_KEY" in reason and "configure(openai_api_key=" in reason
    parts, _end, error = stream(backend, model="gpt-4o-mini")
    assert parts == [] and isinstance(error, BackendUnavailable)


# ----------------------------------------------------------------------------- errors as statuses


def test_429_carries_retry_after(openai_fake):
    openai_fake.fail_next(
        "status",
        status=429,
        headers={"Retry-After": "7"},
        body={
            "error": {
                "message": "Rate limit reached for gpt-4o-mini",
                "type": "requests",
                "code": "rate_limit_exceeded",
            }
        },
    )
    _, _, error = stream(backend_for(openai_fake), model="gpt-4o-mini")
    assert (error.status, error.retryable, error.retry_after, error.kind) == (429, True, 7.0, "rate_limit")
    assert "Rate limit reached" in str(error)


def test_429_retry_after_ms_and_quota(openai_fake):
    openai_fake.fail_next("status", status=429, headers={"retry-after-ms": "1500"})
    _, _, error = stream(backend_for(openai_fake), model="gpt-4o-mini")
    assert error.retry_after == pytest.approx(1.5)
    openai_fake.fail_next(
        "status",
        status=429,
        body={
            "error": {
                "message": "You exceeded your current quota",
                "type": "insufficient_quota",
                "code": "insufficient_quota",
            }
        },
    )
    _, _, error = stream(backend_for(openai_fake), model="gpt-4o-mini")
    assert (error.kind, error.retryable) == ("quota", False)


@pytest.mark.parametrize(("status", "kind"), [(500, "server"), (503, "server"), (529, "overloaded")])
def test_server_errors_are_retryable(openai_fake, status, kind):
    openai_fake.fail_next("status", status=status)
    _, _, error = stream(backend_for(openai_fake), model="gpt-4o-mini")
    assert (error.status, error.retryable, error.kind) == (status, True, kind)


def test_wrong_key_names_the_variable_never_the_key(openai_fake):
    backend = backend_for(openai_fake, openai_api_key=Secret("sk-wrong-000000000000000000000"))
    _, _, error = stream(backend, model="gpt-4o-mini")
    assert (error.status, error.kind, error.retryable) == (401, "auth", False)
    assert "OPENAI_API_KEY" in str(error)
    assert "sk-wrong" not in str(error)


def test_key_echoed_by_server_is_redacted(openai_fake):
    openai_fake.fail_next("echo_key")
    _, _, error = stream(backend_for(openai_fake), model="gpt-4o-mini")
    assert error.status == 401 and SENTINEL_KEY not in str(error) and SENTINEL_KEY not in repr(error)


def test_unknown_model_suggests_close_names(openai_fake):
    _, _, error = stream(backend_for(openai_fake), model="gpt-4o-mni")
    assert (error.status, error.kind, error.retryable) == (404, "model_not_found", False)
    assert "gpt-4o-mini" in error.hint


def test_context_length_says_the_limit(openai_fake):
    openai_fake.fail_next("context")
    _, _, error = stream(backend_for(openai_fake), model="gpt-4o-mini")
    assert (error.kind, error.retryable) == ("context_length", False)
    assert "128000" in str(error) and "context window" in str(error)


def test_failed_ask_returns_failed_response_with_error_info(openai_fake):
    openai_fake.fail_next("status", status=503)
    answer = run(backend_for(openai_fake).ask("Hi", model="gpt-4o-mini"))
    assert answer.failed and answer == ""
    info = answer.metadata["error_info"]
    assert (info["status"], info["retryable"]) == (503, True)


# ----------------------------------------------------------------------------- faults mid-stream


@pytest.mark.parametrize(
    ("kind", "expected_kind", "retryable"),
    [
        ("reset", "connection", True),
        ("close", "connection", True),
        ("malformed", "malformed", True),
        ("truncated", "truncated", True),
        ("error_data", "stream_error", True),
        ("error_event", "stream_error", False),
    ],
)
def test_mid_stream_faults_keep_partial_text(openai_fake, kind, expected_kind, retryable):
    openai_fake.fail_next(kind, after=2)
    parts, end, error = stream(backend_for(openai_fake), model="gpt-4o-mini")
    assert end is None and isinstance(error, ProviderError)
    assert (error.kind, error.retryable) == (expected_kind, retryable)
    expected = ["Hello"] if kind != "truncated" else ["Hello", ", ", "world", "!"]
    assert parts == expected


def test_stall_longer_than_read_timeout(openai_fake):
    openai_fake.fail_next("stall", after=2, seconds=30)
    parts, _, error = stream(backend_for(openai_fake, timeout=0.3), model="gpt-4o-mini")
    assert parts == ["Hello"]
    assert (error.kind, error.retryable) == ("timeout", True)
    assert "timed out" in str(error)


def test_slow_drip_and_large_answer(openai_fake):
    openai_fake.fail_next("drip")
    parts, end, error = stream(backend_for(openai_fake), model="gpt-4o-mini")
    assert error is None and "".join(parts) == "Hello, world!" and end.tokens_out == 4
    openai_fake.fail_next("large", size=1_000_000)
    parts, end, error = stream(backend_for(openai_fake), model="gpt-4o-mini")
    assert error is None and len("".join(parts)) == 1_000_000


def test_unreachable_server_is_a_retryable_connect_error():
    backend = OpenAIBackend(
        {"openai_base_url": "http://127.0.0.1:9/v1", "openai_api_key": Secret(SENTINEL_KEY)}
    )
    _, _, error = stream(backend, model="gpt-4o-mini")
    assert (error.kind, error.retryable) == ("connect", True)
    assert "127.0.0.1:9" in str(error)


# ----------------------------------------------------------------------------- compatible and OpenRouter


def test_compatible_backend_without_key_sends_no_auth(fake_factory):
    fake = fake_factory(OpenAIFake, models=("llama-local", "qwen-local"))
    backend = OpenAICompatibleBackend(
        {
            "name": "myllm",
            "base_url": fake.base_url,
            "models": ["llama-local", "qwen-local"],
            "default_model": "qwen-local",
        }
    )
    assert backend.name == "myllm" and backend.is_available
    parts, _end, error = stream(backend)
    assert error is None and "".join(parts) == "Hello, world!"
    assert "authorization" not in fake.last.headers
    assert fake.last.json["model"] == "qwen-local"
    stream(backend, model="myllm/llama-local")
    assert fake.last.json["model"] == "llama-local"


def test_compatible_backend_key_from_its_env_var(fake_factory, monkeypatch):
    fake = fake_factory(OpenAIFake, api_key=SENTINEL_KEY, models=("m1",))
    config = {"name": "corp", "base_url": fake.base_url, "api_key_env": "CORP_LLM_KEY", "models": ["m1"]}
    missing = OpenAICompatibleBackend(config)
    assert not missing.is_available and "CORP_LLM_KEY" in missing.unavailable_reason
    monkeypatch.setenv("CORP_LLM_KEY", SENTINEL_KEY)
    _parts, _, error = stream(OpenAICompatibleBackend(config))
    assert error is None and fake.last.headers["authorization"] == f"Bearer {SENTINEL_KEY}"
    monkeypatch.setenv("CORP_LLM_KEY", "sk-bad-1111111111111111")
    _, _, error = stream(OpenAICompatibleBackend(config))
    assert error.status == 401 and "CORP_LLM_KEY" in str(error)


def test_compatible_backend_from_configuration_through_registry(fake_factory):
    from ttt_magic import configure
    from ttt_magic.registry import backend_registry

    fake = fake_factory(OpenAIFake, models=("tiny",))
    configure(backends={"lab": {"type": "openai-compatible", "base_url": fake.base_url, "models": ["tiny"]}})
    backend = backend_registry.get("lab")
    assert isinstance(backend, OpenAICompatibleBackend)
    _parts, _, error = stream(backend)
    assert error is None and fake.last.json["model"] == "tiny"


def test_openrouter_strips_prefix_and_names_its_key(fake_factory):
    fake = fake_factory(
        OpenAIFake, prefix="/api/v1", api_key=SENTINEL_KEY, models=("meta-llama/llama-3.1-8b-instruct",)
    )
    backend = OpenRouterBackend(
        {"openrouter_base_url": fake.base_url, "openrouter_api_key": Secret(SENTINEL_KEY)}
    )
    parts, _, error = stream(backend, model="openrouter/meta-llama/llama-3.1-8b-instruct")
    assert error is None and "".join(parts) == "Hello, world!"
    assert fake.last.path == "/api/v1/chat/completions"
    assert fake.last.json["model"] == "meta-llama/llama-3.1-8b-instruct"
    bad = OpenRouterBackend(
        {"openrouter_base_url": fake.base_url, "openrouter_api_key": "sk-or-v1-bad000000000"}
    )
    _, _, error = stream(bad, model="openrouter/meta-llama/llama-3.1-8b-instruct")
    assert error.status == 401 and "OPENROUTER_API_KEY" in str(error)
    assert not OpenRouterBackend({}).is_available


# ----------------------------------------------------------------------------- SDK oracle


def test_official_sdk_reads_the_fake_like_we_do(openai_fake):
    import openai

    client = openai.OpenAI(base_url=openai_fake.base_url, api_key=SENTINEL_KEY, max_retries=0)
    sdk_parts, sdk_usage = [], None
    for chunk in client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "Hi"}],
        stream=True,
        stream_options={"include_usage": True},
    ):
        if chunk.choices and chunk.choices[0].delta.content:
            sdk_parts.append(chunk.choices[0].delta.content)
        if chunk.usage:
            sdk_usage = (chunk.usage.prompt_tokens, chunk.usage.completion_tokens)
    sdk_request = openai_fake.last
    parts, end, _ = stream(backend_for(openai_fake), model="gpt-4o-mini")
    assert "".join(sdk_parts) == "".join(parts) == openai_fake.text
    assert sdk_usage == (end.tokens_in, end.tokens_out)
    assert sdk_request.path == openai_fake.last.path
    assert sdk_request.json["stream_options"] == openai_fake.last.json["stream_options"]

    whole = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}])
    ours = run(backend_for(openai_fake).ask("Hi", model="gpt-4o-mini"))
    assert whole.choices[0].message.content == ours.text
    assert (whole.usage.prompt_tokens, whole.usage.completion_tokens) == (ours.tokens_in, ours.tokens_out)


def test_official_sdk_sees_the_same_errors(openai_fake):
    import openai

    client = openai.OpenAI(base_url=openai_fake.base_url, api_key=SENTINEL_KEY, max_retries=0)
    openai_fake.fail_next("status", status=429, headers={"Retry-After": "3"})
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="nope", messages=[{"role": "user", "content": "x"}])
    openai_fake.fail_next("error_data", after=2)
    with pytest.raises(openai.APIError, match="server had an error"):
        for _ in client.chat.completions.create(
            model="gpt-4o-mini", stream=True, messages=[{"role": "user", "content": "x"}]
        ):
            pass


# ----------------------------------------------------------------------------- through the public API


@pytest.fixture
def via_api(openai_fake):
    from ttt_magic import configure
    from ttt_magic.registry import backend_registry

    configure(
        openai_base_url=openai_fake.base_url,
        openai_api_key=SENTINEL_KEY,
        backends={"mock": {"delay": 0}},
        max_retries=0,
    )
    registered = "openai" in backend_registry.names()
    if not registered:
        backend_registry.register_backend("openai", OpenAIBackend, source="test")
    yield openai_fake
    if not registered:
        backend_registry.unregister("openai")


def test_ask_stream_and_chat_through_the_api(via_api):
    import ttt_magic

    answer = ttt_magic.ask("Hi", backend="openai", model="gpt-4o-mini")
    assert answer.succeeded and answer == "Hello, world!"
    assert (answer.backend, answer.tokens_in, answer.tokens_out) == ("openai", 12, 4)
    assert answer.cost == pytest.approx(price())

    chunks = ttt_magic.stream("Hi", backend="openai", model="gpt-4o-mini")
    assert list(chunks) == ["Hello", ", ", "world", "!"]
    assert chunks.response.tokens_out == 4 and chunks.response.cost is not None

    conversation = ttt_magic.chat(system="Be nice.", backend="openai", model="gpt-4o-mini")
    conversation.ask("My name is Ada.")
    conversation.ask("Who am I?")
    sent = via_api.last.json["messages"]
    assert [m["role"] for m in sent] == ["system", "user", "assistant", "user"]
    assert sent[2]["content"] == "Hello, world!"


def test_api_failure_is_a_value_with_an_actionable_message(via_api):
    import ttt_magic

    via_api.fail_next("status", status=401)
    answer = ttt_magic.ask("Hi", backend="openai", model="gpt-4o-mini")
    assert answer.failed and "OPENAI_API_KEY" in answer.error


@pytest.mark.skipif(
    importlib.util.find_spec("ttt_magic.backends.cloud") is None, reason="cloud backend absent"
)
def test_model_routes_through_cloud_to_the_fake(via_api):
    import ttt_magic

    answer = ttt_magic.ask("Hi", model="gpt-4o-mini")
    assert answer.succeeded and answer == "Hello, world!", answer.error
    assert via_api.last.headers["authorization"] == f"Bearer {SENTINEL_KEY}"


# ----------------------------------------------------------------------------- the sentinel key


def test_sentinel_key_never_shows(openai_fake, capsys, caplog):
    import logging

    caplog.set_level(logging.DEBUG)
    seen: list[str] = []
    backend = backend_for(openai_fake)
    seen += [repr(backend), str(backend.backend_config), str(backend.unavailable_reason)]
    for kind, options in [
        ("echo_key", {}),
        ("status", {"status": 500}),
        ("reset", {}),
        ("malformed", {}),
        ("error_data", {}),
        ("context", {}),
    ]:
        openai_fake.fail_next(kind, **options)
        _, _, error = stream(backend, model="gpt-4o-mini")
        seen += [str(error), repr(error), str(error.hint), str(error.__cause__), str(error.__context__)]
        openai_fake.fail_next(kind, **options)
        answer = run(backend.ask("Hi", model="gpt-4o-mini"))
        seen += [repr(answer), str(answer.error), json.dumps(answer.metadata, default=str)]
    _, _, error = stream(
        OpenAIBackend({"openai_base_url": "http://127.0.0.1:9/v1", "openai_api_key": Secret(SENTINEL_KEY)}),
        model="gpt-4o-mini",
    )
    seen += [str(error), repr(error)]
    out = capsys.readouterr()
    seen += [out.out, out.err, caplog.text]
    assert caplog.text  # httpx2 did log the requests (at DEBUG), and the key is not in those lines
    assert all(SENTINEL_KEY not in text for text in seen)


# ----------------------------------------------------------------------------- reasoning beside the content


@pytest.mark.parametrize("streamed", [True, False])
def test_reasoning_content_is_the_answers_reasoning(openai_fake, streamed):
    """llama.cpp, vLLM and DeepSeek send thinking in ``reasoning_content``: apart from the answer."""
    from ttt_magic import configure

    openai_fake.reasoning_content = ["Two and ", "two."]
    configure(openai_base_url=openai_fake.base_url, openai_api_key=SENTINEL_KEY)
    import ttt_magic

    if streamed:
        chunks = ttt_magic.stream("2+2?", backend="openai", model="gpt-4o-mini")
        assert "".join(chunks) == "Hello, world!"
        answer = chunks.response
    else:
        answer = ttt_magic.ask("2+2?", backend="openai", model="gpt-4o-mini")
    assert answer.succeeded and answer.text == "Hello, world!"
    assert answer.reasoning == "Two and two."


# ----------------------------------------------------------------------------- images


def _png() -> bytes:
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 2, 2, 8, 0, 0, 0, 0)
    body = zlib.compress(b"\x00\x80\x80" * 2)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b"")


@pytest.mark.parametrize(("model", "path"), [("gpt-4o-mini", "chat"), ("o3-pro", "responses")])
def test_images_go_as_data_urls(openai_fake, model, path):
    import base64

    import ttt_magic
    from ttt_magic import configure

    configure(openai_base_url=openai_fake.base_url, openai_api_key=SENTINEL_KEY)
    image = _png()
    answer = ttt_magic.ask("What is this?", backend="openai", model=model, images=[image])
    assert answer.succeeded, answer.error
    url = "data:image/png;base64," + base64.b64encode(image).decode()
    body = openai_fake.last.json
    if path == "chat":
        assert body["messages"][-1]["content"] == [
            {"type": "text", "text": "What is this?"},
            {"type": "image_url", "image_url": {"url": url}},
        ]
    else:
        assert body["input"][-1]["content"] == [
            {"type": "input_text", "text": "What is this?"},
            {"type": "input_image", "image_url": url},
        ]
