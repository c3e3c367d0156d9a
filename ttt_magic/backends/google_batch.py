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
several batches. The answers of a part arrive inside one JSON document; it
is read as it streams, one answer at a time (``inlined_items``), and polls ask
only for the state and counts (``fields=``), so memory stays one answer.
Gemini's file mode (requests and answers as uploaded JSON Lines files) is
not used.
"""

from __future__ import annotations

import codecs
import json
import re
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


#: What a poll asks for (Google's ``fields`` parameter): not the answers a done batch carries.
POLL_FIELDS = "name,done,error,metadata.state,metadata.batchStats,metadata.model"

_ARRAY = re.compile(r'"inlinedResponses"\s*:\s*\[')
_SKIP = re.compile(r"[\s,]*")


async def inlined_items(chunks: AsyncIterator[bytes]) -> AsyncIterator[Any]:
    """The items of the first ``"inlinedResponses": [...]`` array of a JSON document, as it streams.

    The array is found by its key followed by ``[`` (inside a JSON string a
    quote is always escaped, so the pattern cannot come from an answer's
    text); its items are decoded one at a time and the rest of the document
    is not read. The operation holds the array twice (``response`` and
    ``metadata.output``); the first is taken.
    """
    decoder = json.JSONDecoder()
    text = codecs.getincrementaldecoder("utf-8")()
    buffer, found = "", False
    async for chunk in chunks:
        buffer += text.decode(chunk)
        if not found:
            match = _ARRAY.search(buffer)
            if match is None:
                buffer = buffer[-64:]
                continue
            found, buffer = True, buffer[match.end() :]
        position = 0
        while True:
            position = _SKIP.match(buffer, position).end()
            if position < len(buffer) and buffer[position] == "]":
                return
            try:
                item, position_after = decoder.raw_decode(buffer, position)
            except ValueError:
                break  # the item is not all here yet
            position = position_after
            yield item
        buffer = buffer[position:]


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
        #: Set once the server refused ``fields=``: polls then read the whole operation.
        self.whole_polls = False

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
        """The operation's state and counts only (``fields=``): a done batch carries every answer.

        Google's APIs take the ``fields`` system parameter for a partial answer;
        a server that refuses it (HTTP 400) is asked for the whole operation,
        and not offered ``fields`` again.
        """
        from . import http

        url = f"{self.root}/{part['id']}"
        if not self.whole_polls:
            try:
                async with self.backend._errors():
                    operation = await http.request_json(
                        "GET", url, params={"fields": POLL_FIELDS}, **self._options()
                    )
                return self.read(operation)
            except ProviderError as exc:
                if exc.status != 400 or exc.kind == "auth":
                    raise
                self.whole_polls = True
        async with self.backend._errors():
            operation = await http.request_json("GET", url, **self._options())
        return self.read(operation)

    async def cancel(self, part: dict[str, Any]) -> dict[str, Any]:
        from . import http

        async with self.backend._errors():
            await http.request_json("POST", f"{self.root}/{part['id']}:cancel", **self._options())
        return await self.poll(part)

    async def rows(self, part: dict[str, Any], name: str) -> AsyncIterator[Outcome]:
        """(key or position in the part, text, end, error) of every answered request, one at a time.

        The answers are an array inside the operation's JSON; it is read as it
        arrives (``inlined_items``), one answer decoded at a time, so memory
        stays one answer however large the batch.
        """
        from . import http

        position = 0
        url = f"{self.root}/{part['id']}"
        async with self.backend._errors(), http.stream_request("GET", url, **self._options()) as response:
            async for item in inlined_items(response.aiter_bytes()):
                if isinstance(item, dict):
                    key = (item.get("metadata") or {}).get("key")
                    yield self.outcome(item, name, key if isinstance(key, str) else position)
                position += 1
        if position:
            return
        async with self.backend._errors():
            operation = await http.request_json("GET", f"{self.root}/{part['id']}", **self._options())
        if isinstance(operation, dict) and (operation.get("response") or {}).get("responsesFile"):
            raise ProviderError(
                "Gemini put this batch's answers in a file, which ttt_magic does not read yet.",
                hint="Keep batches of inlined requests (each part stays under 20 MB).",
                kind="unsupported",
            )

    def outcome(self, item: dict[str, Any], name: str, ref: Any) -> Outcome:
        from .google import error_from_body

        if isinstance(item.get("error"), dict):
            return ref, "", None, error_from_body(item["error"], model=name)
        try:
            text, end, withheld = self.backend.parse(item.get("response"), name)
        except ProviderError as exc:
            return ref, "", None, exc
        return ref, text, end, withheld
