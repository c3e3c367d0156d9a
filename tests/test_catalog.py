"""The built-in catalogue (``ttt_magic/catalog.yaml``) is well-formed data."""

from __future__ import annotations

from dataclasses import fields
from importlib import resources

import pytest
import yaml

from ttt_magic.models import ModelInfo
from ttt_magic.registry import model_registry

REQUIRED = {"name", "provider", "speed", "quality", "capabilities", "context_length"}
KNOWN = {f.name for f in fields(ModelInfo)}
PROVIDERS = {"openai", "anthropic", "google", "ollama"}
LEVELS = {"fast", "medium", "slow"}
QUALITY = {"low", "medium", "high"}
CAPABILITIES = {"text", "code", "reasoning", "vision", "responses"}  # responses: Responses API only


@pytest.fixture(scope="module")
def data():
    text = resources.files("ttt_magic").joinpath("catalog.yaml").read_text(encoding="utf-8")
    loaded = yaml.safe_load(text)
    assert set(loaded) == {"aliases", "models"}
    return loaded


@pytest.fixture(scope="module")
def entries(data):
    return data["models"]


def test_every_entry_has_only_known_fields_and_loads(entries):
    assert len(entries) >= 25
    for entry in entries:
        assert set(entry) >= REQUIRED, entry.get("name")
        assert set(entry) <= KNOWN, set(entry) - KNOWN
        info = ModelInfo(**entry)
        assert info.provider in PROVIDERS, info.name
        assert info.speed in LEVELS and info.quality in QUALITY, info.name
        assert set(info.capabilities) <= CAPABILITIES and "text" in info.capabilities, info.name
        assert isinstance(info.context_length, int) and info.context_length >= 4096, info.name


def test_prices_are_non_negative_and_paired(entries):
    for entry in entries:
        prices = [entry.get(k) for k in ("input_cost_per_mtok", "output_cost_per_mtok", "cost_per_token")]
        for price in prices:
            assert price is None or (isinstance(price, (int, float)) and price >= 0), entry["name"]
        # a known input price without the output price (or the reverse) would make costs wrong
        assert (prices[0] is None) == (prices[1] is None), entry["name"]


def test_cloud_models_cost_more_for_output(entries):
    for entry in entries:
        if entry["provider"] != "ollama" and entry.get("input_cost_per_mtok") is not None:
            assert entry["output_cost_per_mtok"] >= entry["input_cost_per_mtok"], entry["name"]


def test_no_duplicate_names_or_aliases(data, entries):
    names = [e["name"] for e in entries]
    assert len(names) == len(set(names))
    per_model = [alias for e in entries for alias in e.get("aliases", [])]
    assert len(per_model) == len(set(per_model))
    top = set(data["aliases"])
    assert not top & set(per_model), "an alias is defined twice"
    assert not (top | set(per_model)) & set(names), "an alias shadows a model name"


def test_the_five_seed_aliases_point_at_catalogued_models(data, entries):
    names = {e["name"] for e in entries}
    assert {"fast", "best", "cheap", "coding", "local"} <= set(data["aliases"])
    for alias, target in data["aliases"].items():
        assert target in names, f"{alias} -> {target} is not in the catalogue"
    by_name = {e["name"]: e for e in entries}
    assert by_name[data["aliases"]["local"]]["provider"] == "ollama"
    assert "code" in by_name[data["aliases"]["coding"]]["capabilities"]
    assert by_name[data["aliases"]["fast"]]["speed"] == "fast"


def test_every_alias_resolves_through_the_registry(data, entries):
    for alias, target in data["aliases"].items():
        assert model_registry.resolve(alias).name == target
    for entry in entries:
        for alias in entry.get("aliases", []):
            assert model_registry.resolve(alias).name == entry["name"]
        assert model_registry.resolve(entry["name"]).provider == entry["provider"]


def test_each_provider_is_covered(entries):
    counts = {p: sum(e["provider"] == p for e in entries) for p in PROVIDERS}
    assert counts["openai"] >= 8 and counts["anthropic"] >= 4
    assert counts["google"] >= 3 and counts["ollama"] >= 6


def test_cost_uses_catalogue_prices():
    info = model_registry.get_model("gpt-4o-mini")
    assert info.cost(1_000_000, 1_000_000) == pytest.approx(0.15 + 0.60)
    assert model_registry.get_model("llama3.2").cost(5000, 5000) == 0
