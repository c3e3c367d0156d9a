"""The standing guard of issue #11: bad input never gets a traceback, and never shows a key.

Random and mutated configuration files (random bytes, YAML of every shape, wrong
types, NaN, huge numbers, deep nesting), random ``TTT_*`` variables and random
``configure()`` calls go into config loading and into ``python -m ttt_magic``
(in process). Whatever happens must be the package's own error, as one line, or
a clean exit code; the sentinel API key set in the environment must appear in no
output. The names fuzzed come from the schema, so a new setting or variable is
covered the day it is added.

Nothing here can reach the network: settings that name hosts, classes to import
or files to write are left out of the random draw, and a socket guard refuses
every connection that is not to loopback.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import os
import socket

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ttt_magic import config
from ttt_magic.cli import main
from ttt_magic.config import SCHEMA
from ttt_magic.errors import TTTError

SENTINEL = "sk-test-SENTINEL-0123456789abcdef"
KEY_VARS = tuple(env for s in SCHEMA.values() if s.secret for env in s.env)

#: Settings left out of the random draw: hosts (network), files to write, classes to import.
UNSAFE_SETTINGS = {name for name in SCHEMA if name.endswith("_base_url")} | {"record", "replay", "cache"}
UNSAFE_NESTED = {"base_url", "class_path", "host", "url"}
SAFE_SETTINGS = sorted(set(SCHEMA) - UNSAFE_SETTINGS)
FUZZED_VARS = sorted(
    {"TTT_CONFIG"}
    | {env for name, s in SCHEMA.items() if name not in UNSAFE_SETTINGS and not s.secret for env in s.env}
)
#: Keys a backend's settings may hold (the schema's, and the backend-only ones).
NESTED_KEYS = sorted(
    {*SAFE_SETTINGS, "config", "api_key", "token", "api_key_env", "models", "provider_order", "headers"}
    | {"probe_timeout", "probe_ttl", "models_ttl", "api_version", "type"}
)

GUARD = settings(
    max_examples=30,
    deadline=None,
    database=None,  # nothing written into the working tree
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# --------------------------------------------------------------------------- strategies

TRICKY_TEXT = [
    ".nan",
    ".inf",
    "-.inf",
    "nan",
    "inf",
    "1e999",
    "-1",
    "0",
    "",
    " ",
    "\n",
    "~",
    "null",
    "yes",
    "no",
    "mok",
    "auto",
    "mock",
    "cloud",
    "local",
    "gpt-4o-mimi",
    "0x10",
    "١٢",
    "\t",
    "a,b",
    "[]",
    "{}",
]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**6), max_value=10**6),
    st.integers(min_value=10**15, max_value=10**400),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(TRICKY_TEXT),
)


def safe_key(key: object) -> bool:
    return not (isinstance(key, str) and any(key.lower().endswith(u) for u in UNSAFE_NESTED))


nested_keys = st.one_of(st.sampled_from(NESTED_KEYS), st.text(max_size=8).filter(safe_key))
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(nested_keys, inner, max_size=4),
    max_leaves=16,
)
backend_settings = st.dictionaries(nested_keys, values, max_size=5) | values
backends = st.dictionaries(
    st.sampled_from(["local", "cloud", "mock", "echo", "openai", "mine"]) | st.text(max_size=6),
    backend_settings | st.fixed_dictionaries({"type": st.sampled_from(["openai-compatible", "ollama", "x"])}),
    max_size=3,
)


def plausible(name: str) -> st.SearchStrategy[object]:
    """Values of the right type for the setting (most valid, some at the edges), to get past validation."""
    default = SCHEMA[name].default
    if isinstance(default, bool):
        return st.booleans()
    if isinstance(default, (int, float)):
        return st.integers(0, 200) | st.floats(0, 100) | st.sampled_from([0.001, 86400, 10**6])
    if isinstance(default, list):
        return st.lists(st.sampled_from(["cloud", "local", "mock", "echo", "nope", ""]), max_size=3)
    if isinstance(default, dict):
        return st.dictionaries(st.text(max_size=6), st.text(max_size=6), max_size=3)
    return st.one_of(
        st.text(max_size=10),
        st.sampled_from(["mock", "echo", "local", "cloud", "fast", "best", "mock-1", "gpt-4o-mini", "0.5"]),
        st.integers(0, 2),
        st.floats(0, 2),
    )


plausible_backend = st.dictionaries(
    st.sampled_from(NESTED_KEYS),
    st.one_of(st.text(max_size=8), st.integers(0, 100), st.floats(0, 60), st.booleans(), st.none()),
    max_size=4,
)
rule = st.fixed_dictionaries(
    {"prefer_backend": st.sampled_from(["mock", "nope", "local", ""])},
    optional={
        "if": st.fixed_dictionaries(
            {},
            optional={"contains": st.lists(st.text(max_size=4), max_size=2), "length_gt": st.integers(0, 50)},
        ),
        "prefer_model": st.sampled_from(["fast", "mock-1", "zz", ""]),
    },
)
model_entry = st.fixed_dictionaries(
    {"name": st.text(max_size=8), "provider": st.sampled_from(["mock", "openai", "ollama", "nobody"])},
    optional={
        "aliases": st.lists(st.sampled_from(["fast", "best", "coding", "x"]), max_size=2),
        "context_length": st.integers(0, 10**6),
        "input_cost_per_mtok": st.floats(0, 100),
        "speed": st.sampled_from(["fast", "slow", ""]),
    },
)
#: Per setting, values of its type (most accepted): to get past validation into routing and display.
typed_values = {name: plausible(name) for name in SAFE_SETTINGS}
typed_values["backends"] = st.dictionaries(
    st.sampled_from(["local", "mock", "x"]), plausible_backend, max_size=2
)
typed_values["routing"] = st.fixed_dictionaries(
    {},
    optional={
        "code_keywords": st.lists(st.text(max_size=5), max_size=3),
        "rules": st.lists(rule, max_size=2),
    },
)
typed_values["models"] = st.lists(model_entry, max_size=2)
for _name in SAFE_SETTINGS:
    if SCHEMA[_name].secret:
        typed_values[_name] = st.text("abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=24)
#: Per setting, anything: its type, or any shape at all.
setting_values = {name: typed_values[name] | values for name in SAFE_SETTINGS}
setting_values["backends"] |= backends
accepted_documents = st.lists(
    st.sampled_from(SAFE_SETTINGS).flatmap(lambda k: st.tuples(st.just(k), typed_values[k])),
    max_size=8,
).map(dict)
documents = st.one_of(
    accepted_documents,
    st.lists(
        st.sampled_from(SAFE_SETTINGS).flatmap(lambda k: st.tuples(st.just(k), setting_values[k])),
        max_size=6,
    ).map(dict),
    st.dictionaries(st.sampled_from([*SAFE_SETTINGS, "timout", "backend"]) | scalars, values, max_size=4),
    values,  # a list or scalar at the top
)


def dumped(doc: object) -> bytes:
    return yaml.safe_dump(doc, allow_unicode=True).encode()


SEED_FILE = dumped(
    {
        "default_backend": "mock",
        "timeout": 12,
        "max_retries": 2,
        "model_aliases": {"fast": "mock-fast"},
        "models": [{"name": "m1", "provider": "mock", "aliases": ["one"], "context_length": 4096}],
        "backends": {
            "local": {"timeout": 60, "default_model": "llama3.2"},
            "cloud": {"provider_order": ["openai"]},
        },
        "routing": {
            "code_keywords": ["code"],
            "rules": [{"if": {"length_gt": 10}, "prefer_backend": "mock"}],
        },
        "temperature": 0.5,
        "system": "be brief",
    }
)

RAW_YAML = [
    b"a: &a [*a]\n",
    b"backends: &b {x: {config: *b}}\n",
    b"timeout: !!timestamp 2020-13-45\n",
    b"timeout: !!binary '%%%'\n",
    b"timeout: !!python/object:os.system x\n",
    b"? [a]\n: 1\n",
    b"---\ntimeout: 1\n---\ntimeout: 2\n",
    b"%YAML 1.2\n---\ntimeout: 1\n",
    b"<<: {timeout: 3}\ntimeout: 4\n",
    b"timeout:\t3\n",
    b"\xef\xbb\xbftimeout: 5\n",
    b"\xff\xfe bad: \x80\n",
    b"a: \x07\n",
]


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """The seed file with a few bytes replaced, inserted or deleted."""
    data = bytearray(SEED_FILE)
    for _ in range(draw(st.integers(1, 6))):
        at = draw(st.integers(0, len(data) - 1))
        action = draw(st.sampled_from(["replace", "insert", "delete"]))
        byte = draw(st.integers(0, 255))
        if action == "replace":
            data[at] = byte
        elif action == "insert":
            data.insert(at, byte)
        elif len(data) > 1:
            del data[at]
    return bytes(data)


nesting = st.builds(
    lambda n, kind: ("[" * n + "]" * n) if kind else ("backends: " + "{a: " * n + "1" + "}" * n),
    st.integers(1, 200),  # past MAX_DEPTH; PyYAML's own RecursionError (~600) is test_config's
    st.booleans(),
).map(str.encode)

config_files = st.one_of(
    st.binary(max_size=200),
    documents.map(dumped),
    mutated(),
    nesting,
    st.sampled_from(RAW_YAML),
)


def env_text() -> st.SearchStrategy[str]:
    """What an environment variable can hold: any bytes but NUL, as Python decodes them."""
    raw = st.binary(max_size=24).map(lambda b: os.fsdecode(b.replace(b"\0", b"")))
    text = st.text(st.characters(blacklist_characters="\0"), max_size=12)
    return st.one_of(raw, st.sampled_from(TRICKY_TEXT), text)


def env_value(name: str) -> st.SearchStrategy[str]:
    if name == "TTT_CONFIG":
        return st.sampled_from(["ttt.yaml", "missing.yaml", ".", "/", "~/nothing.yaml"]) | env_text()
    return env_text()


env_vars = st.dictionaries(st.sampled_from(FUZZED_VARS), st.none(), max_size=5).flatmap(
    lambda names: st.fixed_dictionaries({name: env_value(name) for name in names})
)


def paste(before: str, after: str, inside: str, at: int) -> str:
    return before + SENTINEL[:at] + inside + SENTINEL[at:] + after


#: The sentinel key as pasted: whitespace around it, sometimes a character inside.
pasted_keys = st.builds(
    paste,
    st.sampled_from(["", " ", "\n", "\t", "\r\n", "\u00a0"]),
    st.sampled_from(["", " ", "\n", "\r\n", "  \n"]),
    st.sampled_from(["", "", "", "", " ", "\n", "\t", "\x01", "é"]),
    st.integers(1, len(SENTINEL) - 1),
)

# --------------------------------------------------------------------------- the checks

_examples = itertools.count()


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch):
    """A safety net under the exclusions above: no connection leaves this machine."""
    real_connect = socket.socket.connect
    real_getaddrinfo = socket.getaddrinfo

    def local(host: object) -> bool:
        text = host.decode() if isinstance(host, bytes) else str(host)
        return text in ("localhost", "::1", "") or text.startswith("127.")

    def connect(sock, address):
        if sock.family in (socket.AF_INET, socket.AF_INET6) and not local(address[0]):
            raise OSError(f"test guard: no connection to {address[0]!r}")
        return real_connect(sock, address)

    def getaddrinfo(host, *args, **kwargs):
        if host is not None and not local(host):
            raise socket.gaierror(f"test guard: no lookup of {host!r}")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


@contextlib.contextmanager
def fresh_example(monkeypatch, tmp_path, env: dict[str, str], key: str, file: bytes | None):
    """A new working directory (so no cached file is reused), the example's variables and key."""
    folder = tmp_path / f"example-{next(_examples)}"
    folder.mkdir()
    with monkeypatch.context() as patch:
        patch.chdir(folder)
        for name in list(os.environ):
            if name.startswith("TTT_") and name != "TTT_MOCK_DELAY":
                patch.delenv(name)
        for name in KEY_VARS:
            patch.setenv(name, key)
        for name, value in env.items():
            patch.setenv(name, value)
        if file is not None:
            (folder / "ttt.yaml").write_bytes(file)
        config.reset()
        try:
            yield
        finally:
            config.reset()


def assert_clean(text: str) -> None:
    """No piece of the sentinel longer than the masked form's four characters (a pasted key may be split)."""
    for start in range(len(SENTINEL) - 9):
        assert SENTINEL[start : start + 10] not in text, f"key shown: {text!r}"


def assert_one_line_error(exc: TTTError) -> None:
    message = str(exc)
    assert message and "\n" not in message and message.isprintable(), repr(message)
    assert_clean(message)


def load_and_show() -> None:
    """Load the settings and show them every way they can be shown; errors must be TTTErrors."""
    try:
        cfg = config.get_config()
    except TTTError as exc:
        assert_one_line_error(exc)
        return
    shown = [str(cfg), repr(cfg), str(list(cfg.rows())), str(cfg.to_dict())]
    shown += [str(cfg.backend_config(name)) for name in cfg.backends]
    assert_clean("\n".join(shown))


def run_cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


CLI_COMMANDS = [
    ("config",),
    ("config", "--json"),
    ("status",),
    ("status", "--json"),
    ("models", "--json"),
    ("route", "write code"),
    ("route", "write code", "--json"),
    ("ask", "hello", "-b", "mock", "--no-stream", "-q"),
    ("ask", "hello", "-b", "echo"),
]


def lone_surrogates(value: object) -> list[str]:
    """Strings in decoded JSON that still hold an undecodable byte as a surrogate."""
    if isinstance(value, str):
        return [value] if any("\ud800" <= c <= "\udfff" for c in value) else []
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in lone_surrogates(k) + lone_surrogates(v)]
    if isinstance(value, list):
        return [s for v in value for s in lone_surrogates(v)]
    return []


def check_cli(argv: tuple[str, ...]) -> None:
    code, out, err = run_cli(*argv)
    assert code in (0, 1, 2), (argv, code, err)
    assert len(err.splitlines()) <= 1, (argv, err)  # one message (or the footer), never a traceback
    if code:
        assert err.startswith("Error: "), (argv, err)
    assert_clean(out + err)
    if "--json" in argv and out:
        assert not lone_surrogates(json.loads(out)), out  # JSON readers get text, not surrogates


# --------------------------------------------------------------------------- the guard


@GUARD
@given(file=config_files, env=env_vars, key=pasted_keys)
def test_config_loading_never_raises_anything_but_its_own_errors(monkeypatch, tmp_path, file, env, key):
    with fresh_example(monkeypatch, tmp_path, env, key, file):
        load_and_show()


configure_calls = st.lists(
    st.sampled_from([*SAFE_SETTINGS, "timout"]).flatmap(
        lambda k: st.tuples(st.just(k), setting_values.get(k, values))
    ),
    min_size=1,
    max_size=4,
).map(dict)


@GUARD
@given(changes=configure_calls, key=pasted_keys)
def test_configure_refuses_with_its_own_errors_and_changes_nothing(monkeypatch, tmp_path, changes, key):
    with fresh_example(monkeypatch, tmp_path, {}, key, None):
        try:
            before = config.get_config().to_dict()
        except TTTError:  # the pasted key in the environment may be refused
            before = None
        try:
            config.configure(**changes)
        except TTTError as exc:
            assert_one_line_error(exc)
            if before is not None:
                assert config.get_config().to_dict() == before  # all or nothing
        load_and_show()


@GUARD
@given(
    # a third of the files are accepted, so the commands get past loading into routing and display
    file=st.one_of(accepted_documents.map(dumped), config_files, st.none()),
    env=st.just({}) | env_vars,
    key=st.builds(paste, st.just(" "), st.just("\n"), st.just(""), st.just(1)) | pasted_keys,
    command=st.sampled_from(CLI_COMMANDS),
)
def test_cli_answers_bad_configuration_with_one_line_and_an_exit_code(
    monkeypatch, tmp_path, file, env, key, command
):
    with fresh_example(monkeypatch, tmp_path, env, key, file):
        check_cli(command)


@pytest.mark.parametrize("command", CLI_COMMANDS)
def test_the_guard_sees_a_leak_and_a_traceback(monkeypatch, tmp_path, command):
    """The guard's own checks bite: a revealed key or a second line would fail them."""
    with fresh_example(monkeypatch, tmp_path, {}, SENTINEL, None):
        check_cli(command)  # clean as it is
        with pytest.raises(AssertionError):
            assert_clean(f"key={SENTINEL}")
    with pytest.raises(AssertionError):
        assert_one_line_error(TTTError("two\nlines"))
