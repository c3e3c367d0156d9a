"""What the library adds to every request: ``ask()`` and ``stream()`` on the ``echo`` backend.

The echo backend does no work, so the time of a call is the library's own
overhead: routing, the hop to the event-loop thread and back, building the
response and its route record. The same request sent straight to the
backend's coroutine (no router, no thread hop) is measured for comparison.
All calls are warm (after a few unmeasured ones); the median is reported.

    python benchmarks/bench_ask.py [--calls 500]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
from pathlib import Path

import _report

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PROMPT = "Summarise the plot of Hamlet in three short sentences for a busy reader."


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=500, help="measured calls per scenario")
    args = parser.parse_args(argv)

    # A clean configuration: no user config file or plugin folder changes the figures.
    home = tempfile.mkdtemp(prefix="ttt-bench-")
    os.environ["HOME"] = home
    os.chdir(home)
    os.environ["TTT_LOAD_PLUGINS"] = "0"  # built-in plugins (echo, mock) still load
    os.environ["TTT_MOCK_DELAY"] = "0"

    import ttt_magic
    from ttt_magic.plugins import ensure_discovered
    from ttt_magic.registry import backend_registry

    ensure_discovered()
    backend = backend_registry.get("echo")

    def direct() -> None:
        asyncio.run(backend.ask(PROMPT))

    loop = asyncio.new_event_loop()

    def direct_same_loop() -> None:
        loop.run_until_complete(backend.ask(PROMPT))

    def api_ask() -> None:
        response = ttt_magic.ask(PROMPT, backend="echo")
        assert response.succeeded, response.error

    def api_stream() -> None:
        answer = ttt_magic.stream(PROMPT, backend="echo")
        chunks = sum(1 for _ in answer)
        assert chunks > 1 and answer.response.succeeded

    def mock_ask() -> None:
        assert ttt_magic.ask(PROMPT, backend="mock").succeeded

    scenarios = [
        ("echo backend's coroutine on one loop (no library)", direct_same_loop),
        ("echo backend via `asyncio.run` (new loop per call)", direct),
        ('`ttt_magic.ask(..., backend="echo")`', api_ask),
        (f'`ttt_magic.stream(..., backend="echo")`, all {len(PROMPT.split())} chunks', api_stream),
        ('`ttt_magic.ask(..., backend="mock")`, delay 0', mock_ask),
    ]
    rows = ["| Call | Median | p90 | Min |", "| --- | ---: | ---: | ---: |"]
    medians = {}
    for label, fn in scenarios:
        stats = _report.summary(_report.timed(fn, args.calls))
        medians[label] = stats["median"]
        rows.append(
            f"| {label} | {_report.us(stats['median'])} | {_report.us(stats['p90'])} "
            f"| {_report.us(stats['min'])} |"
        )
        print(f"{label}: median {_report.us(stats['median'])}", file=sys.stderr)
    loop.close()

    baseline = medians[scenarios[0][0]]
    overhead = medians[scenarios[2][0]] - baseline
    body = "\n".join(
        [
            f"{args.calls} warm calls per row (after 20 unmeasured), one process, "
            "no config files, `load_plugins` off (built-in plugins only).",
            "",
            *rows,
            "",
            f"Library overhead of one `ask()` (median, minus the bare coroutine): "
            f"**{_report.us(overhead)}** per call.",
        ]
    )
    path = _report.write("ask", "ask() overhead (echo backend)", body)
    print(f"wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
