"""Reasoning models in the notebook (issue #16): the thinking collapsed above the answer.

While the model thinks, a collapsed "Thinking… (N characters)" block streams
in the answer's one display; when the answer starts it folds to "Thinking
(12 s, N characters)" and stays collapsed, and the saved output keeps it:
``text/markdown`` is the ``<details>`` block then the answer, ``text/plain``
the answer only. ``--no-thinking`` hides it (``.reasoning`` still has it),
``--effort`` reaches the backend (refused for a model that does not reason),
the footer shows thinking tokens where known, and the terminal shows one
``thinking… 12 s`` line rewritten in place, then the answer.

The mock thinks on ``backends.mock.think: true`` or whenever an effort is given.
"""

from __future__ import annotations

import io
import re

import pytest

import ttt_magic
from ttt_magic.models import AIResponse, Thinking
from ttt_magic.notebook.render import StreamView, TerminalView, Thoughts, footer_text, with_thoughts

EXPLAIN = "Explain what a list comprehension is"
SUMMARY_DONE = re.compile(
    r"^<details><summary>Thinking \((\d+ ms|[\d.]+ s), ([\d,]+) characters\)</summary>\n"
)


# ----------------------------------------------------------------------------- helpers


class Recorder:
    """A publisher keeping every message a view sends."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, dict, dict]] = []

    def show(self, data, metadata=None):
        self.messages.append(("display_data", data, metadata or {}))

    def update(self, data, metadata=None):
        self.messages.append(("update_display_data", data, metadata or {}))


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Tty(io.StringIO):
    """stdout of a terminal: status lines are rewritten in place there."""

    def isatty(self) -> bool:
        return True


def answer(text="## Lists\n\nThey hold items.", **kw):
    base = {"model": "mock-1", "backend": "mock", "tokens_in": 3, "tokens_out": 40, "time_taken": 1.25}
    return AIResponse(text, **{**base, **kw})


def _markdown(content) -> str:
    return content["data"].get("text/markdown") or content["data"].get("text/html") or ""


# ----------------------------------------------------------------------------- in a real kernel

KERNEL = pytest.mark.kernel


@pytest.fixture
def thinking_mock(kernel):
    """The kernel's mock thinks first (``%ttt_config backends.mock.think=true``), paced a little."""
    kernel.ok("import os\nos.environ['TTT_MOCK_DELAY'] = '0.01'\n%ttt_config backends.mock.think=true")
    try:
        yield kernel
    finally:
        kernel.ok("os.environ['TTT_MOCK_DELAY'] = '0'\n%ttt_config backends.mock.think=")


def _last(kernel, expr: str) -> str:
    return kernel.ok(f"import ttt_magic\nprint({expr})").stdout.rstrip("\n")


@KERNEL
def test_thinking_streams_collapsed_then_the_saved_output_keeps_it_collapsed(thinking_mock):
    kernel = thinking_mock
    result = kernel.ok(f"%%ask -b mock\n{EXPLAIN}")
    shown = [_markdown(m["content"]) for m in result.displays]
    assert result.displays[0]["msg_type"] == "display_data"
    assert len({m["content"]["transient"]["display_id"] for m in result.displays}) == 1  # one output
    # While it thinks: the collapsed block alone, its size growing, no answer yet.
    first = shown[0]
    assert re.match(r"<details><summary>Thinking… \([\d,]+ characters?\)</summary>", first), first
    assert "<details open" not in "".join(shown)
    assert "## List comprehension" not in first

    final = result.final()
    markdown, plain = final["data"]["text/markdown"], final["data"]["text/plain"]
    text = _last(kernel, "repr(ttt_magic.last_response.text)")
    reasoning = _last(kernel, "repr(ttt_magic.last_response.reasoning)")
    assert plain == eval(text)  # the answer only: no thinking in text/plain
    assert "The question is about" not in plain and "The question is about" in eval(reasoning)
    found = SUMMARY_DONE.match(markdown)
    assert found, markdown[:200]
    assert int(found.group(2).replace(",", "")) == len(eval(reasoning))
    block, _, rest = markdown.partition("</details>\n\n")
    assert "“list comprehension”" in block and rest.startswith("## List comprehension")
    assert rest.startswith(plain)  # then the answer, as Markdown, then the footer
    assert re.search(r"<sub>mock-1 · mock · \d+ in / \d+ out, \d+ thinking · ", rest)


@KERNEL
def test_no_thinking_hides_it_and_keeps_it_on_the_response(thinking_mock):
    kernel = thinking_mock
    result = kernel.ok(f"%%ask -b mock --no-thinking\n{EXPLAIN}")
    assert not any("Thinking" in _markdown(m["content"]) for m in result.displays)
    final = result.final()["data"]
    assert final["text/markdown"].startswith("## List comprehension")
    assert _last(kernel, "ttt_magic.last_response.reasoning.startswith('The question is about')") == "True"


@KERNEL
def test_no_stream_shows_the_thinking_collapsed_with_its_size(thinking_mock):
    result = thinking_mock.ok("%%ask -b mock --no-stream\nhello")
    assert [m["msg_type"] for m in result.displays] == ["display_data"]
    data = result.displays[0]["content"]["data"]
    assert re.match(r"<details><summary>Thinking \([\d,]+ characters\)</summary>", data["text/markdown"])
    assert data["text/plain"].startswith("Hello!")


@KERNEL
def test_effort_reaches_the_backend(kernel):
    """``--effort`` is passed to ``stream``/``ask``: the mock thinks (three steps on high) and says so."""
    result = kernel.ok("%%ask -b mock --effort high\nWrite a Python function that reverses a list")
    assert "<details><summary>Thinking (" in result.final()["data"]["text/markdown"]
    assert _last(kernel, "ttt_magic.last_response.metadata['effort']") == "high"
    assert _last(kernel, "ttt_magic.last_response.reasoning.count('\\n\\n')") == "2"
    whole = kernel.ok("%%ask -b mock --no-stream --effort low\nhello")
    assert "Thinking (" in whole.final()["data"]["text/markdown"]
    assert _last(kernel, "ttt_magic.last_response.metadata['effort']") == "low"


# ----------------------------------------------------------------------------- in-process (terminal IPython)


def test_effort_is_refused_in_one_line_for_a_model_that_does_not_reason(shell, capsys, sent):
    capsys.readouterr()
    shell.run_cell("%%ask -b mock -m gpt-4.1-nano --effort low\nhello")
    out = capsys.readouterr().out
    assert out.startswith("ttt-magic: Model 'gpt-4.1-nano' does not reason, so effort='low'")
    assert out.count("\n") == 1 and sent == []
    assert ttt_magic.last_response.failed


def test_effort_must_be_a_known_level(shell, capsys, sent):
    capsys.readouterr()
    shell.run_cell("%%ask -b mock --effort extreme\nhello")
    out = capsys.readouterr()
    assert "invalid choice: 'extreme'" in out.out + out.err and sent == []


def test_terminal_answer_says_how_long_it_thought(shell, capsys, monkeypatch):
    """stdout is not a terminal here: no status rewriting, one ``[thinking: ...]`` line before the answer."""
    monkeypatch.setenv("TTT_MOCK_DELAY", "0")
    capsys.readouterr()
    shell.run_cell("%%ask -b mock --effort low\nhello")
    out = capsys.readouterr().out
    first, rest = out.split("\n", 1)
    assert re.fullmatch(r"\[thinking: (\d+ ms|[\d.]+ s), [\d,]+ characters\]", first), out
    assert rest.startswith("Hello!") and "\r" not in out
    assert re.search(r"\[mock-1 · mock · \d+ in / \d+ out, \d+ thinking · ", rest)
    assert ttt_magic.last_response.reasoning and "The question" not in ttt_magic.last_response.text
    capsys.readouterr()
    shell.run_cell("%%ask -b mock --effort low --no-thinking\nhello")
    assert capsys.readouterr().out.startswith("Hello!")


def test_terminal_status_line_is_rewritten_in_place_then_the_answer():
    out, clock = Tty(), Clock()
    view = TerminalView(out=out, footer=False, clock=clock)
    for at, piece in ((0.2, "Think"), (0.6, "ing about"), (1.3, " lists."), (2.5, "")):
        clock.now = at
        view.feed(Thinking(piece) if piece else piece)  # "" is the stream's heartbeat
    clock.now = 3.4
    view.feed("Lists hold items.")
    view.finish(answer("Lists hold items."))
    assert out.getvalue() == (
        "\rthinking… 0 s"
        "\rthinking… 1 s"
        "\rthinking… 2 s"
        "\r" + " " * len("thinking… 2 s") + "\r"
        "[thinking: 3.4 s, 21 characters]\n"
        "Lists hold items.\n"
    )


def test_terminal_thinking_cut_off_before_any_answer_still_says_so():
    out, clock = Tty(), Clock()
    view = TerminalView(out=out, footer=False, clock=clock)
    view.feed(Thinking("Hmm"))
    clock.now = 12.4
    view.finish(answer("", error="Interrupted"), interrupted=True)
    assert out.getvalue().endswith("[thinking: 12 s, 3 characters]\n[interrupted]\n")


def test_thinking_that_comes_after_the_answer_began_writes_no_status_into_it():
    out, clock = Tty(), Clock()
    view = TerminalView(out=out, footer=False, clock=clock)
    view.feed("An answer")
    clock.now = 2.0
    view.feed(Thinking("an afterthought"))
    view.feed("")
    view.feed(", continued.")
    view.finish(answer("An answer, continued."))
    assert out.getvalue() == "An answer, continued.\n"


# ----------------------------------------------------------------------------- the display, piece by piece


def test_stream_view_folds_the_block_when_the_answer_starts():
    rec, clock = Recorder(), Clock()
    view = StreamView(publisher=rec, clock=clock, footer=False)
    clock.now = 0.5
    view.feed(Thinking("Let me see."))
    kind, data, _ = rec.messages[-1]
    assert kind == "display_data"
    assert data["text/markdown"].startswith("<details><summary>Thinking… (11 characters)</summary>")
    clock.now = 0.51
    view.feed(Thinking(" A list."))  # throttled: not sent yet
    assert len(rec.messages) == 1
    clock.now = 12.3
    view.feed("Lists ")  # the answer begins: sent at once, the block folded to its final summary
    data = rec.messages[-1][1]["text/markdown"]
    assert data.startswith("<details><summary>Thinking (12 s, 19 characters)</summary>")
    assert data.endswith("</details>\n\nLists ")
    view.feed("hold items.")
    view.finish(answer("Lists hold items."))
    final = rec.messages[-1][1]
    assert final["text/plain"] == "Lists hold items."
    assert final["text/markdown"].startswith("<details><summary>Thinking (12 s, 19 characters)")
    assert "Let me see. A list." in final["text/markdown"]
    assert final["text/markdown"].endswith("</details>\n\nLists hold items.")


def test_stream_view_thinking_after_the_answer_began_is_already_over():
    rec, clock = Recorder(), Clock()
    view = StreamView(publisher=rec, clock=clock, footer=False)
    clock.now = 1.0
    view.feed("An answer")
    view.feed(Thinking("an afterthought"))
    view.finish(answer("An answer"))
    final = rec.messages[-1][1]["text/markdown"]
    assert final.startswith("<details><summary>Thinking (1.0 s, 15 characters)</summary>")
    assert final.endswith("</details>\n\nAn answer")


def test_stream_view_throttles_thinking_like_the_answer():
    rec, clock = Recorder(), Clock()
    view = StreamView(publisher=rec, clock=clock, footer=False)
    for _ in range(2000):  # 2,000 pieces over 2 s
        view.feed(Thinking("x "))
        clock.now += 0.001
    assert 2 <= len(rec.messages) <= 20 * 2 + 2
    assert "Thinking… (" in rec.messages[-1][1]["text/markdown"]


def test_no_thinking_view_ignores_the_pieces_and_the_reasoning():
    rec = Recorder()
    view = StreamView(publisher=rec, footer=False)
    view.show_thinking = False
    view.feed(Thinking("secret plan"))
    assert rec.messages == []
    view.feed("Answer.")
    view.finish(answer("Answer.", reasoning="secret plan"))
    assert all("secret plan" not in shown for _, d, _ in rec.messages for shown in d.values())


def test_interrupted_while_thinking_keeps_the_block_and_the_mark():
    rec, clock = Recorder(), Clock()
    view = StreamView(publisher=rec, clock=clock, footer=False)
    view.feed(Thinking("Half a thought"))
    clock.now = 2.0
    view.finish(
        answer("", error="Interrupted: the answer is incomplete.", reasoning="Half a thought"),
        interrupted=True,
    )
    final = rec.messages[-1][1]
    assert final["text/markdown"].startswith("<details><summary>Thinking (2.0 s, 14 characters)</summary>")
    assert final["text/markdown"].endswith("*[interrupted]*")


def test_the_block_cannot_be_broken_by_what_the_model_thinks():
    """Escaped, one raw HTML block: a fence, a blank line or ``</details>`` in the thinking stay text."""
    thoughts = Thoughts.whole("Maybe:\n\n```python\nx = 1\n</details><script>alert(1)</script> **Plan**")
    block = thoughts.details()
    assert block.count("</details>") == 1 and block.endswith("</details>")
    assert "<script>" not in block and "&lt;/details&gt;&lt;script&gt;" in block
    assert "\n\n" not in block  # a blank line would end the HTML block and let Markdown in
    assert "<b>Plan</b>" in block and "```python<br>" in block


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({"text/html": "<pre>x</pre>", "text/plain": "x"}, "text/html"),
        ({"text/plain": "x"}, "text/html"),  # a -f text partial becomes HTML to hold the block
        ({"text/markdown": "x", "text/plain": "x", "application/json": 1}, "text/markdown"),
    ],
)
def test_every_format_gets_the_block_above_and_plain_text_stays_the_answer(data, key):
    out = with_thoughts(data, Thoughts.whole("think"))
    assert out[key].startswith("<details><summary>Thinking (5 characters)</summary>")
    assert out.get("text/plain", "x") == "x" and "think" not in out.get("text/plain", "")
    assert with_thoughts(data, None) is data


@pytest.mark.parametrize(
    ("metadata", "figures"),
    [
        ({"reasoning_tokens": 800}, "3 in / 120 out, 800 thinking"),  # OpenAI
        ({"thinking_tokens": 9}, "3 in / 120 out, 9 thinking"),  # Gemini
        ({}, "3 in / 120 out"),
    ],
)
def test_footer_shows_thinking_tokens_where_known(metadata, figures):
    assert footer_text(answer(tokens_out=120, metadata=metadata)) == f"mock-1 · mock · {figures} · 1.2 s"


def test_footer_shows_thinking_tokens_even_without_the_other_counts():
    response = AIResponse("x", model="m", metadata={"reasoning_tokens": 5})
    assert footer_text(response) == "m · 5 thinking"
