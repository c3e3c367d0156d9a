"""``python -m ttt_magic`` (also the ``ttt-magic`` command): the library from a terminal.

Subcommands::

    ask PROMPT     stream an answer (PROMPT "-" reads standard input)
    models         the model catalogue, optionally of one provider
    status         backends (available or why not) and plugins (loaded or why not)
    config         effective settings, where each came from, secrets masked
    route PROMPT   which backend and model would answer, and why (nothing is sent)

The answer goes to standard output and everything else (the footer, errors) to
standard error, so ``python -m ttt_magic ask ... > answer.md`` keeps only the
answer. Exit codes: 0 success, 1 the answer failed, 2 bad usage, 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, TextIO

from . import __version__
from .errors import UsageError

__all__ = ["main"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


# --------------------------------------------------------------------------- helpers


def _err(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _read_prompt(prompt: str) -> str:
    if prompt == "-":
        text = sys.stdin.read()
        if not text.strip():
            raise UsageError("The prompt read from standard input is empty.")
        return text
    return prompt


def footer(response: Any, elapsed: float | None = None) -> str:
    """``model · backend · tokens · time`` (and cost when known): one line for stderr."""
    parts = [response.model or "?", response.backend or "?"]
    if response.tokens_in is not None or response.tokens_out is not None:
        parts.append(f"{response.tokens_in or 0} in / {response.tokens_out or 0} out tokens")
    seconds = response.time_taken if response.time_taken is not None else elapsed
    if seconds is not None:
        parts.append(f"{seconds:.2f}s")
    if response.cost:
        parts.append(f"${response.cost:.4f}")
    return " · ".join(parts)


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
        _err(footer(response, time.perf_counter() - started))
    return EXIT_OK


def cmd_models(args: argparse.Namespace) -> int:
    from .registry import model_registry

    models = model_registry.list_models(args.provider)
    if args.provider and not models:
        known = sorted({m.provider for m in model_registry.list_models()})
        raise UsageError(f"No models of provider {args.provider!r}.", hint=f"Providers: {', '.join(known)}.")
    if args.json:
        json.dump([m.to_dict() for m in models], sys.stdout, indent=2)
        sys.stdout.write("\n")
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
        json.dump(
            {
                "backends": backends,
                "plugins": [r.to_dict() for r in records],
                "config_files": [str(p) for p in settings.files],
            },
            sys.stdout,
            indent=2,
        )
        sys.stdout.write("\n")
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
            out.write(f"  {b['name']}: {b['reason']}\n")
    loaded = [r for r in records if r.loaded]
    failed = [r for r in records if r.failed]
    out.write(f"\nPlugins: {len(loaded)} loaded, {len(failed)} failed\n")
    for record in loaded + failed:
        out.write(f"  {record.summary()}\n")
    if not settings.load_plugins:
        out.write("  (plugin folders and entry points are off: load_plugins is false)\n")
    files = ", ".join(str(p) for p in settings.files) or "none (defaults and environment only)"
    out.write(f"\nConfig files: {files}\n")
    return EXIT_OK


def cmd_config(args: argparse.Namespace) -> int:
    from .config import get_config

    settings = get_config()
    if args.json:
        rows = [{"key": k, "value": v, "source": s} for k, v, s in settings.rows()]
        json.dump(rows, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return EXIT_OK
    sys.stdout.write(str(settings) + "\n")
    files = ", ".join(str(p) for p in settings.files) or "none"
    sys.stdout.write(f"\nConfig files: {files}\n")
    return EXIT_OK


def cmd_route(args: argparse.Namespace) -> int:
    from . import api

    decided = api.route(_read_prompt(args.prompt), model=args.model, backend=args.backend)
    if args.json:
        json.dump(decided.to_dict(), sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(decided.explain().rstrip("\n") + "\n")
    return EXIT_OK


# --------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
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
    return parser


def _tolerant_streams() -> None:
    """Never die on a character the terminal cannot show (the footer's "·", answers' emoji)."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.reconfigure(errors="replace")  # type: ignore[union-attr]
        except (AttributeError, ValueError):
            pass


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    _tolerant_streams()
    args = build_parser().parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except UsageError as exc:
        _err(f"Error: {exc}")
        return EXIT_USAGE
    except KeyboardInterrupt:
        _err("Interrupted.")
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `... | head`: the reader left; that is not an error
        return EXIT_OK
