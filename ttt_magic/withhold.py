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

__all__ = ["configured_secrets", "withhold"]

#: Values shorter than this are not treated as keys (they would match ordinary words).
MIN_SECRET = 8

#: The last settings seen and their secrets: settings change rarely, requests often.
_last: tuple[Any, tuple[str, ...], tuple[str | None, ...]] | None = None


def _looks_secret(key: str) -> bool:
    low = key.lower()
    return low.endswith(("api_key", "apikey", "token", "secret", "password")) or low == "key"


def configured_secrets(settings: Any) -> tuple[str, ...]:
    """Every secret value the settings hold or name, longest first (so no key is half-masked)."""
    global _last
    envs = _named_envs(settings)
    seen = _last
    if seen is not None and seen[0] is settings and seen[2] == envs:
        return seen[1]
    found: set[str] = set()

    def visit(key: str, value: Any) -> None:
        if isinstance(value, Secret):
            found.add(value.reveal())
        elif isinstance(value, dict):
            for k, v in value.items():
                visit(str(k), v)
            env = value.get("api_key_env")
            if isinstance(env, str) and os.environ.get(env):
                found.add(os.environ[env])
        elif isinstance(value, str) and _looks_secret(key):
            found.add(value)

    for key, value in settings.values.items():
        visit(key, value)
    secrets = tuple(sorted((s.strip() for s in found if len(s.strip()) >= MIN_SECRET), key=len, reverse=True))
    _last = (settings, secrets, envs)
    return secrets


def _named_envs(settings: Any) -> tuple[str | None, ...]:
    """The values of the variables ``api_key_env`` names (they can change without the settings)."""
    backends = settings.values.get("backends") or {}
    names = [cfg.get("api_key_env") for cfg in backends.values() if isinstance(cfg, dict)]
    return tuple(os.environ.get(n) for n in names if isinstance(n, str))


def _scrub(text: str, secrets: tuple[str, ...]) -> tuple[str, int]:
    count = 0
    for secret in secrets:
        if secret in text:
            count += text.count(secret)
            text = text.replace(secret, mask(secret))
    return text, count


def _scrub_content(content: Any, secrets: tuple[str, ...]) -> tuple[Any, int]:
    if isinstance(content, str):
        return _scrub(content, secrets)
    if isinstance(content, list):
        total, parts = 0, []
        for part in content:
            if isinstance(part, dict) and part.get("type") == "text":
                text, n = _scrub(part.get("text", ""), secrets)
                total += n
                part = {**part, "text": text}
            parts.append(part)
        return parts, total
    return content, 0


def withhold(call: Any, secrets: tuple[str, ...]) -> tuple[Any, int]:
    """``call`` with every secret masked in prompt, system and history, and how many were found."""
    if not secrets:
        return call, 0
    prompt, n_prompt = _scrub_content(call.prompt, secrets)
    system, n_system = _scrub(call.system, secrets) if call.system else (call.system, 0)
    history, n_history = [], 0
    for turn in call.history:
        content, n = _scrub_content(turn.get("content"), secrets)
        n_history += n
        history.append({**turn, "content": content} if n else turn)
    total = n_prompt + n_system + n_history
    if not total:
        return call, 0
    return call.with_changes(prompt=prompt, system=system, history=history), total
