"""Settings: the schema, the four layers, and where every effective value came from.

Layers, highest first: ``configure()`` > environment variables > YAML files >
defaults. Files merge key by key, the earlier-listed file winning (project over
user); mappings such as ``backends`` merge recursively. The effective settings
are recomputed only when a file, a relevant environment variable or the
programmatic layer changes, so reading them on every call costs a few ``stat``s.
"""

from __future__ import annotations

import difflib
import math
import os
import re
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .errors import ConfigError
from .secrets import Secret, clean_key, mask

__all__ = [
    "SCHEMA",
    "Setting",
    "Settings",
    "config_files",
    "configure",
    "display_path",
    "escape_surrogates",
    "get_config",
    "readable",
    "reset",
    "subscribe",
]

DEFAULT_SOURCE = "default"
PROGRAMMATIC_SOURCE = "configure()"


# --------------------------------------------------------------------------- types
# Each converter takes a raw value (from YAML, an env var string, or Python) and
# returns the typed value or raises ValueError with what was expected. The
# callers add where the value came from (file and line, variable, configure()).

#: Seconds no timeout or wait may exceed: beyond this, sockets and timers overflow.
MAX_SECONDS = 86400.0
#: Retries of one failure; more is a typo, and it would keep a request alive for hours.
MAX_RETRIES = 100


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        low = value.strip().lower()
        if low in {"1", "true", "yes", "on"}:
            return True
        if low in {"0", "false", "no", "off", ""}:
            return False
    raise ValueError("expected a boolean (true/false)")


def _number(kind: type, minimum: float | None = None, maximum: float | None = None) -> Callable[[Any], Any]:
    """A converter to ``int`` or ``float`` within bounds.

    Every numeric setting goes through here, so this is the one place that
    refuses NaN and infinity: ``float("nan")`` compares false with every bound,
    so without this check it would pass any range test and reach the timers.
    """
    expected = "an integer" if kind is int else "a number"

    def convert(value: Any) -> Any:
        if isinstance(value, bool):
            raise ValueError(f"expected {expected}")
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"expected a finite number, not {value}")
        try:
            number = kind(value.strip() if isinstance(value, str) else value)
        except OverflowError:
            raise ValueError(f"expected a finite number, not {_short(value)}") from None
        except (TypeError, ValueError):
            raise ValueError(f"expected {expected}") from None
        if isinstance(number, float) and not math.isfinite(number):
            raise ValueError(f"expected a finite number, not {number}")
        if kind is int and isinstance(value, float) and value != number:
            raise ValueError("expected an integer")
        if minimum is not None and number < minimum:
            raise ValueError(f"expected a value >= {minimum:g}")
        if maximum is not None and number > maximum:
            raise ValueError(f"expected a value <= {maximum:g}")
        return number

    return convert


def _short(value: Any, limit: int = 20) -> str:
    text = readable(str(value))
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _opt_str(value: Any) -> str | None:
    """A string setting; whole numbers are taken as written, floats are not (``1.10`` reads as 1.1)."""
    if value is None:
        return None
    if isinstance(value, (str, int)) and not isinstance(value, bool):
        text = str(value).strip()
        return text or None
    if isinstance(value, float):
        raise ValueError("expected a string (in YAML, put it in quotes)")
    raise ValueError("expected a string")


def _str(value: Any) -> str:
    text = _opt_str(value)
    if text is None:
        raise ValueError("expected a non-empty string")
    return text


def _backend_name(value: Any) -> str:
    """Only a string: ``default_backend: 42`` is a mistake, not a backend called "42"."""
    if not isinstance(value, str):
        raise ValueError(f"expected a backend name (a string), not {type(value).__name__}")
    return _str(value)


def _temperature(value: Any) -> float | None:
    return None if value is None else _number(float, 0, 2)(value)


def _opt_positive_int(value: Any) -> int | None:
    return None if value is None else _number(int, 1)(value)


def _url(value: Any) -> str:
    """An http(s) URL with a host; refused here rather than as an HTTP error after retries."""
    if not isinstance(value, str):
        raise ValueError("expected a URL such as http://127.0.0.1:11434")
    text = value.strip().rstrip("/")
    if not text:
        raise ValueError("expected a URL such as http://127.0.0.1:11434")
    if "://" not in text:  # OLLAMA_HOST is often "127.0.0.1:11434" or "0.0.0.0"
        text = "http://" + text
    scheme, sep, rest = text.partition("://")
    if rest.startswith(":"):  # OLLAMA_HOST=":11434": Ollama's own default host
        text = f"{scheme}{sep}127.0.0.1{rest}"
    if any(c.isspace() or not c.isprintable() for c in text):
        raise ValueError("a URL cannot contain spaces or control characters")
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError as exc:
        raise ValueError(f"expected a URL such as http://127.0.0.1:11434 ({exc})") from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ValueError("expected an http:// or https:// URL with a host")
    return text


def _secret(value: Any) -> Secret | None:
    """A provider key: surrounding whitespace goes, whitespace inside is refused (see ``clean_key``)."""
    if isinstance(value, Secret):
        value = value.reveal()
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError("expected a string (an API key)")
    key = clean_key(value)
    return Secret(key) if key else None


def _secret_text(value: Any) -> Any:
    """A key inside ``backends.<name>``: cleaned like a provider key, but kept a plain string.

    Backends read ``self.backend_config["api_key"]`` as text (DESIGN-NOTES);
    displays mask it by its name.
    """
    if isinstance(value, Secret):
        value = value.reveal()
    if isinstance(value, str):
        return clean_key(value) or None
    return value


def _env_name(value: Any) -> str:
    text = _str(value)
    if any(c.isspace() or not c.isprintable() for c in text) or "=" in text:
        raise ValueError("expected the name of an environment variable")
    return text


def _str_list(value: Any) -> list[str]:
    if isinstance(value, str):
        value = [part.strip() for part in value.split(",") if part.strip()]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise ValueError("expected a list of strings")
    return list(value)


def _str_map(value: Any) -> dict[str, str]:
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise ValueError("expected a mapping of names to model names")
    return dict(value)


def _text(value: Any) -> str:
    return "" if value is None else (_opt_str(value) or "")


def _opt_cost(value: Any) -> float | None:
    return None if value is None else _number(float, 0)(value)


#: How each ``ModelInfo`` field of a ``models:`` entry is read; the catalogue and
#: the cost arithmetic trust these types.
_MODEL_FIELDS: dict[str, Callable[[Any], Any]] = {
    "name": _str,
    "provider": _str,
    "provider_name": _opt_str,
    "aliases": lambda v: [] if v is None else _str_list(v),
    "speed": _str,
    "quality": _str,
    "capabilities": lambda v: ["text"] if v is None else _str_list(v),
    "context_length": _opt_positive_int,
    "cost_per_token": _opt_cost,
    "input_cost_per_mtok": _opt_cost,
    "output_cost_per_mtok": _opt_cost,
    "description": _text,
}


def _models(value: Any) -> list[dict[str, Any]]:
    from .models import ModelInfo

    known = {f.name for f in fields(ModelInfo)}
    if not isinstance(value, list):
        raise ValueError("expected a list of model definitions")
    out = []
    for i, item in enumerate(value):
        if not isinstance(item, Mapping):
            raise ValueError(f"item {i}: expected a mapping with name and provider")
        for key in item:
            if key not in known:
                raise ValueError(f"item {i}: unknown field {key!r}{_did_you_mean(key, known)}")
        for required in ("name", "provider"):
            if not isinstance(item.get(required), str) or not item[required].strip():
                raise ValueError(f"item {i}: {required!r} must be a non-empty string")
        entry = {}
        for key, raw in item.items():
            convert = _MODEL_FIELDS.get(key)
            try:
                entry[key] = convert(raw) if convert else raw
            except ValueError as exc:
                raise ValueError(f"item {i}: {key}: {exc}") from None
        out.append(entry)
    return out


def _class_path(value: Any) -> str:
    if not isinstance(value, str) or "." not in value.strip(" .:"):
        raise ValueError("expected 'package.module.ClassName'")
    return value.strip()


def _headers(value: Any) -> dict[str, str]:
    """Extra HTTP headers: names and values must be sendable (values are never shown)."""
    if not isinstance(value, Mapping):
        raise ValueError("expected a mapping of header names to values")
    out = {}
    for name, text in value.items():
        if not isinstance(name, str) or not _HEADER_NAME.fullmatch(name):
            raise ValueError(f"{_label(name)} is not a valid HTTP header name")
        if not isinstance(text, (str, int)) or isinstance(text, bool):
            raise ValueError(f"{name}: expected a string")
        text = str(text).strip()
        if any(not c.isprintable() or not c.isascii() for c in text):
            raise ValueError(f"{name}: the value has a line break, control or non-ASCII character")
        out[name] = text
    return out


_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


def _backend_keys() -> dict[str, Callable[[Any], Any]]:
    """How the keys of ``backends.<name>`` (and its ``config``) are read.

    A backend's settings overlay the global ones (``Settings.backend_config``),
    so a key named like a global setting must pass that setting's checks too;
    otherwise ``backends.local.timeout: .nan`` would slip past ``timeout``'s.
    Keys nobody here knows belong to the backend and pass as written.
    """
    keys = {name: s.convert for name, s in SCHEMA.items() if not s.merge and not s.secret}
    keys.update(
        {
            "type": _str,
            "class_path": _class_path,
            "base_url": _url,
            "api_key_env": _env_name,
            "models": _str_list,
            "provider_order": _str_list,
            "headers": _headers,
            "api_version": _str,
            "models_ttl": _number(float, 0, MAX_SECONDS),
            "probe_ttl": _number(float, 0, MAX_SECONDS),
            "probe_timeout": _number(float, 0.001, MAX_SECONDS),
        }
    )
    return keys


def _backend_settings(
    conf: Mapping[Any, Any], where: str, keys: dict[str, Callable[[Any], Any]], *, nested: bool = False
) -> dict[Any, Any]:
    """One backend's settings (or its ``config``), each known key converted, key-like ones cleaned.

    ``None`` stays: it means "use the global value", as ``Settings.backend_config`` reads it.
    """
    out: dict[Any, Any] = {}
    for key, raw in conf.items():
        label = f"{where}.{_label(key)}"
        if key == "config" and not nested:
            if not isinstance(raw, Mapping):
                raise ValueError(f"{label}: expected a mapping")
            out[key] = _backend_settings(raw, label, keys, nested=True)
            continue
        if raw is None:
            out[key] = None
            continue
        convert = _secret_text if isinstance(key, str) and _looks_secret(key) else keys.get(key)
        try:
            out[key] = convert(raw) if convert else raw
        except ValueError as exc:
            raise ValueError(f"{label}: {exc}") from None
    return out


def _backends(value: Any) -> dict[str, dict[str, Any]]:
    if not isinstance(value, Mapping):
        raise ValueError("expected a mapping of backend names to their settings")
    keys = _backend_keys()
    out = {}
    for name, conf in value.items():
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"{_label(name)}: a backend name must be a non-empty string")
        if conf is None:
            conf = {}
        if not isinstance(conf, Mapping):
            raise ValueError(f"{_label(name)}: expected a mapping of settings")
        out[name] = _backend_settings(conf, _label(name), keys)
    return out


def _label(name: Any) -> str:
    """A name as it can be shown in a one-line message: plain if it is plain, else quoted."""
    text = str(name)
    if isinstance(name, str) and text and text.isprintable() and not text.isspace() and " " not in text:
        return text
    return repr(name) if isinstance(name, str) else readable(text)


ROUTING_KEYS = {"code_keywords", "speed_keywords", "quality_keywords", "rules"}
RULE_KEYS = {"if", "prefer_model", "prefer_backend"}
CONDITION_KEYS = {"contains", "length_gt", "length_lt"}


def _routing(value: Any) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise ValueError("expected a mapping (code_keywords, speed_keywords, quality_keywords, rules)")
    out: dict[str, Any] = {}
    for key, item in value.items():
        if key not in ROUTING_KEYS:
            raise ValueError(f"unknown key {key!r}{_did_you_mean(key, ROUTING_KEYS)}")
        if key == "rules":
            out[key] = _rules(item)
        else:
            try:
                out[key] = [k.lower() for k in _str_list(item)]
            except ValueError:
                raise ValueError(f"{key}: expected a list of strings") from None
    return out


def _rules(value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        raise ValueError("rules: expected a list of rules")
    rules = []
    for i, rule in enumerate(value):
        where = f"rules[{i}]"
        if not isinstance(rule, Mapping):
            raise ValueError(f"{where}: expected a mapping with 'if' and prefer_model/prefer_backend")
        for key in rule:
            if key not in RULE_KEYS:
                raise ValueError(f"{where}: unknown key {key!r}{_did_you_mean(key, RULE_KEYS)}")
        cond = rule.get("if") or {}
        if not isinstance(cond, Mapping):
            raise ValueError(f"{where}.if: expected a mapping (contains, length_gt, length_lt)")
        for key in cond:
            if key not in CONDITION_KEYS:
                raise ValueError(f"{where}.if: unknown condition {key!r}{_did_you_mean(key, CONDITION_KEYS)}")
        checked: dict[str, Any] = {}
        if "contains" in cond:
            try:
                checked["contains"] = [w.lower() for w in _str_list(cond["contains"])]
            except ValueError:
                raise ValueError(f"{where}.if.contains: expected a list of strings") from None
        for bound in ("length_gt", "length_lt"):
            if bound in cond:
                try:
                    checked[bound] = _number(int, 0)(cond[bound])
                except ValueError as exc:
                    raise ValueError(f"{where}.if.{bound}: {exc}") from None
        if not (rule.get("prefer_model") or rule.get("prefer_backend")):
            raise ValueError(f"{where}: needs prefer_model or prefer_backend")
        entry: dict[str, Any] = {"if": checked}
        for key in ("prefer_model", "prefer_backend"):
            try:
                entry[key] = _opt_str(rule.get(key))
            except ValueError as exc:
                raise ValueError(f"{where}.{key}: {exc}") from None
        rules.append(entry)
    return rules


def _bool_or_path(value: Any) -> bool | str:
    """``cache``: true/false, or the path of the cache file (which turns it on)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, (str, os.PathLike)):
        text = _path_text(value)
        low = text.lower()
        if low in {"1", "true", "yes", "on"}:
            return True
        if low in {"0", "false", "no", "off", ""}:
            return False
        return os.path.expanduser(text)
    raise ValueError("expected true/false or the path of a cache file")


def _opt_path(value: Any) -> str | None:
    if value is None or value is False:
        return None
    if isinstance(value, (str, os.PathLike)):
        text = _path_text(value)
        return os.path.expanduser(text) if text else None
    raise ValueError("expected a file path")


def _path_text(value: str | os.PathLike[str]) -> str:
    """A path as text; a NUL byte would only fail later, inside ``open()``, so it is refused here."""
    text = os.fspath(value)
    if not isinstance(text, str):
        raise ValueError("expected a file path as text")
    if "\x00" in text:
        raise ValueError("a file path cannot contain a NUL character")
    return text.strip()


def _replay_mode(value: Any) -> str:
    text = _str(value).lower()
    if text not in ("strict", "fallthrough"):
        raise ValueError("expected 'strict' or 'fallthrough'")
    return text


# --------------------------------------------------------------------------- schema


@dataclass(frozen=True)
class Setting:
    """One configuration key: how to read it, its default, which env vars feed it."""

    name: str
    convert: Callable[[Any], Any]
    default: Any
    doc: str
    env: tuple[str, ...] = ()
    secret: bool = False
    merge: bool = False  # mappings merge across layers instead of replacing


DEFAULT_ROUTING = {
    "code_keywords": [
        "code",
        "function",
        "debug",
        "python",
        "script",
        "implement",
        "bug",
        "refactor",
        "sql",
        "regex",
        "class",
        "pandas",
        "traceback",
    ],
    "speed_keywords": ["quick", "fast", "simple", "brief", "tldr", "short"],
    "quality_keywords": ["analyze", "analyse", "explain", "comprehensive", "detailed", "thorough"],
    "rules": [],
}

_SETTINGS = [
    Setting(
        "default_backend",
        _backend_name,
        "auto",
        "auto, local, cloud, or a registered backend name",
        ("TTT_DEFAULT_BACKEND",),
    ),
    Setting(
        "default_model",
        _opt_str,
        None,
        "model name or alias; empty for automatic choice",
        ("TTT_DEFAULT_MODEL",),
    ),
    Setting(
        "timeout",
        _number(float, 0.001, MAX_SECONDS),
        30.0,
        "seconds allowed for each attempt (at most 86400)",
        ("TTT_TIMEOUT",),
    ),
    Setting(
        "max_retries",
        _number(int, 0, MAX_RETRIES),
        3,
        "retries of a retryable failure before falling back (at most 100)",
        ("TTT_MAX_RETRIES",),
    ),
    Setting(
        "max_retry_wait",
        _number(float, 0, MAX_SECONDS),
        30.0,
        "cap in seconds on one wait between retries (Retry-After included; at most 86400)",
    ),
    Setting(
        "enable_fallbacks",
        _bool,
        True,
        "try the backends of fallback_order when one fails",
        ("TTT_ENABLE_FALLBACKS",),
    ),
    Setting("fallback_order", _str_list, ["cloud", "local"], "backends tried in turn on failure"),
    Setting(
        "ollama_base_url",
        _url,
        "http://localhost:11434",
        "where the local Ollama server listens",
        ("OLLAMA_BASE_URL", "OLLAMA_HOST"),
    ),
    Setting(
        "openai_base_url",
        _url,
        "https://api.openai.com/v1",
        "OpenAI (or compatible) API root",
        ("OPENAI_BASE_URL",),
    ),
    Setting(
        "anthropic_base_url", _url, "https://api.anthropic.com", "Anthropic API root", ("ANTHROPIC_BASE_URL",)
    ),
    Setting(
        "gemini_base_url",
        _url,
        "https://generativelanguage.googleapis.com",
        "Google Gemini API root",
        ("GEMINI_BASE_URL",),
    ),
    Setting(
        "openrouter_base_url",
        _url,
        "https://openrouter.ai/api/v1",
        "OpenRouter API root",
        ("OPENROUTER_BASE_URL",),
    ),
    Setting("openai_api_key", _secret, None, "OpenAI API key", ("OPENAI_API_KEY",), secret=True),
    Setting("anthropic_api_key", _secret, None, "Anthropic API key", ("ANTHROPIC_API_KEY",), secret=True),
    Setting(
        "google_api_key",
        _secret,
        None,
        "Google Gemini API key",
        ("GEMINI_API_KEY", "GOOGLE_API_KEY"),
        secret=True,
    ),
    Setting("openrouter_api_key", _secret, None, "OpenRouter API key", ("OPENROUTER_API_KEY",), secret=True),
    Setting("model_aliases", _str_map, {}, "extra alias -> model names", merge=True),
    Setting("models", _models, [], "custom model definitions (name, provider, ...)"),
    Setting("backends", _backends, {}, "per-backend settings, class_path backends", merge=True),
    Setting("routing", _routing, DEFAULT_ROUTING, "keywords and rules for automatic choice", merge=True),
    Setting("temperature", _temperature, None, "default sampling temperature (0-2) when a call gives none"),
    Setting("max_tokens", _opt_positive_int, None, "default answer length limit when a call gives none"),
    Setting("system", _opt_str, None, "default system prompt when a call gives none"),
    Setting(
        "stream",
        _bool,
        True,
        "stream answers as they arrive (off: one final output, for nbval)",
        ("TTT_STREAM",),
    ),
    Setting(
        "raise_on_error",
        _bool,
        False,
        "make failed answers raise instead of showing a message (for CI)",
        ("TTT_RAISE_ON_ERROR",),
    ),
    Setting("footer", _bool, True, "show model, tokens, time and cost under each answer"),
    Setting(
        "interpolation_limit", _number(int, 10), 2000, "characters of one {variable} before it is truncated"
    ),
    Setting(
        "context_budget",
        _number(int, 50),
        2000,
        "tokens of notebook context %%ask --context and --fix may add (estimated); see docs/context.md",
    ),
    Setting(
        "load_plugins",
        _bool,
        True,
        "discover plugins from the plugin folders and entry points",
        ("TTT_LOAD_PLUGINS",),
    ),
    Setting(
        "cache",
        _bool_or_path,
        False,
        "keep answers in a local cache (true, or the cache file's path); see docs/caching.md",
        ("TTT_CACHE",),
    ),
    Setting("record", _opt_path, None, "write every answer to this JSON Lines file", ("TTT_RECORD",)),
    Setting("replay", _opt_path, None, "answer from this recording (no network, no key)", ("TTT_REPLAY",)),
    Setting(
        "replay_mode",
        _replay_mode,
        "strict",
        "an ask missing from the recording fails (strict) or goes to the backend (fallthrough)",
        ("TTT_REPLAY_MODE",),
    ),
    Setting(
        "replay_speed",
        _number(float, 0),
        200.0,
        "characters per second a replayed answer streams at (at most 2 s an answer; 0: instant)",
        ("TTT_REPLAY_SPEED",),
    ),
]

SCHEMA: dict[str, Setting] = {s.name: s for s in _SETTINGS}


def _did_you_mean(word: str, choices: Any) -> str:
    close = difflib.get_close_matches(str(word), list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


# --------------------------------------------------------------------------- files


_PROJECT_FILES = ("ttt.yaml", "ttt.yml", ".ttt.yaml", ".ttt.yml")
_USER_FILES = (".config/ttt/config.yaml", ".config/ttt/config.yml", ".ttt.yaml", ".ttt.yml")
_paths_cache: dict[tuple[str | None, str], tuple[str, ...]] = {}


def _candidate_paths() -> tuple[str, ...]:
    """The searched paths as strings, cached per (cwd, home): this runs on every request."""
    explicit = os.environ.get("TTT_CONFIG")
    if explicit:
        return (os.path.expanduser(explicit),)
    try:
        cwd: str | None = os.getcwd()
    except OSError:  # the working directory was deleted: there is no project file to find
        cwd = None
    key = (cwd, os.path.expanduser("~"))
    paths = _paths_cache.get(key)
    if paths is None:
        project = tuple(os.path.join(cwd, n) for n in _PROJECT_FILES) if cwd else ()
        paths = project + tuple(os.path.join(key[1], n) for n in _USER_FILES)
        _paths_cache[key] = paths
    return paths


def config_files() -> list[Path]:
    """The files searched, highest precedence first (``TTT_CONFIG`` alone when set)."""
    return [Path(p) for p in _candidate_paths()]


def escape_surrogates(text: str) -> str:
    """``text`` with the lone surrogates of undecodable bytes written as ``\\xff`` escapes.

    A path or variable that is not UTF-8 reaches Python as ``"\\udcff"``-style
    surrogates, which print as "?" or break JSON readers; the escape shows the byte.
    """
    return _SURROGATE.sub(_escape_char, text)


def readable(text: str) -> str:
    """``text`` safe for a one-line message: every character a terminal would not show is escaped.

    Line breaks, tabs, control characters and undecodable bytes become escapes
    (``\\n``, ``\\x07``, ``\\xff``), so a path or name can neither split a message
    into several lines nor hide what it contains.
    """
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else _escape_char(c) for c in text)


def display_path(path: str | os.PathLike[str]) -> str:
    """A path as shown to people: as given, with undecodable bytes and control characters escaped."""
    return readable(os.fspath(path))


def short_path(path: str | os.PathLike[str]) -> str:
    """A path as shown in a notebook: relative to the working folder, else under ``~``, else whole.

    Saved notebooks then show ``answers.jsonl`` or ``~/.config/ttt/config.yaml``,
    not the machine the notebook happened to be run on.
    """
    text = os.fspath(path)
    try:
        absolute = os.path.abspath(text)
        here = os.getcwd()
        if absolute == here or absolute.startswith(here.rstrip(os.sep) + os.sep):
            return display_path(os.path.relpath(absolute, here))
        home = os.path.expanduser("~")
        if home not in ("", "~", os.sep) and absolute.startswith(home.rstrip(os.sep) + os.sep):
            return display_path("~" + os.sep + os.path.relpath(absolute, home))
    except (OSError, ValueError):
        pass
    return display_path(text)


_SURROGATE = re.compile("[\ud800-\udfff]")
_NAMED_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape_char(char: str | re.Match[str]) -> str:
    if isinstance(char, re.Match):
        char = char.group()
    code = ord(char)
    if 0xDC80 <= code <= 0xDCFF:  # os.fsdecode's surrogateescape: the byte it stands for
        return f"\\x{code - 0xDC00:02x}"
    if char in _NAMED_ESCAPES:
        return _NAMED_ESCAPES[char]
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


#: A file nested deeper than this, or expanding (through aliases) to more values,
#: is refused before any converter, display or merge walks it recursively.
MAX_DEPTH = 50
MAX_VALUES = 100_000


def _read_file(path: Path) -> dict[str, Any]:
    """Parse and validate one file, all or nothing; errors name the file, line and key."""
    shown = display_path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"Cannot read config file {shown}: {exc.strerror or exc}.") from None
    data, lines = _parse_yaml(_decode(raw, shown), shown)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"Config file {shown} must be a mapping of settings, not {type(data).__name__}.")
    try:
        _check_shape(data)
    except ValueError as exc:
        raise ConfigError(f"Config file {shown} {exc}.", hint="Simplify the file.") from None
    errors = []
    values = {}
    for key, raw_value in data.items():
        where = f"{shown}, line {lines.get(_line_key(key), '?')}"
        try:
            values[key] = _convert(key, raw_value)
        except ConfigError as exc:
            errors.append(f"{where}: {exc.message}")
    if errors:
        raise ConfigError(
            "Config file not applied: " + "; ".join(errors) + ".",
            hint="Fix these keys; nothing from this file is used until then.",
        )
    return values


def _decode(raw: bytes, shown: str) -> str:
    """The file's text; YAML files are UTF-8, and a file that is not says where it stops being so."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ConfigError(
            f"Config file {shown} is not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start},"
            f" line {line}).",
            hint="Save it as UTF-8.",
        ) from None


def _parse_yaml(text: str, shown: str) -> tuple[Any, dict[str, int]]:
    """(data, line of each top-level key); every way PyYAML can fail becomes a ConfigError.

    Besides its own errors, PyYAML's constructors raise ``ValueError`` and friends
    for values such as ``!!timestamp 2020-13-99``, and recurse once per nesting level.
    """
    import yaml  # only when a config file exists

    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{shown}, line {mark.line + 1}" if mark else shown
        problem = readable(" ".join(str(exc.problem or exc.context or "invalid YAML").split()))
        raise ConfigError(f"Invalid YAML in {where}: {problem}.", hint="Fix the file or remove it.") from None
    except yaml.reader.ReaderError as exc:
        char = exc.character if isinstance(exc.character, int) else ord(exc.character)
        raise ConfigError(
            f"Config file {shown} has a character YAML does not allow (U+{char:04X} at character"
            f" {exc.position}).",
            hint="Remove it, or write it as an escape inside a double-quoted string.",
        ) from None
    except RecursionError:
        raise ConfigError(f"Config file {shown} is nested too deeply.", hint="Simplify the file.") from None
    except (yaml.YAMLError, ValueError, TypeError, OverflowError) as exc:
        message = readable(" ".join(str(exc).split())) or type(exc).__name__
        raise ConfigError(f"Invalid YAML in {shown}: {message}.", hint="Fix the file or remove it.") from None
    lines: dict[str, int] = {}
    if isinstance(node, yaml.MappingNode):
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                lines.setdefault(key_node.value, key_node.start_mark.line + 1)
    return data, lines


def _line_key(key: Any) -> str:
    return key if isinstance(key, str) else str(key)


def _check_shape(value: Any) -> None:
    """Refuse structures too deep, too large (alias bombs) or containing themselves.

    YAML aliases can build a mapping that contains itself, or a few lines that
    expand to billions of values; everything that later walks the settings
    (validation, merging, display) would recurse forever or exhaust memory.
    """
    budget = [MAX_VALUES]

    def walk(item: Any, depth: int, inside: set[int]) -> None:
        if not isinstance(item, (dict, list, tuple)):
            return
        if id(item) in inside:
            raise ValueError("has a value that contains itself (through a YAML alias)")
        if depth > MAX_DEPTH:
            raise ValueError(f"is nested more than {MAX_DEPTH} levels deep")
        budget[0] -= len(item)
        if budget[0] < 0:
            raise ValueError(f"expands to more than {MAX_VALUES:,} values")
        inside.add(id(item))
        for child in item.values() if isinstance(item, dict) else item:
            walk(child, depth + 1, inside)
        inside.discard(id(item))

    walk(value, 0, set())


def _convert(key: Any, raw: Any) -> Any:
    setting = SCHEMA.get(key) if isinstance(key, str) else None
    if setting is None:
        raise ConfigError(f"unknown key {key!r}{_did_you_mean(key, SCHEMA)}")
    try:
        return setting.convert(raw)
    except ValueError as exc:
        raise ConfigError(f"{key}: {exc}") from None


# --------------------------------------------------------------------------- layers


def deep_merge(low: Any, high: Any) -> Any:
    """``high`` over ``low``; mappings merge key by key, recursively, anything else is replaced."""
    if isinstance(low, dict) and isinstance(high, dict):
        out = dict(low)
        for key, value in high.items():
            out[key] = deep_merge(out.get(key), value) if key in out else value
        return out
    return high


@dataclass
class Settings:
    """The effective configuration: values, and the layer each one came from."""

    values: dict[str, Any]
    sources: dict[str, str]
    files: list[Path] = field(default_factory=list)

    def __getattr__(self, name: str) -> Any:
        try:
            return self.__dict__["values"][name]
        except KeyError:
            raise AttributeError(f"no setting {name!r}{_did_you_mean(name, SCHEMA)}") from None

    def get(self, name: str, default: Any = None) -> Any:
        return self.values.get(name, default)

    def source(self, name: str) -> str:
        return self.sources.get(name, DEFAULT_SOURCE)

    def secret(self, name: str) -> str | None:
        """The revealed value of a secret setting: for building request headers only."""
        value = self.values.get(name)
        return value.reveal() if isinstance(value, Secret) else value

    def backend_config(self, backend: str) -> dict[str, Any]:
        """Global settings overlaid with ``backends.<backend>`` (and its ``config``)."""
        merged = {k: v for k, v in self.values.items() if k != "backends"}
        specific = dict(self.values.get("backends", {}).get(backend, {}))
        inner = specific.pop("config", None) or {}
        merged.update(specific)
        merged.update(inner)
        return merged

    def rows(self) -> Iterator[tuple[str, str, str]]:
        """(key, shown value, source) for display; secrets masked."""
        for name, setting in SCHEMA.items():
            yield name, display_value(self.values.get(name), setting.secret), self.source(name)

    def to_dict(self, *, reveal: bool = False) -> dict[str, Any]:
        if reveal:
            return {k: (v.reveal() if isinstance(v, Secret) else v) for k, v in self.values.items()}
        return {k: (str(v) if isinstance(v, Secret) else v) for k, v in self.values.items()}

    def __str__(self) -> str:
        rows = list(self.rows())
        width = max(len(r[0]) for r in rows)
        vwidth = min(48, max(len(r[1]) for r in rows))
        return "\n".join(f"{k:<{width}}  {v:<{vwidth}}  {s}" for k, v, s in rows)

    def __repr__(self) -> str:
        return f"<Settings default_backend={self.values.get('default_backend')!r} ({len(self.values)} keys)>"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(str(self))


def display_value(value: Any, secret: bool = False) -> str:
    """One line for a table cell: secrets masked, line breaks and undecodable bytes escaped."""
    if isinstance(value, Secret) or (secret and value):
        return mask(value.reveal() if isinstance(value, Secret) else str(value))
    if value is None:
        return "-" if not secret else "(not set)"
    if isinstance(value, (dict, list)):
        import json

        text = escape_surrogates(json.dumps(_scrub(value), default=str, ensure_ascii=False))
        return text if len(text) <= 60 else text[:57] + "..."
    return readable(str(value))


def _looks_secret(key: str) -> bool:
    low = key.lower()
    return low.endswith(("api_key", "apikey", "token", "secret", "password")) or low == "key"


def _scrub(value: Any) -> Any:
    """Mask anything key-like nested in backend settings before display."""
    if isinstance(value, dict):  # keys as text: YAML allows dates and numbers, JSON does not
        return {
            str(k): (mask(str(v)) if _looks_secret(str(k)) and v else _scrub(v)) for k, v in value.items()
        }
    if isinstance(value, list):
        return [_scrub(v) for v in value]
    if isinstance(value, Secret):
        return str(value)
    return value


class _Store:
    """The programmatic layer plus the cache of the computed effective settings."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.programmatic: dict[str, Any] = {}
        self.version = 0
        self.cache_key: Any = None
        self.cache: Settings | None = None
        self.file_cache: dict[str, tuple[Any, dict[str, Any]]] = {}
        self.listeners: list[Callable[[Settings], None]] = []


_store = _Store()
_ENV_NAMES = sorted({"TTT_CONFIG", *(e for s in _SETTINGS for e in s.env)})


def _file_stamp(path: str) -> Any:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size)


_RAW_ENV = getattr(os.environ, "_data", None) if os.name == "posix" else None
_ENCODED_NAMES = tuple(os.fsencode(n) for n in _ENV_NAMES) if _RAW_ENV is not None else ()


def _env_snapshot() -> tuple[Any, ...]:
    """The values of every variable a setting reads, as a cache key (not decoded: only compared).

    Read from the environment's underlying mapping where CPython has one:
    thirty lookups through ``os.environ`` cost more than the rest of a
    request's routing.
    """
    if _RAW_ENV is not None:
        return tuple(map(_RAW_ENV.get, _ENCODED_NAMES))
    return tuple(map(os.environ.get, _ENV_NAMES))


def get_config() -> Settings:
    """The effective settings now; cheap to call on every request."""
    stamps = tuple((p, _file_stamp(p)) for p in _candidate_paths())
    env = _env_snapshot()
    with _store.lock:
        key = (stamps, env, _store.version)
        if _store.cache is not None and _store.cache_key == key:
            return _store.cache
        settings = _compute(stamps)
        _store.cache, _store.cache_key = settings, key
        return settings


def _compute(stamps: tuple[tuple[str, Any], ...]) -> Settings:
    values = {name: s.default for name, s in SCHEMA.items()}
    sources = {name: DEFAULT_SOURCE for name in SCHEMA}

    def apply(layer: dict[str, Any], source: str) -> None:
        for key, value in layer.items():
            if SCHEMA[key].merge and sources[key] != DEFAULT_SOURCE:
                values[key] = deep_merge(values[key], value)
                sources[key] = f"{source} + {sources[key]}"
            elif SCHEMA[key].merge:
                values[key] = deep_merge(values[key], value)
                sources[key] = source
            else:
                values[key] = value
                sources[key] = source

    _require_named_file(stamps)
    used = []
    for path, stamp in reversed(stamps):  # lowest precedence first
        if stamp is None:
            continue
        cached = _store.file_cache.get(path)
        if cached is None or cached[0] != stamp:
            cached = (stamp, _read_file(Path(path)))
            _store.file_cache[path] = cached
        apply(cached[1], display_path(path))
        used.append(path)
    for name, setting in SCHEMA.items():
        for env_name in setting.env:  # first listed variable wins
            raw = os.environ.get(env_name)
            if raw is None or raw == "":
                continue
            try:
                value = setting.convert(raw)
            except ValueError as exc:
                raise ConfigError(
                    f"Environment variable {env_name}: {exc}.",
                    hint=f"Fix or unset {env_name}.",
                ) from None
            apply({name: value}, f"env {env_name}")
            break
    apply(_store.programmatic, PROGRAMMATIC_SOURCE)
    return Settings(values, sources, [Path(p) for p in reversed(used)])


def _require_named_file(stamps: tuple[tuple[str, Any], ...]) -> None:
    """``TTT_CONFIG`` replaces the search, so a file it names that is not there must not pass silently."""
    if not os.environ.get("TTT_CONFIG") or not stamps or stamps[0][1] is not None:
        return
    path = stamps[0][0]
    try:
        os.stat(path)
        why = "which cannot be read"
    except FileNotFoundError:
        why = "which does not exist"
    except OSError as exc:
        why = f"which cannot be read ({exc.strerror or type(exc).__name__})"
    raise ConfigError(
        f"TTT_CONFIG names the config file {display_path(path)}, {why}.",
        hint="Fix the path, or unset TTT_CONFIG to use ./ttt.yaml and ~/.config/ttt/config.yaml.",
    )


def configure(**settings: Any) -> Settings:
    """Set values in the programmatic layer (highest precedence); ``None`` unsets one.

    Everything is validated before anything changes, so a typo changes nothing.
    """
    converted = {}
    for key, raw in settings.items():
        if key not in SCHEMA:
            raise ConfigError(
                f"Unknown setting {key!r}{_did_you_mean(key, SCHEMA)}.",
                hint="See `ttt_magic.config.SCHEMA` or `%ttt_config --show` for the keys.",
            )
        if raw is None:
            converted[key] = None
            continue
        try:
            _check_shape(raw)
            converted[key] = SCHEMA[key].convert(raw)
        except ValueError as exc:
            raise ConfigError(f"Setting {key!r} (configure()): {exc}.") from None
    if converted.get("default_backend") is not None:
        _require_known_backend(converted["default_backend"], converted)
    with _store.lock:
        for key, value in converted.items():
            if value is None:
                _store.programmatic.pop(key, None)
            elif SCHEMA[key].merge and key in _store.programmatic:
                _store.programmatic[key] = deep_merge(_store.programmatic[key], value)
            else:
                _store.programmatic[key] = value
        _store.version += 1
    current = get_config()
    _notify(current)
    return current


def _require_known_backend(name: str, pending: dict[str, Any]) -> None:
    """Refuse ``configure(default_backend=...)`` naming no backend that exists now.

    Only here: a file or variable may name a backend that a plugin registers
    later, and reading those layers must stay cheap (no registry, no plugins), so
    the router reports them when it is asked. A call to ``configure()`` happens
    after the plugins it relies on were loaded, so the registry is complete enough
    to judge, and a typo (``%ttt_config default_backend=mok``) is caught at once.
    """
    if name == "auto":
        return
    known = _known_backends(pending)
    if name not in known:
        from .plugins import ensure_discovered

        try:
            ensure_discovered()
        except ConfigError:  # a broken file is reported by the next get_config(), not here
            pass
        known = _known_backends(pending)
    if name in known:
        return
    choices = sorted(known | {"auto"})
    raise ConfigError(
        f"Setting 'default_backend' (configure()): no backend is called {name!r}"
        f"{_did_you_mean(name, choices)}.",
        hint=f"Registered backends: {', '.join(choices)}.",
    )


def _known_backends(pending: dict[str, Any]) -> set[str]:
    """Registered backends, and those configured by ``type``/``class_path`` (this call's included)."""
    from .registry import backend_registry

    try:
        configured = get_config().backends
    except ConfigError:
        configured = {}
    backends = deep_merge(configured, pending.get("backends") or {})
    return set(backend_registry.entries(_empty_settings(backends)))


def _empty_settings(backends: dict[str, Any]) -> Settings:
    """Default settings but for ``backends``: what the registry needs to list the backends."""
    values = {name: s.default for name, s in SCHEMA.items()}
    values["backends"] = backends
    return Settings(values, {})


def reset() -> None:
    """Forget everything set by ``configure()``.

    Works even while a config file is broken (that error surfaces on the next use).
    """
    with _store.lock:
        _store.programmatic.clear()
        _store.version += 1
    try:
        current = get_config()
    except ConfigError:
        return
    _notify(current)


def subscribe(callback: Callable[[Settings], None]) -> Callable[[], None]:
    """Call ``callback(settings)`` after every ``configure()``/``reset()``; returns an unsubscribe."""
    _store.listeners.append(callback)

    def unsubscribe() -> None:
        if callback in _store.listeners:
            _store.listeners.remove(callback)

    return unsubscribe


def _notify(settings: Settings) -> None:
    for callback in list(_store.listeners):
        try:
            callback(settings)
        except Exception:  # a broken listener (e.g. a closed widget) must not break configure()
            import logging

            logging.getLogger(__name__).debug("config listener failed", exc_info=True)
