"""Usage accounting (``ttt_magic.usage()``): calls, failures, tokens and cost, by backend and model.

It is an interceptor (``chain``, order 0, outermost), so it counts what
reached a backend, once per attempt, with what that attempt cost: a retried
request is two calls, a cache hit or a replayed recording is a call with no
new cost, and an interrupted call is counted (its tokens are unknown).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass
from typing import Any

from .chain import Handler, Item, chain
from .errors import ProviderError
from .models import StreamEnd
from .request import Resolved

__all__ = ["Tally", "record", "reset", "usage"]


@dataclass
class Tally:
    """What one backend and model (or the whole process) has used."""

    calls: int = 0
    failures: int = 0
    interrupted: int = 0
    cached: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    cost: float = 0.0
    #: Calls whose cost could not be known (no price, or no usage reported).
    unpriced: int = 0
    time: float = 0.0

    def add(self, end: StreamEnd | None, *, failed: bool, interrupted: bool, elapsed: float) -> None:
        self.calls += 1
        self.failures += failed
        self.interrupted += interrupted
        self.time += elapsed
        if end is None:
            return
        cached = bool(end.metadata.get("cached") or end.metadata.get("replayed"))
        self.cached += cached
        self.tokens_in += end.tokens_in or 0
        self.tokens_out += end.tokens_out or 0
        if cached:
            return
        if end.cost is None:
            self.unpriced += 1
        else:
            self.cost += end.cost


_lock = threading.Lock()
_total = Tally()
_by_model: dict[tuple[str, str | None], Tally] = {}


def record(
    backend: str, model: str | None, end: StreamEnd | None, *, failed: bool, interrupted: bool, elapsed: float
) -> None:
    """Count one attempt."""
    with _lock:
        _total.add(end, failed=failed, interrupted=interrupted, elapsed=elapsed)
        key = (backend, (end.model if end is not None and end.model else None) or model)
        tally = _by_model.get(key)
        if tally is None:
            tally = _by_model[key] = Tally()
        tally.add(end, failed=failed, interrupted=interrupted, elapsed=elapsed)


def usage(by: str | None = None) -> Any:
    """This session's totals (a dict), or with ``by="model"`` one dict per backend and model.

    ``cost`` is in dollars and counts only what was spent (not cache hits);
    ``unpriced`` says how many calls had no known price, so a total of 0.0
    next to ``unpriced > 0`` means "unknown", not "free".
    """
    with _lock:
        if by is None:
            out = asdict(_total)
            out["cost"] = round(out["cost"], 6)
            return out
        if by != "model":
            raise ValueError(f"usage(by=...) takes 'model' or nothing, not {by!r}.")
        rows = []
        for (backend, model), tally in sorted(_by_model.items(), key=lambda kv: (kv[0][0], kv[0][1] or "")):
            row = {"backend": backend, "model": model, **asdict(tally)}
            row["cost"] = round(row["cost"], 6)
            rows.append(row)
        return rows


def reset() -> None:
    """Forget the counts (tests; a fresh start in a long-running kernel)."""
    global _total
    with _lock:
        _total = Tally()
        _by_model.clear()


async def account(call: Resolved, proceed: Handler) -> AsyncIterator[Item]:
    """The interceptor: pass everything through, then count the attempt once."""
    started = time.perf_counter()
    end: StreamEnd | None = None
    failed = interrupted = False
    try:
        async for item in proceed(call):
            if isinstance(item, StreamEnd):
                end = item
            yield item
    except ProviderError as exc:
        failed = True
        end = end or getattr(exc, "end", None)
        raise
    except (asyncio.CancelledError, GeneratorExit):
        interrupted = end is None  # closed after its end is a finished call, not an interruption
        raise
    except BaseException:
        failed = True
        raise
    finally:
        record(
            call.backend,
            call.model,
            end,
            failed=failed,
            interrupted=interrupted,
            elapsed=time.perf_counter() - started,
        )


chain.add("usage", account, order=0)
