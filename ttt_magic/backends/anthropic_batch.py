"""Anthropic's Message Batches API, beside the Messages protocol it carries (``anthropic.py``).

One part of a batch job is one Message Batch:

1. ``POST /v1/messages/batches`` ``{"requests": [{"custom_id", "params"}, ...]}``,
   where ``params`` is exactly what ``AnthropicBackend.exchange`` builds for one
   answer; the body is streamed from the part's request file on disk (one
   request a line), with its length said up front;
2. ``GET /v1/messages/batches/{id}`` until ``processing_status`` is ``ended``;
   ``request_counts`` (processing, succeeded, errored, canceled, expired) says
   how far it is;
3. the results, JSON Lines at ``results_url``, read one line at a time: each
   ``{"custom_id", "result": {"type": succeeded|errored|canceled|expired, ...}}``.

``POST /v1/messages/batches/{id}/cancel`` cancels what is not processed yet.
The key goes only to the configured host: a ``results_url`` elsewhere is not
followed (the results path of the configured base URL is asked instead).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ..errors import ProviderError
from ..models import StreamEnd
from .template import Exchange

__all__ = ["MAX_BYTES", "MAX_ROWS", "AnthropicBatchService", "array_body"]

#: Anthropic's limits per batch: 100,000 requests or 256 MB (a margin is kept).
MAX_ROWS = 100_000
MAX_BYTES = 250 * 1024 * 1024
#: Bytes read from the request file at a time while the body is sent.
READ_SIZE = 1 << 20

Outcome = tuple[Any, str, "StreamEnd | None", "ProviderError | None"]

_COUNTS = ("processing", "succeeded", "errored", "canceled", "expired")


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def array_body(path: Path, prefix: bytes, suffix: bytes) -> tuple[int, Callable[[], AsyncIterator[bytes]]]:
    """A JSON body ``prefix + [line, line, ...] + suffix`` streamed from a file of JSON lines.

    Returns its exact length (so no chunked encoding is needed) and a factory
    of the byte stream; memory stays one read of the file. Every line ends
    with a newline and holds none inside (JSON escapes them), so the body is
    the file with its newlines turned into commas, the last one dropped.
    """
    size = path.stat().st_size
    length = len(prefix) + max(0, size - 1) + len(suffix)

    async def stream() -> AsyncIterator[bytes]:
        yield prefix
        with open(path, "rb") as handle:
            held = b""
            while True:
                block = handle.read(READ_SIZE)
                if not block:
                    break
                if held:
                    yield held.replace(b"\n", b",")
                held = block
            if held.endswith(b"\n"):
                held = held[:-1]
            yield held.replace(b"\n", b",")
        yield suffix

    return length, stream


class AnthropicBatchService:
    """The Message Batches API of one ``AnthropicBackend``."""

    engine = "anthropic"
    label = "Anthropic Message Batches"
    max_rows = MAX_ROWS
    max_bytes = MAX_BYTES
    ordered = False

    def __init__(self, backend: Any) -> None:
        self.backend = backend

    @property
    def base(self) -> str:
        return str(self.backend.base_url)

    def _options(self) -> dict[str, Any]:
        from . import http

        return {
            "headers": dict(self.backend._headers()),
            "timeout": http.timeout_for(self.backend.backend_config),
            **self.backend._context(None),
        }

    def endpoint(self, exchange: Exchange) -> str:
        return "/v1/messages"

    def line(self, custom_id: str, exchange: Exchange) -> dict[str, Any]:
        return {"custom_id": custom_id, "params": exchange.json}

    @staticmethod
    def prompt_of(line: dict[str, Any]) -> Any:
        messages = (line.get("params") or {}).get("messages") or []
        if not messages:
            return None
        content = messages[-1].get("content")
        if isinstance(content, list):
            return "".join(
                p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text"
            )
        return content

    async def submit(self, path: Path, *, rows: int, name: str, endpoint: str) -> dict[str, Any]:
        from . import http

        length, stream = array_body(path, b'{"requests":[', b"]}")
        options = self._options()
        options["headers"]["content-length"] = str(length)
        batch = await http.request_json(
            "POST", f"{self.base}/v1/messages/batches", content=stream(), **options
        )
        return self.read(batch)

    def read(self, batch: Any) -> dict[str, Any]:
        if not isinstance(batch, dict) or not batch.get("id"):
            raise ProviderError(
                "Anthropic answered with something that is not a message batch.", kind="malformed"
            )
        status = str(batch.get("processing_status") or "unknown")
        counts = {k: _int((batch.get("request_counts") or {}).get(k)) for k in _COUNTS}
        return {
            "id": batch["id"],
            "status": status,
            "ended": status == "ended",
            "total": sum(counts.values()),
            "succeeded": counts["succeeded"],
            "failed": counts["errored"] + counts["canceled"] + counts["expired"],
            "counts": counts,
            "results_url": batch.get("results_url"),
            "expires_at": batch.get("expires_at"),
        }

    async def poll(self, part: dict[str, Any]) -> dict[str, Any]:
        from . import http

        url = f"{self.base}/v1/messages/batches/{part['id']}"
        return self.read(await http.request_json("GET", url, **self._options()))

    async def cancel(self, part: dict[str, Any]) -> dict[str, Any]:
        from . import http

        url = f"{self.base}/v1/messages/batches/{part['id']}/cancel"
        return self.read(await http.request_json("POST", url, **self._options()))

    def results_url(self, part: dict[str, Any]) -> str:
        """``results_url`` when it is on the configured host, else the base URL's results path."""
        own = f"{self.base}/v1/messages/batches/{part['id']}/results"
        given = part.get("results_url")
        if not given:
            return own
        a, b = urlsplit(str(given)), urlsplit(self.base)
        same = (a.scheme, a.hostname, a.port) == (b.scheme, b.hostname, b.port)
        return str(given) if same else own

    async def rows(self, part: dict[str, Any], name: str) -> AsyncIterator[Outcome]:
        from . import http

        async for line in http.iter_json_lines("GET", self.results_url(part), **self._options()):
            if isinstance(line, dict):
                yield self.outcome(line, name)

    def outcome(self, line: dict[str, Any], name: str) -> Outcome:
        custom_id = line.get("custom_id")
        result = line.get("result") or {}
        kind = result.get("type")
        if kind == "succeeded":
            try:
                text, end, withheld = self.backend.parse(result.get("message"), name)
            except ProviderError as exc:
                return custom_id, "", None, exc
            return custom_id, text, end, withheld
        if kind == "errored":
            body = result.get("error") or {}
            inner = body.get("error") if isinstance(body.get("error"), dict) else body
            etype = str(inner.get("type") or "error")
            message = str(inner.get("message") or etype)
            return custom_id, "", None, ProviderError(f"Anthropic batch: {message} ({etype})", kind=etype)
        if kind == "canceled":
            error = ProviderError("Anthropic batch: canceled before it was processed.", kind="canceled")
            return custom_id, "", None, error
        if kind == "expired":
            error = ProviderError(
                "Anthropic batch: expired (not processed within 24 hours).",
                hint="retry_failed() sends it again.",
                kind="expired",
            )
            return custom_id, "", None, error
        return (
            custom_id,
            "",
            None,
            ProviderError(f"Anthropic batch: unknown result type {kind!r}.", kind="malformed"),
        )
