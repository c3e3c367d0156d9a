"""Connection hygiene: abandoned streams free their sockets, keep-alive reuses them, shutdown closes them."""

from __future__ import annotations

import asyncio
import contextlib
import threading

from tests.fakes import SENTINEL_KEY, run
from ttt_magic.backends import http
from ttt_magic.backends.openai import OpenAIBackend
from ttt_magic.secrets import Secret


def backend_for(fake) -> OpenAIBackend:
    return OpenAIBackend(
        {"openai_base_url": fake.base_url, "openai_api_key": Secret(SENTINEL_KEY), "timeout": 10.0}
    )


def test_200_cancelled_streams_leave_no_open_connection(openai_fake):
    # Every stream sends two events, then stalls for 30 s: only cancellation can end it.
    openai_fake.fail_next("stall", times=200, after=2, seconds=30)
    backend = backend_for(openai_fake)

    async def abandon(i: int) -> str:
        agen = backend.astream("Hi", model="gpt-4o-mini")
        if i % 2:  # the consumer stops iterating and closes the generator
            first = await agen.__anext__()
            await agen.aclose()
            return first
        got = asyncio.get_running_loop().create_future()

        async def consume() -> None:
            async for item in agen:
                if not got.done():
                    got.set_result(item)

        task = asyncio.ensure_future(consume())  # the task is cancelled, as an interrupt does
        first = await got
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return first

    async def scenario():
        firsts = [await abandon(i) for i in range(160)]
        firsts += await asyncio.gather(*(abandon(i) for i in range(40)))  # some at once, too
        assert await asyncio.to_thread(openai_fake.wait_until, lambda: openai_fake.open_connections == 0)
        before = openai_fake.total_connections
        texts = []
        for _ in range(5):  # the next calls work, and share one kept-alive connection
            texts.append(
                "".join([c async for c in backend.astream("Hi", model="gpt-4o-mini") if isinstance(c, str)])
            )
        return firsts, texts, openai_fake.total_connections - before

    firsts, texts, opened = run(scenario())
    assert firsts == ["Hello"] * 200
    assert texts == ["Hello, world!"] * 5
    assert opened == 1
    assert openai_fake.wait_until(lambda: openai_fake.open_connections == 0)  # closed with the client


def test_sync_stream_close_frees_the_connection(openai_fake):
    import ttt_magic
    from ttt_magic.registry import backend_registry

    ttt_magic.configure(openai_base_url=openai_fake.base_url, openai_api_key=SENTINEL_KEY, max_retries=0)
    registered = "openai" in backend_registry.names()
    if not registered:
        backend_registry.register_backend("openai", OpenAIBackend, source="test")
    try:
        openai_fake.fail_next("stall", times=20, after=2, seconds=30)
        for _ in range(20):
            chunks = ttt_magic.stream("Hi", backend="openai", model="gpt-4o-mini")
            assert next(iter(chunks)) == "Hello"
            chunks.close()
        assert openai_fake.wait_until(lambda: openai_fake.open_connections <= 0)
        assert ttt_magic.ask("Hi", backend="openai", model="gpt-4o-mini") == "Hello, world!"
    finally:
        if not registered:
            backend_registry.unregister("openai")


def test_one_client_per_loop():
    async def two_gets():
        return http.get_client(), http.get_client()

    a1, a2 = run(two_gets())
    b1, _ = run(two_gets())
    assert a1 is a2 and a1 is not b1
    assert a1.is_closed and b1.is_closed  # run() closes the loop's client at the end


def test_close_all_clients_from_another_thread(openai_fake):
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        backend = backend_for(openai_fake)
        answer = asyncio.run_coroutine_threadsafe(backend.ask("Hi", model="gpt-4o-mini"), loop).result(10)
        assert answer == "Hello, world!"
        assert openai_fake.open_connections == 1  # kept alive in the pool
        http.close_all_clients(loop)
        assert openai_fake.wait_until(lambda: openai_fake.open_connections == 0)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


def test_close_all_clients_for_a_stopped_loop(openai_fake):
    loop = asyncio.new_event_loop()
    try:
        answer = loop.run_until_complete(backend_for(openai_fake).ask("Hi", model="gpt-4o-mini"))
        assert answer == "Hello, world!" and http.open_client_count() >= 1
        http.close_all_clients()
        assert openai_fake.wait_until(lambda: openai_fake.open_connections == 0)
        assert http.open_client_count() == 0
    finally:
        loop.close()


def test_fake_server_stops_while_a_stream_stalls(fake_factory):
    from tests.fakes.server import FakeServer, Reply
    from ttt_magic.errors import ProviderError

    server = fake_factory(FakeServer)
    server.route("GET", "/slow", Reply(chunks=[b"a"], stall_after=1, stall=600))
    thread = server._thread

    async def scenario():
        try:
            async with http.stream_request(
                "GET", server.url + "/slow", provider="test", timeout=10.0
            ) as response:
                chunks = response.aiter_bytes()
                first = await chunks.__anext__()
                await asyncio.to_thread(server.stop)  # returns although the handler is mid-stall
                rest = b"".join([c async for c in chunks])
                return first, rest, None
        except ProviderError as exc:
            return first, None, exc

    first, rest, error = run(scenario())
    assert first == b"a" and not thread.is_alive()
    assert rest is None and error.kind == "connection"  # the body ended without its last chunk
