"""Reasoning that arrives as text: ``<think>...</think>`` at the start of an answer.

Servers without a reasoning parser (llama.cpp, vLLM, Ollama without ``think``)
put a reasoning model's thinking into the content itself, as
``<think>...</think>`` (or ``<thinking>...</thinking>``) before the answer.
``ThinkSplitter`` takes the content chunk by chunk, as it streams, and
separates the two, even when a tag is cut across chunks: nothing that might be
the start of a tag is released as answer text until it is known not to be.

Only a block at the very start counts (leading white space allowed): a
``<think>`` later in an answer is the answer's own text.
"""

from __future__ import annotations

from collections.abc import Iterable

from .models import Thinking

__all__ = ["OPEN_TAGS", "ThinkSplitter", "split"]

OPEN_TAGS = ("<think>", "<thinking>")
_CLOSE = {"<think>": "</think>", "<thinking>": "</thinking>"}


class ThinkSplitter:
    """Feed content chunks; get back answer text (``str``) and thinking (``Thinking``) in order."""

    def __init__(self) -> None:
        self._state = "start"  # start -> thinking -> after (the close tag) -> answer
        self._held = ""
        self._close = ""
        self.thinking_chars = 0

    def feed(self, chunk: str) -> list[str | Thinking]:
        if self._state == "answer":
            return [chunk] if chunk else []
        if self._state == "after":  # the line breaks that follow </think> are not the answer's
            chunk = chunk.lstrip("\n")
            if not chunk:
                return []
            self._state = "answer"
            return [chunk]
        self._held += chunk
        out: list[str | Thinking] = []
        if self._state == "start":
            stripped = self._held.lstrip()
            if not stripped:
                return out
            tag = next((t for t in OPEN_TAGS if stripped.startswith(t)), None)
            if tag is None:
                if any(t.startswith(stripped) for t in OPEN_TAGS):
                    return out  # could still become a tag: hold it
                self._state = "answer"
                text, self._held = self._held, ""
                return [text]
            self._state = "thinking"
            self._close = _CLOSE[tag]
            self._held = stripped[len(tag) :]
        if self._state == "thinking":
            end = self._held.find(self._close)
            if end < 0:
                keep = _partial_suffix(self._held, self._close)
                thought = self._held[: len(self._held) - keep]
                self._held = self._held[len(self._held) - keep :]
                if thought:
                    self.thinking_chars += len(thought)
                    out.append(Thinking(thought))
                return out
            thought, rest = self._held[:end], self._held[end + len(self._close) :]
            if thought:
                self.thinking_chars += len(thought)
                out.append(Thinking(thought))
            self._held = ""
            self._state = "after"
            out.extend(self.feed(rest))
        return out

    def flush(self) -> list[str | Thinking]:
        """What is still held when the content ends (an unclosed block is thinking)."""
        held, self._held = self._held, ""
        if not held:
            return []
        if self._state == "thinking":
            self.thinking_chars += len(held)
            return [Thinking(held)]
        return [held]


def _partial_suffix(text: str, tag: str) -> int:
    """How many characters at the end of ``text`` could be the start of ``tag``."""
    for size in range(min(len(tag) - 1, len(text)), 0, -1):
        if tag.startswith(text[-size:]):
            return size
    return 0


def split(chunks: Iterable[str]) -> tuple[str, str]:
    """(answer, thinking) of a whole content given in chunks."""
    splitter = ThinkSplitter()
    answer: list[str] = []
    thinking: list[str] = []
    for chunk in chunks:
        for part in splitter.feed(chunk):
            (thinking if isinstance(part, Thinking) else answer).append(str(part))
    for part in splitter.flush():
        (thinking if isinstance(part, Thinking) else answer).append(str(part))
    return "".join(answer), "".join(thinking)
