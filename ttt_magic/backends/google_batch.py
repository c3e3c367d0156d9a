"""Gemini's batch mode, beside the ``generateContent`` protocol it carries (``google.py``).

One part of a batch job is one Gemini batch with inlined requests:

1. ``POST /v1beta/models/{model}:batchGenerateContent`` ``{"batch": {"displayName",
   "inputConfig": {"requests": {"requests": [{"request", "metadata": {"key"}}]}}}}``,
   where ``request`` is exactly what ``GeminiBackend.exchange`` builds for one
   answer; the body is streamed from the part's request file on disk. The
   answer is a long-running operation named ``batches/{id}``;
2. ``GET /v1beta/batches/{id}`` until the operation is ``done`` (or its state
   is terminal); ``metadata.batchStats`` says how far it is;
3. the answers are in that operation: ``response.inlinedResponses.inlinedResponses``
   (also ``metadata.output``), one ``{"response"}`` or ``{"error"}`` per request,
   in the order of the requests.

``POST /v1beta/batches/{id}:cancel`` cancels it. Inlined requests are limited
to about 20 MB a batch, so a part holds at most that much; a larger job is
several batches. The results of a part arrive as one JSON document, so
reading them holds one part (at most about 20 MB of requests' answers) at a
time, not one row: Gemini's file mode (requests and answers as uploaded JSON
Lines files) would stream, and is not used yet.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from ..errors import ProviderError
from ..models import StreamEnd
from .anthropic_batch import array_body
from .template import Exchange

__all__ = ["MAX_BYTES", "MAX_ROWS", "TERMINAL", "GeminiBatchService"]

#: Inlined requests: about 20 MB a batch (a margin is kept).
MAX_BYTES = 19 * 1024 * 1024
MAX_ROWS = 100_000
TERMINAL = frozenset(
    {"BATCH_STATE_SUCCEEDED", "BATCH_STATE_FAILED", "BATCH_STATE_CANCELLED", "BATCH_STATE_EXPIRED"}
)

Outcome = tuple[Any, str, "StreamEnd | None", "ProviderError | None"]


def _count(value: Any) -> int:
    """batchStats counts are int64, which JSON carries as strings."""
    try:
        return max(0, int(value))
    except (TypeError, ValueError):
        return 0


class GeminiBatchService:
    """Gemini's batch mode for one ``GeminiBackend``."""

    engine = "google"
    label = "Gemini batch mode"
    max_rows = MAX_ROWS
    max_bytes = MAX_BYTES
    #: Answers come back in the order of the requests (their key is not always echoed).
    ordered = True

    def __init__(self, backend: Any) -> None:
        self.backend = backend

    @property
    def root(self) -> str:
        return f"{self.backend.base_url}/{self.backend.api_version}"

    def _options(self) -> dict[str, Any]:
        from . import http

        return {
            "headers": dict(self.backend._headers()),
            "timeout": http.timeout_for(self.backend.backend_config),
            **self.backend._context(None),
        }

    def endpoint(self, exchange: Exchange) -> str:
        """The batch URL of an exchange: its ``:generateContent`` turned into ``:batchGenerateContent``."""
        return exchange.url.rsplit(":", 1)[0] + ":batchGenerateContent"

    def line(self, custom_id: str, exchange: Exchange) -> dict[str, Any]:
        return {"request": exchange.json, "metadata": {"key": custom_id}}

    @staticmethod
    def prompt_of(line: dict[str, Any]) -> Any:
        contents = (line.get("request") or {}).get("contents") or []
        if not contents:
            return None
        return "".join(p.get("text", "") for p in contents[-1].get("parts") or [] if isinstance(p, dict))

    async def submit(self, path: Path, *, rows: int, name: str, endpoint: str) -> dict[str, Any]:
        import json

        from . import http

        label = json.dumps(name[:128])
        head = '{"batch":{"displayName":' + label + ',"inputConfig":{"requests":{"requests":['
        length, stream = array_body(path, head.encode(), b"]}}}}")
        options = self._options()
        options["headers"]["content-length"] = str(length)
        async with self.backend._errors():
            operation = await http.request_json("POST", endpoint, content=stream(), **options)
        return self.read(operation)

    def read(self, operation: Any) -> dict[str, Any]:
        if not isinstance(operation, dict) or not operation.get("name"):
            raise ProviderError(
                "Gemini answered with something that is not a batch operation.", kind="malformed"
            )
        meta = operation.get("metadata") or {}
        state = str(meta.get("state") or ("BATCH_STATE_SUCCEEDED" if operation.get("done") else "unknown"))
        stats = meta.get("batchStats") or {}
        facts: dict[str, Any] = {
            "id": operation["name"],
            "status": state,
            "ended": bool(operation.get("done")) or state in TERMINAL,
            "total": _count(stats.get("requestCount")),
            "succeeded": _count(stats.get("successfulRequestCount")),
            "failed": _count(stats.get("failedRequestCount")),
        }
        error = operation.get("error")
        if isinstance(error, dict) and error.get("message"):
            facts["error"] = f"Gemini refused the batch: {error['message']}"
        return facts

    async def poll(self, part: dict[str, Any]) -> dict[str, Any]:
        from . import http

        async with self.backend._errors():
            operation = await http.request_json("GET", f"{self.root}/{part['id']}", **self._options())
        return self.read(operation)

    async def cancel(self, part: dict[str, Any]) -> dict[str, Any]:
        from . import http

        async with self.backend._errors():
            await http.request_json("POST", f"{self.root}/{part['id']}:cancel", **self._options())
        return await self.poll(part)

    async def rows(self, part: dict[str, Any], name: str) -> AsyncIterator[Outcome]:
        """(key or position in the part, text, end, error) of every answered request."""
        from . import http

        async with self.backend._errors():
            operation = await http.request_json("GET", f"{self.root}/{part['id']}", **self._options())
        if not isinstance(operation, dict):
            return
        found = (operation.get("response") or {}).get("inlinedResponses") or (
            (operation.get("metadata") or {}).get("output") or {}
        ).get("inlinedResponses")
        items = (found or {}).get("inlinedResponses") if isinstance(found, dict) else None
        if not items and (operation.get("response") or {}).get("responsesFile"):
            raise ProviderError(
                "Gemini put this batch's answers in a file, which ttt_magic does not read yet.",
                hint="Keep batches of inlined requests (each part stays under 20 MB).",
                kind="unsupported",
            )
        for position, item in enumerate(items or ()):
            if isinstance(item, dict):
                key = (item.get("metadata") or {}).get("key")
                yield self.outcome(item, name, key if isinstance(key, str) else position)

    def outcome(self, item: dict[str, Any], name: str, ref: Any) -> Outcome:
        from .google import error_from_body

        if isinstance(item.get("error"), dict):
            return ref, "", None, error_from_body(item["error"], model=name)
        try:
            text, end, withheld = self.backend.parse(item.get("response"), name)
        except ProviderError as exc:
            return ref, "", None, exc
        return ref, text, end, withheld
