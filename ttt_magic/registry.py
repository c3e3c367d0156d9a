"""The two catalogues: models (with aliases) and backends (with their provenance).

``ModelRegistry`` merges three sources on every lookup, cheaply: the built-in
catalogue (``catalog.yaml``, read once, on first use), the ``models:`` and
``model_aliases:`` of the current configuration, and models added at run time.
``BackendRegistry`` maps names to backend classes, registered directly, by
plugins, by entry points or by ``class_path`` in configuration; it builds
instances lazily so an unused backend costs nothing.
"""

from __future__ import annotations

import difflib
import importlib
import threading
from dataclasses import dataclass, field, fields
from importlib import resources
from typing import Any

from .config import Settings, get_config
from .errors import ConfigError, UnknownModelError
from .models import ModelInfo

__all__ = [
    "PROVIDER_BACKENDS",
    "BackendEntry",
    "BackendRegistry",
    "ModelRegistry",
    "backend_registry",
    "model_registry",
    "register_backend",
]

#: Which backend serves a model of a given provider.
PROVIDER_BACKENDS = {
    "openai": "cloud",
    "anthropic": "cloud",
    "google": "cloud",
    "gemini": "cloud",
    "openrouter": "cloud",
    "ollama": "local",
    "local": "local",
}
CLOUD_PROVIDERS = ("openai", "anthropic", "google", "openrouter")


# --------------------------------------------------------------------------- models


class ModelRegistry:
    """Models and aliases: the seed's ``model_registry``."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._catalog: dict[str, ModelInfo] | None = None
        self._catalog_aliases: dict[str, str] = {}
        self._added: dict[str, ModelInfo] = {}
        self._view: tuple[Any, dict[str, ModelInfo], dict[str, str], Any, int] | None = None
        self._added_version = 0

    # -- building the merged view

    def _load_catalog(self) -> None:
        import yaml

        text = resources.files("ttt_magic").joinpath("catalog.yaml").read_text(encoding="utf-8")
        # libyaml's loader when PyYAML has it: 4x faster on the catalogue, the first route's cost.
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        data = yaml.load(text, Loader=loader) or {}
        known = {f.name for f in fields(ModelInfo)}
        catalog = {}
        for entry in data.get("models", []):
            info = ModelInfo(**{k: v for k, v in entry.items() if k in known})
            catalog[info.name] = info
        self._catalog_aliases = dict(data.get("aliases", {}))
        self._catalog = catalog

    def _merged(self, settings: Settings | None = None) -> tuple[dict[str, ModelInfo], dict[str, str]]:
        if settings is None:
            from .scope import current  # the running request's snapshot, when there is one

            settings = current()
        with self._lock:
            if self._catalog is None:
                self._load_catalog()
            if self._view is not None and self._view[3] is settings and self._view[4] == self._added_version:
                return self._view[1], self._view[2]
            # Keyed by what the view is made of, not by id(settings): ids are reused after
            # garbage collection, and a new Settings with the same models needs no rebuild.
            key = (repr(settings.models), repr(sorted(settings.model_aliases.items())), self._added_version)
            if self._view is not None and self._view[0] == key:
                self._view = (key, self._view[1], self._view[2], settings, self._added_version)
                return self._view[1], self._view[2]
            models = dict(self._catalog or {})
            aliases = dict(self._catalog_aliases)
            for info in models.values():
                for alias in info.aliases:
                    aliases.setdefault(alias, info.name)
            for entry in settings.models:
                info = ModelInfo(**entry)
                models[info.name] = info
                aliases.update({a: info.name for a in info.aliases})
            for info in self._added.values():
                models[info.name] = info
                aliases.update({a: info.name for a in info.aliases})
            aliases.update(settings.model_aliases)
            self._view = (key, models, aliases, settings, self._added_version)
            return models, aliases

    # -- the seed's API

    def add_model(self, info: ModelInfo) -> None:
        """Add (or replace) a model at run time; its aliases become usable at once."""
        if not isinstance(info, ModelInfo):
            raise TypeError("add_model() takes a ModelInfo")
        with self._lock:
            self._added.pop(info.name, None)
            self._added[info.name] = info
            self._added_version += 1
            self._view = None

    def remove_model(self, name: str) -> None:
        with self._lock:
            self._added.pop(name, None)
            self._added_version += 1
            self._view = None

    def list_models(self, provider: str | None = None) -> list[ModelInfo]:
        models, _ = self._merged()
        found = list(models.values())
        if provider:
            wanted = provider.lower()
            found = [m for m in found if m.provider.lower() == wanted]
        return found

    def list_aliases(self) -> dict[str, str]:
        return dict(self._merged()[1])

    def get_model(self, name: str, settings: Settings | None = None) -> ModelInfo | None:
        """The model called ``name`` or aliased so; ``None`` when unknown."""
        models, aliases = self._merged(settings)
        target = self._follow(name, aliases)
        return models.get(target)

    @staticmethod
    def _follow(name: str, aliases: dict[str, str]) -> str:
        seen = set()
        while name in aliases and name not in seen:  # aliases may point at aliases
            seen.add(name)
            name = aliases[name]
        return name

    def resolve(self, name: str, settings: Settings | None = None) -> ModelInfo:
        """Like ``get_model``, also for ``provider/model`` names; raises when unknown.

        An alias may name a model the catalogue lacks (the seed's ``fast:
        gpt-3.5-turbo``): its provider is then inferred from the name's family.
        """
        models, aliases = self._merged(settings)
        target = self._follow(name, aliases)
        if target in models:
            return models[target]
        provider, sep, rest = target.partition("/")
        known_providers = set(PROVIDER_BACKENDS) | set(backend_registry.entries(settings))
        if sep and rest and provider.lower() in known_providers:
            provider = "google" if provider.lower() == "gemini" else provider.lower()
            return ModelInfo(name=target, provider=provider, provider_name=rest)
        if target != name:
            guessed = guess_provider(target)
            if guessed:
                return ModelInfo(name=target, provider=guessed, provider_name=target)
        # A model a configured backend lists (its ``models:``, or its fetched list while cached).
        owner = backend_registry.listed_models(settings).get(target)
        if owner:
            return ModelInfo(
                name=target, provider=owner, provider_name=target, description=f"listed by backend {owner!r}"
            )
        raise UnknownModelError(name, self.suggest(name, settings=settings))

    def suggest(self, name: str, n: int = 3, settings: Settings | None = None) -> list[str]:
        models, aliases = self._merged(settings)
        try:
            listed = list(backend_registry.listed_models(settings))
        except Exception:  # a broken backend section must not hide the suggestions
            listed = []
        return difflib.get_close_matches(name, [*models, *aliases, *listed], n=n, cutoff=0.5)

    def __contains__(self, name: str) -> bool:
        return self.get_model(name) is not None


_FAMILIES = (
    (("gpt-", "o1", "o3", "o4", "chatgpt", "davinci", "text-"), "openai"),
    (("claude",), "anthropic"),
    (("gemini", "learnlm"), "google"),
    (("llama", "mistral", "qwen", "phi", "gemma", "deepseek", "codellama", "tinyllama", "smollm"), "ollama"),
)


def guess_provider(model: str) -> str | None:
    """The provider a bare model name belongs to, judged by its family prefix."""
    low = model.lower()
    for prefixes, provider in _FAMILIES:
        if low.startswith(prefixes):
            return provider
    return None


# --------------------------------------------------------------------------- backends


@dataclass
class BackendEntry:
    """One registered backend: what it is and where it came from."""

    name: str
    target: Any  # a class, or "module:Class" / "module.Class" to import on first use
    version: str | None = None
    description: str = ""
    author: str | None = None
    requires: list[str] = field(default_factory=list)
    source: str = "register_backend()"

    def load_class(self) -> type:
        if isinstance(self.target, type):
            return self.target
        path = str(self.target)
        module_name, sep, attr = path.partition(":")
        if not sep:
            module_name, _, attr = path.rpartition(".")
        module = importlib.import_module(module_name)
        cls = getattr(module, attr)
        self.target = cls
        return cls

    def missing_requirements(self) -> list[str]:
        missing = []
        for requirement in self.requires:
            module = requirement.split("[")[0].split(">")[0].split("=")[0].split("<")[0].strip()
            module = module.replace("-", "_")
            if importlib.util.find_spec(module) is None:
                missing.append(requirement)
        return missing


#: Backend ``type:`` values usable in configuration without writing code.
BACKEND_TYPES = {
    "openai-compatible": "ttt_magic.backends.openai:OpenAICompatibleBackend",
    "openai": "ttt_magic.backends.openai:OpenAICompatibleBackend",
    "ollama": "ttt_magic.backends.ollama:OllamaBackend",
}


class BackendRegistry:
    """Name -> backend class, plus lazily built instances (one per configuration)."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._entries: dict[str, BackendEntry] = {}
        self._instances: dict[str, tuple[Any, Any]] = {}

    def register_backend(
        self,
        name: str,
        cls: Any,
        *,
        version: str | None = None,
        description: str = "",
        author: str | None = None,
        requires: list[str] | None = None,
        source: str = "register_backend()",
    ) -> BackendEntry:
        """Register (or replace) a backend class under ``name``."""
        if not isinstance(name, str) or not name:
            raise ValueError("a backend needs a non-empty name")
        if isinstance(cls, type):
            from .backends.base import BaseBackend

            if not issubclass(cls, BaseBackend):
                raise TypeError(f"{cls.__name__} must inherit from ttt_magic.backends.BaseBackend")
        entry = BackendEntry(
            name,
            cls,
            version=version,
            description=description or _first_line(cls),
            author=author,
            requires=list(requires or []),
            source=source,
        )
        with self._lock:
            self._entries[name] = entry
            self._instances.pop(name, None)
        return entry

    def unregister(self, name: str) -> None:
        with self._lock:
            self._entries.pop(name, None)
            self._instances.pop(name, None)

    def _config_entries(self, settings: Settings) -> dict[str, BackendEntry]:
        """Backends declared in configuration by ``class_path`` or ``type``."""
        found = {}
        for name, conf in settings.backends.items():
            target = conf.get("class_path") or BACKEND_TYPES.get(str(conf.get("type", "")))
            if conf.get("type") and not target:
                raise ConfigError(
                    f"backends.{name}.type: unknown type {conf['type']!r}.",
                    hint=f"Known types: {', '.join(sorted(BACKEND_TYPES))}; or give class_path.",
                )
            if target:
                found[name] = BackendEntry(
                    name, target, description=f"from configuration ({target})", source="configuration"
                )
        return found

    def entries(self, settings: Settings | None = None) -> dict[str, BackendEntry]:
        settings = settings or get_config()
        with self._lock:
            merged = dict(self._entries)
        merged.update(self._config_entries(settings))
        return merged

    def names(self) -> list[str]:
        return sorted(self.entries())

    def listed_models(self, settings: Settings | None = None) -> dict[str, str]:
        """Model name -> the configuration-declared backend that lists it (first listed wins).

        From each such backend's ``models:``, then from the model list it
        fetched (``/models``) while that is cached; never asks a server.
        """
        settings = settings or get_config()
        declared = self._config_entries(settings)
        found: dict[str, str] = {}
        for name in declared:
            listed = (settings.backends.get(name) or {}).get("models")
            for model in listed if isinstance(listed, list) else ():
                if isinstance(model, str):
                    found.setdefault(model, name)
        with self._lock:
            instances = [(name, cached[1]) for name, cached in self._instances.items() if name in declared]
        for name, instance in instances:
            fetched = getattr(instance, "cached_models", None)
            try:
                models = fetched() if callable(fetched) else None
            except Exception:
                models = None
            for model in models or ():
                found.setdefault(str(model), name)
        return found

    def __contains__(self, name: str) -> bool:
        return name in self.entries()

    def has(self, name: str, settings: Settings | None = None) -> bool:
        return name in self.entries(settings)

    def get(self, name: str, settings: Settings | None = None) -> Any:
        """The backend instance for ``name`` under the current settings.

        Raises ``ConfigError`` for an unknown name, ``BackendUnavailable`` when
        its requirements are missing or it cannot be built.
        """
        from .errors import BackendUnavailable

        settings = settings or get_config()
        entries = self.entries(settings)
        entry = entries.get(name)
        if entry is None:
            close = difflib.get_close_matches(name, list(entries), n=1)
            raise ConfigError(
                f"Unknown backend {name!r}.",
                hint=(f"Did you mean {close[0]!r}? " if close else "")
                + f"Registered backends: {', '.join(sorted(entries)) or 'none'}.",
            )
        with self._lock:
            cached = self._instances.get(name)
            if cached is not None and cached[0] is settings and cached[2] is entry.target:
                return cached[1]
        cls = self._load(name, entry)
        config = settings.backend_config(name)
        config.setdefault("name", name)
        if getattr(cls, "reads_all_backends", False):  # the cloud backend: its providers' sections
            config["backends"] = settings.backends
        fingerprint = _fingerprint(config)
        with self._lock:
            if cached is not None and cached[2] is entry.target and cached[3] == fingerprint:
                # Same backend configuration under new settings (e.g. a temperature slider
                # moved): keep the instance, its connections and caches. Request defaults
                # are settled per request, so only its view of them is refreshed.
                instance = cached[1]
                _refresh_defaults(instance, config)
                self._instances[name] = (settings, instance, entry.target, fingerprint)
                return instance
        try:
            instance = cls(config)
        except BackendUnavailable:
            raise
        except Exception as exc:
            raise BackendUnavailable(
                f"Backend {name!r} could not be loaded ({type(exc).__name__}: {exc}).",
                hint=f"Check its plugin or class_path ({entry.source}).",
            ) from exc
        with self._lock:
            self._instances[name] = (settings, instance, entry.target, fingerprint)
        return instance

    @staticmethod
    def _load(name: str, entry: BackendEntry) -> type:
        """The backend's class, or ``BackendUnavailable`` saying what is missing or broken."""
        from .errors import BackendUnavailable

        missing = entry.missing_requirements()
        if missing:
            raise BackendUnavailable(
                f"Backend {name!r} needs {', '.join(missing)}, which is not installed.",
                hint=f"Install it: pip install {' '.join(missing)}",
            )
        try:
            return entry.load_class()
        except Exception as exc:
            raise BackendUnavailable(
                f"Backend {name!r} could not be loaded ({type(exc).__name__}: {exc}).",
                hint=f"Check its plugin or class_path ({entry.source}).",
            ) from exc

    def availability(self, name: str, settings: Settings | None = None) -> tuple[bool, str | None]:
        """(available, reason) without raising: for routing and status tables."""
        from .errors import TTTError

        try:
            backend = self.get(name, settings)
            available = bool(backend.is_available)
        except TTTError as exc:
            return False, str(exc)
        except Exception as exc:  # a plugin's is_available that crashes is "unavailable"
            return False, f"{type(exc).__name__}: {exc}"
        if available:
            return True, None
        try:
            reason = backend.unavailable_reason
        except Exception:
            reason = None
        return False, reason or f"Backend {name!r} reports itself unavailable."


#: Settings that are defaults of a request, not part of what a backend instance is.
_REQUEST_DEFAULTS = ("temperature", "max_tokens", "system", "stream", "footer", "raise_on_error")


def _fingerprint(config: dict[str, Any]) -> str:
    """What makes a backend instance what it is: its configuration minus the request defaults."""
    kept = {k: v for k, v in config.items() if k not in _REQUEST_DEFAULTS}
    return repr(sorted(kept.items(), key=lambda kv: kv[0]))


def _refresh_defaults(instance: Any, config: dict[str, Any]) -> None:
    for attr in ("config", "backend_config"):
        target = getattr(instance, attr, None)
        if isinstance(target, dict):
            for key in _REQUEST_DEFAULTS:
                if key in config:
                    target[key] = config[key]
                else:
                    target.pop(key, None)


def _first_line(obj: Any) -> str:
    doc = getattr(obj, "__doc__", None) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


model_registry = ModelRegistry()
backend_registry = BackendRegistry()

# Built-in backends, registered through the same door as any plugin. Their
# modules are imported on first use only.
backend_registry.register_backend(
    "local",
    "ttt_magic.backends.ollama:OllamaBackend",
    description="A local Ollama server (/api/chat)",
    source="built-in",
)
backend_registry.register_backend(
    "cloud",
    "ttt_magic.backends.cloud:CloudBackend",
    description="OpenAI, Anthropic, Google Gemini or OpenRouter, chosen by model",
    source="built-in",
)
for _name, _target, _about in (
    ("openai", "ttt_magic.backends.openai:OpenAIBackend", "OpenAI Chat Completions"),
    ("openrouter", "ttt_magic.backends.openai:OpenRouterBackend", "OpenRouter (OpenAI-compatible)"),
    ("anthropic", "ttt_magic.backends.anthropic:AnthropicBackend", "Anthropic Messages"),
    ("google", "ttt_magic.backends.google:GeminiBackend", "Google Gemini generateContent"),
):
    backend_registry.register_backend(_name, _target, description=_about, source="built-in")


def register_backend(
    name: str,
    cls: Any,
    *,
    version: str | None = None,
    description: str = "",
    author: str | None = None,
    requires: list[str] | None = None,
) -> BackendEntry:
    """Register a backend class under ``name`` (the seed's "Direct Registration")."""
    return backend_registry.register_backend(
        name, cls, version=version, description=description, author=author, requires=requires
    )
