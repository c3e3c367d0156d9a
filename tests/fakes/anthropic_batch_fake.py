"""A fake Anthropic Message Batches API (``/v1/messages/batches``) on the shared ``FakeServer`` harness.

Speaks the real wire format: ``POST /v1/messages/batches`` takes ``{"requests":
[{"custom_id", "params"}]}`` (custom ids unique and ``^[a-zA-Z0-9_-]{1,64}$``,
params with model, max_tokens and messages, no streaming) and answers a
``message_batch``; ``GET /v1/messages/batches/{id}`` moves it on
(``in_progress`` -> ``ended``, or ``canceling``) with ``request_counts``
(processing, succeeded, errored, canceled, expired) and, once ended, a
``results_url``; the results are JSON Lines, one ``{"custom_id", "result":
{"type": succeeded|errored|canceled|expired}}`` a row, in another order than
the requests. ``POST .../cancel`` cancels. The official ``anthropic`` SDK
reads it (tests/providers/test_batch_services.py).

Scripted like the other batch fakes by ``fake.behaviour`` (see ``openai_batch_fake.Behaviour``).
"""

from __future__ import annotations

import datetime as _dt
import json
import re
import uuid
from collections.abc import Iterator
from typing import Any

from .openai_batch_fake import LINES_PER_CHUNK, Behaviour, Progress, Row, _prompt_text, row_number
from .server import FakeServer, Recorded, Reply

__all__ = ["AnthropicBatchFake"]

_CUSTOM_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


def _iso(offset: float = 0.0) -> str:
    when = _dt.datetime.now(_dt.timezone.utc) + _dt.timedelta(seconds=offset)
    return when.isoformat().replace("+00:00", "Z")


def error(status: int, etype: str, message: str) -> Reply:
    return Reply(status, body={"type": "error", "error": {"type": etype, "message": message}})


class AnthropicBatchFake(FakeServer):
    """See the module docstring."""

    def __init__(self, *, api_key: str | None = None) -> None:
        super().__init__()
        self.api_key = api_key
        self.behaviour = Behaviour()
        self.batches: dict[str, dict[str, Any]] = {}
        self.progress: dict[str, Progress] = {}
        self.params: dict[str, list[dict[str, Any]]] = {}
        self.route("POST", "/v1/messages/batches", self._create)
        self.route("GET", "/v1/messages/batches/{batch_id}", self._retrieve)
        self.route("GET", "/v1/messages/batches/{batch_id}/results", self._results)
        self.route("POST", "/v1/messages/batches/{batch_id}/cancel", self._cancel)

    def _auth(self, request: Recorded) -> Reply | None:
        bearer = request.headers.get("authorization", "").removeprefix("Bearer ")  # newer SDKs send this
        if self.api_key and (request.headers.get("x-api-key") or bearer) != self.api_key:
            return error(401, "authentication_error", "invalid x-api-key")
        if not request.headers.get("anthropic-version"):
            return error(400, "invalid_request_error", "anthropic-version: header is required")
        return None

    def _create(self, request: Recorded) -> Reply:
        denied = self._auth(request)
        if denied:
            return denied
        body = request.json
        requests = body.get("requests") if isinstance(body, dict) else None
        if not isinstance(requests, list) or not requests:
            return error(400, "invalid_request_error", "requests: at least one request is required")
        rows: list[Row] = []
        seen: set[str] = set()
        kept: list[dict[str, Any]] = []
        for n, item in enumerate(requests):
            custom_id = item.get("custom_id")
            params = item.get("params") or {}
            if not isinstance(custom_id, str) or not _CUSTOM_ID.match(custom_id) or custom_id in seen:
                return error(
                    400,
                    "invalid_request_error",
                    f"requests.{n}.custom_id: must be unique and match the pattern",
                )
            seen.add(custom_id)
            missing = [k for k in ("model", "max_tokens", "messages") if k not in params]
            if missing or params.get("stream"):
                what = (
                    f"requests.{n}.params.{missing[0]}: Field required"
                    if missing
                    else "stream is not supported"
                )
                return error(400, "invalid_request_error", what)
            prompt = _prompt_text(params["messages"][-1].get("content"))
            rows.append(Row(custom_id, row_number(custom_id, n), prompt, params["model"]))
            kept.append(params)
        batch_id = "msgbatch_" + uuid.uuid4().hex[:24]
        self.batches[batch_id] = {
            "id": batch_id,
            "type": "message_batch",
            "processing_status": "in_progress",
            "request_counts": {
                "processing": len(rows),
                "succeeded": 0,
                "errored": 0,
                "canceled": 0,
                "expired": 0,
            },
            "ended_at": None,
            "created_at": _iso(),
            "expires_at": _iso(86400),
            "archived_at": None,
            "cancel_initiated_at": None,
            "results_url": None,
        }
        self.progress[batch_id] = Progress(rows, self.behaviour)
        self.params[batch_id] = kept
        return Reply(200, body=self.batches[batch_id])

    def _retrieve(self, request: Recorded) -> Reply:
        denied = self._auth(request)
        if denied:
            return denied
        batch = self.batches.get(request.params["batch_id"])
        if batch is None:
            return error(404, "not_found_error", "batch not found")
        if batch["processing_status"] != "ended":
            self._advance(batch)
        return Reply(200, body=batch)

    def _advance(self, batch: dict[str, Any]) -> None:
        progress = self.progress[batch["id"]]
        progress.read()
        succeeded, failed, left = progress.counts()
        counts = {"processing": left, "succeeded": succeeded, "errored": failed, "canceled": 0, "expired": 0}
        if progress.ended:
            counts["processing"] = 0
            counts["canceled" if progress.cancelled_at is not None else "expired"] = left
            batch["processing_status"] = "ended"
            batch["ended_at"] = _iso()
            batch["results_url"] = f"{self.url}/v1/messages/batches/{batch['id']}/results"
        batch["request_counts"] = counts

    def _results(self, request: Recorded) -> Reply:
        denied = self._auth(request)
        if denied:
            return denied
        batch = self.batches.get(request.params["batch_id"])
        if batch is None or batch["processing_status"] != "ended":
            return error(404, "not_found_error", "results are not available until the batch has ended")
        return Reply(200, chunks=lambda: self._lines(batch["id"]), content_type="application/binary")

    def _lines(self, batch_id: str) -> Iterator[bytes]:
        progress = self.progress[batch_id]
        buffer: list[str] = []
        for position in progress.order():
            buffer.append(json.dumps(self._line(progress, position)))
            if len(buffer) >= LINES_PER_CHUNK:
                yield ("\n".join(buffer) + "\n").encode()
                buffer = []
        if buffer:
            yield ("\n".join(buffer) + "\n").encode()

    @staticmethod
    def _line(progress: Progress, position: int) -> dict[str, Any]:
        row = progress.rows[position]
        outcome = progress.outcome(position)
        if outcome == "ok":
            text, tin, tout = progress.answer(position)
            result: dict[str, Any] = {
                "type": "succeeded",
                "message": {
                    "id": f"msg_{position:08d}",
                    "type": "message",
                    "role": "assistant",
                    "model": row.model,
                    "content": [{"type": "text", "text": text}],
                    "stop_reason": "end_turn",
                    "stop_sequence": None,
                    "usage": {"input_tokens": tin, "output_tokens": tout},
                },
            }
        elif outcome == "failed":
            result = {
                "type": "errored",
                "error": {
                    "type": "error",
                    "error": {
                        "type": "invalid_request_error",
                        "message": f"row {row.row}: the fake refuses this row",
                    },
                },
            }
        elif outcome == "cancelled":
            result = {"type": "canceled"}
        else:
            result = {"type": "expired"}
        return {"custom_id": row.custom_id, "result": result}

    def _cancel(self, request: Recorded) -> Reply:
        denied = self._auth(request)
        if denied:
            return denied
        batch = self.batches.get(request.params["batch_id"])
        if batch is None:
            return error(404, "not_found_error", "batch not found")
        if batch["processing_status"] == "in_progress":
            self.progress[batch["id"]].cancel()
            batch["processing_status"] = "canceling"
            batch["cancel_initiated_at"] = _iso()
        return Reply(200, body=batch)
