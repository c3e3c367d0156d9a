"""The ``cloud`` backend: choosing a provider adapter, and answering through each of them."""

from __future__ import annotations

import pytest

import ttt_magic
from tests.fakes.anthropic_fake import AnthropicFake
from tests.fakes.google_fake import GeminiFake
from tests.fakes.openai_fake import OpenAIFake
from ttt_magic import runner
from ttt_magic.backends.cloud import DEFAULT_MODELS, UNAVAILABLE, CloudBackend, openrouter_id
from ttt_magic.config import configure, get_config, reset
from ttt_magic.errors import BackendUnavailable, UnknownModelError
from ttt_magic.models import ModelInfo, StreamEnd
from ttt_magic.registry import model_registry

KEYS = {
    "openai": ("openai_api_key", "sk-test-openai-0123456789"),
    "anthropic": ("anthropic_api_key", "sk-ant-test-0123456789"),
    "google": ("google_api_key", "AIza-test-0123456789abcdef"),
    "openrouter": ("openrouter_api_key", "sk-or-test-0123456789"),
}


def cloud(*providers: str, **settings) -> CloudBackend:
    """A cloud backend built like the registry builds it, with keys for ``providers`` (and nothing else)."""
    reset()
    configure(**{KEYS[p][0]: KEYS[p][1] for p in providers}, **settings)
    return CloudBackend(get_config().backend_config("cloud"))


# --------------------------------------------------------------------------- choosing (no network)


def test_no_key_means_unavailable_with_the_exact_reason():
    backend = cloud()
    assert not backend.is_available
    assert backend.unavailable_reason == UNAVAILABLE
    assert "OPENAI_API_KEY, ANTHROPIC_API_KEY, GEMINI_API_KEY or OPENROUTER_API_KEY" in UNAVAILABLE
    with pytest.raises(BackendUnavailable):
        backend.choose(None)
    response = runner.run(backend.ask("x"))
    assert response.failed and "No cloud API key" in response.error


@pytest.mark.parametrize("provider", ["openai", "anthropic", "google", "openrouter"])
def test_any_one_key_makes_it_available(provider):
    assert cloud(provider).is_available


def test_model_picks_its_own_provider():
    backend = cloud("openai", "anthropic", "google", "openrouter")
    assert backend.choose("gpt-4o-mini").provider == "openai"
    assert backend.choose("claude-sonnet-4-5").provider == "anthropic"
    assert backend.choose("claude-sonnet-4-5").model == "claude-sonnet-4-5"
    assert backend.choose("flash").provider == "google"
    assert backend.choose("gemini/gemini-2.0-flash").provider == "google"
    assert backend.choose("anthropic/claude-opus-4-1").model == "anthropic/claude-opus-4-1"


def test_openrouter_serves_other_providers_models_when_only_its_key_is_set():
    backend = cloud("openrouter")
    choice = backend.choose("gpt-4o-mini")
    assert (choice.provider, choice.model, choice.name) == ("openrouter", "openai/gpt-4o-mini", "gpt-4o-mini")
    assert "OPENAI_API_KEY is not set" in choice.reason
    assert backend.choose("claude-sonnet-4-5").model == "anthropic/claude-sonnet-4.5"
    assert backend.choose("flash").model == "google/gemini-2.5-flash"
    assert backend.choose(None).model == DEFAULT_MODELS["openrouter"]


def test_provider_order_decides_between_capable_providers():
    assert cloud("openai", "openrouter").choose("gpt-4o-mini").provider == "openai"
    backend = cloud("openai", "openrouter", backends={"cloud": {"provider_order": ["openrouter", "openai"]}})
    assert backend.choose("gpt-4o-mini").provider == "openrouter"


def test_openrouter_left_out_of_provider_order_is_not_used_as_a_relay():
    backend = cloud("openrouter", backends={"cloud": {"provider_order": ["openai", "anthropic"]}})
    with pytest.raises(BackendUnavailable) as info:
        backend.choose("gpt-4o-mini")
    assert "OPENAI_API_KEY" in str(info.value)


def test_missing_provider_key_is_named():
    with pytest.raises(BackendUnavailable) as info:
        cloud("openai").choose("claude-sonnet-4-5")
    assert "ANTHROPIC_API_KEY" in str(info.value) and "OPENROUTER_API_KEY" in str(info.value)


def test_non_cloud_and_unknown_models():
    backend = cloud("openai")
    with pytest.raises(BackendUnavailable) as info:
        backend.choose("llama3.2")
    assert "local" in str(info.value)
    with pytest.raises(UnknownModelError):
        backend.choose("no-such-model-anywhere")
    assert cloud("anthropic").choose("claude-future-9").provider == "anthropic"


def test_no_model_takes_first_keyed_provider_and_a_cheap_model():
    assert cloud("google", "anthropic").choose(None).provider == "anthropic"
    assert cloud("openai").choose(None).model == model_registry.get_model("cheap").name
    for provider in ("anthropic", "google"):  # the catalogue's cheapest fast model of the provider
        name = cloud(provider).choose(None).model
        info = model_registry.get_model(name)
        assert info.provider == provider and info.speed == "fast"
        for other in model_registry.list_models(provider):
            if other.speed == "fast" and other.cost(1e6, 1e6) is not None:
                assert info.cost(1e6, 1e6) <= other.cost(1e6, 1e6)
    order = {"cloud": {"provider_order": ["google", "anthropic"]}}
    assert cloud("google", "anthropic", backends=order).choose(None).provider == "google"


def test_catalogue_without_a_fast_model_falls_back_to_our_pick(monkeypatch):
    from ttt_magic.backends import anthropic

    monkeypatch.setattr(model_registry, "list_models", lambda provider=None: [])
    assert anthropic.catalogue_default("anthropic", "fallback-model") == "fallback-model"
    assert cloud("anthropic").choose(None).model == DEFAULT_MODELS["anthropic"]


def test_configured_default_models():
    backend = cloud("openai", "anthropic", backends={"cloud": {"default_model": "claude-sonnet-4-5"}})
    choice = backend.choose(None)
    assert choice.provider == "anthropic" and choice.model == "claude-sonnet-4-5"
    assert "default_model" in choice.reason
    backend = cloud("anthropic", backends={"anthropic": {"default_model": "claude-opus-4-1"}})
    assert backend.choose(None).model == "claude-opus-4-1"


def test_adapters_get_cloud_settings_plus_their_own_section():
    backend = cloud(
        "anthropic",
        timeout=12,
        backends={"anthropic": {"max_tokens": 77, "timeout": 9}, "cloud": {"provider_order": ["anthropic"]}},
    )
    adapter = backend.adapter("anthropic")
    assert adapter.backend_config["max_tokens"] == 77 and adapter.timeout == 9
    assert backend.adapter("openai").timeout == 12
    assert backend.adapter("anthropic") is adapter


def test_openrouter_ids():
    assert openrouter_id(ModelInfo("claude-3-5-haiku-20241022", "anthropic")) == "anthropic/claude-3.5-haiku"
    assert openrouter_id(ModelInfo("gpt-4.1-nano", "openai")) == "openai/gpt-4.1-nano"
    assert openrouter_id(ModelInfo("x", "google", provider_name="gemini-2.5-pro")) == "google/gemini-2.5-pro"


def test_registry_builds_the_cloud_backend():
    from ttt_magic.registry import backend_registry

    configure(anthropic_api_key=KEYS["anthropic"][1])
    assert isinstance(backend_registry.get("cloud"), CloudBackend)
    assert backend_registry.availability("cloud") == (True, None)


# --------------------------------------------------------------------------- answering through the fakes


@pytest.fixture
def fakes(fake_factory):
    """One fake per provider, all configured with keys."""
    servers = {
        "openai": fake_factory(OpenAIFake),
        "anthropic": fake_factory(AnthropicFake),
        "google": fake_factory(GeminiFake),
        "openrouter": fake_factory(OpenAIFake, models=("openai/gpt-4o-mini", "anthropic/claude-sonnet-4.5")),
    }
    servers["openrouter"].answer = ["Relayed ", "answer."]
    configure(
        openai_base_url=servers["openai"].base_url,
        anthropic_base_url=servers["anthropic"].url,
        gemini_base_url=servers["google"].url,
        openrouter_base_url=servers["openrouter"].base_url,
        enable_fallbacks=False,
        **{setting: key for setting, key in KEYS.values()},
    )
    return servers


def _stream(backend, prompt, **kwargs):
    async def go():
        return [item async for item in backend.astream(prompt, **kwargs)]

    return runner.run(go())


@pytest.mark.parametrize(
    "model,provider", [("gpt-4o-mini", "openai"), ("claude-sonnet-4-5", "anthropic"), ("flash", "google")]
)
def test_each_provider_answers_through_cloud(fakes, model, provider):
    response = ttt_magic.ask("Hi", model=model)
    assert response.succeeded, response.error
    assert response.backend == "cloud" and response.metadata["provider"] == provider
    assert fakes[provider].requests and all(not f.requests for name, f in fakes.items() if name != provider)
    assert response.tokens_in and response.tokens_out and response.cost is not None

    stream = ttt_magic.stream("Hi", model=model)
    text = "".join(stream)
    assert text == response.text and stream.response.metadata["provider"] == provider
    assert stream.response.backend == "cloud"


def test_stream_end_carries_the_provider_and_catalogue_name(fakes):
    items = _stream(CloudBackend(get_config().backend_config("cloud")), "Hi", model="claude-sonnet-4-5")
    end = items[-1]
    assert isinstance(end, StreamEnd) and end.model == "claude-sonnet-4-5"
    assert end.metadata["provider"] == "anthropic" and "provider_reason" in end.metadata


def test_openrouter_relay_when_only_its_key_is_set(fakes):
    configure(openai_api_key=None, anthropic_api_key=None, google_api_key=None)
    response = ttt_magic.ask("Hi", model="claude-sonnet-4-5")
    assert response.succeeded, response.error
    assert response.text == "Relayed answer."
    assert response.metadata["provider"] == "openrouter" and response.model == "claude-sonnet-4-5"
    assert fakes["openrouter"].last.json["model"] == "anthropic/claude-sonnet-4.5"
    assert fakes["openrouter"].last.headers["authorization"] == "Bearer " + KEYS["openrouter"][1]
    assert response.cost is not None  # priced from the catalogue entry of the model asked for


def test_cloud_without_model_uses_the_first_keyed_provider(fakes):
    configure(openai_api_key=None)
    response = ttt_magic.ask("Hi", backend="cloud")
    assert response.succeeded and response.metadata["provider"] == "anthropic"
    expected = CloudBackend(get_config().backend_config("cloud")).default_model_for("anthropic")
    assert fakes["anthropic"].last.json["model"] == model_registry.get_model(expected).provider_name


def test_errors_come_back_with_provider_wording(fakes):
    fakes["anthropic"].fault("401")
    response = ttt_magic.ask("Hi", model="claude-sonnet-4-5")
    assert response.failed and "ANTHROPIC_API_KEY" in response.error
    assert KEYS["anthropic"][1] not in response.error


def test_models_and_status_cover_every_provider(fakes):
    backend = CloudBackend(get_config().backend_config("cloud"))
    models = runner.run(backend.models())
    wanted = ("gpt-4o-mini", "claude-haiku-4-5-20251001", "gemini-2.5-pro", "anthropic/claude-sonnet-4.5")
    for expected in wanted:
        assert expected in models
    assert len(models) == len(set(models))
    status = runner.run(backend.status())
    assert status["available"] and status["provider_order"] == ["openai", "anthropic", "google", "openrouter"]
    assert set(status["providers"]) == {"openai", "anthropic", "google", "openrouter"}
    assert all(p["available"] for p in status["providers"].values())
    assert status["providers"]["anthropic"]["default_model"] == backend.default_model_for("anthropic")


def test_status_without_keys_needs_no_network():
    status = runner.run(cloud().status())
    assert not status["available"] and status["reason"] == UNAVAILABLE
    assert all(not p["available"] for p in status["providers"].values())
