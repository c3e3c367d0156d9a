"""The magic-line part of issue #11's standing guard: random magic lines, in-process, offline.

Random ``%ask`` / ``%%ask`` / ``%ttt_config`` lines, mixing good and bad options
and values, prompts full of braces, dashes and dollars, and a provider key in
the environment. Whatever is typed:

* nothing but ttt_magic's own usage errors (or IPython's, for a ``%%ask`` with
  an empty body, refused before the magic runs) escapes a cell, and nothing
  prints a traceback;
* a refusal is one line, and a refused input sends nothing to any backend;
* the key appears in no output and in no request.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from IPython.core.error import UsageError as IPythonUsageError

import ttt_magic
from ttt_magic import config
from ttt_magic.errors import UsageError

SENTINEL = "sk-guard-SENTINEL-0123456789abcdefWXYZ"

FLAGS = ["--raw", "--explain", "--no-stream", "--insert", "--new", "-c", "--"]
VALUES = {
    "-m": ["mock-1", "echo", "no-such-model", "mock-fast"],
    "-b": ["echo", "mock", "nosuchbackend"],
    "-s": ['"be brief"', "'{os.environ}'", "{secret}", '"unclosed'],
    "-t": ["0.5", "7", "abc", "nan", "-1"],
    "--max-tokens": ["3", "0", "-3", "x"],
    "-f": ["markdown", "text", "code", "json", "html", "yaml"],
    "-o": ["r", "1x", "class"],
    "--chat=": ["tutor", ""],
}
UNKNOWN = ["--bogus", "-x", "--mdoel fast", "--max-token=3", "-q"]
WORDS = [
    "hello",
    "explain",
    "{os.environ}",
    "{secret}",
    "{secret[key]!r}",
    "{x:.2f}",
    "{x!r}",
    "{x:bad}",
    "{missing}",
    "{x+1}",
    "$price",
    "[fail]",
    "-1",
    "what?",
    "{",
    "}",
    "```python",
    "x=1",
    "```",
]
CONFIG_WORDS = [
    "timeout=5",
    "timeout=abc",
    "stream=false",
    "stream=true",
    "footer=false",
    "temperature=3",
    "max_tokens=0",
    "max_tokens=4",
    "system={os.environ}",
    "system=",
    "default_bakend=mock",
    "interpolation_limit=20",
    "backends.echo.delay=0",
    "nokey",
    "=",
    "--show",
    "--bogus",
    "--sho",
]


def _option(name: str) -> st.SearchStrategy[str]:
    joiner = "" if name.endswith("=") else " "
    return st.sampled_from(VALUES[name]).map(lambda value: f"{name}{joiner}{value}")


OPTION = st.one_of(
    st.sampled_from(FLAGS),
    st.sampled_from(UNKNOWN),
    st.sampled_from(sorted(VALUES)).flatmap(_option),
)


def _ask(cell: bool, options: list[str], words: list[str]) -> str:
    head = " ".join(options)
    return f"%%ask {head}\n{' '.join(words)}" if cell else f"%ask {head} {' '.join(words)}"


ASK = st.builds(
    _ask,
    st.booleans(),
    st.lists(OPTION, max_size=4),
    st.lists(st.sampled_from(WORDS), max_size=5),
)
CONFIG = st.builds(
    lambda words: f"%ttt_config {' '.join(words)}",
    st.lists(st.sampled_from(CONFIG_WORDS), max_size=3),
)


@pytest.fixture
def guarded(shell, sent, monkeypatch):
    """The shell, what reached a backend, and a key in the environment that must never show."""
    monkeypatch.setenv("OPENAI_API_KEY", SENTINEL)
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9")  # should a request go to the cloud: refused
    shell.user_ns.update(os=os, secret={"key": SENTINEL}, x=3.14159, price=3)
    try:
        yield shell, sent
    finally:
        for name in ("os", "secret", "x", "price", "r"):
            shell.user_ns.pop(name, None)


def _fresh_settings() -> None:
    config.reset()
    config.configure(default_backend="echo", fallback_order=["echo"], max_retries=0, timeout=5)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(line=st.one_of(ASK, CONFIG))
def test_random_magic_lines_are_answered_or_refused_in_one_line(guarded, capsys, line):
    shell, sent = guarded
    _fresh_settings()
    magics = shell.magics_manager.registry["TTTMagics"]
    magics.chats.clear()
    ttt_magic.last_response = None
    before = len(sent)

    result = shell.run_cell(line)
    captured = capsys.readouterr()
    out = captured.out + captured.err

    error = result.error_in_exec
    assert result.error_before_exec is None
    assert error is None or isinstance(error, (UsageError, IPythonUsageError)), out
    assert "Traceback" not in out, out
    assert SENTINEL not in out
    assert all(SENTINEL not in f"{s.prompt} {s.system}" for s in sent)
    answer = ttt_magic.last_response
    if answer is not None:
        assert SENTINEL not in f"{answer.text} {answer.error}"
    refused = (
        line.startswith("%ttt_config")
        or isinstance(error, IPythonUsageError)
        or (answer is not None and answer.metadata.get("kind") == "usage")
    )
    if refused:
        assert len(sent) == before, f"{line!r} was refused but sent {sent[before:]}"
    if "ttt-magic:" in out and refused:
        assert out.count("\n") == 1 and out.startswith("ttt-magic: "), out
    if error is not None:
        assert len(out.strip().splitlines()) <= 2, out
