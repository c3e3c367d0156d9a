"""Small display tables for ``%ttt_models``, ``%ttt_status`` and ``%ttt_config``.

One object renders twice: an HTML table in notebooks (``_repr_mimebundle_``
/ ``_repr_html_``) and aligned plain text in terminal IPython
(``_repr_pretty_`` / ``__str__``). No dependency beyond the standard library.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from typing import Any

__all__ = ["Report", "Table"]

MAX_CELL = 60


class Table:
    """A titled table of strings, with an optional note under it."""

    def __init__(
        self, title: str, columns: Sequence[str], rows: Iterable[Sequence[Any]], note: str | None = None
    ) -> None:
        self.title = title
        self.columns = list(columns)
        self.rows = [["" if v is None else str(v) for v in row] for row in rows]
        self.note = note

    def __len__(self) -> int:
        return len(self.rows)

    def __str__(self) -> str:
        cells = [[_clip(c) for c in row] for row in self.rows]
        widths = [len(c) for c in self.columns]
        for row in cells:
            for i, cell in enumerate(row):
                widths[i] = max(widths[i], len(cell))
        lines = [self.title] if self.title else []
        lines.append("  ".join(c.ljust(w) for c, w in zip(self.columns, widths)).rstrip())
        lines.append("  ".join("-" * w for w in widths))
        lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
        if not self.rows:
            lines.append("(none)")
        if self.note:
            lines.append(self.note)
        return "\n".join(lines)

    def __repr__(self) -> str:
        return str(self)

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(str(self))

    def _repr_html_(self) -> str:
        head = "".join(f'<th style="text-align: left">{html.escape(c)}</th>' for c in self.columns)
        body = (
            "".join(
                "<tr>" + "".join(f'<td style="text-align: left">{html.escape(v)}</td>' for v in row) + "</tr>"
                for row in self.rows
            )
            or f'<tr><td colspan="{len(self.columns)}"><em>(none)</em></td></tr>'
        )
        title = f"<b>{html.escape(self.title)}</b>" if self.title else ""
        note = f'<div style="opacity: 0.8">{html.escape(self.note)}</div>' if self.note else ""
        return f"<div>{title}<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{note}</div>"

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        return {"text/html": self._repr_html_(), "text/plain": str(self)}


class Report:
    """Several tables (and lines) shown as one output."""

    def __init__(self, *parts: Table | str) -> None:
        self.parts = list(parts)

    def __str__(self) -> str:
        return "\n\n".join(str(p) for p in self.parts)

    def __repr__(self) -> str:
        return str(self)

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(str(self))

    def _repr_html_(self) -> str:
        return "".join(
            p._repr_html_() if isinstance(p, Table) else f"<p>{html.escape(p)}</p>" for p in self.parts
        )

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        return {"text/html": self._repr_html_(), "text/plain": str(self)}


def _clip(text: str) -> str:
    text = text.replace("\n", " ")
    return text if len(text) <= MAX_CELL else text[: MAX_CELL - 1] + "…"
