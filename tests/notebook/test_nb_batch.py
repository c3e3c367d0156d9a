"""``%ttt_batch``: the jobs of this folder, --wait, --results NAME -o VAR, --cancel, --retry (in-process)."""

from __future__ import annotations

import pytest
from IPython.core.error import UsageError

from tests.fakes import SENTINEL_KEY
from tests.fakes.openai_batch_fake import OpenAIBatchFake
from ttt_magic import batchjobs
from ttt_magic.batch import Answers
from ttt_magic.batchjobs import submit_batch
from ttt_magic.config import configure
from ttt_magic.notebook.batchmagics import BatchMagics, register, unregister


@pytest.fixture
def ip(shell):
    register(shell)
    try:
        yield shell
    finally:
        unregister(shell)
        shell.user_ns.pop("answers", None)


@pytest.fixture
def fake(monkeypatch):
    server = OpenAIBatchFake(api_key=SENTINEL_KEY).start()
    configure(openai_base_url=server.base_url, openai_api_key=SENTINEL_KEY, enable_fallbacks=False)
    monkeypatch.setattr(batchjobs, "sleep", lambda seconds: None)
    try:
        yield server
    finally:
        server.stop()


def test_register_is_idempotent_and_unregister_removes_the_magic(shell):
    register(shell)
    register(shell)
    assert isinstance(shell.magics_manager.registry["BatchMagics"], BatchMagics)
    assert shell.find_line_magic("ttt_batch") is not None
    unregister(shell)
    assert shell.find_line_magic("ttt_batch") is None
    assert shell.find_line_magic("ttt_config") is not None  # the other magics stay


def test_question_mark_help_lists_the_arguments(ip):
    doc = ip.find_line_magic("ttt_batch").__doc__
    for word in ("--refresh", "--wait", "--results", "--out", "--cancel", "--retry", "--status", "--dir"):
        assert word in doc, word


def test_an_empty_folder_says_how_to_make_a_job(ip, capsys):
    ip.run_line_magic("ttt_batch", "")
    assert "No batch jobs in this folder" in capsys.readouterr().out


def test_list_wait_and_results_into_a_variable(ip, fake, capsys):
    fake.behaviour.fail = {1}
    job = submit_batch(["a", "b", "c"], "Say {}", model="gpt-4o-mini")
    capsys.readouterr()
    ip.run_line_magic("ttt_batch", "")
    listing = capsys.readouterr().out
    assert job.path.name in listing and "gpt-4o-mini" in listing and "in_progress" in listing
    name = job.path.stem.removeprefix("batch-")
    ip.run_line_magic("ttt_batch", f"--wait {name}")
    assert "2 done · 1 failed · 0 pending of 3 — ended" in capsys.readouterr().out
    ip.run_line_magic("ttt_batch", f"--results {job.path.name} -o answers")
    assert capsys.readouterr().out.startswith("answers = 3 answers · 1 failed")
    answers = ip.user_ns["answers"]
    assert isinstance(answers, Answers) and answers.texts[2] == "Answer 2: Say c"
    shown = ip.run_line_magic("ttt_batch", f"--results {job.path.stem}")
    assert isinstance(shown, Answers) and shown.texts == answers.texts
    ip.run_line_magic("ttt_batch", "--refresh")
    assert "ended (completed)" in capsys.readouterr().out


def test_retry_and_cancel(ip, fake, capsys):
    fake.behaviour.fail = {0}
    job = submit_batch(["a", "b"], model="gpt-4o-mini")
    ip.run_line_magic("ttt_batch", f"--wait {job.path.stem}")
    ip.run_line_magic("ttt_batch", f"--retry {job.path.stem}")
    assert "1 failed rows sent again" in capsys.readouterr().err
    fake.behaviour.polls = 5
    other = submit_batch(["x", "y", "z"], model="gpt-4o-mini")
    ip.run_line_magic("ttt_batch", f"--status {other.path.stem}")
    ip.run_line_magic("ttt_batch", f"--cancel {other.path.stem}")
    assert "cancelling" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("--wait nothing-here", "No batch job 'nothing-here'"),
        ("-o x", "-o goes with --results"),
        ("--wait a --cancel b", "one of --wait, --cancel"),
    ],
)
def test_bad_lines_are_usage_errors(ip, line, message):
    with pytest.raises(UsageError, match=message):
        ip.run_line_magic("ttt_batch", line)
