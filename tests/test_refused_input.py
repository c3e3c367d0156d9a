"""Bad input at the library's door (issue #11): refused before sending, said in one line.

Each test names the case it covers; each would have failed before the fix
(an empty prompt was sent, an unknown default_backend read as "no API key",
an alias of an unavailable backend gave advice that did not name it, a key in
a prompt went to the provider).
"""

from __future__ import annotations

import pytest

import ttt_magic
from ttt_magic import chain
from ttt_magic.config import configure
from ttt_magic.errors import ConfigError, UsageError
from ttt_magic.models import StreamEnd

SENTINEL = "sk-test-SENTINEL-0123456789abcdef"


@pytest.mark.parametrize("prompt", ["", "   ", "\n\t"])
@pytest.mark.parametrize("entry", [ttt_magic.ask, ttt_magic.stream, ttt_magic.route])
def test_case_8_an_empty_prompt_is_refused_before_sending(entry, prompt):
    with pytest.raises(UsageError, match="prompt is empty"):
        entry(prompt, backend="echo")


def test_case_3_unknown_default_backend_names_itself_and_its_layer(monkeypatch):
    monkeypatch.setenv("TTT_DEFAULT_BACKEND", "mok")
    with pytest.raises(ConfigError) as caught:
        ttt_magic.ask("hello")
    message = str(caught.value)
    assert "'mok'" in message and "TTT_DEFAULT_BACKEND" in message and "Did you mean 'mock'" in message
    assert "API key" not in message and "\n" not in message


def test_case_6_a_default_mock_serves_aliases_of_unavailable_backends(monkeypatch):
    monkeypatch.setenv("TTT_DEFAULT_BACKEND", "mock")
    answer = ttt_magic.ask("Explain recursion", model="coding")
    assert answer.succeeded and answer.backend == "mock"
    assert any("answers any model name" in step for step in answer.route["steps"])
    assert answer.cost in (0, 0.0, None)  # case 10: an offline answer costs nothing


def test_case_6_an_unavailable_alias_says_which_backend_and_why():
    answer = ttt_magic.ask("Explain recursion", model="coding")
    assert answer.failed
    assert answer.error.startswith("Model 'coding' (alias of ")
    assert "served by backend 'cloud', which is unavailable" in answer.error


def test_case_10_the_mock_costs_nothing_under_a_real_model_name():
    answer = ttt_magic.ask("hello", backend="mock", model="gpt-4o")
    assert answer.succeeded and answer.cost == 0.0


def test_case_16_configured_keys_are_masked_in_everything_sent(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SENTINEL)
    monkeypatch.setenv("MY_SERVER_KEY", "local-secret-value-123456")
    configure(
        backends={
            "vllm": {
                "type": "openai-compatible",
                "base_url": "http://127.0.0.1:9/v1",
                "api_key_env": "MY_SERVER_KEY",
            }
        }
    )
    sent = []

    async def capture(call, proceed):
        sent.append(call)
        yield "ok"
        yield StreamEnd(model=call.model)

    chain.chain.add("capture", capture, order=45)
    try:
        answer = ttt_magic.ask(
            f"my env: {SENTINEL} and local-secret-value-123456",
            backend="echo",
            system=f"key={SENTINEL}",
            history=[{"role": "user", "content": SENTINEL}, {"role": "assistant", "content": "noted"}],
        )
    finally:
        chain.chain.remove("capture")
    call = sent[0]
    everything = repr((call.prompt, call.system, call.history, call.key_material()))
    assert SENTINEL not in everything and "local-secret-value-123456" not in everything
    assert "sk-…cdef" in call.prompt
    assert answer.metadata["withheld_secrets"] == 4


def test_an_answer_s_route_can_be_explained_again():
    from ttt_magic.router import Route

    answer = ttt_magic.ask("hello there", backend="echo")
    again = Route.from_dict(answer.route)
    assert again.explain().splitlines()[0] == "Route: backend=echo model=(backend default)"
    assert "attempt echo/-: ok" in again.explain()


def test_ctrl_c_during_ask_raises_interrupted_with_the_marked_answer(monkeypatch):
    from ttt_magic import api, runner

    def stop(coro, timeout=None):
        coro.close()
        raise KeyboardInterrupt

    monkeypatch.setattr(runner, "run", stop)
    with pytest.raises(api.Interrupted) as caught:
        ttt_magic.ask("hello", backend="echo")
    assert isinstance(caught.value, KeyboardInterrupt)
    assert caught.value.response.failed and caught.value.response.metadata["interrupted"]


def test_a_stream_closed_before_it_started_ends_interrupted():
    chunks = ttt_magic.stream("hello", backend="echo")
    chunks.close()
    assert chunks.response is not None and chunks.response.metadata["interrupted"]
