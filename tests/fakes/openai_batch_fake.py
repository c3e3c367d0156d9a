"""A fake OpenAI Batch API (``/v1/files``, ``/v1/batches``) on the shared ``FakeServer`` harness.

Speaks the real wire format: a multipart upload with ``purpose=batch`` gives a
``file`` object; ``POST /v1/batches`` validates the file's lines (unique
``custom_id``, ``method`` POST, ``url`` equal to the batch's ``endpoint``, a
``body`` with a model) and answers a ``batch`` object; ``GET /v1/batches/{id}``
moves it on (``validating`` -> ``in_progress`` -> ``completed``, or
``expired`` / ``cancelling`` -> ``cancelled``) with ``request_counts``;
``GET /v1/files/{id}/content`` streams the output and error files, one JSON
line per row, in another order than the requests (``custom_id`` says which).
The official ``openai`` SDK reads it (tests/providers/test_batch_services.py).

How a batch goes is scripted by ``fake.behaviour`` (a ``Behaviour``, shared
with the Anthropic and Gemini batch fakes):

    fake.behaviour.polls = 2            # status reads answered "in progress" before the end
    fake.behaviour.fail = {3, 7}        # rows (row-N, or position) whose request fails
    fake.behaviour.expire_after = 5     # only 5 rows are processed, then the batch expires
    fake.behaviour.answer = fn          # fn(prompt, row) -> answer text
"""

from __future__ import annotations

import dataclasses
import json
import re
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from .server import FakeServer, Recorded, Reply

__all__ = ["Behaviour", "OpenAIBatchFake", "Progress", "usage_for"]

#: Result lines per chunk of a streamed results file.
LINES_PER_CHUNK = 500


def default_answer(prompt: str, row: int) -> str:
    return f"Answer {row}: {prompt[:48]}"


def usage_for(prompt: str, answer: str) -> tuple[int, int]:
    """The tokens the fake reports: about four characters a token, plus a message overhead."""
    return (len(prompt) + 3) // 4 + 7, max(1, (len(answer) + 3) // 4)


def row_number(custom_id: Any, position: int) -> int:
    match = re.fullmatch(r"row-(\d+)", str(custom_id or ""))
    return int(match.group(1)) if match else position


@dataclass
class Behaviour:
    """How the fake's batches go (see the module docstring)."""

    polls: int = 1
    fail: set[int] | Callable[[int], bool] = field(default_factory=set)
    expire_after: int | None = None
    answer: Callable[[str, int], str] = default_answer
    #: Results in another order than the requests (reversed); Gemini keeps the order.
    shuffle: bool = True

    def fails(self, row: int) -> bool:
        return self.fail(row) if callable(self.fail) else row in self.fail


@dataclass
class Row:
    custom_id: str
    row: int
    prompt: str
    model: str


class Progress:
    """One fake batch's rows and how far it has gone."""

    def __init__(self, rows: list[Row], behaviour: Behaviour) -> None:
        self.rows = rows
        #: Fixed when the batch is created: a later change to the fake's behaviour is for later batches.
        self.behaviour = dataclasses.replace(behaviour)
        self.reads = 0
        self.cancelled_at: int | None = None
        self.created = int(time.time())

    @property
    def total(self) -> int:
        return len(self.rows)

    def read(self) -> None:
        """One status read: the batch moves on."""
        self.reads += 1

    @property
    def ended(self) -> bool:
        return self.reads > self.behaviour.polls or (self.cancelled_at is not None and self.reads > 0)

    @property
    def expired(self) -> bool:
        return self.ended and self.cancelled_at is None and self.behaviour.expire_after is not None

    @property
    def processed(self) -> int:
        """Rows processed so far, in request order."""
        if self.cancelled_at is not None:
            return self.cancelled_at
        polls = max(1, self.behaviour.polls)
        done = self.total if self.ended else self.total * min(self.reads, polls) // (polls + 1)
        if self.behaviour.expire_after is not None:
            done = min(done, self.behaviour.expire_after)
        return done

    def cancel(self) -> None:
        if not self.ended and self.cancelled_at is None:
            self.cancelled_at = self.processed
            self.reads = 0

    def counts(self) -> tuple[int, int, int]:
        """(succeeded, failed, not processed) so far."""
        done = self.processed
        failed = sum(1 for r in self.rows[:done] if self.behaviour.fails(r.row))
        return done - failed, failed, self.total - done

    def outcome(self, position: int) -> str:
        """ "ok", "failed", or (for a row never processed) "expired"/"cancelled"/"pending"."""
        row = self.rows[position]
        if position < self.processed:
            return "failed" if self.behaviour.fails(row.row) else "ok"
        if self.cancelled_at is not None:
            return "cancelled"
        return "expired" if self.expired else "pending"

    def order(self) -> Iterator[int]:
        return reversed(range(self.total)) if self.behaviour.shuffle else iter(range(self.total))

    def answer(self, position: int) -> tuple[str, int, int]:
        row = self.rows[position]
        text = self.behaviour.answer(row.prompt, row.row)
        return (text, *usage_for(row.prompt, text))


def _prompt_text(content: Any) -> str:
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return "" if content is None else str(content)


def parse_multipart(request: Recorded) -> dict[str, tuple[str | None, bytes]]:
    """``{field: (filename or None, bytes)}`` of a multipart/form-data body."""
    ctype = request.headers.get("content-type", "")
    match = re.search(r'boundary="?([^";]+)"?', ctype)
    if not match or not ctype.startswith("multipart/form-data"):
        return {}
    boundary = b"--" + match.group(1).encode()
    out: dict[str, tuple[str | None, bytes]] = {}
    for chunk in request.body.split(boundary)[1:]:
        if chunk.startswith(b"--"):
            break
        head, _, data = chunk.lstrip(b"\r\n").partition(b"\r\n\r\n")
        text = head.decode("latin-1")
        name = re.search(r'name="([^"]*)"', text)
        filename = re.search(r'filename="([^"]*)"', text)
        if name:
            out[name.group(1)] = (
                filename.group(1) if filename else None,
                data[:-2] if data.endswith(b"\r\n") else data,
            )
    return out


def error_body(message: str, etype: str = "invalid_request_error", code: str | None = None) -> dict:
    return {"error": {"message": message, "type": etype, "param": None, "code": code}}


ENDPOINTS = ("/v1/chat/completions", "/v1/responses", "/v1/embeddings", "/v1/completions")


class OpenAIBatchFake(FakeServer):
    """See the module docstring."""

    def __init__(self, *, prefix: str = "/v1", api_key: str | None = None) -> None:
        super().__init__()
        self.prefix = prefix
        self.api_key = api_key
        self.behaviour = Behaviour()
        self.files: dict[str, dict[str, Any]] = {}
        self.batches: dict[str, dict[str, Any]] = {}
        self.progress: dict[str, Progress] = {}
        self.route("POST", f"{prefix}/files", self._upload)
        self.route("GET", f"{prefix}/files/{{file_id}}/content", self._content)
        self.route("GET", f"{prefix}/files/{{file_id}}", self._file)
        self.route("POST", f"{prefix}/batches", self._create)
        self.route("GET", f"{prefix}/batches/{{batch_id}}", self._retrieve)
        self.route("POST", f"{prefix}/batches/{{batch_id}}/cancel", self._cancel)

    @property
    def base_url(self) -> str:
        return self.url + self.prefix

    def _auth(self, request: Recorded) -> Reply | None:
        if self.api_key and request.headers.get("authorization") != f"Bearer {self.api_key}":
            return Reply(
                401,
                body=error_body("Incorrect API key provided.", "invalid_request_error", "invalid_api_key"),
            )
        return None

    # -- files

    def _upload(self, request: Recorded) -> Reply:
        denied = self._auth(request)
        if denied:
            return denied
        fields = parse_multipart(request)
        purpose = fields.get("purpose", (None, b""))[1].decode()
        if "file" not in fields or purpose != "batch":
            return Reply(400, body=error_body("A file and purpose=batch are required.", param="purpose"))
        filename, data = fields["file"]
        file_id = "file-" + uuid.uuid4().hex[:24]
        self.files[file_id] = {
            "id": file_id,
            "object": "file",
            "bytes": len(data),
            "created_at": int(time.time()),
            "filename": filename or "upload.jsonl",
            "purpose": "batch",
            "status": "processed",
            "_data": data,
        }
        return Reply(200, body=self._public(self.files[file_id]))

    @staticmethod
    def _public(obj: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in obj.items() if not k.startswith("_")}

    def _file(self, request: Recorded) -> Reply:
        found = self.files.get(request.params["file_id"])
        if found is None:
            return Reply(404, body=error_body("No such File object.", code="not_found"))
        return Reply(200, body=self._public(found))

    def _content(self, request: Recorded) -> Reply:
        denied = self._auth(request)
        if denied:
            return denied
        found = self.files.get(request.params["file_id"])
        if found is None:
            return Reply(404, body=error_body("No such File object.", code="not_found"))
        if "_data" in found:
            return Reply(200, body=found["_data"], content_type="application/octet-stream")
        batch_id, kind = found["_batch"], found["_kind"]
        return Reply(200, chunks=lambda: self._lines(batch_id, kind), content_type="application/octet-stream")

    def _lines(self, batch_id: str, kind: str) -> Iterator[bytes]:
        progress = self.progress[batch_id]
        batch = self.batches[batch_id]
        buffer: list[str] = []
        for position in progress.order():
            outcome = progress.outcome(position)
            if (outcome == "ok") != (kind == "output"):
                continue
            buffer.append(json.dumps(self._result_line(batch, progress, position, outcome)))
            if len(buffer) >= LINES_PER_CHUNK:
                yield ("\n".join(buffer) + "\n").encode()
                buffer = []
        if buffer:
            yield ("\n".join(buffer) + "\n").encode()

    def _result_line(self, batch: dict[str, Any], progress: Progress, position: int, outcome: str) -> dict:
        row = progress.rows[position]
        line: dict[str, Any] = {"id": f"batch_req_{batch['id'][6:14]}{position}", "custom_id": row.custom_id}
        if outcome == "ok":
            text, tin, tout = progress.answer(position)
            body = {
                "id": f"chatcmpl-{position}",
                "object": "chat.completion",
                "created": progress.created,
                "model": row.model,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": text, "refusal": None},
                        "logprobs": None,
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": tin, "completion_tokens": tout, "total_tokens": tin + tout},
                "system_fingerprint": None,
            }
            line["response"] = {"status_code": 200, "request_id": f"req_{position}", "body": body}
            line["error"] = None
        elif outcome == "failed":
            message = f"Invalid value in row {row.row}: the fake refuses this row."
            line["response"] = {
                "status_code": 400,
                "request_id": f"req_{position}",
                "body": error_body(message),
            }
            line["error"] = None
        else:
            code = "batch_expired" if outcome == "expired" else "batch_cancelled"
            text = (
                "This request could not be executed before the completion window expired."
                if outcome == "expired"
                else "This request was not executed because the batch was cancelled."
            )
            line["response"] = None
            line["error"] = {"code": code, "message": text}
        return line

    # -- batches

    def _create(self, request: Recorded) -> Reply:
        denied = self._auth(request)
        if denied:
            return denied
        body = request.json or {}
        file_id = body.get("input_file_id")
        endpoint = body.get("endpoint")
        if endpoint not in ENDPOINTS:
            return Reply(400, body=error_body(f"Invalid endpoint {endpoint!r}.", param="endpoint"))
        if body.get("completion_window") != "24h":
            return Reply(400, body=error_body("completion_window must be 24h.", param="completion_window"))
        found = self.files.get(file_id)
        if found is None or "_data" not in found:
            return Reply(400, body=error_body(f"No file {file_id!r}.", param="input_file_id"))
        batch_id = "batch_" + uuid.uuid4().hex[:24]
        rows, problem = self._read_input(found["_data"], endpoint)
        now = int(time.time())
        batch = {
            "id": batch_id,
            "object": "batch",
            "endpoint": endpoint,
            "errors": None,
            "input_file_id": file_id,
            "completion_window": "24h",
            "status": "validating",
            "output_file_id": None,
            "error_file_id": None,
            "created_at": now,
            "in_progress_at": None,
            "expires_at": now + 86400,
            "finalizing_at": None,
            "completed_at": None,
            "failed_at": None,
            "expired_at": None,
            "cancelling_at": None,
            "cancelled_at": None,
            "request_counts": {"total": 0, "completed": 0, "failed": 0},
            "metadata": body.get("metadata"),
        }
        if problem:
            batch["status"] = "failed"
            batch["failed_at"] = now
            batch["errors"] = {"object": "list", "data": [problem]}
        self.batches[batch_id] = batch
        self.progress[batch_id] = Progress(rows, self.behaviour)
        return Reply(200, body=batch)

    @staticmethod
    def _read_input(data: bytes, endpoint: str) -> tuple[list[Row], dict[str, Any] | None]:
        rows: list[Row] = []
        seen: set[str] = set()
        for number, raw in enumerate(data.splitlines(), 1):
            if not raw.strip():
                continue
            try:
                line = json.loads(raw)
            except ValueError:
                return [], {
                    "code": "invalid_json_line",
                    "message": "This line is not parseable as valid JSON.",
                    "line": number,
                }
            custom_id = line.get("custom_id")
            if not isinstance(custom_id, str) or custom_id in seen:
                return [], {
                    "code": "duplicate_custom_id",
                    "message": "The custom_id must be unique.",
                    "line": number,
                }
            seen.add(custom_id)
            if line.get("method") != "POST" or line.get("url") != endpoint:
                message = f"The url of every request must be the batch endpoint {endpoint}."
                return [], {"code": "mismatched_endpoint", "message": message, "line": number}
            body = line.get("body") or {}
            if not body.get("model") or body.get("stream"):
                message = "Each body needs a model, and streaming is not supported in batches."
                return [], {"code": "invalid_request", "message": message, "line": number}
            messages = body.get("messages") or []
            prompt = (
                _prompt_text(messages[-1].get("content")) if messages else _prompt_text(body.get("input"))
            )
            rows.append(Row(custom_id, row_number(custom_id, len(rows)), prompt, body["model"]))
        if not rows:
            return [], {"code": "empty_file", "message": "The input file is empty.", "line": None}
        return rows, None

    def _retrieve(self, request: Recorded) -> Reply:
        denied = self._auth(request)
        if denied:
            return denied
        batch_id = request.params["batch_id"]
        batch = self.batches.get(batch_id)
        if batch is None:
            return Reply(404, body=error_body(f"No batch {batch_id!r}.", code="not_found"))
        if batch["status"] not in ("failed", "completed", "expired", "cancelled"):
            self._advance(batch)
        return Reply(200, body=batch)

    def _advance(self, batch: dict[str, Any]) -> None:
        progress = self.progress[batch["id"]]
        progress.read()
        now = int(time.time())
        succeeded, failed, left = progress.counts()
        batch["request_counts"] = {"total": progress.total, "completed": succeeded, "failed": failed}
        if not progress.ended:
            if progress.cancelled_at is None:
                batch["status"] = "in_progress"
                batch["in_progress_at"] = batch["in_progress_at"] or now
            return
        if progress.cancelled_at is not None:
            batch["status"], batch["cancelled_at"] = "cancelled", now
        elif progress.expired:
            batch["status"], batch["expired_at"] = "expired", now
        else:
            batch["status"], batch["completed_at"] = "completed", now
        batch["request_counts"]["failed"] = failed + left
        batch["finalizing_at"] = now
        if succeeded:
            batch["output_file_id"] = self._result_file(batch["id"], "output")
        if failed + left:
            batch["error_file_id"] = self._result_file(batch["id"], "error")
        tin = tout = 0
        for position in range(progress.processed):
            if progress.outcome(position) == "ok":
                _, a, b = progress.answer(position)
                tin, tout = tin + a, tout + b
        batch["usage"] = {
            "input_tokens": tin,
            "output_tokens": tout,
            "total_tokens": tin + tout,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens_details": {"reasoning_tokens": 0},
        }

    def _result_file(self, batch_id: str, kind: str) -> str:
        file_id = "file-" + uuid.uuid4().hex[:24]
        self.files[file_id] = {
            "id": file_id,
            "object": "file",
            "bytes": 0,
            "created_at": int(time.time()),
            "filename": f"batch_{kind}.jsonl",
            "purpose": "batch_output",
            "status": "processed",
            "_batch": batch_id,
            "_kind": kind,
        }
        return file_id

    def _cancel(self, request: Recorded) -> Reply:
        denied = self._auth(request)
        if denied:
            return denied
        batch = self.batches.get(request.params["batch_id"])
        if batch is None:
            return Reply(404, body=error_body("No such batch.", code="not_found"))
        if batch["status"] in ("validating", "in_progress", "finalizing"):
            self.progress[batch["id"]].cancel()
            batch["status"], batch["cancelling_at"] = "cancelling", int(time.time())
        return Reply(200, body=batch)
