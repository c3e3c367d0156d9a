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


# --------------------------------------------------------------------------- bad input (issue #11)
# Every way a value can be wrong becomes one ConfigError line that names where it
# came from (file and line, variable, configure()) and never shows an API key.

import math  # noqa: E402
import os  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

from ttt_magic.config import MAX_DEPTH, display_path, readable  # noqa: E402

KEY = "sk-test-0123456789abcdefABCDEF"


def config_error(**env):
    """The ConfigError of the current settings, checked to be one line."""
    with pytest.raises(ConfigError) as err:
        get_config()
    message = str(err.value)
    assert "\n" not in message and message.isprintable(), message
    return message


def test_non_utf8_file_names_file_and_byte_offset():
    path = Path.cwd() / "ttt.yaml"
    path.write_bytes(b"\xff\xfe bad: \x80\n")
    message = config_error()
    assert str(path) in message and "not UTF-8" in message and "offset 0" in message
    path.write_bytes(b"timeout: 3\nsystem: caf\xe9\n")  # Latin-1, one line down
    message = config_error()
    assert "byte 0xe9 at offset 22, line 2" in message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("x: !!timestamp 2020-13-45\n", "Invalid YAML"),  # PyYAML's constructor raises ValueError
        ("x: !!int 0x\n", "Invalid YAML"),
        ("a: \x07\n", "U+0007"),  # ReaderError, whose own text has two lines
        ("[" * 700 + "]" * 700 + "\n", "nested too deeply"),  # RecursionError inside PyYAML
        ("backends:\n  x: {config: " + "[" * 60 + "]" * 60 + "}\n", f"more than {MAX_DEPTH} levels"),
        ("backends: &b\n  x: {config: *b}\n", "contains itself"),
        ("a: &a [*a]\n", "contains itself"),
        ("? [a]\n: 1\n", "unhashable"),
        (
            "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
            + "".join(f"{c}: &{c} [{', '.join(['*' + p] * 10)}]\n" for p, c in zip("abcdef", "bcdefg")),
            "values",
        ),  # an alias bomb: ten million values from seven lines
    ],
)
def test_every_way_pyyaml_fails_is_one_config_error_line(text, expected):
    path = Path.cwd() / "ttt.yaml"
    path.write_text(text)
    message = config_error()
    path.unlink()  # the fixture's teardown would parse it once more
    assert str(path) in message and expected in message


NON_FINITE = ["nan", "NaN", "inf", "-inf", "Infinity", "1e999"]


@pytest.mark.parametrize("raw", NON_FINITE)
@pytest.mark.parametrize("var", ["TTT_TIMEOUT", "TTT_REPLAY_SPEED"])
def test_non_finite_env_numbers_name_the_variable(monkeypatch, var, raw):
    monkeypatch.setenv(var, raw)
    message = config_error()
    assert f"Environment variable {var}" in message and "finite" in message


@pytest.mark.parametrize("key", ["timeout", "max_retry_wait", "temperature", "max_retries", "max_tokens"])
@pytest.mark.parametrize("raw", [".nan", ".inf", "-.inf"])
def test_non_finite_file_numbers_name_file_and_line(key, raw):
    path = write(Path.cwd() / "ttt.yaml", f"stream: true\n{key}: {raw}\n")
    message = config_error()
    assert f"{path}, line 2: {key}: expected a finite number" in message


@pytest.mark.parametrize("key", ["timeout", "max_retry_wait", "temperature", "max_retries", "replay_speed"])
@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_configure_numbers_name_configure(key, value):
    with pytest.raises(ConfigError, match=rf"Setting '{key}' \(configure\(\)\): expected a finite number"):
        configure(**{key: value})
    assert get_config().source(key) == "default"


def test_every_setting_refuses_non_finite_numbers():
    """The sibling guard: no converter, present or future, lets NaN or infinity through."""
    for setting in SCHEMA.values():
        for value in (math.nan, math.inf, -math.inf):
            with pytest.raises(ValueError):
                setting.convert(value)
        try:
            setting.convert("1")
        except ValueError:
            continue
        if isinstance(setting.convert("1"), (int, float)) and not isinstance(setting.convert("1"), bool):
            for text in NON_FINITE:
                with pytest.raises(ValueError):
                    setting.convert(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("timeout: 1e300\n", "<= 86400"),
        ("max_retries: 1000000000\n", "<= 100"),
        (f"timeout: {10**400}\n", "finite"),  # a YAML int too big for a float
        ("backends:\n  local: {timeout: .nan}\n", "local.timeout: expected a finite number"),
        ("backends:\n  local: {config: {temperature: 9}}\n", "local.config.temperature"),
        ("backends:\n  local: {probe_timeout: .inf}\n", "local.probe_timeout"),
    ],
)
def test_numbers_out_of_range_and_inside_backends(text, expected):
    write(Path.cwd() / "ttt.yaml", text)
    assert expected in config_error()


def test_backend_settings_are_checked_like_the_global_ones():
    """A key of backends.<name> named like a global setting goes through that setting's converter."""
    from ttt_magic.config import _backend_keys

    keys = _backend_keys()
    own = {"models"}  # backends.<name>.models lists that backend's model names
    for name, setting in SCHEMA.items():
        if not setting.merge and not setting.secret and name not in own:
            assert keys[name] is setting.convert, name
    configure(backends={"local": {"timeout": "12", "models": "a, b", "config": {"max_tokens": 5}}})
    local = get_config().backends["local"]
    assert local == {"timeout": 12.0, "models": ["a", "b"], "config": {"max_tokens": 5}}
    configure(backends={"local": {"timeout": None, "my_plugin_option": [1, {"x": 2}]}})
    assert get_config().backends["local"]["my_plugin_option"] == [1, {"x": 2}]


@pytest.mark.parametrize(
    ("conf", "expected"),
    [
        ({"base_url": "http://[::1"}, "base_url: expected a URL"),
        ({"base_url": "ftp://host"}, "http:// or https://"),
        ({"base_url": "http://host:port"}, "base_url: expected a URL"),
        ({"headers": {"X-Ok": "a\r\nX-Evil: 1"}}, "headers: X-Ok: the value has a line break"),
        ({"headers": {"bad name": "x"}}, "not a valid HTTP header name"),
        ({"api_key_env": "MY KEY"}, "name of an environment variable"),
        ({"class_path": "nodots"}, "package.module.ClassName"),
        ({"models": [1, 2]}, "list of strings"),
    ],
)
def test_backend_values_that_would_fail_only_at_request_time(conf, expected):
    with pytest.raises(ConfigError, match=expected):
        configure(backends={"mine": conf})


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("openai_base_url", "http://host:port"),
        ("ollama_base_url", "http://a b"),
        ("anthropic_base_url", 11434),
        ("gemini_base_url", "ftp://files.example"),
    ],
)
def test_base_urls_are_checked(key, value):
    with pytest.raises(ConfigError, match=key):
        configure(**{key: value})


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("0.0.0.0", "http://0.0.0.0"),
        ("box:11434", "http://box:11434"),
        (":11434", "http://127.0.0.1:11434"),
        ("https://[::1]:8443/", "https://[::1]:8443"),
    ],
)
def test_ollama_host_forms_that_ollama_accepts(monkeypatch, raw, expected):
    monkeypatch.setenv("OLLAMA_HOST", raw)
    assert get_config().ollama_base_url == expected


def test_custom_model_fields_are_typed():
    """The catalogue and the cost arithmetic trust ModelInfo's types; every field has a converter."""
    from dataclasses import fields as dataclass_fields

    from ttt_magic.config import _MODEL_FIELDS
    from ttt_magic.models import ModelInfo

    assert {f.name for f in dataclass_fields(ModelInfo)} <= set(_MODEL_FIELDS)
    for bad, expected in (
        ({"context_length": "lots"}, "context_length: expected an integer"),
        ({"aliases": 5}, "aliases: expected a list of strings"),
        ({"cost_per_token": math.nan}, "cost_per_token: expected a finite number"),
        ({"name": " "}, "'name' must be a non-empty string"),
    ):
        with pytest.raises(ConfigError, match=expected):
            configure(models=[{"name": "m", "provider": "openai", **bad}])
    configure(models=[{"name": "m", "provider": "openai", "aliases": "x, y", "context_length": 8.0}])
    assert get_config().models == [
        {"name": "m", "provider": "openai", "aliases": ["x", "y"], "context_length": 8}
    ]


@pytest.mark.parametrize(
    ("source", "how"),
    [("file", "default_backend: 42\n"), ("file", "default_backend: [a]\n"), ("configure", 42)],
)
def test_non_string_default_backend_is_refused(source, how):
    if source == "file":
        write(Path.cwd() / "ttt.yaml", how)
        assert "default_backend: expected a backend name (a string)" in config_error()
    else:
        with pytest.raises(ConfigError, match="expected a backend name"):
            configure(default_backend=how)


def test_configure_refuses_an_unknown_backend_with_did_you_mean():
    configure(default_backend="mock")
    with pytest.raises(ConfigError) as err:
        configure(default_backend="mok")
    message = str(err.value)
    assert "configure()" in message and "'mok'" in message and "did you mean 'mock'" in message
    assert "Registered backends:" in message and "cloud" in message and "echo" in message
    assert get_config().default_backend == "mock"  # nothing changed
    with pytest.raises(ConfigError, match="no backend is called 'bogus'"):
        configure(default_backend="bogus")


def test_configure_accepts_every_kind_of_known_backend():
    from ttt_magic.backends.base import BaseBackend
    from ttt_magic.registry import backend_registry

    for name in ("auto", "local", "cloud", "echo"):  # special word, built-ins, a built-in plugin's
        configure(default_backend=name)
    configure(  # defined in the same call
        backends={"box": {"type": "openai-compatible", "base_url": "http://127.0.0.1:9/v1"}},
        default_backend="box",
    )
    reset()
    write(Path.cwd() / "ttt.yaml", "backends:\n  filed: {type: openai-compatible}\n  tuned: {timeout: 3}\n")
    configure(default_backend="filed")  # defined in a file
    with pytest.raises(ConfigError, match="no backend is called 'tuned'"):
        configure(default_backend="tuned")  # settings for a backend are not a backend
    with pytest.raises(ConfigError, match="unknown type 'bogus'"):
        configure(backends={"new": {"type": "bogus"}}, default_backend="new")

    class Later(BaseBackend):
        backend_name = "later"

    backend_registry.register_backend("later", Later)
    try:
        configure(default_backend="later")  # registered at run time
    finally:
        backend_registry.unregister("later")


def test_env_and_file_backend_names_are_not_judged_at_load_time(tmp_path):
    """Loading env/file settings stays cheap: no registry, no plugins (a plugin may register it later)."""
    code = (
        "import sys\n"
        "from ttt_magic.config import get_config\n"
        "assert get_config().default_backend == 'mok'\n"
        "print('ttt_magic.registry' in sys.modules, 'ttt_magic.plugins' in sys.modules)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("TTT_")}
    env.update(TTT_DEFAULT_BACKEND="mok", HOME=str(tmp_path))
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "False"]


def test_ttt_config_naming_a_missing_file_is_an_error(monkeypatch, tmp_path):
    write(Path.cwd() / "ttt.yaml", "timeout: 11\n")
    missing = tmp_path / "no" / "such" / "file.yaml"
    monkeypatch.setenv("TTT_CONFIG", str(missing))
    message = config_error()
    assert f"TTT_CONFIG names the config file {missing}, which does not exist" in message
    monkeypatch.setenv("TTT_CONFIG", str(tmp_path))  # a directory: it exists, but is no file
    assert "Is a directory" in config_error()
    monkeypatch.delenv("TTT_CONFIG")
    assert get_config().timeout == 11.0


def test_paths_that_are_not_utf8_are_shown_as_escapes(monkeypatch, tmp_path):
    folder = tmp_path / os.fsdecode(b"caf\xe9")  # a Latin-1 folder name on a UTF-8 system
    path = write(folder / "ttt.yaml", "timeout: 4\n")
    monkeypatch.setenv("TTT_CONFIG", str(path))
    shown = str(tmp_path) + "/caf\\xe9/ttt.yaml"
    assert display_path(path) == shown
    cfg = get_config()
    assert cfg.source("timeout") == shown
    assert shown in str(cfg) and "\udce9" not in str(cfg)
    path.write_text("timeout: soon\n")
    assert shown in config_error()
    monkeypatch.setenv("TTT_CONFIG", str(folder / "gone.yaml"))
    assert "caf\\xe9/gone.yaml" in config_error()


def test_readable_escapes_what_would_break_a_line():
    assert readable("plain ünïcode") == "plain ünïcode"
    assert readable("a\nb\tc\x07") == "a\\nb\\tc\\x07"
    assert readable(os.fsdecode(b"\xff")) == "\\xff"
    configure(system="line one\nline two")
    row = next(r for r in get_config().rows() if r[0] == "system")
    assert row[1] == "line one\\nline two"


@pytest.mark.parametrize("name", [n for n, s in SCHEMA.items() if s.secret])
def test_every_key_setting_strips_surrounding_whitespace(monkeypatch, name):
    configure(**{name: f"  {KEY}\n"})
    assert get_config().secret(name) == KEY
    configure(**{name: Secret(f"{KEY}\r\n")})
    assert get_config().secret(name) == KEY
    for env in SCHEMA[name].env:
        reset()
        monkeypatch.setenv(env, f"{KEY}\n")
        assert get_config().secret(name) == KEY
        monkeypatch.delenv(env)
    write(Path.cwd() / "ttt.yaml", f'{name}: "\\t{KEY} "\n')
    assert get_config().secret(name) == KEY


@pytest.mark.parametrize("name", [n for n, s in SCHEMA.items() if s.secret])
@pytest.mark.parametrize("inside", [" ", "\n", "\t", "\x00", "é"])
def test_every_key_setting_refuses_whitespace_inside_without_showing_it(monkeypatch, name, inside):
    bad = KEY[:10] + inside + KEY[10:]
    with pytest.raises(ConfigError) as err:
        configure(**{name: bad})
    assert "inside it (character 11 of" in str(err.value)
    for env in SCHEMA[name].env:
        if inside == "\x00":
            continue  # the environment cannot hold a NUL
        monkeypatch.setenv(env, bad)
        message = config_error()
        assert f"Environment variable {env}" in message
        assert KEY[:10] not in message and KEY[10:] not in message
        monkeypatch.delenv(env)


def test_a_whitespace_only_key_is_no_key(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", " \n")
    assert get_config().openai_api_key is None


def test_backend_keys_are_cleaned_and_stay_plain_strings():
    configure(backends={"box": {"api_key": f"{KEY}\n", "token": f" {KEY}", "config": {"password": KEY}}})
    box = get_config().backends["box"]
    assert box["api_key"] == KEY and box["token"] == KEY and box["config"]["password"] == KEY
    assert isinstance(box["api_key"], str)
    path = write(Path.cwd() / "ttt.yaml", f'backends:\n  box:\n    api_key: "{KEY[:5]}\\n{KEY[5:]}"\n')
    message = config_error()
    assert f"{path}, line 1: backends: box.api_key: the key has a line break inside it" in message
    assert KEY[:5] not in message and KEY[5:] not in message


def test_record_and_replay_paths_refuse_nul():
    for key in ("record", "replay", "cache"):
        with pytest.raises(ConfigError, match="NUL"):
            configure(**{key: "answers\x00.jsonl"})
