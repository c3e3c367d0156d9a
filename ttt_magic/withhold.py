"""Configured API keys never leave in a prompt.

A key can reach a prompt by accident: ``{os.environ}`` interpolated into
``%%ask``, a settings dict pasted into a question, a traceback that shows a
variable holding it. Before every attempt the router replaces each configured
secret (the provider keys, ``backends.*`` keys named like secrets, and the
variables named by ``api_key_env``) with its masked form in everything that is
sent: prompt, system prompt and history. The answer says how many it withheld.
"""

from __future__ import annotations

import os
from typing import Any

from .secrets import Secret, mask

__all__ = ["configured_secrets", "scrub", "withhold_call"]

#: Values shorter than this are not treated as keys (they would match ordinary words).
MIN_SECRET = 8

#: The last settings seen and their secrets: settings change rarely, requests often.
_last: tuple[Any, tuple[str, ...], tuple[str | None, ...]] | None = None


_SECRET_WORDS = ("api_key", "apikey", "token", "secret", "password")


def _looks_secret(key: str) -> bool:
    return key.lower().endswith(_SECRET_WORDS) or key.lower() == "key"


def _walk(value: Any, found: set[str]) -> None:
    """Collect secrets in a settings value: ``Secret``s, secret-named keys, ``api_key_env`` targets."""
    if isinstance(value, Secret):
        found.add(value.reveal())
    elif isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, str) and _looks_secret(str(key)):
                found.add(item)
            elif isinstance(item, str) and key == "api_key_env":
                found.add(os.environ.get(item, ""))
            else:
                _walk(item, found)
    elif isinstance(value, (list, tuple)):
        for item in value:
            _walk(item, found)


def configured_secrets(settings: Any) -> tuple[str, ...]:
    """Every secret value the settings hold or name, longest first (so no key is half-masked).

    The provider keys (``Secret`` values) and every environment variable that
    feeds one (``GOOGLE_API_KEY`` too when ``GEMINI_API_KEY`` won), keys inside
    ``backends.*`` named like secrets, and the variable each ``api_key_env``
    names; surrounding white space stripped, as the keys themselves are.
    """
    global _last
    envs = _env_values(settings)
    seen = _last
    if seen is not None and seen[0] is settings and seen[2] == envs:
        return seen[1]
    from .config import SCHEMA

    found: set[str] = set()
    _walk(settings.values, found)
    for setting in SCHEMA.values():
        if setting.secret:
            found.update(os.environ.get(name, "") for name in setting.env)
    secrets = tuple(sorted({s.strip() for s in found if len(s.strip()) >= MIN_SECRET}, key=len, reverse=True))
    _last = (settings, secrets, envs)
    return secrets


def _env_values(settings: Any) -> tuple[str | None, ...]:
    """The variables secrets come from (a key can change without the settings changing)."""
    from .config import SCHEMA

    backends = settings.values.get("backends") or {}
    named = [
        cfg["api_key_env"] for cfg in backends.values() if isinstance(cfg, dict) and cfg.get("api_key_env")
    ]
    if not named and _RAW_ENV is not None:  # the common case, read cheaply (see config._env_snapshot)
        return tuple(map(_RAW_ENV.get, _secret_env_names(SCHEMA, encoded=True)))
    names = [*_secret_env_names(SCHEMA, encoded=False), *map(str, named)]
    return tuple(os.environ.get(name) for name in names)


_RAW_ENV = getattr(os.environ, "_data", None) if os.name == "posix" else None
_NAMES: dict[bool, tuple[Any, ...]] = {}


def _secret_env_names(schema: Any, *, encoded: bool) -> tuple[Any, ...]:
    names = _NAMES.get(encoded)
    if names is None:
        plain = tuple(name for setting in schema.values() if setting.secret for name in setting.env)
        names = _NAMES[encoded] = tuple(os.fsencode(n) for n in plain) if encoded else plain
    return names


def scrub(text: str, secrets: tuple[str, ...] | list[str]) -> tuple[str, int]:
    """``text`` with each secret replaced by its masked form, and how many were found."""
    count = 0
    for secret in secrets:
        if secret in text:
            count += text.count(secret)
            text = text.replace(secret, mask(secret))
    return text, count


def _scrub_content(content: Any, secrets: tuple[str, ...]) -> tuple[Any, int]:
    if isinstance(content, str):
        return scrub(content, secrets)
    if isinstance(content, list):
        total, parts = 0, []
        for part in content:
            if isinstance(part, dict) and part.get("type") == "text":
                text, n = scrub(part.get("text", ""), secrets)
                total += n
                part = {**part, "text": text}
            parts.append(part)
        return parts, total
    return content, 0


def withhold_call(call: Any, secrets: tuple[str, ...]) -> tuple[Any, int]:
    """``call`` with every secret masked in prompt, system and history, and how many were found."""
    if not secrets:
        return call, 0
    prompt, n_prompt = _scrub_content(call.prompt, secrets)
    system, n_system = scrub(call.system, secrets) if call.system else (call.system, 0)
    history, n_history = [], 0
    for turn in call.history:
        content, n = _scrub_content(turn.get("content"), secrets)
        n_history += n
        history.append({**turn, "content": content} if n else turn)
    total = n_prompt + n_system + n_history
    if not total:
        return call, 0
    return call.with_changes(prompt=prompt, system=system, history=history), total
