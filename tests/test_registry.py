"""Model and backend registries: catalogue, aliases, custom models, requirements, class_path."""

from __future__ import annotations

import pytest

from ttt_magic import ask, configure, model_registry, register_backend
from ttt_magic.backends import BaseBackend
from ttt_magic.errors import BackendUnavailable, ConfigError, UnknownModelError
from ttt_magic.models import AIResponse, ModelInfo
from ttt_magic.registry import backend_registry


def test_list_models_by_provider():
    everything = model_registry.list_models()
    assert {m.provider for m in everything} >= {"openai", "anthropic", "google", "ollama"}
    assert all(m.provider == "anthropic" for m in model_registry.list_models(provider="anthropic"))
    assert model_registry.list_models(provider="nobody") == []


def test_seed_aliases_exist_and_resolve():
    aliases = model_registry.list_aliases()
    for alias in ("fast", "best", "cheap", "coding", "local"):
        assert alias in aliases
        assert model_registry.resolve(alias).name == model_registry.get_model(alias).name


def test_get_model_metadata():
    info = model_registry.get_model("claude-sonnet-4-5")
    assert info.provider == "anthropic" and info.quality in ("low", "medium", "high")
    assert isinstance(info.capabilities, list) and info.context_length
    assert model_registry.get_model("no-such-model") is None


def test_add_model_as_in_the_seed():
    model_registry.add_model(
        ModelInfo(
            name="my-model",
            provider="openai",
            provider_name="gpt-3.5-turbo-16k",
            aliases=["long-context", "16k"],
            speed="fast",
            quality="medium",
            capabilities=["text", "chat"],
            context_length=16384,
            cost_per_token=0.00002,
        )
    )
    try:
        assert model_registry.get_model("long-context").provider_name == "gpt-3.5-turbo-16k"
        assert model_registry.list_aliases()["16k"] == "my-model"
        assert model_registry.get_model("my-model").cost(100, 50) == pytest.approx(150 * 0.00002)
    finally:
        model_registry.remove_model("my-model")
    assert model_registry.get_model("16k") is None


def test_config_models_and_aliases_merge_in():
    configure(
        models=[
            {"name": "my-custom-model", "provider": "openai", "provider_name": "ft:x", "aliases": ["tuned"]}
        ],
        model_aliases={"fast": "gpt-3.5-turbo", "house": "tuned"},
    )
    assert model_registry.get_model("tuned").provider_name == "ft:x"
    assert model_registry.get_model("house").name == "my-custom-model"  # alias of an alias
    # An alias naming a model outside the catalogue: the provider comes from the family name.
    assert model_registry.resolve("fast").provider == "openai"


def test_provider_slash_model_without_catalogue_entry():
    info = model_registry.resolve("anthropic/claude-something-new")
    assert (info.provider, info.provider_name) == ("anthropic", "claude-something-new")
    assert model_registry.resolve("gemini/gemini-9").provider == "google"


def test_unknown_bare_name_lists_close_matches():
    with pytest.raises(UnknownModelError) as err:
        model_registry.resolve("claude-sonet-4-5")
    assert "claude-sonnet-4-5" in str(err.value)
    with pytest.raises(UnknownModelError, match="provider/model"):
        model_registry.resolve("zzzzzzzz")


class Minimal(BaseBackend):
    async def ask(self, prompt, **kw):
        return AIResponse(self.backend_config.get("greeting", "hi"), backend=self.name)


def test_register_backend_with_metadata():
    entry = register_backend("minimal", Minimal, version="1.0.0", description="d", author="me")
    try:
        assert entry.version == "1.0.0" and "minimal" in backend_registry.names()
        assert backend_registry.availability("minimal") == (True, None)
    finally:
        backend_registry.unregister("minimal")


def test_register_backend_rejects_non_backends():
    with pytest.raises(TypeError, match="BaseBackend"):
        register_backend("bad", dict)


def test_missing_requirement_marks_unavailable_with_reason():
    register_backend("needy", Minimal, requires=["surely_not_installed_pkg"])
    try:
        ok, reason = backend_registry.availability("needy")
        assert not ok and "surely_not_installed_pkg" in reason and "pip install" in reason
        with pytest.raises(BackendUnavailable):
            backend_registry.get("needy")
        response = ask("x", backend="needy")
        assert response.failed and "surely_not_installed_pkg" in response.error
    finally:
        backend_registry.unregister("needy")


def test_backend_config_reaches_the_backend():
    register_backend("minimal", Minimal)
    configure(backends={"minimal": {"greeting": "hello from config"}})
    try:
        assert ask("x", backend="minimal") == "hello from config"
    finally:
        backend_registry.unregister("minimal")


def test_instances_follow_configuration_changes():
    register_backend("minimal", Minimal)
    try:
        first = backend_registry.get("minimal")
        assert backend_registry.get("minimal") is first
        configure(backends={"minimal": {"greeting": "changed"}})
        assert backend_registry.get("minimal") is not first
    finally:
        backend_registry.unregister("minimal")


def test_unknown_backend_type_in_config():
    configure(backends={"x": {"type": "carrier-pigeon"}})
    with pytest.raises(ConfigError, match="openai-compatible"):
        backend_registry.names()


def test_class_path_that_does_not_import_is_unavailable_not_fatal():
    configure(backends={"ghost": {"class_path": "no_such_module.Ghost"}})
    ok, reason = backend_registry.availability("ghost")
    assert not ok and "no_such_module" in reason
