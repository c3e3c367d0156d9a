"""The magics in-process and in terminal IPython: parsing, stdout streaming, config, tables, loading."""

from __future__ import annotations

import asyncio
import io
import json
import subprocess
import sys
from typing import ClassVar

import pytest

import ttt_magic
from tests.notebook.kernel_harness import isolated_env
from ttt_magic.notebook.magics import TTTMagics, protect_questions, split_line


def magics(shell) -> TTTMagics:
    return shell.magics_manager.registry["TTTMagics"]


# ----------------------------------------------------------------- parsing


@pytest.fixture
def parser(shell):
    return magics(shell).ask.parser


@pytest.mark.parametrize(
    ("line", "tokens", "prompt"),
    [
        ("what's {x}?", [], "what's {x}?"),
        ("-m fast -t 0.2 why is the sky blue", ["-m", "fast", "-t", "0.2"], "why is the sky blue"),
        ('-s "be brief" --max-tokens 50 say "hi"', ["-s", "be brief", "--max-tokens", "50"], 'say "hi"'),
        ("--chat=tutor -c and then?", ["--chat=tutor", "-c"], "and then?"),
        ("-cmath --new x", ["-cmath", "--new"], "x"),
        ("-f json -o res -- -x is an option?", ["-f", "json", "-o", "res"], "-x is an option?"),
        ("-1 is negative", [], "-1 is negative"),
        ("--raw --explain {a} {b}", ["--raw", "--explain"], "{a} {b}"),
    ],
)
def test_split_line_keeps_the_prompt_verbatim(parser, line, tokens, prompt):
    assert split_line(line, parser) == (tokens, prompt)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("--bogus hello", "Unknown option --bogus. "),
        ("-m fast --tempreature 0.5 hi", "Unknown option --tempreature (did you mean --temperature?). "),
        ("-q what", "Unknown option -q. "),
        ("--max-token=5 hi", "Unknown option --max-token (did you mean --max-tokens?). "),
    ],
)
def test_split_line_refuses_unknown_options(parser, line, message):
    from ttt_magic.notebook.options import BadInput

    with pytest.raises(BadInput) as refused:
        split_line(line, parser)
    assert str(refused.value).startswith(message)
    assert "\n" not in str(refused.value)


def test_options_parse_to_values(shell):
    line = "-m fast -b mock -t 0.5 --max-tokens 9 -f code -o v --insert hi"
    opts, prompt = magics(shell)._parse_ask(line, None)
    got = (opts.model, opts.backend, opts.temperature, opts.max_tokens, opts.format, opts.out, opts.insert)
    assert got == ("fast", "mock", 0.5, 9, "code", "v", True)
    assert prompt == "hi"
    opts, prompt = magics(shell)._parse_ask("-c tutor --new", "body {x}")
    assert (opts.chat, opts.new, prompt) == ("tutor", True, "body {x}")
    opts, _ = magics(shell)._parse_ask("--new", "hello")
    assert opts.chat == "default"


def test_protect_questions_rewrites_only_ask_questions():
    assert protect_questions(["%ask what is a tuple?\n"]) == [
        "get_ipython().run_line_magic('ask', 'what is a tuple?')\n"
    ]
    untouched = ["%ask?\n", "tuple?\n", "%%ask -m fast\n", "x = 1\n", "%ask hello\n"]
    assert protect_questions(untouched) == untouched


def test_question_mark_line_asks_instead_of_inspecting(shell, capsys):
    shell.run_cell("%ask -b echo what is a tuple?")
    out = capsys.readouterr().out
    assert out.startswith("what is a tuple?")
    assert "Docstring" not in out


# ----------------------------------------------------------------- terminal streaming


class Probe:
    """A backend that checks, before each next chunk, that the previous one already reached stdout."""

    seen: ClassVar[list[bool]] = []
    buffer: ClassVar[io.StringIO | None] = None

    @classmethod
    def make(cls):
        from ttt_magic.backends import BaseBackend

        class ProbeBackend(BaseBackend):
            backend_name = "probe"

            async def astream(self, prompt, **kwargs):
                for i in range(5):
                    chunk = f"<{i}>"
                    yield chunk
                    for _ in range(500):  # up to 5 s for the main thread to print it
                        if cls.buffer.getvalue().endswith(chunk):
                            break
                        await asyncio.sleep(0.01)
                    cls.seen.append(cls.buffer.getvalue().endswith(chunk))

        return ProbeBackend


def test_terminal_chunks_reach_stdout_as_they_arrive(shell, monkeypatch):
    Probe.seen, Probe.buffer = [], io.StringIO()
    ttt_magic.register_backend("probe", Probe.make())
    try:
        # Its own context: monkeypatch.undo() would also undo the suite's isolated environment.
        with monkeypatch.context() as patch:
            patch.setattr(sys, "stdout", Probe.buffer)
            shell.run_cell("%ask -b probe go")
    finally:
        ttt_magic.backend_registry.unregister("probe")
    assert Probe.seen == [True] * 5
    assert Probe.buffer.getvalue().startswith("<0><1><2><3><4>\n[probe · ")


def test_terminal_no_stream_and_formats(shell, capsys):
    shell.run_cell('%ask -b echo --no-stream -f json {"a": [1, 2]}')
    assert capsys.readouterr().out.startswith('{\n  "a": [\n    1,\n    2\n  ]\n}\n[echo')
    shell.run_cell("%ask -b mock --no-stream -f code write python code to add numbers")
    out = capsys.readouterr().out
    assert out.startswith("def ") and "```" not in out


def test_errors_in_terminal_are_one_plain_message(shell, capsys):
    shell.run_cell("%ask -b mock [fail] hello")
    out = capsys.readouterr().out
    assert out.startswith("ttt-magic: Mock failure")
    assert "Traceback" not in out and "<div" not in out
    assert ttt_magic.last_response.failed


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("%ask -b echo", "Nothing to ask"),
        ("%ask -o 1x -b echo hi", "-o needs a variable name"),
        ("%ask -t 5 -b echo hi", "temperature must be between 0 and 2"),
    ],
)
def test_bad_input_is_reported_not_raised(shell, capsys, line, expected):
    result = shell.run_cell(line)
    assert result.success
    assert expected in capsys.readouterr().out
    assert ttt_magic.last_response.failed


def test_out_var_and_returns_none(shell, capsys):
    result = shell.run_cell("%ask -b echo -o r hello")
    assert result.result is None
    assert shell.user_ns["r"].text.strip() == "hello"
    assert ttt_magic.last_response is shell.user_ns["r"]


# ----------------------------------------------------------------- configuration


def test_config_traits_mirror_into_configure(shell):
    from ttt_magic.config import get_config

    shell.run_line_magic("config", "TTTMagics.stream = False")
    shell.run_line_magic("config", "TTTMagics.default_backend = 'echo'")
    settings = get_config()
    assert settings.stream is False and settings.source("stream") == "configure()"
    assert settings.default_backend == "echo"
    shell.run_line_magic("config", "TTTMagics.default_backend = None")
    assert get_config().default_backend == "auto"
    shell.run_line_magic("config", "TTTMagics.temperature = 0.25")
    shell.run_line_magic("config", "TTTMagics.system = 'Answer in one line.'")
    assert (get_config().temperature, get_config().system) == (0.25, "Answer in one line.")
    assert any(isinstance(c, TTTMagics) for c in shell.configurables)


def test_ttt_config_sets_parses_and_suggests(shell, capsys):
    from ttt_magic.config import get_config

    line = "timeout=7 stream=false fallback_order=[echo,mock] backends.mock.delay=0"
    shell.run_line_magic("ttt_config", line)
    settings = get_config()
    assert (settings.timeout, settings.stream, settings.fallback_order) == (7.0, False, ["echo", "mock"])
    assert settings.backends["mock"]["delay"] == 0
    out = capsys.readouterr().out
    assert "timeout = 7.0  (configure())" in out
    shell.run_line_magic("ttt_config", "default_bakend=mock")
    out = capsys.readouterr().out
    assert "did you mean 'default_backend'" in out and "Traceback" not in out
    shell.run_line_magic("ttt_config", "timeout=")
    assert get_config().timeout == 30.0
    shell.run_line_magic("ttt_config", "--reset")
    assert get_config().stream is True


def test_ttt_config_show_masks_secrets(shell, capsys, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-0123456789abcdefWXYZ")
    shell.run_line_magic("ttt_config", "--show")
    out = capsys.readouterr().out
    assert "openai_api_key" in out and "sk-…WXYZ" in out and "0123456789" not in out
    assert "env OPENAI_API_KEY" in out


def test_ttt_config_panel_falls_back_to_table_with_hint(shell, monkeypatch):
    shown = []
    monkeypatch.setattr("IPython.display.display", lambda obj, **kw: shown.append(obj))
    monkeypatch.setattr(TTTMagics, "rich", property(lambda self: True))
    monkeypatch.setitem(sys.modules, "ttt_magic.notebook.widgets", None)  # import fails
    import ttt_magic.notebook as package

    monkeypatch.delattr(package, "widgets", raising=False)  # as if never imported
    shell.run_line_magic("ttt_config", "")
    assert len(shown) == 1
    bundle = shown[0]._repr_mimebundle_()
    assert "pip install 'ttt-magic[widgets]' for the selector panel" in bundle["text/plain"]
    assert "<table>" in bundle["text/html"]


def test_models_and_status_tables(shell, capsys):
    shell.run_line_magic("ttt_models", "claude")
    out = capsys.readouterr().out
    assert "claude-sonnet-4-5" in out and "anthropic" in out and "gpt-4o" not in out
    shell.run_line_magic("ttt_models", "")
    everything = capsys.readouterr().out
    assert "gpt-4o" in everything and "Aliases" in everything
    from ttt_magic.api import usage

    before = usage()["calls"]
    shell.run_cell("%ask -b echo one two")
    capsys.readouterr()
    shell.run_line_magic("ttt_status", "")
    out = capsys.readouterr().out
    assert "Backends" in out and "Plugins" in out and "This session" in out
    lines = out.splitlines()
    mock_line = next(line for line in lines if line.startswith("mock "))
    assert " yes " in mock_line
    session = lines[lines.index(next(line for line in lines if line.startswith("calls"))) + 2]
    assert session.split()[0] == str(before + 1)  # every answer of this process is counted


# ----------------------------------------------------------------- loading


def test_loading_imports_nothing_heavy(tmp_path):
    code = (
        "import sys\n"
        "from IPython.core.interactiveshell import InteractiveShell\n"
        "ip = InteractiveShell.instance()\n"
        "before = set(sys.modules)\n"
        "ip.run_line_magic('load_ext', 'ttt_magic')\n"
        "print(sorted(set(sys.modules) - before))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
        env=isolated_env(tmp_path),
    ).stdout
    loaded = json.loads(out.strip().replace("'", '"'))
    heavy = [
        m
        for m in loaded
        if m.split(".")[0]
        in ("yaml", "httpx", "httpx2", "httpcore", "ipywidgets", "anyio", "asyncio", "pandas")
        or m.startswith(
            (
                "ttt_magic.api",
                "ttt_magic.backends",
                "ttt_magic.config",
                "ttt_magic.router",
                "ttt_magic.registry",
            )
        )
    ]
    assert heavy == []
    assert "ttt_magic.notebook.magics" in loaded


def _ipython(args, stdin, tmp_path, **env):
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "IPython",
            "--no-banner",
            "--colors=NoColor",
            "--HistoryManager.enabled=False",
            *args,
        ],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env=isolated_env(tmp_path, **env),
    )


def test_terminal_ipython_session_streams_to_stdout(tmp_path):
    script = "%load_ext ttt_magic\n%ask -b echo hello from the terminal\n%ask -b mock [fail] x\n"
    result = _ipython([], script, tmp_path)
    assert "hello from the terminal\n[echo · " in result.stdout
    assert "ttt-magic: Mock failure" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


def test_loadable_from_ipython_config(tmp_path):
    profile = tmp_path / "profile"
    profile.mkdir()
    (profile / "ipython_config.py").write_text(
        "c.InteractiveShellApp.extensions = ['ttt_magic']\n"
        "c.TTTMagics.default_backend = 'echo'\n"
        "c.TTTMagics.footer = False\n"
    )
    result = _ipython([f"--profile-dir={profile}", "-c", "%ask configured by profile"], "", tmp_path)
    assert result.stdout.strip().splitlines()[-1] == "configured by profile"
    assert result.returncode == 0


def test_unload_removes_everything(shell):
    shell.run_line_magic("unload_ext", "ttt_magic")
    assert "ask" not in shell.magics_manager.magics["line"]
    assert "ttt_config" not in shell.magics_manager.magics["line"]
    assert "ask" not in shell.magics_manager.magics["cell"]
    assert not any(isinstance(c, TTTMagics) for c in shell.configurables)
    assert protect_questions not in shell.input_transformers_cleanup
    from ttt_magic.errors import TTTError

    assert TTTError not in shell.custom_exceptions
    shell.run_line_magic("load_ext", "ttt_magic")  # the fixture unloads again
    assert TTTError in shell.custom_exceptions
    assert "ask" in shell.magics_manager.magics["cell"]


def test_ctrl_c_in_terminal_keeps_partial_text_and_next_ask_works(tmp_path):
    import os
    import select
    import signal
    import time

    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "IPython",
            "--no-banner",
            "--colors=NoColor",
            "--HistoryManager.enabled=False",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        cwd=tmp_path,
        env=isolated_env(tmp_path, TTT_MOCK_DELAY="0.05"),
    )
    try:
        proc.stdin.write(b"%load_ext ttt_magic\n%ask -b mock explain in detail how python lists work\n")
        proc.stdin.flush()
        seen = b""
        deadline = time.monotonic() + 60
        while b"In short" not in seen and time.monotonic() < deadline:  # the answer is streaming
            ready, _, _ = select.select([proc.stdout], [], [], 0.5)
            if ready:
                seen += os.read(proc.stdout.fileno(), 4096)
        assert b"In short" in seen
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(b"%ask -b echo the next question works\nexit\n", timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    out = (seen + rest).decode()
    partial = out[out.index("## In detail") : out.index("[interrupted]")]
    assert "In short" in partial and "That is the outline" not in partial  # cut short, kept
    assert "KeyboardInterrupt" in out
    assert "the next question works\n[echo" in out


def test_askbox_displays_the_widget_or_says_what_to_install(shell, monkeypatch, capsys):
    shown = []
    monkeypatch.setattr("IPython.display.display", lambda obj, **kw: shown.append(obj))
    monkeypatch.setattr(TTTMagics, "rich", property(lambda self: True))
    calls = []
    fake = type(sys)("ttt_magic.notebook.widgets")
    fake.ask_box = lambda: calls.append(1) or "BOX"
    monkeypatch.setitem(sys.modules, "ttt_magic.notebook.widgets", fake)
    import ttt_magic.notebook as package

    monkeypatch.setattr(package, "widgets", fake, raising=False)
    shell.run_line_magic("ttt_askbox", "")
    assert calls == [1] and shown == ["BOX"]
    monkeypatch.setitem(sys.modules, "ttt_magic.notebook.widgets", None)
    monkeypatch.delattr(package, "widgets")
    shown.clear()
    shell.run_line_magic("ttt_askbox", "")
    assert "pip install 'ttt-magic[widgets]' for the ask box" in shown[0]["text/plain"]
