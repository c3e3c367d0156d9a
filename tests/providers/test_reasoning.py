"""Reasoning models (issue #16): the thinking apart from the answer, on every protocol, streamed or not.

Each protocol carries thinking its own way (Anthropic ``thinking_delta``,
Gemini ``thought: true`` parts, Ollama ``message.thinking``, OpenAI-compatible
servers a ``<think>`` block in the content); the answer's ``str`` is the
answer only, ``.reasoning`` the thinking, and ``stream(..., parts=True)``
yields ``Thinking`` pieces as they arrive. ``effort=`` maps to each
protocol's control and is refused for a model the catalogue says cannot think.
"""

from __future__ import annotations

import pytest

import ttt_magic
from tests.fakes import SENTINEL_KEY
from tests.fakes.anthropic_fake import AnthropicFake
from tests.fakes.google_fake import GeminiFake
from ttt_magic.config import configure
from ttt_magic.errors import UsageError
from ttt_magic.models import Thinking


def _both(backend: str, model: str, **kwargs):
    """(the answer asked whole, the stream object after reading it with parts=True, its pieces)."""
    whole = ttt_magic.ask("Why is the sky blue?", backend=backend, model=model, **kwargs)
    chunks = ttt_magic.stream("Why is the sky blue?", backend=backend, model=model, parts=True, **kwargs)
    pieces = list(chunks)
    return whole, chunks, pieces


def _check(whole, chunks, pieces, thinking: str, answer: str):
    assert whole.succeeded and chunks.response.succeeded, (whole.error, chunks.response.error)
    assert whole.text == answer and whole.reasoning == thinking
    assert chunks.response.text == answer and chunks.response.reasoning == thinking
    thought = [p for p in pieces if isinstance(p, Thinking)]
    text = [p for p in pieces if not isinstance(p, Thinking)]
    assert "".join(map(str, thought)) == thinking and "".join(text) == answer
    assert pieces.index(thought[0]) < pieces.index(text[0])  # thinking streams before the answer
    assert chunks.thinking == thinking


def test_anthropic_extended_thinking(fake_factory):
    fake = fake_factory(AnthropicFake)
    fake.thinking = "Rayleigh scattering favours short wavelengths."
    configure(anthropic_base_url=fake.url, anthropic_api_key=SENTINEL_KEY)
    whole, chunks, pieces = _both("anthropic", "claude-sonnet-4-5", effort="high", temperature=0.3)
    _check(whole, chunks, pieces, fake.thinking, fake.answer)
    body = fake.last.json
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 16384}
    assert "temperature" not in body  # extended thinking takes none
    assert body["max_tokens"] == 4096 + 16384


def test_gemini_thought_parts_and_thinking_tokens(fake_factory):
    fake = fake_factory(GeminiFake)
    fake.thought = "Think about scattering."
    fake.thoughts_tokens = 9
    configure(gemini_base_url=fake.url, google_api_key=SENTINEL_KEY)
    whole, chunks, pieces = _both("google", "gemini-2.5-flash", effort="low")
    _check(
        whole,
        chunks,
        pieces,
        fake.thought,
        fake.answer if isinstance(fake.answer, str) else "".join(fake.answer),
    )
    config = fake.last.json["generationConfig"]["thinkingConfig"]
    assert config == {"thinkingBudget": 1024, "includeThoughts": True}
    assert whole.metadata["thinking_tokens"] == 9


def test_ollama_think_and_message_thinking(ollama_fake):
    ollama_fake.installed.append("deepseek-r1:latest")
    configure(ollama_base_url=ollama_fake.url)
    whole, chunks, pieces = _both("local", "deepseek-r1", effort="medium")
    _check(whole, chunks, pieces, "Blue light scatters most.", ollama_fake.text)
    assert ollama_fake.last.json["think"] is True


def test_ollama_without_think_sends_no_thinking(ollama_fake):
    configure(ollama_base_url=ollama_fake.url)
    answer = ttt_magic.ask("Why?", backend="local", model="llama3.2")
    assert answer.reasoning is None and "think" not in ollama_fake.last.json


def test_think_tags_in_content_are_split_out(openai_fake):
    openai_fake.answer = ["<thi", "nk>Let me", " count.</th", "ink>\n", "Four", "."]
    configure(openai_base_url=openai_fake.base_url, openai_api_key=SENTINEL_KEY)
    whole, chunks, pieces = _both("openai", "gpt-4o-mini")
    _check(whole, chunks, pieces, "Let me count.", "Four.")


def test_think_tags_can_be_left_in_the_answer(openai_fake):
    openai_fake.answer = ["<think>x</think>", "y"]
    configure(
        openai_base_url=openai_fake.base_url,
        openai_api_key=SENTINEL_KEY,
        backends={"openai": {"think_tags": False}},
    )
    assert ttt_magic.ask("q", backend="openai", model="gpt-4o-mini") == "<think>x</think>y"


def test_plain_stream_yields_answer_text_only(fake_factory):
    fake = fake_factory(AnthropicFake)
    fake.thinking = "hidden"
    configure(anthropic_base_url=fake.url, anthropic_api_key=SENTINEL_KEY)
    chunks = ttt_magic.stream("q", backend="anthropic", model="claude-sonnet-4-5")
    assert all(isinstance(c, str) for c in chunks)
    assert chunks.response.text == fake.answer and chunks.response.reasoning == "hidden"


def test_effort_is_refused_for_a_model_that_does_not_reason(ollama_fake):
    with pytest.raises(UsageError, match=r"does not reason.*Reasoning models of openai"):
        ttt_magic.ask("q", backend="openai", model="gpt-4o-mini", effort="high")
    with pytest.raises(UsageError, match=r"'llama3.2' does not reason.*deepseek-r1"):
        ttt_magic.ask("q", backend="local", model="llama3.2", effort="low")
    assert ollama_fake.requests == []  # refused before anything was sent
    with pytest.raises(UsageError, match="effort must be one of low, medium, high"):
        ttt_magic.ask("q", backend="echo", effort="max")


def test_effort_is_part_of_the_resolved_request():
    from ttt_magic import router
    from ttt_magic.config import get_config
    from ttt_magic.request import Request, resolve

    call = resolve(
        Request("q", effort="low"), "echo", None, get_config().backend_config("echo"), stream=False
    )
    assert call.effort == "low" and call.key_material()["effort"] == "low"
    assert call.key() != call.with_changes(effort="high").key()
    assert router  # the module the resolution belongs to


def test_a_plugin_that_streams_thinking_keeps_it_through_ask_the_cache_and_no_stream(tmp_path):
    from ttt_magic.backends.base import BaseBackend
    from ttt_magic.models import StreamEnd
    from ttt_magic.registry import backend_registry

    class Ponder(BaseBackend):
        backend_name = "ponder"

        async def astream(self, prompt, **kwargs):
            yield Thinking("first, think. ")
            yield "answer"
            yield StreamEnd(model="p")

    backend_registry.register_backend("ponder", Ponder)
    try:
        whole = ttt_magic.ask("q", backend="ponder")  # BaseBackend.ask gathers astream
        assert whole == "answer" and whole.reasoning == "first, think. "
        configure(cache=str(tmp_path / "c.sqlite3"))
        chunks = ttt_magic.stream("q2", backend="ponder")
        assert "".join(chunks) == "answer" and chunks.response.reasoning == "first, think. "
        again = ttt_magic.stream("q2", backend="ponder")
        "".join(again)
        assert again.response.metadata.get("cached") and again.response.reasoning == "first, think. "
    finally:
        backend_registry.unregister("ponder")
