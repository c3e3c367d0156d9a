"""The ``cloud`` backend: one name for OpenAI, Anthropic, Gemini and OpenRouter.

It speaks no protocol itself. For each request it picks a provider adapter
(``OpenAIBackend``, ``AnthropicBackend``, ``GeminiBackend``,
``OpenRouterBackend``) by the model's provider, and, when several could serve
it (OpenRouter relays OpenAI, Anthropic and Google models), by
``backends.cloud.provider_order`` and which keys are set. With no model it
takes ``default_model`` or the first provider in that order whose key is set,
with a cheap default model of that provider. Answers come back with
``backend="cloud"`` and ``metadata["provider"]`` naming the adapter used.
"""

from __future__ import annotations

import asyncio
import importlib
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from ..errors import BackendUnavailable, ProviderError, UnknownModelError
from ..models import ModelInfo, StreamEnd
from ..request import Resolved
from .base import BaseBackend
from .template import ResolvedBackend, catalogue_default, price

__all__ = ["DEFAULT_MODELS", "DEFAULT_ORDER", "PROVIDERS", "Choice", "CloudBackend", "openrouter_id"]

#: provider -> (adapter class path, key setting, key environment variable(s) for messages)
PROVIDERS: dict[str, tuple[str, str, str]] = {
    "openai": ("ttt_magic.backends.openai:OpenAIBackend", "openai_api_key", "OPENAI_API_KEY"),
    "anthropic": ("ttt_magic.backends.anthropic:AnthropicBackend", "anthropic_api_key", "ANTHROPIC_API_KEY"),
    "google": ("ttt_magic.backends.google:GeminiBackend", "google_api_key", "GEMINI_API_KEY"),
    "openrouter": ("ttt_magic.backends.openai:OpenRouterBackend", "openrouter_api_key", "OPENROUTER_API_KEY"),
}
DEFAULT_ORDER = ("openai", "anthropic", "google", "openrouter")
#: Providers whose models OpenRouter also serves, as ``<provider>/<model>``.
RELAYED = ("openai", "anthropic", "google")
#: A model per provider for requests that name none, when neither the configuration nor
#: the catalogue (its cheapest fast model of the provider) gives one.
DEFAULT_MODELS = {
    "openai": "gpt-4.1-nano",
    "anthropic": "claude-haiku-4-5",
    "google": "gemini-2.5-flash",
    "openrouter": "openai/gpt-4o-mini",
}
UNAVAILABLE = (
    "No cloud API key set: set OPENAI_API_KEY, ANTHROPIC_API_KEY, GEMINI_API_KEY or OPENROUTER_API_KEY "
    "(or configure(...)), or use backend='mock' offline."
)


@dataclass
class Choice:
    """Which adapter answers, with which model id, and why (for metadata and ``status``)."""

    provider: str
    model: str | None  # the name given to the adapter
    name: str | None  # the name shown to people and priced (catalogue name when known)
    reason: str


def openrouter_id(info: ModelInfo) -> str:
    """OpenRouter's id for a provider's model: ``anthropic/claude-sonnet-4.5`` for ``claude-sonnet-4-5``.

    OpenRouter names Claude versions with a dot (``claude-3.5-sonnet``,
    ``claude-sonnet-4.5``); other providers' ids are used as they are.
    """
    provider = info.provider.lower()
    model = info.provider_name or info.name
    if model.lower().startswith(provider + "/"):
        model = model.split("/", 1)[1]
    if provider == "anthropic":
        model = re.sub(r"-\d{8}$", "", model)  # dated snapshots are not listed there
        model = re.sub(r"(\d)-(\d)(?=$|-)", r"\1.\2", model)
    return f"{provider}/{model}"


def _provider_of(info: ModelInfo) -> str:
    provider = info.provider.lower()
    return "google" if provider == "gemini" else provider


class CloudBackend(ResolvedBackend):
    """OpenAI, Anthropic, Google Gemini or OpenRouter, chosen by model and ``provider_order``."""

    backend_name = "cloud"
    #: The registry passes the whole ``backends`` section: each provider's settings live there.
    reads_all_backends = True

    def __init__(self, config: dict[str, Any] | None = None) -> None:
        super().__init__(config)
        self._adapters: dict[str, BaseBackend] = {}

    # ------------------------------------------------------------------ configuration

    @property
    def provider_order(self) -> list[str]:
        raw = self.backend_config.get("provider_order") or DEFAULT_ORDER
        if isinstance(raw, str):
            raw = [p.strip() for p in raw.split(",")]
        order = []
        for name in raw:
            name = "google" if str(name).lower() == "gemini" else str(name).lower()
            if name in PROVIDERS and name not in order:
                order.append(name)
        return order or list(DEFAULT_ORDER)

    def _provider_settings(self, provider: str) -> dict[str, Any]:
        sections = self.backend_config.get("backends")
        if not isinstance(sections, dict):
            from ..config import get_config

            sections = get_config().backends
        specific = dict(sections.get(provider) or {})
        inner = specific.pop("config", None) or {}
        return {**specific, **inner}

    def adapter(self, provider: str) -> BaseBackend:
        """The adapter of ``provider``, built once with the cloud settings plus ``backends.<provider>``."""
        adapter = self._adapters.get(provider)
        if adapter is None:
            path = PROVIDERS[provider][0]
            module, _, attr = path.partition(":")
            cls = getattr(importlib.import_module(module), attr)
            config = {k: v for k, v in self.backend_config.items() if k not in ("backends", "provider_order")}
            config.update(self._provider_settings(provider))
            adapter = self._adapters[provider] = cls(config)
        return adapter

    def _ready(self, provider: str) -> bool:
        try:
            return bool(self.adapter(provider).is_available)
        except Exception:  # an adapter that cannot even be built is not available
            return False

    # ------------------------------------------------------------------ identity

    @property
    def is_available(self) -> bool:
        return any(self._ready(p) for p in PROVIDERS)

    @property
    def unavailable_reason(self) -> str | None:
        return None if self.is_available else UNAVAILABLE

    # ------------------------------------------------------------------ choosing

    def default_model_for(self, provider: str) -> str:
        """``backends.<provider>.default_model``, else the ``cheap``/``fast`` alias when it is
        this provider's, else the catalogue's cheapest fast model of the provider, else
        ``DEFAULT_MODELS``.
        """
        from ..registry import model_registry

        configured = self._provider_settings(provider).get("default_model")
        if configured:
            return str(configured)
        if provider != "openrouter":
            aliases = model_registry.list_aliases()
            for alias in ("cheap", "fast"):
                info = model_registry.get_model(alias) if alias in aliases else None
                if info is not None and _provider_of(info) == provider:
                    return info.name
            return catalogue_default(provider, DEFAULT_MODELS[provider])
        return DEFAULT_MODELS[provider]

    def choose(self, model: str | None) -> Choice:
        """Pick the adapter for ``model`` (or for no model). Raises when no provider can serve it."""
        from ..registry import model_registry

        order = self.provider_order
        if not model:
            configured = self.backend_config.get("default_model")
            if configured:
                choice = self.choose(str(configured))
                choice.reason = f"default_model {configured!r}: {choice.reason}"
                return choice
            for provider in order:
                if self._ready(provider):
                    name = self.default_model_for(provider)
                    why = f"first provider in provider_order with a key: {provider}"
                    return Choice(provider, name, name, why)
            raise BackendUnavailable(UNAVAILABLE)
        try:
            info = model_registry.resolve(model)
        except UnknownModelError:
            from ..registry import guess_provider

            guessed = guess_provider(model)
            if guessed is None:
                raise
            info = ModelInfo(name=model, provider=guessed)
        provider = _provider_of(info)
        if provider not in PROVIDERS:
            raise BackendUnavailable(
                f"Model {info.name!r} belongs to provider {provider!r}, which the cloud backend "
                "does not serve.",
                hint="Use backend='local' for Ollama models, or the backend registered for that provider.",
            )
        capable = [provider]
        if provider in RELAYED and "openrouter" in order:
            capable.append("openrouter")
        ranked = [p for p in order if p in capable] + [p for p in capable if p not in order]
        for candidate in ranked:
            if not self._ready(candidate):
                continue
            if candidate == provider:
                return Choice(provider, info.name, info.name, f"{info.name!r} is a {provider} model")
            relayed = openrouter_id(info)
            why = f"{info.name!r} is a {provider} model; OpenRouter serves it as {relayed!r}" + (
                "" if self._ready(provider) else f" ({PROVIDERS[provider][2]} is not set)"
            )
            return Choice("openrouter", relayed, info.name, why)
        wanted = PROVIDERS[provider][2]
        alt = " (or OPENROUTER_API_KEY to reach it through OpenRouter)" if "openrouter" in capable else ""
        raise BackendUnavailable(
            f"Model {info.name!r} needs a {provider} API key, and none is set.",
            hint=f"Set {wanted}{alt}, or configure({PROVIDERS[provider][1]}=...).",
        )

    # ------------------------------------------------------------------ requests

    def effective_model(self, model: str | None) -> str | None:
        try:
            return self.choose(model).name or model
        except (ProviderError, UnknownModelError):
            return model

    def call_config(self, model: str | None, config: dict[str, Any]) -> dict[str, Any]:
        """The cloud settings overlaid with the chosen provider's ``backends.<provider>``.

        So ``backends.openai.temperature`` applies to an answer the cloud backend
        gets from OpenAI, as it would with ``backend="openai"``.
        """
        try:
            provider = self.choose(model).provider
        except (ProviderError, UnknownModelError):
            return config
        merged = {k: v for k, v in config.items() if k not in ("backends", "provider_order")}
        merged.update(self._provider_settings(provider))
        return merged

    def _label(self, choice: Choice, metadata: dict[str, Any]) -> dict[str, Any]:
        out = dict(metadata)
        relayed = choice.provider == "openrouter" and choice.model != choice.name
        if relayed and out.get("provider_model") is None:
            out["provider_model"] = choice.model
        out["provider"] = choice.provider
        out["provider_reason"] = choice.reason
        return out

    async def send(self, call: Resolved) -> AsyncIterator[str | StreamEnd]:
        choice = self.choose(call.model)
        adapter = self.adapter(choice.provider)
        ended = False
        async for item in adapter.send(call.with_changes(model=choice.model)):
            if isinstance(item, StreamEnd):
                ended = True
                item.model = choice.name or item.model
                item.metadata = self._label(choice, item.metadata)
                if choice.name and item.cost is None:
                    item = price(item, model=choice.name)
            yield item
        if not ended:
            yield StreamEnd(model=choice.name, metadata=self._label(choice, {}))

    # ------------------------------------------------------------------ discovery

    async def models(self) -> list[str]:
        """Union of the models of the providers whose keys are set."""
        ready = [p for p in self.provider_order if self._ready(p)]
        results = await asyncio.gather(*(self.adapter(p).models() for p in ready), return_exceptions=True)
        seen: dict[str, None] = {}
        for result in results:
            if isinstance(result, BaseException):
                continue
            for name in result:
                seen.setdefault(name, None)
        return list(seen)

    async def status(self) -> dict[str, Any]:
        """Availability and models of every provider, plus the order they are tried in."""
        providers: dict[str, Any] = {}
        for provider in PROVIDERS:
            try:
                info = await self.adapter(provider).status()
            except Exception as exc:
                info = {"available": False, "reason": f"{type(exc).__name__}: {exc}"}
            info.pop("backend", None)
            if info.get("available"):
                info["default_model"] = self.default_model_for(provider)
            providers[provider] = info
        available = any(p.get("available") for p in providers.values())
        models: dict[str, None] = {}
        for info in providers.values():
            for name in info.get("models") or []:
                models.setdefault(name, None)
        status: dict[str, Any] = {
            "backend": self.name,
            "available": available,
            "provider_order": self.provider_order,
            "providers": providers,
            "models": list(models),
        }
        if not available:
            status["reason"] = UNAVAILABLE
        return status

    async def aclose(self) -> None:
        for adapter in self._adapters.values():
            try:
                await adapter.aclose()
            except Exception:
                pass
