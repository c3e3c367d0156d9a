"""Anthropic Messages API backend (``POST /v1/messages``), streaming and not.

The module is split in two layers so that the protocol can be tested without a
network: pure functions that build the request body and interpret the
server's events (``build_payload``, ``MessageStream``, ``parse_message``), and
``AnthropicBackend``, which sends requests with the shared HTTP plumbing of
``backends.http`` and decodes the named server-sent events with
``backends.wire``.
"""

from __future__ import annotations

from typing import Any

from ..errors import ProviderError
from ..models import Message, StreamEnd
from ..request import Resolved
from .keyed import KeyedBackend
from .template import (
    Exchange,
    alternating,
    catalogue_default,
    catalogue_ids,
    configured_default,
    only_text,
)

__all__ = [
    "API_VERSION",
    "AnthropicBackend",
    "MessageStream",
    "build_headers",
    "build_messages",
    "build_payload",
    "catalogue_default",
    "configured_default",
    "parse_message",
    "stream_error",
]


PROVIDER = "anthropic"
KEY_SETTING = "anthropic_api_key"
KEY_ENV = "ANTHROPIC_API_KEY"
API_VERSION = "2023-06-01"
#: ``max_tokens`` is required by the Messages API; this is used when neither the
#: call nor ``backends.anthropic.max_tokens`` gives one.
DEFAULT_MAX_TOKENS = 4096
#: Used when no model is named, the configuration names none for Anthropic and
#: the catalogue lists no fast Anthropic model (see ``catalogue_default``).
DEFAULT_MODEL = "claude-haiku-4-5"

#: ``effort=`` -> extended thinking's ``budget_tokens`` (the API's minimum is 1,024).
THINKING_BUDGETS = {"low": 1024, "medium": 4096, "high": 16384}

#: Anthropic's error ``type`` values and the HTTP status each one stands for, so
#: an error that arrives as an SSE event is classified like one sent as a status.
ERROR_STATUS = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}


# --------------------------------------------------------------------------- request


def build_messages(
    prompt: str | list[Any], history: list[Message] | None = None
) -> tuple[str | None, list[dict[str, Any]]]:
    """Conversation -> (system text found in the history, Anthropic ``messages``).

    The API takes the system prompt as a top-level field and wants user and
    assistant turns to alternate, so system turns are lifted out and
    consecutive turns of one role are joined. Empty turns are dropped (the API
    rejects empty content).
    """
    system, turns = alternating(prompt, history)
    messages: list[dict[str, Any]] = []
    for role, parts in turns:
        text = only_text(parts)
        messages.append({"role": role, "content": text if text is not None else [_block(p) for p in parts]})
    return system, messages


def _block(part: dict[str, Any]) -> dict[str, Any]:
    """A content part as a Messages API block (images as base64 sources)."""
    if part.get("type") == "image":
        import base64

        data = base64.b64encode(part["data"]).decode("ascii")
        return {"type": "image", "source": {"type": "base64", "media_type": part["mime_type"], "data": data}}
    return {"type": "text", "text": part.get("text", "")}


def build_payload(
    prompt: str | list[Any],
    *,
    model: str,
    system: str | None = None,
    temperature: float | None = None,
    max_tokens: int | None = None,
    history: list[Message] | None = None,
    stream: bool = True,
    stop: list[str] | str | None = None,
    top_p: float | None = None,
) -> dict[str, Any]:
    """The JSON body of ``POST /v1/messages``."""
    history_system, messages = build_messages(prompt, history)
    systems = [s for s in (history_system, system) if s]
    payload: dict[str, Any] = {
        "model": model,
        "max_tokens": int(max_tokens) if max_tokens else DEFAULT_MAX_TOKENS,
        "messages": messages,
    }
    if systems:
        payload["system"] = "\n\n".join(systems)
    if temperature is not None:
        payload["temperature"] = float(temperature)
    if top_p is not None:
        payload["top_p"] = float(top_p)
    if stop:
        payload["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    if stream:
        payload["stream"] = True
    return payload


def build_headers(api_key: str) -> dict[str, str]:
    """Request headers; ``api_key`` is the revealed key (never logged)."""
    return {
        "x-api-key": api_key,
        "anthropic-version": API_VERSION,
        "content-type": "application/json",
        "accept": "application/json",
    }


# --------------------------------------------------------------------------- response


def _input_tokens(usage: dict[str, Any]) -> int | None:
    """All prompt tokens: Anthropic reports cache writes and reads apart from ``input_tokens``."""
    parts = [usage.get(k) for k in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")]
    numbers = [p for p in parts if isinstance(p, int)]
    return sum(numbers) if numbers else None


def stream_error(data: dict[str, Any], *, model: str | None = None) -> ProviderError:
    """The ``ProviderError`` for an ``error`` event (or an error body) of the Messages API."""
    error = data.get("error") if isinstance(data.get("error"), dict) else data
    kind = str(error.get("type") or "api_error")
    message = str(error.get("message") or kind.replace("_", " "))
    status = ERROR_STATUS.get(kind, 500)
    if kind == "overloaded_error":
        hint = "Anthropic is overloaded; try again shortly or use another model or backend."
    elif kind == "rate_limit_error":
        hint = "Rate limited by Anthropic; wait a little or lower the request rate."
    else:
        hint = None
    where = f" for {model}" if model else ""
    return ProviderError(f"Anthropic error{where} ({kind}): {message}", hint=hint, status=status, kind=kind)


def refusal_error(model: str | None, chars: int) -> ProviderError:
    kept = f" (the {chars} characters received before it are kept)" if chars else ""
    return ProviderError(
        f"The answer was stopped by {model or 'Claude'} (stop_reason: refusal){kept}.",
        hint="Rephrase the prompt, or try another model or backend.",
        retryable=False,
        kind="blocked",
    )


class MessageStream:
    """Interprets the events of one streamed Message, in order.

    ``handle`` returns the text an event adds (or ``None``) and raises
    ``ProviderError`` for an ``error`` event; afterwards ``end()`` gives the
    usage and stop reason, or raises if the stream stopped before
    ``message_stop`` (a truncated answer must not look complete).
    """

    def __init__(self, model: str | None = None) -> None:
        self.model = model
        self.provider_model: str | None = None
        self.message_id: str | None = None
        self.tokens_in: int | None = None
        self.tokens_out: int | None = None
        self.stop_reason: str | None = None
        self.stop_sequence: str | None = None
        self.started = False
        self.stopped = False
        self.chars = 0
        self._thinking: list[str] = []

    def take_thinking(self) -> str:
        """Thinking text that arrived since the last call (extended thinking's ``thinking_delta``)."""
        text, self._thinking = "".join(self._thinking), []
        return text

    def handle(self, kind: str | None, data: Any) -> str | None:
        if not isinstance(data, dict):
            raise ProviderError(
                f"Anthropic sent a malformed stream event ({kind or 'unnamed'}).",
                retryable=True,
                kind="malformed",
            )
        kind = data.get("type") or kind
        if kind == "content_block_delta":
            delta = data.get("delta") or {}
            if delta.get("type") == "text_delta":
                text = delta.get("text") or ""
                self.chars += len(text)
                return text or None
            if delta.get("type") == "thinking_delta" and isinstance(delta.get("thinking"), str):
                self._thinking.append(delta["thinking"])
            return None  # thinking (kept apart), signature_delta, input_json_delta, citations_delta
        if kind == "content_block_start":
            block = data.get("content_block") or {}
            if block.get("type") == "text" and block.get("text"):
                self.chars += len(block["text"])
                return block["text"]
            if block.get("type") == "thinking" and block.get("thinking"):
                self._thinking.append(str(block["thinking"]))
            return None
        if kind == "message_start":
            self.started = True
            message = data.get("message") or {}
            self.provider_model = message.get("model") or self.provider_model
            self.message_id = message.get("id")
            self._usage(message.get("usage") or {})
            return None
        if kind == "message_delta":
            delta = data.get("delta") or {}
            self.stop_reason = delta.get("stop_reason") or self.stop_reason
            self.stop_sequence = delta.get("stop_sequence") or self.stop_sequence
            self._usage(data.get("usage") or {})
            return None
        if kind == "message_stop":
            self.stopped = True
            return None
        if kind == "error":
            raise stream_error(data, model=self.model)
        return None  # ping, content_block_stop, and event types added later

    def withheld(self) -> ProviderError | None:
        """The error for an answer Claude's safety classifiers stopped (``stop_reason: refusal``)."""
        if self.stop_reason != "refusal":
            return None
        return refusal_error(self.model, self.chars)

    def _usage(self, usage: dict[str, Any]) -> None:
        tokens_in = _input_tokens(usage)
        if tokens_in is not None:
            self.tokens_in = tokens_in
        if isinstance(usage.get("output_tokens"), int):  # cumulative: the last one wins
            self.tokens_out = usage["output_tokens"]

    def end(self) -> StreamEnd:
        if not self.stopped:
            got = f" after {self.chars} characters" if self.chars else ""
            raise ProviderError(
                f"The Anthropic stream ended before message_stop{got}: the answer is incomplete.",
                retryable=True,
                kind="truncated",
            )
        return StreamEnd(
            model=self.model,
            tokens_in=self.tokens_in,
            tokens_out=self.tokens_out,
            finish_reason=self.stop_reason,
            metadata=_metadata(self.provider_model, self.message_id, self.stop_sequence),
        )


def _metadata(
    provider_model: str | None, message_id: str | None, stop_sequence: str | None
) -> dict[str, Any]:
    meta: dict[str, Any] = {"provider": PROVIDER}
    if provider_model:
        meta["provider_model"] = provider_model
    if message_id:
        meta["message_id"] = message_id
    if stop_sequence:
        meta["stop_sequence"] = stop_sequence
    return meta


def parse_message(body: Any, *, model: str | None = None) -> tuple[str, StreamEnd]:
    """A non-streamed Message body -> (text, usage and stop reason)."""
    if not isinstance(body, dict):
        raise ProviderError(
            "Anthropic returned a response that is not a JSON object.", retryable=True, kind="malformed"
        )
    if body.get("type") == "error":
        raise stream_error(body, model=model)
    blocks = body.get("content")
    if not isinstance(blocks, list):
        raise ProviderError("Anthropic returned a message without content.", retryable=True, kind="malformed")
    text = "".join(b.get("text") or "" for b in blocks if isinstance(b, dict) and b.get("type") == "text")
    thinking = "".join(
        str(b.get("thinking") or "") for b in blocks if isinstance(b, dict) and b.get("type") == "thinking"
    )
    usage = body.get("usage") or {}
    end = StreamEnd(
        reasoning=thinking or None,
        model=model,
        tokens_in=_input_tokens(usage),
        tokens_out=usage.get("output_tokens") if isinstance(usage.get("output_tokens"), int) else None,
        finish_reason=body.get("stop_reason"),
        metadata=_metadata(body.get("model"), body.get("id"), body.get("stop_sequence")),
    )
    return text, end


# --------------------------------------------------------------------------- backend


def resolve_model(name: str | None, default: str | None, provider: str = PROVIDER) -> tuple[str, str]:
    """(name shown to people, id sent to the provider) for ``name`` or the default.

    Catalogue names and aliases map to the model's ``provider_name``;
    ``anthropic/...`` loses its prefix; anything else is sent as given.
    """
    return catalogue_ids(name or default or DEFAULT_MODEL, provider, (f"{provider}/",))


class AnthropicBackend(KeyedBackend):
    """Anthropic's Claude models through the Messages API (``POST /v1/messages``)."""

    backend_name = "anthropic"
    provider = PROVIDER
    provider_label = "Anthropic"
    key_setting = KEY_SETTING
    key_envs = (KEY_ENV,)
    base_url_setting = "anthropic_base_url"
    default_base_url = "https://api.anthropic.com"

    @property
    def default_model(self) -> str:
        return configured_default(self.backend_config, PROVIDER, catalogue_default(PROVIDER, DEFAULT_MODEL))

    def _headers(self) -> dict[str, str]:
        return build_headers(self._require_key())

    def effective_model(self, model: str | None) -> str | None:
        return resolve_model(model, self.default_model)[0]

    async def model_ids(self, model: str | None) -> tuple[str, str]:
        return resolve_model(model, self.default_model)

    # -- the wire format

    def exchange(self, call: Resolved, provider_id: str, *, stream: bool) -> Exchange:
        budget = THINKING_BUDGETS.get(call.effort or "")
        answer_tokens = call.max_tokens or DEFAULT_MAX_TOKENS
        payload = build_payload(
            call.user_content(),
            model=provider_id,
            system=call.system,
            # Extended thinking takes no custom temperature, and max_tokens covers thinking too.
            temperature=None if budget else call.temperature,
            max_tokens=answer_tokens + budget if budget else answer_tokens,
            history=call.history,
            stream=stream,
            stop=call.params.get("stop"),
            top_p=call.params.get("top_p"),
        )
        if budget:
            payload["thinking"] = {"type": "enabled", "budget_tokens": budget}
        payload.update(call.options)
        return Exchange("POST", f"{self.base_url}/v1/messages", payload, self._headers())

    def decoder(self, name: str) -> MessageStream:
        return MessageStream(model=name)

    def feed(self, decoder: MessageStream, event: Any) -> str | None:
        data = loads_or_none(event.data)
        if data is None:
            if not (event.data or "").strip():
                return None
            raise ProviderError(
                f"Anthropic sent a malformed stream event ({event.event or 'unnamed'}).",
                retryable=True,
                kind="malformed",
            )
        return decoder.handle(event.event, data)

    def parse(self, body: Any, name: str) -> tuple[str, StreamEnd, ProviderError | None]:
        text, end = parse_message(body, model=name)
        withheld = refusal_error(name, len(text)) if end.finish_reason == "refusal" else None
        return text, end, withheld

    # -- discovery

    async def _fetch_models(self) -> list[str]:
        """Model ids from ``GET /v1/models``, all pages."""
        from . import http

        found: list[str] = []
        after: str | None = None
        for _ in range(20):  # pages; a bound so a misbehaving server cannot loop us
            params = {"limit": 1000, **({"after_id": after} if after else {})}
            body = (
                await http.request_json(
                    "GET",
                    f"{self.base_url}/v1/models",
                    headers=self._headers(),
                    params=params,
                    timeout=http.timeout_for(self.backend_config),
                    **self._context(None),
                )
                or {}
            )
            found.extend(str(m["id"]) for m in body.get("data") or [] if isinstance(m, dict) and m.get("id"))
            after = body.get("last_id")
            if not body.get("has_more") or not after:
                break
        return found


# --------------------------------------------------------------------------- helpers
# Shared with google.py: small, protocol-neutral.


def loads_or_none(raw: Any) -> Any:
    """JSON text -> value, or ``None`` when it is not JSON."""
    import json

    if raw is None:
        return None
    try:
        return json.loads(raw)
    except (TypeError, ValueError):
        return None
