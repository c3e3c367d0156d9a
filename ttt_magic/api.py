"""The public Python API: ask, stream, aask, astream, ask_many, chat, route.

Sync forms run on the runner's background loop (so they work in scripts, in
Jupyter cells and under a running loop); async forms run on the caller's loop.
Backend failures never raise out of ``ask``: they come back as a failed
``AIResponse``. Bad arguments raise a ``UsageError`` (a ``ValueError``) before
anything is sent.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

from . import router, runner
from .config import get_config
from .models import AIResponse, Message
from .router import Request, Route, StreamOutcome

__all__ = [
    "AnswerStream",
    "AsyncAnswerStream",
    "Chat",
    "aask",
    "ask",
    "ask_many",
    "astream",
    "chat",
    "route",
    "usage",
]

INTERRUPTED = "Interrupted: the answer is incomplete."


# --------------------------------------------------------------------------- usage


class _Usage:
    """Calls, tokens and cost of this process, for ``%ttt_status``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.calls = self.failures = self.tokens_in = self.tokens_out = 0
        self.cost = 0.0

    def record(self, response: AIResponse) -> AIResponse:
        with self._lock:
            self.calls += 1
            self.failures += response.failed
            self.tokens_in += response.tokens_in or 0
            self.tokens_out += response.tokens_out or 0
            self.cost += response.cost or 0.0
        return response

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "calls": self.calls,
                "failures": self.failures,
                "tokens_in": self.tokens_in,
                "tokens_out": self.tokens_out,
                "cost": round(self.cost, 6),
            }


_usage = _Usage()


def usage() -> dict[str, Any]:
    """This session's totals: calls, failures, tokens in and out, cost in dollars."""
    return _usage.snapshot()


# --------------------------------------------------------------------------- requests


def _request(
    prompt: str,
    model: str | None,
    backend: str | None,
    system: str | None,
    temperature: float | None,
    max_tokens: int | None,
    history: Iterable[Message] | None,
    options: dict[str, Any],
) -> tuple[Request, Route]:
    """Validate the call, fill what it left open from the settings, and decide the route."""
    settings = get_config()
    request = Request(
        prompt,
        model=model,
        backend=backend,
        system=settings.system if system is None else system,
        temperature=settings.temperature if temperature is None else temperature,
        max_tokens=settings.max_tokens if max_tokens is None else max_tokens,
        history=list(history or []),
        options=options,
    )
    return request, router.decide(request, settings)


def _interrupted(text: str, decided: Route) -> AIResponse:
    """The response of a stream stopped by the reader: what arrived, marked incomplete."""
    for attempt in decided.attempts:
        if attempt.outcome == "ok":
            attempt.outcome = "interrupted"
    return AIResponse(
        text,
        model=decided.model,
        backend=decided.backend,
        error=INTERRUPTED,
        metadata={"interrupted": True, "route": decided.to_dict()},
    )


def route(
    prompt: str,
    *,
    model: str | None = None,
    backend: str | None = None,
    system: str | None = None,
    temperature: float | None = None,
    max_tokens: int | None = None,
    **kwargs: Any,
) -> Route:
    """The routing decision for this prompt, with its reasons; nothing is sent."""
    return _request(prompt, model, backend, system, temperature, max_tokens, None, kwargs)[1]


def ask(
    prompt: str,
    *,
    model: str | None = None,
    backend: str | None = None,
    system: str | None = None,
    temperature: float | None = None,
    max_tokens: int | None = None,
    history: Iterable[Message] | None = None,
    **kwargs: Any,
) -> AIResponse:
    """Ask once and wait for the whole answer. Failures come back as ``response.failed``."""
    request, decided = _request(prompt, model, backend, system, temperature, max_tokens, history, kwargs)
    return _usage.record(runner.run(router.complete(decided, request)))


async def aask(
    prompt: str,
    *,
    model: str | None = None,
    backend: str | None = None,
    system: str | None = None,
    temperature: float | None = None,
    max_tokens: int | None = None,
    history: Iterable[Message] | None = None,
    **kwargs: Any,
) -> AIResponse:
    """``ask`` on the caller's own event loop."""
    request, decided = _request(prompt, model, backend, system, temperature, max_tokens, history, kwargs)
    return _usage.record(await router.complete(decided, request))


class _Answer:
    """What both stream forms share: the request, the route, the text so far, the end."""

    def __init__(
        self, request: Request, decided: Route, on_done: Callable[[AIResponse], Any] | None = None
    ) -> None:
        self.request = request
        self.route = decided
        self.response: AIResponse | None = None
        self._parts: list[str] = []
        self._outcome = StreamOutcome()
        self._on_done = on_done

    @property
    def text(self) -> str:
        """The text received so far."""
        return "".join(self._parts)

    def _done(self, response: AIResponse) -> None:
        self.response = _usage.record(response)
        if self._on_done is not None:
            self._on_done(response)

    def _finished(self) -> None:
        final = self._outcome.response  # an empty failed AIResponse is falsy: test for None
        self._done(final if final is not None else _interrupted(self.text, self.route))

    def _stop(self) -> None:
        if self.response is None:
            self._done(_interrupted(self.text, self.route))


class AnswerStream(_Answer):
    """Iterate to get text chunks as they arrive; ``.response`` is the final answer.

    The request starts on the first ``next()``. ``close()`` (or leaving a
    ``with`` block), Ctrl-C while waiting, or dropping the last reference to the
    stream (``break`` out of ``for chunk in stream(...)``) cancels it and closes
    the HTTP response; after ``close()`` or Ctrl-C, ``.response`` holds the text
    received so far, marked interrupted.
    """

    def __init__(
        self, request: Request, decided: Route, on_done: Callable[[AIResponse], Any] | None = None
    ) -> None:
        super().__init__(request, decided, on_done)
        self._iterator: runner.SyncStream[str] | None = None
        #: Seconds of silence after which iteration yields ``""`` (a display can refresh);
        #: None (the default) yields only text.
        self.heartbeat: float | None = None

    def __iter__(self) -> AnswerStream:
        return self

    def __next__(self) -> str:
        if self.response is not None:
            raise StopIteration
        if self._iterator is None:
            # The factory holds the request, not this object, so dropping the last
            # reference to a stream (e.g. `break` in a for loop over it) cancels it.
            route, request, outcome = self.route, self.request, self._outcome
            self._iterator = runner.iterate(lambda: router.stream(route, request, outcome))
            if self.heartbeat:
                self._iterator.idle = (self.heartbeat, "")
        try:
            chunk = next(self._iterator)
        except StopIteration:
            self._finished()
            raise
        except BaseException:
            self._stop()
            raise
        self._parts.append(chunk)
        return chunk

    def close(self) -> None:
        """Cancel the request if it is still running; keeps what arrived."""
        if self._iterator is None or self.response is not None:
            return
        self._iterator.close()
        self._stop()

    def __enter__(self) -> AnswerStream:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def stream(
    prompt: str,
    *,
    model: str | None = None,
    backend: str | None = None,
    system: str | None = None,
    temperature: float | None = None,
    max_tokens: int | None = None,
    history: Iterable[Message] | None = None,
    **kwargs: Any,
) -> AnswerStream:
    """Stream the answer: ``for chunk in stream(...)``; then ``.response``."""
    request, decided = _request(prompt, model, backend, system, temperature, max_tokens, history, kwargs)
    return AnswerStream(request, decided)


class AsyncAnswerStream(_Answer):
    """``async for chunk in astream(...)``; then ``.response``. Runs on the caller's loop."""

    def __init__(
        self, request: Request, decided: Route, on_done: Callable[[AIResponse], Any] | None = None
    ) -> None:
        super().__init__(request, decided, on_done)
        self._agen: AsyncIterator[str] | None = None

    def __aiter__(self) -> AsyncAnswerStream:
        return self

    async def __anext__(self) -> str:
        if self.response is not None:
            raise StopAsyncIteration
        if self._agen is None:
            self._agen = router.stream(self.route, self.request, self._outcome)
        try:
            chunk = await self._agen.__anext__()
        except StopAsyncIteration:
            self._finished()
            raise
        except BaseException:
            await self.aclose()
            raise
        self._parts.append(chunk)
        return chunk

    async def aclose(self) -> None:
        """Cancel the request if still running; keeps what arrived."""
        if self._agen is not None and self.response is None:
            await self._agen.aclose()  # type: ignore[attr-defined]
        self._stop()

    async def __aenter__(self) -> AsyncAnswerStream:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()


def astream(
    prompt: str,
    *,
    model: str | None = None,
    backend: str | None = None,
    system: str | None = None,
    temperature: float | None = None,
    max_tokens: int | None = None,
    history: Iterable[Message] | None = None,
    **kwargs: Any,
) -> AsyncAnswerStream:
    """Async streaming: ``async for chunk in astream(...)``; then ``.response``."""
    request, decided = _request(prompt, model, backend, system, temperature, max_tokens, history, kwargs)
    return AsyncAnswerStream(request, decided)


def _request_from(prompt: str, kwargs: dict[str, Any]) -> tuple[Request, Route]:
    return _request(
        prompt,
        kwargs.get("model"),
        kwargs.get("backend"),
        kwargs.get("system"),
        kwargs.get("temperature"),
        kwargs.get("max_tokens"),
        kwargs.get("history"),
        {k: v for k, v in kwargs.items() if k not in _NAMED},
    )


def ask_many(prompts: Iterable[str], *, concurrency: int = 4, **kwargs: Any) -> list[AIResponse]:
    """Ask several prompts concurrently (at most ``concurrency`` at once), answers in order."""
    prepared = [_request_from(p, kwargs) for p in prompts]

    async def gather() -> list[AIResponse]:
        limit = asyncio.Semaphore(max(1, concurrency))

        async def one(request: Request, decided: Route) -> AIResponse:
            async with limit:
                return _usage.record(await router.complete(decided, request))

        return list(await asyncio.gather(*(one(r, d) for r, d in prepared)))

    return runner.run(gather())


_NAMED = {"model", "backend", "system", "temperature", "max_tokens", "history"}


# --------------------------------------------------------------------------- chat


class Chat:
    """A conversation: each answer sees the turns before it.

    Only completed exchanges enter ``history``: a failed or interrupted answer
    leaves it unchanged, so asking again continues cleanly.
    """

    def __init__(
        self, system: str | None = None, model: str | None = None, backend: str | None = None, **defaults: Any
    ) -> None:
        self.system = system
        self.model = model
        self.backend = backend
        self.defaults = defaults
        self.history: list[Message] = []

    def _kwargs(self, overrides: dict[str, Any]) -> dict[str, Any]:
        merged = {"system": self.system, "model": self.model, "backend": self.backend, **self.defaults}
        merged.update({k: v for k, v in overrides.items() if v is not None})
        merged["history"] = list(self.history)
        return merged

    def _remember(self, prompt: str, response: AIResponse) -> AIResponse:
        if response.succeeded:
            self.history.append({"role": "user", "content": prompt})
            self.history.append({"role": "assistant", "content": response.text})
        return response

    def ask(self, prompt: str, **kwargs: Any) -> AIResponse:
        return self._remember(prompt, ask(prompt, **self._kwargs(kwargs)))

    async def aask(self, prompt: str, **kwargs: Any) -> AIResponse:
        return self._remember(prompt, await aask(prompt, **self._kwargs(kwargs)))

    def stream(self, prompt: str, **kwargs: Any) -> AnswerStream:
        """Stream an answer; the exchange is remembered when the stream completes."""
        request, decided = _request_from(prompt, self._kwargs(kwargs))
        return AnswerStream(request, decided, on_done=lambda r: self._remember(prompt, r))

    def astream(self, prompt: str, **kwargs: Any) -> AsyncAnswerStream:
        request, decided = _request_from(prompt, self._kwargs(kwargs))
        return AsyncAnswerStream(request, decided, on_done=lambda r: self._remember(prompt, r))

    def reset(self) -> None:
        """Forget the conversation (the system prompt stays)."""
        self.history.clear()

    def __enter__(self) -> Chat:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.reset()

    def __len__(self) -> int:
        return len(self.history) // 2

    def __repr__(self) -> str:
        return f"<Chat {len(self)} exchanges, backend={self.backend!r}, model={self.model!r}>"


def chat(
    system: str | None = None, model: str | None = None, backend: str | None = None, **defaults: Any
) -> Chat:
    """Start a conversation; use ``.ask()`` / ``.stream()``; ``.history`` holds the turns."""
    return Chat(system=system, model=model, backend=backend, **defaults)
