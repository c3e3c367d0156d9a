"""Router: each decision step, rules, keywords, retries with Retry-After on a fake clock, fallbacks."""

from __future__ import annotations

import pytest

import ttt_magic
from ttt_magic import ask, configure, route, stream
from ttt_magic import router as router_module
from ttt_magic.backends import BaseBackend
from ttt_magic.errors import ProviderError, UnknownModelError, UsageError
from ttt_magic.models import AIResponse, StreamEnd
from ttt_magic.registry import backend_registry


class Scripted(BaseBackend):
    """Fails according to a script shared by the test, then answers."""

    backend_name = "scripted"
    script: list = []
    calls: list = []

    @property
    def name(self):
        return self.backend_config.get("name", "scripted")

    async def astream(self, prompt, *, model=None, **kwargs):
        type(self).calls.append((self.name, model))
        step = type(self).script.pop(0) if type(self).script else "ok"
        if isinstance(step, ProviderError) and not getattr(step, "after_text", False):
            raise step
        yield f"{self.name}:"
        yield prompt
        if isinstance(step, ProviderError):
            raise step
        yield StreamEnd(model=model, tokens_in=3, tokens_out=2)


class Down(BaseBackend):
    backend_name = "down"

    @property
    def is_available(self):
        return False

    @property
    def unavailable_reason(self):
        return "down for maintenance"

    async def ask(self, prompt, **kw):
        raise AssertionError("never called")


@pytest.fixture
def fake_sleep(monkeypatch):
    waits = []

    async def record(seconds):
        waits.append(seconds)

    monkeypatch.setattr(router_module, "sleep", record)
    return waits


@pytest.fixture
def backends():
    Scripted.script, Scripted.calls = [], []
    for name in ("primary", "secondary"):
        backend_registry.register_backend(name, Scripted)
    backend_registry.register_backend("down", Down)
    configure(fallback_order=["primary", "secondary"], max_retries=2)
    yield Scripted
    for name in ("primary", "secondary", "down"):
        backend_registry.unregister(name)


def error(status, retry_after=None, after_text=False):
    exc = ProviderError(f"HTTP {status}", status=status, retry_after=retry_after)
    exc.after_text = after_text
    return exc


# ----------------------------------------------------------------- decisions


def test_explicit_backend_wins(backends):
    decided = route("write python code", backend="secondary")
    assert (decided.backend, decided.model) == ("secondary", None)
    assert "given explicitly" in decided.steps[0]
    assert decided.fallbacks == []


def test_model_provider_picks_backend():
    decided = route("hi", model="claude-sonnet-4-5")
    assert decided.backend == "cloud" and decided.model == "claude-sonnet-4-5"
    assert "anthropic" in decided.steps[0]
    assert route("hi", model="ollama/qwen2.5:0.5b").backend == "local"
    assert route("hi", model="openrouter/meta-llama/llama-3.1-8b").backend == "cloud"


def test_alias_resolves():
    decided = route("hi", model="local")
    assert decided.backend == "local"
    assert "alias" in decided.steps[0]


def test_unknown_model_raises_with_close_matches():
    with pytest.raises(UnknownModelError) as err:
        route("hi", model="gpt-4o-mimi")
    assert "gpt-4o-mini" in str(err.value)


def test_unknown_backend_raises_with_suggestion(backends):
    with pytest.raises(UsageError, match="primary"):
        route("hi", backend="primari")


@pytest.mark.parametrize(
    ("prompt", "alias"),
    [("please debug this function", "coding"), ("a quick summary", "fast"), ("explain entropy", "best")],
)
def test_keywords_pick_aliases(backends, prompt, alias):
    configure(
        routing={"code_keywords": ["debug"], "speed_keywords": ["quick"], "quality_keywords": ["explain"]},
        model_aliases={alias: "primary/m-" + alias},
    )
    decided = route(prompt)
    assert decided.backend == "primary" and decided.model == "primary/m-" + alias
    assert "keyword" in " ".join(decided.steps)


def test_keywords_match_whole_words_only(backends):
    configure(default_backend="secondary", routing={"code_keywords": ["code"]})
    assert route("the barcode scanner").backend == "secondary"


def test_keywords_respect_a_fixed_default_backend(backends):
    configure(default_backend="secondary")
    decided = route("write code please")
    assert decided.backend == "secondary"
    assert "default_backend is 'secondary'" in " ".join(decided.steps)


def test_rules_contains_and_length(backends):
    configure(
        default_backend="secondary",
        routing={
            "rules": [
                {"if": {"contains": ["sql"]}, "prefer_backend": "primary"},
                {"if": {"length_gt": 20}, "prefer_model": "primary/long"},
            ]
        },
    )
    assert route("some SQL please").backend == "primary"
    long = route("x" * 30)
    assert (long.backend, long.model) == ("primary", "primary/long")
    assert "rule 2" in " ".join(long.steps)
    assert route("short").backend == "secondary"


def test_default_model_then_default_backend(backends):
    configure(default_model="primary/x")
    decided = route("anything")
    assert (decided.backend, decided.model) == ("primary", "primary/x")
    configure(
        default_model=None, default_backend="secondary", backends={"secondary": {"default_model": "s1"}}
    )
    decided = route("anything")
    assert (decided.backend, decided.model) == ("secondary", "s1")


def test_availability_skips_unavailable_choices(backends):
    configure(default_backend="down", fallback_order=["primary"])
    decided = route("hello")
    assert decided.backend is None
    assert "down for maintenance" in decided.explain()
    configure(
        routing={"rules": [{"if": {"contains": ["hello"]}, "prefer_backend": "down"}]},
        default_backend="primary",
    )
    decided = route("hello")
    assert decided.backend == "primary"
    assert "unavailable: down for maintenance" in decided.explain()


def test_auto_with_nothing_available_says_what_to_do():
    response = ask("hello")
    assert response.failed
    for hint in ("OPENAI_API_KEY", "ollama serve", "mock"):
        assert hint in response.error
    assert response.route["backend"] is None


def test_bad_arguments_raise_before_any_request(backends):
    with pytest.raises(UsageError, match="max_tokens"):
        ask("x", backend="primary", max_tokens=-1)
    with pytest.raises(UsageError, match="temperature"):
        ask("x", backend="primary", temperature=3)
    with pytest.raises(ValueError):
        ask("x", backend="primary", temperature="hot")
    assert Scripted.calls == []


# ----------------------------------------------------------------- execution


def test_retry_honours_retry_after_then_succeeds(backends, fake_sleep):
    configure(default_backend="primary")
    Scripted.script = [error(429, retry_after=7), error(503)]
    response = ask("hi")
    assert response.succeeded and response == "primary:hi"
    assert fake_sleep[0] == 7  # the server's Retry-After
    assert 0 < fake_sleep[1] <= 1.0  # exponential backoff with jitter: second retry step is 1 s at most
    outcomes = [a["outcome"] for a in response.route["attempts"]]
    assert outcomes == ["retry", "retry", "ok"]
    assert response.route["attempts"][1]["wait"] == 7


def test_retry_after_is_capped(backends, fake_sleep):
    configure(default_backend="primary", max_retry_wait=5)
    Scripted.script = [error(429, retry_after=3600)]
    assert ask("hi").succeeded
    assert fake_sleep == [5]


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
def test_client_errors_are_not_retried(backends, fake_sleep, status):
    configure(default_backend="primary", enable_fallbacks=False)
    Scripted.script = [error(status)]
    response = ask("hi")
    assert response.failed and f"HTTP {status}" in response.error
    assert fake_sleep == [] and len(Scripted.calls) == 1


@pytest.mark.parametrize("status", [408, 409, 429, 500, 502, 503, 504, 529])
def test_retryable_statuses(backends, fake_sleep, status):
    configure(default_backend="primary", enable_fallbacks=False)
    Scripted.script = [error(status)]
    assert ask("hi").succeeded
    assert len(fake_sleep) == 1


def test_retries_exhausted_then_fallback(backends, fake_sleep):
    configure(default_backend="primary", max_retries=1)
    Scripted.script = [error(500), error(500)]
    response = ask("hi")
    assert response.succeeded and response.backend == "secondary"
    assert [c[0] for c in Scripted.calls] == ["primary", "primary", "secondary"]
    assert [a["backend"] for a in response.route["attempts"]] == ["primary", "primary", "secondary"]


def test_fallbacks_disabled(backends, fake_sleep):
    configure(default_backend="primary", max_retries=0, enable_fallbacks=False)
    Scripted.script = [error(500)]
    response = ask("hi")
    assert response.failed and response.error == "HTTP 500"


def test_explicit_backend_does_not_fall_back(backends, fake_sleep):
    configure(max_retries=0)
    Scripted.script = [error(500)]
    assert ask("hi", backend="primary").failed
    assert [c[0] for c in Scripted.calls] == ["primary"]


def test_unavailable_backend_falls_back(backends):
    configure(default_model=None, default_backend="primary", fallback_order=["down", "secondary"])
    Scripted.script = [error(401)]
    response = ask("hi")
    assert response.backend == "secondary"
    attempts = response.route["attempts"]
    assert [a["outcome"] for a in attempts] == ["error", "unavailable", "ok"]
    assert "down for maintenance" in attempts[1]["error"]


def test_stream_falls_back_before_first_chunk(backends, fake_sleep):
    configure(default_backend="primary", max_retries=0)
    Scripted.script = [error(503)]
    answer = stream("hi")
    assert "".join(answer) == "secondary:hi"
    assert answer.response.backend == "secondary" and answer.response.succeeded


def test_stream_failure_after_first_chunk_keeps_text(backends, fake_sleep):
    configure(default_backend="primary")
    Scripted.script = [error(503, after_text=True)]
    answer = stream("hi")
    assert list(answer) == ["primary:", "hi"]
    response = answer.response
    assert response == "primary:hi" and response.failed
    assert "cut off" in response.error and "HTTP 503" in response.error
    assert fake_sleep == [] and len(Scripted.calls) == 1  # no retry, no fallback after text


def test_timeout_is_per_attempt(backends, fake_sleep):
    import asyncio

    class Slow(BaseBackend):
        async def ask(self, prompt, **kw):
            await asyncio.sleep(5)
            return AIResponse("late")

    backend_registry.register_backend("slow", Slow)
    try:
        configure(timeout=0.05, max_retries=1)
        response = ask("hi", backend="slow")
        assert response.failed and "within 0.05 s" in response.error
        assert [a["outcome"] for a in response.route["attempts"]] == ["retry", "error"]
    finally:
        backend_registry.unregister("slow")


def test_usage_and_cost_from_catalogue(backends):
    ttt_magic.model_registry.add_model(
        ttt_magic.ModelInfo(
            name="priced", provider="primary", input_cost_per_mtok=1_000_000, output_cost_per_mtok=2_000_000
        )
    )
    try:
        response = ask("hi", model="priced")
        assert (response.tokens_in, response.tokens_out) == (3, 2)
        assert response.cost == pytest.approx(3 * 1 + 2 * 2)
    finally:
        ttt_magic.model_registry.remove_model("priced")


def test_plugin_exception_becomes_failed_response():
    class Broken(BaseBackend):
        async def ask(self, prompt, **kw):
            raise RuntimeError("kaboom")

    backend_registry.register_backend("broken", Broken)
    try:
        response = ask("hi", backend="broken")
        assert response.failed and "kaboom" in response.error
    finally:
        backend_registry.unregister("broken")


def test_route_explain_mentions_every_step(backends):
    configure(default_backend="primary")
    text = route("hello").explain()
    assert "primary" in text and "default_backend" in text and "fallbacks: secondary" in text


def test_stream_idle_timeout_retries_before_first_chunk(backends, fake_sleep):
    import asyncio

    class Stalls(BaseBackend):
        calls = 0

        async def astream(self, prompt, **kw):
            type(self).calls += 1
            if type(self).calls == 1:
                await asyncio.sleep(5)  # silent: longer than the timeout
            yield "late but fine"

    backend_registry.register_backend("stalls", Stalls)
    try:
        configure(timeout=0.1, max_retries=1)
        answer = stream("hi", backend="stalls")
        assert "".join(answer) == "late but fine"
        attempts = answer.response.route["attempts"]
        assert [a["outcome"] for a in attempts] == ["retry", "ok"]
        assert "sent nothing for 0.1 s" in attempts[0]["error"]
    finally:
        backend_registry.unregister("stalls")


def test_stream_idle_timeout_counts_silence_not_total_time(backends):
    import asyncio

    class Steady(BaseBackend):
        async def astream(self, prompt, **kw):
            for i in range(6):
                await asyncio.sleep(0.04)  # each gap < timeout, total > timeout
                yield f"{i}"

    backend_registry.register_backend("steady", Steady)
    try:
        configure(timeout=0.15)
        answer = stream("hi", backend="steady")
        assert "".join(answer) == "012345" and answer.response.succeeded
    finally:
        backend_registry.unregister("steady")


def test_stream_idle_timeout_after_text_keeps_it(backends):
    import asyncio

    class HalfThenSilent(BaseBackend):
        async def astream(self, prompt, **kw):
            yield "half "
            await asyncio.sleep(5)
            yield "never"

    backend_registry.register_backend("half", HalfThenSilent)
    try:
        configure(timeout=0.1)
        answer = stream("hi", backend="half")
        assert list(answer) == ["half "]
        assert answer.response == "half " and "cut off" in answer.response.error
    finally:
        backend_registry.unregister("half")


def test_request_defaults_come_from_configuration(backends):
    seen = {}

    class Spy(BaseBackend):
        async def ask(self, prompt, *, system=None, temperature=None, max_tokens=None, **kw):
            seen.update(system=system, temperature=temperature, max_tokens=max_tokens)
            return AIResponse("ok")

    backend_registry.register_backend("spy", Spy)
    try:
        configure(system="Be brief.", temperature=0.3, max_tokens=50)
        ask("hi", backend="spy")
        assert seen == {"system": "Be brief.", "temperature": 0.3, "max_tokens": 50}
        ask("hi", backend="spy", temperature=1.0, system="Other")
        assert seen == {"system": "Other", "temperature": 1.0, "max_tokens": 50}
    finally:
        backend_registry.unregister("spy")


def test_unknown_default_model_goes_to_a_fixed_default_backend(backends):
    configure(default_backend="secondary", default_model="served-only-by-secondary")
    decided = route("hello")
    assert (decided.backend, decided.model) == ("secondary", "served-only-by-secondary")
    assert "as given" in decided.explain()


def test_failed_answer_keeps_the_text_the_backend_sent():
    class Blocked(BaseBackend):
        async def ask(self, prompt, **kw):
            return AIResponse("partial text", error="blocked by a safety filter")

    backend_registry.register_backend("blocked", Blocked)
    try:
        response = ask("hi", backend="blocked")
        assert response.failed and response == "partial text"
    finally:
        backend_registry.unregister("blocked")
