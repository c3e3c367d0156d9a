"""A fake Gemini batch mode (``models/{model}:batchGenerateContent``, ``batches/{id}``) on ``FakeServer``.

Speaks the real wire format of the Gemini Developer API: ``POST
/{version}/models/{model}:batchGenerateContent`` takes ``{"batch":
{"displayName", "inputConfig": {"requests": {"requests": [{"request",
"metadata": {"key"}}]}}}}`` and answers a long-running operation named
``batches/{id}`` whose ``metadata`` is the batch (``state``,
``batchStats`` with int64 counts as strings); ``GET /{version}/batches/{id}``
moves it on (``BATCH_STATE_PENDING`` -> ``RUNNING`` -> ``SUCCEEDED``, or
``EXPIRED`` / ``CANCELLED``); once done the operation carries the answers of
the requests it reached, in request order, in ``response.inlinedResponses.inlinedResponses`` and
``metadata.output.inlinedResponses`` (as the service does): one
``{"response": GenerateContentResponse, "metadata"}`` or ``{"error"}`` each.
``POST /{version}/batches/{id}:cancel`` cancels. The official ``google-genai``
SDK reads it (tests/providers/test_batch_services.py).

Scripted by ``fake.behaviour`` (see ``openai_batch_fake.Behaviour``; results
keep the request order); ``fake.echo_keys = False`` leaves ``metadata`` out of
the answers, as the service sometimes does. ``GET`` takes Google's ``fields``
parameter (``?fields=name,metadata.state``: only those paths);
``fake.fields_supported = False`` refuses it with HTTP 400 instead.
"""

from __future__ import annotations

import datetime as _dt
import uuid
from typing import Any

from .openai_batch_fake import Behaviour, Progress, Row, row_number
from .server import FakeServer, Recorded, Reply

__all__ = ["GeminiBatchFake"]

BATCH_TYPE = "type.googleapis.com/google.ai.generativelanguage.v1beta.GenerateContentBatch"
OUTPUT_TYPE = "type.googleapis.com/google.ai.generativelanguage.v1beta.GenerateContentBatchOutput"


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat().replace("+00:00", "Z")


def error(status: int, code: str, message: str) -> Reply:
    return Reply(status, body={"error": {"code": status, "message": message, "status": code}})


def partial(value: dict[str, Any], fields: str) -> dict[str, Any]:
    """``value`` cut down to the comma-separated dotted paths of ``fields``."""
    out: dict[str, Any] = {}
    for path in (p.strip() for p in fields.split(",") if p.strip()):
        source, target, keys = value, out, path.split(".")
        for key in keys[:-1]:
            source = source.get(key) if isinstance(source, dict) else None
            if not isinstance(source, dict):
                break
            target = target.setdefault(key, {})
        else:
            if isinstance(source, dict) and keys[-1] in source:
                target[keys[-1]] = source[keys[-1]]
    return out


class GeminiBatchFake(FakeServer):
    """See the module docstring."""

    def __init__(self, *, api_key: str | None = None) -> None:
        super().__init__()
        self.api_key = api_key
        self.behaviour = Behaviour(shuffle=False)
        self.echo_keys = True
        #: Google's ``fields`` system parameter (a partial answer); False answers it with HTTP 400.
        self.fields_supported = True
        self.batches: dict[str, dict[str, Any]] = {}
        self.progress: dict[str, Progress] = {}
        self.requests_of: dict[str, list[dict[str, Any]]] = {}
        self.route("POST", "/{version}/models/{model}:batchGenerateContent", self._create)
        self.route("POST", "/{version}/batches/{batch_id}:cancel", self._cancel)
        self.route("GET", "/{version}/batches/{batch_id}", self._get)

    def _auth(self, request: Recorded) -> Reply | None:
        if self.api_key and request.headers.get("x-goog-api-key") != self.api_key:
            return error(400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key.")
        return None

    def _create(self, request: Recorded) -> Reply:
        denied = self._auth(request)
        if denied:
            return denied
        batch = (request.json or {}).get("batch") or {}
        items = ((batch.get("inputConfig") or {}).get("requests") or {}).get("requests")
        if not isinstance(items, list) or not items:
            return error(
                400, "INVALID_ARGUMENT", "batch.input_config.requests: at least one request is required"
            )
        rows: list[Row] = []
        for n, item in enumerate(items):
            contents = (item.get("request") or {}).get("contents")
            if not isinstance(contents, list) or not contents:
                return error(400, "INVALID_ARGUMENT", f"requests[{n}].request.contents is required")
            key = (item.get("metadata") or {}).get("key")
            prompt = "".join(p.get("text", "") for p in contents[-1].get("parts") or [])
            rows.append(Row(str(key), row_number(key, n), prompt, request.params["model"]))
        batch_id = uuid.uuid4().hex[:16]
        name = f"batches/{batch_id}"
        meta = {
            "@type": BATCH_TYPE,
            "model": f"models/{request.params['model']}",
            "displayName": batch.get("displayName") or "",
            "name": name,
            "createTime": _now(),
            "updateTime": _now(),
            "state": "BATCH_STATE_PENDING",
            "batchStats": {"requestCount": str(len(rows)), "pendingRequestCount": str(len(rows))},
        }
        self.batches[batch_id] = {"name": name, "metadata": meta, "done": False}
        self.progress[batch_id] = Progress(rows, self.behaviour)
        self.requests_of[batch_id] = items
        return Reply(200, body=self.batches[batch_id])

    def _get(self, request: Recorded) -> Reply:
        denied = self._auth(request)
        if denied:
            return denied
        operation = self.batches.get(request.params["batch_id"])
        if operation is None:
            return error(404, "NOT_FOUND", "Requested entity was not found.")
        if not operation["done"]:
            self._advance(request.params["batch_id"], operation)
        fields = request.query.get("fields")
        if fields is None:
            return Reply(200, body=operation)
        if not self.fields_supported:
            return error(400, "INVALID_ARGUMENT", 'Unknown name "fields": Cannot bind query parameter.')
        return Reply(200, body=partial(operation, fields))

    def _advance(self, batch_id: str, operation: dict[str, Any]) -> None:
        progress = self.progress[batch_id]
        progress.read()
        meta = operation["metadata"]
        succeeded, failed, left = progress.counts()
        stats = {"requestCount": str(progress.total)}
        if succeeded:
            stats["successfulRequestCount"] = str(succeeded)
        if failed:
            stats["failedRequestCount"] = str(failed)
        if left:
            stats["pendingRequestCount"] = str(left)
        meta["batchStats"] = stats
        meta["updateTime"] = _now()
        if not progress.ended:
            meta["state"] = "BATCH_STATE_RUNNING"
            return
        operation["done"] = True
        meta["endTime"] = _now()
        if progress.cancelled_at is not None:
            meta["state"] = "BATCH_STATE_CANCELLED"
        elif progress.expired:
            meta["state"] = "BATCH_STATE_EXPIRED"  # the rows it reached keep their answers
        else:
            meta["state"] = "BATCH_STATE_SUCCEEDED"
        answers = [
            self._item(progress, p) for p in range(progress.total) if progress.outcome(p) in ("ok", "failed")
        ]
        output = {"inlinedResponses": {"inlinedResponses": answers}}
        meta["output"] = output
        operation["response"] = {"@type": OUTPUT_TYPE, **output}

    def _item(self, progress: Progress, position: int) -> dict[str, Any]:
        row = progress.rows[position]
        item: dict[str, Any]
        if progress.outcome(position) == "failed":
            item = {
                "error": {
                    "code": 400,
                    "message": f"row {row.row}: request is invalid",
                    "status": "INVALID_ARGUMENT",
                }
            }
        else:
            text, tin, tout = progress.answer(position)
            item = {
                "response": {
                    "candidates": [
                        {
                            "content": {"parts": [{"text": text}], "role": "model"},
                            "finishReason": "STOP",
                            "index": 0,
                        }
                    ],
                    "usageMetadata": {
                        "promptTokenCount": tin,
                        "candidatesTokenCount": tout,
                        "totalTokenCount": tin + tout,
                    },
                    "modelVersion": row.model,
                    "responseId": f"resp-{position}",
                }
            }
        if self.echo_keys:
            item["metadata"] = {"key": row.custom_id}
        return item

    def _cancel(self, request: Recorded) -> Reply:
        denied = self._auth(request)
        if denied:
            return denied
        operation = self.batches.get(request.params["batch_id"])
        if operation is None:
            return error(404, "NOT_FOUND", "Requested entity was not found.")
        if not operation["done"]:
            self.progress[request.params["batch_id"]].cancel()
        return Reply(200, body={})
