"""The tables behind ``%ttt_config --show``, ``%ttt_models`` and ``%ttt_status``.

Each returns a ``tables.Report``/``Table``: HTML in a notebook, plain text in a
terminal. Paths are shown relative to the current folder or as ``~/...``
(``shown_path``), so a saved notebook does not tell where it was run.
"""

from __future__ import annotations

import os
import re
from typing import Any

__all__ = [
    "config_table",
    "cost_text",
    "models_report",
    "short_paths",
    "shown_path",
    "shown_value",
    "status_report",
]

#: An absolute path inside a message: not part of a URL or a longer word ("https://x/y", "a/b").
_ABSOLUTE = re.compile(r"(?<![\w.:/~-])/[^\s\"'<>()/]+/[^\s\"'<>()]*[^\s\"'<>().,;:]")


def shown_path(path: str | os.PathLike[str]) -> str:
    """A path as people see it: ``config.short_path`` (inside the current folder, else under ``~``),
    and a path outside both relative to the current folder (``../plugins/x.py``) rather than whole."""
    from ..config import display_path, short_path

    shown = short_path(path)
    if not os.path.isabs(os.fspath(path)) or not os.path.isabs(shown):
        return shown
    try:
        return display_path(os.path.relpath(os.fspath(path)))
    except (OSError, ValueError):  # no working folder any more; another drive (Windows)
        return shown


def short_paths(text: str) -> str:
    """``text`` with every absolute path in it written by ``shown_path`` (sources, reasons, errors)."""
    return _ABSOLUTE.sub(lambda m: shown_path(m.group(0)), text) if "/" in text else text


def _short(rows: Any) -> list[list[str]]:
    return [[short_paths(str(cell)) if cell is not None else "" for cell in row] for row in rows]


def cost_text(cost: float, unpriced: int) -> str:
    """Dollars spent; "unknown" when calls had no price and none had one (not "$0.0000", not "free")."""
    if unpriced and not cost:
        return "unknown"
    return f"${cost:.4f}" + (" + unknown" if unpriced else "")


def shown_value(settings: Any, key: str) -> str:
    for name, value, _source in settings.rows():
        if name == key:
            return value
    return str(settings.get(key))


def config_table(settings: Any, note: str | None = None) -> Any:
    from .tables import Table

    files = ", ".join(shown_path(p) for p in settings.files) or "none found"
    extra = f"Config files: {files}."
    return Table(
        "ttt-magic configuration",
        ["setting", "value", "source"],
        _short(settings.rows()),
        note=f"{extra}\n{note}" if note else extra,
    )


def models_report(pattern: str = "") -> Any:
    """``%ttt_models``: the models table and the aliases table, filtered by ``pattern``."""
    from ..plugins import ensure_discovered
    from ..registry import model_registry
    from .tables import Report, Table

    ensure_discovered()
    wanted = pattern.lower()
    models = model_registry.list_models()
    aliases = model_registry.list_aliases()

    def price(info: Any) -> str:
        if info.input_cost_per_mtok is not None or info.output_cost_per_mtok is not None:
            return f"{info.input_cost_per_mtok or 0:g} / {info.output_cost_per_mtok or 0:g}"
        if info.cost_per_token is not None:
            return f"{info.cost_per_token * 1e6:g} / {info.cost_per_token * 1e6:g}"
        return ""

    rows = []
    for info in sorted(models, key=lambda m: (m.provider, m.name)):
        hay = " ".join([info.name, info.provider, *info.aliases, info.description]).lower()
        if wanted and wanted not in hay:
            continue
        rows.append(
            [
                info.name,
                info.provider,
                ", ".join(info.aliases),
                info.speed,
                info.quality,
                info.context_length or "",
                price(info),
            ]
        )
    alias_rows = [
        [a, target]
        for a, target in sorted(aliases.items())
        if not wanted or wanted in a.lower() or wanted in target.lower()
    ]
    title = f"Models matching {pattern!r}" if pattern else "Models"
    return Report(
        Table(
            title,
            ["model", "provider", "aliases", "speed", "quality", "context", "$/Mtok in / out"],
            rows,
            note=f"{len(rows)} models.",
        ),
        Table("Aliases", ["alias", "model"], alias_rows),
    )


def status_report(
    session: dict[str, Any], chats: dict[str, Any] | None = None, by_model: list[dict[str, Any]] | None = None
) -> Any:
    """``%ttt_status``: backends, plugins, and this session's calls, tokens and cost.

    ``session`` is ``ttt_magic.api.usage()``: every answer of this process, from
    magics, widgets or code alike; ``by_model`` is ``usage(by="model")``, one
    row per backend and model.
    """
    from ..plugins import ensure_discovered, plugin_records
    from ..registry import backend_registry
    from .tables import Report, Table

    ensure_discovered()
    entries = backend_registry.entries()
    backend_rows = []
    for name in sorted(entries):
        ok, reason = backend_registry.availability(name)
        backend_rows.append(
            [name, "yes" if ok else "no", reason or entries[name].description, entries[name].source]
        )
    plugin_rows = [
        [r.name, r.status, ", ".join(r.backends), r.error or "; ".join(r.notes), r.source]
        for r in plugin_records()
    ]
    usage = Table(
        "This session",
        ["calls", "failures", "interrupted", "cached", "tokens in", "tokens out", "cost", "time"],
        [
            [
                session["calls"],
                session["failures"],
                session.get("interrupted", 0),
                session.get("cached", 0),
                session["tokens_in"],
                session["tokens_out"],
                cost_text(session["cost"], session.get("unpriced", 0)),
                f"{session.get('time', 0.0):.1f} s",
            ]
        ],
        note="cost: what was spent; unknown when a call had no price (a cache hit or replay costs nothing).",
    )
    per_model = Table(
        "By backend and model",
        ["backend", "model", "calls", "failures", "tokens in", "tokens out", "cost", "time"],
        [
            [
                row["backend"],
                row["model"] or "(default)",
                row["calls"],
                row["failures"],
                row["tokens_in"],
                row["tokens_out"],
                cost_text(row["cost"], row.get("unpriced", 0)),
                f"{row.get('time', 0.0):.1f} s",
            ]
            for row in by_model or []
        ],
    )
    parts: list[Any] = [
        Table("Backends", ["backend", "available", "reason / description", "source"], _short(backend_rows)),
        Table("Plugins", ["plugin", "status", "backends", "error / notes", "source"], _short(plugin_rows)),
        usage,
        per_model,
    ]
    if chats:
        parts.append(Table("Conversations", ["name", "exchanges"], [[k, len(v)] for k, v in chats.items()]))
    return Report(*parts)
