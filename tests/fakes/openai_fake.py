"""A fake OpenAI server: Chat Completions, the Responses API and the model list.

``/v1/chat/completions``, ``/v1/responses`` (its wire format is in
``responses_fake.py``) and ``/v1/models``.

Speaks the wire format of the real API: ``chat.completion.chunk`` events as
``data: {json}`` SSE lines, a first chunk carrying the assistant role, a last
one carrying ``finish_reason``, with ``stream_options.include_usage`` a usage
chunk whose ``choices`` is empty, then ``data: [DONE]``; OpenAI's error bodies
``{"error": {"message", "type", "param", "code"}}``. The official ``openai``
SDK reads it (see test_openai.py), which keeps it honest.

Script the answer with ``fake.answer`` (list of text pieces), ``fake.usage``
(prompt/completion tokens), ``fake.usage_style`` (how the usage chunk looks:
"empty", "null", "empty-delta", "missing" choices, or "none" for no usage
chunk) and inject faults with ``fake.fail_next(kind, ...)``.

Servers as they are in the field: ``fake.reject_stream_options = True``
answers 400 to any request carrying ``stream_options`` (as servers that do
not know it do); ``fail_next("empty")`` is an HTTP 200 with nothing in it
(llama.cpp's answer to a streamed prompt that overflows its context);
``fail_next("no_db")`` is LiteLLM's 400 "No connected db." for a key that is
not its master key. Models in ``fake.responses_only`` are refused by Chat
Completions with OpenAI's "only supported in v1/responses".
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

from .responses_fake import responses_reply
from .server import FakeServer, Recorded, Reply

__all__ = ["OpenAIFake"]

FAULTS = (
    "status",
    "context",
    "reset",
    "close",
    "stall",
    "malformed",
    "truncated",
    "error_data",
    "error_event",
    "drip",
    "large",
    "echo_key",
    "empty",
    "no_db",
    "failed",
    "incomplete",
)


def _sse(data: Any, event: str | None = None) -> str:
    text = data if isinstance(data, str) else json.dumps(data)
    return (f"event: {event}\n" if event else "") + f"data: {text}\n\n"


def error_body(message: str, etype: str, code: str | None = None, param: str | None = None) -> dict:
    return {"error": {"message": message, "type": etype, "param": param, "code": code}}


class OpenAIFake(FakeServer):
    """See the module docstring."""

    def __init__(
        self,
        *,
        prefix: str = "/v1",
        api_key: str | None = None,
        models: tuple[str, ...] = ("gpt-4o-mini", "gpt-4.1-nano", "o3-mini"),
        responses_only: tuple[str, ...] = ("o3-pro", "gpt-5-pro", "gpt-5-codex"),
    ) -> None:
        super().__init__()
        self.prefix = prefix
        self.api_key = api_key
        self.models = list(models)
        #: Models only the Responses API serves (listed by /models too).
        self.responses_only = list(responses_only)
        #: Answer 400 to a request with ``stream_options`` (a server that does not know it).
        self.reject_stream_options = False
        #: Reasoning tokens reported in the usage; a reasoning summary streamed by /responses.
        self.reasoning_tokens = 0
        self.reasoning_summary: str | None = None
        #: Chat Completions: reasoning sent before the answer in ``reasoning_content`` (llama.cpp, vLLM).
        self.reasoning_content: list[str] = []
        self.answer: list[str] = ["Hello", ", ", "world", "!"]
        self.usage = {"prompt_tokens": 12, "completion_tokens": 4}
        self.usage_style = "empty"
        self.finish_reason = "stop"
        #: When set, the model refuses: the text arrives as ``refusal`` instead of ``content``.
        self.refusal: str | None = None
        self._faults: list[dict[str, Any]] = []
        self.route("POST", f"{prefix}/chat/completions", self._chat)
        self.route("POST", f"{prefix}/responses", self._responses)
        self.route("GET", f"{prefix}/models", self._models)

    error_body = staticmethod(error_body)

    @property
    def base_url(self) -> str:
        """What to give as ``openai_base_url`` / the SDK's ``base_url``."""
        return self.url + self.prefix

    @property
    def text(self) -> str:
        return "".join(self.answer)

    def fail_next(self, kind: str, times: int = 1, **options: Any) -> None:
        """Make the next ``times`` chat requests fail in the way ``kind`` names.

        status (status=, headers=, body=), context (400 context_length_exceeded),
        reset / close (after=N events: RST or clean close mid-stream), empty
        (HTTP 200 and nothing else, streamed or not), no_db (LiteLLM's 400 for
        a key that is not its master key), failed / incomplete (Responses API
        only), stall
        (after=N events, seconds=), malformed (a non-JSON event after N),
        truncated (no [DONE], no finish_reason), error_data (``data: {"error":...}``
        after N events), error_event (``event: error``), drip (one byte at a
        time), large (``size`` characters of answer), echo_key (401 whose
        message repeats the key it was sent).
        """
        if kind not in FAULTS:
            raise ValueError(f"unknown fault {kind!r}; known: {', '.join(FAULTS)}")
        self._faults.extend({"kind": kind, **options} for _ in range(times))

    # ------------------------------------------------------------------ handlers

    def _check_auth(self, request: Recorded) -> Reply | None:
        if self.api_key is None:
            return None
        got = request.headers.get("authorization", "")
        if got == f"Bearer {self.api_key}":
            return None
        shown = got.removeprefix("Bearer ")
        masked = f"{shown[:3]}*****{shown[-4:]}" if len(shown) > 8 else "(none)"
        return Reply(
            401,
            body=error_body(
                f"Incorrect API key provided: {masked}. You can find your API key at "
                "https://platform.openai.com/account/api-keys.",
                "invalid_request_error",
                "invalid_api_key",
            ),
        )

    def _models(self, request: Recorded) -> Reply:
        denied = self._check_auth(request)
        if denied:
            return denied
        return Reply(
            body={
                "object": "list",
                "data": [
                    {"id": m, "object": "model", "created": 1700000000, "owned_by": "system"}
                    for m in [*self.models, *self.responses_only]
                ],
            }
        )

    def _responses(self, request: Recorded) -> Reply:
        fault = self._faults.pop(0) if self._faults else {}
        denied = self._check_auth(request)
        return denied or responses_reply(self, request, fault)

    def _chat(self, request: Recorded) -> Reply:
        fault = self._faults.pop(0) if self._faults else {}
        kind = fault.get("kind")
        if kind == "no_db":
            return Reply(400, body=error_body("No connected db.", "no_db_connection", "400"))
        if kind == "echo_key":
            key = request.headers.get("authorization", "").removeprefix("Bearer ")
            return Reply(
                401, body=error_body(f"Invalid key {key}", "invalid_request_error", "invalid_api_key")
            )
        denied = self._check_auth(request)
        if denied:
            return denied
        body = request.json or {}
        model = body.get("model")
        if self.reject_stream_options and "stream_options" in body:
            return Reply(
                400,
                body=error_body(
                    "Unrecognized request argument supplied: stream_options", "invalid_request_error"
                ),
            )
        if model in self.responses_only:
            return Reply(
                404,
                body=error_body(
                    "This model is only supported in v1/responses and not in v1/chat/completions.",
                    "invalid_request_error",
                    param="model",
                ),
            )
        if kind == "status":
            return Reply(
                fault.get("status", 500),
                headers=fault.get("headers"),
                body=fault.get("body", error_body("The server had an error.", "server_error")),
            )
        if kind == "context":
            return Reply(
                400,
                body=error_body(
                    "This model's maximum context length is 128000 tokens. However, your messages resulted "
                    "in 130512 tokens. Please reduce the length of the messages.",
                    "invalid_request_error",
                    "context_length_exceeded",
                    "messages",
                ),
            )
        if self.models and model not in self.models:
            return Reply(
                404,
                body=error_body(
                    f"The model `{model}` does not exist or you do not have access to it.",
                    "invalid_request_error",
                    "model_not_found",
                ),
            )
        answer = list(self.answer)
        if kind == "large":
            size = int(fault.get("size", 1_000_000))
            piece = "lorem ipsum dolor sit amet " * 40
            answer = [piece[: min(len(piece), size - i)] for i in range(0, size, len(piece))]
        created = int(time.time())
        cid = "chatcmpl-fake123"
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        if kind == "empty":  # llama.cpp, a streamed prompt over its context: 200, then nothing
            if body.get("stream"):
                return Reply(chunks=[], content_type="text/event-stream; charset=utf-8")
            return Reply(body=b"", content_type="application/json")
        if not body.get("stream"):
            return Reply(
                body={
                    "id": cid,
                    "object": "chat.completion",
                    "created": created,
                    "model": model,
                    "choices": [
                        {
                            "index": 0,
                            "message": {
                                "role": "assistant",
                                "content": None if self.refusal else "".join(answer),
                                "refusal": self.refusal,
                                **(
                                    {"reasoning_content": "".join(self.reasoning_content)}
                                    if self.reasoning_content
                                    else {}
                                ),
                            },
                            "logprobs": None,
                            "finish_reason": self.finish_reason,
                        }
                    ],
                    "usage": self._usage(),
                    "system_fingerprint": "fp_fake",
                }
            )

        def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            data = {
                "id": cid,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "system_fingerprint": "fp_fake",
                "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
            }
            if include_usage:
                data["usage"] = None
            return data

        events = [_sse(chunk({"role": "assistant", "content": "", "refusal": None}))]
        events += [_sse(chunk({"reasoning_content": piece})) for piece in self.reasoning_content]
        if self.refusal:
            events += [_sse(chunk({"refusal": piece})) for piece in re.findall(r"\s*\S+", self.refusal)]
        else:
            events += [_sse(chunk({"content": piece})) for piece in answer]
        after = int(fault.get("after", 2))
        if kind == "malformed":
            events.insert(after, 'data: {"id": "chatcmpl-fake123", "choices": [{"delta": \n\n')
        elif kind == "error_data":
            events.insert(
                after,
                _sse(error_body("The server had an error while processing your request.", "server_error")),
            )
        elif kind == "error_event":
            events.insert(after, _sse(error_body("Content blocked.", "invalid_request_error"), event="error"))
        if kind != "truncated":
            events.append(_sse(chunk({}, self.finish_reason)))
            if include_usage and self.usage_style != "none":
                events.append(_sse(self._usage_chunk(cid, created, model)))
            events.append(_sse("[DONE]"))
        reply = Reply(
            chunks=events,
            content_type="text/event-stream; charset=utf-8",
            drip=kind == "drip",
            chunk_delay=float(fault.get("delay", 0)),
        )
        if kind == "reset":
            reply.reset_after = after
        elif kind == "close":
            reply.close_after = after
        elif kind == "stall":
            reply.stall_after, reply.stall = after, float(fault.get("seconds", 30))
        return reply

    def _usage(self) -> dict[str, Any]:
        pin, pout = self.usage["prompt_tokens"], self.usage["completion_tokens"]
        return {
            "prompt_tokens": pin,
            "completion_tokens": pout,
            "total_tokens": pin + pout,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": 0,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }

    def _usage_chunk(self, cid: str, created: int, model: str | None) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": cid,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "system_fingerprint": "fp_fake",
            "usage": self._usage(),
        }
        style = self.usage_style
        if style == "empty":
            data["choices"] = []
        elif style == "null":
            data["choices"] = None
        elif style == "empty-delta":
            data["choices"] = [{"index": 0, "delta": {}, "logprobs": None, "finish_reason": None}]
        return data
