"""Anthropic Messages backend: request building, event interpretation, and (below) the fake server."""

from __future__ import annotations

import json

import pytest

from ttt_magic.backends import anthropic as an
from ttt_magic.errors import ProviderError
from ttt_magic.models import StreamEnd

# --------------------------------------------------------------------------- request building


def test_payload_has_top_level_system_and_required_max_tokens():
    body = an.build_payload("Hi", model="claude-x", system="Be brief", temperature=0.2)
    assert body == {
        "model": "claude-x",
        "max_tokens": an.DEFAULT_MAX_TOKENS,
        "messages": [{"role": "user", "content": "Hi"}],
        "system": "Be brief",
        "temperature": 0.2,
        "stream": True,
    }
    assert "stream" not in an.build_payload("Hi", model="m", stream=False)
    assert an.build_payload("Hi", model="m", max_tokens=7)["max_tokens"] == 7


def test_history_alternates_and_system_turns_are_lifted():
    history = [
        {"role": "system", "content": "From history"},
        {"role": "user", "content": "a"},
        {"role": "user", "content": "b"},
        {"role": "assistant", "content": "c"},
        {"role": "assistant", "content": ""},
    ]
    body = an.build_payload("d", model="m", system="Explicit", history=history)
    assert body["system"] == "From history\n\nExplicit"
    assert body["messages"] == [
        {"role": "user", "content": "a\n\nb"},
        {"role": "assistant", "content": "c"},
        {"role": "user", "content": "d"},
    ]


def test_stop_and_top_p_are_mapped():
    body = an.build_payload("x", model="m", stop="END", top_p=0.5)
    assert body["stop_sequences"] == ["END"] and body["top_p"] == 0.5


def test_headers_carry_key_and_version():
    headers = an.build_headers("sk-ant-test-123")
    assert headers["x-api-key"] == "sk-ant-test-123"
    assert headers["anthropic-version"] == "2023-06-01"
    assert headers["content-type"] == "application/json"


# --------------------------------------------------------------------------- event interpretation

EVENTS = [
    (
        "message_start",
        {
            "type": "message_start",
            "message": {
                "id": "msg_1",
                "type": "message",
                "role": "assistant",
                "model": "claude-sonnet-4-5-20250929",
                "content": [],
                "stop_reason": None,
                "usage": {"input_tokens": 12, "output_tokens": 1},
            },
        },
    ),
    (
        "content_block_start",
        {"type": "content_block_start", "index": 0, "content_block": {"type": "thinking", "thinking": ""}},
    ),
    (
        "content_block_delta",
        {"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "hmm"}},
    ),
    ("content_block_stop", {"type": "content_block_stop", "index": 0}),
    ("ping", {"type": "ping"}),
    (
        "content_block_start",
        {"type": "content_block_start", "index": 1, "content_block": {"type": "text", "text": ""}},
    ),
    (
        "content_block_delta",
        {"type": "content_block_delta", "index": 1, "delta": {"type": "text_delta", "text": "Hello"}},
    ),
    ("brand_new_event", {"type": "brand_new_event", "whatever": 1}),
    (
        "content_block_delta",
        {"type": "content_block_delta", "index": 1, "delta": {"type": "text_delta", "text": ", world"}},
    ),
    (
        "content_block_delta",
        {
            "type": "content_block_delta",
            "index": 2,
            "delta": {"type": "input_json_delta", "partial_json": '{"a":'},
        },
    ),
    ("content_block_stop", {"type": "content_block_stop", "index": 1}),
    (
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": "max_tokens", "stop_sequence": None},
            "usage": {"output_tokens": 9},
        },
    ),
    ("message_stop", {"type": "message_stop"}),
]


def test_stream_events_give_text_usage_and_stop_reason():
    state = an.MessageStream(model="claude-sonnet-4-5")
    texts = [t for kind, data in EVENTS if (t := state.handle(kind, data))]
    assert texts == ["Hello", ", world"]
    end = state.end()
    assert isinstance(end, StreamEnd)
    assert (end.model, end.tokens_in, end.tokens_out) == ("claude-sonnet-4-5", 12, 9)
    assert end.finish_reason == "max_tokens"
    assert end.metadata["provider_model"] == "claude-sonnet-4-5-20250929"
    assert end.metadata["provider"] == "anthropic"


def test_cache_tokens_count_as_input():
    state = an.MessageStream()
    usage = {
        "input_tokens": 5,
        "cache_creation_input_tokens": 100,
        "cache_read_input_tokens": 20,
        "output_tokens": 0,
    }
    state.handle("message_start", {"type": "message_start", "message": {"usage": usage}})
    assert state.tokens_in == 125


def test_event_name_is_used_when_data_has_no_type():
    state = an.MessageStream()
    assert state.handle("content_block_delta", {"delta": {"type": "text_delta", "text": "x"}}) == "x"


def test_error_event_raises_retryable_overloaded():
    state = an.MessageStream(model="claude-sonnet-4-5")
    state.handle(*EVENTS[0])
    with pytest.raises(ProviderError) as info:
        state.handle(
            "error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
        )
    err = info.value
    assert err.retryable and err.status == 529 and err.kind == "overloaded_error"
    assert "Overloaded" in str(err) and "claude-sonnet-4-5" in str(err)


def test_invalid_request_error_event_is_not_retryable():
    with pytest.raises(ProviderError) as info:
        an.MessageStream().handle(
            "error", {"type": "error", "error": {"type": "invalid_request_error", "message": "bad"}}
        )
    assert not info.value.retryable and info.value.status == 400


def test_stream_without_message_stop_is_truncated():
    state = an.MessageStream()
    for kind, data in EVENTS[:7]:
        state.handle(kind, data)
    with pytest.raises(ProviderError) as info:
        state.end()
    assert info.value.kind == "truncated" and "5 characters" in str(info.value)


def test_malformed_event_data_raises():
    with pytest.raises(ProviderError) as info:
        an.MessageStream().handle("content_block_delta", ["not", "an", "object"])
    assert info.value.kind == "malformed"


def test_parse_message_non_stream_body():
    body = {
        "id": "msg_2",
        "type": "message",
        "role": "assistant",
        "model": "claude-x",
        "content": [
            {"type": "thinking", "thinking": "..."},
            {"type": "text", "text": "Hi "},
            {"type": "text", "text": "there"},
        ],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 3, "output_tokens": 2},
    }
    text, end = an.parse_message(json.loads(json.dumps(body)), model="claude-x")
    assert text == "Hi there"
    assert (end.tokens_in, end.tokens_out, end.finish_reason) == (3, 2, "end_turn")


def test_refusal_is_withheld_with_partial_text_count():
    state = an.MessageStream(model="claude-x")
    state.handle("content_block_delta", {"delta": {"type": "text_delta", "text": "abc"}})
    state.handle("message_delta", {"delta": {"stop_reason": "refusal"}, "usage": {"output_tokens": 1}})
    state.handle("message_stop", {})
    assert state.end().finish_reason == "refusal"
    err = state.withheld()
    assert err.kind == "blocked" and "refusal" in str(err) and "3 characters" in str(err)
    assert an.MessageStream().withheld() is None


def test_parse_message_error_body_and_garbage():
    with pytest.raises(ProviderError) as info:
        an.parse_message({"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}})
    assert info.value.status == 429 and info.value.retryable
    with pytest.raises(ProviderError):
        an.parse_message(None)
    with pytest.raises(ProviderError):
        an.parse_message({"type": "message"})


# --------------------------------------------------------------------------- backend identity


def test_unavailable_without_key_names_env_var():
    backend = an.AnthropicBackend({})
    assert not backend.is_available
    assert "ANTHROPIC_API_KEY" in backend.unavailable_reason
    assert an.AnthropicBackend({"anthropic_api_key": "sk-ant-test-1"}).is_available


def test_model_names_resolve_through_catalogue_and_prefix():
    assert an.resolve_model("sonnet", None) == ("claude-sonnet-5-5", "claude-sonnet-5-5")
    name, provider_id = an.resolve_model("anthropic/claude-opus-4-1", None)
    assert (name, provider_id) == ("anthropic/claude-opus-4-1", "claude-opus-4-1")
    assert an.resolve_model(None, None)[1] == an.DEFAULT_MODEL


def test_global_default_model_of_another_provider_is_ignored():
    own_default = an.catalogue_default("anthropic", an.DEFAULT_MODEL)
    assert an.AnthropicBackend({"default_model": "gpt-4o-mini"}).default_model == own_default
    assert an.AnthropicBackend({"default_model": "claude-haiku-4-5"}).default_model == "claude-haiku-4-5"


# =========================================================================== against the fake server

import ttt_magic  # noqa: E402
from tests.fakes.anthropic_fake import AnthropicFake, large_text  # noqa: E402
from ttt_magic import runner  # noqa: E402
from ttt_magic.config import configure  # noqa: E402

KEY = "sk-ant-test-0123456789abcdef"


@pytest.fixture
def fake(fake_factory):
    return fake_factory(AnthropicFake)


@pytest.fixture
def backend(fake):
    return an.AnthropicBackend({"anthropic_base_url": fake.url, "anthropic_api_key": KEY, "timeout": 5})


def collect(backend, prompt="Say hello", **kwargs):
    """Run ``astream`` to its end: (text chunks, StreamEnd or None, ProviderError or None)."""

    async def go():
        texts, end, error = [], None, None
        try:
            async for item in backend.astream(prompt, **kwargs):
                if isinstance(item, StreamEnd):
                    end = item
                else:
                    texts.append(item)
        except ProviderError as exc:
            error = exc
        return texts, end, error

    return runner.run(go())


def test_stream_sends_exact_request_and_reads_text_and_usage(fake, backend):
    fake.usage = (21, 6)
    texts, end, error = collect(
        backend,
        "Say hello",
        model="claude-sonnet-4-5",
        system="Be terse",
        temperature=0.1,
        history=[{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}],
    )
    assert error is None
    assert "".join(texts) == fake.answer and len(texts) > 1
    assert (end.tokens_in, end.tokens_out, end.finish_reason) == (21, 6, "end_turn")
    assert end.cost == pytest.approx((21 * 3.0 + 6 * 15.0) / 1e6)
    request = fake.last
    assert request.path == "/v1/messages"
    assert request.headers["x-api-key"] == KEY
    assert request.headers["anthropic-version"] == "2023-06-01"
    assert request.headers["content-type"] == "application/json"
    assert request.json == {
        "model": "claude-sonnet-4-5",
        "max_tokens": an.DEFAULT_MAX_TOKENS,
        "system": "Be terse",
        "temperature": 0.1,
        "stream": True,
        "messages": [
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello!"},
            {"role": "user", "content": "Say hello"},
        ],
    }


def test_thinking_blocks_and_pings_are_not_text(fake, backend):
    fake.thinking = "Let me think about this carefully."
    fake.answer = "one two three four five six seven"
    texts, _, error = collect(backend)
    assert error is None and "".join(texts) == fake.answer
    assert "think" not in "".join(texts)


def test_max_tokens_stop_reason_is_surfaced(fake, backend):
    fake.stop_reason = "max_tokens"
    _, end, _ = collect(backend, max_tokens=5)
    assert end.finish_reason == "max_tokens" and fake.last.json["max_tokens"] == 5
    response = runner.run(backend.ask("x", max_tokens=5))
    assert response.metadata["finish_reason"] == "max_tokens"


def test_configured_max_tokens_and_default_model(fake, fake_factory):
    backend = an.AnthropicBackend(
        {
            "anthropic_base_url": fake.url,
            "anthropic_api_key": KEY,
            "max_tokens": 123,
            "default_model": "claude-haiku-4-5",
        }
    )
    collect(backend)
    assert fake.last.json["max_tokens"] == 123 and fake.last.json["model"] == "claude-haiku-4-5"


def test_non_stream_ask(fake, backend):
    fake.usage = (10, 4)
    response = runner.run(backend.ask("Hi", model="claude-sonnet-4-5", system="S"))
    assert response.succeeded and response.text == fake.answer
    assert (response.backend, response.model, response.tokens_in, response.tokens_out) == (
        "anthropic",
        "claude-sonnet-4-5",
        10,
        4,
    )
    assert response.cost == pytest.approx((10 * 3.0 + 4 * 15.0) / 1e6)
    assert response.metadata["finish_reason"] == "end_turn"
    assert "stream" not in fake.last.json and fake.last.json["system"] == "S"


@pytest.mark.parametrize(
    "status,kind", [("429", "rate_limit"), ("500", "server"), ("503", "server"), ("529", "overloaded")]
)
def test_retryable_statuses(fake, backend, status, kind):
    fake.fault(status, retry_after=7)
    texts, _, error = collect(backend)
    assert texts == [] and error.retryable and error.status == int(status) and error.kind == kind
    if status == "429":
        assert error.retry_after == 7
    failed = (fake.fault(status), runner.run(backend.ask("x")))[1]
    assert failed.failed and failed.metadata["error_info"]["retryable"]


def test_bad_key_names_env_var_and_never_shows_key(fake, backend):
    fake.fault("401")
    _, _, error = collect(backend)
    assert not error.retryable and error.status == 401
    assert "ANTHROPIC_API_KEY" in str(error) and KEY not in str(error)


def test_overloaded_error_event_mid_stream_keeps_partial_text(fake, backend):
    fake.answer = "alpha beta gamma delta epsilon"
    fake.fault("overloaded_event", after=2)
    texts, end, error = collect(backend)
    assert "".join(texts) == "alpha beta "
    assert end is None and error.retryable and error.status == 529 and "Overloaded" in str(error)


@pytest.mark.parametrize(
    "mode,kind",
    [("reset", "connection"), ("cut", "connection"), ("malformed", "malformed"), ("truncated", "truncated")],
)
def test_broken_streams_keep_partial_text_and_fail_clearly(fake, backend, mode, kind):
    fake.answer = "alpha beta gamma delta epsilon"
    fake.fault(mode, after=2)
    texts, end, error = collect(backend)
    assert error is not None and error.kind == kind and end is None
    assert "".join(texts) in {"alpha beta ", fake.answer}
    assert "".join(texts).startswith("alpha beta ")


def test_stall_times_out(fake):
    backend = an.AnthropicBackend({"anthropic_base_url": fake.url, "anthropic_api_key": KEY, "timeout": 0.3})
    fake.fault("stall", after=1, stall=10)
    texts, _, error = collect(backend)
    assert "".join(texts) == "Hello " and error.kind == "timeout" and error.retryable


def test_large_answer_and_slow_drip_arrive_whole(fake, backend):
    fake.fault("large")
    texts, end, error = collect(backend)
    assert error is None and "".join(texts) == large_text()
    fake.fault("drip")
    texts, end, error = collect(backend)
    assert error is None and "".join(texts) == fake.answer and end.finish_reason == "end_turn"


def test_non_stream_faults(fake, backend):
    for mode in ("reset", "truncated"):
        fake.fault(mode)
        response = runner.run(backend.ask("x"))
        assert response.failed and response.metadata["error_info"]["retryable"] is (mode == "reset")


def test_abandoned_stream_releases_its_connection(fake, backend):
    fake.chunk_delay = 0.05

    async def first_chunk_only():
        stream = backend.astream("x")
        first = await stream.__anext__()
        await stream.aclose()
        return first

    assert runner.run(first_chunk_only()) == "Hello "
    assert fake.wait_until(lambda: fake.open_connections == 0)


def test_models_are_listed_across_pages_and_cached(fake, backend):
    fake.model_pages = 2
    assert runner.run(backend.models()) == list(AnthropicFake.MODELS)
    count = len(fake.requests)
    assert runner.run(backend.models()) == list(AnthropicFake.MODELS)
    assert len(fake.requests) == count
    assert fake.requests[-1].headers["x-api-key"] == KEY


def test_status_reports_base_url_and_models(fake, backend):
    info = runner.run(backend.status())
    assert info["available"] and info["models"] and info["base_url"] == fake.url


def test_missing_key_fails_before_sending(fake):
    backend = an.AnthropicBackend({"anthropic_base_url": fake.url})
    _, _, error = collect(backend)
    assert "ANTHROPIC_API_KEY" in str(error) and not fake.requests
    assert runner.run(backend.ask("x")).failed


# --------------------------------------------------------------------------- through the public API


@pytest.fixture
def configured(fake):
    configure(anthropic_base_url=fake.url, anthropic_api_key=KEY, enable_fallbacks=False)
    return fake


def test_api_ask_stream_and_chat(configured):
    fake = configured
    fake.usage = (9, 5)
    response = ttt_magic.ask("Hello?", model="claude-sonnet-4-5")
    assert response.succeeded and response.text == fake.answer
    assert response.backend == "cloud" and response.metadata["provider"] == "anthropic"
    assert (response.tokens_in, response.tokens_out) == (9, 5)
    assert response.cost == pytest.approx((9 * 3 + 5 * 15) / 1e6)

    stream = ttt_magic.stream("Hello?", model="claude-sonnet-4-5")
    chunks = list(stream)
    assert "".join(chunks) == fake.answer and len(chunks) > 1
    assert stream.response.tokens_out == 5 and stream.response.metadata["finish_reason"] == "end_turn"

    direct = ttt_magic.ask("Hello?", backend="anthropic", model="claude-sonnet-4-5")
    assert direct.succeeded and direct.backend == "anthropic"

    conversation = ttt_magic.chat(system="Be kind", model="claude-sonnet-4-5")
    conversation.ask("First")
    conversation.ask("Second")
    sent = fake.last.json
    assert sent["system"] == "Be kind"
    assert [m["role"] for m in sent["messages"]] == ["user", "assistant", "user"]
    assert sent["messages"][1]["content"] == fake.answer


# --------------------------------------------------------------------------- the official SDK as oracle


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the SDK warns about model EOL dates
def test_sdk_reads_the_fake_like_our_backend(fake, backend):
    import anthropic  # a test dependency: its absence must fail, not skip

    fake.usage = (14, 8)
    fake.thinking = "hidden reasoning"
    client = anthropic.Anthropic(base_url=fake.url, api_key=KEY, max_retries=0)
    with client.messages.stream(
        model="claude-sonnet-4-5", max_tokens=100, messages=[{"role": "user", "content": "Say hello"}]
    ) as sdk_stream:
        sdk_text = "".join(sdk_stream.text_stream)
        final = sdk_stream.get_final_message()
    texts, end, error = collect(backend, "Say hello")
    assert error is None and "".join(texts) == sdk_text == fake.answer
    assert (end.tokens_in, end.tokens_out) == (final.usage.input_tokens, final.usage.output_tokens)
    assert end.finish_reason == final.stop_reason

    created = client.messages.create(
        model="claude-sonnet-4-5", max_tokens=100, messages=[{"role": "user", "content": "Say hello"}]
    )
    ours = runner.run(backend.ask("Say hello"))
    assert "".join(b.text for b in created.content if b.type == "text") == ours.text
    assert (created.usage.input_tokens, created.usage.output_tokens) == (ours.tokens_in, ours.tokens_out)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the SDK warns about model EOL dates
def test_sdk_sees_the_same_mid_stream_error(fake):
    import anthropic  # a test dependency: its absence must fail, not skip

    fake.fault("overloaded_event", after=1)
    client = anthropic.Anthropic(base_url=fake.url, api_key=KEY, max_retries=0)
    received = []
    with (
        pytest.raises(anthropic.APIStatusError) as info,
        client.messages.stream(
            model="claude-sonnet-4-5", max_tokens=10, messages=[{"role": "user", "content": "x"}]
        ) as sdk_stream,
    ):
        received.extend(sdk_stream.text_stream)
    assert received == ["Hello "] and "overloaded_error" in str(info.value)
    fake.fault("529")
    with pytest.raises(anthropic.APIStatusError) as info:
        client.messages.create(
            model="claude-sonnet-4-5", max_tokens=10, messages=[{"role": "user", "content": "x"}]
        )
    assert info.value.status_code == 529


def test_sdk_lists_the_fake_models(fake):
    import anthropic  # a test dependency: its absence must fail, not skip

    client = anthropic.Anthropic(base_url=fake.url, api_key=KEY, max_retries=0)
    assert [m.id for m in client.models.list()] == list(AnthropicFake.MODELS)
