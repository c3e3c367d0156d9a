"""The Ollama backend against a fake server speaking /api/chat NDJSON; the ``ollama`` SDK as oracle."""

from __future__ import annotations

import pytest

from tests.fakes import collect, run
from tests.fakes.ollama_fake import OllamaFake
from ttt_magic.backends.ollama import ChatStream, OllamaBackend, build_payload, probe
from ttt_magic.errors import ProviderError
from ttt_magic.models import StreamEnd


def backend_for(fake: OllamaFake, **extra) -> OllamaBackend:
    return OllamaBackend({"ollama_base_url": fake.url, "timeout": 5.0, **extra})


def stream(backend, prompt="Why is the sky blue?", **kwargs):
    return run(collect(backend.astream(prompt, **kwargs)))


# ----------------------------------------------------------------------------- happy paths


def test_stream_text_usage_and_request(ollama_fake):
    parts, end, error = stream(
        backend_for(ollama_fake), model="llama3.2", system="Be brief.", temperature=0.1, max_tokens=64
    )
    assert error is None
    assert parts == ["The", " sky", " is", " blue", "."]
    assert isinstance(end, StreamEnd)
    assert (end.model, end.tokens_in, end.tokens_out, end.finish_reason) == ("llama3.2", 26, 5, "stop")
    assert end.cost == 0.0 and end.metadata["provider_model"] == "llama3.2"
    req = ollama_fake.last
    assert (req.method, req.path) == ("POST", "/api/chat")
    body = req.json
    assert body["model"] == "llama3.2" and body["stream"] is True
    assert body["options"] == {"temperature": 0.1, "num_predict": 64}
    assert body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Why is the sky blue?"},
    ]
    assert "authorization" not in req.headers


def test_non_stream_ask(ollama_fake):
    answer = run(backend_for(ollama_fake).ask("Hi", model="llama3.2"))
    assert answer.succeeded and answer == "The sky is blue."
    assert (answer.backend, answer.model, answer.tokens_in, answer.tokens_out) == ("local", "llama3.2", 26, 5)
    assert answer.cost == 0.0 and answer.metadata["finish_reason"] == "stop"
    assert ollama_fake.last.json["stream"] is False


@pytest.mark.parametrize(
    ("given", "sent"),
    [
        ("llama3.2", "llama3.2"),
        ("ollama/qwen2.5:0.5b", "qwen2.5:0.5b"),
        ("local/llama3.2:latest", "llama3.2:latest"),
        ("local", "llama3.2"),
        (None, "llama3.2"),
    ],
)
def test_model_names_resolve(ollama_fake, given, sent):
    _, _, error = stream(backend_for(ollama_fake), model=given)
    assert error is None
    assert ollama_fake.last.json["model"] == sent


def test_default_model_from_configuration_unless_it_belongs_elsewhere(ollama_fake):
    assert backend_for(ollama_fake, default_model="qwen2.5:0.5b").default_model == "qwen2.5:0.5b"
    assert backend_for(ollama_fake, default_model="gpt-4o-mini").default_model == "llama3.2"


def test_first_installed_model_when_nothing_names_one(ollama_fake, monkeypatch):
    backend = backend_for(ollama_fake)
    monkeypatch.setattr(OllamaBackend, "default_model", property(lambda self: None))
    assert run(backend.pick_model()) == "llama3.2:latest"
    ollama_fake.installed = []
    backend._models_cache = None
    _, _, error = stream(backend)
    assert error.kind == "no_model" and "ollama pull" in error.hint


def test_build_payload_and_chat_stream_units():
    body = build_payload([{"role": "user", "content": "x"}], model="m", stream=False, keep_alive="5m")
    assert body == {
        "model": "m",
        "messages": [{"role": "user", "content": "x"}],
        "stream": False,
        "keep_alive": "5m",
    }
    state = ChatStream(model="m")
    assert state.handle({"message": {"content": "a"}, "done": False}) == "a"
    with pytest.raises(ProviderError):
        state.end()  # no done line yet: truncated
    state.handle({"message": {"content": ""}, "done": True, "eval_count": 3})
    assert (state.end().tokens_out, state.end().finish_reason) == (3, "stop")


def test_models_cached_and_status(ollama_fake):
    backend = backend_for(ollama_fake)

    async def go():
        return await backend.models(), await backend.models(), await backend.status()

    first, second, status = run(go())
    assert first == second == ["llama3.2:latest", "qwen2.5:0.5b"]
    assert sum(r.path == "/api/tags" for r in ollama_fake.requests) == 1
    assert status["available"] is True and status["version"] == "0.6.5" and status["models"] == first


# ----------------------------------------------------------------------------- availability


def test_is_available_probes_once_and_caches(ollama_fake):
    backend = backend_for(ollama_fake)
    assert backend.is_available is True and backend.unavailable_reason is None
    assert backend.is_available is True
    assert sum(r.path == "/api/version" for r in ollama_fake.requests) == 1


def test_unavailable_without_server_says_what_to_do():
    backend = OllamaBackend({"ollama_base_url": "http://127.0.0.1:9"})
    assert backend.is_available is False
    reason = backend.unavailable_reason
    assert "http://127.0.0.1:9" in reason and "ollama serve" in reason and "OLLAMA_HOST" in reason
    assert "backend='mock'" in reason
    assert probe("http://127.0.0.1:9", ttl=0)[0] is False


def test_server_answering_5xx_is_unavailable(ollama_fake):
    from tests.fakes.server import Reply

    ollama_fake.enqueue("GET", "/api/version", Reply(503, body={"error": "starting"}))
    backend = backend_for(ollama_fake)
    assert backend.is_available is False and "HTTP 503" in backend.unavailable_reason


def test_is_available_works_inside_a_running_loop(ollama_fake):
    import asyncio

    async def inside():
        return backend_for(ollama_fake).is_available

    assert asyncio.run(inside()) is True


def test_connection_refused_while_streaming_is_retryable_with_hint():
    _, _, error = stream(OllamaBackend({"ollama_base_url": "http://127.0.0.1:9"}), model="llama3.2")
    assert (error.kind, error.retryable) == ("connect", True)
    assert "ollama serve" in error.hint


# ----------------------------------------------------------------------------- errors


def test_unknown_model_says_how_to_pull_it(ollama_fake):
    _, _, error = stream(backend_for(ollama_fake), model="mistral")
    assert (error.status, error.kind, error.retryable) == (404, "model_not_found", False)
    assert "ollama pull mistral" in error.hint


@pytest.mark.parametrize("status", [500, 503])
def test_server_errors_are_retryable(ollama_fake, status):
    ollama_fake.fail_next("status", status=status)
    _, _, error = stream(backend_for(ollama_fake), model="llama3.2")
    assert (error.status, error.retryable) == (status, True)
    assert "internal error" in str(error)


@pytest.mark.parametrize(
    ("kind", "expected_kind", "expected_parts"),
    [
        ("error_line", "stream_error", ["The", " sky"]),
        ("malformed", "malformed", ["The", " sky"]),
        ("truncated", "truncated", ["The", " sky", " is", " blue", "."]),
        ("reset", "connection", ["The", " sky"]),
        ("close", "connection", ["The", " sky"]),
    ],
)
def test_mid_stream_faults_keep_partial_text(ollama_fake, kind, expected_kind, expected_parts):
    ollama_fake.fail_next(kind, after=2)
    parts, end, error = stream(backend_for(ollama_fake), model="llama3.2")
    assert end is None and isinstance(error, ProviderError)
    assert (error.kind, error.retryable) == (expected_kind, True)
    assert parts == expected_parts


def test_stall_longer_than_read_timeout(ollama_fake):
    ollama_fake.fail_next("stall", after=1, seconds=30)
    parts, _, error = stream(backend_for(ollama_fake, timeout=0.3), model="llama3.2")
    assert parts == ["The"] and (error.kind, error.retryable) == ("timeout", True)


def test_slow_drip_and_large_answer(ollama_fake):
    ollama_fake.fail_next("drip")
    parts, end, error = stream(backend_for(ollama_fake), model="llama3.2")
    assert error is None and "".join(parts) == "The sky is blue." and end.tokens_in == 26
    ollama_fake.fail_next("large", size=1_000_000)
    parts, _, error = stream(backend_for(ollama_fake), model="llama3.2")
    assert error is None and len("".join(parts)) == 1_000_000


def test_failed_ask_is_a_value(ollama_fake):
    answer = run(backend_for(ollama_fake).ask("Hi", model="nope"))
    assert answer.failed and "ollama pull nope" in answer.error
    assert answer.metadata["error_info"]["status"] == 404


# ----------------------------------------------------------------------------- SDK oracle


def test_official_sdk_reads_the_fake_like_we_do(ollama_fake):
    import ollama

    client = ollama.Client(host=ollama_fake.url)
    sdk_parts, last = [], None
    for part in client.chat(model="llama3.2", messages=[{"role": "user", "content": "Hi"}], stream=True):
        sdk_parts.append(part.message.content)
        last = part
    assert ollama_fake.last.path == "/api/chat"
    parts, end, _ = stream(backend_for(ollama_fake), model="llama3.2")
    assert "".join(sdk_parts) == "".join(parts) == ollama_fake.text
    assert (last.done, last.done_reason) == (True, end.finish_reason)
    assert (last.prompt_eval_count, last.eval_count) == (end.tokens_in, end.tokens_out)

    whole = client.chat(model="llama3.2", messages=[{"role": "user", "content": "Hi"}])
    ours = run(backend_for(ollama_fake).ask("Hi", model="llama3.2"))
    assert whole.message.content == ours.text
    assert [m.model for m in client.list().models] == run(backend_for(ollama_fake).models())


def test_official_sdk_sees_the_same_errors(ollama_fake):
    import ollama

    client = ollama.Client(host=ollama_fake.url)
    with pytest.raises(ollama.ResponseError) as info:
        client.chat(model="mistral", messages=[{"role": "user", "content": "Hi"}])
    assert info.value.status_code == 404 and "not found" in info.value.error
    ollama_fake.fail_next("error_line", after=2)
    with pytest.raises(ollama.ResponseError, match="error was encountered"):
        for _ in client.chat(model="llama3.2", messages=[{"role": "user", "content": "Hi"}], stream=True):
            pass


# ----------------------------------------------------------------------------- through the public API


def test_ask_and_stream_through_the_api(ollama_fake):
    import ttt_magic

    ttt_magic.configure(ollama_base_url=ollama_fake.url, max_retries=0)
    answer = ttt_magic.ask("Hi", backend="local", model="llama3.2")
    assert answer.succeeded and answer == "The sky is blue.", answer.error
    assert (answer.backend, answer.tokens_in, answer.tokens_out) == ("local", 26, 5)
    chunks = ttt_magic.stream("Hi", backend="local")
    assert "".join(chunks) == "The sky is blue."
    assert chunks.response.tokens_out == 5 and chunks.response.succeeded
    assert ollama_fake.last.json["model"] == "llama3.2"


def test_api_reports_missing_server_actionably():
    import ttt_magic

    ttt_magic.configure(ollama_base_url="http://127.0.0.1:9", enable_fallbacks=False, max_retries=0)
    answer = ttt_magic.ask("Hi", backend="local")
    assert answer.failed and "ollama serve" in answer.error
