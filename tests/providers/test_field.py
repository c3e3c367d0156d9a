"""Servers as they are in the field (issue #12), each point against the OpenAI fake.

1. ``status`` and availability see a server that is not running, refuses the
   key, or answers; hosted providers cost no request to route.
2. An empty HTTP 200 (llama.cpp's answer to a streamed prompt over its
   context) is not retried, says the server sent nothing, and weighs the
   prompt against the model's context.
3. A compatible server's stream without usage gets estimated tokens.
4. Per-backend ``max_retries`` and ``timeout`` hold for a configured server.
5. Model names a configured backend lists route to it.
6. A 400 passes the server's message first, with a hint by status and type:
   LiteLLM's "No connected db." reads as the key problem it is.
7. A server that refuses ``stream_options`` is asked again without it, once,
   and the backend remembers; ``stream_usage: false`` says so up front.
"""

from __future__ import annotations

import time

import pytest

import ttt_magic
from tests.fakes import SENTINEL_KEY, collect, run
from tests.fakes.openai_fake import OpenAIFake
from ttt_magic import configure
from ttt_magic.backends import probe
from ttt_magic.backends.http import error_from_status
from ttt_magic.backends.openai import OpenAIBackend, OpenAICompatibleBackend
from ttt_magic.errors import UnknownModelError
from ttt_magic.registry import backend_registry
from ttt_magic.secrets import Secret

DEAD = "http://127.0.0.1:9/v1"  # nothing listens on the discard port


@pytest.fixture(autouse=True)
def _fresh_probes():
    probe.forget()
    yield
    probe.forget()


def lab_config(base_url: str, **extra) -> dict:
    return {"type": "openai-compatible", "base_url": base_url, "models": ["mock-gpt", "tiny"], **extra}


@pytest.fixture
def fake(fake_factory):
    return fake_factory(OpenAIFake, models=("mock-gpt", "tiny"), responses_only=())


@pytest.fixture
def lab(fake):
    """``backends.lab``: an OpenAI-compatible server (the fake) listing mock-gpt and tiny."""
    configure(backends={"lab": lab_config(fake.base_url)}, max_retry_wait=0.01)
    return fake


def compat(base_url: str, **extra) -> OpenAICompatibleBackend:
    return OpenAICompatibleBackend({"name": "lab", "timeout": 5.0, **lab_config(base_url, **extra)})


def chat_requests(fake) -> list:
    return [r for r in fake.requests if r.path.endswith("/chat/completions")]


def model_requests(fake) -> list:
    return [r for r in fake.requests if r.path.endswith("/models")]


# --------------------------------------------------------------------------- 1. status and availability


def test_status_says_a_local_server_that_is_not_running_is_unavailable(capsys):
    from ttt_magic.cli import main

    configure(backends={"lab": lab_config(DEAD)})
    ok, reason = backend_registry.availability("lab")
    assert not ok and "Nothing answers at http://127.0.0.1:9" in reason and "backends.lab.base_url" in reason
    assert main(["status"]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.strip().startswith("lab "))
    assert "unavailable" in row
    assert "lab: Nothing answers at http://127.0.0.1:9" in out
    info = run(backend_registry.get("lab").status())
    assert (info["available"], info["reachable"]) == (False, False)
    assert "Nothing answers" in info["reason"]


def test_a_running_local_server_is_available_and_the_probe_is_cached(lab):
    for _ in range(3):
        assert backend_registry.availability("lab") == (True, None)
    assert len(model_requests(lab)) == 1  # three routing decisions, one probe
    info = run(backend_registry.get("lab").status())
    assert (info["available"], info["reachable"]) == (True, True)
    assert info["models"][:2] == ["mock-gpt", "tiny"]


def test_a_server_that_refuses_the_key_is_unavailable_with_the_reason(fake_factory, monkeypatch):
    fake = fake_factory(OpenAIFake, api_key=SENTINEL_KEY, models=("tiny",))
    monkeypatch.setenv("LAB_KEY", "sk-wrong-0000000000000000")
    backend = compat(fake.base_url, api_key_env="LAB_KEY")
    assert not backend.is_available
    reason = backend.unavailable_reason
    assert "refuses the API key from LAB_KEY (HTTP 401)" in reason
    info = run(backend.status())
    assert (info["available"], info["reachable"], info["key_refused"]) == (False, True, True)
    assert "sk-wrong" not in str(info) and SENTINEL_KEY not in str(info)
    monkeypatch.setenv("LAB_KEY", SENTINEL_KEY)
    probe.forget()
    assert compat(fake.base_url, api_key_env="LAB_KEY").is_available


def test_a_server_without_key_that_wants_one_says_which_setting(fake_factory):
    fake = fake_factory(OpenAIFake, api_key=SENTINEL_KEY, models=("tiny",))
    reason = compat(fake.base_url).unavailable_reason
    assert "refuses requests without an API key (HTTP 401)" in reason and "backends.lab.api_key_env" in reason


def test_a_server_still_loading_is_unavailable(fake):
    from tests.fakes.server import Reply

    fake.enqueue("GET", "/v1/models", Reply(503, body={"error": {"message": "Loading model"}}))
    backend = compat(fake.base_url)
    assert not backend.is_available and "HTTP 503" in backend.unavailable_reason


def test_probing_is_for_this_machine_unless_configured():
    started = time.monotonic()
    assert compat("http://10.255.255.1:9/v1").is_available  # remote: no request on every route
    assert time.monotonic() - started < 0.2
    assert compat(DEAD, probe=False).is_available
    assert not compat(DEAD, probe="yes").is_available


def test_hosted_provider_routes_without_a_request_and_status_probes(fake_factory):
    fake = fake_factory(OpenAIFake, api_key=SENTINEL_KEY)
    backend = OpenAIBackend({"openai_base_url": fake.base_url, "openai_api_key": Secret(SENTINEL_KEY)})
    assert backend.is_available and fake.requests == []
    info = run(backend.status())
    assert (info["available"], info["reachable"]) == (True, True) and "gpt-4o-mini" in info["models"]

    down = OpenAIBackend({"openai_base_url": DEAD, "openai_api_key": Secret(SENTINEL_KEY)})
    info = run(down.status())
    assert (info["available"], info["reachable"]) == (False, False)
    assert "Could not connect" in info["reason"] and SENTINEL_KEY not in str(info)

    wrong = OpenAIBackend({"openai_base_url": fake.base_url, "openai_api_key": Secret("sk-bad-00000000000")})
    info = run(wrong.status())
    assert (info["available"], info["key_refused"]) == (False, True)
    assert "OPENAI_API_KEY" in info["reason"]


def test_status_answers_are_reused_for_a_few_seconds(fake_factory):
    fake = fake_factory(OpenAIFake, api_key=SENTINEL_KEY)
    backend = OpenAIBackend(
        {"openai_base_url": fake.base_url, "openai_api_key": Secret("sk-bad-00000000000"), "probe_ttl": 60}
    )

    async def twice():
        return await backend.status(), await backend.status()

    first, second = run(twice())
    assert first == second and len(model_requests(fake)) == 1


def test_status_waits_only_probe_timeout(fake):
    from tests.fakes.server import Reply

    fake.enqueue("GET", "/v1/models", Reply(body={"data": []}, chunks=["{"], stall_after=0, stall=5))
    backend = compat(fake.base_url, probe=False, probe_timeout=0.3)
    started = time.monotonic()
    info = run(backend.status())
    assert time.monotonic() - started < 2
    assert (info["available"], info["reachable"]) == (False, False) and "0.3 s" in info["reason"]


# --------------------------------------------------------------------------- 2. an empty 200


def test_an_empty_streamed_200_is_not_retried_and_says_the_server_sent_nothing(lab):
    configure(max_retries=3)
    lab.fail_next("empty", times=4)
    chunks = ttt_magic.stream("Hi", backend="lab", model="tiny")
    assert "".join(chunks) == ""
    answer = chunks.response
    assert answer.failed and "sent nothing" in answer.error
    assert "Try again" not in answer.error
    assert len(chat_requests(lab)) == 1
    assert [a["outcome"] for a in answer.route["attempts"]] == ["error"]


def test_an_empty_200_weighs_the_prompt_against_the_configured_context(fake):
    configure(backends={"lab": lab_config(fake.base_url, context_length=64)}, max_retries=3)
    fake.fail_next("empty", times=4)
    chunks = ttt_magic.stream("word " * 80, backend="lab", model="tiny")
    list(chunks)
    error = chunks.response.error
    assert "sent nothing" in error and "over the context of tiny (64 tokens)" in error
    assert len(chat_requests(fake)) == 1


def test_an_empty_200_near_the_catalogue_context(fake):
    backend = compat(fake.base_url)
    fake.fail_next("empty")
    from ttt_magic.models import ModelInfo
    from ttt_magic.registry import model_registry

    model_registry.add_model(ModelInfo(name="tiny", provider="lab", context_length=100))
    try:
        _, _, error = run(collect(backend.astream("word " * 75, model="tiny", max_tokens=50)))
    finally:
        model_registry.remove_model("tiny")
    assert (error.kind, error.retryable) == ("context_length", False)
    assert "near the context of tiny (100 tokens)" in str(error) and "--ctx-size" in error.hint


def test_an_empty_200_with_a_prompt_that_fits_says_so(fake):
    fake.fail_next("empty")
    _, _, error = run(collect(compat(fake.base_url, context_length=4096).astream("Hi", model="tiny")))
    assert (error.kind, error.retryable) == ("empty", False)
    assert "fits the context of tiny" in str(error) and "log" in error.hint


def test_an_empty_200_without_a_known_context_says_how_to_give_one(fake):
    fake.fail_next("empty")
    _, _, error = run(collect(compat(fake.base_url).astream("Hi", model="tiny")))
    assert error.kind == "empty" and "backends.lab.context_length" in error.hint


def test_an_empty_body_unstreamed_is_reported_the_same_way(lab):
    configure(max_retries=3)
    lab.fail_next("empty", times=4)
    answer = ttt_magic.ask("Hi", backend="lab", model="tiny")
    assert answer.failed and "empty body" in answer.error
    assert len(chat_requests(lab)) == 1


def test_a_stream_cut_after_its_text_is_not_taken_for_an_empty_one(lab):
    configure(max_retries=1)
    lab.fail_next("truncated")
    chunks = ttt_magic.stream("Hi", backend="lab", model="tiny")
    text = "".join(chunks)
    assert text == "Hello, world!"  # the cut stream's text reached the reader: kept, not retried
    assert "ended before [DONE]" in chunks.response.error


# --------------------------------------------------------------------------- 3. estimated tokens


def test_a_compatible_stream_without_usage_has_estimated_tokens(lab):
    lab.usage_style = "none"
    chunks = ttt_magic.stream("Say hello to the world", backend="lab", model="tiny")
    assert "".join(chunks) == "Hello, world!"
    answer = chunks.response
    assert answer.metadata["tokens_estimated"] is True
    assert answer.tokens_in > 0 and answer.tokens_out > 0


# ---------------------------------------------------------------- 4. per-backend retries and timeout


def test_per_backend_max_retries_holds_for_a_configured_server(fake):
    configure(backends={"lab": lab_config(fake.base_url, max_retries=1)}, max_retries=5, max_retry_wait=0.01)
    fake.fail_next("status", times=4, status=503)
    answer = ttt_magic.ask("Hi", backend="lab", model="tiny")
    assert answer.failed and len(chat_requests(fake)) == 2


def test_per_backend_timeout_holds_for_a_configured_server(fake):
    configure(backends={"lab": lab_config(fake.base_url, timeout=0.3, max_retries=0)}, timeout=30)
    fake.fail_next("stall", after=0, seconds=10)
    started = time.monotonic()
    chunks = ttt_magic.stream("Hi", backend="lab", model="tiny")
    assert "".join(chunks) == ""
    assert chunks.response.failed and time.monotonic() - started < 5
    assert "timed out" in chunks.response.error or "sent nothing" in chunks.response.error


# --------------------------------------------------------------------------- 5. models a backend lists


def test_a_model_a_configured_backend_lists_routes_to_it(lab):
    decided = ttt_magic.route("Hi", model="mock-gpt")
    assert decided.backend == "lab", decided.explain()
    answer = ttt_magic.ask("Hi", model="mock-gpt")
    assert answer.succeeded and answer.backend == "lab", answer.error
    assert chat_requests(lab)[-1].json["model"] == "mock-gpt"


def test_a_misspelt_listed_model_suggests_it(lab):
    with pytest.raises(UnknownModelError) as info:
        ttt_magic.route("Hi", model="mock-gtp")
    assert "mock-gpt" in info.value.suggestions


def test_a_model_from_a_cached_models_answer_routes_too(fake_factory):
    fake = fake_factory(OpenAIFake, models=("served-only-here",), responses_only=())
    configure(backends={"box": {"type": "openai-compatible", "base_url": fake.base_url}})
    with pytest.raises(UnknownModelError):
        ttt_magic.route("Hi", model="served-only-here")
    assert run(backend_registry.get("box").models()) == ["served-only-here"]
    assert ttt_magic.route("Hi", model="served-only-here").backend == "box"


def test_a_catalogue_model_goes_to_a_lister_when_its_provider_is_unavailable(fake_factory):
    fake = fake_factory(OpenAIFake, models=("gpt-4o-mini",))
    configure(backends={"proxy": lab_config(fake.base_url, models=["gpt-4o-mini"])})
    answer = ttt_magic.ask("Hi", model="gpt-4o-mini")  # no OpenAI key: cloud is unavailable
    assert answer.succeeded and answer.backend == "proxy", answer.error


# --------------------------------------------------------------------------- 6. what a 400 says


def test_litellm_no_connected_db_reads_as_a_key_problem(fake_factory, monkeypatch):
    fake = fake_factory(OpenAIFake, models=("tiny",))
    monkeypatch.setenv("LITELLM_KEY", "sk-not-the-master-key-0000")
    fake.fail_next("no_db")
    _, _, error = run(collect(compat(fake.base_url, api_key_env="LITELLM_KEY").astream("Hi", model="tiny")))
    assert (error.status, error.kind, error.retryable) == (400, "auth", False)
    message = str(error)
    assert message.startswith("lab refused the request (HTTP 400, no_db_connection): No connected db.")
    assert "key problem" in error.hint and "LITELLM_KEY" in error.hint and "LiteLLM" in error.hint
    assert "Check the model name" not in error.hint


@pytest.mark.parametrize(
    ("body", "kind", "hint"),
    [
        ({"error": {"message": "Invalid API key", "type": "invalid_request_error"}}, "auth", "key problem"),
        ({"error": {"message": "x", "type": "authentication_error"}}, "auth", "P_KEY"),
        (
            {"error": {"message": "bad", "type": "invalid_request_error", "param": "top_p"}},
            "bad_request",
            "'top_p'",
        ),
        (
            {"error": {"message": "model 'x' not loaded", "type": "invalid_request_error"}},
            "bad_request",
            "model",
        ),
        ({"detail": [{"loc": ["body", "foo"], "msg": "extra fields not permitted"}]}, "bad_request", "field"),
        ("<html>bad</html>", "bad_request", "message above"),
    ],
)
def test_a_400_hint_follows_its_type(body, kind, hint):
    import json

    raw = body if isinstance(body, str) else json.dumps(body)
    status = 422 if isinstance(body, dict) and "detail" in body else 400
    error = error_from_status(status, raw, None, provider="P", key_env="P_KEY", model="x")
    assert error.kind == kind and hint in error.hint, (error, error.hint)
    assert f"HTTP {status}" in str(error)


# --------------------------------------------------------------------------- 7. stream_options refused


def test_a_server_refusing_stream_options_is_asked_again_without_it_once(fake):
    fake.reject_stream_options = True
    backend = compat(fake.base_url)
    parts, end, error = run(collect(backend.astream("Hi", model="tiny")))
    assert error is None and "".join(parts) == "Hello, world!" and end.finish_reason == "stop"
    sent = chat_requests(fake)
    assert ["stream_options" in r.json for r in sent] == [True, False]
    assert backend.stream_usage_refused is True
    run(collect(backend.astream("Hi", model="tiny")))
    assert ["stream_options" in r.json for r in chat_requests(fake)] == [True, False, False]


def test_refused_stream_options_through_the_api_still_counts_tokens(lab):
    lab.reject_stream_options = True
    chunks = ttt_magic.stream("Hi", backend="lab", model="tiny")
    assert "".join(chunks) == "Hello, world!"
    assert chunks.response.succeeded and chunks.response.metadata["tokens_estimated"] is True


def test_stream_usage_false_never_sends_stream_options(fake):
    backend = compat(fake.base_url, stream_usage=False)
    _, _, error = run(collect(backend.astream("Hi", model="tiny")))
    assert error is None and "stream_options" not in chat_requests(fake)[-1].json
    assert chat_requests(fake)[-1].json["stream"] is True


def test_another_400_is_not_asked_again(fake):
    fake.fail_next(
        "status", status=400, body={"error": {"message": "bad temperature", "param": "temperature"}}
    )
    _, _, error = run(collect(compat(fake.base_url).astream("Hi", model="tiny")))
    assert error.status == 400 and len(chat_requests(fake)) == 1
