"""What the selectors panel and the ask box share: availability, request defaults, threads.

Threading rule (ipykernel 7 drops or misroutes widget and output messages sent
from other threads, ipywidgets #4020, ipykernel #1450): widgets are touched only
from the kernel's main thread. Slow work runs as a coroutine on the kernel's own
running loop that awaits the result computed on the runner's loop; configuration
callbacks arriving from another thread are handed to the kernel loop with
``call_soon_threadsafe``. ipywidgets is imported when a widget is built, never
when this module is imported.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any

#: One line telling how to get the widgets, for ``%ttt_config`` without ipywidgets.
WIDGETS_HINT = "Install ipywidgets for the interactive panel: pip install 'ttt-magic[widgets]'"

#: The request defaults the panel edits; they are configuration keys, so every call
#: (``%%ask``, ``ask()``, the ask box) uses them when it names none of its own.
REQUEST_KEYS = ("temperature", "max_tokens", "system")


def available() -> bool:
    """Whether ipywidgets can be imported (the ``widgets`` extra is installed)."""
    import importlib.util

    return importlib.util.find_spec("ipywidgets") is not None


def _ipywidgets() -> Any:
    try:
        import ipywidgets
    except ImportError as exc:
        raise ImportError(WIDGETS_HINT) from exc
    return ipywidgets


# --------------------------------------------------------------------------- request defaults


def get_default(key: str) -> Any:
    """A request default (temperature, max_tokens or system) from the configuration."""
    from ..config import get_config

    return get_config().get(key)


def set_default(key: str, value: Any) -> None:
    """Set a request default through ``configure()``; None unsets it."""
    if key not in REQUEST_KEYS:
        raise KeyError(f"unknown request default {key!r}; known: {', '.join(REQUEST_KEYS)}")
    from ..config import configure

    configure(**{key: value})


def request_defaults() -> dict[str, Any]:
    """The request defaults that are set (what the panel shows)."""
    return {k: v for k in REQUEST_KEYS if (v := get_default(k)) is not None}


# --------------------------------------------------------------------------- loops


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _on_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


async def _on_runner(coro: Coroutine[Any, Any, Any]) -> Any:
    """Await ``coro`` run on the runner's background loop, from any other loop."""
    from .. import runner

    return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, runner.loop()))


def _start(
    coro: Coroutine[Any, Any, Any], loop: asyncio.AbstractEventLoop | None
) -> asyncio.Task[Any] | None:
    """Run ``coro`` on the kernel's loop without waiting; with no loop (a script), run it to the end now."""
    running = _running_loop()
    if running is not None:
        return running.create_task(coro)
    if loop is not None and loop.is_running() and not loop.is_closed():
        asyncio.run_coroutine_threadsafe(coro, loop)
        return None
    asyncio.run(coro)
    return None


def _close_tree(widget: Any) -> None:
    for child in getattr(widget, "children", ()):
        _close_tree(child)
    widget.close()
