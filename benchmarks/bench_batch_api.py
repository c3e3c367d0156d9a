"""Batch engines (issue #14): 100,000 rows prepared, submitted and read back, against fakes of the services.

For each service (OpenAI Batch API, Anthropic Message Batches, Gemini batch
mode) its fake runs in a process of its own (tests/fakes, real HTTP on
127.0.0.1), so only the client is measured, and the job goes end to end:

- **submit**: ``submit_batch(rows, model=..., max_tokens=64)``: the estimate
  at the batch price, the request files written to disk one row at a time,
  uploaded / streamed to the fake (OpenAI takes 50,000 rows a batch, so two
  batches; Gemini about 20 MB of inlined requests a batch);
- **results**: ``BatchJob.load(state file)`` (a restart), ``wait``, then
  ``results()`` (``Answers`` of 100,000 ``AIResponse``) and ``iter_results()``
  (the same rows streamed, nothing kept).

Wall time is measured without tracing; peak Python memory (tracemalloc,
every thread) in a second run, at ``--rows`` and at a tenth of it, so the
part that grows with the rows shows apart from the part that does not. The
cost estimate is compared with what the fake reports (its usage, priced at
the batch rate).

    python benchmarks/bench_batch_api.py [--rows 100000] [--engines openai,anthropic,google]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import _report

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

KEY = "sk-bench-0123456789abcdef"
MODELS = {"openai": "gpt-4o-mini", "anthropic": "claude-haiku-4-5", "google": "gemini-2.5-flash"}
LABELS = {
    "openai": "OpenAI Batch API",
    "anthropic": "Anthropic Message Batches",
    "google": "Gemini batch mode",
}


# --------------------------------------------------------------------------- the server process


def serve(engine: str) -> None:
    """Run the engine's fake until standard input closes; print its port first."""
    from tests.fakes.anthropic_batch_fake import AnthropicBatchFake
    from tests.fakes.google_batch_fake import GeminiBatchFake
    from tests.fakes.openai_batch_fake import OpenAIBatchFake

    cls = {"openai": OpenAIBatchFake, "anthropic": AnthropicBatchFake, "google": GeminiBatchFake}[engine]

    class Lean(cls):  # type: ignore[misc, valid-type]
        async def _answer(self, request, reader, writer):
            try:
                return await super()._answer(request, reader, writer)
            finally:
                self.requests.clear()  # keep the server's memory flat: bodies are tens of MB

    fake = Lean(api_key=KEY)
    fake.behaviour.polls = 0  # ended at the first poll: the wait is not what is measured
    fake.behaviour.fail = lambda row: row % 10_000 == 9
    fake.start()
    print(fake.port, flush=True)
    sys.stdin.read()
    fake.stop()


class Server:
    def __init__(self, engine: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--serve", engine],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=str(ROOT),
        )
        port = self.proc.stdout.readline().strip()
        if not port:
            raise RuntimeError("the fake server did not start")
        self.url = f"http://127.0.0.1:{port}"

    def stop(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def configure_for(engine: str, server: Server) -> None:
    from ttt_magic import configure

    if engine == "openai":
        configure(openai_base_url=server.url + "/v1", openai_api_key=KEY, enable_fallbacks=False)
    elif engine == "anthropic":
        configure(anthropic_base_url=server.url, anthropic_api_key=KEY, enable_fallbacks=False)
    else:
        configure(gemini_base_url=server.url, google_api_key=KEY, enable_fallbacks=False)


def rows_for(n: int) -> list[str]:
    return [f"Summarize item {i}: the quick brown fox jumps over the lazy dog." for i in range(n)]


# --------------------------------------------------------------------------- one run


def run(engine: str, n: int, *, trace: bool) -> dict:
    """Submit ``n`` rows, restart, wait, read them back; times (or peak memory with ``trace``)."""
    from ttt_magic import batchjobs

    out: dict = {"rows": n}
    prompts = rows_for(n)
    folder = tempfile.mkdtemp(prefix="bench-batch-")
    old = os.getcwd()
    os.chdir(folder)
    try:
        gc.collect()
        if trace:
            tracemalloc.start()
            base = tracemalloc.get_traced_memory()[0]
        t0 = time.perf_counter()
        job = batchjobs.submit_batch(prompts, model=MODELS[engine], max_tokens=64, state=f"bench-{n}")
        out["submit_s"] = time.perf_counter() - t0
        if trace:
            out["submit_peak"] = tracemalloc.get_traced_memory()[1] - base
            tracemalloc.reset_peak()
        out["batches"] = len(job.parts)
        out["request_bytes"] = sum(p["bytes"] for p in job.parts)
        out["estimate"] = job.state["estimate"]
        out["price"] = job.state["price"]
        path = job.path
        del job
        gc.collect()

        t0 = time.perf_counter()
        again = batchjobs.BatchJob.load(path)
        again.wait(progress=False, first_poll=0)
        out["wait_s"] = time.perf_counter() - t0
        out["usage"] = [p.get("usage") for p in again.parts]

        if trace:
            tracemalloc.reset_peak()
            before = tracemalloc.get_traced_memory()[0]
        t0 = time.perf_counter()
        answers = batchjobs.BatchJob.load(path).results()
        out["results_s"] = time.perf_counter() - t0
        if trace:
            current, peak = tracemalloc.get_traced_memory()
            out["results_peak"] = peak - before
            out["answers_kept"] = current - before
        out["ok"], out["failed"] = answers.ok_count, len(answers.failed)
        out["tokens_in"] = answers.usage["tokens_in"]
        out["tokens_out"] = answers.usage["tokens_out"]
        out["cost"] = answers.usage["cost"]
        del answers
        gc.collect()

        if trace:
            tracemalloc.reset_peak()
            before = tracemalloc.get_traced_memory()[0]
        t0 = time.perf_counter()
        count = sum(1 for _ in batchjobs.BatchJob.load(path).iter_results())
        out["iter_s"] = time.perf_counter() - t0
        if trace:
            out["iter_peak"] = tracemalloc.get_traced_memory()[1] - before
        assert count == n, count
    finally:
        if trace:
            tracemalloc.stop()
        os.chdir(old)
        for name in os.listdir(folder):
            os.remove(os.path.join(folder, name))
        os.rmdir(folder)
    return out


def measure(engine: str, n: int) -> dict:
    """The timed run, then the traced runs at ``n`` and ``n // 10`` (each in this process)."""
    server = Server(engine)
    try:
        configure_for(engine, server)
        run(engine, min(n, 1000), trace=False)  # warm: imports, pools, the catalogue
        timed = run(engine, n, trace=False)
        traced = run(engine, n, trace=True)
        small = run(engine, max(1, n // 10), trace=True)
    finally:
        server.stop()
    return {"timed": timed, "traced": traced, "small": small}


# --------------------------------------------------------------------------- the report


def mb(value: float) -> str:
    return f"{value / 1e6:.1f} MB"


def per_row(big: dict, small: dict, key: str) -> float:
    return (big[key] - small[key]) / (big["rows"] - small["rows"])


def report(results: dict[str, dict], n: int) -> str:
    lines = [
        f"{n:,} rows per service, each service's fake in a process of its own (real HTTP on 127.0.0.1); "
        "1 row in 10,000 fails at the fake. Time without tracing; memory is tracemalloc's peak above "
        f"what was held before the step, at {n:,} rows and at {n // 10:,} (the growth per row between them).",
        "",
        "| service | batches | submit | results() | iter_results() | submit peak | results() peak "
        "| of which the Answers | iter_results() peak |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for engine, r in results.items():
        t, big, small = r["timed"], r["traced"], r["small"]
        lines.append(
            f"| {LABELS[engine]} | {t['batches']} | {t['submit_s']:.2f} s | {t['results_s']:.2f} s "
            f"| {t['iter_s']:.2f} s | {mb(big['submit_peak'])} | {mb(big['results_peak'])} "
            f"| {mb(big['answers_kept'])} | {mb(big['iter_peak'])} |"
        )
    lines += [
        "",
        "Growth per row, between the two sizes (what is proportional to the rows):",
        "",
        "| service | request line | submit peak | results() peak | Answers kept | iter_results() peak |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for engine, r in results.items():
        big, small = r["traced"], r["small"]
        lines.append(
            f"| {LABELS[engine]} | {big['request_bytes'] / big['rows']:.0f} B "
            f"| {per_row(big, small, 'submit_peak'):.0f} B | {per_row(big, small, 'results_peak'):.0f} B "
            f"| {per_row(big, small, 'answers_kept'):.0f} B | {per_row(big, small, 'iter_peak'):.0f} B |"
        )
    lines += [
        "",
        "The estimate (at the batch price, before sending) against what the fake reported:",
        "",
        "| service | price basis | estimated input tokens | reported | estimated output tokens "
        "| reported | estimated cost | cost of the reported usage |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for engine, r in results.items():
        t = r["timed"]
        est = t["estimate"]
        lines.append(
            f"| {LABELS[engine]} | {t['price']['basis']} | {est['tokens_in']:,} | {t['tokens_in']:,} "
            f"| {est['tokens_out']:,} (at most max_tokens=64) | {t['tokens_out']:,} "
            f"| ${est['cost']:.4f} | ${t['cost']:.4f} |"
        )
    usage = [(e, r["timed"]["usage"]) for e, r in results.items() if any(r["timed"]["usage"])]
    for engine, parts in usage:
        tin = sum((u or {}).get("tokens_in", 0) for u in parts)
        tout = sum((u or {}).get("tokens_out", 0) for u in parts)
        t = results[engine]["timed"]
        same = (tin, tout) == (t["tokens_in"], t["tokens_out"])
        lines.append("")
        lines.append(
            f"{LABELS[engine]}: the batches' own `usage` says {tin:,} input and {tout:,} output tokens, "
            + ("the same as the answers' sum." if same else "which differs from the answers' sum.")
        )
    lines += [
        "",
        "Reading: submitting writes each request line to disk and streams the files up, so its "
        "peak grows only with what `ask_many`'s planning keeps per row (the inputs' list, each row's "
        "resume key and token count), not with the request bodies. `results()` returns an `Answers` "
        "of every row (an `AIResponse` each, about 1 KB), which is what grows; the results are read "
        "one row at a time, as `iter_results()` shows: its peak grows only by the job's bookkeeping "
        "(which part answers each row, which rows were seen: a few bytes a row). Gemini's answers "
        "come inside one JSON document, read as it streams, one answer at a time. The estimate "
        "counts input tokens with the library's counter (the fake counts about four characters a "
        "token) and takes max_tokens as the output, so it is an upper bound on the output.",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--engines", default="openai,anthropic,google")
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return
    for name in list(os.environ):
        if name.startswith("TTT_") or name.endswith("_API_KEY"):
            del os.environ[name]
    import contextlib
    import io

    results: dict[str, dict] = {}
    for engine in [e.strip() for e in args.engines.split(",") if e.strip()]:
        with contextlib.redirect_stderr(io.StringIO()):
            results[engine] = measure(engine, args.rows)
        t = results[engine]["timed"]
        print(
            f"{engine}: submit {t['submit_s']:.2f} s, results {t['results_s']:.2f} s, "
            f"iter {t['iter_s']:.2f} s ({t['batches']} batches)",
            flush=True,
        )
    body = report(results, args.rows)
    path = _report.write("batch_api", "Batch engines: 100,000 rows submitted and read back", body)
    print(body)
    print(f"\nwritten to {path}")
    print(json.dumps({e: r["timed"]["submit_s"] for e, r in results.items()}))


if __name__ == "__main__":
    main()
