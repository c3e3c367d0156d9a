"""Notebook figures: what ``%load_ext ttt_magic`` costs, and the display bytes a streamed answer sends.

1. Load cost: cold ``ipython -c`` processes with and without ``%load_ext
   ttt_magic`` (median of N runs each, interleaved): wall time and peak RSS;
   plus the in-process time of the ``load_ext`` call alone. Goal: <= 0.05 s and
   <= 5 MB over bare IPython.
2. Display bytes: a 20,000-character answer streamed through ``StreamView``
   at several speeds on a simulated clock (every message the view would send is
   recorded and JSON-encoded), and once through a real kernel (iopub messages
   counted). Reported as a multiple of the answer's size. Goal: <= 30x.

    python benchmarks/bench_notebook.py [--runs 7] [--no-kernel]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(HERE))

import _report  # noqa: E402

ANSWER_CHARS = 20_000
CHUNK = 5  # characters per chunk (a token is ~4 characters)

_RSS = "import resource; print('RSS', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
_TIMED_LOAD = (
    "import time; t0 = time.perf_counter(); get_ipython().run_line_magic('load_ext', 'ttt_magic'); "
    "print('LOAD', time.perf_counter() - t0)"
)


def _env(home: Path) -> dict[str, str]:
    """As installed: bytecode cached (in a private folder), whatever this shell's PYTHONDONTWRITEBYTECODE."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TTT_") and not k.endswith("_API_KEY")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.update(
        HOME=str(home),
        TTT_MOCK_DELAY="0",
        OLLAMA_HOST="http://127.0.0.1:9",
        PYTHONPYCACHEPREFIX=str(home / "pycache"),
    )
    return env


def _ipython(code: str, env: dict[str, str], cwd: Path) -> tuple[float, int, float | None]:
    started = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-m", "IPython", "--no-banner", "--HistoryManager.enabled=False", "-c", code],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        check=True,
    ).stdout
    wall = time.perf_counter() - started
    rss = next(int(line.split()[1]) for line in out.splitlines() if line.startswith("RSS"))
    load = next((float(line.split()[1]) for line in out.splitlines() if line.startswith("LOAD")), None)
    return wall, rss, load


def load_cost(runs: int) -> dict[str, float]:
    home = Path(tempfile.mkdtemp(prefix="bench-nb-home-"))
    env = _env(home)
    for _ in range(2):  # profile and bytecode caches: not part of any measurement
        _ipython(f"{_TIMED_LOAD}\n{_RSS}", env, home)
    bare_t, bare_rss, ext_t, ext_rss, inproc = [], [], [], [], []
    for _ in range(runs):
        t, rss, _ = _ipython(_RSS, env, home)
        bare_t.append(t)
        bare_rss.append(rss)
        t, rss, load = _ipython(f"{_TIMED_LOAD}\n{_RSS}", env, home)
        ext_t.append(t)
        ext_rss.append(rss)
        inproc.append(load or 0.0)
    med = statistics.median
    return {
        "runs": runs,
        "bare_wall": med(bare_t),
        "ext_wall": med(ext_t),
        "delta_wall": med(ext_t) - med(bare_t),
        "bare_rss_kb": med(bare_rss),
        "ext_rss_kb": med(ext_rss),
        "delta_rss_kb": med(ext_rss) - med(bare_rss),
        "load_ext_call": med(inproc),
    }


class _Recorder:
    def __init__(self) -> None:
        self.count = 0
        self.bytes = 0

    def _add(self, data: dict, metadata: dict | None = None) -> None:
        self.count += 1
        self.bytes += len(json.dumps({"data": data, "metadata": metadata or {}}))

    show = update = _add


def simulated(chars_per_second: float | None) -> tuple[int, int]:
    """(messages, bytes) for the 20,000-character answer at a given speed (None: all at once)."""
    from ttt_magic.models import AIResponse
    from ttt_magic.notebook.render import StreamView

    now = [0.0]
    recorder = _Recorder()
    view = StreamView(publisher=recorder, clock=lambda: now[0])
    gap = 0.0 if chars_per_second is None else CHUNK / chars_per_second
    text = ("lorem ipsum " * (ANSWER_CHARS // 12 + 1))[:ANSWER_CHARS]
    for i in range(0, ANSWER_CHARS, CHUNK):
        view.feed(text[i : i + CHUNK])
        now[0] += gap
    view.finish(AIResponse(text, model="m", backend="b", tokens_in=1, tokens_out=5000, time_taken=now[0]))
    return recorder.count, recorder.bytes


def in_kernel(chars_per_second: float) -> dict[str, float]:
    """Stream the answer from a paced backend in a real kernel; count display messages and bytes."""
    from tests.notebook.kernel_harness import Kernel, isolated_env

    home = Path(tempfile.mkdtemp(prefix="bench-nb-kernel-"))
    kernel = Kernel(home, isolated_env(home))
    pause = CHUNK / chars_per_second
    try:
        kernel.ok("%load_ext ttt_magic")
        kernel.ok(
            "import asyncio, time\n"
            "from ttt_magic import register_backend\n"
            "from ttt_magic.backends import BaseBackend\n"
            "class Paced(BaseBackend):\n"
            "    backend_name = 'paced'\n"
            "    async def astream(self, prompt, **kw):\n"
            f"        text = ('lorem ipsum ' * {ANSWER_CHARS // 12 + 1})[:{ANSWER_CHARS}]\n"
            "        start = time.monotonic()\n"
            f"        for n, i in enumerate(range(0, {ANSWER_CHARS}, {CHUNK})):\n"
            f"            yield text[i:i + {CHUNK}]\n"
            f"            delay = start + (n + 1) * {pause} - time.monotonic()\n"
            "            if delay > 0:\n"
            "                await asyncio.sleep(delay)\n"
            "register_backend('paced', Paced)\n"
        )
        started = time.perf_counter()
        result = kernel.ok("%%ask -b paced\ngo", timeout=600)
        elapsed = time.perf_counter() - started
    finally:
        kernel.stop()
    shown = result.displays
    sent = sum(
        len(json.dumps({"data": m["content"]["data"], "metadata": m["content"]["metadata"]})) for m in shown
    )
    return {"messages": len(shown), "bytes": sent, "seconds": elapsed}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--no-kernel", action="store_true", help="skip the real-kernel measurement")
    args = parser.parse_args()

    cost = load_cost(args.runs)
    lines = [
        f"### `%load_ext ttt_magic` (median of {cost['runs']} cold `ipython -c` runs each)",
        "",
        "| | bare IPython | with `%load_ext ttt_magic` | difference | goal |",
        "| --- | --- | --- | --- | --- |",
        f"| wall time | {cost['bare_wall']:.3f} s | {cost['ext_wall']:.3f} s | "
        f"{cost['delta_wall'] * 1000:+.1f} ms | <= 50 ms |",
        f"| peak RSS | {cost['bare_rss_kb'] / 1024:.1f} MB | {cost['ext_rss_kb'] / 1024:.1f} MB | "
        f"{cost['delta_rss_kb'] / 1024:+.2f} MB | <= 5 MB |",
        "",
        f"The `load_ext` call itself, timed inside the process: {cost['load_ext_call'] * 1000:.1f} ms "
        "(median). The wall-time difference of whole processes is within their noise.",
        "",
        f"### Display bytes for a {ANSWER_CHARS:,}-character answer ({CHUNK}-character chunks)",
        "",
        "Simulated clock, every message `StreamView` would send JSON-encoded (data + metadata):",
        "",
        "| stream speed | messages | bytes sent | multiple of the answer | goal |",
        "| --- | --- | --- | --- | --- |",
    ]
    for label, speed in [
        ("instant", None),
        ("4,000 chars/s", 4000.0),
        ("1,000 chars/s", 1000.0),
        ("400 chars/s (~100 tokens/s)", 400.0),
        ("200 chars/s (~50 tokens/s)", 200.0),
        ("100 chars/s (~25 tokens/s)", 100.0),
    ]:
        count, sent = simulated(speed)
        lines.append(f"| {label} | {count} | {sent:,} | {sent / ANSWER_CHARS:.1f}x | <= 30x |")
    if not args.no_kernel:
        real = in_kernel(2000.0)
        lines += [
            "",
            f"Real kernel, paced backend at 2,000 chars/s: {real['messages']} display messages, "
            f"{real['bytes']:,} bytes = {real['bytes'] / ANSWER_CHARS:.1f}x the answer, "
            f"cell took {real['seconds']:.1f} s.",
        ]
    lines += [
        "",
        "Rule: the first text is shown at once; later updates wait "
        "`clamp(len(text) / (20 × chars per second), 0.05 s, 5 s)` (= time since the first chunk / 20), "
        "so at most 20 updates a second early on and about 20 × the answer's size in total whatever "
        "the speed, until the 5 s cap (answers streaming longer than 100 s). Updating 20 times a "
        f"second regardless of size would send ~{_quadratic(400.0) / ANSWER_CHARS:.0f}x at 400 chars/s "
        f"and ~{_quadratic(100.0) / ANSWER_CHARS:.0f}x at 100 chars/s.",
    ]
    path = _report.write("notebook", "Notebook: loading cost and streamed display bytes", "\n".join(lines))
    print(path.read_text(encoding="utf-8"))


def _quadratic(chars_per_second: float) -> int:
    """Bytes a fixed 20-updates-a-second renderer would send (for comparison)."""
    from ttt_magic.notebook.render import StreamView

    now = [0.0]
    recorder = _Recorder()
    view = StreamView(publisher=recorder, clock=lambda: now[0], pace=float("inf"))
    text = "x" * ANSWER_CHARS
    for i in range(0, ANSWER_CHARS, CHUNK):
        view.feed(text[i : i + CHUNK])
        now[0] += CHUNK / chars_per_second
    view.finish(None)
    return recorder.bytes


if __name__ == "__main__":
    main()
