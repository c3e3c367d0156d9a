"""The exceptions of ttt_magic, each carrying a short message that says what to do.

Two families: ``UsageError`` (a ValueError: the caller asked for something
impossible, raised before any request) and ``ProviderError`` (a backend call
failed; the router decides whether to retry, fall back, or give up, and ``ask``
turns it into a failed ``AIResponse``).
"""

from __future__ import annotations

__all__ = [
    "BackendUnavailable",
    "ConfigError",
    "ProviderError",
    "TTTError",
    "UnknownModelError",
    "UsageError",
]

RETRYABLE_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504, 529})


class TTTError(Exception):
    """Base of every error raised by ttt_magic."""

    hint: str | None = None

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if hint is not None:
            self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} {self.hint}" if self.hint else self.message


class UsageError(TTTError, ValueError):
    """Bad arguments: raised before anything is sent."""


class ConfigError(UsageError):
    """A configuration value, file or key is wrong; the message names where."""


class UnknownModelError(UsageError):
    """A model name that neither the catalogue nor an alias knows."""

    def __init__(self, name: str, suggestions: list[str] | None = None) -> None:
        self.name = name
        self.suggestions = list(suggestions or [])
        hint = (
            f"Did you mean {', '.join(repr(s) for s in self.suggestions)}?"
            if self.suggestions
            else "List models with `ttt_magic.model_registry.list_models()` or `%ttt_models`,"
            " or name one as provider/model (e.g. 'openai/gpt-4o-mini')."
        )
        super().__init__(f"Unknown model {name!r}.", hint=hint)


class ProviderError(TTTError):
    """A backend call failed.

    ``retryable`` tells the router a later attempt may succeed (rate limits,
    overload, timeouts, dropped connections); ``retry_after`` is the server's
    requested wait in seconds, when it said one.
    """

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        status: int | None = None,
        retryable: bool | None = None,
        retry_after: float | None = None,
        kind: str = "error",
    ) -> None:
        super().__init__(message, hint=hint)
        self.status = status
        self.retryable = (status in RETRYABLE_STATUS) if retryable is None else retryable
        self.retry_after = retry_after
        self.kind = kind


class BackendUnavailable(ProviderError):
    """The backend cannot be used at all right now (no key, server down, missing module)."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message, hint=hint, retryable=False, kind="unavailable")
