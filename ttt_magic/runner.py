"""The event-loop bridge: one daemon thread owns an asyncio loop for all sync calls.

Why not ``asyncio.run`` or nest_asyncio (see docs/architecture.md): inside ipykernel a loop
already runs on the main thread, so ``asyncio.run`` fails there, and patching
the loop to re-enter is process-global and breaks under newer ipykernel, uvloop
and anyio. A private loop on its own thread works the same in a notebook, a
terminal, a script, or under someone else's running loop.

The caller's thread never blocks uninterruptibly: it polls futures and queues
with a short timeout, so a kernel interrupt (SIGINT -> KeyboardInterrupt on the
main thread) is seen at once, cancels the request exactly once, and is re-raised.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import os
import queue
import sys
import threading
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from typing import Any, TypeVar

__all__ = ["Runner", "SyncStream", "iterate", "loop", "run"]

T = TypeVar("T")

#: How often a waiting caller wakes to notice an interrupt (seconds).
POLL_INTERVAL = 0.05
#: How long an interrupted caller waits for the cancelled task to finish its cleanup.
CANCEL_GRACE = 0.4

_DONE = object()


class Runner:
    """Owns the background loop; created lazily, recreated after ``fork``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._pid: int | None = None

    # ------------------------------------------------------------------ lifecycle

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The runner's loop, started on first use."""
        if self._loop is None or self._pid != os.getpid() or not self._loop.is_running():
            with self._lock:
                if self._loop is None or self._pid != os.getpid() or not self._loop.is_running():
                    self._start()
        assert self._loop is not None
        return self._loop

    def _start(self) -> None:
        new_loop = asyncio.new_event_loop()
        started = threading.Event()

        def main() -> None:
            asyncio.set_event_loop(new_loop)
            new_loop.call_soon(started.set)
            try:
                new_loop.run_forever()
            finally:
                new_loop.close()

        thread = threading.Thread(target=main, name="ttt_magic-loop", daemon=True)
        thread.start()
        started.wait()
        self._loop, self._thread, self._pid = new_loop, thread, os.getpid()

    def in_loop_thread(self) -> bool:
        return self._thread is not None and threading.current_thread() is self._thread

    def shutdown(self, timeout: float = 2.0) -> None:
        """Close pooled connections, cancel what still runs, stop the thread."""
        loop_, thread = self._loop, self._thread
        if loop_ is None or thread is None or self._pid != os.getpid() or not loop_.is_running():
            return

        async def finish() -> None:
            http = sys.modules.get("ttt_magic.backends.http")
            if http is not None and hasattr(http, "aclose_clients"):
                try:
                    await http.aclose_clients()
                except Exception:
                    pass
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            if tasks:
                await asyncio.wait(tasks, timeout=timeout / 2)
            await loop_.shutdown_asyncgens()

        try:
            asyncio.run_coroutine_threadsafe(finish(), loop_).result(timeout)
        except Exception:
            pass
        loop_.call_soon_threadsafe(loop_.stop)
        thread.join(timeout)
        self._loop = self._thread = None

    # ------------------------------------------------------------------ running

    def _check_thread(self) -> None:
        if self.in_loop_thread():
            raise RuntimeError(
                "A synchronous ttt_magic call was made from inside ttt_magic's own event loop "
                "(for example inside a backend). Use the async form: `await aask(...)`."
            )

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run ``coro`` on the loop and return its result; interrupt-safe."""
        if self.in_loop_thread():
            coro.close()
        self._check_thread()
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return _wait(future, timeout)
        except KeyboardInterrupt:
            future.cancel()
            try:
                future.exception(timeout=CANCEL_GRACE)
            except BaseException:
                pass
            raise

    def iterate(self, factory: Callable[[], AsyncIterator[T]]) -> SyncStream[T]:
        """Iterate an async generator from sync code, chunk by chunk (see ``SyncStream``)."""
        self._check_thread()
        return SyncStream(factory, self.loop)


class SyncStream(Iterator[T]):
    """A sync iterator over an async generator running on the runner's loop.

    The generator hands items over through a queue; the caller reads with a
    short timeout. Stopping early (``close()``, garbage collection, or any
    exception such as KeyboardInterrupt raised while waiting) cancels the
    generator's task once and waits briefly for its cleanup, so no request is
    left running.

    A class rather than a generator function on purpose: CPython 3.11 can skip a
    generator's ``finally`` when the interrupt lands on the loop's back-jump, and
    then the request would run on unobserved.
    """

    def __init__(self, factory: Callable[[], AsyncIterator[T]], loop: asyncio.AbstractEventLoop) -> None:
        # The pump must not refer to ``self``: the running task would keep this object
        # alive, and dropping the last reference to it would no longer cancel anything.
        items: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        finished = threading.Event()
        self._items, self._finished = items, finished
        self._closed = False
        #: When set to (seconds, value): ``next()`` returns ``value`` after that long with no
        #: item, so a reader can refresh a display while the source is silent.
        self.idle: tuple[float, Any] | None = None

        async def pump() -> None:
            try:
                async for item in factory():
                    items.put(("item", item))
            except asyncio.CancelledError:
                raise
            except BaseException as exc:
                items.put(("error", exc))
            else:
                items.put(("done", None))
            finally:
                finished.set()

        self._future = asyncio.run_coroutine_threadsafe(pump(), loop)

    def __iter__(self) -> SyncStream[T]:
        return self

    def __next__(self) -> T:
        if self._closed:
            raise StopIteration
        try:
            waited = 0.0
            while True:
                try:
                    kind, value = self._items.get(timeout=POLL_INTERVAL)
                except queue.Empty:
                    kind, value = "", None
                    waited += POLL_INTERVAL
                    if self.idle is not None and waited >= self.idle[0]:
                        return self.idle[1]
                if kind == "item":
                    return value
                if kind == "error":
                    self._closed = True
                    raise value
                if kind == "done":
                    self._closed = True
                    raise StopIteration
        except (StopIteration, Exception):
            raise
        except BaseException:  # KeyboardInterrupt, SystemExit: cancel, then let it through
            self.close()
            raise

    def close(self) -> None:
        """Cancel the generator if it still runs; wait briefly for its cleanup."""
        if self._closed and self._finished.is_set():
            return
        self._closed = True
        if not self._future.done():
            self._future.cancel()
        self._finished.wait(CANCEL_GRACE)

    def __del__(self) -> None:
        if not self._finished.is_set():
            self._future.cancel()


def _wait(future: concurrent.futures.Future[T], timeout: float | None) -> T:
    """``future.result`` in short slices, so KeyboardInterrupt is raised promptly."""
    waited = 0.0
    while True:
        try:
            return future.result(timeout=POLL_INTERVAL)
        except concurrent.futures.TimeoutError:
            if future.done():  # the coroutine itself raised TimeoutError
                raise
            waited += POLL_INTERVAL
            if timeout is not None and waited >= timeout:
                future.cancel()
                raise TimeoutError(f"no result after {timeout} s") from None


_runner = Runner()
atexit.register(_runner.shutdown)


def loop() -> asyncio.AbstractEventLoop:
    """The background loop (for code that must schedule work on it, e.g. widgets)."""
    return _runner.loop


def run(coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
    return _runner.run(coro, timeout)


def iterate(factory: Callable[[], AsyncIterator[T]]) -> SyncStream[T]:
    return _runner.iterate(factory)
