"""OpenAI Chat Completions (``POST {base}/chat/completions``), and every server that speaks it.

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
"""

from __future__ import annotations

import json
import os
from typing import Any

from ..errors import BackendUnavailable, ProviderError
from ..models import Message, StreamEnd
from ..request import Resolved
from ..secrets import reveal
from .keyed import KeyedBackend
from .template import Exchange, catalogue_ids, configured_default, model_info

__all__ = [
    "ChunkStream",
    "OpenAIBackend",
    "OpenAICompatibleBackend",
    "OpenRouterBackend",
    "build_payload",
    "is_reasoning_model",
    "parse_completion",
]

REASONING_PREFIXES = ("o1", "o3", "o4", "gpt-5", "gpt-6")


def is_reasoning_model(model: str) -> bool:
    """OpenAI reasoning models: ``max_completion_tokens``, no custom temperature."""
    low = model.lower().rsplit("/", 1)[-1]
    return low.startswith(REASONING_PREFIXES) and not low.startswith("gpt-5-chat")


def build_payload(
    messages: list[Message],
    *,
    model: str,
    temperature: float | None = None,
    max_tokens: int | None = None,
    stream: bool = True,
    reasoning: bool | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The JSON body of ``POST /chat/completions``."""
    reasoning = is_reasoning_model(model) if reasoning is None else reasoning
    payload: dict[str, Any] = {"model": model, "messages": [dict(m) for m in messages]}
    if temperature is not None and not (reasoning and float(temperature) != 1.0):
        payload["temperature"] = float(temperature)
    if max_tokens:
        payload["max_completion_tokens" if reasoning else "max_tokens"] = int(max_tokens)
    if stream:
        payload["stream"] = True
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
        self.chars = 0
        self.extra: dict[str, Any] = {}

    def handle(self, event: str | None, raw: str) -> str:
        """Text carried by one SSE event ('' when none); raises ``ProviderError`` for errors."""
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
    )


# --------------------------------------------------------------------------- backends


class OpenAIBackend(KeyedBackend):
    """OpenAI's models through Chat Completions (``POST /chat/completions``)."""

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

    @property
    def chat_url(self) -> str:
        return f"{self.base_url}/chat/completions"

    # -- the wire format

    def exchange(self, call: Resolved, provider_id: str, *, stream: bool) -> Exchange:
        extra: dict[str, Any] = dict(call.params)
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
        )
        return Exchange("POST", self.chat_url, payload, self._headers())

    def decoder(self, name: str) -> ChunkStream:
        return ChunkStream(self.provider_label, model=name, secret=self._key())

    def feed(self, decoder: ChunkStream, event: Any) -> str | None:
        if decoder.done:  # read on to the body's end so the connection can be reused
            return None
        return decoder.handle(event.event, event.data)

    def parse(self, body: Any, name: str) -> tuple[str, StreamEnd, ProviderError | None]:
        text, end = parse_completion(body, self.provider_label, model=name, secret=self._key())
        withheld = refusal_error(name, 0) if end.metadata.get("refusal") else None
        return text, end, withheld

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
        found = [str(m["id"]) for m in body.get("data") or [] if isinstance(m, dict) and m.get("id")]
        configured = self.backend_config.get("models")
        if isinstance(configured, list) and configured and not found:
            found = [str(m) for m in configured]
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
    """

    backend_name = "openai-compatible"
    provider_label = "OpenAI-compatible server"
    key_setting = None
    key_envs = ()
    fallback_model = ""
    #: Many such servers lack ``response_format``; ``structured_output: true`` turns it on.
    features = frozenset()

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

    @property
    def is_available(self) -> bool:
        env = self.backend_config.get("api_key_env")
        if env and not os.environ.get(str(env)):
            return False
        return bool(self.base_url)

    @property
    def unavailable_reason(self) -> str | None:
        if self.is_available:
            return None
        env = self.backend_config.get("api_key_env")
        return f"Set {env} (the API key of backend {self.name!r}, at {self.base_url})."

    @property
    def default_model(self) -> str:
        cfg = self.backend_config
        models = cfg.get("models")
        specific = cfg.get("default_model")
        if specific and isinstance(models, list) and specific in models:
            return str(specific)
        if isinstance(models, list) and models:
            return str(models[0])
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
