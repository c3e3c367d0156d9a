"""``BaseBackend``: the interface every backend implements (the seed's "Backend Interface").

A backend turns one request into text. It knows nothing of routing: it does not
retry, sleep or fall back, it reports failures (``ProviderError`` raised from
``astream``, or a failed ``AIResponse`` from ``ask``) and the router decides.
Subclasses override ``ask`` or ``astream`` (or both); each has a default built
on the other so a minimal plugin needs only one.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

from ..errors import ProviderError
from ..models import AIResponse, Message, StreamEnd, Thinking

__all__ = ["BaseBackend"]


class BaseBackend:
    """Base class of all backends.

    ``config`` is the merged configuration (global settings overlaid with
    ``backends.<name>``, the backend-specific values winning); the registry
    passes it. Constructed by hand with no config, the current settings are used.
    """

    #: Default identifier; subclasses may override the ``name`` property instead.
    backend_name: str = "base"

    def __init__(self, config: dict[str, Any] | None = None) -> None:
        if config is None:
            from ..config import get_config

            config = get_config().backend_config(self._safe_name())
        self.config = config
        self.backend_config: dict[str, Any] = dict(config)
        try:
            self.timeout = float(self.backend_config.get("timeout") or 30.0)
        except (TypeError, ValueError):
            self.timeout = 30.0

    def _safe_name(self) -> str:
        try:
            return self.name
        except Exception:  # a name property that needs __init__ state
            return type(self).backend_name

    # ------------------------------------------------------------------ identity

    @property
    def name(self) -> str:
        """Backend identifier."""
        return type(self).backend_name

    @property
    def is_available(self) -> bool:
        """Whether the backend can be used now. Cheap: it is asked on every routing decision."""
        return True

    @property
    def unavailable_reason(self) -> str | None:
        """Why ``is_available`` is false, in one actionable sentence (``None`` when available)."""
        return None if self.is_available else f"Backend {self.name!r} reports itself unavailable."

    # ------------------------------------------------------------------ requests

    async def ask(
        self,
        prompt: str,
        *,
        model: str | None = None,
        system: str | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        **kwargs: Any,
    ) -> AIResponse:
        """Generate a complete answer. Default: gather ``astream``."""
        if type(self).astream is BaseBackend.astream:
            raise NotImplementedError(f"{type(self).__name__} must implement ask() or astream()")
        started = time.perf_counter()
        parts: list[str] = []
        thoughts: list[str] = []
        end = StreamEnd()
        try:
            async for item in self.astream(
                prompt,
                model=model,
                system=system,
                temperature=temperature,
                max_tokens=max_tokens,
                **kwargs,
            ):
                if isinstance(item, StreamEnd):
                    end = item
                elif isinstance(item, Thinking):
                    thoughts.append(item.text)
                else:
                    parts.append(item)
        except ProviderError as exc:
            return self.failure(exc, model=model, text="".join(parts))
        return AIResponse(
            "".join(parts),
            model=end.model or model,
            backend=self.name,
            tokens_in=end.tokens_in,
            tokens_out=end.tokens_out,
            time_taken=time.perf_counter() - started,
            reasoning=end.reasoning or ("".join(thoughts) or None),
            metadata={**end.metadata, **({"finish_reason": end.finish_reason} if end.finish_reason else {})},
        )

    async def astream(
        self,
        prompt: str,
        *,
        model: str | None = None,
        system: str | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[str | StreamEnd]:
        """Yield the answer in chunks. Default: one chunk, the whole ``ask`` answer.

        May yield a ``StreamEnd`` last (usage, finish reason). Failures raise
        ``ProviderError`` so the router can tell "retry" from "give up".
        """
        if type(self).ask is BaseBackend.ask:
            raise NotImplementedError(f"{type(self).__name__} must implement ask() or astream()")
        response = await self.ask(
            prompt, model=model, system=system, temperature=temperature, max_tokens=max_tokens, **kwargs
        )
        if response.failed:
            raise error_from_response(response)
        if response.text:
            yield response.text
        yield StreamEnd(
            model=response.model,
            tokens_in=response.tokens_in,
            tokens_out=response.tokens_out,
            metadata={k: v for k, v in response.metadata.items() if k != "route"},
        )

    async def models(self) -> list[str]:
        """Model names this backend serves (may ask a server; callers cache)."""
        return []

    async def status(self) -> dict[str, Any]:
        """A summary for ``%ttt_status`` and ``python -m ttt_magic status``."""
        available = self.is_available
        info: dict[str, Any] = {"backend": self.name, "available": available}
        if not available:
            info["reason"] = self.unavailable_reason
        try:
            info["models"] = await self.models()
        except Exception as exc:  # status must always answer
            info["models"] = []
            info["models_error"] = str(exc)
        return info

    async def aclose(self) -> None:
        """Release resources (connections); called at shutdown."""

    # ------------------------------------------------------------------ helpers

    def failure(self, error: BaseException, *, model: str | None = None, text: str = "") -> AIResponse:
        """A failed ``AIResponse`` that still tells the router whether a retry may help."""
        info = error_info(error)
        return AIResponse(
            text, model=model, backend=self.name, error=info["message"], metadata={"error_info": info}
        )

    @staticmethod
    def build_messages(
        prompt: str, system: str | None = None, history: list[Message] | None = None
    ) -> list[Message]:
        """System (if any), then the conversation so far, then this prompt."""
        messages: list[Message] = []
        if system:
            messages.append({"role": "system", "content": system})
        messages.extend(history or [])
        messages.append({"role": "user", "content": prompt})
        return messages

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._safe_name()!r}>"


def error_info(error: BaseException) -> dict[str, Any]:
    """The facts about a failure the router needs, as plain data."""
    if isinstance(error, ProviderError):
        return {
            "message": str(error),
            "status": error.status,
            "retryable": error.retryable,
            "retry_after": error.retry_after,
            "kind": error.kind,
        }
    return {
        "message": f"{type(error).__name__}: {error}" if str(error) else type(error).__name__,
        "status": None,
        "retryable": False,
        "retry_after": None,
        "kind": "exception",
    }


def error_from_response(response: AIResponse) -> ProviderError:
    """Rebuild the ``ProviderError`` a failed response stands for."""
    info = response.metadata.get("error_info") or {}
    return ProviderError(
        response.error or "The backend failed without a message.",
        status=info.get("status"),
        retryable=bool(info.get("retryable", False)),
        retry_after=info.get("retry_after"),
        kind=info.get("kind", "error"),
    )
