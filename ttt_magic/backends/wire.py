"""Incremental decoders for the two streaming formats providers use: SSE and NDJSON.

Pure and I/O-free so they can be tested exhaustively: network chunks arrive cut
anywhere (inside a line, inside a CRLF pair, inside a multi-byte UTF-8
character) and the decoders must produce the same events whatever the cuts.
OpenAI, Anthropic and Gemini stream Server-Sent Events; Ollama streams one JSON
object per line. The ``aiter_*`` helpers adapt them to an httpx2 response.
"""

from __future__ import annotations

import codecs
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

__all__ = [
    "NDJSONDecoder",
    "NDJSONError",
    "SSEDecoder",
    "SSEEvent",
    "aiter_ndjson",
    "aiter_sse",
]


@dataclass(frozen=True)
class SSEEvent:
    """One dispatched Server-Sent Event.

    ``event`` is None when the stream named no type (the spec's default
    "message"); ``id`` is the last event ID seen so far (it persists across
    events, per the spec); ``retry`` is set only on the event whose block
    carried a valid ``retry:`` field.
    """

    event: str | None
    data: str
    id: str | None = None
    retry: int | None = None

    def json(self) -> Any:
        """``data`` decoded as JSON (raises ``ValueError`` when it is not)."""
        return json.loads(self.data)


class SSEDecoder:
    """Incremental ``text/event-stream`` parser following the WHATWG rules.

    Lines end with CRLF, LF or CR; a line starting with ``:`` is a comment;
    ``field: value`` loses one leading space of the value; several ``data``
    lines join with ``\\n``; a blank line dispatches the event unless it has no
    data. ``flush()`` at end of stream dispatches a pending event only if its
    last line was complete: an event cut inside a line is a truncated stream
    and is dropped (the backend then notices the missing terminator).
    """

    def __init__(self) -> None:
        self._text = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._buffer = ""
        self._after_cr = False  # last chunk ended with CR: a leading LF next belongs to it
        self._started = False
        self._data: list[str] = []
        self._has_data = False
        self._event: str | None = None
        self._last_id: str | None = None
        self._retry: int | None = None

    def feed(self, chunk: bytes | str) -> list[SSEEvent]:
        """Events completed by this chunk (possibly none)."""
        text = self._text.decode(chunk) if isinstance(chunk, (bytes, bytearray)) else chunk
        if not text:
            return []
        if not self._started:
            self._started = True
            if text.startswith("\ufeff"):
                text = text[1:]
        if self._after_cr and text.startswith("\n"):
            text = text[1:]
        self._after_cr = False
        self._buffer += text
        return self._drain()

    def _drain(self) -> list[SSEEvent]:
        events: list[SSEEvent] = []
        buf = self._buffer
        pos = 0
        length = len(buf)
        while pos < length:
            cr = buf.find("\r", pos)
            lf = buf.find("\n", pos)
            if cr < 0 and lf < 0:
                break
            if cr < 0 or (0 <= lf < cr):
                end, nxt = lf, lf + 1
            else:
                end = cr
                if cr + 1 < length:
                    nxt = cr + 2 if buf[cr + 1] == "\n" else cr + 1
                else:  # CR at the very end: its LF may come in the next chunk
                    nxt = cr + 1
                    self._after_cr = True
            event = self._line(buf[pos:end])
            if event is not None:
                events.append(event)
            pos = nxt
        self._buffer = buf[pos:]
        return events

    def _line(self, line: str) -> SSEEvent | None:
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None
        name, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
            self._has_data = True
        elif name == "event":
            self._event = value
        elif name == "id":
            if "\0" not in value:
                self._last_id = value
        elif name == "retry" and value.isascii() and value.isdigit():
            self._retry = int(value)
        return None

    def _dispatch(self) -> SSEEvent | None:
        if not self._has_data:
            self._event = None
            self._retry = None
            return None
        event = SSEEvent(
            event=self._event or None, data="\n".join(self._data), id=self._last_id, retry=self._retry
        )
        self._data = []
        self._has_data = False
        self._event = None
        self._retry = None
        return event

    def flush(self) -> list[SSEEvent]:
        """End of stream: the last event if it was complete but lacked its blank line."""
        tail = self._text.decode(b"", final=True)
        events = self.feed(tail) if tail else []
        self._after_cr = False
        if self._buffer:  # an unterminated last line: truncated, dropped
            self._buffer = ""
            self._data, self._has_data = [], False
            return events
        last = self._dispatch()
        return [*events, last] if last is not None else events


class NDJSONError(ValueError):
    """A line of an NDJSON stream was not valid JSON (the backend turns this into a ProviderError)."""

    def __init__(self, line: bytes | str, reason: str) -> None:
        text = line.decode("utf-8", "replace") if isinstance(line, (bytes, bytearray)) else line
        shown = text if len(text) <= 80 else text[:77] + "..."
        super().__init__(f"malformed JSON line in stream ({reason}): {shown!r}")
        self.line = text


class NDJSONDecoder:
    """Incremental newline-delimited JSON: one value per non-blank line.

    Splitting on the byte ``\\n`` is safe for UTF-8 (it never occurs inside a
    multi-byte character), so partial characters need no special care.
    """

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, chunk: bytes | str) -> list[Any]:
        if isinstance(chunk, str):
            chunk = chunk.encode("utf-8")
        if not chunk:
            return []
        self._buffer += chunk
        if b"\n" not in chunk:
            return []
        *lines, self._buffer = self._buffer.split(b"\n")
        return [value for line in lines for value in self._parse(line)]

    @staticmethod
    def _parse(line: bytes) -> list[Any]:
        line = line.strip()
        if not line:
            return []
        try:
            return [json.loads(line)]
        except ValueError as exc:
            raise NDJSONError(line, str(exc).split(":")[0]) from None

    def flush(self) -> list[Any]:
        """End of stream: the last line, if it had no newline."""
        line, self._buffer = self._buffer, b""
        return self._parse(line)


async def aiter_sse(response: Any) -> AsyncIterator[SSEEvent]:
    """The events of a streaming httpx2 response (anything with ``aiter_bytes``)."""
    decoder = SSEDecoder()
    async for chunk in response.aiter_bytes():
        for event in decoder.feed(chunk):
            yield event
    for event in decoder.flush():
        yield event


async def aiter_ndjson(response: Any) -> AsyncIterator[Any]:
    """The JSON values of a streaming NDJSON response; ``NDJSONError`` on a malformed line."""
    decoder = NDJSONDecoder()
    async for chunk in response.aiter_bytes():
        for value in decoder.feed(chunk):
            yield value
    for value in decoder.flush():
        yield value
