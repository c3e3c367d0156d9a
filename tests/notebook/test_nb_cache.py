"""``%ttt_cache``, ``%ttt_record`` and ``%ttt_replay``: in-process IPython, then one real kernel."""

from __future__ import annotations

import json

import pytest
from IPython.core.error import UsageError

import ttt_magic
from ttt_magic import cache as cache_mod
from ttt_magic import recording
from ttt_magic.config import get_config
from ttt_magic.notebook.cachemagics import CacheMagics, register, unregister


@pytest.fixture
def ip(shell, tmp_path, monkeypatch):
    """The extension's shell with the cache magics registered; the cache in a fresh folder."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    cache_mod._warned.clear()
    recording._books.clear()
    register(shell)
    try:
        yield shell
    finally:
        unregister(shell)
        cache_mod.close_all()


def test_register_is_idempotent_and_unregister_removes_the_magics(shell):
    register(shell)
    register(shell)
    assert isinstance(shell.magics_manager.registry["CacheMagics"], CacheMagics)
    for name in ("ttt_cache", "ttt_record", "ttt_replay"):
        assert shell.find_line_magic(name) is not None
    unregister(shell)
    for name in ("ttt_cache", "ttt_record", "ttt_replay"):
        assert shell.find_line_magic(name) is None
    assert shell.find_line_magic("ttt_config") is not None  # the other magics stay


@pytest.mark.parametrize(
    ("magic", "words"),
    [
        ("ttt_cache", ["--clear", "--older-than", "AGE", "on", "off", "--path"]),
        ("ttt_record", ["path", "--off", "JSON Lines"]),
        ("ttt_replay", ["--mode", "strict", "fallthrough", "--speed", "--off"]),
    ],
)
def test_question_mark_help_lists_the_arguments(ip, magic, words):
    doc = ip.find_line_magic(magic).__doc__
    for word in words:
        assert word in doc, (magic, word)
    info = ip.object_inspect(f"%{magic}")
    assert info["found"] and ("--off" in info["docstring"] or "--clear" in info["docstring"])


def test_ttt_cache_on_report_and_off(ip, capsys, tmp_path):
    ip.run_line_magic("ttt_cache", "")
    out = capsys.readouterr().out
    assert "Response cache: off" in out and str(tmp_path / "xdg" / "ttt-magic") in out
    ip.run_line_magic("ttt_cache", "on")
    assert get_config().cache is True
    ip.run_cell("%%ask -b echo\ncache this answer please")
    ip.run_cell("%%ask -b echo\ncache this answer please")
    assert ttt_magic.last_response.metadata.get("cached") is True
    capsys.readouterr()
    ip.run_line_magic("ttt_cache", "")
    out = capsys.readouterr().out
    assert "Response cache: on" in out and "entries:  1" in out and "1 hits, 1 misses" in out
    ip.run_line_magic("ttt_cache", "off")
    assert get_config().cache is False


def test_ttt_cache_on_with_a_path(ip, tmp_path, capsys):
    target = tmp_path / "mine.sqlite3"
    ip.run_line_magic("ttt_cache", f"on --path {target}")
    assert get_config().cache == str(target)
    assert str(target) in capsys.readouterr().out


def test_ttt_cache_clear_and_older_than(ip, capsys):
    ip.run_line_magic("ttt_cache", "on")
    for prompt in ("one", "two"):
        ip.run_cell(f"%%ask -b echo\n{prompt}")
    capsys.readouterr()
    ip.run_line_magic("ttt_cache", "--clear --older-than 7d")
    assert "Removed 0 cached answers older than 7d." in capsys.readouterr().out
    ip.run_line_magic("ttt_cache", "--clear")
    out = capsys.readouterr().out
    assert "Removed 2 cached answers." in out and "entries:  0" in out


@pytest.mark.parametrize("line", ["--older-than 7d", "--clear --older-than soon", "maybe"])
def test_ttt_cache_refuses_bad_arguments(ip, line):
    with pytest.raises(UsageError):
        ip.run_line_magic("ttt_cache", line)


def test_record_then_replay_in_a_session(ip, tmp_path, capsys, monkeypatch):
    path = tmp_path / "answers.jsonl"
    monkeypatch.chdir(tmp_path)
    ip.run_line_magic("ttt_record", "answers.jsonl")  # relative: made absolute at once
    assert get_config().record == str(path)
    ip.run_cell("%%ask -b echo\nrecord me now")
    assert "Recording answers to" in capsys.readouterr().out
    ip.run_line_magic("ttt_record", "")
    assert "(1 recorded so far)" in capsys.readouterr().out
    entry = json.loads(path.read_text(encoding="utf-8"))
    assert entry["prompt"].strip() == "record me now" and entry["answer"] == "record me now"
    ip.run_line_magic("ttt_record", "--off")
    assert get_config().record is None

    ip.run_line_magic("ttt_replay", f"{path} --speed 0")
    out = capsys.readouterr().out
    assert "Replaying answers from" in out and "mode strict" in out
    ip.run_cell("%%ask -b echo\nrecord me now")
    replayed = ttt_magic.last_response
    assert replayed.text.strip() == "record me now" and replayed.metadata["replayed"]["backend"] == "echo"
    ip.run_cell("%%ask -b echo\nnever recorded")
    assert ttt_magic.last_response.failed and "No recorded answer" in ttt_magic.last_response.error

    ip.run_line_magic("ttt_replay", "--mode fallthrough")
    assert get_config().replay_mode == "fallthrough"
    ip.run_cell("%%ask -b echo\nnever recorded")
    assert ttt_magic.last_response.succeeded and "replayed" not in ttt_magic.last_response.metadata
    ip.run_line_magic("ttt_replay", "--off")
    assert get_config().replay is None


def test_replay_of_a_missing_file_says_how_to_record_it(ip, tmp_path, capsys):
    ip.run_line_magic("ttt_replay", str(tmp_path / "nope.jsonl"))
    out = capsys.readouterr().out
    assert "does not exist yet" in out and "%ttt_record" in out


def test_bad_values_are_usage_errors(ip):
    with pytest.raises(UsageError):
        ip.run_line_magic("ttt_replay", "--mode loose")
    with pytest.raises(UsageError, match="replay_speed"):
        ip.run_line_magic("ttt_replay", "--speed -3")


# --------------------------------------------------------------------------- a real kernel


def test_in_a_kernel_help_record_and_replay(kernel, tmp_path):
    path = tmp_path / "kernel-answers.jsonl"
    kernel.ok(
        "import os\n"
        f"os.environ['XDG_CACHE_HOME'] = {str(tmp_path / 'xdg')!r}\n"
        "from ttt_magic.notebook.cachemagics import register\n"
        "register(get_ipython())"
    )
    help_page = kernel.ok("%ttt_cache?")
    pages = [p for p in help_page.payload if p.get("source") == "page"]
    assert pages and "--older-than" in pages[0]["data"]["text/plain"]
    kernel.ok(f"%ttt_record {path}")
    kernel.ok("%%ask -b echo\nanswer me in the kernel")
    kernel.ok("%ttt_record --off")
    assert json.loads(path.read_text(encoding="utf-8"))["answer"] == "answer me in the kernel"
    kernel.ok(f"%ttt_replay {path} --speed 0")
    kernel.ok("%%ask -b echo\nanswer me in the kernel")
    check = kernel.ok("import ttt_magic\nprint(ttt_magic.last_response.metadata['replayed']['backend'])")
    assert check.stdout.strip() == "echo"
    kernel.ok("%ttt_replay --off")


# --------------------------------------------------------------------------- wired into %%ask (issue #10)


def test_loading_the_extension_registers_the_cache_magics(shell):
    for name in ("ttt_cache", "ttt_record", "ttt_replay"):
        assert shell.find_line_magic(name) is not None
    shell.run_line_magic("unload_ext", "ttt_magic")
    try:
        assert all(shell.find_line_magic(n) is None for n in ("ttt_cache", "ttt_record", "ttt_replay"))
    finally:
        shell.run_line_magic("load_ext", "ttt_magic")  # the fixture unloads
    assert shell.find_line_magic("ttt_cache") is not None


def test_ask_cache_and_no_cache_choose_per_cell(ip, capsys):
    ip.run_cell("%%ask -b echo --cache\nkeep this one")
    assert "cached" not in ttt_magic.last_response.metadata  # stored, not read: a miss
    capsys.readouterr()
    ip.run_cell("%%ask -b echo --cache\nkeep this one")
    assert ttt_magic.last_response.metadata["cached"] is True
    assert capsys.readouterr().out.rstrip().endswith(" · cached]")
    ip.run_cell("%%ask -b echo\nkeep this one")  # the cache is off: asked again
    assert "cached" not in ttt_magic.last_response.metadata
    ip.run_line_magic("ttt_cache", "on")
    ip.run_cell("%%ask -b echo\nkeep this one")
    assert ttt_magic.last_response.metadata["cached"] is True
    ip.run_cell("%%ask -b echo --no-cache\nkeep this one")  # on for the session, off for this cell
    assert "cached" not in ttt_magic.last_response.metadata
    ip.run_cell("%%ask -b echo --no-cache --no-stream\nkeep this one")
    assert "cached" not in ttt_magic.last_response.metadata


def test_a_replayed_answer_says_so_in_its_footer(ip, tmp_path, capsys):
    path = tmp_path / "answers.jsonl"
    ip.run_line_magic("ttt_record", str(path))
    ip.run_cell("%%ask -b echo\nreplay my footer")
    ip.run_line_magic("ttt_record", "--off")
    ip.run_line_magic("ttt_replay", f"{path} --speed 0")
    capsys.readouterr()
    try:
        ip.run_cell("%%ask -b echo\nreplay my footer")
        footer = capsys.readouterr().out.strip().splitlines()[-1]
    finally:
        ip.run_line_magic("ttt_replay", "--off")
    recorded = ttt_magic.last_response.metadata["replayed"]["recorded"][:10]
    assert footer.startswith("[echo · echo · ")
    assert footer.endswith(f" · replayed · recorded from echo/echo on {recorded}]")
