"""The response cache: a hit's latency for ``ask()`` and ``stream()`` against a miss on a fake server.

The server is the fake OpenAI one of the tests (``tests/fakes/openai_fake.py``),
started in this process on 127.0.0.1, so a miss is a real HTTP round trip
without any model time. A hit is answered from the SQLite file and never
reaches the server (checked). Also measured: what the two chain links cost an
``ask()`` when cache, record and replay are all off (echo backend, links
installed against links removed), and a replayed answer (``replay_speed: 0``).
All calls are warm; the median is reported.

    python benchmarks/bench_cache.py [--calls 300]
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import tempfile
from pathlib import Path

import _report

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PROMPT = "Summarise the plot of Hamlet in three short sentences for a busy reader."
#: A hit must take less than this (the goal of issue #10).
GOAL = 0.002


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300, help="measured calls per scenario")
    args = parser.parse_args(argv)

    home = tempfile.mkdtemp(prefix="ttt-bench-")
    os.environ["HOME"] = home
    os.environ["XDG_CACHE_HOME"] = os.path.join(home, "cache")
    os.chdir(home)
    os.environ["TTT_LOAD_PLUGINS"] = "0"  # built-in plugins (echo, mock) still load
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "TTT_CACHE", "TTT_RECORD", "TTT_REPLAY"):
        os.environ.pop(name, None)

    import ttt_magic
    from tests.fakes.openai_fake import OpenAIFake
    from ttt_magic import cache
    from ttt_magic.chain import chain

    key = "sk-bench-not-a-real-key-000000000000"
    fake = OpenAIFake(api_key=key)
    fake.start()
    db = Path(home) / "bench.sqlite3"
    rec = Path(home) / "bench.answers.jsonl"
    ttt_magic.configure(openai_base_url=fake.base_url, openai_api_key=key, max_retries=0)
    counter = itertools.count()

    def ask_openai(prompt: str, **kw) -> None:
        response = ttt_magic.ask(prompt, backend="openai", model="gpt-4o-mini", **kw)
        assert response.succeeded, response.error

    def miss_uncached() -> None:
        ask_openai(PROMPT, cache=False)

    def miss_cached() -> None:  # a new prompt each time: a miss, then the answer is stored
        ask_openai(f"{PROMPT} #{next(counter)}")

    def hit() -> None:
        response = ttt_magic.ask(PROMPT, backend="openai", model="gpt-4o-mini")
        assert response.metadata.get("cached"), "not a hit"

    def stream_hit() -> None:
        answer = ttt_magic.stream(PROMPT, backend="openai", model="gpt-4o-mini")
        chunks = sum(1 for _ in answer)
        assert chunks > 1 and answer.response.metadata.get("cached")

    def echo() -> None:
        assert ttt_magic.ask(PROMPT, backend="echo").succeeded

    def replayed() -> None:
        response = ttt_magic.ask(PROMPT, backend="openai", model="gpt-4o-mini")
        assert response.metadata.get("replayed"), response.error

    rows = ["| Call | Median | p90 | Min |", "| --- | ---: | ---: | ---: |"]
    medians: dict[str, float] = {}

    def measure(label: str, fn, calls: int = args.calls) -> None:
        stats = _report.summary(_report.timed(fn, calls))
        medians[label] = stats["median"]
        rows.append(
            f"| {label} | {_report.ms(stats['median'])} | {_report.ms(stats['p90'])} "
            f"| {_report.ms(stats['min'])} |"
        )
        print(f"{label}: median {_report.ms(stats['median'])}", file=sys.stderr)

    ttt_magic.configure(cache=str(db))
    measure("`ask()` to the fake server, `cache=False` (no cache)", miss_uncached)
    measure("`ask()` cache miss: fake server, then the answer stored", miss_cached)
    ask_openai(PROMPT)  # store the answer the hits read
    served = len(fake.requests)
    measure("`ask()` cache hit", hit)
    measure("`stream()` cache hit, all chunks", stream_hit)
    assert len(fake.requests) == served, "a hit reached the server"
    entries = cache.stats()["entries"]

    ttt_magic.configure(cache=False, record=str(rec))
    ask_openai(PROMPT)
    ttt_magic.configure(record=None, replay=str(rec), replay_speed=0)
    measure("`ask()` replayed from a recording (`replay_speed: 0`)", replayed)
    ttt_magic.configure(replay=None)

    measure('`ask(backend="echo")`, cache/record/replay off, links installed', echo)
    chain.remove("cache")
    chain.remove("recording")
    measure('`ask(backend="echo")`, links removed', echo)
    cache.ensure_installed()
    assert "cache" in chain and "recording" in chain
    fake.stop()
    cache.close_all()

    hit_label = "`ask()` cache hit"
    miss_label = "`ask()` to the fake server, `cache=False` (no cache)"
    links = (
        medians['`ask(backend="echo")`, cache/record/replay off, links installed']
        - medians['`ask(backend="echo")`, links removed']
    )
    verdict = "meets" if medians[hit_label] < GOAL else "misses"
    body = "\n".join(
        [
            f"{args.calls} warm calls per row (after 20 unmeasured), one process, no config files; "
            f"the fake OpenAI server in the same process on 127.0.0.1; the cache file held {entries} "
            "answers while the hits were measured.",
            "",
            *rows,
            "",
            f"A cache hit takes **{_report.ms(medians[hit_label])}** (median), "
            f"{medians[miss_label] / medians[hit_label]:.1f}x faster than the uncached request to a "
            f"server that answers at once; it {verdict} the {_report.ms(GOAL)} goal.",
            f"The two links cost an `ask()` {_report.us(max(links, 0.0))} when everything is off "
            "(medians, links installed minus removed; within noise when near zero).",
        ]
    )
    path = _report.write("cache", "Response cache: hit against miss", body)
    print(f"wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
