"""The shared HTTP plumbing: Retry-After, the error mapping of each provider's body, timeouts, redaction."""

from __future__ import annotations

import email.utils
import json
import time

import httpx2
import pytest

from tests.fakes import SENTINEL_KEY, run
from tests.fakes.server import FakeServer, Reply
from ttt_magic.backends.http import (
    error_from_status,
    parse_retry_after,
    redact,
    request_json,
    server_label,
    stream_request,
    timeout_for,
    transport_error,
)
from ttt_magic.errors import ProviderError

OPENAI_BODY = {
    "error": {
        "message": "Rate limit reached",
        "type": "requests",
        "param": None,
        "code": "rate_limit_exceeded",
    }
}
ANTHROPIC_BODY = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
GOOGLE_BODY = {
    "error": {
        "code": 429,
        "message": "Resource has been exhausted (e.g. check quota).",
        "status": "RESOURCE_EXHAUSTED",
    }
}
OLLAMA_BODY = {"error": 'model "mistral" not found, try pulling it first'}


def test_parse_retry_after_forms():
    assert parse_retry_after({"Retry-After": "7"}) == 7.0
    assert parse_retry_after({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    assert parse_retry_after(httpx2.Headers({"Retry-After": "1.5"})) == 1.5
    future = email.utils.formatdate(time.time() + 60, usegmt=True)
    assert 50 < parse_retry_after({"Retry-After": future}) <= 60
    past = email.utils.formatdate(time.time() - 60, usegmt=True)
    assert parse_retry_after({"Retry-After": past}) == 0.0
    for junk in ({}, None, {"Retry-After": "soon"}, {"Retry-After": "-3"}):
        assert parse_retry_after(junk) is None


@pytest.mark.parametrize(
    ("status", "body", "kind", "retryable", "says"),
    [
        (429, OPENAI_BODY, "rate_limit", True, "Rate limit reached"),
        (529, ANTHROPIC_BODY, "overloaded", True, "Overloaded"),
        (429, GOOGLE_BODY, "rate_limit", True, "Resource has been exhausted"),
        (500, b"<html>oops</html>", "server", True, "oops"),
        (400, {"error": {"message": "Invalid value for temperature"}}, "bad_request", False, "temperature"),
    ],
)
def test_error_bodies_of_every_provider(status, body, kind, retryable, says):
    raw = body if isinstance(body, bytes) else json.dumps(body)
    error = error_from_status(status, raw, {"retry-after": "2"}, provider="P", key_env="P_KEY", model="m")
    assert isinstance(error, ProviderError)
    assert (error.status, error.kind, error.retryable) == (status, kind, retryable)
    assert says in str(error) and error.hint
    assert "\n" not in error.message


def test_auth_errors_name_the_variable_only():
    for status in (401, 403):
        error = error_from_status(
            status,
            json.dumps({"error": {"message": f"bad key {SENTINEL_KEY}"}}),
            None,
            provider="OpenAI",
            key_env="OPENAI_API_KEY",
            model="gpt-4o",
        )
        assert error.kind == "auth" and not error.retryable
        assert "OPENAI_API_KEY" in str(error)
        assert SENTINEL_KEY not in str(error)


def test_provider_text_is_redacted():
    body = json.dumps({"error": {"message": f"key {SENTINEL_KEY} and AIzaSyA1234567890abcdefghijkl"}})
    error = error_from_status(400, body, None, provider="P", secret=SENTINEL_KEY)
    assert SENTINEL_KEY not in str(error) and "AIza" not in str(error) and "[redacted]" in str(error)
    assert redact("token secret-value here", "secret-value") == "token [redacted] here"
    assert redact("Authorization: Bearer abc.def") == "Authorization: [redacted]"


def test_not_found_suggests_models_or_pull():
    error = error_from_status(
        404,
        json.dumps(
            {"error": {"message": "The model `gpt-4o-mni` does not exist", "code": "model_not_found"}}
        ),
        None,
        provider="OpenAI",
        model="gpt-4o-mni",
    )
    assert error.kind == "model_not_found" and "gpt-4o-mini" in error.hint
    error = error_from_status(404, json.dumps(OLLAMA_BODY), None, provider="Ollama", model="mistral")
    assert "ollama pull mistral" in error.hint
    error = error_from_status(404, b"", None, provider="X")
    assert error.kind == "not_found" and "base URL" in error.hint


def test_context_length_and_quota():
    anthropic = {
        "type": "error",
        "error": {
            "type": "invalid_request_error",
            "message": "prompt is too long: 210000 tokens > 200000 maximum",
        },
    }
    error = error_from_status(
        400, json.dumps(anthropic), None, provider="Anthropic", model="claude-sonnet-4-5"
    )
    assert error.kind == "context_length" and "context window" in str(error)
    assert "(200000 tokens)" in str(error)  # the catalogue's limit for the model
    quota = {
        "error": {
            "message": "You exceeded your current quota",
            "type": "insufficient_quota",
            "code": "insufficient_quota",
        }
    }
    assert error_from_status(429, json.dumps(quota), None, provider="OpenAI").kind == "quota"


def test_timeout_for_configuration():
    t = timeout_for({"timeout": 60})
    assert (t.connect, t.read) == (10.0, 60.0)
    t = timeout_for({"timeout": 2})
    assert (t.connect, t.read) == (2.0, 2.0)
    assert timeout_for({}).read == 30.0 and timeout_for({"timeout": "bad"}).read == 30.0


def test_server_label_hides_path_and_query():
    assert server_label("https://host.example:8443/v1beta/models?key=SECRET") == "https://host.example:8443"
    assert server_label("not a url") == "the server"


def test_transport_errors_are_retryable_and_say_where():
    request = httpx2.Request("GET", "http://127.0.0.1:9/x")
    for exc, kind in [
        (httpx2.ConnectError("refused", request=request), "connect"),
        (httpx2.ReadTimeout("slow", request=request), "timeout"),
        (httpx2.ConnectTimeout("slow", request=request), "timeout"),
        (httpx2.RemoteProtocolError("cut", request=request), "connection"),
        (httpx2.ReadError("reset", request=request), "connection"),
    ]:
        error = transport_error(exc, provider="Ollama", url="http://127.0.0.1:9/api/chat?key=x")
        assert (error.kind, error.retryable) == (kind, True)
        assert "http://127.0.0.1:9" in str(error) and "key=x" not in str(error)
    refused = transport_error(httpx2.ConnectError("x", request=request), provider="Ollama", url="http://h:1")
    assert "ollama serve" in refused.hint


def test_stream_request_and_request_json_against_a_server():
    with FakeServer() as server:
        server.route("GET", "/ok", Reply(body={"fine": True}))
        server.route("GET", "/html", Reply(body="<html>"))
        server.route("GET", "/limited", Reply(429, headers={"Retry-After": "4"}, body=OPENAI_BODY))

        async def go():
            ok = await request_json("GET", server.url + "/ok", provider="T", params={"q": "1"})
            with pytest.raises(ProviderError) as limited:
                async with stream_request("GET", server.url + "/limited", provider="T"):
                    pass
            with pytest.raises(ProviderError) as html:
                await request_json("GET", server.url + "/html", provider="T")
            return ok, limited.value, html.value

        ok, limited, html = run(go())
        assert ok == {"fine": True} and server.requests[0].query == {"q": "1"}
        assert (limited.status, limited.retry_after) == (429, 4.0)
        assert html.kind == "protocol" and "not JSON" in str(html)
