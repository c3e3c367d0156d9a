"""OpenAI's Responses API (``POST {base}/responses``): the request, the streamed events, the body.

The ``openai`` backend speaks it for the models that only it serves (``o3-pro``,
``gpt-5-pro``, the codex models: the catalogue marks them with the capability
``responses``; uncatalogued names are judged by ``RESPONSES_ONLY``), or for
every model with ``backends.openai.api: responses``. OpenAI-compatible servers
keep Chat Completions unless their section says ``api: responses``.

The wire format, as OpenAI sends it:

- request: ``input`` (the conversation as ``{"role", "content"}`` items; the
  leading system prompt goes to ``instructions``), ``max_output_tokens``,
  ``temperature`` (not for reasoning models), ``stream``, and a schema as
  ``text.format = {"type": "json_schema", ...}``. ``store`` is false: nothing
  here reads a stored response back.
- stream: typed SSE events; the text is in ``response.output_text.delta``, a
  refusal in ``response.refusal.delta``; the last event is
  ``response.completed`` (usage: ``input_tokens``, ``output_tokens``,
  ``output_tokens_details.reasoning_tokens``), ``response.incomplete``
  (``incomplete_details.reason``: ``max_output_tokens`` is finish reason
  "length") or ``response.failed`` (``response.error``); an ``error`` event
  reports a failure mid-stream. There is no ``[DONE]``.
- body: a ``response`` object whose ``output`` lists items; the answer is the
  ``output_text`` parts of its ``message`` items.

Pure: nothing here performs I/O; ``openai.py`` sends and reads.
"""

from __future__ import annotations

import base64
import json
import re
from typing import Any

from ..errors import ProviderError
from ..models import Message, StreamEnd

__all__ = [
    "RESPONSES_ONLY",
    "UNSUPPORTED_PARAMS",
    "EventStream",
    "build_request",
    "data_url",
    "is_responses_model",
    "parse_response",
    "to_input",
]

#: Model names served only by the Responses API, for names the catalogue does not list:
#: the ``-pro`` reasoning models, the codex models, deep research and computer use.
RESPONSES_ONLY = re.compile(
    r"^(?:o\d+(?:-mini)?-pro|gpt-\d+(?:\.\d+)?-pro|.*codex.*|.*deep-research.*|computer-use.*)(?:-\d{4}-\d\d-\d\d)?$"
)

#: Chat Completions parameters the Responses API does not take.
UNSUPPORTED_PARAMS = ("stop", "seed", "presence_penalty", "frequency_penalty")

#: Events after which nothing more belongs to the answer.
FINAL_EVENTS = ("response.completed", "response.incomplete", "response.failed")


def is_responses_model(model: str | None) -> bool:
    """Whether ``model`` is served only through ``/responses`` (catalogue flag, else its name)."""
    if not model:
        return False
    from .template import model_info

    name = model.rsplit("/", 1)[-1] if model.lower().startswith("openai/") else model
    info = model_info(name)
    if info is not None and info.provider == "openai":
        return "responses" in info.capabilities
    return bool(RESPONSES_ONLY.match(name.lower()))


def data_url(part: dict[str, Any]) -> str:
    """An image part (MIME type and bytes) as a ``data:`` URL, the form OpenAI's APIs take inline."""
    data = part.get("data") or b""
    raw = data if isinstance(data, (bytes, bytearray)) else str(data).encode()
    return f"data:{part.get('mime_type') or 'image/png'};base64,{base64.b64encode(raw).decode('ascii')}"


def _part(part: Any, role: str) -> Any:
    if not isinstance(part, dict):
        return part
    kind = part.get("type")
    if kind == "text":
        return {"type": "output_text" if role == "assistant" else "input_text", "text": part.get("text", "")}
    if kind == "image":
        return {"type": "input_image", "image_url": data_url(part)}
    return dict(part)


def to_input(messages: list[Message]) -> tuple[str | None, list[dict[str, Any]]]:
    """(instructions, input items): the leading system prompt, then every other turn as an item."""
    instructions: str | None = None
    items: list[dict[str, Any]] = []
    for index, message in enumerate(messages):
        role = str(message.get("role") or "user")
        content = message.get("content")
        if index == 0 and role == "system" and isinstance(content, str):
            instructions = content
            continue
        if isinstance(content, list):
            content = [_part(p, role) for p in content]
        items.append({"role": role, "content": content if content is not None else ""})
    return instructions, items


def build_request(
    messages: list[Message],
    *,
    model: str,
    temperature: float | None = None,
    max_tokens: int | None = None,
    stream: bool = True,
    reasoning: bool = False,
    schema: dict[str, Any] | None = None,
    effort: str | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The JSON body of ``POST /responses`` (``effort``: ``reasoning.effort``)."""
    instructions, items = to_input(messages)
    payload: dict[str, Any] = {"model": model, "input": items, "store": False}
    if instructions:
        payload["instructions"] = instructions
    if temperature is not None and not (reasoning and float(temperature) != 1.0):
        payload["temperature"] = float(temperature)
    if max_tokens:
        payload["max_output_tokens"] = int(max_tokens)
    if stream:
        payload["stream"] = True
    if effort:
        payload["reasoning"] = {"effort": effort}
    if schema is not None:
        payload["text"] = {
            "format": {"type": "json_schema", "name": "answer", "schema": schema, "strict": False}
        }
    for key, value in (extra or {}).items():
        if value is not None:
            payload[key] = value
    return payload


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _failure(error: Any, provider: str, *, secret: str | None, where: str) -> ProviderError:
    """A ``ProviderError`` for an ``error`` event or a failed response."""
    from .http import redact

    err = error if isinstance(error, dict) else {"message": str(error or "")}
    message = str(err.get("message") or "no message")
    code = str(err.get("code") or err.get("type") or "")
    low = f"{code} {message}".lower()
    retryable = any(w in low for w in ("server_error", "overloaded", "rate_limit", "timeout", "unavailable"))
    said = redact(message, secret)[:240] + (f" ({code})" if code else "")
    return ProviderError(
        f"{provider} reported an error {where}: {said}",
        hint="The answer so far is kept; try again." if retryable else None,
        retryable=retryable,
        kind="stream_error",
    )


class EventStream:
    """Interprets the decoded events of one streamed Responses answer (``handle`` as ``ChunkStream``'s)."""

    def __init__(self, provider: str = "OpenAI", *, model: str | None = None, secret: str | None = None):
        self.provider = provider
        self.model = model
        self.secret = secret
        self.provider_model: str | None = None
        self.response_id: str | None = None
        self.tokens_in: int | None = None
        self.tokens_out: int | None = None
        self.finish_reason: str | None = None
        self.done = False
        self.events = 0
        self.chars = 0
        self.reasoning: list[str] = []
        self._thinking: list[str] = []
        self.extra: dict[str, Any] = {}

    def take_thinking(self) -> str:
        """The reasoning summary that arrived since the last call (the template streams it apart)."""
        taken = "".join(self._thinking)
        self._thinking.clear()
        return taken

    def handle(self, event: str | None, raw: str) -> str:
        """Text carried by one SSE event ('' when none); raises ``ProviderError`` for errors."""
        if not raw.strip():
            return ""
        self.events += 1
        if raw.strip() == "[DONE]":  # not OpenAI's, but some compatible servers end so
            self.done = self.done or self.finish_reason is not None
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
        if not isinstance(data, dict):
            return ""
        kind = str(data.get("type") or event or "")
        if kind == "error" or (kind == "" and data.get("error")):
            raise _failure(data.get("error") or data, self.provider, secret=self.secret, where="mid-stream")
        if kind == "response.output_text.delta":
            text = data.get("delta")
            if isinstance(text, str) and text:
                self.chars += len(text)
                return text
            return ""
        if kind == "response.refusal.delta":
            text = data.get("delta")
            if isinstance(text, str) and text:  # shown as the answer, then reported as a refusal
                self.extra["refusal"] = True
                self.chars += len(text)
                return text
            return ""
        if kind == "response.reasoning_summary_text.delta":
            if isinstance(data.get("delta"), str):
                self.reasoning.append(data["delta"])
                self._thinking.append(data["delta"])
            return ""
        response = data.get("response")
        if isinstance(response, dict):
            self._response(response)
        if kind == "response.failed":
            error = response.get("error") if isinstance(response, dict) else None
            raise _failure(error, self.provider, secret=self.secret, where="and gave up")
        if kind in FINAL_EVENTS:
            self.done = True
        return ""

    def _response(self, response: dict[str, Any]) -> None:
        """Read the facts a ``response`` object carries: id, model, usage, why it stopped."""
        self.provider_model = response.get("model") or self.provider_model
        self.response_id = response.get("id") or self.response_id
        usage = response.get("usage")
        if isinstance(usage, dict):
            self._usage(usage)
        status = response.get("status")
        if status == "completed":
            self.finish_reason = "stop"
        elif status == "incomplete":
            details = response.get("incomplete_details") or {}
            reason = details.get("reason") if isinstance(details, dict) else None
            self.finish_reason = "length" if reason in ("max_output_tokens", None) else str(reason)
            if reason:
                self.extra["incomplete_reason"] = reason

    def _usage(self, usage: dict[str, Any]) -> None:
        if _int(usage.get("input_tokens")) is not None:
            self.tokens_in = usage["input_tokens"]
        if _int(usage.get("output_tokens")) is not None:
            self.tokens_out = usage["output_tokens"]
        details = usage.get("output_tokens_details") or {}
        if isinstance(details, dict) and _int(details.get("reasoning_tokens")):
            self.extra["reasoning_tokens"] = details["reasoning_tokens"]
        cached = usage.get("input_tokens_details") or {}
        if isinstance(cached, dict) and _int(cached.get("cached_tokens")):
            self.extra["cached_tokens"] = cached["cached_tokens"]

    def withheld(self) -> ProviderError | None:
        """The error of a refused answer (its refusal text is kept as the answer)."""
        if not self.extra.get("refusal"):
            return None
        from .openai import refusal_error

        return refusal_error(self.model, 0)

    def end(self) -> StreamEnd:
        """The usage and finish reason; raises when the stream stopped before its last event."""
        if not self.done:
            if not self.events:
                from .openai import empty_stream_error

                raise empty_stream_error(self.provider)
            got = f" after {self.chars} characters" if self.chars else ""
            raise ProviderError(
                f"The {self.provider} stream ended before response.completed{got}: the answer is incomplete.",
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
            reasoning="".join(self.reasoning) or None,
        )

    def metadata(self) -> dict[str, Any]:
        meta: dict[str, Any] = {"provider": self.provider.lower(), "api": "responses", **self.extra}
        if self.provider_model:
            meta["provider_model"] = self.provider_model
        if self.response_id:
            meta["response_id"] = self.response_id
        return meta


def parse_response(
    body: Any, provider: str = "OpenAI", *, model: str | None = None, secret: str | None = None
) -> tuple[str, StreamEnd]:
    """A non-streamed ``response`` body -> (text, usage and finish reason)."""
    if not isinstance(body, dict):
        from .openai import empty_stream_error

        if body is None:
            raise empty_stream_error(provider, streamed=False)
        raise ProviderError(
            f"{provider} returned a response that is not a JSON object.", retryable=True, kind="malformed"
        )
    state = EventStream(provider, model=model, secret=secret)
    if body.get("error") and body.get("status") != "completed":
        raise _failure(body["error"], provider, secret=secret, where="and gave up")
    state._response(body)
    texts: list[str] = []
    for item in body.get("output") or ():
        if not isinstance(item, dict):
            continue
        if item.get("type") == "reasoning":
            for summary in item.get("summary") or ():
                if isinstance(summary, dict) and isinstance(summary.get("text"), str):
                    state.reasoning.append(summary["text"])
            continue
        if item.get("type") != "message":
            continue
        for part in item.get("content") or ():
            if not isinstance(part, dict):
                continue
            if part.get("type") == "output_text" and isinstance(part.get("text"), str):
                texts.append(part["text"])
            elif part.get("type") == "refusal" and isinstance(part.get("refusal"), str):
                texts.append(part["refusal"])
                state.extra["refusal"] = True
    if "output" not in body:
        raise ProviderError(
            f"{provider} returned a response without output.", retryable=True, kind="malformed"
        )
    state.done = True
    return "".join(texts), state.end()
