"""A usage error raised in a cell is shown as one line, not a traceback.

``ask("hi", model="gtp-4o")`` in a cell raises ``UnknownModelError``: a mistake
in the call, with a did-you-mean, that a thirty-line traceback into the router
only buries. While the extension is loaded, IPython's custom exception hook
(``InteractiveShell.set_custom_exc``) shows ``UnknownModelError: Unknown model
'gtp-4o'.`` and its hint on stderr instead. The cell still fails, so "Run All"
stops and nbval reports it. Other ttt_magic errors (a failed answer under
``raise_on_error``, a provider error raised by user code) keep their full
traceback, as does anything another extension had hooked before us.
"""

from __future__ import annotations

import sys
from typing import Any

from ..errors import TTTError, UsageError

__all__ = ["install", "uninstall", "usage_error_text"]

#: Per shell: (the custom exceptions and handler found at install, the handler we installed).
_installed: dict[int, tuple[tuple[tuple[type[BaseException], ...], Any], Any]] = {}


def usage_error_text(exc: TTTError) -> str:
    """``ErrorName: message`` and, on a second line, the hint."""
    text = f"{type(exc).__name__}: {exc.message}"
    return f"{text}\n{exc.hint}" if exc.hint else text


def install(shell: Any) -> None:
    """Hook ``shell`` so that ttt_magic's usage errors print one line; keeps a previous hook working."""
    if id(shell) in _installed:
        return
    previous_types, previous_handler = shell.custom_exceptions, shell.CustomTB

    def show(self: Any, etype: type, value: BaseException, tb: Any, tb_offset: int | None = None) -> None:
        if isinstance(value, UsageError):
            print(usage_error_text(value), file=sys.stderr)
        elif previous_types and isinstance(value, previous_types):
            previous_handler(etype, value, tb, tb_offset=tb_offset)
        else:
            self.showtraceback((etype, value, tb), tb_offset=tb_offset)

    shell.set_custom_exc(tuple(dict.fromkeys((*previous_types, TTTError))), show)
    _installed[id(shell)] = ((previous_types, previous_handler), shell.CustomTB)


def uninstall(shell: Any) -> None:
    """Put back the hook found at ``install`` (unless someone replaced ours since)."""
    entry = _installed.pop(id(shell), None)
    if entry is None:
        return
    (previous_types, previous_handler), ours = entry
    if shell.CustomTB is ours:
        shell.custom_exceptions, shell.CustomTB = previous_types, previous_handler
