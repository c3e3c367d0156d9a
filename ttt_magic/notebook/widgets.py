"""The selectors panel and the ask box: ipywidgets front ends to the configuration and the API.

``panel()`` (``notebook/panel.py``) edits the runtime configuration (backend,
model, streaming, temperature, max tokens, system prompt) and follows changes
made elsewhere, so the configuration stays the single source of truth.
``ask_box()`` (``notebook/askbox.py``) is a small chat front end for teaching
demos and Voila. What both share (availability, request defaults, the rule that
widgets are touched only from the kernel's main thread) is in
``notebook/widgetkit.py``.

Importing this module imports no ipywidgets: widgets are built on first use, so
``%load_ext ttt_magic`` stays light and works without them.
"""

from __future__ import annotations

from .askbox import AskBox, ask_box
from .panel import SelectorsPanel, _model_cache, catalogue_models, panel
from .widgetkit import REQUEST_KEYS, WIDGETS_HINT, available, get_default, request_defaults, set_default

__all__ = [
    "REQUEST_KEYS",
    "WIDGETS_HINT",
    "AskBox",
    "SelectorsPanel",
    "_model_cache",
    "ask_box",
    "available",
    "catalogue_models",
    "get_default",
    "panel",
    "request_defaults",
    "set_default",
]
