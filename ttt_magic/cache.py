"""The response cache: an identical request is answered from a local SQLite file.

Off by default. ``cache: true`` (or the path of a file) in the configuration,
``configure(cache=True)``, or ``ask(..., cache=True)`` for one call turn it on;
``cache=False`` on a call opts that call out. The key is ``Resolved.key()``:
backend, provider model, every message (system and history included),
temperature, max_tokens, schema, sampling parameters and provider options, so
changing any one of them is a miss.

A hit gives back the original answer (text, model, tokens, finish reason,
structured data, reasoning, and the cost as originally spent) with
``metadata["cached"] = True``; usage accounting counts it as a call with no new
cost. A streamed hit is replayed in the original chunks (or word by word) with
no pause. Only finished answers are stored: a failure or an interruption
leaves nothing behind.

The file (``~/.cache/ttt-magic/responses.sqlite3``, honouring
``XDG_CACHE_HOME``) may be shared by several kernels at once: WAL journal,
one-statement transactions and a busy timeout. A file that cannot be used
(corrupt, unreadable, locked for too long) is reported once on the
``ttt_magic.cache`` logger and the answer goes on uncached; the cache never
breaks an ask.

Importing this module installs the interceptor (``chain`` order 30) and the
record/replay one (``ttt_magic.recording``, order 25); both pass straight
through (one dictionary lookup) when their settings are off. ``sqlite3`` is
imported on the first cached call only.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import threading
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .chain import Handler, Item, chain, keeping
from .errors import UsageError
from .models import StreamEnd
from .request import Resolved

__all__ = [
    "ORDER",
    "ResponseCache",
    "cache_for",
    "clear",
    "cli_main",
    "default_path",
    "ensure_installed",
    "intercept",
    "needed",
    "parse_age",
    "report",
    "stats",
]

#: Position in the interception chain: inside usage accounting (0) and record/replay (25).
ORDER = 30
NAME = "cache"
FILE_NAME = "responses.sqlite3"
#: ``PRAGMA user_version`` of the file layout below; another value is a file we do not know.
LAYOUT = 1
#: How long one statement waits for another process's write before giving up (seconds).
BUSY_TIMEOUT = 1.5
#: A streamed hit lets other tasks run after this many chunks (it never sleeps).
YIELD_EVERY = 64

log = logging.getLogger("ttt_magic.cache")

_DDL = """
CREATE TABLE IF NOT EXISTS answers (
    key      TEXT PRIMARY KEY,
    created  REAL NOT NULL,
    backend  TEXT NOT NULL,
    model    TEXT,
    text     TEXT NOT NULL,
    chunks   TEXT,
    end      TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS answers_created ON answers (created);
"""


# --------------------------------------------------------------------------- where


def default_path() -> Path:
    """``$XDG_CACHE_HOME/ttt-magic/responses.sqlite3`` (``~/.cache/...`` when unset)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "ttt-magic" / FILE_NAME


def setting_path(name: str, value: Any) -> Path:
    """The absolute path a path setting names.

    A relative path written in a configuration file is relative to that
    file's folder (``record: answers.jsonl`` in the ``ttt.yaml`` beside a
    notebook means beside the notebook); anywhere else, to the working folder.
    """
    path = Path(os.path.expanduser(os.fspath(value)))
    if path.is_absolute():
        return path
    try:
        from .config import DEFAULT_SOURCE, PROGRAMMATIC_SOURCE, get_config

        settings = get_config()
        source = settings.source(name)
        if (
            settings.get(name) == value
            and source not in (DEFAULT_SOURCE, PROGRAMMATIC_SOURCE)
            and not source.startswith("env ")
        ):
            return Path(os.path.abspath(Path(source).parent / path))
    except Exception:  # a broken config file surfaces elsewhere; the working folder will do
        pass
    return Path(os.path.abspath(path))


def path_for(setting: Any) -> Path | None:
    """The cache file a value of the ``cache`` setting means, or None when it is off."""
    if setting is True:
        return default_path()
    if isinstance(setting, (str, os.PathLike)) and os.fspath(setting):
        return setting_path("cache", setting)
    return None


def wanted(call: Resolved) -> Path | None:
    """The cache file for this attempt, or None: the call's switch, else the configuration."""
    if call.cache is False:
        return None
    setting = call.config.get("cache")
    if call.cache is True and not isinstance(setting, (str, os.PathLike)):
        return default_path()
    return path_for(setting)


def needed(settings: Any, cache: bool | None = None) -> bool:
    """True when cache, record or replay is on in ``settings`` or for this call.

    For the caller that imports this module only when it matters (``api``).
    """
    if cache:
        return True
    get = settings.get
    if get("cache") or get("record") or get("replay"):
        return True
    return any(
        isinstance(conf, dict) and (conf.get("cache") or conf.get("record") or conf.get("replay"))
        for conf in (get("backends") or {}).values()
    )


# --------------------------------------------------------------------------- warnings

_warned: set[tuple[str, str]] = set()
_warned_lock = threading.Lock()


def _warn_once(path: Path, kind: str, message: str) -> None:
    with _warned_lock:
        if (str(path), kind) in _warned:
            return
        _warned.add((str(path), kind))
    log.warning("ttt-magic: %s", message)


# --------------------------------------------------------------------------- the store


@dataclass
class Stored:
    """One cached answer as read back."""

    text: str
    chunks: list[int] | None
    end: dict[str, Any]
    created: float
    backend: str = ""
    model: str | None = None

    def pieces(self, stream: bool) -> list[str]:
        """The text as it is handed out: one piece for ``ask``, chunks for a stream."""
        if not self.text:
            return []
        if not stream:
            return [self.text]
        return split_chunks(self.text, self.chunks)

    def stream_end(self) -> StreamEnd:
        end = self.end
        metadata = dict(end.get("metadata") or {})
        metadata["cached"] = True
        metadata["cached_at"] = _iso(self.created)
        return StreamEnd(
            model=end.get("model"),
            tokens_in=end.get("tokens_in"),
            tokens_out=end.get("tokens_out"),
            finish_reason=end.get("finish_reason"),
            metadata=metadata,
            cost=end.get("cost"),
            data=end.get("data"),
            reasoning=end.get("reasoning"),
        )


_WORDS = re.compile(r"\s*\S+\s*|\s+")


def split_chunks(text: str, lengths: Sequence[int] | None = None) -> list[str]:
    """``text`` cut at the original chunk boundaries when known, else into words (with their spaces)."""
    if lengths and sum(lengths) == len(text) and all(n > 0 for n in lengths):
        out, at = [], 0
        for n in lengths:
            out.append(text[at : at + n])
            at += n
        return out
    return _WORDS.findall(text)


def _iso(stamp: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(stamp))


def _jsonable(value: Any) -> bool:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return False
    return True


def end_record(end: StreamEnd) -> dict[str, Any] | None:
    """The JSON-able form of a final ``StreamEnd``; None when its answer cannot be kept faithfully."""
    metadata = {
        k: v
        for k, v in (end.metadata or {}).items()
        if k not in ("cached", "cached_at", "replayed", "route") and _jsonable(v)
    }
    record = {
        "model": end.model,
        "tokens_in": end.tokens_in,
        "tokens_out": end.tokens_out,
        "finish_reason": end.finish_reason,
        "metadata": metadata,
        "cost": end.cost,
        "data": end.data,
        "reasoning": end.reasoning,
    }
    return record if _jsonable(record) else None


_FAILED = object()


class ResponseCache:
    """One SQLite cache file, shared by the threads of this process (one connection, a lock)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._conn: Any = None
        self._pid: int | None = None
        #: Why the file is unusable this session (corrupt, unreadable, unknown layout), or None.
        self.broken: str | None = None
        self.hits = 0
        self.misses = 0
        self.stores = 0

    # ------------------------------------------------------------------ plumbing

    def _connect(self) -> Any:
        import sqlite3

        if self._conn is not None and self._pid == os.getpid():
            return self._conn
        self._conn = None  # a connection inherited through fork() is not ours to use
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(
            str(self.path), timeout=BUSY_TIMEOUT, isolation_level=None, check_same_thread=False
        )
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT * 1000)}")
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version not in (0, LAYOUT):
                raise _Unusable(f"it was written by another version of ttt-magic (layout {version})")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            if version == 0:
                conn.executescript(_DDL)
                conn.execute(f"PRAGMA user_version = {LAYOUT}")
        except BaseException:
            conn.close()
            raise
        self._conn, self._pid = conn, os.getpid()
        return conn

    def _close(self) -> None:
        if self._conn is not None and self._pid == os.getpid():
            try:
                self._conn.close()
            except Exception:
                pass
        self._conn = None

    def _run(self, action: str, fn: Any) -> Any:
        """``fn(connection)`` under the lock; a problem becomes one warning and ``_FAILED``."""
        if self.broken is not None:
            return _FAILED
        import sqlite3

        with self._lock:
            try:
                return fn(self._connect())
            except sqlite3.OperationalError as exc:
                text = str(exc).lower()
                if "locked" in text or "busy" in text:
                    _warn_once(
                        self.path,
                        "busy",
                        f"the response cache {self.path} is busy (another process is writing); "
                        f"this answer is not {action} the cache.",
                    )
                    return _FAILED
                self._give_up(exc)
            except _Unusable as exc:
                self._give_up(exc)
            except (sqlite3.Error, OSError, ValueError) as exc:
                self._give_up(exc)
            return _FAILED

    def _give_up(self, exc: BaseException) -> None:
        self._close()
        self.broken = str(exc) or type(exc).__name__
        _warn_once(
            self.path,
            "broken",
            f"the response cache {self.path} cannot be used ({self.broken}); answers are not cached "
            "this session. `%ttt_cache --clear` (or `ttt-magic cache --clear`) starts a fresh file.",
        )

    # ------------------------------------------------------------------ answers

    def get(self, key: str) -> Stored | None:
        def read(conn: Any) -> Any:
            return conn.execute(
                "SELECT text, chunks, end, created, backend, model FROM answers WHERE key = ?", (key,)
            ).fetchone()

        row = self._run("read from", read)
        if row is _FAILED:
            return None
        if row is None:
            self.misses += 1
            return None
        try:
            text, chunks, end, created, backend, model = row
            stored = Stored(
                text, json.loads(chunks) if chunks else None, json.loads(end), created, backend, model
            )
        except (TypeError, ValueError):  # a row someone else wrote badly: a miss
            self.misses += 1
            return None
        self.hits += 1
        return stored

    def put(self, key: str, call: Resolved, parts: Sequence[str], end: StreamEnd) -> bool:
        """Keep one finished answer; False when it was not kept (unusable file, unkeepable data)."""
        record = end_record(end)
        if record is None:
            return False
        text = "".join(parts)
        chunks = json.dumps([len(p) for p in parts], separators=(",", ":")) if len(parts) > 1 else None
        row = (key, time.time(), call.backend, call.model, text, chunks, json.dumps(record))

        def write(conn: Any) -> bool:
            conn.execute(
                "INSERT OR REPLACE INTO answers (key, created, backend, model, text, chunks, end)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                row,
            )
            return True

        done = self._run("written to", write) is True
        if done:
            self.stores += 1
        return done

    # ------------------------------------------------------------------ housekeeping

    def stats(self) -> dict[str, Any]:
        def count(conn: Any) -> Any:
            return conn.execute(
                "SELECT COUNT(*), COALESCE(SUM(LENGTH(CAST(text AS BLOB)) + LENGTH(end)), 0),"
                " MIN(created), MAX(created) FROM answers"
            ).fetchone()

        exists = self.path.exists()
        row = self._run("read from", count) if exists else (0, 0, None, None)
        if row is _FAILED:
            row = (None, None, None, None)
        entries, answer_bytes, oldest, newest = row
        return {
            "path": str(self.path),
            "exists": exists,
            "entries": entries,
            "answer_bytes": answer_bytes,
            "size": file_size(self.path),
            "oldest": _iso(oldest) if oldest else None,
            "newest": _iso(newest) if newest else None,
            "hits": self.hits,
            "misses": self.misses,
            "stores": self.stores,
            "broken": self.broken,
        }

    def clear(self, older_than: float | None = None) -> int:
        """Remove entries (only those older than ``older_than`` seconds, when given); how many went.

        A file that cannot be used is deleted and started afresh.
        """
        if self.broken is not None:
            return self._remove_files()
        if not self.path.exists():
            return 0

        def delete(conn: Any) -> int:
            if older_than is None:
                removed = conn.execute("DELETE FROM answers").rowcount
            else:
                removed = conn.execute(
                    "DELETE FROM answers WHERE created < ?", (time.time() - older_than,)
                ).rowcount
            try:
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                if older_than is None or removed:
                    conn.execute("VACUUM")
            except Exception:  # another process reading: the space is reused later instead
                pass
            return removed

        removed = self._run("cleared from", delete)
        if removed is _FAILED:
            return self._remove_files() if self.broken is not None else 0
        return removed

    def _remove_files(self) -> int:
        with self._lock:
            self._close()
            for suffix in ("", "-wal", "-shm"):
                try:
                    os.unlink(f"{self.path}{suffix}")
                except FileNotFoundError:
                    pass
                except OSError as exc:
                    raise UsageError(
                        f"Cannot remove the cache file {self.path}{suffix}: {exc.strerror}."
                    ) from None
            self.broken = None
            with _warned_lock:
                _warned.difference_update({(str(self.path), "broken"), (str(self.path), "busy")})
        return 0

    def close(self) -> None:
        with self._lock:
            self._close()


class _Unusable(Exception):
    """The file is a database, but not one of ours."""


def file_size(path: Path) -> int:
    """Bytes on disk: the file and its WAL and shared-memory companions."""
    total = 0
    for suffix in ("", "-wal", "-shm"):
        try:
            total += os.stat(f"{path}{suffix}").st_size
        except OSError:
            pass
    return total


_caches: dict[str, ResponseCache] = {}
_caches_lock = threading.Lock()


def cache_for(path: Path | str) -> ResponseCache:
    """The process-wide ``ResponseCache`` of one file."""
    key = os.fspath(path)
    cache = _caches.get(key)
    if cache is None:
        with _caches_lock:
            cache = _caches.get(key)
            if cache is None:
                cache = _caches[key] = ResponseCache(Path(key))
    return cache


def close_all() -> None:
    """Close every open cache file (tests; before deleting a cache folder)."""
    with _caches_lock:
        caches = list(_caches.values())
        _caches.clear()
    for cache in caches:
        cache.close()


# --------------------------------------------------------------------------- the interceptor


async def intercept(call: Resolved, proceed: Handler) -> AsyncIterator[Item]:
    """Answer from the cache, or pass the call on and keep its answer once it is complete."""
    path = wanted(call)
    if path is None:
        async for item in proceed(call):
            yield item
        return
    cache = cache_for(path)
    key = call.key()
    hit = cache.get(key)
    if hit is not None:
        for i, piece in enumerate(hit.pieces(call.stream), 1):
            yield piece
            if i % YIELD_EVERY == 0:
                await asyncio.sleep(0)
        yield hit.stream_end()
        return

    def store(parts: list[str], end: StreamEnd) -> None:
        if not (end.metadata.get("cached") or end.metadata.get("replayed")):
            cache.put(key, call, parts, end)

    async for item in keeping(proceed(call), store):
        yield item


def ensure_installed() -> None:
    """Put the cache (order 30) and record/replay (order 25) links in the chain; idempotent."""
    if NAME not in chain:
        chain.add(NAME, intercept, order=ORDER)
    from . import recording

    install = getattr(recording, "ensure_installed", None)  # None while recording itself imports us
    if install is not None:
        install()


# --------------------------------------------------------------------------- reports


_AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$")
_UNITS = {
    "": 86400.0,
    "s": 1.0,
    "sec": 1.0,
    "second": 1.0,
    "seconds": 1.0,
    "m": 60.0,
    "min": 60.0,
    "minute": 60.0,
    "minutes": 60.0,
    "h": 3600.0,
    "hour": 3600.0,
    "hours": 3600.0,
    "d": 86400.0,
    "day": 86400.0,
    "days": 86400.0,
    "w": 604800.0,
    "week": 604800.0,
    "weeks": 604800.0,
}


def parse_age(text: str) -> float:
    """Seconds in an age such as ``7d``, ``12h``, ``30m``, ``90s`` or ``2w`` (a bare number is days)."""
    match = _AGE.match(str(text).lower())
    if not match or match.group(2) not in _UNITS:
        raise UsageError(
            f"Cannot read the age {text!r}.", hint="Write a number and a unit: 90s, 30m, 12h, 7d or 2w."
        )
    return float(match.group(1)) * _UNITS[match.group(2)]


def configured_path(path: Path | str | None = None) -> tuple[Path, bool]:
    """(the cache file to report on, whether the cache is on in the settings)."""
    from .config import get_config

    setting = get_config().get("cache")
    if path is not None:
        return Path(os.path.abspath(os.path.expanduser(os.fspath(path)))), bool(setting)
    return (path_for(setting) or default_path()), bool(setting)


def stats(path: Path | str | None = None) -> dict[str, Any]:
    """Entries, bytes on disk and this session's hits/misses of the (configured) cache file."""
    where, on = configured_path(path)
    out = cache_for(where).stats()
    out["enabled"] = on
    return out


def clear(path: Path | str | None = None, older_than: float | str | None = None) -> int:
    """Empty the (configured) cache file, or drop entries older than ``older_than`` (seconds or ``"7d"``)."""
    if isinstance(older_than, str):
        older_than = parse_age(older_than)
    where, _ = configured_path(path)
    return cache_for(where).clear(older_than)


def _bytes(n: int | None) -> str:
    if n is None:
        return "?"
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"  # pragma: no cover


def report(info: dict[str, Any]) -> str:
    """``stats()`` as a few lines for people."""
    state = "on" if info.get("enabled") else "off (per call: ask(..., cache=True); for all: cache: true)"
    lines = [f"Response cache: {state}", f"  file:     {info['path']}"]
    if info.get("broken"):
        lines.append(f"  problem:  {info['broken']} (--clear starts a fresh file)")
    if not info.get("exists"):
        lines.append("  entries:  0 (no file yet)")
    else:
        entries = "?" if info["entries"] is None else info["entries"]
        lines.append(f"  entries:  {entries}, {_bytes(info['size'])} on disk")
        if info.get("oldest"):
            lines.append(f"  dates:    {info['oldest']} .. {info['newest']}")
    lines.append(f"  session:  {info['hits']} hits, {info['misses']} misses, {info['stores']} answers stored")
    return "\n".join(lines)


def build_parser(parser: Any = None) -> Any:
    """The arguments of ``ttt-magic cache`` (on ``parser``, e.g. a subcommand's, or a new one)."""
    import argparse

    if parser is None:
        parser = argparse.ArgumentParser(
            prog="ttt-magic cache", description="The response cache: entries, size, hits; --clear."
        )
    parser.add_argument("--clear", action="store_true", help="remove cached answers")
    parser.add_argument(
        "--older-than",
        metavar="AGE",
        help="with --clear: only answers older than AGE (90s, 30m, 12h, 7d, 2w)",
    )
    parser.add_argument("--path", metavar="FILE", help="this cache file instead of the configured one")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    return parser


def run_cli(args: Any, out: Any = None) -> int:
    """Carry out parsed ``ttt-magic cache`` arguments; the exit code (0 ok, 2 bad usage)."""
    import sys

    out = out or sys.stdout
    try:
        if args.older_than and not args.clear:
            raise UsageError("--older-than goes with --clear.")
        removed = None
        if args.clear:
            removed = clear(args.path, args.older_than)
        info = stats(args.path)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        if removed is not None:
            info["removed"] = removed
        out.write(json.dumps(info, indent=2) + "\n")
        return 0
    if removed is not None:
        age = f" older than {args.older_than}" if args.older_than else ""
        out.write(f"Removed {removed} cached answer{'s' if removed != 1 else ''}{age}.\n")
    out.write(report(info) + "\n")
    return 0


def cli_main(argv: Sequence[str] | None = None) -> int:
    """``ttt-magic cache [--clear [--older-than 7d]] [--path FILE] [--json]``."""
    parser = build_parser()
    try:
        args = parser.parse_args(list(argv) if argv is not None else None)
    except SystemExit as exc:  # --help, or bad arguments (argparse printed why)
        return int(exc.code or 0)
    return run_cli(args)


ensure_installed()
