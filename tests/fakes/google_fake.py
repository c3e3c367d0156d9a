"""A fake Gemini API (generativelanguage) on the shared ``FakeServer`` harness.

Serves ``POST /{version}/models/{model}:generateContent`` and
``:streamGenerateContent`` (``?alt=sse``: ``data:`` lines with CRLF framing as
the real service sends; without it: a streamed JSON array) and
``GET /{version}/models``, for both ``v1beta`` (our backend, and google-genai
2.x's default: the newest release for Python 3.10) and ``v1`` (google-genai 3.x's
default).

Scripting::

    fake.answer = "Hello there"; fake.chunks = [...]; fake.usage = (4, 2)
    fake.thought = "..."          # a thought part (thought: true) in the first chunk
    fake.finish_reason = "MAX_TOKENS"
    fake.fault("safety", after=2)  # SAFETY finish after 2 text chunks; see FAULTS
    fake.fault("blocked_prompt")   # promptFeedback.blockReason, no candidates
"""

from __future__ import annotations

import json
from typing import Any

from tests.fakes.anthropic_fake import halves, large_text, pieces, words
from tests.fakes.server import FakeServer, Recorded, Reply

__all__ = ["FAULTS", "GeminiFake"]

FAULTS = (
    "429",
    "500",
    "503",
    "529",
    "400",
    "403",
    "bad_key",
    "reset",
    "stall",
    "malformed",
    "truncated",
    "cut",
    "large",
    "drip",
    "safety",
    "blocked_prompt",
    "error_chunk",
)

_STATUS = {
    400: ("INVALID_ARGUMENT", "Request contains an invalid argument."),
    403: ("PERMISSION_DENIED", "Method doesn't allow unregistered callers."),
    404: ("NOT_FOUND", "models/unknown is not found for API version v1beta."),
    429: ("RESOURCE_EXHAUSTED", "Resource has been exhausted (e.g. check quota)."),
    500: ("INTERNAL", "An internal error has occurred."),
    503: ("UNAVAILABLE", "The model is overloaded. Please try again later."),
    529: ("UNAVAILABLE", "The model is overloaded. Please try again later."),
}

SAFETY_RATINGS = [
    {"category": "HARM_CATEGORY_HARASSMENT", "probability": "NEGLIGIBLE"},
    {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH", "blocked": True},
]


def error_body(status: int, message: str | None = None, name: str | None = None) -> dict[str, Any]:
    default_name, default_message = _STATUS.get(status, ("UNKNOWN", "error"))
    return {"error": {"code": status, "message": message or default_message, "status": name or default_name}}


def sse(data: dict[str, Any]) -> str:
    return "data: " + json.dumps(data, separators=(",", ":")) + "\r\n\r\n"


class GeminiFake(FakeServer):
    """See the module docstring."""

    MODELS = ("gemini-2.5-flash", "gemini-2.5-pro", "text-embedding-004")

    def __init__(self, answer: str = "Hello from the fake Gemini.") -> None:
        super().__init__()
        self.answer = answer
        self.chunks: list[str] | None = None
        self.usage: tuple[int, int] | None = None
        self.thought: str | None = None
        self.thoughts_tokens = 0
        self.finish_reason = "STOP"
        self.chunk_delay = 0.0
        self.valid_key: str | None = None
        self.model_pages = 1
        for version in ("v1beta", "v1"):
            self.route("POST", f"/{version}/models/{{model}}:streamGenerateContent", self._on_stream)
            self.route("POST", f"/{version}/models/{{model}}:generateContent", self._on_generate)
            self.route("GET", f"/{version}/models", self._models)

    # ------------------------------------------------------------------ scripting

    def text_chunks(self) -> list[str]:
        return list(self.chunks) if self.chunks is not None else words(self.answer)

    def expected_usage(self, request: Recorded) -> tuple[int, int]:
        if self.usage is not None:
            return self.usage
        body = request.json or {}
        texts = [p.get("text", "") for c in body.get("contents", []) for p in c.get("parts", [])]
        texts += [p.get("text", "") for p in (body.get("systemInstruction") or {}).get("parts", [])]
        return len(" ".join(texts).split()), len(self.text_chunks())

    def fault(
        self,
        mode: str,
        *,
        times: int = 1,
        after: int = 2,
        retry_after: float | str | None = 1,
        stall: float = 30.0,
    ) -> None:
        """Make the next ``times`` generation requests fail in ``mode`` (one of ``FAULTS``)."""
        if mode not in FAULTS and not mode.isdigit():
            raise ValueError(f"unknown fault {mode!r}; known: {', '.join(FAULTS)}")

        def handler(request: Recorded) -> Reply:
            return self._faulty(mode, request, after=after, retry_after=retry_after, stall=stall)

        self.enqueue("POST", "/{version}/models/{model}:{method}", handler, times=times)

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
        key = request.headers.get("x-goog-api-key") or request.query.get("key")
        if not key:
            return Reply(403, body=error_body(403))
        if self.valid_key is not None and key != self.valid_key:
            return Reply(400, body=error_body(400, "API key not valid. Please pass a valid API key."))
        return None

    def _chunk(
        self,
        request: Recorded,
        texts: list[str],
        *,
        finish: str | None,
        last: bool,
        thought: str | None = None,
        ratings: bool = False,
    ) -> dict[str, Any]:
        tokens_in, tokens_out = self.expected_usage(request)
        parts: list[dict[str, Any]] = []
        if thought:
            parts.append({"text": thought, "thought": True})
        parts += [{"text": t} for t in texts]
        candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}, "index": 0}
        if finish:
            candidate["finishReason"] = finish
        if ratings:
            candidate["safetyRatings"] = SAFETY_RATINGS
        usage: dict[str, Any] = {"promptTokenCount": tokens_in, "totalTokenCount": tokens_in}
        if last:
            usage.update(
                candidatesTokenCount=tokens_out, totalTokenCount=tokens_in + tokens_out + self.thoughts_tokens
            )
            if self.thoughts_tokens:
                usage["thoughtsTokenCount"] = self.thoughts_tokens
        return {
            "candidates": [candidate],
            "usageMetadata": usage,
            "modelVersion": request.params.get("model", "gemini"),
            "responseId": "fake-response-1",
        }

    def _chunks(
        self, request: Recorded, texts: list[str], *, finish: str | None = None, stop_after: int | None = None
    ) -> list[dict[str, Any]]:
        """One chunk per text piece, the finish reason and full usage on the last.

        With ``stop_after``: only that many pieces, then a chunk carrying just
        ``finish`` (none when ``finish`` is empty: a stream that simply stops).
        """
        finish = self.finish_reason if finish is None else finish
        pieces = texts if stop_after is None else texts[:stop_after]
        out = [
            self._chunk(request, [t], finish=None, last=False, thought=self.thought if n == 0 else None)
            for n, t in enumerate(pieces)
        ]
        if stop_after is None and out:
            out[-1] = self._chunk(
                request,
                [pieces[-1]],
                finish=finish,
                last=True,
                thought=self.thought if len(pieces) == 1 else None,
            )
        elif finish:
            out.append(self._chunk(request, [], finish=finish, last=True, ratings=finish == "SAFETY"))
        return out

    def _on_stream(self, request: Recorded) -> Reply:
        return self._auth(request) or self._stream_reply(request, self._chunks(request, self.text_chunks()))

    def _stream_reply(self, request: Recorded, chunks: list[Any], **options: Any) -> Reply:
        if request.query.get("alt") == "sse":
            lines = [c if isinstance(c, str) else sse(c) for c in chunks]
            return Reply(
                200, content_type="text/event-stream", chunks=lines, chunk_delay=self.chunk_delay, **options
            )
        parts = [
            ("[" if i == 0 else ",\r\n") + (c if isinstance(c, str) else json.dumps(c))
            for i, c in enumerate(chunks)
        ] + ["]"]
        return Reply(
            200,
            content_type="application/json; charset=UTF-8",
            chunks=parts,
            chunk_delay=self.chunk_delay,
            **options,
        )

    def _on_generate(self, request: Recorded) -> Reply:
        denied = self._auth(request)
        if denied is not None:
            return denied
        return Reply(200, body=self._whole(request, self.text_chunks(), self.finish_reason))

    def _whole(self, request: Recorded, texts: list[str], finish: str) -> dict[str, Any]:
        return self._chunk(
            request,
            ["".join(texts)],
            finish=finish,
            last=True,
            thought=self.thought,
            ratings=finish == "SAFETY",
        )

    def _faulty(self, mode: str, request: Recorded, *, after: int, retry_after: Any, stall: float) -> Reply:
        if mode.isdigit():
            status = int(mode)
            headers = {"retry-after": str(retry_after)} if status == 429 and retry_after is not None else None
            return Reply(status, headers=headers, body=error_body(status))
        if mode == "bad_key":
            return Reply(400, body=error_body(400, "API key not valid. Please pass a valid API key."))
        denied = self._auth(request)
        if denied is not None:
            return denied
        streaming = "streamGenerateContent" in request.path
        texts = self.text_chunks()
        if mode == "blocked_prompt":
            tokens_in, _ = self.expected_usage(request)
            blocked = {
                "promptFeedback": {"blockReason": "SAFETY", "safetyRatings": SAFETY_RATINGS},
                "usageMetadata": {"promptTokenCount": tokens_in, "totalTokenCount": tokens_in},
                "modelVersion": request.params.get("model"),
                "responseId": "fake-response-1",
            }
            return self._stream_reply(request, [blocked]) if streaming else Reply(200, body=blocked)
        if mode == "safety":
            if not streaming:
                return Reply(200, body=self._whole(request, texts[:after], "SAFETY"))
            chunks = self._chunks(request, texts, finish="SAFETY", stop_after=after)
            return self._stream_reply(request, chunks)
        if mode == "error_chunk":
            chunks: list[Any] = self._chunks(request, texts, stop_after=after, finish="")
            chunks.append(error_body(503))
            return self._stream_reply(request, chunks) if streaming else Reply(200, body=error_body(503))
        if mode == "malformed":
            chunks = self._chunks(request, texts)
            chunks.insert(after, 'data: {"candidates": [{"content": \r\n\r\n')
            return self._stream_reply(request, chunks)
        if mode == "truncated":
            if not streaming:
                return Reply(200, content_type="application/json", body='{"candidates": [{"content": {"par')
            return self._stream_reply(request, self._chunks(request, texts, stop_after=after, finish=""))
        if mode == "large":
            big = pieces(large_text())
            if not streaming:
                return Reply(200, body=self._whole(request, big, "STOP"))
            return self._stream_reply(request, self._chunks(request, big))
        if not streaming:
            raw = json.dumps(self._whole(request, texts, self.finish_reason))
            reply = Reply(200, content_type="application/json", chunks=halves(raw))
            after = 1
        else:
            reply = self._stream_reply(request, self._chunks(request, texts))
        if mode == "reset":
            reply.reset_after = after
        elif mode == "cut":
            reply.close_after = after
        elif mode == "stall":
            reply.stall_after, reply.stall = after, stall
        elif mode == "drip":
            reply.drip = True
        return reply

    def _models(self, request: Recorded) -> Reply:
        denied = self._auth(request)
        if denied is not None:
            return denied
        entries = [
            {
                "name": f"models/{m}",
                "version": "001",
                "displayName": m,
                "supportedGenerationMethods": ["embedContent"]
                if "embedding" in m
                else ["generateContent", "countTokens"],
            }
            for m in self.MODELS
        ]
        if self.model_pages > 1 and not request.query.get("pageToken"):
            return Reply(200, body={"models": entries[:1], "nextPageToken": "page2"})
        if request.query.get("pageToken"):
            entries = entries[1:]
        return Reply(200, body={"models": entries})
