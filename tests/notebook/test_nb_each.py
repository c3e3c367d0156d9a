"""``%%ask --each``, ``--schema`` and ``-f json`` carried through, in-process (terminal IPython).

The cell as a template over a list, a Series or a DataFrame; the answers
stored in ``_`` or ``-o VAR`` and shown as a table with failures marked;
names looked up, never evaluated; structured answers; JSON asked of the
backend, not only shown.
"""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest
from pydantic import BaseModel

import ttt_magic
from ttt_magic import batch
from ttt_magic.batch import Answers, BatchInterrupted
from ttt_magic.errors import TTTError
from ttt_magic.models import AIResponse
from ttt_magic.notebook.each import JSON_INSTRUCTION, EachRun
from ttt_magic.notebook.render import final_bundle

_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def run(shell, capsys, cell: str):
    result = shell.run_cell(cell)
    captured = capsys.readouterr()
    return result, _ANSI.sub("", captured.out + captured.err)


@pytest.fixture
def data(shell):
    frame = pd.DataFrame(
        {"title": ["Tea", "Rivers", "Harbours"], "text": ["leaves", "floods", "silt"]}, index=["a", "b", "c"]
    )
    values = {"df": frame, "words": ["one", "two"], "topic": "history", "shout": "abc"}
    shell.user_ns.update(values)
    try:
        yield frame
    finally:
        for name in [*values, "_", "res", "Review", "shape"]:
            shell.user_ns.pop(name, None)


class Review(BaseModel):
    sentiment: str
    score: int


# ----------------------------------------------------------------- the cell as a template


def test_each_item_of_a_list_is_asked_and_the_answers_land_in_underscore(shell, capsys, sent, data):
    result, out = run(shell, capsys, "%%ask -b echo --each words\nDefine: {}")
    assert result.success
    assert sorted(s.prompt for s in sent) == ["Define: one", "Define: two"]
    answers = shell.user_ns["_"]
    assert isinstance(answers, Answers) and answers.texts == ["Define: one", "Define: two"]
    assert ttt_magic.last_response is answers[-1]
    lines = out.splitlines()
    assert lines[:2] == ["| # | prompt | answer |", "| ---: | --- | --- |"]
    assert lines[2] == "| 0 | Define: one | Define: one |"
    assert "2 answers" in out and "All 2 answers are in `_`" in out


def test_rows_of_a_dataframe_fill_fields_and_notebook_names(shell, capsys, sent, data):
    cell = "%%ask -b echo --each df -o res\n{title} ({topic}): {text}"
    _, out = run(shell, capsys, cell)
    answers = shell.user_ns["res"]
    assert answers.texts == ["Tea (history): leaves", "Rivers (history): floods", "Harbours (history): silt"]
    assert list(answers.to_frame().index) == ["a", "b", "c"]  # lines up with df for a join
    assert "All 3 answers are in `res`" in out and len(sent) == 3
    assert "_" not in shell.user_ns or shell.user_ns["_"] is not answers


def test_a_dotted_attribute_names_a_column_and_line_magic_works_too(shell, capsys, data):
    run(shell, capsys, "%ask -b echo --each df.title -o res About {}")
    assert shell.user_ns["res"].texts == ["About Tea", "About Rivers", "About Harbours"]


def test_failures_are_marked_in_the_table_and_the_rest_answered(shell, capsys, data):
    shell.user_ns["words"] = ["fine", "[fail] this one", "also fine"]
    result, out = run(shell, capsys, "%%ask -b mock --each words\n{}")
    assert result.success
    answers = shell.user_ns["_"]
    assert answers.failed == [1] and answers[0].succeeded and answers[2].succeeded
    failed_row = next(line for line in out.splitlines() if line.startswith("| 1 |"))
    assert "**failed**: Mock failure" in failed_row
    assert "1 failed" in out


def test_under_raise_on_error_a_failed_item_fails_the_cell_after_the_table(shell, capsys, data):
    ttt_magic.configure(raise_on_error=True)
    shell.user_ns["words"] = ["fine", "[fail] this one"]
    result, out = run(shell, capsys, "%%ask -b mock --each words\n{}")
    assert isinstance(result.error_in_exec, TTTError)
    assert "1 of 2 items failed; the first: Mock failure" in str(result.error_in_exec)
    assert "| 1 | [fail] this one | **failed**" in out  # shown before the cell stops
    assert shell.user_ns["_"].failed == [1]


def test_ctrl_c_keeps_what_finished_and_stops_the_cell(shell, capsys, monkeypatch, data):
    finished = AIResponse("done", backend="echo")
    stopped = AIResponse("", error="Interrupted", metadata={"interrupted": True})
    kept = Answers([finished, stopped], prompts=["Define: one", "Define: two"], stopped="interrupted")

    def interrupted(*args, **kwargs):
        raise BatchInterrupted(kept)

    monkeypatch.setattr(batch, "run_each", interrupted)
    result, out = run(shell, capsys, "%%ask -b echo --each words -o res\nDefine: {}")
    assert isinstance(result.error_in_exec, KeyboardInterrupt)
    assert shell.user_ns["res"] is kept and ttt_magic.last_response is stopped
    assert "| 0 | Define: one | done |" in out and "Stopped: interrupted" in out


def test_the_notebook_output_is_one_markdown_table(shell, data):
    from ttt_magic.notebook.magics import TTTMagics

    host = shell.magics_manager.registry["TTTMagics"]
    opts, template = TTTMagics._parse_ask(host, "-b echo --each words", "Define: {}")
    shown: list[dict] = []
    host_show = host._show
    host._show = lambda bundle, plain=None: shown.append(bundle)
    try:
        EachRun(host, opts, template).run()
    finally:
        host._show = host_show
    (bundle,) = shown
    assert bundle["text/markdown"].startswith("| # | prompt | answer |\n| ---: | --- | --- |\n| 0 |")
    assert bundle["text/markdown"].endswith(
        "All 2 answers are in `_`: `.texts`, `.data`, `.failed`, `.to_frame()`."
    )


# ----------------------------------------------------------------- names, never code


@pytest.mark.parametrize(
    ("line", "said"),
    [
        ("--each df[0]", "--each takes a variable name or a dotted attribute (such as df.text), not 'df[0]'"),
        ("--each __import__('os')", "nothing is evaluated"),
        ("--each df._data", "not 'df._data'"),
        ("--each nope", "--each nope: there is no variable 'nope'."),
        ("--each wrods", "Did you mean 'words'?"),
        ("--each df.nope", "--each df.nope: df has no attribute 'nope'."),
        ("--each shout", "--each shout is one string, not a list of items."),
        ("--each words --chat", "--each asks every item on its own: it does not go with --chat."),
        ("--each words --insert --explain", "it does not go with --insert, --explain."),
        ("--schema {'a': 1}", "--schema takes a variable name or a dotted attribute"),
        ("--schema nothing_here", "--schema nothing_here: there is no variable 'nothing_here'."),
    ],
)
def test_what_cannot_be_looked_up_is_refused_and_nothing_is_sent(shell, capsys, sent, data, line, said):
    result, out = run(shell, capsys, f"%%ask -b echo {line}\nDefine: {{}}")
    assert result.success and sent == []
    assert out.startswith("ttt-magic: ") and said in out
    assert out.count("\n") == 1


def test_a_suggestion_is_never_one_of_ipythons_own_names(shell, capsys, data):
    _, out = run(shell, capsys, "%%ask -b echo --each opn\n{}")
    assert "there is no variable 'opn'" in out and "'open'" not in out


# ----------------------------------------------------------------- --schema


def test_schema_names_a_shorthand_for_every_item(shell, capsys, data):
    shell.user_ns["shape"] = {"sentiment": ("positive", "negative"), "score": int}
    _, out = run(shell, capsys, "%%ask -b mock --each df.text --schema shape -o res\nReview: {}")
    answers = shell.user_ns["res"]
    assert all(set(d) == {"sentiment", "score"} for d in answers.data)
    assert "| # | prompt | data |" in out
    assert list(answers.to_frame().columns) == ["sentiment", "score", "error"]


def test_schema_of_one_ask_shows_the_parsed_data_too(shell, capsys, data):
    shell.user_ns["Review"] = Review
    _, out = run(shell, capsys, "%%ask -b mock --schema Review -o res\nReview this cafe: lovely")
    answer = shell.user_ns["res"]
    assert isinstance(answer.data, Review)
    assert f".data (Review): {answer.data!r}" in out


def test_the_data_block_of_a_structured_answer():
    answer = AIResponse('{"sentiment": "positive", "score": 4}', data=Review(sentiment="positive", score=4))
    data, _ = final_bundle(answer.text, "markdown", answer, footer=False)
    assert data["text/markdown"].endswith(
        '<sub>.data (Review)</sub>\n\n```json\n{\n  "sentiment": "positive",\n  "score": 4\n}\n```'
    )
    assert data["text/plain"].endswith("\n.data (Review): Review(sentiment='positive', score=4)")
    as_json, _ = final_bundle(answer.text, "json", answer, footer=False)  # already shown parsed
    assert ".data" not in as_json["text/markdown"] and as_json["application/json"]["score"] == 4
    plain, _ = final_bundle("x", "markdown", AIResponse("x"), footer=False)
    assert plain["text/plain"] == "x"


# ----------------------------------------------------------------- -f json tells the backend


def test_json_format_asks_the_backend_for_json_only(shell, capsys, sent, data):
    _, out = run(shell, capsys, "%%ask -b mock -f json\nList three colours")
    assert sent[-1].system == JSON_INSTRUCTION
    assert json.loads(ttt_magic.last_response.text)  # the mock honours a JSON system prompt
    assert "Invalid JSON" not in out
    run(shell, capsys, '%%ask -b mock -f json -s "Be terse."\nList three colours')
    assert sent[-1].system == f"Be terse.\n\n{JSON_INSTRUCTION}"
    run(shell, capsys, "%%ask -b mock\nList three colours")
    assert sent[-1].system is None  # only -f json adds it


def test_json_format_joins_the_configured_system_prompt(shell, capsys, sent):
    ttt_magic.configure(system="You are a librarian.")
    run(shell, capsys, "%%ask -b mock -f json\nList three books")
    assert sent[-1].system == f"You are a librarian.\n\n{JSON_INSTRUCTION}"
    ttt_magic.configure(backends={"mock": {"system": "You are a mock."}})
    run(shell, capsys, "%%ask -b mock -f json --no-stream\nList three books")
    assert sent[-1].system == f"You are a mock.\n\n{JSON_INSTRUCTION}"


def test_json_format_in_a_conversation_is_not_remembered_by_it(shell, capsys, sent):
    run(shell, capsys, '%%ask -b echo --chat=j --new -s "Be kind."\nhello')
    run(shell, capsys, "%%ask -b echo --chat=j -f json\nnow as JSON")
    run(shell, capsys, "%%ask -b echo --chat=j\nand plain again")
    assert [s.system for s in sent] == ["Be kind.", f"Be kind.\n\n{JSON_INSTRUCTION}", "Be kind."]


def test_json_format_with_each_asks_every_item_for_json(shell, capsys, sent, data):
    run(shell, capsys, "%%ask -b mock -f json --each words\nDescribe {} as JSON")
    assert {(s.prompt, s.system) for s in sent} == {  # (the mock's ask goes through its astream: twice)
        ("Describe one as JSON", JSON_INSTRUCTION),
        ("Describe two as JSON", JSON_INSTRUCTION),
    }
    assert all(json.loads(text) for text in shell.user_ns["_"].texts)


# ----------------------------------------------------------------- a real kernel


def test_each_in_a_kernel_shows_progress_then_one_markdown_table(kernel):
    kernel.ok("items = [f'item {i}' for i in range(8)]")
    result = kernel.ok("%%ask -b echo --each items\nSay {}")
    kinds = [set(m["content"]["data"]) for m in result.displays]
    bar = next(i for i, k in enumerate(kinds) if "application/vnd.jupyter.widget-view+json" in k)
    table = result.final()["data"]
    assert bar < len(kinds) - 1  # the progress bar came first, in this cell
    assert table["text/markdown"].startswith(
        "| # | prompt | answer |\n| ---: | --- | --- |\n| 0 | Say item 0 |"
    )
    assert "(first 5 shown)" in table["text/markdown"] and "All 8 answers are in `_`" in table["text/plain"]
    check = kernel.ok("print(type(_).__name__, len(_), _.failed, _.texts[7])")
    assert check.stdout.strip() == "Answers 8 [] Say item 7"
