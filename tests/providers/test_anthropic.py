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
    ("message_start", {"type": "message_start", "message": {
        "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5-20250929",
        "content": [], "stop_reason": None, "usage": {"input_tokens": 12, "output_tokens": 1}}}),
    ("content_block_start", {"type": "content_block_start", "index": 0,
                             "content_block": {"type": "thinking", "thinking": ""}}),
    ("content_block_delta", {"type": "content_block_delta", "index": 0,
                             "delta": {"type": "thinking_delta", "thinking": "hmm"}}),
    ("content_block_stop", {"type": "content_block_stop", "index": 0}),
    ("ping", {"type": "ping"}),
    ("content_block_start", {"type": "content_block_start", "index": 1,
                             "content_block": {"type": "text", "text": ""}}),
    ("content_block_delta", {"type": "content_block_delta", "index": 1,
                             "delta": {"type": "text_delta", "text": "Hello"}}),
    ("brand_new_event", {"type": "brand_new_event", "whatever": 1}),
    ("content_block_delta", {"type": "content_block_delta", "index": 1,
                             "delta": {"type": "text_delta", "text": ", world"}}),
    ("content_block_delta", {"type": "content_block_delta", "index": 2,
                             "delta": {"type": "input_json_delta", "partial_json": "{\"a\":"}}),
    ("content_block_stop", {"type": "content_block_stop", "index": 1}),
    ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "max_tokens", "stop_sequence": None},
                       "usage": {"output_tokens": 9}}),
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
    usage = {"input_tokens": 5, "cache_creation_input_tokens": 100, "cache_read_input_tokens": 20,
             "output_tokens": 0}
    state.handle("message_start", {"type": "message_start", "message": {"usage": usage}})
    assert state.tokens_in == 125


def test_event_name_is_used_when_data_has_no_type():
    state = an.MessageStream()
    assert state.handle("content_block_delta", {"delta": {"type": "text_delta", "text": "x"}}) == "x"


def test_error_event_raises_retryable_overloaded():
    state = an.MessageStream(model="claude-sonnet-4-5")
    state.handle(*EVENTS[0])
    with pytest.raises(ProviderError) as info:
        state.handle("error", {"type": "error",
                               "error": {"type": "overloaded_error", "message": "Overloaded"}})
    err = info.value
    assert err.retryable and err.status == 529 and err.kind == "overloaded_error"
    assert "Overloaded" in str(err) and "claude-sonnet-4-5" in str(err)


def test_invalid_request_error_event_is_not_retryable():
    with pytest.raises(ProviderError) as info:
        an.MessageStream().handle("error", {"type": "error", "error": {"type": "invalid_request_error",
                                                                          "message": "bad"}})
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
        "id": "msg_2", "type": "message", "role": "assistant", "model": "claude-x",
        "content": [{"type": "thinking", "thinking": "..."}, {"type": "text", "text": "Hi "},
                    {"type": "text", "text": "there"}],
        "stop_reason": "end_turn", "stop_sequence": None, "usage": {"input_tokens": 3, "output_tokens": 2},
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
    assert an.resolve_model("sonnet", None) == ("claude-sonnet-4-5", "claude-sonnet-4-5")
    name, provider_id = an.resolve_model("anthropic/claude-opus-4-1", None)
    assert (name, provider_id) == ("anthropic/claude-opus-4-1", "claude-opus-4-1")
    assert an.resolve_model(None, None)[1] == an.DEFAULT_MODEL


def test_global_default_model_of_another_provider_is_ignored():
    assert an.AnthropicBackend({"default_model": "gpt-4o-mini"}).default_model == an.DEFAULT_MODEL
    assert an.AnthropicBackend({"default_model": "claude-haiku-4-5"}).default_model == "claude-haiku-4-5"
