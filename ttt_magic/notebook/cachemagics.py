"""``%ttt_cache``, ``%ttt_record PATH`` and ``%ttt_replay PATH``: the response cache and recordings.

Registered beside the ``%%ask`` magics (``register(ipython)``). Each magic's
``?`` help comes from its arguments (IPython's ``magic_arguments``). Like the
other magics, this module imports only IPython until a magic runs.
"""

from __future__ import annotations

import os
from typing import Any

from IPython.core.error import UsageError as IPythonUsageError
from IPython.core.magic import Magics, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring

__all__ = ["CacheMagics", "register", "unregister"]


def _configure(**values: Any) -> None:
    from ..config import configure
    from ..errors import ConfigError

    try:
        configure(**values)
    except ConfigError as exc:
        raise IPythonUsageError(str(exc)) from None


def _absolute(path: str) -> str:
    return os.path.abspath(os.path.expanduser(path))


@magics_class
class CacheMagics(Magics):
    """The magics of the response cache and of recorded answers."""

    @magic_arguments()
    @argument(
        "state",
        nargs="?",
        choices=("on", "off"),
        help="on: cache every answer of this session; off: stop (per call: %%ask --cache).",
    )
    @argument("--clear", action="store_true", help="Remove cached answers (all, or with --older-than).")
    @argument(
        "--older-than",
        metavar="AGE",
        help="With --clear: only answers older than AGE (90s, 30m, 12h, 7d, 2w).",
    )
    @argument("--path", metavar="FILE", help="This cache file (with on: use it from now on).")
    @line_magic
    def ttt_cache(self, line: str) -> None:
        """The response cache: entries, size, this session's hits and misses; on/off; --clear.

        Answers are kept in ~/.cache/ttt-magic/responses.sqlite3 (or the file
        set by `cache: PATH`); an identical request (same backend, model,
        messages, temperature and every other option) is answered from it.
        """
        from .. import cache
        from ..errors import UsageError

        args = parse_argstring(self.ttt_cache, line)
        if args.older_than and not args.clear:
            raise IPythonUsageError(
                "--older-than goes with --clear (e.g. %ttt_cache --clear --older-than 7d)."
            )
        path = _absolute(args.path) if args.path else None
        if args.state == "on":
            _configure(cache=path or True)
        elif args.state == "off":
            _configure(cache=False)
        try:
            if args.clear:
                removed = cache.clear(path, args.older_than)
                age = f" older than {args.older_than}" if args.older_than else ""
                print(f"Removed {removed} cached answer{'s' if removed != 1 else ''}{age}.")
            print(cache.report(cache.stats(path)))
        except UsageError as exc:
            raise IPythonUsageError(str(exc)) from None

    @magic_arguments()
    @argument(
        "path", nargs="?", help="The JSON Lines file answers are written to (kept beside the notebook)."
    )
    @argument("--off", action="store_true", help="Stop recording.")
    @line_magic
    def ttt_record(self, line: str) -> None:
        """Record every answer of this session into PATH, to replay the notebook offline later.

        One JSON object a line: the hashed request key, the prompt, system
        prompt and history as text, the answer, backend, model, tokens and
        date. No API key or header is ever written. Without PATH: where
        answers are being recorded.
        """
        from .. import recording

        args = parse_argstring(self.ttt_record, line)
        if args.off:
            _configure(record=None)
        elif args.path:
            _configure(record=_absolute(args.path))
        print(recording.report(recording.status()))

    @magic_arguments()
    @argument("path", nargs="?", help="A recording made with %%ttt_record (or record: PATH).")
    @argument(
        "--mode",
        choices=("strict", "fallthrough"),
        help="strict (default): an ask that was not recorded fails; fallthrough: it goes to the backend.",
    )
    @argument(
        "--speed",
        type=float,
        metavar="CHARS",
        help="Characters a second a replayed answer streams at (default 200, at most 2 s; 0: instant).",
    )
    @argument("--off", action="store_true", help="Stop replaying: ask the backends again.")
    @line_magic
    def ttt_replay(self, line: str) -> None:
        """Answer every ask of this session from the recording PATH: no network, no API key.

        Answers stream at a readable pace; their footer says they were
        replayed, and from which backend, model and date. Without PATH: what
        is being replayed.
        """
        from .. import recording
        from ..config import short_path

        args = parse_argstring(self.ttt_replay, line)
        values: dict[str, Any] = {}
        if args.off:
            values["replay"] = None
        elif args.path:
            values["replay"] = _absolute(args.path)
        if args.mode:
            values["replay_mode"] = args.mode
        if args.speed is not None:
            values["replay_speed"] = args.speed
        if values:
            _configure(**values)
        info = recording.status()
        print(recording.report(info))
        replay = info.get("replay")
        if args.path and replay and not replay["exists"]:
            print(f"Record it first: %ttt_record {short_path(replay['path'])}")


def register(ipython: Any) -> None:
    """Add ``%ttt_cache``, ``%ttt_record`` and ``%ttt_replay`` to ``ipython`` (once)."""
    if "CacheMagics" in ipython.magics_manager.registry:
        return
    ipython.register_magics(CacheMagics(shell=ipython))


def unregister(ipython: Any) -> None:
    """Remove the magics ``register`` added."""
    manager = ipython.magics_manager
    magics = manager.registry.pop("CacheMagics", None)
    if magics is None:
        return
    for kind, table in magics.magics.items():
        for name in table:
            bound = manager.magics.get(kind, {}).get(name)
            if bound is not None and getattr(bound, "__self__", None) is magics:
                del manager.magics[kind][name]
