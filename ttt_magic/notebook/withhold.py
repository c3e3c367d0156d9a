"""Keeping configured API keys out of prompts built from notebook variables.

A prompt such as ``%%ask What is in {os.environ}?`` would otherwise copy the
user's provider keys into a request to a provider (and into the model's
answer, and the saved notebook). Every secret the configuration knows is
therefore replaced by its masked form (``sk-…f3a9``) in interpolated values,
and the magic says so in one line. What the user typed literally is theirs;
the library scrubs the outgoing request as a second line of defence.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..withhold import MIN_SECRET as MIN_SECRET_LENGTH
from ..withhold import configured_secrets as _configured
from ..withhold import scrub

__all__ = ["MIN_SECRET_LENGTH", "WITHHELD_NOTE", "configured_secrets", "withhold"]

WITHHELD_NOTE = "a configured API key in an interpolated value was withheld from the prompt"


def configured_secrets(settings: Any) -> list[str]:
    """Every secret value ``settings`` can reach, longest first (see ``ttt_magic.withhold``)."""
    return list(_configured(settings))


def withhold(text: str, secrets: Iterable[str]) -> tuple[str, int]:
    """``text`` with each secret replaced by its masked form; and how many were found."""
    return scrub(text, tuple(secrets))
