"""The public Python API: ask, stream, aask, astream, ask_many, chat, route.

Sync forms run on the runner's background loop (so they work in scripts, in
Jupyter cells and under a running loop); async forms run on the caller's loop.
Backend failures never raise out of ``ask``: they come back as a failed
``AIResponse``. Bad arguments raise a ``UsageError`` (a ``ValueError``) before
anything is sent.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

from . import router, runner, scope
from .errors import UsageError
from .models import AIResponse, Message, Thinking
from .request import REQUEST_ARGS, Request, check_kwargs
from .router import Route, StreamOutcome

__all__ = [
    "AnswerStream",
    "AsyncAnswerStream",
    "Chat",
    "Interrupted",
    "aask",
    "ask",
    "ask_many",
    "astream",
    "chat",
    "route",
    "usage",
]

INTERRUPTED = "Interrupted: the answer is incomplete."


# --------------------------------------------------------------------------- requests


def usage(by: str | None = None) -> Any:
    """This session's calls, failures, tokens and cost (see ``ttt_magic.usage``)."""
    from .accounting import usage as totals

    return totals(by)


def _request(prompt: Any, kwargs: dict[str, Any], where: str) -> tuple[Request, Route]:
    """Validate the call and decide the route; values left open are settled per attempt."""
    check_kwargs(kwargs, REQUEST_ARGS, where=where)
    history = kwargs.get("history")
    images = kwargs.get("images")
    if images:
        from .images import to_image  # only when a call sends images

        kwargs = {**kwargs, "images": [to_image(i) for i in ([images] if _single(images) else images)]}
    request = Request(prompt, **{**kwargs, "history": list(history or [])})
    settings = scope.effective()
    _interceptors(settings, request)
    decided = router.decide(request, settings)
    if request.effort is not None:
        _check_capability(request, decided, settings, "reasoning", f"effort={request.effort!r}")
    if request.images:
        _check_capability(request, decided, settings, "vision", "images")
    return request, decided


def _single(images: Any) -> bool:
    """One image given alone (``images=fig``) rather than a list of them."""
    return (
        isinstance(images, (bytes, bytearray, str))
        or not isinstance(images, (list, tuple))
        or (isinstance(images, tuple) and len(images) == 2 and isinstance(images[1], (bytes, bytearray)))
    )


_CANNOT = {
    "reasoning": "does not reason, so {what} has nothing to control",
    "vision": "does not read images, so {what} cannot be sent to it",
}
_LABEL = {"reasoning": "Reasoning", "vision": "Vision-capable"}


def _check_capability(request: Request, decided: Route, settings: Any, capability: str, what: str) -> None:
    """A feature the routed model lacks (per the catalogue) is refused before sending, naming models with it.

    A model the catalogue does not know is sent as asked: the provider has the last word.
    """
    from .registry import model_registry

    info = model_registry.get_model(decided.model, settings) if decided.model else None
    if info is None or capability in info.capabilities:
        return
    able = [m.name for m in model_registry.list_models(info.provider) if capability in m.capabilities]
    offer = f" {_LABEL[capability]} models of {info.provider}: {', '.join(able[:4])}." if able else ""
    raise UsageError(f"Model {info.name!r} {_CANNOT[capability].format(what=what)}.{offer}")


def _interceptors(settings: Any, request: Request) -> None:
    """Load the optional chain links the settings or the call ask for (cheap when none is on)."""
    values = settings.values
    if request.cache or values.get("cache") or values.get("record") or values.get("replay"):
        from . import cache  # installs the cache and record/replay links

        cache.ensure_installed()


class Interrupted(KeyboardInterrupt):
    """Ctrl-C stopped a call; ``.response`` is what it had, marked interrupted (``.failed``)."""

    def __init__(self, response: AIResponse) -> None:
        super().__init__(response.error)
        self.response = response


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
    return _request(prompt, {**_named(locals()), **kwargs}, "route")[1]


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
    """Ask once and wait for the whole answer. Failures come back as ``response.failed``.

    Ctrl-C (the kernel's Stop button) cancels the request and raises
    ``Interrupted``, a ``KeyboardInterrupt`` whose ``.response`` is the
    answer marked interrupted, so a caller (the magic) can keep and show it.
    """
    request, decided = _request(prompt, {**_named(locals()), **kwargs}, "ask")
    try:
        return runner.run(router.complete(decided, request))
    except KeyboardInterrupt as exc:
        raise Interrupted(_interrupted("", decided)) from exc


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
    request, decided = _request(prompt, {**_named(locals()), **kwargs}, "aask")
    return await router.complete(decided, request)


class _Answer:
    """What both stream forms share: the request, the route, the text so far, the end."""

    def __init__(
        self,
        request: Request,
        decided: Route,
        on_done: Callable[[AIResponse], Any] | None = None,
        *,
        parts: bool = False,
    ) -> None:
        self.request = request
        self.route = decided
        self.response: AIResponse | None = None
        #: Whether iteration yields the model's thinking too (as ``Thinking`` pieces).
        self.parts = parts
        self._parts: list[str] = []
        self._thoughts: list[str] = []
        self._outcome = StreamOutcome()
        self._on_done = on_done

    @property
    def text(self) -> str:
        """The answer text received so far."""
        return "".join(self._parts)

    @property
    def thinking(self) -> str:
        """The thinking received so far (with ``parts=True``; else on ``.response.reasoning``)."""
        return "".join(self._thoughts)

    def _take(self, chunk: str | Thinking) -> str | Thinking:
        if isinstance(chunk, Thinking):
            self._thoughts.append(chunk.text)
        else:
            self._parts.append(chunk)
        return chunk

    def _done(self, response: AIResponse) -> None:
        self.response = response
        if self._on_done is not None:
            self._on_done(response)

    def _finished(self) -> None:
        final = self._outcome.response  # an empty failed AIResponse is falsy: test for None
        self._done(final if final is not None else self._cut())

    def _stop(self) -> None:
        if self.response is None:
            self._done(self._cut())

    def _cut(self) -> AIResponse:
        return _interrupted(self.text, self.route).copy_with(reasoning=self.thinking or None)


class AnswerStream(_Answer):
    """Iterate to get text chunks as they arrive; ``.response`` is the final answer.

    The request starts on the first ``next()``. ``close()`` (or leaving a
    ``with`` block), Ctrl-C while waiting, or dropping the last reference to the
    stream (``break`` out of ``for chunk in stream(...)``) cancels it and closes
    the HTTP response; after ``close()`` or Ctrl-C, ``.response`` holds the text
    received so far, marked interrupted.
    """

    def __init__(
        self,
        request: Request,
        decided: Route,
        on_done: Callable[[AIResponse], Any] | None = None,
        *,
        parts: bool = False,
    ) -> None:
        super().__init__(request, decided, on_done, parts=parts)
        self._iterator: runner.SyncStream[str | Thinking] | None = None
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
            route, request, outcome, parts = self.route, self.request, self._outcome, self.parts
            self._iterator = runner.iterate(lambda: router.stream(route, request, outcome, parts=parts))
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
        return self._take(chunk)

    def close(self) -> None:
        """Cancel the request if it is still running; keeps what arrived.

        A stream closed before it started ends as an interrupted, empty answer.
        """
        if self.response is not None:
            return
        if self._iterator is not None:
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
    parts: bool = False,
    **kwargs: Any,
) -> AnswerStream:
    """Stream the answer: ``for chunk in stream(...)``; then ``.response``.

    Chunks are answer text only; the model's thinking, when it sends one, is
    on ``.response.reasoning``. With ``parts=True`` the thinking is yielded
    too, as it arrives, as ``ttt_magic.models.Thinking`` pieces (not ``str``).
    """
    request, decided = _request(prompt, {**_named(locals()), **kwargs}, "stream")
    return AnswerStream(request, decided, parts=parts)


class AsyncAnswerStream(_Answer):
    """``async for chunk in astream(...)``; then ``.response``. Runs on the caller's loop."""

    def __init__(
        self,
        request: Request,
        decided: Route,
        on_done: Callable[[AIResponse], Any] | None = None,
        *,
        parts: bool = False,
    ) -> None:
        super().__init__(request, decided, on_done, parts=parts)
        self._agen: AsyncIterator[str | Thinking] | None = None

    def __aiter__(self) -> AsyncAnswerStream:
        return self

    async def __anext__(self) -> str:
        if self.response is not None:
            raise StopAsyncIteration
        if self._agen is None:
            self._agen = router.stream(self.route, self.request, self._outcome, parts=self.parts)
        try:
            chunk = await self._agen.__anext__()
        except StopAsyncIteration:
            self._finished()
            raise
        except BaseException:
            await self.aclose()
            raise
        return self._take(chunk)

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
    parts: bool = False,
    **kwargs: Any,
) -> AsyncAnswerStream:
    """Async streaming: ``async for chunk in astream(...)``; then ``.response`` (``parts``: see stream)."""
    request, decided = _request(prompt, {**_named(locals()), **kwargs}, "astream")
    return AsyncAnswerStream(request, decided, parts=parts)


def _named(values: dict[str, Any]) -> dict[str, Any]:
    """The named arguments of an API function that were given (``locals()`` minus the prompt)."""
    return {k: v for k, v in values.items() if k in _NAMED and v is not None}


_NAMED = ("model", "backend", "system", "temperature", "max_tokens", "history")


def _request_from(prompt: Any, kwargs: dict[str, Any]) -> tuple[Request, Route]:
    return _request(prompt, {k: v for k, v in kwargs.items() if v is not None}, "ask")


def ask_many(inputs: Iterable[Any], *args: Any, **kwargs: Any) -> Any:
    """Ask the same question of many items; answers in input order (see ``ttt_magic.batch``)."""
    from .batch import ask_many as run_batch

    return run_batch(inputs, *args, **kwargs)


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

    def stream(self, prompt: str, *, parts: bool = False, **kwargs: Any) -> AnswerStream:
        """Stream an answer; the exchange is remembered when the stream completes."""
        request, decided = _request_from(prompt, self._kwargs(kwargs))
        return AnswerStream(request, decided, on_done=lambda r: self._remember(prompt, r), parts=parts)

    def astream(self, prompt: str, *, parts: bool = False, **kwargs: Any) -> AsyncAnswerStream:
        request, decided = _request_from(prompt, self._kwargs(kwargs))
        return AsyncAnswerStream(request, decided, on_done=lambda r: self._remember(prompt, r), parts=parts)

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
