"""Gather ``benchmarks/results/*.md`` into ``benchmarks/RESULTS.md``.

Each benchmark script writes its own section (with the machine, date and exact
command that produced it); this only concatenates them, sorted by file name,
under one header, so RESULTS.md never holds a figure no script measured.

    python benchmarks/collect.py
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
HEADER = """# Benchmark results

Measured figures, never asserted by tests. Each section says where and when it
was measured and the command that reproduces it; `make bench` reruns them all.
Figures from a shared 2-core machine are noisy: compare medians, not single runs.
"""


def collect(results: Path = HERE / "results", target: Path = HERE / "RESULTS.md") -> Path:
    sections = [p.read_text(encoding="utf-8").strip() for p in sorted(results.glob("*.md"))]
    if not sections:
        sections = ["_No results yet: run the `benchmarks/bench_*.py` scripts first._"]
    target.write_text(HEADER + "\n" + "\n\n".join(sections) + "\n", encoding="utf-8")
    return target


def main() -> int:
    path = collect()
    print(f"wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
