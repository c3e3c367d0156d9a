"""``%%ask --each ITEMS``: the cell is a template, asked once per item; a table instead of a stream.

``EachRun`` carries one such cell: it finds ``ITEMS`` (and a ``--schema``) in
the notebook's namespace by name or dotted attribute, never by evaluating
code; runs ``batch.run_each`` (progress in the cell, Ctrl-C keeps what
finished); stores the ``Answers`` in ``-o VAR`` (``_`` by default); and shows
``batch.preview_table``: the first rows, failures marked, and a summary.
"""

from __future__ import annotations

import difflib
import keyword
import re
from typing import Any

from .options import BadInput

__all__ = ["JSON_INSTRUCTION", "EachRun", "check_name", "json_system", "lookup"]

#: What ``-f json`` adds to the system prompt: the backend is told, not only the display.
JSON_INSTRUCTION = "Answer with JSON only: no prose, no code fence."
#: Rows of the preview table shown under the cell.
PREVIEW_ROWS = 5
_DOTTED = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z]\w*)*")


def check_name(expr: str, option: str) -> None:
    """``BadInput`` unless ``expr`` is a variable name or a dotted attribute (``df.text``): no code."""
    if not _DOTTED.fullmatch(expr) or any(keyword.iskeyword(part) for part in expr.split(".")):
        raise BadInput(
            f"{option} takes a variable name or a dotted attribute (such as df.text), not {expr!r}: "
            "nothing is evaluated. Put the value in a variable first."
        )


def lookup(expr: str, namespace: Any, option: str) -> Any:
    """The value ``expr`` names in ``namespace``: a name, then attributes (no ``_private`` ones).

    A missing name or attribute is a ``UsageError`` (the magic shows it in one
    line; nothing is sent), with a close name when there is one.
    """
    from ..errors import UsageError

    check_name(expr, option)
    head, *attributes = expr.split(".")
    if head not in namespace:
        hidden = _hidden(namespace)
        names = [n for n in namespace if isinstance(n, str) and not n.startswith("_") and n not in hidden]
        close = difflib.get_close_matches(head, names, n=1)
        hint = f"Did you mean {close[0]!r}?" if close else "Define it in a cell above."
        raise UsageError(f"{option} {expr}: there is no variable {head!r}.", hint=hint)
    value = namespace[head]
    for i, attribute in enumerate(attributes):
        try:
            value = getattr(value, attribute)
        except AttributeError:
            owner = ".".join([head, *attributes[:i]])
            raise UsageError(f"{option} {expr}: {owner} has no attribute {attribute!r}.") from None
    return value


def _hidden(namespace: Any) -> Any:
    """IPython's own names in the user's namespace (``open``, ``exit``, ``In``): never suggested."""
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - the magics need IPython
        return ()
    shell = get_ipython()
    return shell.user_ns_hidden if shell is not None and shell.user_ns is namespace else ()


def json_system(system: str | None) -> str:
    """A system prompt that also asks for JSON only (``-f json``): ``system``, then the instruction."""
    if not system:
        return JSON_INSTRUCTION
    return system if JSON_INSTRUCTION in system else f"{system.rstrip()}\n\n{JSON_INSTRUCTION}"


def default_system(settings: Any, backend: str | None) -> str | None:
    """The system prompt a call that names none is sent with: the backend's, else the global one."""
    name = backend or settings.get("default_backend")
    config = settings.backend_config(name) if name else settings.values
    return config.get("system")


class EachRun:
    """Carries one ``%%ask --each`` cell through; ``host`` is the ``TTTMagics`` instance."""

    def __init__(self, host: Any, opts: Any, template: str) -> None:
        from ..config import get_config
        from .asking import call_options

        self.host = host
        self.opts = opts
        self.settings = get_config()
        self.namespace = host.shell.user_ns if host.shell is not None else {}
        self.items = lookup(opts.each, self.namespace, "--each")
        if isinstance(self.items, (str, bytes)):
            from ..errors import UsageError

            raise UsageError(
                f"--each {opts.each} is one string, not a list of items.",
                hint="Give a list, a pandas Series or a DataFrame (e.g. --each df.text).",
            )
        self.template = template.strip()  # the cell's trailing newline is not part of each prompt
        self.call = call_options(opts)
        if opts.schema:
            self.call["schema"] = lookup(opts.schema, self.namespace, "--schema")
        self._fill_system()

    def _fill_system(self) -> None:
        """``{variables}`` in ``-s`` filled as in ``%%ask`` (keys withheld); ``-f json`` asks for JSON."""
        system = self.call.get("system")
        if system is not None and not self.opts.raw:
            from .interpolate import expand
            from .withhold import configured_secrets

            filled = expand(
                system,
                self.namespace,
                self.settings.interpolation_limit,
                secrets=configured_secrets(self.settings),
            )
            system = filled.text
        if self.opts.format == "json":
            system = json_system(system or default_system(self.settings, self.call.get("backend")))
        if system is not None:
            self.call["system"] = system

    def run(self) -> None:
        """Ask every item; store and show the answers, even those an interrupt left (then re-raise)."""
        from ..batch import BatchInterrupted, run_each
        from ..errors import TTTError

        namespace = None if self.opts.raw else self.namespace
        try:
            answers = run_each(self.items, self.template, namespace=namespace, **self.call)
        except BatchInterrupted as stopped:
            self._conclude(stopped.answers)
            raise KeyboardInterrupt from None
        self._conclude(answers)
        failed = answers.failed
        if failed and self.settings.raise_on_error:
            first = answers[failed[0]]
            raise TTTError(f"{len(failed)} of {len(answers)} items failed; the first: {first.error}")

    def _conclude(self, answers: Any) -> None:
        """Keep the answers (``-o VAR``, else ``_``; the last one in ``last_response``), show the table."""
        import ttt_magic

        target = self.opts.out or "_"
        if self.host.shell is not None:
            self.host.shell.user_ns[target] = answers
        ttt_magic.last_response = answers[-1] if len(answers) else None
        self.host._show(self.bundle(answers, target))

    def bundle(self, answers: Any, target: str) -> dict[str, Any]:
        """The cell's one output: the preview table (Markdown), and where the answers are."""
        from ..batch import preview_table

        table = preview_table(answers, n=PREVIEW_ROWS)
        kept = f"All {len(answers):,} answers are in `{target}`: `.texts`, `.data`, `.failed`, `.to_frame()`."
        return {"text/markdown": f"{table}\n\n{kept}", "text/plain": f"{table}\n\n{kept}"}
