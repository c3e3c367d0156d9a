"""The interception chain: one place around every backend call.

Each attempt the router makes goes through the chain: a resolved request in,
a stream of items out (text chunks, then one ``StreamEnd`` with usage, cost
and finish reason; a failure raises ``ProviderError``). That one shape serves
``ask`` and ``stream`` alike: for a non-streamed call the backend's whole
answer is one chunk.

Interceptors wrap the backend call the way middleware wraps a handler::

    async def log(call: Resolved, proceed: Handler) -> AsyncIterator[Item]:
        print("asking", call.backend, call.model)
        async for item in proceed(call):
            yield item

    chain.add("log", log, order=50)

An interceptor may answer without calling ``proceed`` (a cache hit, a
replayed recording), change the call before passing it on, or observe what
comes back (usage accounting, budgets, recording). Lower ``order`` runs
further out: usage accounting (0) sees cache hits (30) as calls with no new
cost.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Callable

from .models import StreamEnd
from .request import Resolved

__all__ = ["Chain", "Handler", "Interceptor", "Item", "chain", "keeping"]

Item = str | StreamEnd
Handler = Callable[[Resolved], AsyncIterator[Item]]
Interceptor = Callable[[Resolved, Handler], AsyncIterator[Item]]


class Chain:
    """An ordered set of named interceptors; ``wrap`` builds the handler for one attempt."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._links: dict[str, tuple[int, Interceptor]] = {}
        self._ordered: tuple[Interceptor, ...] = ()

    def add(self, name: str, interceptor: Interceptor, *, order: int = 50) -> None:
        """Install (or replace) the interceptor called ``name``."""
        with self._lock:
            self._links[name] = (order, interceptor)
            self._reorder()

    def remove(self, name: str) -> None:
        with self._lock:
            self._links.pop(name, None)
            self._reorder()

    def names(self) -> list[str]:
        with self._lock:
            return [n for n, _ in sorted(self._links.items(), key=lambda kv: kv[1][0])]

    def __contains__(self, name: str) -> bool:
        return name in self._links

    def _reorder(self) -> None:
        self._ordered = tuple(i for _, i in sorted(self._links.values(), key=lambda link: link[0]))

    def wrap(self, final: Handler) -> Handler:
        """``final`` (the backend call) inside every interceptor, outermost first."""
        handler = final
        for interceptor in reversed(self._ordered):
            handler = _bind(interceptor, handler)
        return handler


def _bind(interceptor: Interceptor, proceed: Handler) -> Handler:
    def handler(call: Resolved) -> AsyncIterator[Item]:
        return interceptor(call, proceed)

    return handler


#: The process-wide chain the router runs every attempt through.
chain = Chain()


async def keeping(
    items: AsyncIterator[Item], keep: Callable[[list[str], StreamEnd], None]
) -> AsyncIterator[Item]:
    """Pass ``items`` through; once they completed, call ``keep(text chunks, end)``.

    For the links that store answers (the cache, recording): an answer counts
    as complete when its ``StreamEnd`` arrived and no error followed; one
    closed right after its end is complete too, one cut off or failed never is.
    Thinking travels in ``end.reasoning``, so only text chunks are kept.
    """
    import asyncio

    parts: list[str] = []
    end: StreamEnd | None = None
    finished = False
    try:
        async for item in items:
            if isinstance(item, StreamEnd):
                end = item
            elif isinstance(item, str) and item:
                parts.append(str.__str__(item))
            yield item
        finished = True
    except (GeneratorExit, asyncio.CancelledError):
        finished = end is not None  # closed after its end: a finished answer
        raise
    finally:
        if finished and end is not None:
            keep(parts, end)
