"""The response cache (ttt_magic/cache.py): keys, hits, what is never stored, shared and bad files.

Most tests call the interceptor directly with a fake ``proceed`` (the backend
side of the chain); the end-to-end ones go through ``ask``/``stream`` once the
router runs its attempts through the chain.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import logging
import os
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from ttt_magic import cache as cache_mod
from ttt_magic.cache import ResponseCache, default_path, intercept, parse_age, split_chunks
from ttt_magic.chain import Chain
from ttt_magic.config import configure, get_config
from ttt_magic.errors import ProviderError, UsageError
from ttt_magic.models import StreamEnd
from ttt_magic.request import Resolved

ROOT = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------- helpers


class FakeBackend:
    """The ``proceed`` of an interceptor: yields scripted chunks and a StreamEnd, counting calls."""

    def __init__(self, chunks=("Hello", ", ", "world", "!"), end=None, fail_after=None, no_end=False):
        self.chunks = list(chunks)
        self.end = end or StreamEnd(
            model="fake-model-2024", tokens_in=12, tokens_out=4, finish_reason="stop", cost=0.0042
        )
        self.fail_after = fail_after
        self.no_end = no_end
        self.calls = 0
        self.seen: list[Resolved] = []

    async def __call__(self, call):
        self.calls += 1
        self.seen.append(call)
        for i, chunk in enumerate(self.chunks):
            if self.fail_after is not None and i == self.fail_after:
                raise ProviderError("connection dropped", retryable=True, kind="network")
            yield chunk
        if self.fail_after is not None and self.fail_after >= len(self.chunks):
            raise ProviderError("connection dropped", retryable=True, kind="network")
        if not self.no_end:
            yield self.end


def make_call(**changes) -> Resolved:
    values = {
        "backend": "fake",
        "model": "fake-model",
        "prompt": "What is a list comprehension?",
        "temperature": 0.0,
        "stream": True,
    }
    values.update(changes)
    values.setdefault("config", get_config().backend_config(values["backend"]))
    return Resolved(**values)


def collect(call, proceed, interceptor=intercept):
    async def main():
        return [item async for item in interceptor(call, proceed)]

    return asyncio.run(main())


def split(items):
    text = [i for i in items if isinstance(i, str)]
    ends = [i for i in items if isinstance(i, StreamEnd)]
    assert len(ends) == 1 and isinstance(items[-1], StreamEnd), items
    return text, ends[0]


@pytest.fixture(autouse=True)
def cache_home(tmp_path, monkeypatch):
    """XDG_CACHE_HOME in a fresh folder; open cache files closed and warnings forgotten afterwards."""
    folder = tmp_path / "xdg-cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(folder))
    cache_mod._warned.clear()
    yield folder
    cache_mod.close_all()
    cache_mod._warned.clear()


# --------------------------------------------------------------------------- on and off


def test_off_by_default_nothing_is_stored(cache_home):
    backend = FakeBackend()
    for _ in range(2):
        text, _ = split(collect(make_call(), backend))
        assert "".join(text) == "Hello, world!"
    assert backend.calls == 2
    assert not cache_home.exists()
    assert get_config().cache is False


def test_default_path_honours_xdg_cache_home(cache_home, monkeypatch):
    assert default_path() == cache_home / "ttt-magic" / "responses.sqlite3"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert default_path() == Path(os.path.expanduser("~")) / ".cache" / "ttt-magic" / "responses.sqlite3"


def test_configured_cache_answers_the_second_call_from_the_file(cache_home):
    configure(cache=True)
    backend = FakeBackend()
    first = collect(make_call(), backend)
    second = collect(make_call(), backend)
    assert backend.calls == 1
    text1, end1 = split(first)
    text2, end2 = split(second)
    assert text2 == text1 == ["Hello", ", ", "world", "!"]
    assert (end2.model, end2.tokens_in, end2.tokens_out, end2.finish_reason, end2.cost) == (
        "fake-model-2024",
        12,
        4,
        "stop",
        0.0042,
    )
    assert end2.metadata["cached"] is True and "cached" not in end1.metadata
    assert (cache_home / "ttt-magic" / "responses.sqlite3").exists()


def test_per_call_switch_on_while_the_setting_is_off(cache_home):
    backend = FakeBackend()
    collect(make_call(cache=True), backend)
    _, end = split(collect(make_call(cache=True), backend))
    assert backend.calls == 1 and end.metadata["cached"]
    collect(make_call(), backend)  # no switch, setting off: not read
    assert backend.calls == 2


def test_per_call_opt_out_neither_reads_nor_writes(cache_home):
    configure(cache=True)
    backend = FakeBackend()
    collect(make_call(cache=False), backend)
    collect(make_call(), backend)  # not stored by the opted-out call: a miss
    collect(make_call(cache=False), backend)  # stored now, but this call does not read it
    assert backend.calls == 3
    _, end = split(collect(make_call(), backend))
    assert backend.calls == 3 and end.metadata["cached"]


def test_a_configured_path_is_the_cache_file(tmp_path, cache_home):
    target = tmp_path / "elsewhere" / "answers.db"
    configure(cache=str(target))
    backend = FakeBackend()
    collect(make_call(), backend)
    collect(make_call(), backend)
    assert backend.calls == 1 and target.exists()
    assert not (cache_home / "ttt-magic").exists()
    # ask(cache=True) with a configured path uses that path too
    configure(cache=None)
    configure(cache=str(target))
    assert cache_mod.wanted(make_call(cache=True)) == target


def test_the_cache_setting_reads_booleans_and_paths(monkeypatch, tmp_path):
    assert configure(cache="yes").cache is True
    assert configure(cache="off").cache is False
    assert configure(cache="~/c.sqlite3").cache == os.path.expanduser("~/c.sqlite3")
    configure(cache=None)
    monkeypatch.setenv("TTT_CACHE", "1")
    assert get_config().cache is True
    monkeypatch.setenv("TTT_CACHE", str(tmp_path / "x.db"))
    assert get_config().cache == str(tmp_path / "x.db")


def test_relative_path_in_a_config_file_is_beside_that_file(tmp_path, monkeypatch):
    project = tmp_path / "project"
    project.mkdir()
    (project / "ttt.yaml").write_text("cache: answers.sqlite3\nrecord: rec/answers.jsonl\n")
    monkeypatch.setenv("TTT_CONFIG", str(project / "ttt.yaml"))
    assert cache_mod.wanted(make_call()) == project / "answers.sqlite3"
    assert cache_mod.setting_path("record", "rec/answers.jsonl") == project / "rec" / "answers.jsonl"
    # anywhere else, relative to the working folder
    assert cache_mod.setting_path("record", "other.jsonl") == Path.cwd() / "other.jsonl"


def test_needed_says_when_the_module_matters():
    assert not cache_mod.needed(get_config())
    assert cache_mod.needed(get_config(), cache=True)
    assert cache_mod.needed(configure(record="r.jsonl"))
    configure(record=None)
    assert cache_mod.needed(configure(backends={"openai": {"cache": True}}))


# --------------------------------------------------------------------------- the key


CHANGES = {
    "backend": {"backend": "other"},
    "model": {"model": "fake-model-large"},
    "prompt": {"prompt": "What is a dict comprehension?"},
    "system": {"system": "Answer like a pirate."},
    "history": {
        "history": [
            {"role": "user", "content": "Earlier question"},
            {"role": "assistant", "content": "Earlier answer"},
        ]
    },
    "temperature": {"temperature": 0.7},
    "max_tokens": {"max_tokens": 50},
    "top_p": {"params": {"top_p": 0.5}},
    "stop": {"params": {"stop": ["\n"]}},
    "seed": {"params": {"seed": 7}},
    "presence_penalty": {"params": {"presence_penalty": 0.5}},
    "frequency_penalty": {"params": {"frequency_penalty": 0.5}},
    "options": {"options": {"logit_bias": {"50256": -100}}},
    "option value": {"options": {"user": "u-43"}},
    "schema": {"schema": {"type": "object", "properties": {"x": {"type": "integer"}}}},
    "images": {"images": [("image/png", b"\x89PNG fake")]},
    "content parts": {
        "prompt": [{"type": "text", "text": "What is a list comprehension?"}, {"type": "text", "text": "!"}]
    },
}


@pytest.mark.parametrize("change", list(CHANGES), ids=list(CHANGES))
def test_changing_any_one_part_of_the_request_is_a_miss(change):
    configure(cache=True)
    base = {"options": {"user": "u-42"}} if change == "option value" else {}
    backend = FakeBackend()
    collect(make_call(**base), backend)
    collect(make_call(**base), backend)
    assert backend.calls == 1  # the unchanged request is a hit
    collect(make_call(**{**base, **CHANGES[change]}), backend)
    assert backend.calls == 2, f"changing {change} alone must be a miss"
    collect(make_call(**{**base, **CHANGES[change]}), backend)
    assert backend.calls == 2  # and the changed request is cached in turn


def test_the_stream_flag_and_timeouts_are_not_part_of_the_key():
    configure(cache=True)
    backend = FakeBackend()
    collect(make_call(stream=True, timeout=5), backend)
    collect(make_call(stream=False, timeout=99, max_retries=0), backend)
    assert backend.calls == 1


# --------------------------------------------------------------------------- how a hit is given back


def test_a_streamed_hit_keeps_the_original_chunk_boundaries():
    configure(cache=True)
    backend = FakeBackend(chunks=["The ", "answer", " is", " 42."])
    collect(make_call(), backend)
    text, _ = split(collect(make_call(), backend))
    assert text == ["The ", "answer", " is", " 42."]


def test_a_non_streamed_hit_is_one_piece_and_a_streamed_hit_of_a_whole_answer_is_words():
    configure(cache=True)
    whole = "One answer, given whole by a non-streaming call.\n\nWith a second paragraph."
    backend = FakeBackend(chunks=[whole])
    collect(make_call(stream=False), backend)
    text, _ = split(collect(make_call(stream=False), backend))
    assert text == [whole]
    text, end = split(collect(make_call(stream=True), backend))
    assert backend.calls == 1 and end.metadata["cached"]
    assert len(text) == len(whole.split()) and "".join(text) == whole


def test_a_streamed_original_is_one_piece_for_ask():
    configure(cache=True)
    backend = FakeBackend()
    collect(make_call(stream=True), backend)
    text, _ = split(collect(make_call(stream=False), backend))
    assert text == ["Hello, world!"]


def test_a_long_streamed_hit_is_quick_and_lets_other_tasks_run():
    configure(cache=True)
    chunks = [f"word{i} " for i in range(3000)]
    backend = FakeBackend(chunks=chunks)
    collect(make_call(), backend)

    async def main():
        ticks = 0

        async def ticker():
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0)

        task = asyncio.create_task(ticker())
        started = time.perf_counter()
        items = [item async for item in intercept(make_call(), backend)]
        elapsed = time.perf_counter() - started
        task.cancel()
        return items, elapsed, ticks

    items, elapsed, ticks = asyncio.run(main())
    text, _ = split(items)
    assert text == chunks and elapsed < 0.5 and ticks > 10


def test_split_chunks_rejoins_to_the_text():
    for text in ["", "one", "  lead and trail  ", "a\n\nb\tc  d", "x" * 50]:
        assert "".join(split_chunks(text)) == text
    assert split_chunks("abcdef", [2, 4]) == ["ab", "cdef"]
    assert split_chunks("abcdef", [2, 3]) == ["abcdef"]  # lengths that do not add up: words


def test_an_empty_answer_is_cached_as_empty():
    configure(cache=True)
    backend = FakeBackend(chunks=[])
    collect(make_call(), backend)
    items = collect(make_call(), backend)
    assert backend.calls == 1 and len(items) == 1 and items[0].metadata["cached"]


def test_data_reasoning_and_metadata_come_back():
    configure(cache=True)
    end = StreamEnd(
        model="m",
        tokens_in=3,
        tokens_out=2,
        finish_reason="stop",
        metadata={"id": "chatcmpl-1", "handle": object()},
        data={"x": 1, "tags": ["a"]},
        reasoning="thought about it",
    )
    backend = FakeBackend(chunks=['{"x": 1, "tags": ["a"]}'], end=end)
    collect(make_call(), backend)
    _, hit = split(collect(make_call(), backend))
    assert hit.data == {"x": 1, "tags": ["a"]} and hit.reasoning == "thought about it"
    assert hit.metadata["id"] == "chatcmpl-1" and "handle" not in hit.metadata
    assert hit.metadata["cached_at"].endswith("Z")


def test_an_answer_whose_data_cannot_be_kept_is_not_cached():
    configure(cache=True)
    backend = FakeBackend(end=StreamEnd(model="m", data=object()))
    collect(make_call(), backend)
    collect(make_call(), backend)
    assert backend.calls == 2


# --------------------------------------------------------------------------- what is never stored


def test_a_failed_answer_is_not_stored():
    configure(cache=True)
    failing = FakeBackend(fail_after=2)
    with pytest.raises(ProviderError):
        collect(make_call(), failing)
    failing_at_end = FakeBackend(fail_after=4)  # every chunk, then a failure instead of the end
    with pytest.raises(ProviderError):
        collect(make_call(), failing_at_end)
    good = FakeBackend()
    collect(make_call(), good)
    assert good.calls == 1  # nothing was there to hit


def test_an_answer_without_its_end_is_not_stored():
    configure(cache=True)
    backend = FakeBackend(no_end=True)
    collect(make_call(), backend)
    collect(make_call(), backend)
    assert backend.calls == 2


def test_an_interrupted_answer_is_not_stored():
    configure(cache=True)
    backend = FakeBackend()

    async def read_two_and_stop():
        agen = intercept(make_call(), backend)
        got = [await agen.__anext__(), await agen.__anext__()]
        await agen.aclose()
        return got

    assert asyncio.run(read_two_and_stop()) == ["Hello", ", "]

    async def cancelled():
        async def slow(call):
            yield "partial"
            await asyncio.sleep(10)
            yield StreamEnd(model="m")

        async def consume():
            return [item async for item in intercept(make_call(), slow)]

        task = asyncio.create_task(consume())
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(cancelled())
    collect(make_call(), backend)
    assert backend.calls == 2  # neither the closed nor the cancelled answer was kept


def test_closing_right_after_the_end_keeps_the_answer():
    configure(cache=True)
    backend = FakeBackend()

    async def read_until_end():
        agen = intercept(make_call(), backend)
        async for item in agen:
            if isinstance(item, StreamEnd):
                break
        await agen.aclose()

    asyncio.run(read_until_end())
    _, end = split(collect(make_call(), backend))
    assert backend.calls == 1 and end.metadata["cached"]


def test_an_inner_cached_or_replayed_end_is_not_stored_again():
    configure(cache=True)
    backend = FakeBackend(end=StreamEnd(model="m", metadata={"replayed": {"backend": "x"}}))
    collect(make_call(), backend)
    collect(make_call(), backend)
    assert backend.calls == 2


# --------------------------------------------------------------------------- usage accounting


def test_usage_counts_a_hit_as_a_call_with_no_new_cost():
    usage = importlib.import_module("ttt_magic.accounting")

    configure(cache=True)
    links = Chain()
    links.add("usage", usage.account, order=0)
    links.add("cache", intercept, order=30)
    backend = FakeBackend()
    handler = links.wrap(backend)
    usage.reset()
    try:
        for _ in range(3):

            async def run():
                return [item async for item in handler(make_call())]

            split(asyncio.run(run()))
        totals = usage.usage()
        assert (totals["calls"], totals["cached"], totals["cost"]) == (3, 2, 0.0042)
        assert backend.calls == 1
    finally:
        usage.reset()


def test_importing_the_module_installs_the_links_in_order():
    from ttt_magic.chain import chain

    cache_mod.ensure_installed()
    names = chain.names()
    assert "cache" in names and "recording" in names
    assert names.index("recording") < names.index("cache")
    assert chain._links["cache"][0] == 30 and chain._links["recording"][0] == 25


def test_import_stays_cheap():
    code = (
        "import sys, ttt_magic, ttt_magic.cache, ttt_magic.recording\n"
        "print('sqlite3' in sys.modules, 'ttt_magic.cache' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "True"]
    code = "import sys, ttt_magic\nprint('ttt_magic.cache' in sys.modules)\n"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


# --------------------------------------------------------------------------- files in trouble


def _records(caplog):
    return [r for r in caplog.records if r.name == "ttt_magic.cache"]


def test_a_corrupt_file_warns_once_and_answers_go_on(tmp_path, caplog):
    bad = tmp_path / "corrupt.sqlite3"
    bad.write_bytes(b"this is not a database, just some bytes " * 200)
    configure(cache=str(bad))
    backend = FakeBackend()
    with caplog.at_level(logging.WARNING, logger="ttt_magic.cache"):
        for _ in range(3):
            text, end = split(collect(make_call(), backend))
            assert "".join(text) == "Hello, world!" and "cached" not in end.metadata
    assert backend.calls == 3
    warnings = _records(caplog)
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    message = warnings[0].getMessage()
    assert str(bad) in message and "cannot be used" in message and "\n" not in message
    # --clear starts a fresh file, and caching works again
    assert cache_mod.clear(bad) == 0
    collect(make_call(), backend)
    _, end = split(collect(make_call(), backend))
    assert backend.calls == 4 and end.metadata["cached"]


def test_an_unreadable_path_warns_once(tmp_path, caplog):
    folder = tmp_path / "a-folder.sqlite3"
    folder.mkdir()
    configure(cache=str(folder))
    backend = FakeBackend()
    with caplog.at_level(logging.WARNING, logger="ttt_magic.cache"):
        for _ in range(2):
            split(collect(make_call(), backend))
    assert backend.calls == 2 and len(_records(caplog)) == 1


def test_a_file_without_read_permission_warns_once(tmp_path, caplog, monkeypatch):
    path = tmp_path / "locked-away.sqlite3"
    ResponseCache(path).put("k", make_call(), ["x"], StreamEnd(model="m"))
    path.chmod(0)
    if os.name != "posix" or os.geteuid() == 0:  # root (CI) reads anything: refuse as the OS would
        import sqlite3

        real = sqlite3.connect

        def refuse(database, *args, **kwargs):
            if str(database).endswith("locked-away.sqlite3"):
                raise sqlite3.OperationalError("unable to open database file")
            return real(database, *args, **kwargs)

        monkeypatch.setattr(sqlite3, "connect", refuse)
    try:
        configure(cache=str(path))
        with caplog.at_level(logging.WARNING, logger="ttt_magic.cache"):
            for _ in range(2):
                split(collect(make_call(), FakeBackend()))
        assert len(_records(caplog)) == 1
    finally:
        path.chmod(0o600)


def test_a_locked_file_warns_once_and_recovers(tmp_path, caplog, monkeypatch):
    monkeypatch.setattr(cache_mod, "BUSY_TIMEOUT", 0.05)
    path = tmp_path / "shared.sqlite3"
    configure(cache=str(path))
    backend = FakeBackend()
    collect(make_call(prompt="warm up"), backend)  # the file exists, in WAL mode
    cache_mod.close_all()  # our connection holds the WAL open; it reopens against the lock
    other = sqlite3.connect(str(path), isolation_level=None)
    other.execute("PRAGMA locking_mode = EXCLUSIVE")
    other.execute("BEGIN EXCLUSIVE")
    other.execute("DELETE FROM answers WHERE 0")
    try:
        with caplog.at_level(logging.WARNING, logger="ttt_magic.cache"):
            for _ in range(3):
                text, _ = split(collect(make_call(), backend))
                assert "".join(text) == "Hello, world!"
        warnings = _records(caplog)
        assert len(warnings) == 1 and "busy" in warnings[0].getMessage()
    finally:
        other.execute("ROLLBACK")
        other.close()
    calls = backend.calls
    collect(make_call(), backend)
    _, end = split(collect(make_call(), backend))
    assert backend.calls == calls + 1 and end.metadata["cached"]  # usable again once released


def test_a_file_from_an_unknown_layout_is_left_alone(tmp_path, caplog):
    path = tmp_path / "future.sqlite3"
    conn = sqlite3.connect(str(path))
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    configure(cache=str(path))
    with caplog.at_level(logging.WARNING, logger="ttt_magic.cache"):
        split(collect(make_call(), FakeBackend()))
    assert len(_records(caplog)) == 1 and "layout 99" in _records(caplog)[0].getMessage()


TWO_PROCESSES = textwrap.dedent(
    """
    import sys, time
    from ttt_magic.cache import cache_for
    from ttt_magic.models import StreamEnd
    from ttt_magic.request import Resolved

    path, me, other, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    cache = cache_for(path)
    def call(who, i):
        return Resolved(backend="b", model="m", prompt=f"{who} question {i}")
    seen = set()
    for i in range(n):
        c = call(me, i)
        assert cache.put(c.key(), c, [f"{me} answer ", str(i)], StreamEnd(model="m", tokens_out=i)), i
        hit = cache.get(c.key())
        assert hit is not None and hit.text == f"{me} answer {i}", i
        for j in range(n):
            if j not in seen and cache.get(call(other, j).key()) is not None:
                seen.add(j)
    deadline = time.time() + 30
    while len(seen) < n and time.time() < deadline:
        for j in range(n):
            if j not in seen:
                got = cache.get(call(other, j).key())
                if got is not None:
                    assert got.text == f"{other} answer {j}"
                    seen.add(j)
        time.sleep(0.01)
    print(len(seen), cache.stores)
    """
)


def test_two_processes_share_one_cache_file(tmp_path):
    path = tmp_path / "shared.sqlite3"
    n = 60
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", TWO_PROCESSES, str(path), me, other, str(n)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for me, other in (("alpha", "beta"), ("beta", "alpha"))
    ]
    results = [p.communicate(timeout=90) for p in procs]
    for proc, (out, err) in zip(procs, results):
        assert proc.returncode == 0, err
        assert "ttt-magic" not in err, err  # no busy or broken warning
        assert out.split() == [str(n), str(n)]
    conn = sqlite3.connect(str(path))
    assert conn.execute("SELECT COUNT(*) FROM answers").fetchone()[0] == 2 * n
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


# --------------------------------------------------------------------------- reports and clearing


def test_stats_count_entries_hits_and_misses(tmp_path):
    path = tmp_path / "c.sqlite3"
    configure(cache=str(path))
    before = cache_mod.stats()
    assert before["entries"] == 0 and before["exists"] is False and before["enabled"] is True
    backend = FakeBackend()
    collect(make_call(), backend)
    collect(make_call(), backend)
    collect(make_call(prompt="another"), backend)
    info = cache_mod.stats()
    assert (info["entries"], info["hits"], info["misses"], info["stores"]) == (2, 1, 2, 2)
    assert info["size"] > 0 and info["path"] == str(path)
    text = cache_mod.report(info)
    assert "2, " in text and "1 hits, 2 misses" in text and str(path) in text


def test_clear_all_or_older_than(tmp_path):
    path = tmp_path / "c.sqlite3"
    configure(cache=str(path))
    backend = FakeBackend()
    for i in range(3):
        collect(make_call(prompt=f"question {i}"), backend)
    conn = sqlite3.connect(str(path), isolation_level=None)
    conn.execute(
        "UPDATE answers SET created = ? WHERE key = ?",
        (time.time() - 10 * 86400, make_call(prompt="question 0").key()),
    )
    conn.close()
    assert cache_mod.clear(older_than="7d") == 1
    assert cache_mod.stats()["entries"] == 2
    assert cache_mod.clear(older_than=3600) == 0
    assert cache_mod.clear() == 2
    assert cache_mod.stats()["entries"] == 0
    collect(make_call(prompt="question 1"), backend)
    assert backend.calls == 4  # cleared entries are misses


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("7d", 7 * 86400),
        ("12h", 43200),
        ("30m", 1800),
        ("90s", 90),
        ("2w", 1209600),
        ("1.5d", 129600),
        ("3", 259200),
        ("7 days", 604800),
    ],
)
def test_parse_age(text, seconds):
    assert parse_age(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "7y", "-1d", "d7"])
def test_parse_age_rejects_nonsense(text):
    with pytest.raises(UsageError, match="Cannot read the age"):
        parse_age(text)


def test_cli_main_reports_clears_and_speaks_json(tmp_path, capsys):
    path = tmp_path / "cli.sqlite3"
    configure(cache=str(path))
    backend = FakeBackend()
    collect(make_call(), backend)
    collect(make_call(), backend)
    assert cache_mod.cli_main([]) == 0
    out = capsys.readouterr().out
    assert "Response cache: on" in out and "entries:  1" in out and "1 hits, 1 misses" in out
    assert cache_mod.cli_main(["--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["entries"] == 1 and info["path"] == str(path)
    assert cache_mod.cli_main(["--clear", "--older-than", "7d"]) == 0
    assert "Removed 0 cached answers older than 7d." in capsys.readouterr().out
    assert cache_mod.cli_main(["--clear"]) == 0
    assert "Removed 1 cached answer." in capsys.readouterr().out
    assert cache_mod.cli_main(["--older-than", "7d"]) == 2
    assert "--older-than goes with --clear" in capsys.readouterr().err
    assert cache_mod.cli_main(["--clear", "--older-than", "soon"]) == 2
    assert cache_mod.cli_main(["--help"]) == 0
    assert "--older-than" in capsys.readouterr().out


def test_cli_reports_the_default_file_when_the_cache_is_off(cache_home, capsys):
    assert cache_mod.cli_main([]) == 0
    out = capsys.readouterr().out
    assert "Response cache: off" in out and str(cache_home / "ttt-magic" / "responses.sqlite3") in out
    assert "no file yet" in out


# --------------------------------------------------------------------------- end to end


def test_ask_twice_second_answer_from_the_cache_echo():
    import ttt_magic

    usage = importlib.import_module("ttt_magic.accounting")

    usage.reset()
    configure(cache=True)
    first = ttt_magic.ask("cache me if you can", backend="echo")
    second = ttt_magic.ask("cache me if you can", backend="echo")
    assert first.succeeded and second.succeeded
    assert second.text == first.text and second.model == first.model
    assert (second.tokens_in, second.tokens_out) == (first.tokens_in, first.tokens_out)
    assert second.metadata.get("cached") is True and not first.metadata.get("cached")
    assert usage.usage()["cached"] >= 1


def test_stream_hit_comes_in_chunks_echo():
    import ttt_magic

    configure(cache=True)
    prompt = "one two three four five six"
    list(ttt_magic.stream(prompt, backend="echo"))
    answer = ttt_magic.stream(prompt, backend="echo")
    chunks = list(answer)
    assert len(chunks) == 6 and "".join(chunks) == prompt
    assert answer.response.metadata.get("cached") is True


def test_cache_false_per_call_through_ask():
    import ttt_magic

    configure(cache=True)
    ttt_magic.ask("not this one", backend="echo", cache=False)
    again = ttt_magic.ask("not this one", backend="echo")
    assert not again.metadata.get("cached")


def test_a_per_call_switch_works_in_a_fresh_process(tmp_path):
    code = textwrap.dedent(
        """
        import sys, ttt_magic
        first = ttt_magic.ask("fresh process, cache per call", backend="echo", cache=True)
        second = ttt_magic.ask("fresh process, cache per call", backend="echo", cache=True)
        print(first.succeeded, second.metadata.get("cached"), "sqlite3" in sys.modules)
        """
    )
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "HOME": str(tmp_path),
        "XDG_CACHE_HOME": str(tmp_path / "xdg"),
        "TTT_LOAD_PLUGINS": "0",
    }
    for name in list(env):
        if name.startswith("TTT_") and name != "TTT_LOAD_PLUGINS":
            env.pop(name)
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60
    )
    assert result.returncode == 0, result.stderr
    words = result.stdout.split()
    assert words == ["True", "True", "True"]
