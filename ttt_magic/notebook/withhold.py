"""Keeping configured API keys out of prompts built from notebook variables.

A prompt such as ``%%ask What is in {os.environ}?`` would otherwise copy the
user's provider keys into a request to a provider (and into the model's
answer, and the saved notebook). Every secret the configuration knows is
therefore replaced by its masked form (``sk-…f3a9``) in interpolated values,
and the magic says so in one line. What the user typed literally is theirs;
the library scrubs the outgoing request as a second line of defence.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any

from ..secrets import Secret, mask

__all__ = ["MIN_SECRET_LENGTH", "WITHHELD_NOTE", "configured_secrets", "withhold"]

WITHHELD_NOTE = "a configured API key in an interpolated value was withheld from the prompt"
#: Shorter values cannot be told apart from ordinary text, and no provider issues keys that short.
MIN_SECRET_LENGTH = 8
_SECRET_WORDS = ("api_key", "apikey", "token", "secret", "password")


def _looks_secret(key: str) -> bool:
    return key.lower().endswith(_SECRET_WORDS)


def _walk(value: Any, found: set[str]) -> None:
    """Collect secrets in a settings value: ``Secret``s, secret-named keys, ``api_key_env`` targets."""
    if isinstance(value, Secret):
        found.add(value.reveal())
    elif isinstance(value, Mapping):
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


def configured_secrets(settings: Any) -> list[str]:
    """Every secret value ``settings`` (a ``config.Settings``) can reach, longest first.

    The provider keys (``Secret`` values) and every environment variable that
    feeds one (``GOOGLE_API_KEY`` too when ``GEMINI_API_KEY`` won), keys inside
    ``backends.*`` named like secrets (api_key, token, secret, password), and
    the variable each ``api_key_env`` names.
    """
    from ..config import SCHEMA

    found: set[str] = set()
    _walk(settings.values, found)
    for setting in SCHEMA.values():
        if setting.secret:
            found.update(os.environ.get(name, "") for name in setting.env)
    return sorted((s for s in found if len(s) >= MIN_SECRET_LENGTH), key=len, reverse=True)


def withhold(text: str, secrets: Iterable[str]) -> tuple[str, int]:
    """``text`` with each secret replaced by its masked form; and how many secrets were found."""
    count = 0
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, mask(secret))
            count += 1
    return text, count
