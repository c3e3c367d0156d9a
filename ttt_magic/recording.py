"""Recorded answers, for re-running a notebook offline: ``record: PATH`` and ``replay: PATH``.

Recording writes every finished answer to a small JSON Lines file meant to be
committed beside the notebook: one object a line, with the request's hashed
key, the readable prompt, system prompt and history, the answer, and where it
came from (backend, model, tokens, finish reason, date). Nothing else of the
request is written (no options, headers or configuration), and any configured
API key that would still appear is replaced before the line is written.

Replaying answers every recorded ask from that file, streamed at a readable
pace (``replay_speed`` characters a second, at most two seconds an answer;
``0`` is instant), without touching the backend: no network, no key. An ask
that is not in the file fails with ``ProviderError(kind="not_recorded")``
(``replay_mode: strict``, the default) or goes to the backend
(``replay_mode: fallthrough``). The answer's ``metadata["replayed"]`` says
what was recorded: ``{"backend", "model", "recorded"}``.

A recorded answer is found by the exact key first (same backend and model as
when it was recorded); failing that, by the conversation and parameters alone,
so a notebook recorded against one server replays where another backend (or
none) is configured.

The interceptor is ``chain`` order 25: outside the cache (30), so a cache hit
is recorded too, and a replayed answer never reaches the cache.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import threading
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .cache import _iso, _jsonable, _warn_once, setting_path, split_chunks
from .chain import Handler, Item, chain, keeping
from .errors import ProviderError
from .models import StreamEnd, text_of
from .request import Resolved

__all__ = [
    "ORDER",
    "Book",
    "ensure_installed",
    "entry_for",
    "find",
    "intercept",
    "load",
    "match_key",
    "replaying",
    "status",
]

ORDER = 25
NAME = "recording"
#: The most a replayed answer takes, whatever its length (seconds).
MAX_REPLAY_SECONDS = 2.0
DEFAULT_SPEED = 200.0
REDACTED = "[redacted]"


# --------------------------------------------------------------------------- keys


def match_key(call: Resolved) -> str:
    """A digest of everything in the key but the backend and model (the conversation and parameters)."""
    material = call.key_material()
    material.pop("backend", None)
    material.pop("model", None)
    text = json.dumps(material, sort_keys=True, default=repr, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# --------------------------------------------------------------------------- the file


@dataclass
class Book:
    """A recording as read from disk: entries by key, and by conversation."""

    path: Path
    stamp: Any = None
    entries: dict[str, dict[str, Any]] = field(default_factory=dict)
    by_match: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    missing: bool = False
    bad_lines: int = 0

    def add(self, entry: dict[str, Any]) -> None:
        key = entry.get("key")
        if not isinstance(key, str):
            self.bad_lines += 1
            return
        old = self.entries.get(key)
        self.entries[key] = entry
        match = entry.get("match")
        if isinstance(match, str):
            bucket = self.by_match.setdefault(match, [])
            if old is not None and old in bucket:
                bucket.remove(old)
            bucket.append(entry)


_books: dict[str, Book] = {}
_locks: dict[str, threading.Lock] = {}
_books_lock = threading.Lock()


def _stamp(path: Path) -> Any:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


def _lock_for(path: Path) -> threading.Lock:
    with _books_lock:
        return _locks.setdefault(str(path), threading.Lock())


def load(path: Path | str) -> Book:
    """The recording at ``path`` (read again only when the file changed; a missing file is empty)."""
    path = Path(path)
    stamp = _stamp(path)
    book = _books.get(str(path))
    if book is not None and book.stamp == stamp:
        return book
    book = Book(path, stamp, missing=stamp is None)
    if stamp is not None:
        try:
            with open(path, encoding="utf-8") as handle:
                for line in handle:
                    if not line.strip():
                        continue
                    try:
                        entry = json.loads(line)
                    except ValueError:
                        book.bad_lines += 1
                        continue
                    if isinstance(entry, dict) and isinstance(entry.get("answer"), str):
                        book.add(entry)
                    else:
                        book.bad_lines += 1
        except (OSError, UnicodeDecodeError) as exc:
            _warn_once(path, "unreadable", f"the recording {path} cannot be read ({exc}).")
            book.missing = True
        if book.bad_lines:
            _warn_once(
                path,
                f"bad-lines-{stamp}",
                f"{book.bad_lines} line(s) of the recording {path} are not recorded answers and are ignored.",
            )
    _books[str(path)] = book
    return book


def find(book: Book, call: Resolved) -> dict[str, Any] | None:
    """The recorded answer to ``call``: same key, else same conversation (same model, backend, or latest)."""
    entry = book.entries.get(call.key())
    if entry is not None:
        return entry
    candidates = book.by_match.get(match_key(call))
    if not candidates:
        return None
    for same in (
        lambda e: e.get("asked_model", e.get("model")) == call.model,
        lambda e: e.get("backend") == call.backend,
    ):
        chosen = [e for e in candidates if same(e)]
        if chosen:
            return chosen[-1]
    return candidates[-1]


def entry_for(
    call: Resolved, parts: Sequence[str], end: StreamEnd, recorded: float | None = None
) -> dict[str, Any]:
    """One line of a recording: the hashed key, readable request text, the answer and its provenance."""
    entry: dict[str, Any] = {"key": call.key(), "match": match_key(call), "prompt": call.text}
    if call.system:
        entry["system"] = call.system
    if call.history:
        entry["history"] = [
            {"role": m.get("role"), "content": text_of(m.get("content"))} for m in call.history
        ]
    if call.images:
        entry["images"] = len(call.images)
    settings = {"temperature": call.temperature, "max_tokens": call.max_tokens, **call.params}
    settings = {k: v for k, v in settings.items() if v is not None and _jsonable(v)}
    if settings:
        entry["settings"] = settings
    entry["answer"] = "".join(parts)
    entry["backend"] = call.backend
    entry["model"] = end.model or call.model
    if call.model and call.model != entry["model"]:
        entry["asked_model"] = call.model  # what the request named (e.g. an alias the server expanded)
    entry["tokens_in"] = end.tokens_in
    entry["tokens_out"] = end.tokens_out
    entry["finish_reason"] = end.finish_reason
    if end.cost is not None:
        entry["cost"] = end.cost
    if end.data is not None and _jsonable(end.data):
        entry["data"] = end.data
    if end.reasoning:
        entry["reasoning"] = end.reasoning
    entry["recorded"] = _iso(time.time() if recorded is None else recorded)
    return entry


def _secrets(call: Resolved | None) -> list[str]:
    """Every configured key's value (long enough to be one), to keep them out of the file."""
    from .config import SCHEMA, get_config
    from .secrets import Secret

    found: set[str] = set()

    def walk(value: Any, name: str = "") -> None:
        if isinstance(value, Secret):
            found.add(value.reveal())
        elif isinstance(value, str) and name.lower().endswith(("key", "token", "secret", "password")):
            found.add(value)
        elif isinstance(value, dict):
            for key, inner in value.items():
                walk(inner, str(key))

    try:
        settings = get_config()
        for name, setting in SCHEMA.items():
            if setting.secret:
                walk(settings.values.get(name), name)
        walk(settings.values.get("backends") or {})
    except Exception:  # a broken config file: the call's own configuration still counts
        pass
    if call is not None:
        walk(call.config)
    return sorted((s for s in found if len(s) >= 8), key=len, reverse=True)


def _line(entry: dict[str, Any], secrets: Sequence[str]) -> str:
    line = json.dumps(entry, ensure_ascii=False, separators=(", ", ": "))
    for secret in secrets:
        if secret in line:
            line = line.replace(secret, REDACTED)
    return line


def write(path: Path | str, entry: dict[str, Any], call: Resolved | None = None) -> None:
    """Add ``entry`` to the recording (replacing an earlier answer to the same key), atomically."""
    path = Path(path)
    secrets = _secrets(call)
    with _lock_for(path):
        book = load(path)
        entries = dict(book.entries)
        entries[entry["key"]] = entry
        path.parent.mkdir(parents=True, exist_ok=True)
        import tempfile

        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
                for item in entries.values():
                    handle.write(_line(item, secrets) + "\n")
            if book.stamp is not None:
                try:
                    os.chmod(tmp, os.stat(path).st_mode & 0o777)
                except OSError:
                    pass
            else:
                os.chmod(tmp, 0o644)
            os.replace(tmp, path)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
        _books.pop(str(path), None)


def _record(path: Path, call: Resolved, parts: Sequence[str], end: StreamEnd) -> None:
    try:
        write(path, entry_for(call, parts, end), call)
    except OSError as exc:
        _warn_once(path, "unwritable", f"answers cannot be recorded to {path} ({exc.strerror or exc}).")


# --------------------------------------------------------------------------- the interceptor


def _speed(config: dict[str, Any]) -> float:
    try:
        speed = float(config.get("replay_speed", DEFAULT_SPEED))
    except (TypeError, ValueError):
        return DEFAULT_SPEED
    return max(0.0, speed)


def _not_recorded(call: Resolved, path: Path, book: Book) -> ProviderError:
    prompt = " ".join(call.text.split())
    shown = prompt if len(prompt) <= 60 else prompt[:60] + "…"
    where = f"the recording {path} does not exist" if book.missing else f"it is not in {path}"
    return ProviderError(
        f"No recorded answer for {shown!r}: {where}.",
        hint=(
            f"Record it by running this ask once against a real backend with `record: {path}` "
            f"(or `%ttt_record {path}`), or set `replay_mode: fallthrough` to let unrecorded asks "
            "reach the backend."
        ),
        retryable=False,
        kind="not_recorded",
    )


def replayed_end(entry: dict[str, Any]) -> StreamEnd:
    """The final item of a replayed answer; its cost is 0 (nothing is spent), the original is in metadata."""
    provenance = {
        "backend": entry.get("backend"),
        "model": entry.get("model"),
        "recorded": entry.get("recorded"),
    }
    if entry.get("cost") is not None:
        provenance["cost"] = entry["cost"]
    return StreamEnd(
        model=entry.get("model"),
        tokens_in=entry.get("tokens_in"),
        tokens_out=entry.get("tokens_out"),
        finish_reason=entry.get("finish_reason"),
        metadata={"replayed": provenance},
        cost=0.0,
        data=entry.get("data"),
        reasoning=entry.get("reasoning"),
    )


async def play(entry: dict[str, Any], stream: bool, speed: float) -> AsyncIterator[Item]:
    """A recorded answer as items: paced word chunks for a stream, the whole text for ``ask``."""
    text = entry.get("answer") or ""
    if text:
        if not stream:
            yield text
        else:
            pieces = split_chunks(text)
            delay = min(len(text) / speed, MAX_REPLAY_SECONDS) / len(pieces) if speed > 0 else 0.0
            for i, piece in enumerate(pieces):
                yield piece
                if delay and i < len(pieces) - 1:
                    await asyncio.sleep(delay)
    yield replayed_end(entry)


async def intercept(call: Resolved, proceed: Handler) -> AsyncIterator[Item]:
    """Answer from the replay file, or pass the call on (and record its answer when recording)."""
    config = call.config
    replay = config.get("replay")
    record = config.get("record")
    if not replay and not record:
        async for item in proceed(call):
            yield item
        return
    record_path = setting_path("record", record) if record else None
    if replay:
        replay_path = setting_path("replay", replay)
        book = load(replay_path)
        entry = find(book, call)
        if entry is not None:
            async for item in play(entry, call.stream, _speed(config)):
                yield item
            if record_path is not None and record_path != replay_path:
                copy = {**entry, "key": call.key(), "match": match_key(call)}
                try:
                    write(record_path, copy, call)
                except OSError as exc:
                    _warn_once(
                        record_path, "unwritable", f"answers cannot be recorded to {record_path} ({exc})."
                    )
            return
        if config.get("replay_mode", "strict") != "fallthrough":
            raise _not_recorded(call, replay_path, book)
    if record_path is None:
        async for item in proceed(call):
            yield item
        return

    def store(parts: list[str], end: StreamEnd) -> None:
        if not end.metadata.get("replayed"):
            _record(record_path, call, parts, end)

    async for item in keeping(proceed(call), store):
        yield item


def replaying(settings: Any) -> bool:
    """True when answers may come from a recording.

    The router should then route, and run the chain, even when the chosen
    backend is unavailable: a replay answers before the backend is used, and
    only an ask that is not recorded (with ``replay_mode: fallthrough``) needs it.
    """
    return bool(settings.get("replay"))


def ensure_installed() -> None:
    """Put record/replay in the chain (order 25); idempotent."""
    if NAME not in chain:
        chain.add(NAME, intercept, order=ORDER)


# --------------------------------------------------------------------------- status


def status(settings: Any = None) -> dict[str, Any]:
    """Where answers are recorded to and replayed from, and how many each file holds."""
    from .config import get_config

    settings = settings or get_config()
    out: dict[str, Any] = {
        "record": None,
        "replay": None,
        "replay_mode": settings.get("replay_mode", "strict"),
    }
    for name in ("record", "replay"):
        value = settings.get(name)
        if value:
            path = setting_path(name, value)
            book = load(path)
            out[name] = {"path": str(path), "entries": len(book.entries), "exists": not book.missing}
    out["replay_speed"] = settings.get("replay_speed", DEFAULT_SPEED)
    return out


def report(info: dict[str, Any]) -> str:
    from .config import short_path

    lines = []
    record = info.get("record")
    if record:
        lines.append(
            f"Recording answers to {short_path(record['path'])} ({record['entries']} recorded so far)."
        )
    else:
        lines.append("Not recording (%ttt_record PATH, or record: PATH in ttt.yaml).")
    replay = info.get("replay")
    if replay:
        missing = "" if replay["exists"] else " - the file does not exist yet"
        lines.append(
            f"Replaying answers from {short_path(replay['path'])} ({replay['entries']} answers, "
            f"mode {info['replay_mode']}, {info['replay_speed']:g} chars/s){missing}."
        )
    else:
        lines.append("Not replaying (%ttt_replay PATH, or replay: PATH in ttt.yaml).")
    return "\n".join(lines)


ensure_installed()
