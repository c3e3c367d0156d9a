"""OpenAI's Responses API (``POST /v1/responses``) for ``OpenAIFake``: the wire format and its faults.

Streamed, as OpenAI sends it: typed SSE events (``event: <type>`` and a
``data`` object whose ``type`` says the same, with a ``sequence_number``):
``response.created``, ``response.in_progress``, ``response.output_item.added``,
``response.content_part.added``, one ``response.output_text.delta`` per piece
(``response.refusal.delta`` for a refusal), the ``.done`` events, then
``response.completed`` carrying the whole response and its usage
(``input_tokens``, ``output_tokens``, ``output_tokens_details.reasoning_tokens``).
No ``[DONE]``. Not streamed: the ``response`` object itself. Faults (through
``OpenAIFake.fail_next``): status, reset, close, stall, malformed, truncated
(no final event), error_event (an ``error`` event), failed
(``response.failed``), incomplete (``response.incomplete``, reason
``max_output_tokens``), empty (HTTP 200, no event), drip. The official SDK's
``client.responses.create`` reads all of it (see test_responses.py).
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

from .server import Recorded, Reply

__all__ = ["RESPONSE_FAULTS", "responses_reply"]

RESPONSE_FAULTS = (
    "status",
    "reset",
    "close",
    "stall",
    "malformed",
    "truncated",
    "error_event",
    "failed",
    "incomplete",
    "empty",
    "drip",
)


def _event(data: dict[str, Any]) -> str:
    return f"event: {data['type']}\ndata: {json.dumps(data)}\n\n"


def _usage(fake: Any) -> dict[str, Any]:
    pin, pout = fake.usage["prompt_tokens"], fake.usage["completion_tokens"]
    return {
        "input_tokens": pin,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": pout,
        "output_tokens_details": {"reasoning_tokens": fake.reasoning_tokens},
        "total_tokens": pin + pout,
    }


def _response(
    fake: Any,
    body: dict[str, Any],
    *,
    rid: str,
    created: int,
    status: str,
    output: list[dict[str, Any]],
    usage: dict[str, Any] | None,
    error: dict[str, Any] | None = None,
    incomplete: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "id": rid,
        "object": "response",
        "created_at": created,
        "status": status,
        "error": error,
        "incomplete_details": incomplete,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "model": body.get("model"),
        "output": output,
        "parallel_tool_calls": True,
        "previous_response_id": None,
        "reasoning": {"effort": (body.get("reasoning") or {}).get("effort"), "summary": None},
        "store": body.get("store", True),
        "temperature": body.get("temperature", 1.0),
        "text": body.get("text") or {"format": {"type": "text"}},
        "tool_choice": "auto",
        "tools": [],
        "top_p": body.get("top_p", 1.0),
        "truncation": "disabled",
        "usage": usage,
        "metadata": {},
    }


def _message(mid: str, text: str, refusal: str | None, status: str = "completed") -> dict[str, Any]:
    part = (
        {"type": "refusal", "refusal": refusal}
        if refusal
        else {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
    )
    return {"id": mid, "type": "message", "status": status, "role": "assistant", "content": [part]}


def responses_reply(fake: Any, request: Recorded, fault: dict[str, Any]) -> Reply:
    """The fake's answer to one ``POST /responses`` (``fault`` is the popped ``fail_next`` entry or {})."""
    kind = fault.get("kind")
    body = request.json or {}
    model = body.get("model")
    if kind == "status":
        return Reply(
            fault.get("status", 500),
            headers=fault.get("headers"),
            body=fault.get("body", fake.error_body("The server had an error.", "server_error")),
        )
    if fake.models and model not in (*fake.models, *fake.responses_only):
        return Reply(
            404,
            body=fake.error_body(
                f"The model `{model}` does not exist or you do not have access to it.",
                "invalid_request_error",
                "model_not_found",
            ),
        )
    for unknown in ("messages", "stop", "seed", "max_tokens", "stream_options"):
        if unknown in body:
            return Reply(
                400,
                body=fake.error_body(
                    f"Unsupported parameter: '{unknown}'.",
                    "invalid_request_error",
                    "unsupported_parameter",
                    unknown,
                ),
            )
    text = "".join(fake.answer)
    refusal = fake.refusal
    created = int(time.time())
    rid, mid = "resp_fake123", "msg_fake123"
    limited = kind == "incomplete"
    if not body.get("stream"):
        if kind == "empty":
            return Reply(body=b"", content_type="application/json")
        if kind == "failed":
            return Reply(
                body=_response(
                    fake,
                    body,
                    rid=rid,
                    created=created,
                    status="failed",
                    output=[],
                    usage=None,
                    error={"code": "server_error", "message": "The model failed to answer."},
                )
            )
        return Reply(
            body=_response(
                fake,
                body,
                rid=rid,
                created=created,
                status="incomplete" if limited else "completed",
                output=[_message(mid, text, refusal, "incomplete" if limited else "completed")],
                usage=_usage(fake),
                incomplete={"reason": "max_output_tokens"} if limited else None,
            )
        )

    seq = iter(range(10_000))

    def event(kind_: str, **fields: Any) -> str:
        return _event({"type": kind_, "sequence_number": next(seq), **fields})

    def snapshot(status: str, output: list[dict[str, Any]], usage: dict[str, Any] | None, **extra: Any):
        return _response(
            fake, body, rid=rid, created=created, status=status, output=output, usage=usage, **extra
        )

    events = [
        event("response.created", response=snapshot("in_progress", [], None)),
        event("response.in_progress", response=snapshot("in_progress", [], None)),
        event(
            "response.output_item.added",
            output_index=0,
            item={"id": mid, "type": "message", "status": "in_progress", "role": "assistant", "content": []},
        ),
    ]
    if fake.reasoning_summary:
        events.append(
            event(
                "response.reasoning_summary_text.delta",
                item_id="rs_fake",
                output_index=0,
                summary_index=0,
                delta=fake.reasoning_summary,
            )
        )
    part_kind = "refusal" if refusal else "output_text"
    empty_part = (
        {"type": "refusal", "refusal": ""}
        if refusal
        else {"type": "output_text", "text": "", "annotations": []}
    )
    events.append(
        event("response.content_part.added", item_id=mid, output_index=0, content_index=0, part=empty_part)
    )
    pieces = re.findall(r"\s*\S+", refusal) if refusal else list(fake.answer)
    for piece in pieces:
        fields = {"item_id": mid, "output_index": 0, "content_index": 0, "delta": piece}
        if not refusal:
            fields["logprobs"] = []
        events.append(event(f"response.{part_kind}.delta", **fields))
    after = int(fault.get("after", 5))
    if kind == "malformed":
        events.insert(after, 'event: response.output_text.delta\ndata: {"type": "response.output\n\n')
    elif kind == "error_event":
        events.insert(
            after,
            event(
                "error", code="server_error", message="The server had an error while processing.", param=None
            ),
        )
    message = _message(mid, text, refusal, "incomplete" if limited else "completed")
    done = {"refusal": refusal} if refusal else {"text": text, "logprobs": []}
    events += [
        event(f"response.{part_kind}.done", item_id=mid, output_index=0, content_index=0, **done),
        event(
            "response.content_part.done",
            item_id=mid,
            output_index=0,
            content_index=0,
            part=message["content"][0],
        ),
        event("response.output_item.done", output_index=0, item=message),
    ]
    if kind == "failed":
        events.append(
            event(
                "response.failed",
                response=snapshot(
                    "failed",
                    [],
                    None,
                    error={"code": "server_error", "message": "The model failed to answer."},
                ),
            )
        )
    elif limited:
        events.append(
            event(
                "response.incomplete",
                response=snapshot(
                    "incomplete", [message], _usage(fake), incomplete={"reason": "max_output_tokens"}
                ),
            )
        )
    elif kind != "truncated":
        events.append(event("response.completed", response=snapshot("completed", [message], _usage(fake))))
    if kind == "empty":
        events = []
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
