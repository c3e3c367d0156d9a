"""``KeyedBackend``: what every hosted provider reached with an API key shares.

The key (from ``backends.<name>.api_key`` or the provider's own setting, masked
everywhere but the request header), availability and its reason, the base URL,
and the facts ``backends.http`` needs to word an error without the key in it.
Subclasses name their provider in class attributes and speak their protocol.
"""

from __future__ import annotations

import os
import time
from typing import Any

from ..errors import BackendUnavailable
from ..secrets import reveal
from .template import ProtocolBackend

__all__ = ["KeyedBackend"]


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

    async def status(self) -> dict[str, Any]:
        from .http import server_label

        info = await super().status()
        info["base_url"] = server_label(self.base_url)
        return info
