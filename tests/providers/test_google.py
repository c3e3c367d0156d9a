"""Gemini backend: request building, chunk interpretation, and (below) the fake server."""

from __future__ import annotations

import pytest

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
        state.handle(chunk(", world", finish="STOP", usage={
            "promptTokenCount": 4, "candidatesTokenCount": 3, "thoughtsTokenCount": 2})),
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
    assert state.handle({"promptFeedback": {"blockReason": "SAFETY"},
                         "usageMetadata": {"promptTokenCount": 8}}) is None
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
    text, end = gg.parse_response(chunk("Whole answer", finish="STOP",
                                        usage={"promptTokenCount": 2, "candidatesTokenCount": 2}))
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
    name, pid, _ = backend._request("x", "flash", None, None, None, {})
    assert (name, pid) == ("gemini-2.5-flash", "gemini-2.5-flash")
    assert backend._url(pid, "generateContent") == "http://h:1/v1beta/models/gemini-2.5-flash:generateContent"
    assert backend._request("x", "google/gemini-2.0-flash", None, None, None, {})[1] == "gemini-2.0-flash"
