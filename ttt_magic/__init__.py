"""ttt_magic: ask large language models from Python and Jupyter.

``%load_ext ttt_magic`` registers the ``%%ask`` family of magics. The library
underneath works without IPython::

    from ttt_magic import ask, stream
    print(ask("Say hi", backend="mock"))

Public names are imported lazily (PEP 562) so that ``import ttt_magic`` and
``%load_ext ttt_magic`` stay nearly free: no HTTP client, YAML parser, widget
library or backend module is loaded until it is used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_LAZY = {
    "ask": "ttt_magic.api",
    "aask": "ttt_magic.api",
    "stream": "ttt_magic.api",
    "astream": "ttt_magic.api",
    "ask_many": "ttt_magic.api",
    "chat": "ttt_magic.api",
    "route": "ttt_magic.api",
    "Chat": "ttt_magic.api",
    "configure": "ttt_magic.config",
    "settings": "ttt_magic.scope",
    "usage": "ttt_magic.accounting",
    "estimate": "ttt_magic.batch",
    "aask_many": "ttt_magic.batch",
    "submit_batch": "ttt_magic.batchjobs",
    "BatchJob": "ttt_magic.batchjobs",
    "Answers": "ttt_magic.batch",
    "get_config": "ttt_magic.config",
    "model_registry": "ttt_magic.registry",
    "backend_registry": "ttt_magic.registry",
    "register_backend": "ttt_magic.registry",
    "load_plugin": "ttt_magic.plugins",
    "discover_plugins": "ttt_magic.plugins",
    "AIResponse": "ttt_magic.models",
    "ModelInfo": "ttt_magic.models",
    "BaseBackend": "ttt_magic.backends.base",
}

__all__ = [
    "AIResponse",
    "Answers",
    "BaseBackend",
    "BatchJob",
    "Chat",
    "ModelInfo",
    "aask",
    "aask_many",
    "ask",
    "ask_many",
    "astream",
    "backend_registry",
    "chat",
    "configure",
    "discover_plugins",
    "estimate",
    "get_config",
    "last_response",
    "load_ipython_extension",
    "load_plugin",
    "model_registry",
    "register_backend",
    "route",
    "settings",
    "stream",
    "submit_batch",
    "unload_ipython_extension",
    "usage",
]

#: The most recent answer given by ``%%ask`` / ``%ask`` (an ``AIResponse``), or None.
last_response: Any = None

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from .accounting import usage
    from .api import Chat, aask, ask, ask_many, astream, chat, route, stream
    from .backends.base import BaseBackend
    from .batch import Answers, aask_many, estimate
    from .batchjobs import BatchJob, submit_batch
    from .config import configure, get_config
    from .models import AIResponse, ModelInfo
    from .plugins import discover_plugins, load_plugin
    from .registry import backend_registry, model_registry, register_backend
    from .scope import settings


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'ttt_magic' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext ttt_magic``: register the magics (the rest loads on first use)."""
    from .notebook.magics import load_ipython_extension as load

    load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    """``%unload_ext ttt_magic``: remove the magics and their hooks."""
    from .notebook.magics import unload_ipython_extension as unload

    unload(ipython)
