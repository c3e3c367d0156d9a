"""How much ``import ttt_magic`` costs, cold, in fresh processes.

Why it matters: ``%load_ext ttt_magic`` runs in every notebook that uses the
extension, so the import must stay near-free (see docs/architecture.md).
Each scenario runs in a new interpreter (so no module is cached) and times
only the import itself, inside the process; the median of the runs is
reported. Then ``python -X importtime`` lists the modules that cost the most.

    python benchmarks/bench_import.py [--runs 9]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

import _report

ROOT = Path(__file__).resolve().parents[1]

SCENARIOS = [
    ("`import ttt_magic`", "import ttt_magic"),
    ("`from ttt_magic import ask` (API, router, registry, config)", "from ttt_magic import ask"),
    ("magics module (what `%load_ext` imports)", "import ttt_magic.notebook.magics"),
    ("baseline: `import json` (for scale)", "import json"),
]

TIMER = "import time; t = time.perf_counter(); {stmt}; print(time.perf_counter() - t)"


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("PYTHONSTARTUP", None)
    return env


def time_import(stmt: str, runs: int) -> list[float] | str:
    samples = []
    for _ in range(runs):
        done = subprocess.run(
            [sys.executable, "-c", TIMER.format(stmt=stmt)],
            capture_output=True,
            text=True,
            env=_env(),
            cwd=ROOT,
            timeout=120,
        )
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["failed"])[-1]
            return f"not measured ({last})"
        samples.append(float(done.stdout.strip().splitlines()[-1]))
    return samples


def _importtime_rows(stmt: str) -> list[tuple[int, int, str]]:
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", stmt],
        capture_output=True,
        text=True,
        env=_env(),
        cwd=ROOT,
        timeout=120,
    )
    rows = []
    for line in done.stderr.splitlines():
        match = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|(\s*)(\S+)", line)
        if match:
            rows.append((int(match.group(1)), int(match.group(2)), match.group(4)))
    return rows


def importtime(stmt: str, top: int) -> tuple[list[tuple[int, int, str]], int]:
    """(self µs, cumulative µs, module) of the costliest imports the statement adds, and their count.

    Modules the bare interpreter imports at startup (site, encodings, ...) are left out.
    """
    startup = {name for _, _, name in _importtime_rows("pass")}
    rows = [row for row in _importtime_rows(stmt) if row[2] not in startup]
    ranked = sorted(rows, key=lambda r: r[1], reverse=True)[:top]
    return ranked, len(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9, help="fresh processes per scenario (>= 5)")
    parser.add_argument("--top", type=int, default=12, help="rows of the -X importtime table")
    args = parser.parse_args(argv)
    runs = max(5, args.runs)

    lines = [
        f"Median of {runs} cold runs, each a fresh interpreter timing only the import statement.",
        "",
        "| What | Median | Min | Max |",
        "| --- | ---: | ---: | ---: |",
    ]
    for label, stmt in SCENARIOS:
        samples = time_import(stmt, runs)
        if isinstance(samples, str):
            lines.append(f"| {label} | {samples} | | |")
            continue
        stats = _report.summary(samples)
        lines.append(
            f"| {label} | {_report.ms(stats['median'])} | {_report.ms(stats['min'])} "
            f"| {_report.ms(max(samples))} |"
        )
        print(f"{label}: median {_report.ms(stats['median'])}", file=sys.stderr)

    for stmt in ("import ttt_magic", "from ttt_magic import ask"):
        ranked, count = importtime(stmt, args.top)
        lines += [
            "",
            f'`python -X importtime -c "{stmt}"`: {count} modules imported beyond the '
            "interpreter's own startup; "
            f"the {len(ranked)} costliest by cumulative time (one run, so noisy):",
            "",
            "| Module | Self | Cumulative |",
            "| --- | ---: | ---: |",
        ]
        lines += [f"| `{name}` | {self_us} µs | {cum_us} µs |" for self_us, cum_us, name in ranked]
    path = _report.write("import", "Import cost", "\n".join(lines))
    print(f"wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
