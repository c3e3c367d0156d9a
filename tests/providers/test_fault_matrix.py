"""Every fault mode against every wire protocol, through the public API and the router.

Four protocols (OpenAI Chat Completions, Anthropic Messages, Gemini
generateContent, Ollama /api/chat), each behind its fake server, reached the
way a user reaches them: ``ttt_magic.ask`` / ``ttt_magic.stream`` with a model
name, so the router decides, retries and falls back. For each fault the
outcome must be one of: retried (honouring Retry-After, waits recorded by a
fake clock, never slept), fallen back (to the offline ``mock`` backend), or
ended with the text received so far kept and a clear error. In every case the
caller's chunks add up to ``response.text``: nothing received is lost.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

import ttt_magic
from tests.fakes.anthropic_fake import AnthropicFake
from tests.fakes.google_fake import GeminiFake
from tests.fakes.ollama_fake import OllamaFake
from tests.fakes.openai_fake import OpenAIFake
from tests.fakes.server import FakeServer
from ttt_magic import router
from ttt_magic.config import configure

PIECES = ["alpha ", "beta ", "gamma ", "delta ", "epsilon ", "zeta ", "eta ", "theta."]
FULL = "".join(PIECES)


@dataclass
class Protocol:
    name: str
    fake: type[FakeServer]
    model: str
    backend: str  # what the router picks for ``model``
    settings: Callable[[Any], dict[str, Any]]
    script: Callable[[Any], None]


def _script_list(fake: Any) -> None:
    fake.answer = list(PIECES)


def _script_chunks(fake: Any) -> None:
    fake.chunks = list(PIECES)


PROTOCOLS = [
    Protocol(
        "openai",
        OpenAIFake,
        "gpt-4o-mini",
        "cloud",
        lambda f: {"openai_base_url": f.base_url, "openai_api_key": "sk-test-matrix-0123456789"},
        _script_list,
    ),
    Protocol(
        "anthropic",
        AnthropicFake,
        "sonnet",
        "cloud",
        lambda f: {"anthropic_base_url": f.url, "anthropic_api_key": "sk-ant-test-matrix-0123456789"},
        _script_chunks,
    ),
    Protocol(
        "google",
        GeminiFake,
        "flash",
        "cloud",
        lambda f: {"gemini_base_url": f.url, "google_api_key": "AIza-test-matrix-0123456789"},
        _script_chunks,
    ),
    Protocol("ollama", OllamaFake, "llama3.2", "local", lambda f: {"ollama_base_url": f.url}, _script_list),
]


@pytest.fixture
def waits(monkeypatch) -> list[float]:
    """The router's sleeps, recorded instead of slept."""
    recorded: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        recorded.append(seconds)

    monkeypatch.setattr(router, "sleep", fake_sleep)
    return recorded


@pytest.fixture(params=PROTOCOLS, ids=lambda p: p.name)
def proto(request, fake_factory, waits):
    """(protocol, its fake) configured as the only way to the model; ``mock`` is the fallback."""
    protocol: Protocol = request.param
    fake = fake_factory(protocol.fake)
    protocol.script(fake)
    configure(
        max_retries=2,
        timeout=5,
        enable_fallbacks=False,
        fallback_order=[protocol.backend, "mock"],
        backends={"mock": {"delay": 0}},
        **protocol.settings(fake),
    )
    return protocol, fake


def run_stream(model: str) -> tuple[list[str], ttt_magic.AIResponse]:
    stream = ttt_magic.stream("Tell me the Greek letters", model=model)
    chunks = list(stream)
    response = stream.response
    assert "".join(chunks) == response.text, "what the caller received must be the response text"
    return chunks, response


def outcomes(response) -> list[str]:
    return [a["outcome"] for a in response.route["attempts"]]


def fail(fake: Any, kind: str, **options: Any) -> None:
    fake.fail_next(kind, **options)


# --------------------------------------------------------------------------- retried


@pytest.mark.parametrize("status", [429, 500, 503, 529])
@pytest.mark.parametrize("mode", ["ask", "stream"])
def test_retryable_status_is_retried_then_answers(proto, waits, status, mode):
    protocol, fake = proto
    headers = {"retry-after": "2"} if status == 429 else None
    fail(fake, "status", status=status, headers=headers)
    if mode == "ask":
        response = ttt_magic.ask("Tell me the Greek letters", model=protocol.model)
    else:
        _, response = run_stream(protocol.model)
    assert response.succeeded, response.error
    assert response.text == FULL and response.backend == protocol.backend
    assert outcomes(response) == ["retry", "ok"]
    assert len(waits) == 1
    if status == 429:
        assert waits == [2.0]  # Retry-After honoured exactly
    else:
        assert 0 < waits[0] <= router.BACKOFF_BASE  # first backoff step, with jitter
    assert response.route["attempts"][1]["wait"] == waits[0]


def test_retry_after_is_capped_by_max_retry_wait(proto, waits):
    protocol, fake = proto
    configure(max_retry_wait=1.5)
    fail(fake, "status", status=429, headers={"retry-after": "120"})
    response = ttt_magic.ask("x", model=protocol.model)
    assert response.succeeded and waits == [1.5]


def test_persistent_failure_falls_back_to_the_next_backend(proto, waits):
    protocol, fake = proto
    configure(enable_fallbacks=True)
    fail(fake, "status", status=503, times=3)  # max_retries=2: three attempts, all fail
    response = ttt_magic.ask("x", model=protocol.model)
    assert response.succeeded and response.backend == "mock"
    assert outcomes(response) == ["retry", "retry", "error", "ok"]
    assert [a["backend"] for a in response.route["attempts"]] == [protocol.backend] * 3 + ["mock"]
    assert len(waits) == 2


def test_persistent_failure_without_fallbacks_is_a_clear_error(proto, waits):
    protocol, fake = proto
    fail(fake, "status", status=500, times=3)
    response = ttt_magic.ask("x", model=protocol.model)
    assert response.failed and response.text == ""
    assert "500" in response.error and outcomes(response) == ["retry", "retry", "error"]


def test_bad_request_is_not_retried(proto, waits):
    protocol, fake = proto
    fail(fake, "status", status=400, headers=None)
    response = ttt_magic.ask("x", model=protocol.model)
    assert response.failed and outcomes(response) == ["error"] and waits == []


@pytest.mark.parametrize("kind", ["reset", "stall", "close"])
def test_failure_before_any_text_is_retried(proto, waits, kind):
    protocol, fake = proto
    configure(timeout=0.3)
    fail(fake, kind, after=0, seconds=5)
    _, response = run_stream(protocol.model)
    assert response.succeeded, response.error
    assert response.text == FULL and outcomes(response) == ["retry", "ok"]


# --------------------------------------------------------------------------- partial text kept


@pytest.mark.parametrize("kind", ["reset", "close", "stall", "malformed"])
def test_failure_mid_stream_keeps_the_partial_text(proto, waits, kind):
    protocol, fake = proto
    configure(timeout=0.3, enable_fallbacks=True)
    fail(fake, kind, after=3, seconds=5)
    chunks, response = run_stream(protocol.model)
    assert response.failed and response.error.startswith("The answer was cut off")
    assert chunks and FULL.startswith(response.text) and response.text != FULL
    assert response.backend == protocol.backend  # no fallback once text reached the reader
    assert outcomes(response) == ["error"] and waits == []


def test_truncated_stream_keeps_all_text_but_says_it_is_incomplete(proto, waits):
    protocol, fake = proto
    fail(fake, "truncated", after=len(PIECES) + 5)
    _, response = run_stream(protocol.model)
    assert response.failed and "incomplete" in response.error
    assert FULL.startswith(response.text) and response.text
    assert outcomes(response) == ["error"]


# --------------------------------------------------------------------------- delivered whole


def test_slow_drip_arrives_whole(proto):
    protocol, fake = proto
    fail(fake, "drip")
    _, response = run_stream(protocol.model)
    assert response.succeeded and response.text == FULL


def test_large_answer_arrives_whole(proto):
    protocol, fake = proto
    fail(fake, "large", size=300_000)
    chunks, response = run_stream(protocol.model)
    assert response.succeeded and len(response.text) >= 100_000 and len(chunks) > 100


# --------------------------------------------------------------------------- protocol-specific faults


def test_openai_error_event_mid_stream(fake_factory, waits):
    fake = fake_factory(OpenAIFake)
    fake.answer = list(PIECES)
    configure(
        openai_base_url=fake.base_url, openai_api_key="sk-test-matrix-0123456789", enable_fallbacks=False
    )
    fake.fail_next("error_data", after=3)
    chunks, response = run_stream("gpt-4o-mini")
    assert response.failed and chunks and FULL.startswith(response.text) and response.text != FULL


def test_ollama_error_line_mid_stream(fake_factory, waits):
    fake = fake_factory(OllamaFake)
    fake.answer = list(PIECES)
    configure(ollama_base_url=fake.url, enable_fallbacks=False)
    fake.fail_next("error_line", after=3)
    _, response = run_stream("llama3.2")
    assert response.failed and response.text == "alpha beta gamma "


@pytest.fixture
def anthropic_fake(fake_factory, waits):
    fake = fake_factory(AnthropicFake)
    fake.chunks = list(PIECES)
    configure(
        anthropic_base_url=fake.url,
        anthropic_api_key="sk-ant-test-matrix-0123456789",
        enable_fallbacks=False,
        max_retries=2,
    )
    return fake


def test_anthropic_overloaded_event_before_text_is_retried(anthropic_fake, waits):
    anthropic_fake.fault("overloaded_event", after=0)
    _, response = run_stream("sonnet")
    assert response.succeeded and response.text == FULL and outcomes(response) == ["retry", "ok"]
    assert len(waits) == 1


def test_anthropic_overloaded_event_mid_stream_keeps_text(anthropic_fake, waits):
    anthropic_fake.fault("overloaded_event", after=2)
    _, response = run_stream("sonnet")
    assert response.failed and response.text == "alpha beta "
    assert "overloaded" in response.error.lower() and waits == []


def test_anthropic_529_then_answer_without_streaming(anthropic_fake, waits):
    anthropic_fake.fault("529")
    response = ttt_magic.ask("x", model="sonnet")
    assert response.succeeded and outcomes(response) == ["retry", "ok"]


@pytest.fixture
def gemini_fake(fake_factory, waits):
    fake = fake_factory(GeminiFake)
    fake.chunks = list(PIECES)
    configure(
        gemini_base_url=fake.url,
        google_api_key="AIza-test-matrix-0123456789",
        enable_fallbacks=False,
        fallback_order=["cloud", "mock"],
        backends={"mock": {"delay": 0}},
    )
    return fake


def test_gemini_safety_stop_keeps_text_and_is_not_retried(gemini_fake, waits):
    gemini_fake.fault("safety", after=3)
    _, response = run_stream("flash")
    assert response.failed and response.text == "alpha beta gamma "
    assert "answer was blocked" in response.error and response.metadata["finish_reason"] == "SAFETY"
    assert outcomes(response) == ["error"] and waits == []


def test_gemini_blocked_prompt_is_an_error_and_not_retried(gemini_fake, waits):
    gemini_fake.fault("blocked_prompt", times=5)
    response = ttt_magic.ask("x", model="flash")
    assert response.failed and "prompt was blocked" in response.error and outcomes(response) == ["error"]
    _, streamed = run_stream("flash")
    assert streamed.failed and "prompt was blocked" in streamed.error and outcomes(streamed) == ["error"]
    assert waits == []
