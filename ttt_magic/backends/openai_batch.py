"""OpenAI's Batch API, beside the wire protocol it carries (``openai.py``).

One part of a batch job is one OpenAI batch:

1. the request file (JSON Lines, one ``{"custom_id", "method", "url", "body"}``
   a row; ``body`` is exactly what ``OpenAIBackend.exchange`` builds for one
   answer) is uploaded with ``POST /v1/files`` (multipart, ``purpose=batch``),
   streamed from disk;
2. ``POST /v1/batches`` ``{input_file_id, endpoint, completion_window: "24h"}``;
3. ``GET /v1/batches/{id}`` until its status is terminal (``completed``,
   ``failed``, ``expired``, ``cancelled``); ``request_counts`` says how far it is;
4. ``GET /v1/files/{output_file_id}/content`` (answers) and the same for
   ``error_file_id`` (rows that failed, expired or were cancelled), read one
   line at a time (``http.iter_json_lines``).

Rows come back in any order; ``custom_id`` says which row a line answers. The
endpoint follows the model: ``/v1/chat/completions``, or ``/v1/responses`` for
the models only the Responses API serves (``exchange`` picks the URL).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from ..errors import ProviderError
from ..models import StreamEnd
from .template import Exchange

__all__ = ["MAX_BYTES", "MAX_ROWS", "TERMINAL", "OpenAIBatchService"]

#: OpenAI's limits per batch: 50,000 requests and a 200 MB input file (a margin is kept).
MAX_ROWS = 50_000
MAX_BYTES = 190 * 1024 * 1024
#: Statuses after which a batch changes no more.
TERMINAL = frozenset({"completed", "failed", "expired", "cancelled"})

Outcome = tuple[Any, str, "StreamEnd | None", "ProviderError | None"]


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


class OpenAIBatchService:
    """The Batch API of one ``OpenAIBackend`` (its base URL, key and wire format)."""

    engine = "openai"
    label = "OpenAI Batch API"
    max_rows = MAX_ROWS
    max_bytes = MAX_BYTES
    #: Rows come back with their ``custom_id``, in any order.
    ordered = False

    def __init__(self, backend: Any) -> None:
        self.backend = backend

    # -- requests

    def _options(self, *, content_type: bool = True) -> dict[str, Any]:
        from . import http

        headers = dict(self.backend._headers())
        if not content_type:  # multipart sets its own, with the boundary
            headers.pop("content-type", None)
        return {
            "headers": headers,
            "timeout": http.timeout_for(self.backend.backend_config),
            **self.backend._context(None),
        }

    @property
    def base(self) -> str:
        return str(self.backend.base_url)

    def endpoint(self, exchange: Exchange) -> str:
        """The batch ``endpoint`` of an exchange: its URL below the base, under ``/v1``."""
        url = exchange.url
        rest = url[len(self.base) :] if url.startswith(self.base) else "/" + url.rsplit("/", 1)[-1]
        return "/v1" + rest

    def line(self, custom_id: str, exchange: Exchange) -> dict[str, Any]:
        """One row of the request file."""
        return {
            "custom_id": custom_id,
            "method": "POST",
            "url": self.endpoint(exchange),
            "body": exchange.json,
        }

    @staticmethod
    def prompt_of(line: dict[str, Any]) -> Any:
        """The prompt of a request-file row (the last user message)."""
        body = line.get("body") or {}
        messages = body.get("messages")
        if isinstance(messages, list) and messages:
            return messages[-1].get("content")
        entries = body.get("input")
        if isinstance(entries, list) and entries:
            content = entries[-1].get("content")
            if isinstance(content, list):
                return "".join(p.get("text", "") for p in content if isinstance(p, dict))
            return content
        return entries

    async def submit(self, path: Path, *, rows: int, name: str, endpoint: str) -> dict[str, Any]:
        """Upload the part's request file, create the batch; the part's facts."""
        from . import http

        with open(path, "rb") as handle:
            uploaded = await http.request_json(
                "POST",
                f"{self.base}/files",
                files={"file": (path.name, handle, "application/jsonl")},
                data={"purpose": "batch"},
                **self._options(content_type=False),
            )
        file_id = uploaded.get("id") if isinstance(uploaded, dict) else None
        if not file_id:
            raise ProviderError("OpenAI accepted the request file but named no file id.", kind="malformed")
        batch = await http.request_json(
            "POST",
            f"{self.base}/batches",
            json={
                "input_file_id": file_id,
                "endpoint": endpoint,
                "completion_window": "24h",
                "metadata": {"ttt_magic_job": name[:512]},
            },
            **self._options(),
        )
        return self.read(batch)

    def read(self, batch: Any) -> dict[str, Any]:
        """The part's facts from a Batch object."""
        if not isinstance(batch, dict) or not batch.get("id"):
            raise ProviderError("OpenAI answered with something that is not a batch.", kind="malformed")
        status = str(batch.get("status") or "unknown")
        counts = batch.get("request_counts") or {}
        facts: dict[str, Any] = {
            "id": batch["id"],
            "status": status,
            "ended": status in TERMINAL,
            "total": _int(counts.get("total")),
            "succeeded": _int(counts.get("completed")),
            "failed": _int(counts.get("failed")),
            "input_file_id": batch.get("input_file_id"),
            "output_file_id": batch.get("output_file_id"),
            "error_file_id": batch.get("error_file_id"),
        }
        usage = batch.get("usage")
        if isinstance(usage, dict):
            facts["usage"] = {
                "tokens_in": _int(usage.get("input_tokens")),
                "tokens_out": _int(usage.get("output_tokens")),
            }
        errors = (batch.get("errors") or {}).get("data") if isinstance(batch.get("errors"), dict) else None
        if errors:
            first = errors[0] if isinstance(errors[0], dict) else {}
            where = f" (line {first['line']})" if first.get("line") else ""
            facts["error"] = f"OpenAI refused the batch{where}: {first.get('message') or first.get('code')}"
        return facts

    async def poll(self, part: dict[str, Any]) -> dict[str, Any]:
        from . import http

        return self.read(
            await http.request_json("GET", f"{self.base}/batches/{part['id']}", **self._options())
        )

    async def cancel(self, part: dict[str, Any]) -> dict[str, Any]:
        from . import http

        url = f"{self.base}/batches/{part['id']}/cancel"
        return self.read(await http.request_json("POST", url, **self._options()))

    # -- results

    def parser(self, name: str) -> Any:
        """``OpenAIBackend.parse`` for ``name``, with the API (chat or responses) decided once.

        The backend decides it per call from the catalogue; a results file has
        one model throughout, and deciding once per file instead of once per
        row is what keeps reading 100,000 rows fast.
        """
        from . import openai as wire
        from . import responses

        read = (
            responses.parse_response if self.backend.api_for(name) == "responses" else wire.parse_completion
        )
        label, secret = self.backend.provider_label, self.backend._key()

        def parse(body: Any) -> tuple[str, StreamEnd, ProviderError | None]:
            text, end = read(body, label, model=name, secret=secret)
            return text, end, wire.refusal_error(name, 0) if end.metadata.get("refusal") else None

        return parse

    async def rows(self, part: dict[str, Any], name: str) -> AsyncIterator[Outcome]:
        """(custom_id, text, end, error) of every row the part's result files hold, one at a time."""
        from . import http

        parse = self.parser(name)
        for key in ("output_file_id", "error_file_id"):
            file_id = part.get(key)
            if not file_id:
                continue
            url = f"{self.base}/files/{file_id}/content"
            async for line in http.iter_json_lines("GET", url, **self._options()):
                if isinstance(line, dict):
                    yield self.outcome(line, name, parse)

    def outcome(self, line: dict[str, Any], name: str, parse: Any = None) -> Outcome:
        """One result line read: the answer, or why the row failed."""
        from . import http

        custom_id = line.get("custom_id")
        error = line.get("error")
        response = line.get("response")
        if isinstance(response, dict) and response.get("status_code") == 200:
            try:
                text, end, withheld = (parse or self.parser(name))(response.get("body"))
            except ProviderError as exc:
                return custom_id, "", None, exc
            return custom_id, text, end, withheld
        if isinstance(response, dict) and response.get("status_code"):
            status = int(response["status_code"])
            return (
                custom_id,
                "",
                None,
                http.error_from_status(
                    status, json.dumps(response.get("body")), **self.backend._context(name)
                ),
            )
        if isinstance(error, dict):
            code = str(error.get("code") or "error")
            message = str(error.get("message") or code)
            return custom_id, "", None, ProviderError(f"OpenAI batch: {message} ({code})", kind=code)
        return (
            custom_id,
            "",
            None,
            ProviderError("OpenAI batch: a result line without an answer.", kind="malformed"),
        )
