"""Showing answers: throttled streaming into one notebook output, or straight to a terminal.

Why throttled: re-sending the whole Markdown on every token costs O(n²) bytes
and trips Jupyter's iopub rate limit. ``StreamView`` shows the first text at
once, then coalesces chunks into updates of one display (same ``display_id``).
The wait between updates grows with the text's size relative to the stream's
speed::

    interval = clamp(len(text) / (PACE * chars_per_second), MIN_INTERVAL, MAX_INTERVAL)

which is ``elapsed / PACE``: at most 20 updates a second early on, then fewer
and fewer. Each update re-sends the text, whose size grows at the stream's
speed, so the bytes sent stay about ``PACE`` times the answer's size whatever
the speed (a fixed rate would send ~20 × duration × size / 2). The cap keeps a
very long, slow answer from looking stalled; past ``PACE * MAX_INTERVAL``
seconds the bytes grow with the duration instead. The final update always
carries the whole answer: ``text/markdown`` (answer + footer) and
``text/plain`` (the answer alone) with provenance under
``metadata["ttt_magic"]``.

Why the footer lives inside the Markdown (a last ``<sub>`` line) rather than in
a second output: the saved notebook then holds exactly one output per
``%%ask``, ``text/plain`` stays the bare answer for anyone reading the file,
and the figures sit next to the answer they describe.

Everything here is called from the main thread only: ipykernel routes
output from other threads to the wrong cell.
"""

from __future__ import annotations

import html
import json
import re
import sys
import time
from collections.abc import Callable
from typing import Any, Protocol, TextIO

__all__ = [
    "FORMATS",
    "INTERRUPTED_MARK",
    "IPythonPublisher",
    "StreamView",
    "TerminalView",
    "error_bundle",
    "extract_code",
    "final_bundle",
    "footer_text",
    "provenance",
]

FORMATS = ("markdown", "text", "code", "json", "html")
INTERRUPTED_MARK = "*[interrupted]*"
MIN_INTERVAL = 0.05  # seconds: at most 20 updates a second
MAX_INTERVAL = 5.0  # seconds: never longer between updates while text arrives
PACE = 20  # the bytes sent stay about PACE times the answer's size
ERROR_STYLE = (
    "border-left: 4px solid #d9534f; padding: 4px 12px; margin: 4px 0; background: rgba(217, 83, 79, 0.08)"
)

Bundle = dict[str, Any]


class Publisher(Protocol):
    """Where a view sends its display: the kernel (via IPython.display) or a recorder in tests."""

    def show(self, data: Bundle, metadata: dict[str, Any] | None = None) -> None: ...

    def update(self, data: Bundle, metadata: dict[str, Any] | None = None) -> None: ...


class IPythonPublisher:
    """One display in the current cell, created on ``show`` and replaced on ``update``."""

    def __init__(self) -> None:
        self.handle: Any = None

    def show(self, data: Bundle, metadata: dict[str, Any] | None = None) -> None:
        from IPython.display import display

        self.handle = display(data, raw=True, metadata=metadata or {}, display_id=True)

    def update(self, data: Bundle, metadata: dict[str, Any] | None = None) -> None:
        if self.handle is None:
            self.show(data, metadata)
        else:
            self.handle.update(data, raw=True, metadata=metadata or {})


# --------------------------------------------------------------------------- pieces


def provenance(response: Any) -> dict[str, Any]:
    """The ``metadata["ttt_magic"]`` record of an answer (JSON-able)."""
    if response is None:
        return {}
    meta = getattr(response, "metadata", None) or {}
    record = {
        "backend": getattr(response, "backend", None),
        "model": getattr(response, "model", None),
        "tokens_in": getattr(response, "tokens_in", None),
        "tokens_out": getattr(response, "tokens_out", None),
        "time": _round(getattr(response, "time_taken", None), 3),
        "cost": getattr(response, "cost", None),
        "route": meta.get("route"),
    }
    if getattr(response, "error", None):
        record["error"] = response.error
    if meta.get("interrupted"):
        record["interrupted"] = True
    return _jsonable(record)


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(float(value), digits)


def _jsonable(value: Any) -> Any:
    try:
        json.dumps(value)
        return value
    except (TypeError, ValueError):
        return json.loads(json.dumps(value, default=str))


def footer_text(response: Any) -> str:
    """``model · backend · 12 in / 40 out · 1.2 s · $0.0003``, leaving out what is unknown."""
    if response is None:
        return ""
    parts = []
    for value in (getattr(response, "model", None), getattr(response, "backend", None)):
        if value:
            parts.append(str(value))
    tin, tout = getattr(response, "tokens_in", None), getattr(response, "tokens_out", None)
    if tin is not None or tout is not None:
        parts.append(f"{tin if tin is not None else '?'} in / {tout if tout is not None else '?'} out")
    taken = getattr(response, "time_taken", None)
    if taken is not None:
        parts.append(f"{taken:.1f} s" if taken >= 0.1 else f"{taken * 1000:.0f} ms")
    cost = getattr(response, "cost", None)
    if cost:
        parts.append(f"${cost:.4f}" if cost >= 0.0001 else f"${cost:.2e}")
    return " · ".join(parts)


_FENCE_RE = re.compile(r"^(`{3,}|~{3,})[ \t]*([\w+#.-]*)[^\n]*\n(.*?)^\1[ \t]*$", re.M | re.S)


def extract_code(text: str, default_language: str = "python") -> tuple[str, str]:
    """(code, language) from an answer: its fenced blocks joined, or the whole text if none."""
    blocks = [(m.group(2) or "", m.group(3)) for m in _FENCE_RE.finditer(text)]
    if not blocks:
        stripped = text.strip("\n")
        return stripped, default_language
    language = next((lang for lang, _ in blocks if lang), default_language)
    code = "\n\n".join(body.rstrip("\n") for _, body in blocks)
    return code, language


def _fence(body: str, language: str = "") -> str:
    ticks = "```"
    while ticks in body:
        ticks += "`"
    return f"{ticks}{language}\n{body}\n{ticks}"


def parse_json(text: str) -> tuple[Any, str | None]:
    """(value, None) when the answer is JSON (fences allowed), else (None, what is wrong)."""
    candidate = text.strip()
    if candidate.startswith(("```", "~~~")):
        candidate, _ = extract_code(candidate, "json")
    try:
        return json.loads(candidate), None
    except ValueError as exc:
        return None, str(exc)


def error_bundle(message: str, hint: str | None = None) -> Bundle:
    """A short styled message (no traceback): HTML with a red left border, plain text with the hint."""
    body = f"<b>ttt-magic:</b> {html.escape(message)}"
    if hint:
        body += f'<br><span style="opacity: 0.8">{html.escape(hint)}</span>'
    plain = f"ttt-magic: {message}" + (f"\n{hint}" if hint else "")
    return {"text/html": f'<div style="{ERROR_STYLE}">{body}</div>', "text/plain": plain}


def final_bundle(
    text: str,
    fmt: str = "markdown",
    response: Any = None,
    *,
    footer: bool = True,
    interrupted: bool = False,
) -> tuple[Bundle, dict[str, Any]]:
    """The one output a finished answer leaves in the notebook, and its metadata."""
    error = getattr(response, "error", None)
    if interrupted:
        error = None  # the mark says it; "Interrupted: ..." as an error box would repeat it
    foot = footer_text(response) if footer else ""
    metadata = {"ttt_magic": {**provenance(response), "format": fmt}}

    if not text and error:
        data = error_bundle(error)
        if foot:
            data["text/html"] += f"<sub>{html.escape(foot)}</sub>"
        return data, metadata

    tail_md: list[str] = []
    tail_plain: list[str] = []
    if interrupted:
        tail_md.append(INTERRUPTED_MARK)
        tail_plain.append("[interrupted]")
    if error:
        box = error_bundle(error)
        tail_md.append(box["text/html"])
        tail_plain.append(box["text/plain"])
    if foot:
        tail_md.append(f"<sub>{html.escape(foot)}</sub>")

    plain = text
    extra: Bundle = {}
    if fmt == "code":
        code, language = extract_code(text)
        head = _fence(code, language)
        plain = code
    elif fmt == "json":
        value, problem = parse_json(text)
        if problem is None:
            pretty = json.dumps(value, indent=2, ensure_ascii=False)
            head = _fence(pretty, "json")
            plain = pretty
            if not interrupted:
                extra["application/json"] = value
        else:
            head = f"**Invalid JSON** ({html.escape(problem)}):\n\n" + _fence(text, "text")
    elif fmt == "text":
        head = f'<pre style="white-space: pre-wrap">{html.escape(text)}</pre>'
    elif fmt == "html":
        head = text
    else:
        head = text

    data: Bundle
    if fmt in ("text", "html"):
        data = {"text/html": "\n".join([head, *(_md_to_html(t) for t in tail_md)])}
    else:
        data = {"text/markdown": "\n\n".join([head, *tail_md]) if head else "\n\n".join(tail_md)}
        data.update(extra)
    data["text/plain"] = "\n".join([plain, *tail_plain]) if tail_plain else plain
    return data, metadata


def _md_to_html(piece: str) -> str:
    if piece == INTERRUPTED_MARK:
        return "<p><em>[interrupted]</em></p>"
    return piece  # the error box and the <sub> footer are already HTML


def partial_bundle(text: str, fmt: str) -> Bundle:
    """What an intermediate update sends: one mimetype, no metadata (keeps bytes down)."""
    if fmt == "text":
        return {"text/plain": text}
    if fmt == "html":
        return {"text/html": text}
    if fmt == "json" and not text.lstrip().startswith(("```", "~~~")):
        return {"text/markdown": _fence(text, "json")}
    return {"text/markdown": text}


# --------------------------------------------------------------------------- views


class StreamView:
    """Streams an answer into one notebook output, throttled; ``finish`` writes the final form."""

    def __init__(
        self,
        fmt: str = "markdown",
        *,
        publisher: Publisher | None = None,
        clock: Callable[[], float] = time.monotonic,
        footer: bool = True,
        min_interval: float = MIN_INTERVAL,
        max_interval: float = MAX_INTERVAL,
        pace: float = PACE,
    ) -> None:
        self.fmt = fmt
        self.publisher = publisher if publisher is not None else IPythonPublisher()
        self.clock = clock
        self.footer = footer
        self.min_interval = min_interval
        self.max_interval = max_interval
        self.pace = pace
        self.parts: list[str] = []
        self.size = 0
        self.shown = False
        self.updates = 0  # display messages sent (show + updates), for tests and benchmarks
        self._last = 0.0
        self._start = 0.0
        self._pending = False

    @property
    def text(self) -> str:
        return "".join(self.parts)

    def interval(self, size: int, elapsed: float) -> float:
        """Seconds to wait between updates: ``size / (pace * speed)``, i.e. ``elapsed / pace``, clamped.

        ``size`` characters arrived in ``elapsed`` seconds since the first one.
        """
        if size <= 0 or elapsed <= 0:
            return self.min_interval
        speed = size / elapsed
        return min(self.max_interval, max(self.min_interval, size / (self.pace * speed)))

    def feed(self, chunk: str) -> None:
        """Add a chunk; send an update if one is due. An empty chunk (a heartbeat) only flushes."""
        now = self.clock()
        if not chunk:
            if self._pending and now - self._last >= self.interval(self.size, now - self._start):
                self.flush(now)
            return
        self.parts.append(chunk)
        self.size += len(chunk)
        if not self.shown:
            self.publisher.show(partial_bundle(self.text, self.fmt))
            self.shown = True
            self.updates += 1
            self._last = self._start = now
            return
        self._pending = True
        if now - self._last >= self.interval(self.size, now - self._start):
            self.flush(now)

    def flush(self, now: float | None = None) -> None:
        """Send what is pending now (the magic calls this when the stream pauses)."""
        if not self._pending:
            return
        self.publisher.update(partial_bundle(self.text, self.fmt))
        self.updates += 1
        self._last = self.clock() if now is None else now
        self._pending = False

    def finish(self, response: Any = None, *, interrupted: bool = False, text: str | None = None) -> None:
        """The final update: the whole answer, marks, footer and provenance. Always sent."""
        final_text = self.text if text is None else text
        data, metadata = final_bundle(
            final_text, self.fmt, response, footer=self.footer, interrupted=interrupted
        )
        if self.shown:
            self.publisher.update(data, metadata)
        else:
            self.publisher.show(data, metadata)
            self.shown = True
        self.updates += 1
        self._pending = False

    def fail(self, message: str, hint: str | None = None) -> None:
        """Replace (or create) the output with a short error message."""
        data = error_bundle(message, hint)
        if self.shown:
            self.publisher.update(data, {})
        else:
            self.publisher.show(data, {})
            self.shown = True
        self.updates += 1


class TerminalView:
    """Terminal IPython: chunks go straight to stdout as they arrive; a footer line at the end."""

    def __init__(self, fmt: str = "markdown", *, out: TextIO | None = None, footer: bool = True) -> None:
        self.fmt = fmt
        self.out = out
        self.footer = footer
        self.parts: list[str] = []
        self.updates = 0

    @property
    def stream(self) -> TextIO:
        return self.out if self.out is not None else sys.stdout

    @property
    def text(self) -> str:
        return "".join(self.parts)

    def feed(self, chunk: str) -> None:
        if not chunk:
            return
        self.parts.append(chunk)
        self.stream.write(chunk)
        self.stream.flush()
        self.updates += 1

    def flush(self, now: float | None = None) -> None:
        self.stream.flush()

    def finish(self, response: Any = None, *, interrupted: bool = False, text: str | None = None) -> None:
        """End the answer: newline, marks, error, footer. Prints the text first if nothing streamed."""
        out = self.stream
        if not self.parts:
            body = self.text if text is None else text
            if body:
                out.write(_terminal_body(body, self.fmt))
                self.parts.append(body)
        if self.parts and not self.text.endswith("\n"):
            out.write("\n")
        if interrupted:
            out.write("[interrupted]\n")
        error = getattr(response, "error", None)
        if error and not interrupted:
            out.write(f"ttt-magic: {error}\n")
        foot = footer_text(response) if self.footer and self.parts else ""  # no footer on nothing
        if foot:
            out.write(f"[{foot}]\n")
        out.flush()
        self.updates += 1

    def fail(self, message: str, hint: str | None = None) -> None:
        self.stream.write(f"ttt-magic: {message}\n" + (f"{hint}\n" if hint else ""))
        self.stream.flush()
        self.updates += 1


def _terminal_body(text: str, fmt: str) -> str:
    if fmt == "code":
        return extract_code(text)[0]
    if fmt == "json":
        value, problem = parse_json(text)
        if problem is None:
            return json.dumps(value, indent=2, ensure_ascii=False)
        return f"Invalid JSON ({problem}):\n{text}"
    return text
