"""The runner and the public API: sync from anywhere, async on the caller's loop, interrupts, chat."""

from __future__ import annotations

import _thread
import asyncio
import threading
import time

import pytest

import ttt_magic
from ttt_magic import aask, ask, ask_many, astream, chat, runner, stream
from ttt_magic.api import usage
from ttt_magic.backends import BaseBackend
from ttt_magic.models import AIResponse, StreamEnd
from ttt_magic.registry import backend_registry


class Words(BaseBackend):
    """Streams the prompt word by word; remembers what it was given."""

    backend_name = "words"
    seen: list = []
    delay = 0.0
    closed = threading.Event()

    async def astream(self, prompt, *, model=None, system=None, history=None, **kwargs):
        type(self).seen.append({"prompt": prompt, "system": system, "history": list(history or [])})
        try:
            for word in prompt.split():
                if type(self).delay:
                    await asyncio.sleep(type(self).delay)
                yield word + " "
            yield StreamEnd(
                model=model or "w-1", tokens_in=len(prompt.split()), tokens_out=len(prompt.split())
            )
        finally:
            type(self).closed.set()


@pytest.fixture(autouse=True)
def words():
    Words.seen, Words.delay = [], 0.0
    Words.closed = threading.Event()
    backend_registry.register_backend("words", Words)
    yield Words
    backend_registry.unregister("words")


def test_public_import_paths():
    import ttt_magic
    from ttt_magic import api, config, plugins, registry
    from ttt_magic.backends import BaseBackend
    from ttt_magic.backends.base import BaseBackend as Base
    from ttt_magic.models import AIResponse, ModelInfo

    expected = {
        "aask": api.aask,
        "ask": api.ask,
        "astream": api.astream,
        "chat": api.chat,
        "stream": api.stream,
        "route": api.route,
        "configure": config.configure,
        "get_config": config.get_config,
        "discover_plugins": plugins.discover_plugins,
        "load_plugin": plugins.load_plugin,
        "model_registry": registry.model_registry,
        "register_backend": registry.register_backend,
        "AIResponse": AIResponse,
        "ModelInfo": ModelInfo,
        "BaseBackend": Base,
    }
    for name, obj in expected.items():
        assert getattr(ttt_magic, name) is obj, name
        assert name in ttt_magic.__all__, name
    assert BaseBackend is Base
    assert callable(ttt_magic.usage) and callable(ttt_magic.settings)


def test_ask_from_a_script():
    response = ask("one two three", backend="words")
    assert isinstance(response, AIResponse) and isinstance(response, str)
    assert response == "one two three " and response.model == "w-1" and response.tokens_out == 3
    assert response.time_taken is not None and response.succeeded


def test_ask_inside_a_running_loop():
    async def cell():  # what a Jupyter cell looks like: a loop is already running
        return ask("inside loop", backend="words")

    assert asyncio.run(cell()) == "inside loop "


def test_ask_from_threads():
    results = []
    threads = [
        threading.Thread(target=lambda i=i: results.append(ask(f"t {i}", backend="words"))) for i in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == sorted(f"t {i} " for i in range(8))


def test_async_forms_run_on_the_callers_loop():
    async def main():
        loop = asyncio.get_running_loop()
        response = await aask("a b", backend="words")
        chunks = []
        answer = astream("c d e", backend="words")
        async for chunk in answer:
            chunks.append(chunk)
            assert asyncio.get_running_loop() is loop
        return response, chunks, answer.response

    response, chunks, final = asyncio.run(main())
    assert response == "a b " and chunks == ["c ", "d ", "e "]
    assert final == "c d e " and final.tokens_in == 3


def test_stream_then_response():
    answer = stream("x y", backend="words")
    assert answer.response is None  # nothing sent until iterated
    assert Words.seen == []
    assert list(answer) == ["x ", "y "]
    assert answer.response == "x y " and answer.response.route["attempts"][0]["outcome"] == "ok"


def test_breaking_out_cancels_the_request():
    Words.delay = 0.01
    answer = stream(" ".join(["w"] * 200), backend="words")
    for i, _ in enumerate(answer):
        if i == 2:
            break
    answer.close()
    assert Words.closed.wait(1)
    assert answer.response.metadata["interrupted"] and answer.response == "w w w "


def test_interrupt_during_stream_returns_quickly_and_leaves_no_task():
    Words.delay = 0.05
    answer = stream(" ".join(["w"] * 400), backend="words")
    interrupted_at = []

    def interrupt():
        interrupted_at.append(time.perf_counter())
        _thread.interrupt_main()

    got = []
    with pytest.raises(KeyboardInterrupt):
        for chunk in answer:
            got.append(chunk)
            if len(got) == 3:
                threading.Timer(0.05, interrupt).start()
    returned = time.perf_counter() - interrupted_at[0]
    assert returned < 0.5
    assert Words.closed.is_set()  # the backend's generator was closed (HTTP response freed)
    pending = runner.run(_other_tasks())
    assert pending == []
    response = answer.response
    assert response.metadata["interrupted"] and response.failed and response.startswith("w w w")
    assert ask("still works", backend="words") == "still works "


async def _other_tasks():
    return [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]


def test_sync_call_from_the_runner_thread_is_refused():
    async def nested():
        return ask("x", backend="words")

    with pytest.raises(RuntimeError, match="aask"):
        runner.run(nested())


def test_chat_keeps_history_and_resets():
    with chat(system="be brief", backend="words") as conversation:
        conversation.ask("first question")
        streamed = conversation.stream("second one")
        assert "".join(streamed) == "second one "
        assert len(conversation) == 2
        last = Words.seen[-1]
        assert last["system"] == "be brief"
        assert last["history"] == [
            {"role": "user", "content": "first question"},
            {"role": "assistant", "content": "first question "},
        ]
        conversation.reset()
        conversation.ask("fresh")
        assert Words.seen[-1]["history"] == []


def test_chat_does_not_remember_failures():
    class Fails(BaseBackend):
        async def ask(self, prompt, **kw):
            return AIResponse("", error="nope")

    backend_registry.register_backend("fails", Fails)
    try:
        conversation = chat(backend="fails")
        assert conversation.ask("q").failed
        assert conversation.history == []
    finally:
        backend_registry.unregister("fails")


def test_ask_many_keeps_order_and_its_concurrency_bound():
    class Gate(BaseBackend):
        """Answers in reverse order of arrival, counting how many requests are open at once."""

        backend_name = "gate"
        open_now = peak = 0

        async def ask(self, prompt, **kwargs):
            cls = type(self)
            cls.open_now += 1
            cls.peak = max(cls.peak, cls.open_now)
            try:
                for _ in range(20 - int(prompt[1:])):  # later prompts finish first
                    await asyncio.sleep(0)
                return AIResponse(prompt + " ", model="g", backend=self.name)
            finally:
                cls.open_now -= 1

    backend_registry.register_backend("gate", Gate)
    try:
        answers = ask_many([f"p{i}" for i in range(12)], backend="gate", concurrency=3)
    finally:
        backend_registry.unregister("gate")
    assert answers == [f"p{i} " for i in range(12)]
    assert Gate.peak == 3  # the bound was reached and never passed


def test_usage_counts_calls():
    before = usage()
    ask("a b", backend="words")
    after = usage()
    assert after["calls"] == before["calls"] + 1
    assert after["tokens_out"] == before["tokens_out"] + 2


def test_airesponse_repr_never_crashes():
    assert repr(AIResponse()) == "AIResponse('')"
    assert "error='x'" in repr(AIResponse("t", error="x"))
    r = AIResponse("x" * 100, model="m", tokens_in=1)
    assert "..." in repr(r) and "model='m'" in repr(r)
    assert r.copy_with(text="y").model == "m"
    import pickle

    assert pickle.loads(pickle.dumps(r)).model == "m"


def test_lazy_import_is_light():
    import subprocess
    import sys

    code = (
        "import sys, ttt_magic; ttt_magic.load_ipython_extension; "
        "heavy = ('httpx2', 'yaml', 'ipywidgets', 'IPython', 'ttt_magic.api'); "
        "print(sorted(m for m in heavy if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    assert "ask" in dir(ttt_magic)


def test_heartbeat_yields_empty_chunks_while_the_source_is_silent():
    Words.delay = 0.3
    answer = stream("a b", backend="words")
    answer.heartbeat = 0.1
    chunks = list(answer)
    assert "".join(chunks) == "a b " and answer.response == "a b "
    assert "" in chunks  # the silences were reported
    plain = list(stream("a b", backend="words"))
    assert "" not in plain  # only when asked for


def test_interpreter_exits_cleanly_with_a_stream_left_open(tmp_path):
    """A script that abandons a running stream still exits at once, with nothing on stderr."""
    import subprocess
    import sys

    script = tmp_path / "abandon.py"
    script.write_text(
        "import ttt_magic\n"
        "from ttt_magic import configure, stream\n"
        "configure(backends={'mock': {'delay': 0.05}})\n"
        "answer = stream('Explain recursion in detail', backend='mock')\n"
        "print(next(iter(answer)) != '')\n"
    )
    result = subprocess.run(
        [sys.executable, "-W", "error::RuntimeWarning", str(script)],
        capture_output=True,
        text=True,
        timeout=30,
        env={**__import__("os").environ, "TTT_MOCK_DELAY": "0.05"},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "True"
    assert result.stderr == ""


def test_breaking_out_of_an_unnamed_stream_cancels_it():
    """`for chunk in stream(...): break` leaves nothing running once the loop lets go of it."""
    Words.delay = 0.02
    for i, _ in enumerate(stream(" ".join(["w"] * 500), backend="words")):
        if i == 2:
            break
    assert Words.closed.wait(2)
    assert runner.run(_other_tasks()) == []
