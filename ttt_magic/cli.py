"""``python -m ttt_magic`` (also the ``ttt-magic`` command): the library from a terminal.

Subcommands::

    ask PROMPT     stream an answer (PROMPT "-" reads standard input)
    ask-many FILE  one prompt per row of a CSV file, answers written as CSV (``batch.cli_ask_many``)
    models         the model catalogue, optionally of one provider
    status         backends (available or why not) and plugins (loaded or why not)
    config         effective settings, where each came from, secrets masked
    route PROMPT   which backend and model would answer, and why (nothing is sent)
    cache          the response cache: entries, size, hits; --clear (``cache.run_cli``)

The answer goes to standard output and everything else (the footer, errors) to
standard error, so ``python -m ttt_magic ask ... > answer.md`` keeps only the
answer. Every message is one line. Exit codes: 0 success, 1 the answer failed
(for ``route``: no backend of the route could answer now), 2 bad usage or bad
configuration (nothing was sent), 130 interrupted. The footer is the notebook's
(``render.footer_text``): one footer for every front end.
"""

from __future__ import annotations

import argparse
import codecs
import json
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, NoReturn, TextIO

from . import __version__
from .config import display_path, escape_surrogates, readable
from .errors import TTTError, UnknownModelError, UsageError

__all__ = ["main"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


# --------------------------------------------------------------------------- helpers


#: How the library's messages point at the model list, and how this command does.
_LIBRARY_LISTING = "`ttt_magic.model_registry.list_models()` or `%ttt_models`"
CLI_LISTING = "`python -m ttt_magic models`"


def _for_terminal(message: object) -> str:
    """A message as this command shows it: one line, readable, in the terminal's words.

    Library messages may carry line breaks (a plugin's reason), undecodable bytes
    (a path) or advice meant for a notebook (``%ttt_models``); the terminal gets
    one line that says what to run here.
    """
    text = " ".join(str(message).split()).replace(_LIBRARY_LISTING, CLI_LISTING)
    return readable(text)


def _err(message: str) -> None:
    print(_for_terminal(message), file=sys.stderr, flush=True)


def _in_cli_words(exc: TTTError) -> TTTError:
    """The error with its hint rewritten for the command line, where there is no ``%ttt_models``."""
    if isinstance(exc, UnknownModelError):
        if exc.suggestions:
            close = ", ".join(repr(s) for s in exc.suggestions)
            exc.hint = f"Did you mean {close}? {CLI_LISTING} lists every model."
        else:
            exc.hint = (
                f"List models with {CLI_LISTING}, or name one as provider/model (e.g. 'openai/gpt-4o-mini')."
            )
    return exc


def _read_prompt(prompt: str) -> str:
    """The prompt, refused here when empty: an empty question is a usage error, never a request."""
    if prompt == "-":
        text = sys.stdin.read()
        if not text.strip():
            raise UsageError("The prompt read from standard input is empty.")
        return text
    if not prompt.strip():
        raise UsageError(
            'The prompt is empty: give the question as PROMPT, or "-" to read it from standard input'
            " (nothing was sent)."
        )
    return prompt


def _json_safe(value: Any) -> Any:
    """``value`` with undecodable bytes in its strings escaped, so JSON readers get text, not surrogates."""
    if isinstance(value, str):
        return escape_surrogates(value)
    if isinstance(value, dict):
        return {_json_safe(k) if isinstance(k, str) else k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def _write_json(data: Any) -> None:
    json.dump(_json_safe(data), sys.stdout, indent=2, default=lambda obj: escape_surrogates(str(obj)))
    sys.stdout.write("\n")


def _table(rows: list[Sequence[str]], out: TextIO) -> None:
    if not rows:
        return
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        cells = [str(cell).ljust(width) for cell, width in zip(row, widths)]
        out.write("  ".join(cells).rstrip() + "\n")


def _price(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:g}"


# --------------------------------------------------------------------------- subcommands


def cmd_ask(args: argparse.Namespace) -> int:
    from . import api

    prompt = _read_prompt(args.prompt)
    options: dict[str, Any] = {
        "model": args.model,
        "backend": args.backend,
        "system": args.system,
        "temperature": args.temperature,
        "max_tokens": args.max_tokens,
    }
    started = time.perf_counter()
    out = sys.stdout
    if args.no_stream:
        response = api.ask(prompt, **options)
        if response.text:
            out.write(response.text)
    else:
        answer = api.stream(prompt, **options)
        try:
            for chunk in answer:
                out.write(chunk)
                out.flush()
        except KeyboardInterrupt:
            if answer.text and not answer.text.endswith("\n"):
                out.write("\n")
            out.flush()
            _err("Interrupted: the answer above is incomplete.")
            return EXIT_INTERRUPTED
        response = answer.response
    if response.text and not response.text.endswith("\n"):
        out.write("\n")
    out.flush()
    if response.failed:
        _err(f"Error: {response.error}")
        return EXIT_FAILED
    if not args.quiet:
        from .notebook.render import footer_text

        _err(footer_text(response, elapsed=time.perf_counter() - started))
    return EXIT_OK


def cmd_models(args: argparse.Namespace) -> int:
    from .registry import model_registry

    models = model_registry.list_models(args.provider)
    if args.provider and not models:
        known = sorted({m.provider for m in model_registry.list_models()})
        raise UsageError(f"No models of provider {args.provider!r}.", hint=f"Providers: {', '.join(known)}.")
    if args.json:
        _write_json([m.to_dict() for m in models])
        return EXIT_OK
    aliases: dict[str, list[str]] = {}
    for alias, target in model_registry.list_aliases().items():
        aliases.setdefault(target, []).append(alias)
    header = ("MODEL", "PROVIDER", "ALIASES", "CONTEXT", "$IN/M", "$OUT/M", "SPEED", "QUALITY")
    rows: list[Sequence[str]] = [header]
    for m in sorted(models, key=lambda m: (m.provider, m.name)):
        rows.append(
            (
                m.name,
                m.provider,
                ",".join(sorted(set(aliases.get(m.name, [])) | set(m.aliases))) or "-",
                f"{m.context_length:,}" if m.context_length else "-",
                _price(m.input_cost_per_mtok),
                _price(m.output_cost_per_mtok),
                m.speed,
                m.quality,
            )
        )
    _table(rows, sys.stdout)
    return EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    from . import plugins
    from .config import get_config
    from .registry import backend_registry

    plugins.ensure_discovered()
    settings = get_config()
    entries = backend_registry.entries(settings)
    backends = []
    for name in sorted(entries):
        available, reason = backend_registry.availability(name, settings)
        backends.append(
            {
                "name": name,
                "available": available,
                "reason": reason,
                "source": entries[name].source,
                "version": entries[name].version,
            }
        )
    records = plugins.plugin_records()
    if args.json:
        _write_json(
            {
                "backends": backends,
                "plugins": [r.to_dict() for r in records],
                "config_files": [display_path(p) for p in settings.files],
            }
        )
        return EXIT_OK
    out = sys.stdout
    out.write(f"ttt-magic {__version__}\n\nBackends\n")
    rows: list[Sequence[str]] = []
    for b in backends:
        state = "ok" if b["available"] else "unavailable"
        rows.append(("  " + b["name"], state, b["source"]))
    _table(rows, out)
    for b in backends:
        if not b["available"] and b["reason"]:
            out.write(f"  {b['name']}: {_for_terminal(b['reason'])}\n")
    loaded = [r for r in records if r.loaded]
    failed = [r for r in records if r.failed]
    out.write(f"\nPlugins: {len(loaded)} loaded, {len(failed)} failed\n")
    for record in loaded + failed:
        out.write(f"  {record.summary()}\n")
    if not settings.load_plugins:
        out.write("  (plugin folders and entry points are off: load_plugins is false)\n")
    files = ", ".join(display_path(p) for p in settings.files) or "none (defaults and environment only)"
    out.write(f"\nConfig files: {files}\n")
    return EXIT_OK


def cmd_config(args: argparse.Namespace) -> int:
    from .config import get_config

    settings = get_config()
    if args.json:
        _write_json([{"key": k, "value": v, "source": s} for k, v, s in settings.rows()])
        return EXIT_OK
    sys.stdout.write(str(settings) + "\n")
    files = ", ".join(display_path(p) for p in settings.files) or "none"
    sys.stdout.write(f"\nConfig files: {files}\n")
    return EXIT_OK


def cmd_route(args: argparse.Namespace) -> int:
    """Explain the route, and exit 1 when no backend of it could answer now (it says which and why)."""
    from . import api

    decided = api.route(_read_prompt(args.prompt), model=args.model, backend=args.backend)
    blocked = _unavailable(decided)
    usable = [name for name, _ in decided.plan if name not in blocked]
    if args.json:
        data = decided.to_dict()
        data["available"] = bool(usable)
        data["unavailable"] = [{"backend": name, "reason": why} for name, why in blocked.items()]
        _write_json(data)
    else:
        out = sys.stdout
        out.write(decided.explain().rstrip("\n") + "\n")
        for name, why in blocked.items():
            out.write(f"  unavailable: {name} - {_for_terminal(why)}\n")
        if usable and decided.backend in blocked:
            out.write(f"  the answer would come from the fallback {usable[0]!r}\n")
    if usable:
        return EXIT_OK
    _err(f"Error: {_route_problem(decided, blocked)}")
    return EXIT_FAILED


def _unavailable(decided: Any) -> dict[str, str]:
    """Backend -> why it cannot answer now, for each backend of the plan that cannot."""
    from .registry import backend_registry

    blocked: dict[str, str] = {}
    for name, _ in decided.plan:
        if name in blocked:
            continue
        available, reason = backend_registry.availability(name, decided.settings)
        if not available:
            blocked[name] = reason or f"Backend {name!r} is unavailable."
    return blocked


def _route_problem(decided: Any, blocked: dict[str, str]) -> str:
    if decided.backend is None or decided.backend not in blocked:
        return decided.error or "No backend is available."
    problem = f"Backend {decided.backend!r} is unavailable: {blocked[decided.backend].rstrip('.')}."
    if decided.fallbacks:
        names = ", ".join(repr(name) for name, _ in decided.fallbacks)
        problem += f" Its fallbacks ({names}) are unavailable too."
    return problem


# --------------------------------------------------------------------------- parser


class _Parser(argparse.ArgumentParser):
    """argparse, with its complaint as one line like every other message of this command."""

    def error(self, message: str) -> NoReturn:
        _err(f"Error: {message}. See `{self.prog} --help`.")
        self.exit(EXIT_USAGE)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m ttt_magic",
        description="Ask large language models from the terminal (the library behind %%ask).",
    )
    parser.add_argument("--version", action="version", version=f"ttt-magic {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    ask = sub.add_parser("ask", help="ask a question and stream the answer")
    ask.add_argument("prompt", metavar="PROMPT", help='the question; "-" reads it from standard input')
    ask.add_argument("-m", "--model", help="model name or alias (fast, best, cheap, coding, local, ...)")
    ask.add_argument("-b", "--backend", help="backend name (cloud, local, mock, echo, ...)")
    ask.add_argument("-s", "--system", help="system prompt")
    ask.add_argument("-t", "--temperature", type=float, help="sampling temperature")
    ask.add_argument("--max-tokens", type=int, dest="max_tokens", metavar="N", help="cap on answer tokens")
    ask.add_argument("--no-stream", action="store_true", help="print the answer only when complete")
    ask.add_argument("-q", "--quiet", action="store_true", help="no footer line")
    ask.set_defaults(handler=cmd_ask)

    models = sub.add_parser("models", help="list known models")
    models.add_argument("provider", nargs="?", metavar="PROVIDER", help="openai, anthropic, google, ollama")
    models.add_argument("--json", action="store_true", help="machine-readable output")
    models.set_defaults(handler=cmd_models)

    status = sub.add_parser("status", help="backends and plugins, and what is wrong with them")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.set_defaults(handler=cmd_status)

    config = sub.add_parser("config", help="effective settings and where each came from")
    config.add_argument("--json", action="store_true", help="machine-readable output")
    config.set_defaults(handler=cmd_config)

    route = sub.add_parser("route", help="explain which backend and model would answer (sends nothing)")
    route.add_argument("prompt", metavar="PROMPT", help='the question; "-" reads it from standard input')
    route.add_argument("-m", "--model")
    route.add_argument("-b", "--backend")
    route.add_argument("--json", action="store_true", help="machine-readable output")
    route.set_defaults(handler=cmd_route)

    from . import cache

    cached = sub.add_parser("cache", help="the response cache: entries, size, hits; --clear")
    cache.build_parser(cached)
    cached.set_defaults(handler=cache.run_cli)

    many = sub.add_parser(
        "ask-many",
        help="ask one prompt per row of a CSV file; write the answers as CSV",
        add_help=False,  # its own parser reads the arguments (see `ask-many --help`)
    )
    many.add_argument("args", nargs=argparse.REMAINDER)
    many.set_defaults(handler=lambda args: _ask_many(args.args))
    return parser


def _ask_many(argv: Sequence[str]) -> int:
    from .batch import cli_ask_many

    return cli_ask_many(list(argv))


def _escape_unencodable(exc: UnicodeError) -> tuple[str, int]:
    """Codec error handler: an undecodable byte shows as ``\\xff``, anything else unshowable as "?"."""
    if not isinstance(exc, UnicodeEncodeError):
        raise exc
    bad = exc.object[exc.start : exc.end]
    return "".join(escape_surrogates(c) if "\ud800" <= c <= "\udfff" else "?" for c in bad), exc.end


_STREAM_ERRORS = "ttt_magic.cli.escape"
codecs.register_error(_STREAM_ERRORS, _escape_unencodable)


def _tolerant_streams() -> None:
    """Never die on a character the terminal cannot show (the footer's "·", answers' emoji).

    Undecodable bytes (a path that is not UTF-8) are written as escapes, not "?",
    so what is printed still says what is there.
    """
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.reconfigure(errors=_STREAM_ERRORS)  # type: ignore[union-attr]
        except (AttributeError, ValueError):
            pass


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    _tolerant_streams()
    given = list(sys.argv[1:] if argv is None else argv)
    if given[:1] == ["ask-many"]:  # every word is ask-many's own, options first included
        return _ask_many(given[1:])
    args = build_parser().parse_args(given)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except UsageError as exc:  # ConfigError and UnknownModelError too: nothing was sent
        _err(f"Error: {_in_cli_words(exc)}")
        return EXIT_USAGE
    except TTTError as exc:
        _err(f"Error: {_in_cli_words(exc)}")
        return EXIT_FAILED
    except KeyboardInterrupt:
        _err("Interrupted.")
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `... | head`: the reader left; that is not an error
        return EXIT_OK
