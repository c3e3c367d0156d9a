"""Configuration: every layer and file location, precedence, merging, provenance, bad input."""

from __future__ import annotations

import pytest

from ttt_magic.config import SCHEMA, config_files, configure, get_config, reset, subscribe
from ttt_magic.errors import ConfigError
from ttt_magic.secrets import Secret


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_defaults_have_default_source():
    cfg = get_config()
    assert cfg.default_backend == "auto"
    assert cfg.timeout == 30.0
    assert cfg.fallback_order == ["cloud", "local"]
    assert cfg.source("timeout") == "default"


@pytest.mark.parametrize(
    "relative",
    ["ttt.yaml", "ttt.yml", ".ttt.yaml", ".ttt.yml"],
)
def test_project_file_locations(tmp_path, relative):
    from pathlib import Path

    path = write(Path.cwd() / relative, "timeout: 12\n")
    cfg = get_config()
    assert cfg.timeout == 12.0
    assert cfg.source("timeout") == str(path)


@pytest.mark.parametrize(
    "relative",
    [".config/ttt/config.yaml", ".config/ttt/config.yml", ".ttt.yaml", ".ttt.yml"],
)
def test_user_file_locations(isolated_env, relative):
    path = write(isolated_env / relative, "max_retries: 7\n")
    cfg = get_config()
    assert cfg.max_retries == 7
    assert cfg.source("max_retries") == str(path)


def test_search_order_is_the_documented_one(isolated_env):
    from pathlib import Path

    names = [str(p) for p in config_files()]
    cwd = str(Path.cwd())
    assert names[:4] == [f"{cwd}/ttt.yaml", f"{cwd}/ttt.yml", f"{cwd}/.ttt.yaml", f"{cwd}/.ttt.yml"]
    assert names[4:] == [
        f"{isolated_env}/.config/ttt/config.yaml",
        f"{isolated_env}/.config/ttt/config.yml",
        f"{isolated_env}/.ttt.yaml",
        f"{isolated_env}/.ttt.yml",
    ]


def test_files_merge_key_by_key_project_over_user(isolated_env):
    from pathlib import Path

    user = write(
        isolated_env / ".config/ttt/config.yaml",
        "timeout: 5\nmax_retries: 9\nbackends:\n  local: {timeout: 60}\n",
    )
    project = write(Path.cwd() / "ttt.yaml", "timeout: 11\nbackends:\n  cloud: {default_model: x}\n")
    cfg = get_config()
    assert cfg.timeout == 11.0 and cfg.source("timeout") == str(project)
    assert cfg.max_retries == 9 and cfg.source("max_retries") == str(user)
    # mappings merge across files
    assert cfg.backends == {"local": {"timeout": 60}, "cloud": {"default_model": "x"}}
    assert str(project) in cfg.source("backends") and str(user) in cfg.source("backends")


def test_ttt_config_names_one_file(isolated_env, monkeypatch, tmp_path):
    from pathlib import Path

    write(Path.cwd() / "ttt.yaml", "timeout: 11\n")
    explicit = write(tmp_path / "elsewhere.yaml", "timeout: 3\n")
    monkeypatch.setenv("TTT_CONFIG", str(explicit))
    cfg = get_config()
    assert cfg.timeout == 3.0 and cfg.source("timeout") == str(explicit)


def test_precedence_configure_over_env_over_file(monkeypatch):
    from pathlib import Path

    write(Path.cwd() / "ttt.yaml", "timeout: 11\ndefault_backend: local\n")
    monkeypatch.setenv("TTT_TIMEOUT", "22")
    cfg = get_config()
    assert cfg.timeout == 22.0 and cfg.source("timeout") == "env TTT_TIMEOUT"
    assert cfg.default_backend == "local"
    configure(timeout=33)
    cfg = get_config()
    assert cfg.timeout == 33.0 and cfg.source("timeout") == "configure()"
    configure(timeout=None)  # None unsets the programmatic value
    assert get_config().timeout == 22.0


@pytest.mark.parametrize(
    ("var", "raw", "key", "expected"),
    [
        ("TTT_DEFAULT_BACKEND", "local", "default_backend", "local"),
        ("TTT_DEFAULT_MODEL", "fast", "default_model", "fast"),
        ("TTT_TIMEOUT", "2.5", "timeout", 2.5),
        ("TTT_MAX_RETRIES", "0", "max_retries", 0),
        ("TTT_ENABLE_FALLBACKS", "false", "enable_fallbacks", False),
        ("OLLAMA_BASE_URL", "http://box:11434/", "ollama_base_url", "http://box:11434"),
        ("OPENAI_BASE_URL", "http://127.0.0.1:1/v1", "openai_base_url", "http://127.0.0.1:1/v1"),
        ("ANTHROPIC_BASE_URL", "http://127.0.0.1:2", "anthropic_base_url", "http://127.0.0.1:2"),
        ("GEMINI_BASE_URL", "http://127.0.0.1:3", "gemini_base_url", "http://127.0.0.1:3"),
    ],
)
def test_environment_variables(monkeypatch, var, raw, key, expected):
    monkeypatch.delenv("OLLAMA_HOST", raising=False)
    monkeypatch.setenv(var, raw)
    cfg = get_config()
    assert getattr(cfg, key) == expected
    assert cfg.source(key) == f"env {var}"


def test_ollama_host_without_scheme(monkeypatch):
    monkeypatch.setenv("OLLAMA_HOST", "0.0.0.0:11434")
    assert get_config().ollama_base_url == "http://0.0.0.0:11434"


@pytest.mark.parametrize(
    ("var", "key"),
    [
        ("OPENAI_API_KEY", "openai_api_key"),
        ("ANTHROPIC_API_KEY", "anthropic_api_key"),
        ("GEMINI_API_KEY", "google_api_key"),
        ("GOOGLE_API_KEY", "google_api_key"),
        ("OPENROUTER_API_KEY", "openrouter_api_key"),
    ],
)
def test_provider_keys_from_env_are_masked(monkeypatch, var, key):
    secret = "sk-envsecret-0123456789abcd"
    monkeypatch.setenv(var, secret)
    cfg = get_config()
    assert isinstance(getattr(cfg, key), Secret)
    assert cfg.secret(key) == secret
    shown = str(cfg) + repr(cfg) + repr(getattr(cfg, key)) + str(list(cfg.rows())) + str(cfg.to_dict())
    assert secret not in shown
    assert "abcd" in shown  # the masked form shows the last four


def test_configure_api_key_as_in_the_seed():
    configure(
        default_backend="cloud",
        default_model="gpt-4o-mini",
        timeout=60,
        openai_api_key="sk-your-key-123456789",
    )
    cfg = get_config()
    assert (cfg.default_backend, cfg.default_model, cfg.timeout) == ("cloud", "gpt-4o-mini", 60.0)
    assert cfg.secret("openai_api_key") == "sk-your-key-123456789"
    assert "your-key" not in str(cfg)


def test_full_seed_schema_file_loads():
    from pathlib import Path

    write(
        Path.cwd() / "ttt.yaml",
        """
default_backend: auto
default_model: null
timeout: 30
max_retries: 3
enable_fallbacks: true
fallback_order: [cloud, local]
ollama_base_url: http://localhost:11434
model_aliases:
  fast: gpt-3.5-turbo
  best: gpt-4
  coding: claude-3-sonnet
  local: llama2
models:
  - name: my-custom-model
    provider: openai
    provider_name: ft:gpt-3.5-turbo:org:custom:id
    aliases: [custom, tuned]
    speed: fast
    quality: high
    capabilities: [text, domain-specific]
    context_length: 4096
    cost_per_token: 0.0001
backends:
  local:
    default_model: llama2
    timeout: 60
  cloud:
    default_model: gpt-3.5-turbo
    provider_order: [openai, anthropic, google]
routing:
  code_keywords: [code, function, debug]
  speed_keywords: [quick, fast, simple]
  quality_keywords: [analyze, explain, comprehensive]
  rules:
    - if: {contains: [code, python]}
      prefer_model: claude-3-sonnet
    - if: {length_gt: 200}
      prefer_model: gpt-4
""",
    )
    cfg = get_config()
    assert cfg.model_aliases["coding"] == "claude-3-sonnet"
    assert cfg.models[0]["provider_name"] == "ft:gpt-3.5-turbo:org:custom:id"
    assert cfg.backend_config("local")["timeout"] == 60
    assert cfg.backend_config("cloud")["provider_order"] == ["openai", "anthropic", "google"]
    assert cfg.routing["code_keywords"] == ["code", "function", "debug"]
    assert cfg.routing["rules"][1] == {
        "if": {"length_gt": 200},
        "prefer_model": "gpt-4",
        "prefer_backend": None,
    }


def test_backend_config_specific_wins_over_global():
    configure(timeout=10, backends={"custom": {"timeout": 99, "config": {"api_url": "http://x"}}})
    merged = get_config().backend_config("custom")
    assert merged["timeout"] == 99 and merged["api_url"] == "http://x"
    assert get_config().backend_config("other")["timeout"] == 10


def test_invalid_yaml_names_file_and_line():
    from pathlib import Path

    path = write(Path.cwd() / "ttt.yaml", "timeout: 10\nbackends:\n  local: [unclosed\n")
    with pytest.raises(ConfigError) as err:
        get_config()
    message = str(err.value)
    assert str(path) in message and "line" in message
    assert "Traceback" not in message


def test_wrong_type_names_file_key_and_expected_type():
    from pathlib import Path

    path = write(Path.cwd() / "ttt.yaml", "timeout: 10\nmax_retries: lots\n")
    with pytest.raises(ConfigError) as err:
        get_config()
    message = str(err.value)
    assert str(path) in message and "line 2" in message
    assert "max_retries" in message and "integer" in message


def test_unknown_key_in_file_gets_did_you_mean():
    from pathlib import Path

    write(Path.cwd() / "ttt.yaml", "timout: 10\n")
    with pytest.raises(ConfigError, match="did you mean 'timeout'"):
        get_config()


def test_bad_file_is_applied_all_or_nothing():
    from pathlib import Path

    path = write(Path.cwd() / "ttt.yaml", "timeout: 10\nenable_fallbacks: maybe\n")
    with pytest.raises(ConfigError):
        get_config()
    path.write_text("timeout: 10\nenable_fallbacks: false\n")
    cfg = get_config()  # fixed file: picked up without restarting
    assert cfg.timeout == 10.0 and cfg.enable_fallbacks is False


def test_nested_routing_errors_are_named():
    with pytest.raises(ConfigError, match="code_keyword"):
        configure(routing={"code_keyword": ["x"]})
    with pytest.raises(ConfigError, match="prefer_model or prefer_backend"):
        configure(routing={"rules": [{"if": {"contains": ["x"]}}]})
    with pytest.raises(ConfigError, match="length_gt"):
        configure(routing={"rules": [{"if": {"length_gt": "long"}, "prefer_model": "x"}]})


def test_configure_unknown_key_suggests():
    with pytest.raises(ConfigError, match="did you mean 'max_retries'"):
        configure(max_retry=2)
    with pytest.raises(ValueError):  # ConfigError is a ValueError
        configure(timeout="soon")


def test_configure_validates_everything_before_changing_anything():
    with pytest.raises(ConfigError):
        configure(timeout=5, max_retries=-1)
    assert get_config().timeout == 30.0


def test_bad_env_value_names_the_variable(monkeypatch):
    monkeypatch.setenv("TTT_MAX_RETRIES", "many")
    with pytest.raises(ConfigError, match="TTT_MAX_RETRIES"):
        get_config()


def test_reset_and_subscribe():
    seen = []
    unsubscribe = subscribe(lambda s: seen.append(s.default_backend))
    configure(default_backend="mock")
    reset()
    unsubscribe()
    configure(default_backend="local")
    assert seen == ["mock", "auto"]


def test_get_config_is_cached_until_something_changes():
    first = get_config()
    assert get_config() is first
    configure(timeout=3)
    assert get_config() is not first


def test_every_schema_key_has_a_doc_and_valid_default():
    for name, setting in SCHEMA.items():
        assert setting.doc, name
        if setting.default is not None:
            assert setting.convert(setting.default) == setting.default, name
