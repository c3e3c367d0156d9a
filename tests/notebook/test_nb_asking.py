"""One %ask / %%ask carried through, in-process (terminal IPython).

Refusals that send nothing, --insert, keys withheld from prompts, the line
taken as typed, --explain showing the route taken, Ctrl-C, footers, and
ttt_magic's usage errors raised by plain code in a cell.
"""

from __future__ import annotations

import os
import re

import pytest

import ttt_magic
from ttt_magic import api
from ttt_magic.backends.base import BaseBackend
from ttt_magic.errors import ConfigError, TTTError, UnknownModelError
from ttt_magic.models import AIResponse
from ttt_magic.notebook.asking import NO_CODE_NOTE
from ttt_magic.notebook.render import TerminalView
from ttt_magic.notebook.withhold import WITHHELD_NOTE
from ttt_magic.secrets import mask

SENTINEL = "sk-test-SENTINEL-0123456789abcdefWXYZ"


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def run(shell, capsys, cell: str):
    """Run a cell; (its ExecutionResult, everything it wrote to stdout and stderr, colours removed)."""
    result = shell.run_cell(cell)
    captured = capsys.readouterr()
    return result, _ANSI.sub("", captured.out + captured.err)


def magics(shell):
    return shell.magics_manager.registry["TTTMagics"]


# ----------------------------------------------------------------- unknown options (issue #11.4)


@pytest.mark.parametrize(
    ("cell", "said"),
    [
        ("%ask --bogus hello", "Unknown option --bogus."),
        ("%ask -x is an option", "Unknown option -x."),
        ("%ask --mdoel fast hello", "Unknown option --mdoel (did you mean --model?)."),
        ("%ask -b echo --insret hello", "Unknown option --insret (did you mean --insert?)."),
        ("%ask --explian=yes hello", "Unknown option --explian (did you mean --explain?)."),
        ("%%ask --mdoel fast\nhello", "Unknown option --mdoel (did you mean --model?)."),
        ("%%ask --bogus\nhello", "Unknown option --bogus."),
    ],
)
def test_an_unknown_option_is_refused_in_one_line_and_nothing_is_sent(shell, capsys, sent, cell, said):
    ttt_magic.configure(default_backend="echo")
    result, out = run(shell, capsys, cell)
    assert result.success
    assert out.startswith(f"ttt-magic: {said} ")
    assert "after --" in out
    assert out.count("\n") == 1
    assert sent == []
    assert ttt_magic.last_response.metadata["kind"] == "usage"


def test_a_prompt_starting_with_a_dash_goes_after_double_dash(shell, capsys, sent):
    _, out = run(shell, capsys, "%ask -b echo -- --bogus is a flag?")
    assert out.startswith("--bogus is a flag?\n[echo")
    run(shell, capsys, "%ask -b echo -1 is negative")
    assert [s.prompt for s in sent] == ["--bogus is a flag?", "-1 is negative"]


def test_an_unclosed_quote_on_a_cell_line_is_refused(shell, capsys, sent):
    result, out = run(shell, capsys, '%%ask -b echo -s "be brief\nhello')
    assert result.success and sent == []
    assert out.startswith("ttt-magic: Cannot read the options: No closing quotation")
    assert out.count("\n") == 1


# ----------------------------------------------------------------- --insert (issue #11.5)


def test_insert_puts_only_fenced_code_in_the_next_cell(shell, capsys):
    shell.rl_next_input = None
    try:
        _, out = run(shell, capsys, "%ask -b echo --insert only prose here, no code")
        assert shell.rl_next_input is None
        assert out.endswith(f" · {NO_CODE_NOTE}]\n")
        cell = "%%ask -b echo --insert\nUse:\n```python\nx = 1\n```\nthen\n```python\ny = 2\n```"
        _, out = run(shell, capsys, cell)
        assert shell.rl_next_input == "x = 1\n\ny = 2"
        assert NO_CODE_NOTE not in out
    finally:
        shell.rl_next_input = None


def test_the_no_code_note_shows_even_without_the_footer(shell, capsys):
    ttt_magic.configure(footer=False)
    _, out = run(shell, capsys, "%ask -b echo --insert just words")
    assert out == f"just words\n[{NO_CODE_NOTE}]\n"


# ----------------------------------------------------------------- keys withheld (issue #11.16)


def test_a_configured_key_in_an_interpolated_value_is_sent_masked(shell, capsys, sent, monkeypatch):
    proxy_key, token = "proxy-key-0123456789abcdef", "tok-0123456789abcdef"
    monkeypatch.setenv("OPENAI_API_KEY", SENTINEL)
    monkeypatch.setenv("MY_PROXY_KEY", proxy_key)
    ttt_magic.configure(backends={"echo": {"api_key_env": "MY_PROXY_KEY", "token": token}})
    shell.user_ns.update(os=os, settings={"token": token})
    try:
        _, line_out = run(shell, capsys, "%ask -b echo What is in {os.environ} and {settings}?")
        cell = "%%ask -b echo -s 'use {os.environ[OPENAI_API_KEY]}'\nkey: {os.environ[MY_PROXY_KEY]}"
        _, cell_out = run(shell, capsys, cell)
    finally:
        shell.user_ns.pop("os", None)
        shell.user_ns.pop("settings", None)
    outgoing = " ".join(f"{s.prompt} {s.system}" for s in sent)
    for secret in (SENTINEL, proxy_key, token):
        assert secret not in outgoing
        assert secret not in line_out + cell_out
        assert secret not in ttt_magic.last_response.text
    assert mask(SENTINEL) in sent[0].prompt and mask(token) in sent[0].prompt
    assert sent[1].system == f"use {mask(SENTINEL)}" and sent[1].prompt.strip() == f"key: {mask(proxy_key)}"
    assert WITHHELD_NOTE in line_out and WITHHELD_NOTE in cell_out


def test_no_note_when_nothing_was_withheld(shell, capsys, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SENTINEL)
    monkeypatch.setitem(shell.user_ns, "city", "Oslo")  # the shell outlives the test: leave no name behind
    _, out = run(shell, capsys, "%ask -b echo Weather in {city}")
    assert out.startswith("Weather in Oslo\n") and WITHHELD_NOTE not in out


def test_the_line_is_taken_as_typed_not_expanded_by_ipython(shell, capsys, sent, monkeypatch):
    """IPython evaluates {expr} and $name in magic lines; %ask opts out (no eval, no bypassed masking)."""
    monkeypatch.setitem(shell.user_ns, "x", 41)
    monkeypatch.setitem(shell.user_ns, "price", 3)
    run(shell, capsys, "%ask -b echo --raw {x+1} costs $price {x}")
    run(shell, capsys, "%ask -b echo {x+1} costs $price, x is {x:.1f}")
    assert [s.prompt for s in sent] == ["{x+1} costs $price {x}", "{x+1} costs $price, x is 41.0"]


# ----------------------------------------------------------------- --explain


class Down(BaseBackend):
    """Fails every request (not retryable), so the router falls back."""

    backend_name = "down"

    async def ask(self, prompt, **kwargs):
        return AIResponse("", backend=self.name, error="down is down")

    async def astream(self, prompt, **kwargs):
        raise RuntimeError("down is down")
        yield ""  # an async generator


@pytest.fixture
def falls_back_to_echo():
    ttt_magic.register_backend("down", Down)
    ttt_magic.configure(default_backend="down", fallback_order=["echo"])
    yield
    ttt_magic.backend_registry.unregister("down")


@pytest.mark.parametrize("mode", ["", "--no-stream "])
def test_explain_shows_the_route_the_answer_took(shell, capsys, falls_back_to_echo, mode):
    _, out = run(shell, capsys, f"%ask --explain {mode}hello there")
    assert out.startswith("Route: backend=down model=(backend default)\n")
    assert "  attempt down/-: error - " in out
    assert "  attempt echo/-: ok" in out  # the answer came from the fallback, and the route says so
    assert "hello there\n[echo · echo · " in out
    assert out.count("Route: ") == 1


# ----------------------------------------------------------------- Ctrl-C


class CtrlCView(TerminalView):
    """Ctrl-C lands while the second chunk is being shown."""

    def feed(self, chunk: str) -> None:
        if self.parts:
            raise KeyboardInterrupt
        super().feed(chunk)


def test_ctrl_c_keeps_the_answer_the_stream_built(shell, capsys):
    magics(shell).view_factory = lambda fmt, footer: CtrlCView(fmt, footer=footer)
    try:
        result, out = run(shell, capsys, "%ask -b echo -o r one two three four")
    finally:
        magics(shell).view_factory = None
    assert isinstance(result.error_in_exec, KeyboardInterrupt)
    assert out.startswith("one\n[interrupted]\n")
    partial = shell.user_ns["r"]
    assert partial is ttt_magic.last_response
    assert partial.text == "one two"  # what the stream received, not only what was shown
    assert partial.metadata["interrupted"] is True and partial.error == api.INTERRUPTED
    assert partial.route["attempts"][-1]["outcome"] == "interrupted"  # built by the stream, with its route


def test_ctrl_c_before_a_whole_answer_stores_nothing(shell, capsys, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(api, "ask", interrupted)
    shell.user_ns.pop("r", None)
    ttt_magic.last_response = AIResponse("an older answer")
    result, out = run(shell, capsys, "%ask --no-stream -b echo -o r hello")
    assert isinstance(result.error_in_exec, KeyboardInterrupt)
    assert out.startswith("[interrupted]\n")
    assert ttt_magic.last_response is None  # the latest ask gave no answer
    assert "r" not in shell.user_ns  # like an interrupted assignment


# ----------------------------------------------------------------- footers


def test_an_answer_cut_by_max_tokens_says_so(shell, capsys):
    _, out = run(shell, capsys, "%ask -b echo --max-tokens 2 one two three four")
    assert re.fullmatch(r"one two\n\[echo · echo · 4 in / 2 out · \d+ ms · cut off at max_tokens\]\n", out)
    _, out = run(shell, capsys, "%ask -b echo --max-tokens 9 one two")
    assert "cut off" not in out


# ----------------------------------------------------------------- usage errors in code (issue #11.11)


@pytest.mark.parametrize(
    ("code", "kind", "first_line"),
    [
        (
            "ttt_magic.ask('hi', model='no-such-model-xyz')",
            UnknownModelError,
            "UnknownModelError: Unknown model 'no-such-model-xyz'.",
        ),
        ("ttt_magic.configure(timeout='soon')", ConfigError, "ConfigError: Setting 'timeout'"),
        ("ttt_magic.ask('hi', temperature=7)", TTTError, "UsageError: temperature must be between 0 and 2"),
    ],
)
def test_a_usage_error_in_a_cell_is_one_or_two_lines_without_traceback(shell, capsys, code, kind, first_line):
    shell.user_ns["ttt_magic"] = ttt_magic
    result, out = run(shell, capsys, code)
    assert not result.success  # the cell still fails: Run All stops
    assert isinstance(result.error_in_exec, kind)
    lines = out.strip().splitlines()
    assert lines[0].startswith(first_line)
    assert len(lines) <= 2 and "Traceback" not in out


def test_other_errors_keep_their_traceback(shell, capsys):
    code = "from ttt_magic.errors import ProviderError\nraise ProviderError('it fell over')"
    _, out = run(shell, capsys, code)
    assert "Traceback" in out and "ProviderError: it fell over" in out
    _, out = run(shell, capsys, "1 / 0")
    assert "Traceback" in out and "ZeroDivisionError" in out


def test_the_exception_hook_is_shared_and_removed_on_unload(shell, capsys):
    seen: list[BaseException] = []
    shell.run_line_magic("unload_ext", "ttt_magic")
    shell.set_custom_exc((LookupError,), lambda self, etype, value, tb, tb_offset=None: seen.append(value))
    try:
        shell.run_line_magic("load_ext", "ttt_magic")
        run(shell, capsys, "{}['missing']")
        assert [type(e) for e in seen] == [KeyError]  # the hook that was there keeps working
        _, out = run(shell, capsys, "import ttt_magic\nttt_magic.configure(nope=1)")
        assert out.startswith("ConfigError: Unknown setting 'nope'")
        shell.run_line_magic("unload_ext", "ttt_magic")
        assert shell.custom_exceptions == (LookupError,)
        _, out = run(shell, capsys, "ttt_magic.configure(nope=1)")
        assert "Traceback" in out  # ours is gone
    finally:
        shell.set_custom_exc((), None)
        shell.run_line_magic("load_ext", "ttt_magic")  # the fixture unloads


# ----------------------------------------------------------------- Ctrl-C without streaming (api.Interrupted)


def _ctrl_c_while_waiting(coroutine, *args, **kwargs):
    coroutine.close()  # never started: what Ctrl-C during runner.run leaves
    raise KeyboardInterrupt


def test_ctrl_c_during_a_whole_answer_keeps_the_interrupted_answer(shell, capsys, monkeypatch):
    from ttt_magic import runner

    monkeypatch.setattr(runner, "run", _ctrl_c_while_waiting)
    result, out = run(shell, capsys, "%ask --no-stream -b echo -o r hello")
    assert isinstance(result.error_in_exec, KeyboardInterrupt)
    assert out.startswith("[interrupted]\n") and "ttt-magic:" not in out  # the mark, no error line
    partial = shell.user_ns["r"]
    assert partial is ttt_magic.last_response
    assert partial.metadata["interrupted"] is True and partial.error == api.INTERRUPTED
    assert partial.backend == "echo" and partial.text == ""


def test_ctrl_c_during_a_whole_answer_in_a_notebook_shows_a_clean_mark(shell, monkeypatch):
    from ttt_magic import runner
    from ttt_magic.notebook.render import StreamView

    class Publisher:
        sent: list = []

        def show(self, data, metadata=None):
            self.sent.append(data)

        update = show

    monkeypatch.setattr(runner, "run", _ctrl_c_while_waiting)
    magics(shell).view_factory = lambda fmt, footer: StreamView(fmt, publisher=Publisher(), footer=footer)
    try:
        result = shell.run_cell("%%ask --no-stream -b echo\nhello")
    finally:
        magics(shell).view_factory = None
    assert isinstance(result.error_in_exec, KeyboardInterrupt)
    final = Publisher.sent[-1]
    assert final["text/plain"] == "[interrupted]"  # no leading newline before the mark
    assert final["text/markdown"].startswith("*[interrupted]*")
    assert ttt_magic.last_response.metadata["interrupted"] is True


# ----------------------------------------------------------------- %ttt_status and %ttt_config --show


class Unpriced(BaseBackend):
    """Answers without a price: the session's cost is unknown, not $0."""

    backend_name = "unpriced"

    async def ask(self, prompt, **kwargs):
        return AIResponse("fine", backend=self.name, model="u-1", tokens_in=2, tokens_out=1)


def test_status_says_unknown_cost_and_lists_each_backend_and_model(shell, capsys):
    from ttt_magic import accounting
    from ttt_magic.registry import backend_registry

    accounting.reset()
    backend_registry.register_backend("unpriced", Unpriced)
    try:
        run(shell, capsys, "%ask -b unpriced first")
        run(shell, capsys, "%ask -b echo second")
        _, out = run(shell, capsys, "%ttt_status")
    finally:
        backend_registry.unregister("unpriced")
    lines = out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("calls"))
    assert lines[header].split()[:4] == ["calls", "failures", "interrupted", "cached"]
    assert lines[header + 2].split()[:2] == ["2", "0"] and " unknown " in lines[header + 2]
    assert "$0.0000" not in lines[header + 2]
    by_model = lines.index("By backend and model")
    rows = {line.split()[0]: line.split() for line in lines[by_model + 3 : by_model + 5]}
    assert rows["unpriced"][1:4] == ["u-1", "1", "0"] and "unknown" in rows["unpriced"]
    assert rows["echo"][2:4] == ["1", "0"] and "$0.0000" in rows["echo"]


def test_cost_text_is_unknown_only_when_no_cost_is_known():
    from ttt_magic.notebook.reports import cost_text

    assert cost_text(0.0, 0) == "$0.0000"
    assert cost_text(0.0, 3) == "unknown"
    assert cost_text(0.0123, 1) == "$0.0123 + unknown"


def test_paths_are_shown_relative_or_under_home(tmp_path, monkeypatch):
    from ttt_magic.notebook.reports import short_paths, shown_path

    home, work = tmp_path / "home", tmp_path / "home" / "proj" / "notebooks"
    work.mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(work)
    assert shown_path(work / "ttt.yaml") == "ttt.yaml"
    assert shown_path(home / ".config" / "ttt" / "config.yaml") == "~/.config/ttt/config.yaml"
    assert shown_path(home / "proj" / "plugins" / "x.py") == "~/proj/plugins/x.py"
    outside = tmp_path / "elsewhere" / "b.py"  # neither here nor under ~: relative still, never whole
    assert shown_path(outside) == "../../../elsewhere/b.py"
    assert shown_path("relative/as/given.py") == "relative/as/given.py"
    text = f"plugin {work}/p.py; failed ({home}/.ai/plugins/b.py). See https://x.org/home/tmp/a and 3/4."
    assert (
        short_paths(text) == "plugin p.py; failed (~/.ai/plugins/b.py). See https://x.org/home/tmp/a and 3/4."
    )


def test_status_and_config_show_name_no_absolute_path(shell, capsys, tmp_path, monkeypatch):
    from ttt_magic.registry import backend_registry

    monkeypatch.chdir(tmp_path)
    (tmp_path / "ttt.yaml").write_text("timeout: 12\n")
    backend_registry.register_backend("pathy", Unpriced, source=f"plugin {tmp_path}/plugins/pathy.py")
    try:
        _, status = run(shell, capsys, "%ttt_status")
    finally:
        backend_registry.unregister("pathy")
    assert "plugin plugins/pathy.py" in status
    _, shown = run(shell, capsys, "%ttt_config --show")
    assert "Config files: ttt.yaml." in shown
    assert next(line for line in shown.splitlines() if line.startswith("timeout ")).split()[-1] == "ttt.yaml"
    for out in (status, shown):
        assert str(tmp_path) not in out and os.path.expanduser("~") not in out


def test_ctrl_c_before_a_stream_starts_keeps_its_empty_interrupted_answer(shell, capsys, monkeypatch):
    from ttt_magic.notebook.render import RouteView

    def interrupted(self, route):
        raise KeyboardInterrupt  # lands while --explain shows the route, before the first chunk

    monkeypatch.setattr(RouteView, "show", interrupted)
    result, out = run(shell, capsys, "%ask --explain -b echo -o r hello")
    assert isinstance(result.error_in_exec, KeyboardInterrupt)
    partial = shell.user_ns["r"]
    assert partial is ttt_magic.last_response and partial.text == ""
    assert partial.metadata["interrupted"] is True and partial.backend == "echo"
    assert out.startswith("[interrupted]\n")
