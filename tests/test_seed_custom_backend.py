"""The seed's "Testing Custom Backends" example, adapted to ttt_magic and run for real.

The seed shows a user registering their own backend and testing it with plain
pytest: a basic completion, streaming, and error handling. The backend below is
what such a user would write, following the seed's interface (``ask`` returns
an ``AIResponse``, errors included; ``astream`` yields chunks).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from ttt_magic import ask, register_backend, stream
from ttt_magic.backends import BaseBackend
from ttt_magic.models import AIResponse
from ttt_magic.registry import backend_registry


class MyBackend(BaseBackend):
    """Upper-cases the prompt; fails on request, the way the seed recommends (an error response)."""

    @property
    def name(self) -> str:
        return "test"

    async def ask(self, prompt: str, *, model: str | None = None, **kwargs: Any) -> AIResponse:
        if "cause error" in prompt.lower():
            return AIResponse(
                "", model=model or "default", backend=self.name, error="The test backend was asked to fail."
            )
        return AIResponse(
            prompt.upper(),
            model=model or "default",
            backend=self.name,
            tokens_in=len(prompt.split()),
            tokens_out=len(prompt.split()),
        )

    async def astream(self, prompt: str, **kwargs: Any) -> AsyncIterator[str]:
        for word in prompt.upper().split():
            yield word + " "

    async def models(self) -> list[str]:
        return ["model1", "model2"]


@pytest.fixture
def setup_backend():
    register_backend("test", MyBackend)
    yield
    backend_registry.unregister("test")


def test_basic_completion(setup_backend):
    response = ask("Test prompt", backend="test")
    assert response.backend == "test"
    assert not response.failed
    assert response == "TEST PROMPT"


def test_streaming(setup_backend):
    chunks = list(stream("Test streaming now", backend="test"))
    assert len(chunks) > 0
    assert "".join(chunks) == "TEST STREAMING NOW "


def test_error_handling(setup_backend):
    response = ask("Cause error", backend="test")
    assert response.failed
    assert response.error is not None
    assert "asked to fail" in response.error


def test_stream_response_after_exhaustion(setup_backend):
    answer = stream("two words", backend="test")
    assert "".join(answer) == "TWO WORDS "
    assert answer.response.backend == "test" and answer.response.succeeded
