"""Scoped settings: ``with ttt_magic.settings(temperature=0): ...`` changes nothing global.

A context variable holds the overrides, so a batch, a test or one thread can
ask under other settings while every other caller keeps the configured ones.
Requests read their settings once, when routed (``effective()``), and carry
that snapshot through every attempt.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from .config import SCHEMA, ConfigError, Settings, deep_merge, get_config

__all__ = ["active", "current", "effective", "settings"]

SCOPED_SOURCE = "settings() scope"

_overrides: contextvars.ContextVar[tuple[dict[str, Any], ...]] = contextvars.ContextVar(
    "ttt_magic_settings", default=()
)
_cache: dict[tuple[int, int], tuple[Settings, tuple[dict[str, Any], ...], Settings]] = {}
#: The settings of the request being run (set by the router): what code below it reads.
_active: contextvars.ContextVar[Settings | None] = contextvars.ContextVar("ttt_magic_active", default=None)


def _convert(changes: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key, raw in changes.items():
        if key not in SCHEMA:
            import difflib

            close = difflib.get_close_matches(key, list(SCHEMA), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"Unknown setting {key!r}.{hint}")
        try:
            out[key] = None if raw is None else SCHEMA[key].convert(raw)
        except ValueError as exc:
            raise ConfigError(f"Setting {key!r}: {exc}.") from None
    return out


@contextmanager
def settings(**changes: Any) -> Iterator[Settings]:
    """Within the block (this thread or task and what it starts), these settings win over all others.

    Values are validated like ``configure()``'s; blocks nest, the inner one
    winning. Yields the effective settings.
    """
    converted = _convert(changes)
    token = _overrides.set((*_overrides.get(), converted))
    try:
        yield effective()
    finally:
        _overrides.reset(token)


def effective() -> Settings:
    """The settings in force here: the configured ones, then any ``settings()`` scopes."""
    base = get_config()
    layers = _overrides.get()
    if not layers:
        return base
    key = (id(base), id(layers))
    hit = _cache.get(key)
    if hit is not None and hit[0] is base and hit[1] is layers:
        return hit[2]
    values, sources = dict(base.values), dict(base.sources)
    for layer in layers:
        for name, value in layer.items():
            if value is None:
                values[name] = SCHEMA[name].default
                sources[name] = SCOPED_SOURCE
            elif SCHEMA[name].merge:
                values[name] = deep_merge(values[name], value)
                sources[name] = f"{SCOPED_SOURCE} + {sources[name]}"
            else:
                values[name] = value
                sources[name] = SCOPED_SOURCE
    scoped = Settings(values, sources, list(base.files))
    if len(_cache) > 64:
        _cache.clear()
    _cache[key] = (base, layers, scoped)
    return scoped


def current() -> Settings:
    """The settings in force for the code running now.

    Inside a request (the router, the chain, a backend, the model registry
    they consult), the request's own snapshot: one read of the configuration
    per request, and a backend cannot see settings change under it halfway.
    Elsewhere, ``effective()``.
    """
    snapshot = _active.get()
    return snapshot if snapshot is not None else effective()


@contextmanager
def active(snapshot: Settings) -> Iterator[None]:
    """Make ``snapshot`` what ``current()`` returns within the block (the router's attempts)."""
    token = _active.set(snapshot)
    try:
        yield
    finally:
        try:
            _active.reset(token)
        except ValueError:  # closed from another context (a generator finalised elsewhere)
            _active.set(None)
