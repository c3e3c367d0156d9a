"""What the first question of a fresh kernel pays before anything is sent.

Why it matters: a notebook's first ``%%ask`` imports the library, reads the
configuration, loads the model catalogue, discovers plugins and probes for a
local Ollama before the request leaves. Each run is a fresh interpreter that
times, in-process, the import of the API, then the first ``route()`` (the
routing decision with every availability check, nothing sent), then a first
``ask`` on the ``echo`` backend; the median of the runs is reported.

    python benchmarks/bench_first_ask.py [--runs 9]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import _report

ROOT = Path(__file__).resolve().parents[1]

PROGRAM = """
import json, time
t0 = time.perf_counter()
from ttt_magic import ask, route
t1 = time.perf_counter()
route("Explain list comprehensions")
t2 = time.perf_counter()
ask("hello there", backend="echo")
t3 = time.perf_counter()
print(json.dumps({"import": t1 - t0, "route": t2 - t1, "ask": t3 - t2, "total": t3 - t0}))
"""


def one_run(env: dict[str, str]) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, "-c", PROGRAM], capture_output=True, text=True, env=env, cwd=ROOT, timeout=120
    )
    if done.returncode != 0:
        raise SystemExit(done.stderr.strip().splitlines()[-1])
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9)
    args = parser.parse_args(argv)
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    # No key and nothing listening: the route checks every backend and finds none (the slow path).
    keys = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY", "GOOGLE_API_KEY", "OPENROUTER_API_KEY")
    for name in keys:
        env.pop(name, None)
    env["OLLAMA_HOST"] = "http://127.0.0.1:9"
    # As a user's machine has it: compiled modules cached (one unmeasured run writes them).
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    one_run(env)
    runs = [one_run(env) for _ in range(max(3, args.runs))]
    lines = [
        f"Median of {len(runs)} fresh interpreters (bytecode cached, as installed); no API key set",
        "and no Ollama listening, so the",
        "first route checks every backend (cloud keys, a probe of 127.0.0.1:9) and finds none.",
        "",
        "| Step | Median | Min |",
        "| --- | ---: | ---: |",
    ]
    for step, label in (
        ("import", "`from ttt_magic import ask, route`"),
        ("route", "first `route()` (config, catalogue, plugins, availability)"),
        ("ask", "first `ask(..., backend='echo')`"),
        ("total", "total before the first answer"),
    ):
        stats = _report.summary([r[step] for r in runs])
        lines.append(f"| {label} | {_report.ms(stats['median'])} | {_report.ms(stats['min'])} |")
        print(f"{label}: median {_report.ms(stats['median'])}", file=sys.stderr)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    lines += ["", f"Load average while measuring: {load:.1f} (on {os.cpu_count()} CPUs)."]
    print(_report.write("first_ask", "The first question of a fresh process", "\n".join(lines)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
