"""OpenAI Chat Completions (``POST {base}/chat/completions``), and every server that speaks it.

The ``openai`` backend also speaks OpenAI's Responses API (``POST
{base}/responses``, in ``responses.py``) for the models only it serves, chosen
per model (the catalogue's ``responses`` capability, or
``backends.<name>.api: responses|chat``).

Three backends share one protocol implementation:

- ``OpenAIBackend`` ("openai"): api.openai.com (or ``openai_base_url``) with
  ``OPENAI_API_KEY``.
- ``OpenAICompatibleBackend``: configured purely in YAML (``backends: {name:
  {type: openai-compatible, base_url, api_key_env, models, default_model}}``)
  for vLLM, LM Studio, llama.cpp, Groq, Together...; no key means no
  ``Authorization`` header.
- ``OpenRouterBackend`` ("openrouter"): the same preset at OpenRouter, whose
  model names (``openrouter/meta-llama/...``) lose their ``openrouter/`` prefix.

The pure parts (``build_payload``, ``ChunkStream``, ``parse_completion``) hold
the protocol's quirks and are tested without a network: the usage chunk may
carry ``choices: []``, ``null``, ``[{"delta": {}}]`` or no ``choices`` at all;
errors may arrive mid-stream as ``data: {"error": ...}`` or ``event: error``;
reasoning models (o1, o3, o4, gpt-5) take ``max_completion_tokens`` and only
their default temperature.

Servers as they are in the field: a server that refuses ``stream_options``
(400 naming it) is asked once more without it, and that is remembered for the
backend (``backends.<name>.stream_usage: false`` says so up front); a
streamed answer that arrives as an empty 200 (llama.cpp when the prompt
overflows its context) is not retried and says so, comparing the prompt's
estimated size with the model's context length (the catalogue's, or
``backends.<name>.context_length``); a configured server on this machine is
probed (``GET {base}/models``, cached for a few seconds) before it is counted
available.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from typing import Any

from ..errors import BackendUnavailable, ProviderError
from ..models import Message, StreamEnd
from ..request import Resolved
from ..secrets import reveal
from . import responses
from .keyed import KeyedBackend
from .template import Exchange, catalogue_ids, configured_default, model_info

__all__ = [
    "ChunkStream",
    "OpenAIBackend",
    "OpenAICompatibleBackend",
    "OpenRouterBackend",
    "build_payload",
    "empty_stream_error",
    "is_reasoning_model",
    "parse_completion",
]

REASONING_PREFIXES = ("o1", "o3", "o4", "gpt-5", "gpt-6")


def is_reasoning_model(model: str) -> bool:
    """OpenAI reasoning models: ``max_completion_tokens``, no custom temperature."""
    low = model.lower().rsplit("/", 1)[-1]
    return low.startswith(REASONING_PREFIXES) and not low.startswith("gpt-5-chat")


def chat_message(message: Message) -> dict[str, Any]:
    """One turn in Chat Completions' shape: text and image parts become ``text`` / ``image_url`` parts.

    A plain string stays a string; only a user turn may carry images (other
    roles keep the text of their parts).
    """
    content = message.get("content")
    if not isinstance(content, list):
        return dict(message)
    parts: list[Any] = []
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            parts.append({"type": "text", "text": part.get("text", "")})
        elif kind == "image":
            parts.append({"type": "image_url", "image_url": {"url": responses.data_url(part)}})
        else:  # already in the wire's shape
            parts.append(part)
    if message.get("role") != "user":
        texts = [p.get("text", "") for p in parts if isinstance(p, dict) and p.get("type") == "text"]
        return {**message, "content": "".join(texts)}
    return {**message, "content": parts}


def build_payload(
    messages: list[Message],
    *,
    model: str,
    temperature: float | None = None,
    max_tokens: int | None = None,
    stream: bool = True,
    reasoning: bool | None = None,
    extra: dict[str, Any] | None = None,
    stream_usage: bool = True,
) -> dict[str, Any]:
    """The JSON body of ``POST /chat/completions`` (``stream_usage``: ask for the usage chunk)."""
    reasoning = is_reasoning_model(model) if reasoning is None else reasoning
    payload: dict[str, Any] = {"model": model, "messages": [chat_message(m) for m in messages]}
    if temperature is not None and not (reasoning and float(temperature) != 1.0):
        payload["temperature"] = float(temperature)
    if max_tokens:
        payload["max_completion_tokens" if reasoning else "max_tokens"] = int(max_tokens)
    if stream:
        payload["stream"] = True
        if stream_usage:
            payload["stream_options"] = {"include_usage": True}
    for key, value in (extra or {}).items():
        if value is not None:
            payload[key] = value
    return payload


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _error_text(data: Any) -> tuple[str, str, str]:
    err = data.get("error", data) if isinstance(data, dict) else data
    if isinstance(err, dict):
        return (
            str(err.get("message") or "no message"),
            str(err.get("type") or ""),
            str(err.get("code") or ""),
        )
    return (str(err) if err else "no message"), "", ""


def _reasoning_of(message: Any) -> str:
    """The reasoning a delta or message carries beside its content ('' when none)."""
    if not isinstance(message, dict):
        return ""
    for key in ("reasoning_content", "reasoning"):
        value = message.get(key)
        if isinstance(value, str) and value:
            return value
    return ""


def stream_error(data: Any, provider: str, *, secret: str | None = None) -> ProviderError:
    """A ``ProviderError`` for an error the server reported inside a stream (after HTTP 200)."""
    from .http import redact

    message, etype, code = _error_text(data)
    low = f"{etype} {code} {message}".lower()
    retryable = any(w in low for w in ("server_error", "overloaded", "rate_limit", "timeout", "unavailable"))
    return ProviderError(
        f"{provider} reported an error mid-stream: {redact(message, secret)[:240]}",
        hint="The answer so far is kept; try again." if retryable else None,
        retryable=retryable,
        kind="stream_error",
    )


def empty_stream_error(provider: str, *, streamed: bool = True) -> ProviderError:
    """An HTTP 200 that carried nothing at all: no text, no error, no end (not worth retrying as is).

    ``OpenAIBackend.send`` adds what it knows of the prompt's size against the
    model's context, the usual cause (llama.cpp answers a streamed prompt that
    overflows its context like this).
    """
    what = "sent nothing: no text, no error, no end of stream" if streamed else "sent an empty body"
    return ProviderError(
        f"{provider} answered HTTP 200 but {what}.",
        hint=(
            "The server failed before answering: check its log, or ask without streaming to see its own "
            "error. A prompt longer than the model's context does this on llama.cpp."
        ),
        retryable=False,
        kind="empty",
    )


class ChunkStream:
    """Interprets the decoded ``chat.completion.chunk`` events of one streamed answer."""

    def __init__(self, provider: str = "OpenAI", *, model: str | None = None, secret: str | None = None):
        self.provider = provider
        self.model = model
        self.secret = secret
        self.provider_model: str | None = None
        self.completion_id: str | None = None
        self.tokens_in: int | None = None
        self.tokens_out: int | None = None
        self.finish_reason: str | None = None
        self.done = False
        self.events = 0
        self.chars = 0
        self.extra: dict[str, Any] = {}
        self._thinking: list[str] = []

    def take_thinking(self) -> str:
        """Reasoning that arrived since the last call, in ``delta.reasoning_content`` (llama.cpp,
        vLLM, DeepSeek) or ``delta.reasoning`` (OpenRouter): the template streams it apart."""
        text, self._thinking = "".join(self._thinking), []
        return text

    def handle(self, event: str | None, raw: str) -> str:
        """Text carried by one SSE event ('' when none); raises ``ProviderError`` for errors."""
        self.events += 1
        if raw.strip() == "[DONE]":
            self.done = True
            return ""
        if not raw.strip():
            return ""
        try:
            data = json.loads(raw)
        except ValueError:
            raise ProviderError(
                f"{self.provider} sent a malformed stream event (not JSON): {raw[:60]!r}",
                hint="The answer so far is kept; try again.",
                retryable=True,
                kind="malformed",
            ) from None
        if event == "error" or (isinstance(data, dict) and data.get("error")):
            raise stream_error(data, self.provider, secret=self.secret)
        if not isinstance(data, dict):
            return ""
        self.provider_model = data.get("model") or self.provider_model
        self.completion_id = data.get("id") or self.completion_id
        usage = data.get("usage")
        if isinstance(usage, dict):
            self._usage(usage)
        text = []
        for choice in data.get("choices") or ():
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            content = delta.get("content") if isinstance(delta, dict) else None
            if isinstance(content, str) and content:
                text.append(content)
            thought = _reasoning_of(delta)
            if thought:
                self._thinking.append(thought)
            refusal = delta.get("refusal") if isinstance(delta, dict) else None
            if isinstance(refusal, str) and refusal:  # shown as the answer, then reported as a refusal
                text.append(refusal)
                self.extra["refusal"] = True
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
        joined = "".join(text)
        self.chars += len(joined)
        return joined

    def _usage(self, usage: dict[str, Any]) -> None:
        if _int(usage.get("prompt_tokens")) is not None:
            self.tokens_in = usage["prompt_tokens"]
        if _int(usage.get("completion_tokens")) is not None:
            self.tokens_out = usage["completion_tokens"]
        details = usage.get("completion_tokens_details") or {}
        if isinstance(details, dict) and _int(details.get("reasoning_tokens")):
            self.extra["reasoning_tokens"] = details["reasoning_tokens"]
        cached = usage.get("prompt_tokens_details") or {}
        if isinstance(cached, dict) and _int(cached.get("cached_tokens")):
            self.extra["cached_tokens"] = cached["cached_tokens"]

    def withheld(self) -> ProviderError | None:
        """The error for an answer the model refused (its refusal text is kept as the answer)."""
        return refusal_error(self.model, 0) if self.extra.get("refusal") else None

    def end(self) -> StreamEnd:
        """The usage and finish reason; raises when the stream stopped before its end."""
        if not self.done and self.finish_reason is None:
            if not self.events:
                raise empty_stream_error(self.provider)
            got = f" after {self.chars} characters" if self.chars else ""
            raise ProviderError(
                f"The {self.provider} stream ended before [DONE]{got}: the answer is incomplete.",
                hint="Try again.",
                retryable=True,
                kind="truncated",
            )
        return StreamEnd(
            model=self.model,
            tokens_in=self.tokens_in,
            tokens_out=self.tokens_out,
            finish_reason=self.finish_reason,
            metadata=self.metadata(),
        )

    def metadata(self) -> dict[str, Any]:
        meta: dict[str, Any] = {"provider": self.provider.lower(), **self.extra}
        if self.provider_model:
            meta["provider_model"] = self.provider_model
        if self.completion_id:
            meta["completion_id"] = self.completion_id
        return meta


def refusal_error(model: str | None, chars: int) -> ProviderError:
    """A refusal is a failed answer, streamed or not: its text is kept, ``error`` says why."""
    return ProviderError(
        f"{model or 'The model'} refused to answer (its refusal is kept as the text).",
        hint="Rephrase the prompt, or try another model or backend.",
        retryable=False,
        kind="refusal",
    )


def parse_completion(
    body: Any, provider: str = "OpenAI", *, model: str | None = None, secret: str | None = None
) -> tuple[str, StreamEnd]:
    """A non-streamed ``chat.completion`` body -> (text, usage and finish reason)."""
    if body is None:
        raise empty_stream_error(provider, streamed=False)
    if not isinstance(body, dict):
        raise ProviderError(
            f"{provider} returned a response that is not a JSON object.", retryable=True, kind="malformed"
        )
    if body.get("error"):
        raise stream_error(body, provider, secret=secret)
    state = ChunkStream(provider, model=model, secret=secret)
    state.provider_model = body.get("model")
    state.completion_id = body.get("id")
    if isinstance(body.get("usage"), dict):
        state._usage(body["usage"])
    choices = body.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise ProviderError(
            f"{provider} returned a completion without choices.", retryable=True, kind="malformed"
        )
    message = choices[0].get("message") or {}
    text = message.get("content") if isinstance(message, dict) else None
    state.finish_reason = choices[0].get("finish_reason")
    if not text and isinstance(message, dict) and message.get("refusal"):
        text = str(message["refusal"])
        state.extra["refusal"] = True
    return (text if isinstance(text, str) else ""), StreamEnd(
        model=model,
        tokens_in=state.tokens_in,
        tokens_out=state.tokens_out,
        finish_reason=state.finish_reason,
        metadata=state.metadata(),
        reasoning=_reasoning_of(message) or None,
    )


# --------------------------------------------------------------------------- backends

#: ``backends.<name>.api`` values, and what each means.
API_NAMES = {
    "responses": "responses",
    "chat": "chat",
    "chat_completions": "chat",
    "chat-completions": "chat",
    "completions": "chat",
}

#: Share of the context above which a prompt is "near" it (the answer needs room too).
NEAR_CONTEXT = 0.8


def _flag(value: Any) -> bool | None:
    """A yes/no setting from YAML or an environment variable; None when unset or unreadable."""
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return bool(value)
    if isinstance(value, str):
        low = value.strip().lower()
        if low in ("true", "yes", "on", "1"):
            return True
        if low in ("false", "no", "off", "0"):
            return False
    return None


def _whole(value: Any) -> int | None:
    try:
        number = int(value)
    except (TypeError, ValueError):
        return None
    return number if number > 0 else None


def rejects_stream_options(error: ProviderError) -> bool:
    """Whether an HTTP error says the server does not take ``stream_options`` (or its ``include_usage``)."""
    text = str(error).lower()
    return error.status in (400, 422) and ("stream_options" in text or "include_usage" in text)


class OpenAIBackend(KeyedBackend):
    """OpenAI's models through Chat Completions (``POST /chat/completions``) or the Responses API."""

    backend_name = "openai"
    #: Display name in messages, and the catalogue's provider for model lookups.
    provider_label = "OpenAI"
    provider = "openai"
    base_url_setting = "openai_base_url"
    default_base_url = "https://api.openai.com/v1"
    key_setting: str | None = "openai_api_key"
    key_envs: tuple[str, ...] = ("OPENAI_API_KEY",)
    fallback_model = "gpt-4o-mini"
    #: Model-name prefixes stripped before sending (``openai/gpt-4o`` -> ``gpt-4o``).
    prefixes: tuple[str, ...] = ("openai/",)
    features = frozenset({"schema"})

    def __init__(self, config: dict[str, Any] | None = None) -> None:
        super().__init__(config)
        #: Set once the server refused ``stream_options``: later streams go without it.
        self.stream_usage_refused = False

    # -- identity and configuration

    def _headers(self) -> dict[str, str]:
        headers = {"content-type": "application/json", "accept": "application/json"}
        key = self._key()
        if key:
            headers["authorization"] = f"Bearer {key}"
        elif self.key_setting:
            self._require_key()  # raises, saying how to set one
        extra = self.backend_config.get("headers")
        if isinstance(extra, dict):
            headers.update({str(k): str(v) for k, v in extra.items()})
        return headers

    @property
    def default_model(self) -> str:
        """``default_model`` from configuration when it belongs here, else the catalogue's first."""
        from ..registry import model_registry

        configured = configured_default(self.backend_config, self.provider, "")
        if configured:
            return configured
        if self.fallback_model and model_info(self.fallback_model) is not None:
            return self.fallback_model
        listed = model_registry.list_models(self.provider)
        return listed[0].name if listed else self.fallback_model

    def resolve(self, model: str | None) -> tuple[str, str]:
        """(name shown to people and priced, id sent to the server) for ``model`` or the default."""
        chosen = model or self.default_model
        if not chosen:
            raise BackendUnavailable(
                f"Backend {self.name!r} has no model to use.",
                hint=f"Pass model=..., or set backends.{self.name}.default_model.",
            )
        info = model_info(chosen)
        if info is not None and info.provider.lower() in (self.provider, self.name):
            return info.name, info.provider_name or info.name
        return catalogue_ids(chosen, self.provider, self.prefixes)

    def effective_model(self, model: str | None) -> str | None:
        try:
            return self.resolve(model)[0]
        except BackendUnavailable:
            return model

    async def model_ids(self, model: str | None) -> tuple[str, str]:
        return self.resolve(model)

    def _reasoning(self, provider_id: str) -> bool:
        """Name rules, or the catalogue marking an OpenAI model as a reasoning one."""
        if is_reasoning_model(provider_id):
            return True
        info = model_info(provider_id) if self.provider == "openai" else None
        return bool(info is not None and info.provider == "openai" and "reasoning" in info.capabilities)

    def api_for(self, model: str | None) -> str:
        """ "responses" or "chat": ``backends.<name>.api`` when set, else the model's (OpenAI's only)."""
        setting = API_NAMES.get(str(self.backend_config.get("api") or "auto").strip().lower())
        if setting:
            return setting
        if self.provider != "openai":  # compatible servers and OpenRouter: Chat Completions
            return "chat"
        return "responses" if responses.is_responses_model(model) else "chat"

    def stream_usage(self, call: Resolved | None = None) -> bool:
        """Whether a stream asks for its usage (``stream_options``): not once the server refused it."""
        if self.stream_usage_refused:
            return False
        config = call.config if call is not None and call.config else self.backend_config
        return _flag(config.get("stream_usage")) is not False

    def context_length(self, name: str | None) -> int | None:
        """``backends.<name>.context_length``, else the catalogue's context window of ``name``."""
        configured = _whole(self.backend_config.get("context_length"))
        if configured:
            return configured
        info = model_info(name)
        return _whole(getattr(info, "context_length", None)) if info is not None else None

    @property
    def chat_url(self) -> str:
        return f"{self.base_url}/chat/completions"

    @property
    def responses_url(self) -> str:
        return f"{self.base_url}/responses"

    # -- the wire format

    def exchange(self, call: Resolved, provider_id: str, *, stream: bool) -> Exchange:
        if self.api_for(provider_id) == "responses":
            return self._responses_exchange(call, provider_id, stream=stream)
        extra: dict[str, Any] = dict(call.params)
        if getattr(call, "effort", None):  # reasoning models: how hard to think
            extra["reasoning_effort"] = call.effort
        if call.schema is not None and "schema" in self.features:
            extra["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "answer", "schema": call.schema, "strict": False},
            }
        extra.update(call.options)
        payload = build_payload(
            call.messages(),
            model=provider_id,
            temperature=call.temperature,
            max_tokens=call.max_tokens,
            stream=stream,
            extra=extra,
            reasoning=self._reasoning(provider_id),
            stream_usage=self.stream_usage(call),
        )
        return Exchange("POST", self.chat_url, payload, self._headers())

    def _responses_exchange(self, call: Resolved, provider_id: str, *, stream: bool) -> Exchange:
        unsupported = [name for name in responses.UNSUPPORTED_PARAMS if call.params.get(name) is not None]
        if unsupported:
            names = ", ".join(f"{n}=" for n in unsupported)
            raise ProviderError(
                f"{provider_id} is asked through OpenAI's Responses API, which takes no {names}",
                hint=f"Leave out {names}, or use a model served by Chat Completions.",
                retryable=False,
                kind="bad_request",
            )
        extra = {k: v for k, v in call.params.items() if k not in responses.UNSUPPORTED_PARAMS}
        extra.update(call.options)
        payload = responses.build_request(
            call.messages(),
            model=provider_id,
            temperature=call.temperature,
            max_tokens=call.max_tokens,
            stream=stream,
            reasoning=self._reasoning(provider_id),
            schema=call.schema if "schema" in self.features else None,
            effort=getattr(call, "effort", None),
            extra=extra,
        )
        return Exchange("POST", self.responses_url, payload, self._headers())

    def decoder(self, name: str) -> ChunkStream | responses.EventStream:
        if self.api_for(name) == "responses":
            return responses.EventStream(self.provider_label, model=name, secret=self._key())
        return ChunkStream(self.provider_label, model=name, secret=self._key())

    def feed(self, decoder: Any, event: Any) -> str | None:
        if decoder.done:  # read on to the body's end so the connection can be reused
            return None
        return decoder.handle(event.event, event.data)

    def parse(self, body: Any, name: str) -> tuple[str, StreamEnd, ProviderError | None]:
        if self.api_for(name) == "responses":
            text, end = responses.parse_response(body, self.provider_label, model=name, secret=self._key())
        else:
            text, end = parse_completion(body, self.provider_label, model=name, secret=self._key())
        withheld = refusal_error(name, 0) if end.metadata.get("refusal") else None
        return text, end, withheld

    async def send(self, call: Resolved) -> AsyncIterator[str | StreamEnd]:
        """The template's ``send``, plus what servers in the field need (see the module docstring)."""
        for again in (False, True):
            sent_text = False
            asked_usage = call.stream and self.stream_usage(call)
            try:
                async for item in super().send(call):
                    if isinstance(item, str) and item:
                        sent_text = True
                    yield item
                return
            except ProviderError as exc:
                if exc.kind == "empty":
                    raise self._explain_empty(exc, call) from None
                if again or not (asked_usage and not sent_text and rejects_stream_options(exc)):
                    raise
                self.stream_usage_refused = True  # this server does not take it: ask again, never again

    def _explain_empty(self, error: ProviderError, call: Resolved) -> ProviderError:
        """``error`` (an empty 200) with the prompt's estimated size against the model's context."""
        from .. import tokens

        try:
            name = self.resolve(call.model)[0]
        except BackendUnavailable:
            name = call.model
        limit = self.context_length(name)
        if not limit:
            return ProviderError(
                error.message,
                hint=(error.hint or "")
                + f" Set backends.{self.name}.context_length to have the prompt's size checked.",
                retryable=False,
                kind="empty",
            )
        estimate = tokens.count_messages(call.messages())
        room = estimate + (call.max_tokens or 0)
        if estimate >= limit:
            size = f"over the context of {name} ({limit:,} tokens)"
        elif room >= limit or estimate >= NEAR_CONTEXT * limit:
            size = f"near the context of {name} ({limit:,} tokens)"
        else:
            return ProviderError(
                error.message + f" The prompt (about {estimate:,} tokens) fits the context of {name}.",
                hint="The server failed before answering: check its log, or ask without streaming to see its "
                "own error.",
                retryable=False,
                kind="empty",
            )
        return ProviderError(
            error.message + f" The prompt is about {estimate:,} tokens (estimated), {size}: a server such as "
            "llama.cpp ends the answer like this when the prompt does not fit.",
            hint="Shorten the prompt or the history (chat.reset()), ask for fewer max_tokens, or give the "
            "server a longer context (llama.cpp: --ctx-size / n_ctx).",
            retryable=False,
            kind="context_length",
        )

    # -- discovery

    async def _fetch_models(self) -> list[str]:
        """Model ids from ``GET {base}/models`` (else the configured ``models:`` list)."""
        from . import http

        body = (
            await http.request_json(
                "GET",
                f"{self.base_url}/models",
                headers=self._headers(),
                timeout=http.timeout_for(self.backend_config),
                **self._context(None),
            )
            or {}
        )
        data = body.get("data") if isinstance(body, dict) else None
        found = [str(m["id"]) for m in data or [] if isinstance(m, dict) and m.get("id")]
        if not found:
            found = self.configured_models()
        return found


class OpenRouterBackend(OpenAIBackend):
    """OpenRouter's catalogue of models through its OpenAI-compatible API."""

    backend_name = "openrouter"
    provider_label = "OpenRouter"
    provider = "openrouter"
    base_url_setting = "openrouter_base_url"
    default_base_url = "https://openrouter.ai/api/v1"
    key_setting = "openrouter_api_key"
    key_envs = ("OPENROUTER_API_KEY",)
    fallback_model = "openai/gpt-4o-mini"
    prefixes = ("openrouter/",)
    #: OpenRouter passes ``response_format`` on only for some models: the schema goes in the prompt.
    features = frozenset()

    def _headers(self) -> dict[str, str]:
        headers = super()._headers()
        headers.setdefault("x-title", "ttt-magic")
        return headers


class OpenAICompatibleBackend(OpenAIBackend):
    """Any server speaking OpenAI Chat Completions, configured in YAML only.

    ``backends: {NAME: {type: openai-compatible, base_url: ..., api_key_env:
    MY_KEY, models: [...], default_model: ...}}``. Without ``api_key_env`` (or
    with it unset) requests carry no ``Authorization`` header, which local
    servers such as vLLM or llama.cpp accept.

    A server on this machine (``localhost``, ``127.0.0.1``) is probed with
    ``GET {base_url}/models`` before it counts as available (cached for
    ``probe_ttl`` seconds, default 5; bounded by ``probe_timeout``, default
    0.5), so ``status`` and routing see a server that is not running;
    ``probe: true`` probes a remote one too, ``probe: false`` never.
    """

    backend_name = "openai-compatible"
    provider_label = "OpenAI-compatible server"
    key_setting = None
    key_envs = ()
    fallback_model = ""
    #: Many such servers lack ``response_format``; ``structured_output: true`` turns it on.
    features = frozenset()
    #: Seconds of the availability probe, and how long its answer is reused.
    probe_timeout = 0.5
    probe_ttl = 5.0

    def __init__(self, config: dict[str, Any] | None = None) -> None:
        super().__init__(config)
        cfg = self.backend_config
        self._name = str(cfg.get("name") or cfg.get("_backend_name") or type(self).backend_name)
        self.provider = self._name
        self.provider_label = self._name
        self.prefixes = (f"{self._name}/",)
        env = cfg.get("api_key_env")
        self.key_envs = (str(env),) if env else ()
        if cfg.get("structured_output"):
            self.features = frozenset({"schema"})

    @property
    def name(self) -> str:
        return getattr(self, "_name", type(self).backend_name)

    def _key(self) -> str | None:
        env = self.backend_config.get("api_key_env")
        if env:
            return os.environ.get(str(env)) or None
        return reveal(self.backend_config.get("api_key"))

    # -- availability

    def _missing_key(self) -> bool:
        env = self.backend_config.get("api_key_env")
        return bool(env and not os.environ.get(str(env)))

    def probing(self) -> bool:
        """Whether availability asks the server (``probe``; by default only for this machine)."""
        from .probe import is_local

        setting = _flag(self.backend_config.get("probe"))
        return setting if setting is not None else is_local(self.base_url)

    def _probe(self) -> dict[str, Any]:
        """What a cached ``GET {base_url}/models`` says: ``ok``, ``reachable``, ``key_refused``, why."""
        from .http import server_label
        from .probe import cached_status

        cfg = self.backend_config
        try:
            timeout = float(cfg.get("probe_timeout") or self.probe_timeout)
            ttl = float(cfg.get("probe_ttl") or self.probe_ttl)
        except (TypeError, ValueError):
            timeout, ttl = self.probe_timeout, self.probe_ttl
        try:
            headers = {k: v for k, v in self._headers().items() if k in ("authorization",)}
            extra = cfg.get("headers")
            if isinstance(extra, dict):
                headers.update({str(k): str(v) for k, v in extra.items()})
        except BackendUnavailable:
            headers = {}
        status = cached_status(f"{self.base_url}/models", timeout=timeout, ttl=ttl, headers=headers)
        where = server_label(self.base_url)
        if status is None:
            return {
                "ok": False,
                "reachable": False,
                "reason": f"Nothing answers at {where} (backend {self.name!r}): start the server, "
                f"or check backends.{self.name}.base_url.",
            }
        if status in (401, 403):
            env = self.backend_config.get("api_key_env")
            whose = f"the API key from {env}" if env and self._key() else "requests without an API key"
            fix = (
                f"set a valid key in {env}"
                if env
                else f"set backends.{self.name}.api_key_env to the variable holding its key"
            )
            return {
                "ok": False,
                "reachable": True,
                "key_refused": True,
                "http_status": status,
                "reason": f"The server at {where} refuses {whose} (HTTP {status}): {fix}.",
            }
        if status >= 500:
            return {
                "ok": False,
                "reachable": True,
                "http_status": status,
                "reason": f"The server at {where} answers HTTP {status}: it may still be starting "
                "(loading a model); try again shortly.",
            }
        return {"ok": True, "reachable": True, "http_status": status}

    @property
    def is_available(self) -> bool:
        if self._missing_key() or not self.base_url:
            return False
        return self._probe()["ok"] if self.probing() else True

    @property
    def unavailable_reason(self) -> str | None:
        if self._missing_key():
            env = self.backend_config.get("api_key_env")
            return f"Set {env} (the API key of backend {self.name!r}, at {self.base_url})."
        if not self.base_url:
            return f"Backend {self.name!r} has no base_url."
        if self.probing():
            found = self._probe()
            return None if found["ok"] else found["reason"]
        return None

    def reachability(self) -> dict[str, Any]:
        if self._missing_key() or not self.probing():
            return {}
        return {k: v for k, v in self._probe().items() if k not in ("ok", "reason")}

    # -- models

    @property
    def default_model(self) -> str:
        cfg = self.backend_config
        models = self.configured_models()
        specific = cfg.get("default_model")
        if specific and specific in models:
            return str(specific)
        if models:
            return models[0]
        info = model_info(specific) if specific else None
        # The global default_model is merged into every backend's settings: skip it when
        # the catalogue says it belongs to another provider.
        if specific and (info is None or info.provider == self.name):
            return str(specific)
        return ""

    def resolve(self, model: str | None) -> tuple[str, str]:
        chosen = model or self.default_model
        if not chosen:
            raise BackendUnavailable(
                f"Backend {self.name!r} has no model to use.",
                hint=f"Pass model=..., or set backends.{self.name}.default_model.",
            )
        prefix = f"{self.name}/"
        if chosen.startswith(prefix) and len(chosen) > len(prefix):
            return chosen, chosen[len(prefix) :]
        return catalogue_ids(chosen, self.name)
