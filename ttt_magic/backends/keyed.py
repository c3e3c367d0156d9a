"""``KeyedBackend``: what every hosted provider reached with an API key shares.

The key (from ``backends.<name>.api_key`` or the provider's own setting, masked
everywhere but the request header), availability and its reason, the base URL,
and the facts ``backends.http`` needs to word an error without the key in it.
Subclasses name their provider in class attributes and speak their protocol.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

from ..errors import BackendUnavailable, ProviderError
from ..secrets import reveal
from .template import ProtocolBackend

__all__ = ["KeyedBackend"]

#: Seconds ``status()`` waits for the models endpoint, and how long its answer is reused.
PROBE_TIMEOUT = 3.0
PROBE_TTL = 5.0


class KeyedBackend(ProtocolBackend):
    """A provider behind an API key; subclasses set the class attributes below."""

    #: The catalogue's provider name ("openai") and the name shown in messages ("OpenAI").
    provider = ""
    provider_label = ""
    #: The setting holding the key, and the environment variables that feed it (first = advised).
    key_setting: str | None = None
    key_envs: tuple[str, ...] = ()
    #: The setting holding the API root, and its default.
    base_url_setting = ""
    default_base_url = ""
    #: Seconds a fetched model list is reused (``backends.<name>.models_ttl`` overrides).
    models_ttl = 300.0

    def __init__(self, config: dict[str, Any] | None = None) -> None:
        super().__init__(config)
        cfg = self.backend_config
        base = cfg.get("base_url") or cfg.get(self.base_url_setting) or self.default_base_url
        self.base_url = str(base).rstrip("/")
        self._models_cache: tuple[float, list[str]] | None = None
        self._check_cache: tuple[float, dict[str, Any]] | None = None

    @property
    def key_env(self) -> str | None:
        """The variable named in messages: the one that is set, else the advised one."""
        for name in self.key_envs:
            if os.environ.get(name):
                return name
        return self.key_envs[0] if self.key_envs else None

    def _key(self) -> str | None:
        """The plain key, for the request header only (``backends.<name>.api_key`` wins)."""
        cfg = self.backend_config
        return reveal(cfg.get("api_key") or (cfg.get(self.key_setting) if self.key_setting else None))

    def _key_advice(self) -> str:
        envs = " or ".join(self.key_envs) or "an API key"
        setting = f" (or configure({self.key_setting}=...))" if self.key_setting else ""
        return f"set {envs}{setting}, or use backend='mock' offline."

    @property
    def is_available(self) -> bool:
        return bool(self._key())

    @property
    def unavailable_reason(self) -> str | None:
        if self.is_available:
            return None
        return f"No {self.provider_label} API key: {self._key_advice()}"

    def _require_key(self) -> str:
        """The key, or ``BackendUnavailable`` saying how to provide one."""
        key = self._key()
        if not key:
            advice = self._key_advice()
            raise BackendUnavailable(
                f"No {self.provider_label} API key is set.", hint=advice[:1].upper() + advice[1:]
            )
        return key

    def _context(self, model: str | None) -> dict[str, Any]:
        """What ``backends.http`` needs to word errors for this provider (and scrub the key)."""
        return {
            "provider": self.provider_label,
            "key_env": self.key_env,
            "model": model,
            "secret": self._key(),
        }

    async def models(self) -> list[str]:
        """The provider's model ids, fetched once per ``models_ttl`` seconds; [] without a key."""
        ttl = float(self.backend_config.get("models_ttl") or self.models_ttl)
        now = time.monotonic()
        if self._models_cache is not None and now - self._models_cache[0] < ttl:
            return list(self._models_cache[1])
        if not self.is_available:
            return []
        found = await self._fetch_models()
        self._models_cache = (now, found)
        return list(found)

    async def _fetch_models(self) -> list[str]:
        """Ask the provider's models endpoint (each protocol has its own shape and paging)."""
        return []

    def cached_models(self) -> list[str] | None:
        """The last fetched model list while it is fresh, else None (never asks the network)."""
        ttl = float(self.backend_config.get("models_ttl") or self.models_ttl)
        cached = self._models_cache
        if cached is not None and time.monotonic() - cached[0] < ttl:
            return list(cached[1])
        return None

    def configured_models(self) -> list[str]:
        """The model names of ``backends.<name>.models`` (strings only)."""
        listed = self.backend_config.get("models")
        if not isinstance(listed, list):
            return []
        return [str(m) for m in listed if isinstance(m, (str, int, float)) and not isinstance(m, bool)]

    def reachability(self) -> dict[str, Any]:
        """What is known of the server without asking it (``{}`` here; a probing backend says more)."""
        return {}

    async def check(self) -> dict[str, Any]:
        """Ask the server's models endpoint, briefly: reachable? key accepted? which models?

        The answer (``reachable``, ``available``, ``reason``, ``key_refused``,
        ``models``, ``models_error``) is remembered for ``probe_ttl`` seconds
        (default 5); a model list fetched successfully is reused for
        ``models_ttl``. Bounded by ``probe_timeout`` seconds (default 3).
        """
        from .http import server_label

        cfg = self.backend_config
        now = time.monotonic()
        ttl = _seconds(cfg.get("probe_ttl"), PROBE_TTL)
        if self._check_cache is not None and now - self._check_cache[0] < ttl:
            return dict(self._check_cache[1])
        timeout = _seconds(cfg.get("probe_timeout"), PROBE_TIMEOUT)
        where = server_label(self.base_url)
        result: dict[str, Any]
        try:
            models = await asyncio.wait_for(self.models(), timeout)
        except asyncio.TimeoutError:
            result = {
                "reachable": False,
                "available": False,
                "reason": f"{self.provider_label} at {where} did not answer within {timeout:g} s.",
            }
        except ProviderError as exc:
            said = str(exc)  # the message and its hint
            if exc.kind in ("connect", "timeout", "connection"):
                result = {"reachable": False, "available": False, "reason": said}
            elif exc.kind == "auth":
                result = {"reachable": True, "available": False, "key_refused": True, "reason": said}
            else:  # it answers, but not the models list: requests may still work
                result = {
                    "reachable": True,
                    "available": True,
                    "models": self.configured_models(),
                    "models_error": str(exc),
                }
        else:
            result = {"reachable": True, "available": True, "models": models}
        result.setdefault("models", [])
        self._check_cache = (time.monotonic(), result)
        return dict(result)

    async def status(self) -> dict[str, Any]:
        """Availability as routing sees it, then a short probe of the server (see ``check``).

        Without a key nothing is sent. ``reachable`` says whether anything
        answered, ``key_refused`` whether it turned the key down; ``reason``
        says what to do when ``available`` is false.
        """
        from .http import server_label

        info: dict[str, Any] = {
            "backend": self.name,
            "available": bool(self.is_available),
            "base_url": server_label(self.base_url),
        }
        if not info["available"]:
            info["reason"] = self.unavailable_reason
            info["models"] = []
            info.update(self.reachability())
            return info
        info.update(await self.check())
        return info


def _seconds(value: Any, default: float) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return default
    return number if number > 0 else default
