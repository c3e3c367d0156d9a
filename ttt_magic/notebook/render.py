"""Showing answers: throttled streaming into one notebook output, or straight to a terminal.

Why throttled: re-sending the whole Markdown on every token costs O(n²) bytes
and trips Jupyter's iopub rate limit. ``StreamView`` shows the first text at
once, then coalesces chunks into updates of one display (same ``display_id``),
as often as ``throttle.Throttle`` allows (the rule the ask box uses too). The
final update always carries the whole answer: ``text/markdown`` (answer +
footer) and ``text/plain`` (the answer alone) with provenance under
``metadata["ttt_magic"]``.

Why the footer lives inside the Markdown (a last ``<sub>`` line) rather than in
a second output: the saved notebook then holds exactly one output per
``%%ask``, ``text/plain`` stays the bare answer for anyone reading the file,
and the figures sit next to the answer they describe. The footer is built by
one function, ``footer_text`` (plain text: the terminal, the CLI), escaped by
``footer_html`` (the notebook, the ask box). Notes about what the magic did
(a key withheld, nothing inserted) ride on the same line and are shown even
when the figures are turned off.

Everything here is called from the main thread only: ipykernel routes
output from other threads to the wrong cell.
"""

from __future__ import annotations

import html
import json
import re
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any, Protocol, TextIO

from ..models import Thinking
from .throttle import MAX_INTERVAL, MIN_INTERVAL, PACE, Throttle

__all__ = [
    "FORMATS",
    "INTERRUPTED_MARK",
    "TRUNCATED_NOTE",
    "IPythonPublisher",
    "RouteView",
    "StreamView",
    "TerminalView",
    "Thoughts",
    "data_view",
    "error_bundle",
    "error_line",
    "extract_code",
    "fenced_code",
    "final_bundle",
    "footer_html",
    "footer_parts",
    "footer_text",
    "provenance",
    "route_text",
    "thinking_tokens",
    "truncated",
    "with_thoughts",
]

FORMATS = ("markdown", "text", "code", "json", "html")
INTERRUPTED_MARK = "*[interrupted]*"
TRUNCATED_NOTE = "cut off at max_tokens"
#: ``finish_reason`` values meaning "the answer hit the token limit" (OpenAI/Ollama, Anthropic, Gemini).
TRUNCATION_REASONS = frozenset({"length", "max_tokens", "MAX_TOKENS"})
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
    flags = {
        "interrupted": meta.get("interrupted"),
        "truncated": truncated(response),
        "cached": meta.get("cached"),
        "tokens_estimated": meta.get("tokens_estimated"),
    }
    record.update({name: True for name, on in flags.items() if on})
    if meta.get("replayed"):
        record["replayed"] = meta["replayed"]  # backend, model and date of the recording
    return _jsonable(record)


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(float(value), digits)


def _jsonable(value: Any) -> Any:
    try:
        json.dumps(value)
        return value
    except (TypeError, ValueError):
        return json.loads(json.dumps(value, default=str))


def truncated(response: Any) -> bool:
    """Whether the answer was cut by ``max_tokens``.

    ``metadata["truncated"]`` when the library says so; until every backend
    sets it, a ``finish_reason`` meaning "length" counts too.
    """
    meta = getattr(response, "metadata", None) or {}
    return bool(meta.get("truncated")) or meta.get("finish_reason") in TRUNCATION_REASONS


def _duration(seconds: float) -> str:
    return f"{seconds:.1f} s" if seconds >= 0.1 else f"{seconds * 1000:.0f} ms"


def _price(cost: float) -> str:
    return f"${cost:.4f}" if cost >= 0.0001 else f"${cost:.2e}"


def footer_parts(response: Any, *, elapsed: float | None = None) -> list[str]:
    """The footer's pieces: model, backend, tokens, time, cost, then truncated, cached, replayed.

    Unknowns are left out; tokens the server did not report (counted by us)
    show as ``~N tokens``.

    ``elapsed`` stands in for the time when the answer does not carry one (the
    CLI measures its own).
    """
    if response is None:
        return []
    parts = [str(v) for v in (getattr(response, "model", None), getattr(response, "backend", None)) if v]
    meta = getattr(response, "metadata", None) or {}
    tin, tout = getattr(response, "tokens_in", None), getattr(response, "tokens_out", None)
    if meta.get("tokens_estimated") and (tin is not None or tout is not None):
        parts.append(f"~{(tin or 0) + (tout or 0)} tokens")  # counted by us: the server reported none
    elif tin is not None or tout is not None:
        parts.append(f"{tin if tin is not None else '?'} in / {tout if tout is not None else '?'} out")
    thought = thinking_tokens(response)
    if thought is not None:  # "12 in / 120 out, 800 thinking"
        if tin is not None or tout is not None:
            parts[-1] += f", {thought} thinking"
        else:
            parts.append(f"{thought} thinking")
    taken = getattr(response, "time_taken", None)
    taken = elapsed if taken is None else taken
    if taken is not None:
        parts.append(_duration(taken))
    cost = getattr(response, "cost", None)
    if cost:
        parts.append(_price(cost))
    if truncated(response):
        parts.append(TRUNCATED_NOTE)
    if meta.get("cached"):
        parts.append("cached")
    if meta.get("replayed"):
        parts += ["replayed", *_recorded_from(meta["replayed"])]
    return parts


def _recorded_from(replayed: Any) -> list[str]:
    """``recorded from llama-cpp/SmolLM2 on 2026-12-03``: where a replayed answer first came from."""
    if not isinstance(replayed, dict):
        return []
    source = "/".join(str(v) for v in (replayed.get("backend"), replayed.get("model")) if v)
    date = str(replayed.get("recorded") or "")[:10]  # the day of an ISO timestamp
    words = (["from", source] if source else []) + (["on", date] if date else [])
    return [" ".join(["recorded", *words])] if words else []


def footer_text(response: Any, *, elapsed: float | None = None, notes: Iterable[str] = ()) -> str:
    """The footer as plain text: ``model · backend · 12 in / 40 out · 1.2 s · $0.0003``.

    The one footer of every front end: the terminal view, the notebook (through
    ``footer_html``), the ask box, and the CLI. ``notes`` (what the magic did,
    such as "nothing inserted") follow the figures; with ``response=None`` only
    the notes are given.
    """
    return " · ".join([*footer_parts(response, elapsed=elapsed), *notes])


def footer_html(response: Any, *, notes: Iterable[str] = ()) -> str:
    """``footer_text``, escaped for HTML and Markdown (answers and model names are not markup)."""
    return html.escape(footer_text(response, notes=notes))


_FENCE_RE = re.compile(r"^(`{3,}|~{3,})[ \t]*([\w+#.-]*)[^\n]*\n(.*?)^\1[ \t]*$", re.M | re.S)


def fenced_code(text: str, default_language: str = "python") -> tuple[str, str] | None:
    """(code, language) of an answer's fenced blocks, joined; None when it has none.

    What ``--insert`` puts in a new cell: only code, never prose.
    """
    blocks = [(m.group(2) or "", m.group(3)) for m in _FENCE_RE.finditer(text)]
    if not blocks:
        return None
    language = next((lang for lang, _ in blocks if lang), default_language)
    return "\n\n".join(body.rstrip("\n") for _, body in blocks), language


def extract_code(text: str, default_language: str = "python") -> tuple[str, str]:
    """(code, language) for showing an answer as code: its fenced blocks, or the whole text if none."""
    found = fenced_code(text, default_language)
    return found if found is not None else (text.strip("\n"), default_language)


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


def data_view(response: Any, fmt: str = "markdown") -> tuple[str, str] | None:
    """A structured answer's parsed ``.data`` (``--schema``) as shown under it: (markup, plain text).

    A JSON block labelled with the value's type (a pydantic model's name, or
    ``dict``); None when the answer has no ``.data``, or is already shown as
    parsed JSON (``-f json``).
    """
    value = getattr(response, "data", None)
    if value is None or fmt == "json":
        return None
    dump = getattr(value, "model_dump", None) or getattr(value, "dict", None)
    plain_value = dump() if callable(dump) and not isinstance(value, dict) else value
    pretty = json.dumps(plain_value, indent=2, ensure_ascii=False, default=str)
    label = f".data ({type(value).__name__})"
    if fmt in ("text", "html"):
        markup = f"<p><sub>{html.escape(label)}</sub></p><pre>{html.escape(pretty)}</pre>"
    else:
        markup = f"<sub>{html.escape(label)}</sub>\n\n{_fence(pretty, 'json')}"
    return markup, f"{label}: {value!r}"


def error_line(message: str, hint: str | None = None) -> str:
    """A refusal or failure as one line of plain text: ``ttt-magic: message hint``."""
    return f"ttt-magic: {message}" + (f" {hint}" if hint else "")


def error_bundle(message: str, hint: str | None = None) -> Bundle:
    """A short styled message (no traceback): HTML with a red left border, plain text on one line."""
    body = f"<b>ttt-magic:</b> {html.escape(message)}"
    if hint:
        body += f'<br><span style="opacity: 0.8">{html.escape(hint)}</span>'
    return {"text/html": f'<div style="{ERROR_STYLE}">{body}</div>', "text/plain": error_line(message, hint)}


def final_bundle(
    text: str,
    fmt: str = "markdown",
    response: Any = None,
    *,
    footer: bool = True,
    interrupted: bool = False,
    notes: Iterable[str] = (),
) -> tuple[Bundle, dict[str, Any]]:
    """The one output a finished answer leaves in the notebook, and its metadata.

    ``footer=False`` drops the figures; ``notes`` are shown either way.
    """
    error = getattr(response, "error", None)
    if interrupted:
        error = None  # the mark says it; "Interrupted: ..." as an error box would repeat it
    foot = footer_html(response if footer else None, notes=notes)
    metadata = {"ttt_magic": {**provenance(response), "format": fmt}}

    if not text and error:
        data = error_bundle(error)
        if foot:
            data["text/html"] += f"<sub>{foot}</sub>"
        return data, metadata

    tail_md: list[str] = []
    tail_plain: list[str] = []
    parsed = None if interrupted else data_view(response, fmt)
    if parsed is not None:  # --schema: the parsed value, under the answer it was read from
        tail_md.append(parsed[0])
        tail_plain.append(parsed[1])
    if interrupted:
        tail_md.append(INTERRUPTED_MARK)
        tail_plain.append("[interrupted]")
    if error:
        box = error_bundle(error)
        tail_md.append(box["text/html"])
        tail_plain.append(box["text/plain"])
    if foot:
        tail_md.append(f"<sub>{foot}</sub>")

    head, plain, extra = _formatted(text, fmt, interrupted)
    data: Bundle
    if fmt in ("text", "html"):
        data = {"text/html": "\n".join([head, *(_md_to_html(t) for t in tail_md)])}
    else:
        data = {"text/markdown": "\n\n".join([head, *tail_md]) if head else "\n\n".join(tail_md)}
        data.update(extra)
    data["text/plain"] = "\n".join(piece for piece in [plain, *tail_plain] if piece)
    return data, metadata


def _formatted(text: str, fmt: str, interrupted: bool) -> tuple[str, str, Bundle]:
    """(head shown, plain text, extra mimetypes) of an answer in one format."""
    if fmt == "code":
        code, language = extract_code(text)
        return _fence(code, language), code, {}
    if fmt == "json":
        value, problem = parse_json(text)
        if problem is not None:
            return f"**Invalid JSON** ({html.escape(problem)}):\n\n" + _fence(text, "text"), text, {}
        pretty = json.dumps(value, indent=2, ensure_ascii=False)
        return _fence(pretty, "json"), pretty, ({} if interrupted else {"application/json": value})
    if fmt == "text":
        return f'<pre style="white-space: pre-wrap">{html.escape(text)}</pre>', text, {}
    return text, text, {}  # markdown, html


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


# --------------------------------------------------------------------------- thinking (issue #16)


def thinking_tokens(response: Any) -> int | None:
    """Tokens spent thinking, when known (OpenAI ``reasoning_tokens``, Gemini ``thinking_tokens``)."""
    meta = getattr(response, "metadata", None) or {}
    for key in ("reasoning_tokens", "thinking_tokens"):
        if isinstance(meta.get(key), int) and not isinstance(meta.get(key), bool):
            return meta[key]
    return None


def _thinking_time(seconds: float) -> str:
    if seconds < 0.1:
        return f"{seconds * 1000:.0f} ms"
    return f"{seconds:.1f} s" if seconds < 10 else f"{seconds:.0f} s"


THINKING_STYLE = "opacity: 0.75; border-left: 3px solid rgba(128, 128, 128, 0.4); padding-left: 10px"
_BOLD = re.compile(r"\*\*(\S(?:.*?\S)?)\*\*")


class Thoughts:
    """The model's thinking as an answer shows it: how much, for how long, and its collapsed block.

    A view adds the ``Thinking`` pieces as they stream and calls ``end`` when
    the answer starts. In the notebook it is a ``<details>`` block above the
    answer: "Thinking… (1,234 characters)" while the model thinks, then
    "Thinking (12 s, 1,234 characters)", collapsed. The body is escaped text
    in one raw HTML block (line breaks as ``<br>``, ``**bold**`` kept), so
    nothing the model writes while thinking can open a code fence or close
    the block and swallow the answer.
    """

    def __init__(self, started: float | None = None) -> None:
        self.started = started  # None: not timed (a whole reasoning, not streamed)
        self.ended: float | None = None
        self.parts: list[str] = []
        self.size = 0

    @classmethod
    def whole(cls, text: str) -> Thoughts:
        """A reasoning that arrived with the answer (not streamed): its size, no time."""
        thoughts = cls()
        thoughts.add(text)
        thoughts.ended = 0.0
        return thoughts

    @property
    def text(self) -> str:
        return "".join(self.parts)

    @property
    def thinking(self) -> bool:
        """Whether the model is still thinking (some thinking came, no answer yet)."""
        return bool(self.size) and self.ended is None

    def add(self, text: str) -> None:
        if text:
            self.parts.append(text)
            self.size += len(text)

    def end(self, now: float) -> None:
        """The answer started (or the stream ended): the thinking time stops here."""
        if self.ended is None:
            self.ended = now

    def seconds(self, now: float | None = None) -> float | None:
        """Seconds spent thinking (until ``now`` while it goes on); None when not timed."""
        if self.started is None:
            return None
        stop = self.ended if self.ended is not None else now
        return None if stop is None else max(0.0, stop - self.started)

    def figures(self) -> str:
        """``12 s, 1,234 characters`` (without the time when it is not known)."""
        count = f"{self.size:,} character{'' if self.size == 1 else 's'}"
        seconds = self.seconds()
        return count if seconds is None else f"{_thinking_time(seconds)}, {count}"

    def summary(self) -> str:
        if self.thinking:
            return f"Thinking… ({self.size:,} character{'' if self.size == 1 else 's'})"
        return f"Thinking ({self.figures()})"

    def details(self) -> str:
        """The collapsed block: one raw HTML block (no blank line inside), so Markdown leaves it whole."""
        body = html.escape(self.text.strip("\n"), quote=False)
        body = _BOLD.sub(r"<b>\1</b>", body).replace("\n", "<br>\n")
        summary = html.escape(self.summary(), quote=False)
        return (
            f"<details><summary>{summary}</summary>\n"
            f'<div class="ttt-thinking" style="{THINKING_STYLE}">\n{body}\n</div>\n</details>'
        )

    def status(self, now: float) -> str:
        """The terminal's one line while the model thinks: ``thinking… 12 s``."""
        return f"thinking… {int(self.seconds(now) or 0)} s"


def with_thoughts(data: Bundle, thoughts: Thoughts | None) -> Bundle:
    """``data`` with the thinking's collapsed block above the answer (``text/plain`` stays the answer)."""
    if thoughts is None or not thoughts.size:
        return data
    block = thoughts.details()
    out = dict(data)
    if "text/markdown" in out:
        answer = out["text/markdown"]
        out["text/markdown"] = f"{block}\n\n{answer}" if answer else block
    elif "text/html" in out:
        out["text/html"] = block + out["text/html"]
    else:  # a plain-text partial (-f text): HTML, to hold the block
        shown = out.get("text/plain", "")
        pre = f'<pre style="white-space: pre-wrap">{html.escape(shown)}</pre>' if shown else ""
        out = {"text/html": block + pre}
    return out


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
        self.footer = footer
        self.throttle = Throttle(clock=clock, min_interval=min_interval, max_interval=max_interval, pace=pace)
        self.parts: list[str] = []
        self.size = 0
        self.shown = False
        self.updates = 0  # display messages sent (show + updates), for tests and benchmarks
        self._pending = False
        #: Whether the model's thinking is shown (``--no-thinking``: False); ``thoughts`` is what came.
        self.show_thinking = True
        self.thoughts: Thoughts | None = None
        self._started = self.throttle.clock()

    @property
    def text(self) -> str:
        return "".join(self.parts)

    def interval(self, size: int, elapsed: float) -> float:
        """Seconds between updates for ``size`` characters after ``elapsed`` seconds (``Throttle``)."""
        return self.throttle.interval(size, elapsed)

    def feed(self, chunk: str | Thinking) -> None:
        """Add a chunk (answer text, or a ``Thinking`` piece); send an update if one is due.

        An empty chunk (a heartbeat) only flushes. The first answer text after
        thinking is sent at once: the block folds to its final summary.
        """
        now = self.throttle.clock()
        begins = False
        if isinstance(chunk, Thinking):
            if self.show_thinking and chunk.text:
                self._thinking(now).add(chunk.text)
                self._pending = True
            chunk = ""
        elif chunk and self.thoughts is not None and self.thoughts.thinking:
            self.thoughts.end(now)
            begins = True
        if chunk:
            self.parts.append(chunk)
            self.size += len(chunk)
            self._pending = True
        if not self.shown and self._pending:
            self._send(self.publisher.show, self._partial(), now)
            self.shown = True
        elif self._pending and (begins or self.throttle.due(self._drawn(), now)):
            self.flush(now)

    def flush(self, now: float | None = None) -> None:
        """Send what is pending now (the magic calls this when the stream pauses)."""
        if self._pending:
            self._send(self.publisher.update, self._partial(), now)

    def _thinking(self, now: float) -> Thoughts:
        """The thinking so far (begun with the view; over at once if the answer already started)."""
        if self.thoughts is None:
            self.thoughts = Thoughts(self._started)
            if self.parts:
                self.thoughts.end(now)
        return self.thoughts

    def _drawn(self) -> int:
        """Characters each redraw sends (thinking and answer): what the throttle paces."""
        return self.size + (self.thoughts.size if self.thoughts is not None else 0)

    def _partial(self) -> Bundle:
        if self.thoughts is not None and not self.parts:  # thinking, no answer yet
            return with_thoughts({"text/html" if self.fmt == "html" else "text/markdown": ""}, self.thoughts)
        return with_thoughts(partial_bundle(self.text, self.fmt), self.thoughts)

    def _send(self, send: Callable[[Bundle], None], data: Bundle, now: float | None) -> None:
        send(data)
        self.updates += 1
        self.throttle.mark(now)
        self._pending = False

    def finish(
        self,
        response: Any = None,
        *,
        interrupted: bool = False,
        text: str | None = None,
        notes: Iterable[str] = (),
    ) -> None:
        """The final update: the whole answer, marks, footer, notes and provenance. Always sent."""
        final_text = self.text if text is None else text
        data, metadata = final_bundle(
            final_text, self.fmt, response, footer=self.footer, interrupted=interrupted, notes=notes
        )
        data = with_thoughts(data, self._final_thoughts(response))
        if self.shown:
            self.publisher.update(data, metadata)
        else:
            self.publisher.show(data, metadata)
            self.shown = True
        self.updates += 1
        self._pending = False

    def _final_thoughts(self, response: Any) -> Thoughts | None:
        """What the final output shows of the thinking: what streamed, else the answer's ``.reasoning``."""
        if not self.show_thinking:
            return None
        if self.thoughts is not None:
            self.thoughts.end(self.throttle.clock())
            return self.thoughts
        reasoning = getattr(response, "reasoning", None)
        return Thoughts.whole(reasoning) if isinstance(reasoning, str) and reasoning.strip() else None


class TerminalView:
    """Terminal IPython: chunks go straight to stdout as they arrive; a footer line at the end.

    While the model thinks, one status line (``thinking… 12 s``) is rewritten
    in place (on a terminal; not when stdout is a file or a pipe); when the
    answer starts it becomes ``[thinking: 12 s, 1,234 characters]``.
    """

    def __init__(
        self,
        fmt: str = "markdown",
        *,
        out: TextIO | None = None,
        footer: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.fmt = fmt
        self.out = out
        self.footer = footer
        self.parts: list[str] = []
        self.updates = 0
        self.clock = clock
        self.show_thinking = True
        self.thoughts: Thoughts | None = None
        self._status = ""
        self._started = clock()

    @property
    def stream(self) -> TextIO:
        return self.out if self.out is not None else sys.stdout

    @property
    def text(self) -> str:
        return "".join(self.parts)

    def feed(self, chunk: str | Thinking) -> None:
        if isinstance(chunk, Thinking):
            if self.show_thinking and chunk.text:
                if self.thoughts is None:
                    self.thoughts = Thoughts(self._started)
                    if self.parts:  # thinking after the answer began: no status in mid-answer
                        self.thoughts.end(self.clock())
                self.thoughts.add(chunk.text)
                self._show_status()
            return
        if not chunk:
            if self.thoughts is not None and self.thoughts.thinking:
                self._show_status()  # a heartbeat: the seconds go on
            return
        self._end_thinking()
        self.parts.append(chunk)
        self.stream.write(chunk)
        self.stream.flush()
        self.updates += 1

    def _show_status(self) -> None:
        """Rewrite the status line when its text changes (only on a terminal)."""
        isatty = getattr(self.stream, "isatty", None)
        if self.thoughts is None or not self.thoughts.thinking or not (isatty and isatty()):
            return
        line = self.thoughts.status(self.clock())
        if line != self._status:
            pad = " " * max(0, len(self._status) - len(line))
            self.stream.write(f"\r{line}{pad}")
            self.stream.flush()
            self._status = line

    def _end_thinking(self) -> None:
        """The thinking is over: the status line becomes ``[thinking: 12 s, 1,234 characters]``."""
        if self.thoughts is None or not self.thoughts.thinking:
            return
        self.thoughts.end(self.clock())
        if self._status:
            self.stream.write("\r" + " " * len(self._status) + "\r")
            self._status = ""
        self.stream.write(f"[thinking: {self.thoughts.figures()}]\n")

    def flush(self, now: float | None = None) -> None:
        self.stream.flush()

    def finish(
        self,
        response: Any = None,
        *,
        interrupted: bool = False,
        text: str | None = None,
        notes: Iterable[str] = (),
    ) -> None:
        """End the answer: newline, marks, error, footer. Prints the text first if nothing streamed."""
        out = self.stream
        self._end_thinking()
        reasoning = getattr(response, "reasoning", None)
        if self.thoughts is None and self.show_thinking and isinstance(reasoning, str) and reasoning.strip():
            out.write(f"[thinking: {Thoughts.whole(reasoning).figures()}]\n")  # not streamed: its size
        if not self.parts:
            body = self.text if text is None else text
            if body:
                out.write(_terminal_body(body, self.fmt))
                self.parts.append(body)
        if self.parts and not self.text.endswith("\n"):
            out.write("\n")
        parsed = None if interrupted else data_view(response, self.fmt)
        if parsed is not None:  # --schema: the parsed value under the answer
            out.write(parsed[1] + "\n")
        if interrupted:
            out.write("[interrupted]\n")
        error = getattr(response, "error", None)
        if error and not interrupted:
            out.write(error_line(error) + "\n")
        figures = response if self.footer and self.parts else None  # no figures under nothing
        foot = footer_text(figures, notes=notes)
        if foot:
            out.write(f"[{foot}]\n")
        out.flush()
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


# --------------------------------------------------------------------------- --explain


def route_text(route: Any) -> str:
    """The explanation of a route: a ``Route`` explains itself; the JSON record an answer keeps is read.

    The record (``response.metadata["route"]``) is what a non-streamed answer
    carries (``Route.to_dict()``); ``Route.from_dict`` makes it a ``Route`` again,
    so both are shown by the one formatter, ``Route.explain()``.
    """
    if route is None:
        return "Route: not recorded for this answer."
    if not hasattr(route, "explain"):
        from ..router import Route

        route = Route.from_dict(route)
    return route.explain()


class RouteView:
    """``--explain``: the route of the answer being given, above it, brought up to date as it runs.

    In a notebook (a ``publisher``) one display is replaced; in a terminal
    (``publisher=None``) the first explanation is printed and later calls print
    only the lines added since (the attempts).
    """

    def __init__(self, publisher: Publisher | None = None, *, out: TextIO | None = None) -> None:
        self.publisher = publisher
        self.out = out
        self.shown = ""

    def show(self, route: Any) -> None:
        text = route_text(route)
        if text == self.shown:
            return
        if self.publisher is not None:
            send = self.publisher.update if self.shown else self.publisher.show
            send({"text/markdown": f"```text\n{text}\n```", "text/plain": text})
        else:
            known = self.shown.splitlines()
            lines = text.splitlines()
            new = lines[len(known) :] if lines[: len(known)] == known else lines
            stream = self.out if self.out is not None else sys.stdout
            stream.write("".join(f"{line}\n" for line in new))
            stream.flush()
        self.shown = text
