"""Gemini backend: request building, chunk interpretation, and (below) the fake server."""

from __future__ import annotations

import pytest

from tests.fakes import run
from ttt_magic.backends import google as gg
from ttt_magic.errors import ProviderError

# --------------------------------------------------------------------------- request building


def test_payload_shape():
    body = gg.build_payload("Hi", system="Be brief", temperature=0.3, max_tokens=50)
    assert body == {
        "contents": [{"role": "user", "parts": [{"text": "Hi"}]}],
        "systemInstruction": {"parts": [{"text": "Be brief"}]},
        "generationConfig": {"temperature": 0.3, "maxOutputTokens": 50},
    }
    assert gg.build_payload("Hi") == {"contents": [{"role": "user", "parts": [{"text": "Hi"}]}]}


def test_history_roles_are_user_and_model():
    history = [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": "a"},
        {"role": "assistant", "content": "b"},
        {"role": "assistant", "content": "c"},
    ]
    body = gg.build_payload("d", history=history, stop=["X"])
    assert body["systemInstruction"] == {"parts": [{"text": "sys"}]}
    assert body["contents"] == [
        {"role": "user", "parts": [{"text": "a"}]},
        {"role": "model", "parts": [{"text": "b\n\nc"}]},
        {"role": "user", "parts": [{"text": "d"}]},
    ]
    assert body["generationConfig"] == {"stopSequences": ["X"]}


def test_headers_and_model_path():
    assert gg.build_headers("AIza-test")["x-goog-api-key"] == "AIza-test"
    assert gg.model_path("gemini-2.5-flash") == "models/gemini-2.5-flash"
    assert gg.model_path("models/gemini-2.5-flash") == "models/gemini-2.5-flash"


# --------------------------------------------------------------------------- chunk interpretation


def chunk(text=None, finish=None, usage=None, thought=None, model="gemini-2.5-flash-001"):
    parts = []
    if thought:
        parts.append({"text": thought, "thought": True})
    if text is not None:
        parts.append({"text": text})
    candidate = {"content": {"role": "model", "parts": parts}, "index": 0}
    if finish:
        candidate["finishReason"] = finish
    data = {"candidates": [candidate], "modelVersion": model, "responseId": "r1"}
    if usage:
        data["usageMetadata"] = usage
    return data


def test_stream_chunks_text_usage_finish():
    state = gg.GenerateStream(model="gemini-2.5-flash")
    texts = [
        state.handle(chunk(thought="thinking...")),
        state.handle(chunk("Hello", usage={"promptTokenCount": 4})),
        state.handle(
            chunk(
                ", world",
                finish="STOP",
                usage={"promptTokenCount": 4, "candidatesTokenCount": 3, "thoughtsTokenCount": 2},
            )
        ),
    ]
    assert texts == [None, "Hello", ", world"]
    end = state.end()
    assert (end.model, end.tokens_in, end.tokens_out, end.finish_reason) == ("gemini-2.5-flash", 4, 5, "STOP")
    assert end.metadata["provider_model"] == "gemini-2.5-flash-001"


def test_max_tokens_is_a_finish_reason_not_an_error():
    state = gg.GenerateStream()
    state.handle(chunk("cut", finish="MAX_TOKENS"))
    assert state.end().finish_reason == "MAX_TOKENS"


@pytest.mark.parametrize("reason", ["SAFETY", "RECITATION", "PROHIBITED_CONTENT"])
def test_withheld_answer_is_an_error_after_partial_text(reason):
    state = gg.GenerateStream(model="gemini-2.5-flash")
    assert state.handle(chunk("Partial")) == "Partial"
    state.handle(chunk(finish=reason, usage={"promptTokenCount": 3, "candidatesTokenCount": 1}))
    end = state.end()
    assert end.finish_reason == reason and end.metadata["blocked"] == "answer" and end.tokens_in == 3
    err = state.withheld()
    assert err.kind == "blocked" and not err.retryable
    assert "answer was blocked" in str(err) and reason in str(err) and "7 characters" in str(err)


def test_blocked_prompt_is_an_error_with_usage():
    state = gg.GenerateStream()
    assert (
        state.handle({"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": {"promptTokenCount": 8}})
        is None
    )
    end = state.end()
    assert end.finish_reason == "SAFETY" and end.tokens_in == 8 and end.metadata["blocked"] == "prompt"
    err = state.withheld()
    assert "prompt was blocked" in str(err) and err.kind == "blocked"


def test_whole_answer_is_not_withheld():
    state = gg.GenerateStream()
    state.handle(chunk("ok", finish="STOP"))
    assert state.withheld() is None


def test_error_chunk_is_classified():
    with pytest.raises(ProviderError) as info:
        gg.GenerateStream().handle({"error": {"code": 503, "message": "overloaded", "status": "UNAVAILABLE"}})
    assert info.value.status == 503 and info.value.retryable
    with pytest.raises(ProviderError) as info:
        gg.GenerateStream().handle({"error": {"message": "bad", "status": "INVALID_ARGUMENT"}})
    assert info.value.status == 400 and not info.value.retryable


def test_stream_without_finish_reason_is_truncated():
    state = gg.GenerateStream()
    state.handle(chunk("abc"))
    with pytest.raises(ProviderError) as info:
        state.end()
    assert info.value.kind == "truncated" and info.value.retryable


def test_parse_response_non_stream():
    text, end = gg.parse_response(
        chunk("Whole answer", finish="STOP", usage={"promptTokenCount": 2, "candidatesTokenCount": 2})
    )
    assert text == "Whole answer" and end.tokens_out == 2
    with pytest.raises(ProviderError) as info:
        gg.parse_response(chunk("some", finish="SAFETY"))
    assert info.value.partial_text == "some" and info.value.end.finish_reason == "SAFETY"


# --------------------------------------------------------------------------- backend identity


def test_unavailable_without_key_names_env_vars():
    backend = gg.GeminiBackend({})
    assert not backend.is_available
    assert "GEMINI_API_KEY" in backend.unavailable_reason and "GOOGLE_API_KEY" in backend.unavailable_reason


def test_url_and_model_resolution():
    backend = gg.GeminiBackend({"google_api_key": "k", "gemini_base_url": "http://h:1/"})
    name, pid = run(backend.model_ids("flash"))
    assert (name, pid) == ("gemini-2.5-flash", "gemini-2.5-flash")
    assert backend._url(pid, "generateContent") == "http://h:1/v1beta/models/gemini-2.5-flash:generateContent"
    assert run(backend.model_ids("google/gemini-2.0-flash"))[1] == "gemini-2.0-flash"


# =========================================================================== against the fake server

import ttt_magic  # noqa: E402
from tests.fakes.anthropic_fake import large_text  # noqa: E402
from tests.fakes.google_fake import GeminiFake  # noqa: E402
from ttt_magic import runner  # noqa: E402
from ttt_magic.config import configure  # noqa: E402
from ttt_magic.models import StreamEnd  # noqa: E402

KEY = "AIza-test-0123456789abcdefghij"


@pytest.fixture
def fake(fake_factory):
    return fake_factory(GeminiFake)


@pytest.fixture
def backend(fake):
    return gg.GeminiBackend({"gemini_base_url": fake.url, "google_api_key": KEY, "timeout": 5})


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
    fake.usage = (11, 5)
    texts, end, error = collect(
        backend,
        "Say hello",
        model="flash",
        system="Be terse",
        temperature=0.4,
        max_tokens=64,
        history=[{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}],
    )
    assert error is None and "".join(texts) == fake.answer and len(texts) > 1
    assert (end.tokens_in, end.tokens_out, end.finish_reason) == (11, 5, "STOP")
    assert end.cost == pytest.approx((11 * 0.30 + 5 * 2.50) / 1e6)
    request = fake.last
    assert request.path == "/v1beta/models/gemini-2.5-flash:streamGenerateContent"
    assert request.query == {"alt": "sse"}
    assert request.headers["x-goog-api-key"] == KEY and "key" not in request.query
    assert request.json == {
        "contents": [
            {"role": "user", "parts": [{"text": "Hi"}]},
            {"role": "model", "parts": [{"text": "Hello!"}]},
            {"role": "user", "parts": [{"text": "Say hello"}]},
        ],
        "systemInstruction": {"parts": [{"text": "Be terse"}]},
        "generationConfig": {"temperature": 0.4, "maxOutputTokens": 64},
    }


def test_thought_parts_are_skipped_and_counted_as_output(fake, backend):
    fake.thought = "pondering..."
    fake.thoughts_tokens = 7
    fake.usage = (3, 5)
    texts, end, error = collect(backend)
    assert error is None and "".join(texts) == fake.answer and "pondering" not in "".join(texts)
    assert end.tokens_out == 12


def test_max_tokens_finish_is_surfaced(fake, backend):
    fake.finish_reason = "MAX_TOKENS"
    _, end, error = collect(backend)
    assert error is None and end.finish_reason == "MAX_TOKENS"
    response = runner.run(backend.ask("x"))
    assert response.succeeded and response.metadata["finish_reason"] == "MAX_TOKENS"


def test_non_stream_ask(fake, backend):
    fake.usage = (6, 5)
    response = runner.run(backend.ask("Hi", model="gemini-2.5-flash", system="S"))
    assert response.succeeded and response.text == fake.answer
    assert (response.backend, response.model, response.tokens_in, response.tokens_out) == (
        "google",
        "gemini-2.5-flash",
        6,
        5,
    )
    assert response.cost == pytest.approx((6 * 0.30 + 5 * 2.50) / 1e6)
    assert fake.last.path == "/v1beta/models/gemini-2.5-flash:generateContent"


def test_safety_finish_keeps_partial_text_and_says_blocked(fake, backend):
    fake.answer = "alpha beta gamma delta"
    fake.fault("safety", after=2)
    texts, end, error = collect(backend)
    assert "".join(texts) == "alpha beta "
    assert end.finish_reason == "SAFETY" and end.metadata["blocked"] == "answer"
    assert error.kind == "blocked" and not error.retryable and "answer was blocked" in str(error)
    fake.fault("safety", after=2)
    response = runner.run(backend.ask("x"))
    assert response.failed and response.text == "alpha beta " and "blocked" in response.error
    assert response.metadata["finish_reason"] == "SAFETY"


def test_blocked_prompt(fake, backend):
    fake.fault("blocked_prompt")
    texts, end, error = collect(backend)
    assert texts == [] and end.finish_reason == "SAFETY" and "prompt was blocked" in str(error)
    fake.fault("blocked_prompt")
    response = runner.run(backend.ask("x"))
    assert response.failed and "prompt was blocked" in response.error


@pytest.mark.parametrize("status,kind", [("429", "rate_limit"), ("500", "server"), ("503", "overloaded")])
def test_retryable_statuses(fake, backend, status, kind):
    fake.fault(status, retry_after=3)
    texts, _, error = collect(backend)
    assert texts == [] and error.retryable and error.status == int(status) and error.kind == kind
    if status == "429":
        assert error.retry_after == 3


def test_bad_key_is_reported_as_a_key_problem(fake, backend, monkeypatch):
    fake.fault("bad_key")
    _, _, error = collect(backend)
    assert error.kind == "auth" and not error.retryable and "GEMINI_API_KEY" in str(error)
    assert KEY not in str(error)
    monkeypatch.setenv("GOOGLE_API_KEY", KEY)
    fake.fault("bad_key")
    assert "GOOGLE_API_KEY" in runner.run(backend.ask("x")).error


def test_error_chunk_mid_stream(fake, backend):
    fake.answer = "alpha beta gamma"
    fake.fault("error_chunk", after=1)
    texts, _, error = collect(backend)
    assert "".join(texts) == "alpha " and error.status == 503 and error.retryable


@pytest.mark.parametrize(
    "mode,kind",
    [("reset", "connection"), ("cut", "connection"), ("malformed", "malformed"), ("truncated", "truncated")],
)
def test_broken_streams_keep_partial_text_and_fail_clearly(fake, backend, mode, kind):
    fake.answer = "alpha beta gamma delta epsilon"
    fake.fault(mode, after=2)
    texts, end, error = collect(backend)
    assert error is not None and error.kind == kind and end is None
    assert "".join(texts) == "alpha beta "


def test_stall_times_out(fake):
    backend = gg.GeminiBackend({"gemini_base_url": fake.url, "google_api_key": KEY, "timeout": 0.3})
    fake.fault("stall", after=1, stall=10)
    texts, _, error = collect(backend)
    assert "".join(texts) == "Hello " and error.kind == "timeout" and error.retryable


def test_large_answer_and_slow_drip_arrive_whole(fake, backend):
    fake.fault("large")
    texts, _, error = collect(backend)
    assert error is None and "".join(texts) == large_text()
    fake.fault("drip")
    texts, end, error = collect(backend)
    assert error is None and "".join(texts) == fake.answer and end.finish_reason == "STOP"


def test_abandoned_stream_releases_its_connection(fake, backend):
    fake.chunk_delay = 0.05

    async def first_chunk_only():
        stream = backend.astream("x")
        first = await stream.__anext__()
        await stream.aclose()
        return first

    assert runner.run(first_chunk_only()) == "Hello "
    assert fake.wait_until(lambda: fake.open_connections == 0)


def test_models_skip_non_generating_models_across_pages_and_cache(fake, backend):
    fake.model_pages = 2
    assert runner.run(backend.models()) == ["gemini-2.5-flash", "gemini-2.5-pro"]
    count = len(fake.requests)
    runner.run(backend.models())
    assert len(fake.requests) == count and fake.last.path == "/v1beta/models"


def test_missing_key_fails_before_sending(fake):
    backend = gg.GeminiBackend({"gemini_base_url": fake.url})
    _, _, error = collect(backend)
    assert "GEMINI_API_KEY" in str(error) and not fake.requests


# --------------------------------------------------------------------------- through the public API


def test_api_ask_stream_and_chat(fake):
    configure(gemini_base_url=fake.url, google_api_key=KEY, enable_fallbacks=False)
    fake.usage = (4, 5)
    response = ttt_magic.ask("Hello?", model="flash")
    assert response.succeeded and response.text == fake.answer
    assert response.backend == "cloud" and response.metadata["provider"] == "google"
    assert response.cost == pytest.approx((4 * 0.30 + 5 * 2.50) / 1e6)

    stream = ttt_magic.stream("Hello?", model="gemini-2.5-flash")
    assert "".join(stream) == fake.answer
    assert stream.response.tokens_in == 4 and stream.response.metadata["finish_reason"] == "STOP"

    conversation = ttt_magic.chat(system="Be kind", backend="google")
    conversation.ask("First")
    conversation.ask("Second")
    sent = fake.last.json
    assert sent["systemInstruction"] == {"parts": [{"text": "Be kind"}]}
    assert [c["role"] for c in sent["contents"]] == ["user", "model", "user"]


def test_api_stream_keeps_partial_text_of_a_blocked_answer(fake):
    configure(gemini_base_url=fake.url, google_api_key=KEY, enable_fallbacks=False)
    fake.answer = "alpha beta gamma"
    fake.fault("safety", after=1)
    stream = ttt_magic.stream("Hello?", model="flash")
    assert "".join(stream) == "alpha "
    response = stream.response
    assert response.failed and "blocked" in response.error and response.text == "alpha "
    assert response.metadata["finish_reason"] == "SAFETY"


# --------------------------------------------------------------------------- google-genai as oracle


def _sdk_client(fake, api_version=None):
    from google import genai  # a test dependency: missing must fail, not skip
    from google.genai import types

    options = (
        types.HttpOptions(base_url=fake.url, api_version=api_version)
        if api_version
        else types.HttpOptions(base_url=fake.url)
    )
    return genai.Client(api_key=KEY, http_options=options)


# The SDK's default API version differs by release: google-genai 2.x (the newest for
# Python 3.10) calls v1beta, 3.x calls v1 (GOOGLE_GENAI_API_VERSION overrides both). So
# each version is also asked for explicitly, and every installed SDK checks the fake on both.
@pytest.mark.parametrize("api_version", [None, "v1", "v1beta"], ids=["sdk-default", "v1", "v1beta"])
def test_sdk_reads_the_fake_like_our_backend(fake, backend, api_version, monkeypatch):
    monkeypatch.delenv("GOOGLE_GENAI_API_VERSION", raising=False)
    client = _sdk_client(fake, api_version)
    fake.usage = (7, 5)
    fake.thought = "hidden"
    chunks = list(client.models.generate_content_stream(model="gemini-2.5-flash", contents="Say hello"))
    sdk_text = "".join(c.text or "" for c in chunks)
    sdk_usage = chunks[-1].usage_metadata
    used = fake.last.path.split("/")[1]
    assert used == api_version if api_version else used in ("v1", "v1beta")
    assert fake.last.path == f"/{used}/models/gemini-2.5-flash:streamGenerateContent"
    texts, end, error = collect(backend, "Say hello")
    assert error is None and "".join(texts) == sdk_text == fake.answer
    assert (end.tokens_in, end.tokens_out) == (sdk_usage.prompt_token_count, sdk_usage.candidates_token_count)
    assert end.finish_reason == chunks[-1].candidates[0].finish_reason.value

    whole = client.models.generate_content(model="gemini-2.5-flash", contents="Say hello")
    assert fake.last.path == f"/{used}/models/gemini-2.5-flash:generateContent"
    ours = runner.run(backend.ask("Say hello"))
    assert whole.text == ours.text and whole.usage_metadata.prompt_token_count == ours.tokens_in


def test_sdk_sees_the_same_safety_stop_and_lists_models(fake):
    client = _sdk_client(fake)
    fake.fault("safety", after=1)
    chunks = list(client.models.generate_content_stream(model="gemini-2.5-flash", contents="x"))
    assert "".join(c.text or "" for c in chunks) == "Hello "
    assert chunks[-1].candidates[0].finish_reason.value == "SAFETY"
    names = [m.name for m in client.models.list()]
    assert "models/gemini-2.5-flash" in names
