"""The consolidated core, seen from a real HTTP server: what is sent is what the resolved request says.

Each test here pins a behaviour the core consolidation changed: one rule for
defaults (call > ``backends.<name>`` > global > default), provider options sent
verbatim, unknown keywords refused, refusals failing the same way streamed or
not, scoped settings, backend instances kept across request-default changes,
and every attempt passing through the interception chain.
"""

from __future__ import annotations

import inspect
import textwrap

import pytest

import ttt_magic
from tests.fakes import SENTINEL_KEY
from ttt_magic import accounting, api, chain, router
from ttt_magic.config import configure, get_config
from ttt_magic.errors import ProviderError
from ttt_magic.models import AIResponse
from ttt_magic.registry import backend_registry


@pytest.fixture
def openai_on_fake(openai_fake, tmp_path, monkeypatch):
    """``backend="openai"`` pointed at the fake, with no retries to wait for."""
    configure(openai_base_url=openai_fake.base_url, openai_api_key=SENTINEL_KEY, max_retry_wait=0.01)
    return openai_fake


def _sent(fake) -> dict:
    return fake.last.json


def _write_config(path, text: str):
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


# --------------------------------------------------------------------------- point 3: one rule for defaults


def test_backend_specific_temperature_beats_the_global_one(openai_on_fake, tmp_path, monkeypatch):
    config = _write_config(
        tmp_path / "ttt.yaml",
        """
        temperature: 0.2
        max_tokens: 50
        backends:
          openai:
            temperature: 0.9
        """,
    )
    monkeypatch.setenv("TTT_CONFIG", str(config))
    answer = ttt_magic.ask("Hi", backend="openai", model="gpt-4o-mini")
    assert answer.succeeded, answer.error
    body = _sent(openai_on_fake)
    assert body["temperature"] == 0.9  # backends.openai.temperature wins over the global 0.2
    assert body["max_tokens"] == 50  # the global value fills what the backend section leaves open


def test_call_argument_beats_backend_and_global(openai_on_fake, tmp_path, monkeypatch):
    config = _write_config(
        tmp_path / "ttt.yaml", "temperature: 0.2\nbackends: {openai: {temperature: 0.9}}\n"
    )
    monkeypatch.setenv("TTT_CONFIG", str(config))
    list(ttt_magic.stream("Hi", backend="openai", model="gpt-4o-mini", temperature=0.4))
    assert _sent(openai_on_fake)["temperature"] == 0.4


def test_backend_section_applies_when_cloud_routes_to_that_provider(openai_on_fake, tmp_path, monkeypatch):
    config = _write_config(
        tmp_path / "ttt.yaml", "temperature: 0.2\nbackends: {openai: {temperature: 0.7}}\n"
    )
    monkeypatch.setenv("TTT_CONFIG", str(config))
    answer = ttt_magic.ask("Hi", model="gpt-4o-mini")
    assert answer.succeeded and answer.backend == "cloud"
    assert _sent(openai_on_fake)["temperature"] == 0.7


def test_the_route_records_what_was_sent(openai_on_fake):
    answer = ttt_magic.ask("Hi", backend="openai", model="gpt-4o-mini", temperature=0.3)
    attempts = answer.route["attempts"]
    assert [a["outcome"] for a in attempts] == ["ok"]
    assert attempts[0]["model"] == "gpt-4o-mini"


# --------------------------------------------------------------------------- point 4: typed request fields


def test_provider_options_are_sent_verbatim(openai_on_fake):
    options = {"logit_bias": {"1234": -100}, "user": "u-42"}
    answer = ttt_magic.ask("Hi", backend="openai", model="gpt-4o-mini", options=options, top_p=0.5, seed=7)
    assert answer.succeeded, answer.error
    body = _sent(openai_on_fake)
    assert body["logit_bias"] == {"1234": -100} and body["user"] == "u-42"
    assert body["top_p"] == 0.5 and body["seed"] == 7


@pytest.mark.parametrize("entry", [ttt_magic.ask, ttt_magic.stream, ttt_magic.route])
def test_unknown_keyword_is_a_type_error_with_did_you_mean(entry):
    with pytest.raises(TypeError, match=r"'max_token'.*Did you mean 'max_tokens'"):
        entry("hi", backend="echo", max_token=5)
    with pytest.raises(TypeError, match="options="):
        entry("hi", backend="echo", logit_bias={})


def test_unknown_keyword_refused_before_anything_is_sent(openai_on_fake):
    with pytest.raises(TypeError):
        ttt_magic.ask("hi", backend="openai", progres=True)
    assert openai_on_fake.requests == []


def test_plugin_written_against_the_seed_gets_only_what_it_always_got():
    seen: list[dict] = []

    class Seedling(ttt_magic.BaseBackend):
        backend_name = "seedling"

        async def ask(self, prompt, *, model=None, system=None, temperature=None, max_tokens=None, **kwargs):
            seen.append(kwargs)
            return AIResponse(prompt.upper(), model=model or "s", backend=self.name)

    backend_registry.register_backend("seedling", Seedling)
    try:
        assert ttt_magic.ask("hi", backend="seedling") == "HI"
        assert seen == [{}]
        ttt_magic.ask("hi", backend="seedling", stop=["x"], options={"user": "u"})
        assert seen[-1] == {"stop": ["x"], "options": {"user": "u"}}
    finally:
        backend_registry.unregister("seedling")


# --------------------------------------------------------------------------- AIResponse is a str


def test_every_public_str_method_works_on_an_answer():
    text = "Hello, world\nsecond line 42"
    answer = AIResponse(text, model="m", backend="b")
    samples = {"replace": ("o", "0"), "split": (","), "join": (["a", "b"],), "count": ("o",)}
    for name in dir(str):
        if name.startswith("_"):
            continue
        method = getattr(answer, name)
        assert getattr(method, "__self__", None) is answer or name == "maketrans", name
        assert getattr(type(answer), name) is getattr(str, name), f"AIResponse shadows str.{name}"
        args = samples.get(name)
        if args is not None:
            assert method(*args) == getattr(text, name)(*args)
    assert answer.replace("\n", " ") == text.replace("\n", " ")


def test_answers_work_with_pandas_str_methods():
    import pandas as pd

    column = pd.Series([AIResponse("a\nb"), AIResponse("c\nd")])
    assert list(column.str.replace("\n", " ", regex=False)) == ["a b", "c d"]


def test_adding_a_response_field_is_one_edit():
    answer = AIResponse("x", data={"city": "Oslo"}, reasoning="because")
    copy = answer.copy_with(text="y")
    assert copy == "y" and copy.data == {"city": "Oslo"} and copy.reasoning == "because"
    import pickle

    again = pickle.loads(pickle.dumps(answer))
    assert again.data == {"city": "Oslo"} and again.reasoning == "because"
    with pytest.raises(TypeError, match="unexpected field"):
        AIResponse("x", colour="red")


# --------------------------------------------------------------------------- refusals, one way


@pytest.mark.parametrize("streamed", [False, True])
def test_openai_refusal_fails_the_same_way_streamed_or_not(openai_on_fake, streamed):
    openai_on_fake.refusal = "I can't help with that."
    if streamed:
        chunks = ttt_magic.stream("bad", backend="openai", model="gpt-4o-mini")
        text = "".join(chunks)
        answer = chunks.response
        assert text == "I can't help with that."
    else:
        answer = ttt_magic.ask("bad", backend="openai", model="gpt-4o-mini")
    assert answer.failed and "refused" in answer.error
    assert answer.text == "I can't help with that."
    assert answer.tokens_out == 4  # usage survives the failure


# --------------------------------------------------------------------------- point 5: the chain


def test_every_attempt_passes_through_the_chain_and_one_may_answer_alone(openai_on_fake):
    seen = []

    async def spy(call, proceed):
        seen.append((call.backend, call.model, call.temperature, call.stream))
        async for item in proceed(call):
            yield item

    chain.chain.add("spy", spy, order=50)
    try:
        openai_on_fake.fail_next("status", status=503)
        answer = ttt_magic.ask("Hi", backend="openai", model="gpt-4o-mini", temperature=0.5)
        assert answer.succeeded
        assert seen == [("openai", "gpt-4o-mini", 0.5, False)] * 2  # the retry went through it too
    finally:
        chain.chain.remove("spy")

    async def canned(call, proceed):
        yield "from the chain"
        yield ttt_magic.models.StreamEnd(
            model=call.model, tokens_in=1, tokens_out=3, metadata={"cached": True}
        )

    before = len(openai_on_fake.requests)
    chain.chain.add("canned", canned, order=30)
    try:
        answer = ttt_magic.ask("Hi", backend="openai", model="gpt-4o-mini")
        assert answer == "from the chain" and answer.metadata["cached"] is True
        assert len(openai_on_fake.requests) == before
    finally:
        chain.chain.remove("canned")


def test_usage_counts_attempts_by_model_and_cache_hits_cost_nothing(openai_on_fake):
    accounting.reset()
    ttt_magic.ask("Hi", backend="openai", model="gpt-4o-mini")

    async def canned(call, proceed):
        yield "hit"
        yield ttt_magic.models.StreamEnd(
            model=call.model, tokens_in=12, tokens_out=4, cost=1.0, metadata={"cached": True}
        )

    chain.chain.add("canned", canned, order=30)
    try:
        ttt_magic.ask("Hi", backend="openai", model="gpt-4o-mini")
    finally:
        chain.chain.remove("canned")
    rows = ttt_magic.usage(by="model")
    assert [(r["backend"], r["model"], r["calls"], r["cached"]) for r in rows] == [
        ("openai", "gpt-4o-mini", 2, 1)
    ]
    totals = ttt_magic.usage()
    assert totals["calls"] == 2 and totals["tokens_out"] == 8
    assert totals["cost"] == pytest.approx(rows[0]["cost"]) and totals["cost"] < 1.0  # the hit added nothing


def test_a_failure_travels_as_an_error_inside_and_a_failed_answer_outside(openai_on_fake):
    openai_on_fake.fail_next("status", status=400)
    outcome = router.StreamOutcome()
    request = router.Request("Hi", backend="openai", model="gpt-4o-mini")
    decided = router.decide(request, get_config())

    async def consume():
        async for _ in router.run(decided, request, outcome, stream=True):
            pass

    from ttt_magic import runner

    runner.run(consume())
    assert outcome.response.failed and "HTTP 400" in outcome.response.error
    assert "error_info" not in outcome.response.metadata


# --------------------------------------------------------------------------- point 6: settings


def test_scoped_settings_change_nothing_global(openai_on_fake):
    with ttt_magic.settings(temperature=0.1) as scoped:
        assert scoped.temperature == 0.1
        ttt_magic.ask("Hi", backend="openai", model="gpt-4o-mini")
        assert _sent(openai_on_fake)["temperature"] == 0.1
    assert get_config().temperature is None
    ttt_magic.ask("Hi", backend="openai", model="gpt-4o-mini")
    assert "temperature" not in _sent(openai_on_fake)
    with pytest.raises(ValueError, match="Did you mean 'temperature'"), ttt_magic.settings(temprature=0):
        pass


def test_backend_instances_survive_request_default_changes_only(openai_on_fake):
    first = backend_registry.get("openai", get_config())
    configure(temperature=0.5)
    assert backend_registry.get("openai", get_config()) is first
    configure(openai_base_url="http://127.0.0.1:9/v1")
    assert backend_registry.get("openai", get_config()) is not first


def test_model_registry_view_follows_the_settings_not_their_id():
    from ttt_magic.registry import model_registry

    configure(model_aliases={"mine": "gpt-4o-mini"})
    assert model_registry.resolve("mine", get_config()).name == "gpt-4o-mini"
    configure(model_aliases={"mine": "claude-sonnet-4-5"})
    assert model_registry.resolve("mine", get_config()).name == "claude-sonnet-4-5"


def test_public_signatures_stay_in_step():
    for entry in (api.ask, api.aask, api.stream, api.astream):
        params = inspect.signature(entry).parameters
        assert list(params)[:7] == [
            "prompt",
            "model",
            "backend",
            "system",
            "temperature",
            "max_tokens",
            "history",
        ]


def test_timeout_error_names_the_backend(openai_on_fake):
    openai_on_fake.fail_next("stall", after=3, seconds=3)
    configure(timeout=0.3, max_retries=0)
    chunks = ttt_magic.stream("Hi", backend="openai", model="gpt-4o-mini")
    text = "".join(chunks)
    assert chunks.response.failed and "openai" in chunks.response.error.lower()
    assert text and chunks.response.text == text  # the part that arrived is kept
    assert isinstance(ProviderError("x"), Exception)


# ------------------------------------------------- servers that say less, proxies that retry


def test_a_stream_without_usage_gets_estimated_tokens_marked_as_such(openai_on_fake):
    openai_on_fake.usage_style = "none"
    chunks = ttt_magic.stream("Say hello to the world", backend="openai", model="gpt-4o-mini")
    assert "".join(chunks) == "Hello, world!"
    answer = chunks.response
    assert answer.metadata["tokens_estimated"] is True
    assert answer.tokens_in > 0 and answer.tokens_out > 0
    assert answer.cost is not None  # so totals and budgets still work


def test_reported_usage_is_not_marked_estimated(openai_on_fake):
    answer = ttt_magic.ask("Hi", backend="openai", model="gpt-4o-mini")
    assert (answer.tokens_in, answer.tokens_out) == (12, 4)
    assert "tokens_estimated" not in answer.metadata


def test_per_backend_max_retries_is_honoured(openai_on_fake):
    configure(max_retries=3, backends={"openai": {"max_retries": 0}})
    openai_on_fake.fail_next("status", times=3, status=503)
    answer = ttt_magic.ask("Hi", backend="openai", model="gpt-4o-mini")
    assert answer.failed
    assert len(openai_on_fake.requests) == 1  # behind a retrying proxy: one try, no stacking
    assert [a["outcome"] for a in answer.route["attempts"]] == ["error"]
