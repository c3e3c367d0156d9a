"""Google Gemini backend (``generateContent`` / ``streamGenerateContent?alt=sse``).

As in ``anthropic.py``, the protocol lives in pure functions (``build_payload``,
``GenerateStream``, ``parse_response``) and ``GeminiBackend`` only moves bytes
with ``backends.http`` and ``backends.wire``. Gemini's stream is plain SSE
``data:`` lines, each a whole ``GenerateContentResponse``; there is no
``[DONE]``: the chunk carrying a ``finishReason`` is the last.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

from ..errors import ProviderError
from ..models import Message, StreamEnd
from ..request import Resolved
from .anthropic import loads_or_none, resolve_model
from .keyed import KeyedBackend
from .template import Exchange, alternating, catalogue_default, configured_default

__all__ = [
    "BLOCKING_REASONS",
    "GeminiBackend",
    "GenerateStream",
    "build_contents",
    "build_headers",
    "build_payload",
    "parse_response",
]

PROVIDER = "google"
KEY_SETTING = "google_api_key"
KEY_ENVS = ("GEMINI_API_KEY", "GOOGLE_API_KEY")
API_VERSION = "v1beta"
DEFAULT_MODEL = "gemini-2.5-flash"

#: Finish (or prompt block) reasons that mean Gemini withheld the answer:
#: reported as an error, with whatever text came before kept.
BLOCKING_REASONS = frozenset(
    {
        "SAFETY",
        "RECITATION",
        "BLOCKLIST",
        "PROHIBITED_CONTENT",
        "SPII",
        "IMAGE_SAFETY",
        "OTHER_BLOCK",
        "OTHER",
    }
)
#: ``effort=`` -> ``thinkingConfig.thinkingBudget`` (tokens).
THINKING_BUDGETS = {"low": 1024, "medium": 8192, "high": 24576}

#: gRPC status names of Gemini error bodies -> HTTP status, for errors sent inside a stream.
STATUS_CODES = {
    "INVALID_ARGUMENT": 400,
    "FAILED_PRECONDITION": 400,
    "UNAUTHENTICATED": 401,
    "PERMISSION_DENIED": 403,
    "NOT_FOUND": 404,
    "RESOURCE_EXHAUSTED": 429,
    "CANCELLED": 499,
    "INTERNAL": 500,
    "UNAVAILABLE": 503,
    "DEADLINE_EXCEEDED": 504,
}


# --------------------------------------------------------------------------- request


def build_contents(
    prompt: str | list[Any], history: list[Message] | None = None
) -> tuple[str | None, list[dict[str, Any]]]:
    """Conversation -> (system text found in the history, Gemini ``contents``).

    Gemini's roles are ``user`` and ``model``; system turns become the
    ``systemInstruction``; consecutive turns of one role are joined so that
    roles alternate.
    """
    system, turns = alternating(prompt, history)
    contents = [
        {"role": "model" if role == "assistant" else "user", "parts": [_part(p) for p in parts]}
        for role, parts in turns
    ]
    return system, contents


def _part(part: dict[str, Any]) -> dict[str, Any]:
    """A content part as a Gemini part (images inline, base64)."""
    if part.get("type") == "image":
        import base64

        return {
            "inline_data": {"mime_type": part["mime_type"], "data": base64.b64encode(part["data"]).decode()}
        }
    return {"text": part.get("text", "")}


def build_payload(
    prompt: str | list[Any],
    *,
    system: str | None = None,
    temperature: float | None = None,
    max_tokens: int | None = None,
    history: list[Message] | None = None,
    stop: list[str] | str | None = None,
    top_p: float | None = None,
) -> dict[str, Any]:
    """The JSON body of ``generateContent`` and ``streamGenerateContent``."""
    history_system, contents = build_contents(prompt, history)
    payload: dict[str, Any] = {"contents": contents}
    systems = [s for s in (history_system, system) if s]
    if systems:
        payload["systemInstruction"] = {"parts": [{"text": "\n\n".join(systems)}]}
    generation: dict[str, Any] = {}
    if temperature is not None:
        generation["temperature"] = float(temperature)
    if max_tokens:
        generation["maxOutputTokens"] = int(max_tokens)
    if top_p is not None:
        generation["topP"] = float(top_p)
    if stop:
        generation["stopSequences"] = [stop] if isinstance(stop, str) else list(stop)
    if generation:
        payload["generationConfig"] = generation
    return payload


def build_headers(api_key: str) -> dict[str, str]:
    """Request headers; ``api_key`` is the revealed key (never logged)."""
    return {"x-goog-api-key": api_key, "content-type": "application/json"}


def model_path(model_id: str) -> str:
    """``models/<id>`` for the URL (an id given as ``models/...`` is not doubled)."""
    model_id = model_id.removeprefix("models/")
    return "models/" + quote(model_id, safe="-._~")


# --------------------------------------------------------------------------- response


def error_from_body(error: dict[str, Any], *, model: str | None = None) -> ProviderError:
    """A Gemini ``{"error": {code, message, status}}`` sent inside an answer."""
    name = str(error.get("status") or "")
    code = error.get("code") if isinstance(error.get("code"), int) else STATUS_CODES.get(name, 500)
    message = str(error.get("message") or name or "unknown error")
    where = f" for {model}" if model else ""
    return ProviderError(
        f"Gemini error{where} ({name or code}): {message}", status=code, kind=name.lower() or "error"
    )


def blocked_error(
    reason: str, *, prompt: bool, model: str | None = None, text_so_far: int = 0
) -> ProviderError:
    """The error for an answer Gemini withheld: says so, and why."""
    what = "The prompt was blocked" if prompt else "The answer was blocked"
    kept = f" (the {text_so_far} characters received before it are kept)" if text_so_far else ""
    where = f" by {model}" if model else " by Gemini"
    return ProviderError(
        f"{what}{where}: {reason}{kept}.",
        hint="Rephrase the prompt, or try another model or backend.",
        retryable=False,
        kind="blocked",
    )


class GenerateStream:
    """Interprets the chunks of one ``streamGenerateContent`` answer, in order.

    ``handle`` returns the text a chunk adds and raises ``ProviderError`` for an
    error chunk. ``end()`` reports usage and the finish reason (raising for a
    stream that stopped before any chunk carried one); ``withheld()`` then
    gives the error for an answer or prompt Gemini blocked, or ``None``. Two
    steps, so the caller can report usage and the reason before the error.
    """

    def __init__(self, model: str | None = None) -> None:
        self.model = model
        self.provider_model: str | None = None
        self.response_id: str | None = None
        self.finish_reason: str | None = None
        self.prompt_blocked = False
        self.usage: dict[str, Any] = {}
        self.chars = 0
        self.safety: list[Any] | None = None
        self._thinking: list[str] = []

    def take_thinking(self) -> str:
        """Thought parts that arrived since the last call (``thought: true``)."""
        text, self._thinking = "".join(self._thinking), []
        return text

    def handle(self, data: Any) -> str | None:
        if not isinstance(data, dict):
            raise ProviderError("Gemini sent a malformed stream chunk.", retryable=True, kind="malformed")
        if isinstance(data.get("error"), dict):
            raise error_from_body(data["error"], model=self.model)
        self.provider_model = data.get("modelVersion") or self.provider_model
        self.response_id = data.get("responseId") or self.response_id
        if isinstance(data.get("usageMetadata"), dict):
            self.usage = data["usageMetadata"]
        feedback = data.get("promptFeedback") or {}
        if feedback.get("blockReason"):
            self.finish_reason = str(feedback["blockReason"])
            self.prompt_blocked = True
            self.safety = feedback.get("safetyRatings") or self.safety
        candidates = data.get("candidates") or []
        if not candidates or not isinstance(candidates[0], dict):
            return None
        candidate = candidates[0]
        if candidate.get("finishReason"):
            self.finish_reason = str(candidate["finishReason"])
        if candidate.get("safetyRatings"):
            self.safety = candidate["safetyRatings"]
        parts = (candidate.get("content") or {}).get("parts") or []
        text = "".join(
            p["text"]
            for p in parts
            if isinstance(p, dict) and isinstance(p.get("text"), str) and not p.get("thought")
        )
        self._thinking.extend(
            p["text"]
            for p in parts
            if isinstance(p, dict) and p.get("thought") and isinstance(p.get("text"), str)
        )
        self.chars += len(text)
        return text or None

    @property
    def tokens_in(self) -> int | None:
        value = self.usage.get("promptTokenCount")
        return value if isinstance(value, int) else None

    @property
    def tokens_out(self) -> int | None:
        """Answer tokens, thinking included (both are billed as output)."""
        parts = [self.usage.get(k) for k in ("candidatesTokenCount", "thoughtsTokenCount")]
        numbers = [p for p in parts if isinstance(p, int)]
        return sum(numbers) if numbers else None

    def end(self) -> StreamEnd:
        if self.finish_reason is None:
            got = f" after {self.chars} characters" if self.chars else ""
            raise ProviderError(
                f"The Gemini stream ended without a finish reason{got}: the answer is incomplete.",
                retryable=True,
                kind="truncated",
            )
        metadata: dict[str, Any] = {"provider": PROVIDER}
        if self.provider_model:
            metadata["provider_model"] = self.provider_model
        if self.response_id:
            metadata["response_id"] = self.response_id
        if self.withheld() is not None:
            metadata["blocked"] = "prompt" if self.prompt_blocked else "answer"
            if self.safety:
                metadata["safety_ratings"] = self.safety
        thoughts = self.usage.get("thoughtsTokenCount")
        if isinstance(thoughts, int):
            metadata["thinking_tokens"] = thoughts
        pending = "".join(self._thinking)
        return StreamEnd(
            model=self.model,
            tokens_in=self.tokens_in,
            tokens_out=self.tokens_out,
            finish_reason=self.finish_reason,
            metadata=metadata,
            reasoning=pending or None,
        )

    def withheld(self) -> ProviderError | None:
        """The error for a blocked prompt or a withheld answer; ``None`` when the answer is whole."""
        if self.prompt_blocked:
            return blocked_error(self.finish_reason or "unknown", prompt=True, model=self.model)
        if self.finish_reason in BLOCKING_REASONS:
            return blocked_error(self.finish_reason, prompt=False, model=self.model, text_so_far=self.chars)
        return None


def parse_response(body: Any, *, model: str | None = None) -> tuple[str, StreamEnd]:
    """A ``generateContent`` body -> (text, usage and finish reason); raises when withheld.

    A withheld answer raises ``ProviderError`` whose ``partial_text`` attribute
    holds any text the response did carry.
    """
    state = GenerateStream(model=model)
    text = state.handle(body) or ""
    end = state.end()
    error = state.withheld()
    if error is not None:
        error.partial_text = text  # type: ignore[attr-defined]
        error.end = end  # type: ignore[attr-defined]
        raise error
    return text, end


# --------------------------------------------------------------------------- backend


class GeminiBackend(KeyedBackend):
    """Google's Gemini models through the Gemini API (``generativelanguage.googleapis.com``)."""

    backend_name = "google"
    provider = PROVIDER
    provider_label = "Gemini"
    key_setting = KEY_SETTING
    key_envs = KEY_ENVS
    base_url_setting = "gemini_base_url"
    default_base_url = "https://generativelanguage.googleapis.com"
    features = frozenset({"schema"})

    def __init__(self, config: dict[str, Any] | None = None) -> None:
        super().__init__(config)
        self.api_version = str(self.backend_config.get("api_version") or API_VERSION).strip("/")

    @property
    def default_model(self) -> str:
        return configured_default(self.backend_config, PROVIDER, catalogue_default(PROVIDER, DEFAULT_MODEL))

    def _headers(self) -> dict[str, str]:
        return build_headers(self._require_key())

    def translate(self, error: ProviderError) -> ProviderError:
        """Gemini answers a bad key with 400 INVALID_ARGUMENT; report it as the key problem it is."""
        text = str(error)
        if error.status == 400 and ("API key not valid" in text or "API_KEY_INVALID" in text):
            env = self.key_env
            return ProviderError(
                f"Gemini rejected the API key from {env} (HTTP 400).",
                hint=f"Check {env}: set a valid Gemini key there (or pass it with configure()).",
                status=400,
                retryable=False,
                kind="auth",
            )
        return error

    @contextlib.asynccontextmanager
    async def _errors(self) -> AsyncIterator[None]:
        try:
            yield
        except ProviderError as exc:
            raise self.translate(exc) from None

    def _ids(self, model: str | None) -> tuple[str, str]:
        name, provider_id = resolve_model(model, self.default_model, PROVIDER)
        if provider_id.lower().startswith("gemini/"):
            provider_id = provider_id.split("/", 1)[1]
        return name, provider_id

    def effective_model(self, model: str | None) -> str | None:
        return self._ids(model)[0]

    async def model_ids(self, model: str | None) -> tuple[str, str]:
        return self._ids(model)

    def _url(self, provider_id: str, method: str) -> str:
        return f"{self.base_url}/{self.api_version}/{model_path(provider_id)}:{method}"

    # -- the wire format

    def exchange(self, call: Resolved, provider_id: str, *, stream: bool) -> Exchange:
        payload = build_payload(
            call.user_content(),
            system=call.system,
            temperature=call.temperature,
            max_tokens=call.max_tokens,
            history=call.history,
            stop=call.params.get("stop"),
            top_p=call.params.get("top_p"),
        )
        if call.params.get("seed") is not None:
            payload.setdefault("generationConfig", {})["seed"] = call.params["seed"]
        if call.effort is not None:
            payload.setdefault("generationConfig", {})["thinkingConfig"] = {
                "thinkingBudget": THINKING_BUDGETS[call.effort],
                "includeThoughts": True,
            }
        if call.schema is not None:
            generation = payload.setdefault("generationConfig", {})
            generation["responseMimeType"] = "application/json"
            generation["responseJsonSchema"] = call.schema
        payload.update(call.options)
        if stream:
            url, params = self._url(provider_id, "streamGenerateContent"), {"alt": "sse"}
        else:
            url, params = self._url(provider_id, "generateContent"), None
        return Exchange("POST", url, payload, self._headers(), params)

    def decoder(self, name: str) -> GenerateStream:
        return GenerateStream(model=name)

    def feed(self, decoder: GenerateStream, event: Any) -> str | None:
        if not (event.data or "").strip():
            return None
        data = loads_or_none(event.data)
        if data is None:
            raise ProviderError("Gemini sent a malformed stream chunk.", retryable=True, kind="malformed")
        return decoder.handle(data)

    def parse(self, body: Any, name: str) -> tuple[str, StreamEnd, ProviderError | None]:
        state = GenerateStream(model=name)
        text = state.handle(body) or ""
        return text, state.end(), state.withheld()

    # -- discovery

    async def _fetch_models(self) -> list[str]:
        """Model ids from ``GET /v1beta/models`` that can generate content, ``models/`` removed."""
        from . import http

        found: list[str] = []
        token: str | None = None
        for _ in range(20):  # pages; bounded
            params = {"pageSize": 1000, **({"pageToken": token} if token else {})}
            async with self._errors():
                body = (
                    await http.request_json(
                        "GET",
                        f"{self.base_url}/{self.api_version}/models",
                        headers=self._headers(),
                        params=params,
                        timeout=http.timeout_for(self.backend_config),
                        **self._context(None),
                    )
                    or {}
                )
            for entry in body.get("models") or []:
                if isinstance(entry, dict) and entry.get("name"):
                    methods = entry.get("supportedGenerationMethods")
                    if methods is None or "generateContent" in methods:
                        found.append(str(entry["name"]).removeprefix("models/"))
            token = body.get("nextPageToken")
            if not token:
                break
        return found
