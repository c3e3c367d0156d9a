"""Every example of README.md and docs/*.md runs as written, offline, on the mock backend.

One mechanism for every document. A fenced block is:

* **Python** (```` ```python ````, no magics): run on its own, in a fresh namespace,
  settings and working directory. A block that defines pytest tests (``def test_``)
  is run by pytest. A trailing ``# -> text`` comment states what a line prints:
  ``text`` (up to a final `` ...``) must appear in the block's output.
* **IPython** (```` ```python ```` or an unlabelled fence with a ``%magic`` line):
  run in an IPython shell with the extension loaded; the IPython blocks of one
  document run in order in one shell, like the cells of one notebook.
* **IPython configuration** (```` ```python ```` assigning ``c.Class.trait``, as in
  ``ipython_config.py``): every class it configures must exist and every
  ``TTTMagics`` trait it sets must be a configurable trait.
* **command line** (```` ```bash ````): its ``python -m ttt_magic ...`` lines run
  as subprocesses and must exit 0; other commands (make, pytest, jupyter) are
  not run.
* **configuration** (```` ```yaml ```` holding a mapping): loaded as a ttt config
  file, which must succeed.

Everything else (text, ini, toml, lists in YAML) is shown, not run.

The environment is a machine without keys: no provider variable, Ollama
unreachable, provider URLs on a dead loopback port, and a user config file
(``~/.config/ttt/config.yaml``) that makes ``mock`` the default backend and
points every catalogue alias at a mock model, so ``%%ask -m coding`` answers
offline. ``raise_on_error`` is on: a failed ``%%ask`` fails its test.

Markers, an HTML comment on the line before a fence:

* ``<!-- no-run: why -->``: the block cannot run offline; it is skipped and
  counted (``test_every_block_runs_or_is_marked``).
* ``<!-- shows-error -->``: the block demonstrates a failure, and must fail: a
  Python block gives at least one failed answer, an IPython block raises, a
  YAML block does not load.
"""

from __future__ import annotations

import io
import os
import re
import shlex
import subprocess
import sys
import textwrap
from contextlib import redirect_stdout
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

FENCE = re.compile(
    r"^(?P<indent>[ \t]*)(?P<ticks>`{3,})(?P<lang>[\w+-]*)[^\n]*\n(?P<body>.*?)^(?P=indent)(?P=ticks)[ \t]*$",
    re.M | re.S,
)
MARKER = re.compile(r"<!--\s*(?P<kind>no-run|shows-error)\s*(?::\s*(?P<reason>.*?))?\s*-->\s*$")
MAGIC_LINE = re.compile(r"^\s*%{1,2}[A-Za-z]", re.M)
EXPECTED = re.compile(r"#\s*->\s*(.*?)\s*$", re.M)
CLI_LINE = re.compile(r"^\s*python -m ttt_magic\b(.*)$", re.M)

#: Blocks marked ``<!-- no-run: ... -->`` in all documents together. Marking one more
#: is a decision to take in review: change this number with it.
NO_RUN_EXPECTED = 0


@dataclass(frozen=True)
class Block:
    doc: str  # path relative to the repository
    line: int  # 1-based line of the opening fence
    lang: str
    body: str
    marker: str | None = None  # "no-run" or "shows-error"
    reason: str = ""

    @property
    def kind(self) -> str:
        if self.lang in ("python", "ipython", "") and MAGIC_LINE.search(self.body):
            return "ipython"
        if self.lang == "python" and re.search(r"^c\.\w+", self.body, re.M):
            return "ipython-config"
        if self.lang == "python":
            return "python"
        if self.lang in ("bash", "sh", "shell", "console") and CLI_LINE.search(self.body):
            return "cli"
        if self.lang in ("yaml", "yml") and (
            self.marker == "shows-error" or isinstance(_yaml(self.body), dict)
        ):
            return "yaml"  # a configuration file (a list, e.g. a CI workflow step, is not)
        return "other"

    @property
    def label(self) -> str:
        return f"{self.doc}:{self.line}"


def _yaml(text: str) -> object:
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return None


def blocks_of(path: Path) -> list[Block]:
    return blocks_in(path.read_text(encoding="utf-8"), path.relative_to(ROOT).as_posix())


def blocks_in(text: str, doc: str) -> list[Block]:
    found = []
    for match in FENCE.finditer(text):
        before = text[: match.start()].rstrip().rsplit("\n", 1)[-1]
        mark = MARKER.search(before)
        found.append(
            Block(
                doc=doc,
                line=text.count("\n", 0, match.start()) + 1,
                lang=match.group("lang").lower(),
                body=textwrap.dedent(match.group("body")),
                marker=mark.group("kind") if mark else None,
                reason=(mark.group("reason") or "") if mark else "",
            )
        )
    return found


ALL = [block for doc in DOCS for block in blocks_of(doc)]
RUNNABLE = [b for b in ALL if b.kind != "other"]
TO_RUN = [b for b in RUNNABLE if b.marker != "no-run"]


def _of(kind: str) -> list[Block]:
    return [b for b in TO_RUN if b.kind == kind]


# --------------------------------------------------------------------------- the environment


@pytest.fixture(autouse=True)
def offline_machine(monkeypatch, isolated_env):
    """No keys (conftest), dead provider URLs, and a user config that makes the mock answer."""
    for var, url in (
        ("OPENAI_BASE_URL", "http://127.0.0.1:9/v1"),
        ("ANTHROPIC_BASE_URL", "http://127.0.0.1:9"),
        ("GEMINI_BASE_URL", "http://127.0.0.1:9"),
        ("OPENROUTER_BASE_URL", "http://127.0.0.1:9"),
    ):
        monkeypatch.setenv(var, url)
    monkeypatch.setenv("TTT_RAISE_ON_ERROR", "1")
    from ttt_magic import model_registry

    aliases = sorted(model_registry.list_aliases())
    user = isolated_env / ".config" / "ttt" / "config.yaml"
    user.parent.mkdir(parents=True, exist_ok=True)
    user.write_text(
        "default_backend: mock\nmodel_aliases:\n" + "".join(f"  {name!r}: mock/mock-1\n" for name in aliases)
    )
    return isolated_env


class FailedAnswers:
    """Counts the failed answers (``AIResponse`` with ``error`` set) made while it is installed."""

    def __init__(self, monkeypatch):
        from ttt_magic.models import AIResponse

        self.count = 0
        original = AIResponse.__new__

        def counting_new(cls, *args, **kwargs):
            made = original(cls, *args, **kwargs)
            self.count += bool(getattr(made, "error", None))
            return made

        monkeypatch.setattr(AIResponse, "__new__", staticmethod(counting_new))


def _ids(blocks: list[Block]) -> list[str]:
    return [b.label for b in blocks]


# --------------------------------------------------------------------------- inventory


def test_documents_and_blocks_are_found():
    names = {b.doc for b in ALL}
    assert "README.md" in names and "docs/extensibility.md" in names
    assert len(_of("python")) >= 15 and len(_of("ipython")) >= 15


def test_blocks_markers_and_kinds_are_read():
    text = (
        "Intro.\n\n<!-- no-run: needs a real key -->\n```python\nask('hi', backend='openai')\n```\n\n"
        "<!-- shows-error -->\n```\n%%ask\n[fail]\n```\n\n"
        "1. A step:\n\n   ```python\n   %load_ext ttt_magic\n   ```\n\n"
        "```python\nc.TTTMagics.footer = False\n```\n\n"
        "```bash\nmake demo\npython -m ttt_magic status\n```\n\n"
        "```yaml\ntimeout: 5\n```\n\n```yaml\n- run: pytest\n```\n\n```text\n%%ask [options]\n```\n"
    )
    blocks = blocks_in(text, "x.md")
    assert [b.kind for b in blocks] == [
        "python", "ipython", "ipython", "ipython-config", "cli", "yaml", "other", "other",
    ]  # fmt: skip
    assert (blocks[0].marker, blocks[0].reason) == ("no-run", "needs a real key")
    assert blocks[1].marker == "shows-error" and blocks[2].body == "%load_ext ttt_magic\n"
    assert [b.line for b in blocks[:2]] == [4, 9]


def test_every_block_runs_or_is_marked():
    """Each Python, IPython, command-line and YAML block runs, or says why it cannot."""
    skipped = [b for b in RUNNABLE if b.marker == "no-run"]
    for block in skipped:
        assert block.reason.strip(), f"{block.label}: <!-- no-run --> needs a reason: <!-- no-run: why -->"
    counts = {kind: len(_of(kind)) for kind in ("python", "ipython", "ipython-config", "cli", "yaml")}
    summary = ", ".join(f"{n} {kind}" for kind, n in counts.items())
    summary += f"; {len(_cli_commands())} commands in the cli blocks"
    print(f"\ndoc blocks run: {len(TO_RUN)} ({summary}); marked no-run: {len(skipped)}")
    for block in skipped:
        print(f"  no-run {block.label}: {block.reason}")
    assert len(skipped) == NO_RUN_EXPECTED, (
        f"{len(skipped)} blocks are marked no-run, NO_RUN_EXPECTED says {NO_RUN_EXPECTED}: "
        + "; ".join(f"{b.label} ({b.reason})" for b in skipped)
    )


# --------------------------------------------------------------------------- Python


def _run_python(block: Block, tmp_path: Path, failures: FailedAnswers) -> tuple[str, int]:
    """Run the block; return what it printed and how many failed answers it produced."""
    if "def test_" in block.body:  # a pytest example: run it with pytest
        path = tmp_path / "test_example.py"
        path.write_text(block.body)
        result = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(path)],
            capture_output=True,
            text=True,
            cwd=tmp_path,
        )
        assert result.returncode == 0, f"{block.label}\n{result.stdout}{result.stderr}"
        assert " passed" in result.stdout and "failed" not in result.stdout
        return result.stdout, 0
    saved = dict(os.environ)
    before = failures.count
    out = io.StringIO()
    try:
        with redirect_stdout(out):
            exec(compile(block.body, block.label, "exec"), {"__name__": "__doc_block__"})
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return out.getvalue(), failures.count - before


@pytest.mark.parametrize("block", _of("python"), ids=_ids(_of("python")))
def test_python_block(block, tmp_path, monkeypatch):
    out, failed = _run_python(block, tmp_path, FailedAnswers(monkeypatch))
    for expected in EXPECTED.findall(block.body):
        literal = expected.split(" ...")[0]
        assert literal in out, f"{block.label}: expected {literal!r} in the output:\n{out}"
    if block.marker == "shows-error":
        assert failed, f"{block.label} is marked shows-error but no answer failed:\n{out}"
    else:
        assert not failed, f"{block.label}: {failed} answer(s) failed (mark it <!-- shows-error -->?):\n{out}"


# --------------------------------------------------------------------------- IPython


def _ipython_docs() -> list[str]:
    return list(dict.fromkeys(b.doc for b in _of("ipython")))


@pytest.fixture
def shell():
    from IPython.core.interactiveshell import InteractiveShell

    ip = InteractiveShell.instance()
    ip.reset(new_session=False)
    try:
        yield ip
    finally:
        if "TTTMagics" in ip.magics_manager.registry:
            ip.run_line_magic("unload_ext", "ttt_magic")
        ip.reset(new_session=False)


@pytest.mark.parametrize("doc", _ipython_docs())
def test_ipython_blocks(doc, shell):
    """The document's IPython blocks, in order, in one shell: each must succeed (or fail, if marked)."""
    import ttt_magic

    blocks = [b for b in _of("ipython") if b.doc == doc]
    if "%load_ext ttt_magic" not in blocks[0].body:
        shell.run_line_magic("load_ext", "ttt_magic")
    for block in blocks:
        ttt_magic.last_response = None
        out = io.StringIO()
        with redirect_stdout(out):
            result = shell.run_cell(block.body)
        printed = out.getvalue()
        if os.environ.get("DOCS_SHOW_OUTPUT"):
            sys.__stdout__.write(f"\n===== {block.label}\n{block.body}----- output\n{printed}")
        error = result.error_before_exec or result.error_in_exec
        if block.marker == "shows-error":
            assert error is not None, f"{block.label} is marked shows-error but ran cleanly:\n{printed}"
            continue
        assert error is None, f"{block.label} failed: {type(error).__name__}: {error}\n{printed}"
        assert "Invalid JSON" not in printed, f"{block.label}: the answer is not JSON:\n{printed}"
        assert "ttt-magic:" not in printed, f"{block.label} showed an error:\n{printed}"
        answer = ttt_magic.last_response
        if re.match(r"\s*%%?ask\b", block.body) and "%ask?" not in block.body:
            assert answer is not None and answer.succeeded, f"{block.label}: no answer:\n{printed}"
            assert str(answer).strip(), f"{block.label}: an empty answer"


# --------------------------------------------------------------------------- ipython_config.py


@pytest.mark.parametrize("block", _of("ipython-config"), ids=_ids(_of("ipython-config")))
def test_ipython_config_block(block):
    from IPython.core.interactiveshell import InteractiveShell
    from IPython.terminal.ipapp import TerminalIPythonApp
    from traitlets.config import Config

    from ttt_magic.notebook.magics import TTTMagics

    config = Config()
    exec(compile(block.body, block.label, "exec"), {"c": config, "get_config": lambda: config})
    known = {
        "TTTMagics": TTTMagics,
        "InteractiveShellApp": TerminalIPythonApp,
        "InteractiveShell": InteractiveShell,
    }
    assert config, f"{block.label} configures nothing"
    for section, values in config.items():
        assert section in known, f"{block.label}: unexpected section c.{section}"
        traits = known[section].class_trait_names(config=True)
        for name in values:
            assert name in traits, f"{block.label}: c.{section}.{name} is not a configurable trait"
    if "TTTMagics" in config:
        TTTMagics(shell=None, config=config)  # the values are accepted


# --------------------------------------------------------------------------- command line


def _cli_commands() -> list[tuple[str, str]]:
    return [
        (f"{b.label}:{i}", line.strip())
        for b in _of("cli")
        for i, line in enumerate((m.group(0) for m in CLI_LINE.finditer(b.body)), 1)
    ]


@pytest.mark.parametrize(("where", "command"), _cli_commands(), ids=[w for w, _ in _cli_commands()])
def test_cli_command(where, command, tmp_path):
    argv = shlex.split(command)
    assert argv[:3] == ["python", "-m", "ttt_magic"]
    result = subprocess.run(
        [sys.executable, *argv[1:]], capture_output=True, text=True, cwd=tmp_path, timeout=60
    )
    assert result.returncode == 0, f"{where}: {command}\n{result.stdout}\n{result.stderr}"
    assert result.stdout.strip(), f"{where}: {command} printed nothing"


# --------------------------------------------------------------------------- configuration files


@pytest.mark.parametrize("block", _of("yaml"), ids=_ids(_of("yaml")))
def test_yaml_config_block(block, tmp_path, monkeypatch):
    from ttt_magic.config import get_config
    from ttt_magic.errors import ConfigError

    path = tmp_path / "example.yaml"
    path.write_text(block.body)
    monkeypatch.setenv("TTT_CONFIG", str(path))
    if block.marker == "shows-error":
        with pytest.raises(ConfigError):
            get_config()
        return
    settings = get_config()
    assert settings.files == [path], f"{block.label}: the file was not read"


# --------------------------------------------------------------------------- %%ask examples in a real kernel


def _ask_docs() -> list[str]:
    return [
        d
        for d in _ipython_docs()
        if any(re.match(r"\s*%%?ask\b", b.body) for b in _of("ipython") if b.doc == d)
    ]


@pytest.mark.kernel
def test_ask_examples_run_in_a_real_kernel(offline_machine, tmp_path):
    """Every document's IPython blocks again, in order, in one real kernel per document.

    The shell test above is fast and sees Python objects; this one is what a
    reader gets pasting the examples into Jupyter: a kernel, its display
    messages, and no traceback anywhere.
    """
    from tests.notebook.kernel_harness import Kernel, isolated_env

    env = isolated_env(offline_machine, TTT_RAISE_ON_ERROR="1", TTT_STREAM="0")
    for var in ("OPENAI_BASE_URL", "ANTHROPIC_BASE_URL", "GEMINI_BASE_URL", "OPENROUTER_BASE_URL"):
        env[var] = os.environ[var]
    checked = 0
    for doc in _ask_docs():
        folder = tmp_path / doc.replace("/", "_")
        folder.mkdir()
        kernel = Kernel(folder, env)
        try:
            blocks = [b for b in _of("ipython") if b.doc == doc]
            if "%load_ext ttt_magic" not in blocks[0].body:
                kernel.ok("%load_ext ttt_magic")
            for block in blocks:
                result = kernel.execute(block.body, timeout=120)
                if block.marker == "shows-error":
                    continue
                assert not result.errors, f"{block.label} failed in a kernel: {result.errors[0].get('ename')}"
                if re.match(r"\s*%%?ask\b", block.body) and "%ask?" not in block.body:
                    shown = [m for m in result.displays if m["content"].get("data")]
                    printed = result.stdout
                    assert shown or printed.strip(), f"{block.label}: nothing shown in the kernel"
                    assert "Traceback" not in printed and "ttt-magic:" not in printed, printed
                    checked += 1
        finally:
            kernel.stop()
    assert checked >= 10  # the guides hold many %%ask examples; none may go unchecked silently
