"""``backends.http`` below the protocols: an injected transport, bytes, multipart and JSON Lines.

The batch services (upload a JSONL file, download results) and any
record-the-bytes tool need these; the protocols already use the rest.
"""

from __future__ import annotations

import json

import httpx2
import pytest

import ttt_magic
from tests.fakes import SENTINEL_KEY, run
from ttt_magic.backends import http
from ttt_magic.config import configure
from ttt_magic.errors import ProviderError


@pytest.fixture
def transport():
    seen: list[httpx2.Request] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(request)
        if request.url.path.endswith("/results.jsonl"):
            lines = [json.dumps({"custom_id": f"row-{i}", "n": i}) for i in range(3)]
            return httpx2.Response(200, content=("\n".join(lines) + "\n").encode())
        if request.url.path.endswith("/chat/completions"):
            body = {
                "id": "c1",
                "object": "chat.completion",
                "model": "gpt-4o-mini",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "in process"},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 3, "completion_tokens": 2},
            }
            return httpx2.Response(200, json=body)
        return httpx2.Response(200, json={"got": request.headers.get("content-type", "")})

    mock = httpx2.MockTransport(handler)
    http.use_transport(mock)
    yield seen
    http.use_transport(None)


def test_an_injected_transport_carries_every_request(transport):
    configure(openai_api_key=SENTINEL_KEY, openai_base_url="https://api.example.invalid/v1")
    answer = ttt_magic.ask("Hi", backend="openai", model="gpt-4o-mini")
    assert answer == "in process" and answer.tokens_out == 2
    assert transport[-1].url.host == "api.example.invalid"  # never reached: the transport answered


def test_bytes_and_multipart_bodies(transport):
    raw = run(http.request_json("POST", "https://h.invalid/upload", content=b'{"a": 1}\n'))
    assert transport[-1].content == b'{"a": 1}\n' and raw == {"got": ""}
    form = run(
        http.request_json(
            "POST",
            "https://h.invalid/files",
            data={"purpose": "batch"},
            files={"file": ("batch.jsonl", b'{"x": 1}\n', "application/jsonl")},
        )
    )
    assert form["got"].startswith("multipart/form-data")
    body = transport[-1].read()
    assert b'name="purpose"' in body and b"batch.jsonl" in body


def test_json_lines_are_streamed_one_object_at_a_time(transport):
    async def read():
        return [item async for item in http.iter_json_lines("GET", "https://h.invalid/results.jsonl")]

    assert [row["n"] for row in run(read())] == [0, 1, 2]


def test_a_body_that_is_not_json_is_a_clear_error():
    http.use_transport(httpx2.MockTransport(lambda request: httpx2.Response(200, content=b"<html>")))
    try:
        with pytest.raises(ProviderError, match="not JSON"):
            run(http.request_json("GET", "https://h.invalid/x", provider="X"))
    finally:
        http.use_transport(None)
