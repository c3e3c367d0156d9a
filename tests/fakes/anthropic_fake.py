"""A fake Anthropic Messages API on the shared ``FakeServer`` harness.

Speaks the wire format of ``POST /v1/messages`` (streamed named server-sent
events and plain JSON) and ``GET /v1/models``, so the official ``anthropic``
SDK parses it like the real service (the SDK oracle tests check that).

Scripting::

    fake.answer = "Hello there"          # split into word chunks
    fake.chunks = ["Hel", "lo"]          # or exact chunks
    fake.usage = (12, 3)                 # (input, output) tokens; default: counted words
    fake.stop_reason = "max_tokens"
    fake.thinking = "..."                # a thinking block before the text (must be skipped)
    fake.fault("529")                    # the next request fails; see FAULTS
    fake.fault("overloaded_event", after=2)   # event: error after 2 text chunks
"""

from __future__ import annotations

import json
import re
from typing import Any

from tests.fakes.server import FakeServer, Recorded, Reply

__all__ = ["FAULTS", "AnthropicFake"]

FAULTS = (
    "429",
    "500",
    "503",
    "529",
    "401",
    "400",
    "reset",
    "stall",
    "malformed",
    "truncated",
    "cut",
    "large",
    "drip",
    "overloaded_event",
)

_ERROR_TYPES = {
    400: ("invalid_request_error", "messages: field required"),
    401: ("authentication_error", "invalid x-api-key"),
    404: ("not_found_error", "model: not found"),
    429: ("rate_limit_error", "Number of request tokens has exceeded your per-minute rate limit"),
    500: ("api_error", "Internal server error"),
    503: ("api_error", "Service unavailable"),
    529: ("overloaded_error", "Overloaded"),
}


def words(text: str) -> list[str]:
    """``text`` as word chunks that join back to exactly ``text``."""
    return re.findall(r"\s*\S+\s*", text) or ([text] if text else [])


def sse(event: str, data: dict[str, Any]) -> str:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


def error_body(status: int, kind: str | None = None, message: str | None = None) -> dict[str, Any]:
    default_kind, default_message = _ERROR_TYPES.get(status, ("api_error", "error"))
    return {
        "type": "error",
        "error": {"type": kind or default_kind, "message": message or default_message},
        "request_id": "req_fake_0001",
    }


class AnthropicFake(FakeServer):
    """See the module docstring."""

    MODELS = ("claude-sonnet-4-5-20250929", "claude-haiku-4-5-20251001", "claude-opus-4-1-20250805")

    def __init__(self, answer: str = "Hello from the fake Claude.") -> None:
        super().__init__()
        self.answer = answer
        self.chunks: list[str] | None = None
        self.usage: tuple[int, int] | None = None
        self.stop_reason = "end_turn"
        self.thinking: str | None = None
        self.ping_every = 3
        self.chunk_delay = 0.0
        self.reported_model: str | None = None
        self.model_pages = 1
        self.route("POST", "/v1/messages", self._messages)
        self.route("GET", "/v1/models", self._models)

    # ------------------------------------------------------------------ scripting

    def text_chunks(self) -> list[str]:
        return list(self.chunks) if self.chunks is not None else words(self.answer)

    def expected_usage(self, request: Recorded) -> tuple[int, int]:
        if self.usage is not None:
            return self.usage
        body = request.json or {}
        parts = [str(body.get("system") or "")] + [str(m.get("content")) for m in body.get("messages", [])]
        text = " ".join(parts)
        return len(text.split()), len(self.text_chunks())

    def fault(
        self,
        mode: str,
        *,
        times: int = 1,
        after: int = 2,
        retry_after: float | str | None = 1,
        stall: float = 30.0,
    ) -> None:
        """Make the next ``times`` message requests fail in ``mode`` (one of ``FAULTS``)."""
        if mode not in FAULTS and not mode.isdigit():
            raise ValueError(f"unknown fault {mode!r}; known: {', '.join(FAULTS)}")

        def handler(request: Recorded) -> Reply:
            return self._faulty(mode, request, after=after, retry_after=retry_after, stall=stall)

        self.enqueue("POST", "/v1/messages", handler, times=times)

    def fail_next(self, kind: str, times: int = 1, **options: Any) -> None:
        """``fault`` in the vocabulary of the OpenAI and Ollama fakes (for the cross-protocol matrix).

        ``status`` (status=, headers= with retry-after), ``reset`` / ``close`` /
        ``stall`` (after=, seconds=), ``malformed``, ``truncated``, ``drip``,
        ``large``; any of this fake's own ``FAULTS`` names passes through.
        """
        after = int(options.get("after", 2))
        if kind == "status":
            headers = {k.lower(): v for k, v in (options.get("headers") or {}).items()}
            self.fault(str(options.get("status", 500)), times=times, retry_after=headers.get("retry-after"))
        elif kind == "close":
            self.fault("cut", times=times, after=after)
        elif kind == "stall":
            self.fault("stall", times=times, after=after, stall=float(options.get("seconds", 30)))
        else:
            self.fault(kind, times=times, after=after)

    # ------------------------------------------------------------------ handlers

    def _auth(self, request: Recorded) -> Reply | None:
        bearer = request.headers.get("authorization", "").removeprefix("Bearer ")
        key = request.headers.get("x-api-key") or bearer
        if not key:
            return Reply(401, body=error_body(401, message="x-api-key header is required"))
        if request.headers.get("anthropic-version") is None:
            return Reply(400, body=error_body(400, message="anthropic-version header is required"))
        return None

    def _messages(self, request: Recorded) -> Reply:
        return self._auth(request) or self._answer_for(request)

    def _answer_for(self, request: Recorded, *, chunks: list[str] | None = None, **events: Any) -> Reply:
        body = request.json or {}
        if not body.get("messages") or not body.get("max_tokens") or not body.get("model"):
            return Reply(400, body=error_body(400, message="model, messages and max_tokens are required"))
        texts = self.text_chunks() if chunks is None else chunks
        if body.get("stream"):
            return Reply(
                200,
                headers={"request-id": "req_fake_0001", "cache-control": "no-cache"},
                content_type="text/event-stream; charset=utf-8",
                chunks=self._events(request, texts, **events),
                chunk_delay=self.chunk_delay,
            )
        tokens_in, tokens_out = self.expected_usage(request)
        content: list[dict[str, Any]] = []
        if self.thinking:
            content.append({"type": "thinking", "thinking": self.thinking, "signature": "sig"})
        content.append({"type": "text", "text": "".join(texts)})
        return Reply(
            200,
            headers={"request-id": "req_fake_0001"},
            body={
                "id": "msg_fake_01",
                "type": "message",
                "role": "assistant",
                "model": self.reported_model or body["model"],
                "content": content,
                "stop_reason": self.stop_reason,
                "stop_sequence": None,
                "usage": {
                    "input_tokens": tokens_in,
                    "output_tokens": tokens_out,
                    "cache_creation_input_tokens": 0,
                    "cache_read_input_tokens": 0,
                },
            },
        )

    def _events(
        self,
        request: Recorded,
        texts: list[str],
        *,
        error_after: int | None = None,
        malformed_after: int | None = None,
        stop: bool = True,
    ) -> list[str]:
        body = request.json or {}
        tokens_in, tokens_out = self.expected_usage(request)
        out = [
            sse(
                "message_start",
                {
                    "type": "message_start",
                    "message": {
                        "id": "msg_fake_01",
                        "type": "message",
                        "role": "assistant",
                        "content": [],
                        "model": self.reported_model or body.get("model"),
                        "stop_reason": None,
                        "stop_sequence": None,
                        "usage": {
                            "input_tokens": tokens_in,
                            "output_tokens": 1,
                            "cache_creation_input_tokens": 0,
                            "cache_read_input_tokens": 0,
                        },
                    },
                },
            )
        ]
        index = 0
        if self.thinking:
            out.append(
                sse(
                    "content_block_start",
                    {
                        "type": "content_block_start",
                        "index": 0,
                        "content_block": {"type": "thinking", "thinking": ""},
                    },
                )
            )
            thinking = {"type": "thinking_delta", "thinking": self.thinking}
            out.append(
                sse("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": thinking})
            )
            out.append(
                sse(
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": 0,
                        "delta": {"type": "signature_delta", "signature": "sig"},
                    },
                )
            )
            out.append(sse("content_block_stop", {"type": "content_block_stop", "index": 0}))
            index = 1
        out.append(
            sse(
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": index,
                    "content_block": {"type": "text", "text": ""},
                },
            )
        )
        out.append(sse("ping", {"type": "ping"}))
        for n, text in enumerate(texts):
            if error_after is not None and n == error_after:
                out.append(sse("error", error_body(529)))
                return out
            if malformed_after is not None and n == malformed_after:
                out.append('event: content_block_delta\ndata: {"type": "content_block_delta", "delta\n\n')
            out.append(
                sse(
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": index,
                        "delta": {"type": "text_delta", "text": text},
                    },
                )
            )
            if self.ping_every and n % self.ping_every == self.ping_every - 1:
                out.append(sse("ping", {"type": "ping"}))
        if error_after is not None:
            out.append(sse("error", error_body(529)))
            return out
        out.append(sse("content_block_stop", {"type": "content_block_stop", "index": index}))
        out.append(
            sse(
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": self.stop_reason, "stop_sequence": None},
                    "usage": {"output_tokens": tokens_out},
                },
            )
        )
        if stop:
            out.append(sse("message_stop", {"type": "message_stop"}))
        return out

    def _faulty(self, mode: str, request: Recorded, *, after: int, retry_after: Any, stall: float) -> Reply:
        if mode.isdigit():
            status = int(mode)
            headers = {"request-id": "req_fake_0001"}
            if status == 429 and retry_after is not None:
                headers["retry-after"] = str(retry_after)
            if status == 429:
                headers["anthropic-ratelimit-requests-remaining"] = "0"
            return Reply(status, headers=headers, body=error_body(status))
        denied = self._auth(request)
        if denied is not None:
            return denied
        streaming = bool((request.json or {}).get("stream"))
        prefix = 3 + (4 if self.thinking else 0)  # message_start, block start, ping (+ thinking block)
        if mode == "overloaded_event":
            return self._answer_for(request, error_after=after)
        if mode == "malformed":
            return self._answer_for(request, malformed_after=after)
        if mode == "truncated":
            return (
                self._answer_for(request, stop=False)
                if streaming
                else Reply(
                    200,
                    body='{"id": "msg_fake_01", "type": "message", "content": [{"type": "te',
                    content_type="application/json",
                )
            )
        if mode == "large":
            return self._answer_for(request, chunks=pieces(large_text()))
        reply = self._answer_for(request)
        if not streaming:
            raw = json.dumps(reply.body)
            reply = Reply(200, content_type="application/json", chunks=halves(raw))
            prefix, after = 0, 1
        if mode == "reset":
            reply.reset_after = prefix + after
        elif mode == "cut":
            reply.close_after = prefix + after
        elif mode == "stall":
            reply.stall_after, reply.stall = prefix + after, stall
        elif mode == "drip":
            reply.drip = True
        return reply

    def _models(self, request: Recorded) -> Reply:
        denied = self._auth(request)
        if denied is not None:
            return denied
        data = [
            {"type": "model", "id": m, "display_name": m, "created_at": "2025-09-29T00:00:00Z"}
            for m in self.MODELS
        ]
        if self.model_pages > 1 and not request.query.get("after_id"):
            return Reply(
                200,
                body={
                    "data": data[:1],
                    "has_more": True,
                    "first_id": data[0]["id"],
                    "last_id": data[0]["id"],
                },
            )
        if request.query.get("after_id"):
            data = data[1:]
        return Reply(
            200, body={"data": data, "has_more": False, "first_id": data[0]["id"], "last_id": data[-1]["id"]}
        )


def halves(raw: str) -> list[str]:
    """A body in two chunks, so a fault can strike between them."""
    return [raw[: len(raw) // 2], raw[len(raw) // 2 :]]


def pieces(text: str, size: int = 1000) -> list[str]:
    """``text`` in chunks of ``size`` characters (a large answer in a realistic number of events)."""
    return [text[i : i + size] for i in range(0, len(text), size)]


def large_text(n: int = 20000) -> str:
    """A long, checkable answer: numbered words."""
    return " ".join(f"w{i}" for i in range(n))
