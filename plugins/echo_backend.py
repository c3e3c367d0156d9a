"""The ``echo`` backend: answers with the prompt itself.

Written the way any user plugin is written (it imports only the public
``ttt_magic.backends`` and ``ttt_magic.models``), it is also the smallest
complete example of a backend: it implements both ``ask`` and ``astream`` and
reports token counts. Useful for measuring the library's own overhead, since
the backend does no work at all.

Tokens are counted as words here; ``max_tokens`` keeps that many words and
then reports ``finish_reason: "length"``.
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from typing import Any

from ttt_magic.backends import BaseBackend
from ttt_magic.models import AIResponse, StreamEnd

_WORD = re.compile(r"\s*\S+")


def _cut(prompt: str, max_tokens: int | None) -> tuple[list[str], str]:
    """The words to answer with (each with its leading space) and the finish reason."""
    words = _WORD.findall(prompt)
    if max_tokens is not None and max_tokens >= 0 and len(words) > max_tokens:
        return words[:max_tokens], "length"
    return words, "stop"


class EchoBackend(BaseBackend):
    """Repeats the prompt back (no model, no network)."""

    backend_name = "echo"
    #: Answers cost nothing (the router can skip pricing them).
    free = True
    #: Any model name is answered (a default_backend that serves aliases of unavailable backends).
    serves_any_model = True

    async def ask(
        self,
        prompt: str,
        *,
        model: str | None = None,
        system: str | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        **kwargs: Any,
    ) -> AIResponse:
        started = time.perf_counter()
        words, finish = _cut(prompt, max_tokens)
        text = "".join(words).lstrip()
        return AIResponse(
            text,
            model=model or "echo",
            backend=self.name,
            tokens_in=len(_WORD.findall(prompt)),
            tokens_out=len(words),
            time_taken=time.perf_counter() - started,
            metadata={"finish_reason": finish},
        )

    async def astream(
        self,
        prompt: str,
        *,
        model: str | None = None,
        system: str | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[str | StreamEnd]:
        words, finish = _cut(prompt, max_tokens)
        for i, word in enumerate(words):
            yield word.lstrip() if i == 0 else word
        yield StreamEnd(
            model=model or "echo",
            tokens_in=len(_WORD.findall(prompt)),
            tokens_out=len(words),
            finish_reason=finish,
        )

    async def models(self) -> list[str]:
        return ["echo"]


def register_plugin(registry: Any) -> None:
    registry.register_backend(
        "echo",
        EchoBackend,
        version="1.0.0",
        description="Repeats the prompt (for tests and overhead measurements)",
        author="ttt-magic developers",
    )
