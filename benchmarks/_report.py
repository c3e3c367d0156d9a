"""Shared by the benchmark scripts: machine facts and writing one results section."""

from __future__ import annotations

import datetime as _dt
import os
import platform
import shlex
import statistics
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
_SCRIPT = Path(sys.argv[0]).resolve()  # now, before a benchmark changes directory


def machine() -> str:
    """A few lines saying where the figures were measured."""
    return "\n".join(
        [
            f"- Date: {_dt.datetime.now(_dt.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}",
            f"- Machine: {platform.platform()}, {platform.machine()}, {os.cpu_count()} CPUs",
            f"- Python: {platform.python_implementation()} {platform.python_version()}",
        ]
    )


def command() -> str:
    """The exact command that produced the figures (relative to the repository root)."""
    script = _SCRIPT
    try:
        script = script.relative_to(Path(__file__).resolve().parents[1])
    except ValueError:
        pass
    return shlex.join(["python", str(script), *sys.argv[1:]])


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


def timed(fn, calls: int, warmup: int = 20) -> list[float]:
    """Seconds each of ``calls`` calls of ``fn`` took, after ``warmup`` unmeasured ones."""
    import time

    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(calls):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return samples


def us(seconds: float) -> str:
    return f"{seconds * 1e6:.0f} µs"


def summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    p90 = ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]
    return {"median": statistics.median(ordered), "min": ordered[0], "p90": p90, "n": len(ordered)}


def write(name: str, title: str, body: str) -> Path:
    """Write ``results/<name>.md``: a level-2 section collect.py gathers into RESULTS.md."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.md"
    text = f"## {title}\n\n{machine()}\n- Command: `{command()}`\n\n{body.strip()}\n"
    path.write_text(text, encoding="utf-8")
    return path
