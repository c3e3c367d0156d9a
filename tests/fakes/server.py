"""A scriptable fake HTTP/1.1 server on 127.0.0.1 for provider tests.

Real sockets, an ephemeral port, an asyncio loop in a background thread: the
code under test talks real HTTP (keep-alive, chunked streaming, resets), while
the test decides exactly what the server says and inspects what it received.

API
---
``FakeServer()``: create; ``.start()`` / ``.stop()`` or ``with FakeServer() as srv``.
    ``.url``            ``"http://127.0.0.1:<port>"``
    ``.route(method, pattern, handler)``
                        ``pattern`` is a path like ``"/v1/chat/completions"`` or
                        ``"/v1beta/models/{model}:generateContent"`` (``{name}``
                        matches one path segment, ``{name:path}`` anything);
                        ``handler(request) -> Reply`` runs in the server thread.
                        ``request.params`` holds the matched names.
    ``.enqueue(method, pattern, reply, times=1)``
                        one-shot override taking precedence over routes (for
                        faults: the next N matching requests get ``reply``, a
                        ``Reply`` or a handler).
    ``.requests``       list of ``Recorded`` (method, path, query dict, headers
                        dict with lower-case names, body bytes, ``.json``)
    ``.last``           the last recorded request
    ``.open_connections`` / ``.total_connections``: server-side socket counts
    ``.wait_until(predicate, timeout=5)``: poll a condition (True/False)
    ``.clear()``        forget requests and queued replies

``Reply(status=200, headers=None, body=None, chunks=None, ...)``:
    ``body``            bytes, str, or a JSON-able value (dict/list) sent with
                        Content-Length
    ``chunks``          an iterable (or a zero-argument callable returning one)
                        of bytes/str written one by one with chunked transfer
                        encoding, each flushed before the next
    ``content_type``    default: JSON for ``body`` values, given otherwise
    ``chunk_delay``     seconds slept between chunks
    ``drip``            write every chunk one byte at a time (slow drip)
    ``reset_after``     after this many chunks, abort the socket with RST
    ``close_after``     after this many chunks, close cleanly (FIN) without the
                        final zero-length chunk: an HTTP-level truncation
    ``stall_after`` / ``stall``   after this many chunks, go silent for
                        ``stall`` seconds (cut short by ``stop()``)
    ``close``           send ``Connection: close`` and close after the reply

The protocol-level faults (a malformed event, a stream without its ``[DONE]``
or ``done: true``, a huge answer) are chunk scripts, built by each provider's
fake on top of this class (see ``openai_fake.py`` and ``ollama_fake.py``).
While streaming, the server also watches its socket, so a client that goes
away mid-stream is noticed at once and ``open_connections`` drops.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

__all__ = ["FakeServer", "Recorded", "Reply"]

Handler = Callable[["Recorded"], "Reply"]

_REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    408: "Request Timeout",
    413: "Payload Too Large",
    422: "Unprocessable Entity",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
    529: "Site Overloaded",
}


@dataclass
class Recorded:
    """One request as the server received it."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    params: dict[str, str] = field(default_factory=dict)

    @property
    def json(self) -> Any:
        try:
            return json.loads(self.body) if self.body else None
        except ValueError:
            return None


@dataclass
class Reply:
    """What the server answers (see the module docstring)."""

    status: int = 200
    headers: dict[str, str] | None = None
    body: Any = None
    chunks: Iterable[bytes | str] | Callable[[], Iterable[bytes | str]] | None = None
    content_type: str | None = None
    chunk_delay: float = 0.0
    drip: bool = False
    reset_after: int | None = None
    close_after: int | None = None
    stall_after: int | None = None
    stall: float = 30.0
    close: bool = False


def _compile(pattern: str) -> re.Pattern[str]:
    out, pos = [], 0
    for m in re.finditer(r"\{(\w+)(:path)?\}", pattern):
        out.append(re.escape(pattern[pos : m.start()]))
        out.append(f"(?P<{m.group(1)}>{'.+' if m.group(2) else '[^/]+'})")
        pos = m.end()
    out.append(re.escape(pattern[pos:]))
    return re.compile("^" + "".join(out) + "$")


class _ClientGone(Exception):
    pass


class FakeServer:
    """See the module docstring."""

    def __init__(self) -> None:
        self._routes: list[tuple[str, re.Pattern[str], Handler | Reply]] = []
        self._queued: list[list[Any]] = []  # [method, regex, reply, remaining]
        self._lock = threading.Lock()
        self.requests: list[Recorded] = []
        self.open_connections = 0
        self.total_connections = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.base_events.Server | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._stopping: asyncio.Event | None = None
        self.port = 0

    # ------------------------------------------------------------------ set-up

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def route(self, method: str, pattern: str, handler: Handler | Reply) -> None:
        with self._lock:
            self._routes.append((method.upper(), _compile(pattern), handler))

    def enqueue(self, method: str, pattern: str, reply: Handler | Reply, times: int = 1) -> None:
        with self._lock:
            self._queued.append([method.upper(), _compile(pattern), reply, times])

    def clear(self) -> None:
        with self._lock:
            self.requests.clear()
            self._queued.clear()

    @property
    def last(self) -> Recorded:
        return self.requests[-1]

    def wait_until(self, predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(0.01)
        return predicate()

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> FakeServer:
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            try:
                self._stopping = asyncio.Event()
                self._server = loop.run_until_complete(asyncio.start_server(self._connection, "127.0.0.1", 0))
                self.port = self._server.sockets[0].getsockname()[1]
            except BaseException as exc:  # pragma: no cover - start-up failure is reported below
                failure.append(exc)
                ready.set()
                return
            ready.set()
            try:
                loop.run_until_complete(self._stopping.wait())
                self._server.close()
                for task in list(self._tasks):
                    task.cancel()
                if self._tasks:
                    loop.run_until_complete(asyncio.gather(*self._tasks, return_exceptions=True))
                loop.run_until_complete(self._server.wait_closed())
            finally:
                loop.close()

        self._thread = threading.Thread(target=run, name="fake-http-server", daemon=True)
        self._thread.start()
        ready.wait(10)
        if failure:
            raise failure[0]
        return self

    def stop(self) -> None:
        if self._loop is None or self._thread is None:
            return
        if not self._loop.is_closed():
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._stopping.set)  # type: ignore[union-attr]
        self._thread.join(10)
        self._thread = None

    def __enter__(self) -> FakeServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # ------------------------------------------------------------------ serving

    def _find(self, method: str, path: str) -> tuple[Handler | Reply | None, dict[str, str]]:
        with self._lock:
            for item in self._queued:
                m = item[1].match(path)
                if item[0] == method and m:
                    item[3] -= 1
                    if item[3] <= 0:
                        self._queued.remove(item)
                    return item[2], m.groupdict()
            for rmethod, regex, handler in self._routes:
                m = regex.match(path)
                if rmethod == method and m:
                    return handler, m.groupdict()
        return None, {}

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.open_connections += 1
        self.total_connections += 1
        try:
            while True:
                request = await self._read_request(reader)
                if request is None:
                    break
                keep = await self._answer(request, reader, writer)
                if not keep:
                    break
        except (_ClientGone, ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()
            self.open_connections -= 1
            self._tasks.discard(task)

    async def _read_request(self, reader: asyncio.StreamReader) -> Recorded | None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            return None
        lines = head.decode("latin-1").split("\r\n")
        method, target, _version = lines[0].split(" ", 2)
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        if headers.get("transfer-encoding", "").lower() == "chunked":
            body = b""
            while True:
                size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                data = await reader.readexactly(size + 2)
                if size == 0:
                    break
                body += data[:-2]
        else:
            body = await reader.readexactly(int(headers.get("content-length", "0") or 0))
        parts = urlsplit(target)
        recorded = Recorded(method.upper(), parts.path, dict(parse_qsl(parts.query)), headers, body)
        with self._lock:
            self.requests.append(recorded)
        return recorded

    async def _answer(
        self, request: Recorded, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        handler, params = self._find(request.method, request.path)
        request.params = params
        if handler is None:
            reply = Reply(404, body={"error": f"no route for {request.method} {request.path}"})
        elif isinstance(handler, Reply):
            reply = handler
        else:
            try:
                reply = handler(request)
            except Exception as exc:  # a broken handler is a 500 the test will see
                reply = Reply(500, body={"error": f"fake handler crashed: {type(exc).__name__}: {exc}"})
        keep = request.headers.get("connection", "").lower() != "close" and not reply.close
        headers = {k.lower(): v for k, v in (reply.headers or {}).items()}
        head = [f"HTTP/1.1 {reply.status} {_REASONS.get(reply.status, 'Status')}"]
        if reply.chunks is None:
            body = reply.body
            if isinstance(body, (bytes, bytearray)):
                data = bytes(body)
                ctype = reply.content_type or "application/octet-stream"
            elif isinstance(body, str):
                data = body.encode()
                ctype = reply.content_type or "text/plain; charset=utf-8"
            elif body is None:
                data, ctype = b"", reply.content_type or "text/plain"
            else:
                data = json.dumps(body).encode()
                ctype = reply.content_type or "application/json"
            headers.setdefault("content-type", ctype)
            headers["content-length"] = str(len(data))
        else:
            data = b""
            headers.setdefault("content-type", reply.content_type or "application/octet-stream")
            headers["transfer-encoding"] = "chunked"
        headers["connection"] = "keep-alive" if keep else "close"
        head += [f"{k}: {v}" for k, v in headers.items()]
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + data)
        await writer.drain()
        if reply.chunks is not None:
            await self._stream(reply, reader, writer)
        return keep

    async def _stream(self, reply: Reply, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        chunks = reply.chunks() if callable(reply.chunks) else reply.chunks
        watcher = asyncio.ensure_future(reader.read(1))  # b"" when the client goes away

        async def pause(seconds: float) -> None:
            if seconds <= 0:
                if watcher.done():
                    raise _ClientGone
                return
            done, _ = await asyncio.wait({watcher}, timeout=seconds)
            if done:
                raise _ClientGone

        async def send(data: bytes) -> None:
            if watcher.done():
                raise _ClientGone
            writer.write(data)
            await writer.drain()

        sent = 0
        try:
            for index, chunk in enumerate(chunks or ()):
                sent = index + 1
                if reply.reset_after is not None and index >= reply.reset_after:
                    self._reset(writer)
                    raise _ClientGone
                if reply.close_after is not None and index >= reply.close_after:
                    raise _ClientGone
                if reply.stall_after is not None and index == reply.stall_after:
                    await pause(reply.stall)
                data = chunk.encode() if isinstance(chunk, str) else bytes(chunk)
                if not data:
                    continue
                pieces = [data[i : i + 1] for i in range(len(data))] if reply.drip else [data]
                for piece in pieces:
                    await send(b"%x\r\n%s\r\n" % (len(piece), piece))
                    if reply.drip:
                        await pause(0)
                if reply.chunk_delay:
                    await pause(reply.chunk_delay)
            if reply.stall_after is not None and reply.stall_after >= sent:
                await pause(reply.stall)
            if reply.reset_after is not None:
                self._reset(writer)
                raise _ClientGone
            if reply.close_after is not None:
                raise _ClientGone
            await send(b"0\r\n\r\n")
        finally:
            watcher.cancel()
            with contextlib.suppress(BaseException):
                await watcher

    @staticmethod
    def _reset(writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()
