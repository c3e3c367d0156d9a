"""Streaming overhead: ``ttt_magic.stream()`` against raw httpx2, on the same fake OpenAI server.

The fake server (tests/fakes/openai_fake.py) runs in a child process, so the
CPU time measured here is the client's alone. Each client streams the same
answer (``--chunks`` SSE events) from the same server in the same run:

- raw httpx2, sync: ``httpx2.Client().stream(...)``, ``iter_lines``, ``json.loads``
  of each ``data:`` line: the least a hand-written script does;
- raw httpx2, async, on one event loop: the floor of an asynchronous client;
- ``OpenAIBackend.astream`` and ``router.stream`` awaited on one loop in this
  thread: the layers below the sync API, to see where any overhead comes from;
- ``ttt_magic.stream(..., backend="openai")``: the library with the backend named;
- ``ttt_magic.stream(..., model="gpt-4o-mini")``: the router picks ``cloud``,
  which dispatches to the OpenAI adapter (the usual path).

Reported per client: time to first chunk (wall clock, warm: after a few
unmeasured runs), whole-stream time, and CPU time per chunk (all threads of
this process, so the library's event-loop thread counts). Then the cold first
call in a fresh interpreter (imports included), for ttt_magic and raw httpx2.

    python benchmarks/bench_stream.py [--runs 40] [--chunks 200] [--cold 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _report

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PROMPT = "Count slowly from one to two hundred, one number per line."
MODEL = "gpt-4o-mini"
KEY = "sk-bench-0000000000000000"
GOAL_MS = 2.0

SERVER = """
import sys
sys.path.insert(0, {root!r})
from tests.fakes.openai_fake import OpenAIFake
fake = OpenAIFake()
fake.answer = [f"{{i}}\\n" for i in range({chunks})]
fake.start()
print(fake.base_url, flush=True)
sys.stdin.read()
fake.stop()
"""

COLD_TTT = """
import time
t0 = time.perf_counter()
import ttt_magic
ttt_magic.configure(openai_base_url={url!r}, openai_api_key={key!r})
stream = ttt_magic.stream({prompt!r}, model={model!r})
first = next(iter(stream))
t1 = time.perf_counter()
rest = "".join(stream)
print(t1 - t0)
"""

COLD_RAW = """
import time
t0 = time.perf_counter()
import json
import httpx2
with httpx2.Client() as client:
    with client.stream("POST", {url!r} + "/chat/completions", json={payload!r},
                       headers={{"authorization": "Bearer " + {key!r}}}) as response:
        for line in response.iter_lines():
            if line.startswith("data: ") and line[6:] != "[DONE]":
                choices = json.loads(line[6:]).get("choices") or []
                if choices and choices[0]["delta"].get("content"):
                    break
t1 = time.perf_counter()
print(t1 - t0)
"""


def payload() -> dict:
    """What the OpenAI backend sends, so the server does the same work for every client."""
    return {
        "model": MODEL,
        "messages": [{"role": "user", "content": PROMPT}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }


def start_server(chunks: int) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVER.format(root=str(ROOT), chunks=chunks)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    url = proc.stdout.readline().strip()
    if not url.startswith("http://127.0.0.1:"):
        proc.kill()
        raise SystemExit(f"the fake server did not start (said {url!r})")
    return proc, url


def measure(clients: list[tuple[str, object]], runs: int, warmup: int) -> list[tuple[str, dict]]:
    """Interleaved rounds: every client streams once per round, so changing load hits all alike.

    Each ``run_once() -> (ttfc, chunks)``; returns per client its ttfc, total and
    cpu-per-chunk samples.
    """
    for _name, run_once in clients:
        for _ in range(warmup):
            run_once()
    samples = {name: {"ttfc": [], "total": [], "cpu_chunk": []} for name, _ in clients}
    for _ in range(runs):
        for name, run_once in clients:
            c0, t0 = time.process_time(), time.perf_counter()
            ttfc, chunks = run_once()
            total, cpu = time.perf_counter() - t0, time.process_time() - c0
            samples[name]["ttfc"].append(ttfc)
            samples[name]["total"].append(total)
            samples[name]["cpu_chunk"].append(cpu / max(1, chunks))
    return [(name, samples[name]) for name, _ in clients]


def raw_sync_client(url: str):
    import httpx2

    client = httpx2.Client()
    body = payload()
    headers = {"authorization": f"Bearer {KEY}"}

    def run_once() -> tuple[float, int]:
        started = time.perf_counter()
        first = None
        count = 0
        with client.stream("POST", f"{url}/chat/completions", json=body, headers=headers) as response:
            for line in response.iter_lines():
                if not line.startswith("data: "):
                    continue
                data = line[6:]
                if data == "[DONE]":
                    break
                choices = json.loads(data).get("choices") or []
                text = choices[0]["delta"].get("content") if choices else None
                if text:
                    count += 1
                    if first is None:
                        first = time.perf_counter() - started
        return first or 0.0, count

    return client, run_once


def raw_async_client(url: str):
    import httpx2

    loop = asyncio.new_event_loop()
    client = loop.run_until_complete(_make_async_client(httpx2))
    body = payload()
    headers = {"authorization": f"Bearer {KEY}"}

    async def one() -> tuple[float, int]:
        started = time.perf_counter()
        first = None
        count = 0
        async with client.stream("POST", f"{url}/chat/completions", json=body, headers=headers) as response:
            async for line in response.aiter_lines():
                if not line.startswith("data: "):
                    continue
                data = line[6:]
                if data == "[DONE]":
                    break
                choices = json.loads(data).get("choices") or []
                text = choices[0]["delta"].get("content") if choices else None
                if text:
                    count += 1
                    if first is None:
                        first = time.perf_counter() - started
        return first or 0.0, count

    def run_once() -> tuple[float, int]:
        return loop.run_until_complete(one())

    def close() -> None:
        loop.run_until_complete(client.aclose())
        loop.close()

    return close, run_once


async def _make_async_client(httpx2):
    return httpx2.AsyncClient()


def layer_client(url: str, layer: str):
    """Run one library layer on a private loop in this thread (no runner thread hop)."""
    from ttt_magic import router
    from ttt_magic.backends.openai import OpenAIBackend
    from ttt_magic.models import StreamEnd
    from ttt_magic.router import Request, StreamOutcome

    loop = asyncio.new_event_loop()
    backend = OpenAIBackend()

    async def one() -> tuple[float, int]:
        started = time.perf_counter()
        if layer == "backend":
            items = backend.astream(PROMPT, model=MODEL)
        else:
            request = Request(PROMPT, model=MODEL, backend="openai")
            items = router.stream(router.decide(request), request, StreamOutcome())
        first = None
        count = 0
        async for item in items:
            if isinstance(item, StreamEnd):
                continue
            count += 1
            if first is None:
                first = time.perf_counter() - started
        return first or 0.0, count

    def run_once() -> tuple[float, int]:
        return loop.run_until_complete(one())

    def close() -> None:
        from ttt_magic.backends import http

        loop.run_until_complete(http.aclose_clients())
        loop.close()

    return close, run_once


def ttt_client(**route):
    import ttt_magic

    def run_once() -> tuple[float, int]:
        started = time.perf_counter()
        stream = ttt_magic.stream(PROMPT, **route)
        first = None
        count = 0
        for _chunk in stream:
            count += 1
            if first is None:
                first = time.perf_counter() - started
        if stream.response.failed:
            raise SystemExit(f"ttt_magic.stream failed: {stream.response.error}")
        return first or 0.0, count

    return run_once


def time_decide(calls: int) -> list[float]:
    """``router.decide`` alone: the routing work done before a request is sent."""
    from ttt_magic import router
    from ttt_magic.router import Request

    request = Request(PROMPT, model=MODEL)
    for _ in range(20):
        router.decide(request)
    samples = []
    for _ in range(calls):
        started = time.perf_counter()
        router.decide(request)
        samples.append(time.perf_counter() - started)
    return samples


def cold(script: str, times: int) -> list[float]:
    samples = []
    for _ in range(times):
        out = subprocess.run(
            [sys.executable, "-c", script],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        samples.append(float(out.stdout.strip().splitlines()[-1]))
    return samples


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40, help="measured streams per client")
    parser.add_argument("--warmup", type=int, default=5, help="unmeasured streams per client first")
    parser.add_argument("--chunks", type=int, default=200, help="text chunks per answer")
    parser.add_argument("--cold", type=int, default=5, help="fresh-interpreter first calls per client")
    args = parser.parse_args(argv)

    home = tempfile.mkdtemp(prefix="ttt-bench-")
    os.environ["HOME"] = home
    os.chdir(home)
    os.environ["TTT_LOAD_PLUGINS"] = "0"
    for name in (
        "OPENAI_API_KEY",
        "ANTHROPIC_API_KEY",
        "GEMINI_API_KEY",
        "GOOGLE_API_KEY",
        "OPENROUTER_API_KEY",
        "OPENAI_BASE_URL",
    ):
        os.environ.pop(name, None)
    os.environ["OLLAMA_HOST"] = "http://127.0.0.1:9"

    server, url = start_server(args.chunks)
    try:
        import ttt_magic

        ttt_magic.configure(openai_base_url=url, openai_api_key=KEY)
        client, raw_sync = raw_sync_client(url)
        close_async, raw_async = raw_async_client(url)
        close_backend, backend_only = layer_client(url, "backend")
        close_router, router_only = layer_client(url, "router")
        decide_samples = time_decide(args.runs * 5)
        results = measure(
            [
                ("raw httpx2, sync (`Client.stream` + `iter_lines`)", raw_sync),
                ("raw httpx2, async (one loop, `aiter_lines`)", raw_async),
                ("`OpenAIBackend.astream` on one loop (no router, no thread hop)", backend_only),
                ("`router.decide` + `router.stream` on one loop (no thread hop)", router_only),
                ('`ttt_magic.stream(..., backend="openai")`', ttt_client(backend="openai", model=MODEL)),
                (
                    f'`ttt_magic.stream(..., model="{MODEL}")` (router -> cloud -> openai)',
                    ttt_client(model=MODEL),
                ),
            ],
            args.runs,
            args.warmup,
        )
        client.close()
        for close in (close_async, close_backend, close_router):
            close()
        cold_ttt = cold(COLD_TTT.format(url=url, key=KEY, prompt=PROMPT, model=MODEL), args.cold)
        cold_raw = cold(COLD_RAW.format(url=url, key=KEY, payload=payload()), args.cold)
    finally:
        if server.stdin:
            server.stdin.close()
        server.wait(10)

    stats = {name: {k: _report.summary(v) for k, v in s.items()} for name, s in results}
    raw = stats[results[0][0]]

    def cpu(row: dict) -> float:
        return row["cpu_chunk"]["median"]

    rows = [
        f"| {name} | {_report.ms(s['ttfc']['median'])} | {_report.ms(s['ttfc']['min'])} "
        f"| {_report.ms(s['total']['median'])} | {_report.us(cpu(s))} | {cpu(s) / cpu(raw):.2f}x |"
        for name, s in stats.items()
    ]
    lib, named = stats[results[-1][0]], stats[results[-2][0]]
    backend_row, router_row = stats[results[2][0]], stats[results[3][0]]
    decide = _report.summary(decide_samples)
    ttfc_over = (lib["ttfc"]["median"] - raw["ttfc"]["median"]) * 1000
    named_over = (named["ttfc"]["median"] - raw["ttfc"]["median"]) * 1000
    min_over = (lib["ttfc"]["min"] - raw["ttfc"]["min"]) * 1000
    verdict = "met" if ttfc_over <= GOAL_MS else "NOT met"
    cold_t, cold_r = _report.summary(cold_ttt), _report.summary(cold_raw)
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg()) + f" on {os.cpu_count()} CPUs"
    router_cost = (cpu(router_row) - cpu(backend_row)) * 1e6
    hop_cost = (cpu(named) - cpu(router_row)) * 1e6
    header = (
        "| Client | First chunk (median) | First chunk (min) | Whole stream (median) "
        "| CPU per chunk (median) | CPU vs raw sync |"
    )
    lines = [
        "Fake OpenAI server (tests/fakes/openai_fake.py) in a child process on 127.0.0.1; an answer of "
        f"{args.chunks} SSE chunks; {args.runs} rounds, each client streaming once per round "
        f"(interleaved, after {args.warmup} unmeasured streams each); all clients in one run against "
        "the same server. CPU is this process's (all threads), per chunk.",
        "",
        header,
        "| --- | ---: | ---: | ---: | ---: | ---: |",
        *rows,
        "",
        "- Warm time-to-first-chunk overhead of `ttt_magic.stream()` over raw sync httpx2 (medians): "
        f"**{ttfc_over:+.2f} ms** via the router and `cloud`, {named_over:+.2f} ms with "
        f'`backend="openai"` (goal: within {GOAL_MS:g} ms, **{verdict}**); best case (minima) '
        f"{min_over:+.2f} ms.",
        f"- CPU per chunk: {_report.us(cpu(lib))} for `ttt_magic.stream()` vs {_report.us(cpu(raw))} "
        f"raw ({(cpu(lib) - cpu(raw)) * 1e6:+.0f} µs a chunk, ratio {cpu(lib) / cpu(raw):.2f}x).",
        f"- Where it goes (medians): backend + wire decoders alone {_report.us(cpu(backend_row))} a chunk; "
        f"the router's per-chunk machinery {router_cost:+.0f} µs; the hop from the loop thread to the "
        f"caller's thread {hop_cost:+.0f} µs.",
        f"- `router.decide()` alone (routing, before anything is sent): median "
        f"{_report.us(decide['median'])}, "
        f"p90 {_report.us(decide['p90'])}.",
        f"- Cold first call in a fresh interpreter, imports included (median of {args.cold}): "
        f"`ttt_magic` {_report.ms(cold_t['median'])}, raw httpx2 {_report.ms(cold_r['median'])}.",
        f"- Load average at the end of the run (1, 5, 15 min): {load}: other work on the machine "
        "inflates and spreads the figures.",
    ]
    body = "\n".join(lines)
    path = _report.write("stream", "Streaming overhead vs raw httpx2 (fake OpenAI server)", body)
    print(path.read_text(encoding="utf-8"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
