"""The tables behind ``%ttt_config --show``, ``%ttt_models`` and ``%ttt_status``.

Each returns a ``tables.Report``/``Table``: HTML in a notebook, plain text in a
terminal.
"""

from __future__ import annotations

from typing import Any

__all__ = ["config_table", "models_report", "shown_value", "status_report"]


def shown_value(settings: Any, key: str) -> str:
    for name, value, _source in settings.rows():
        if name == key:
            return value
    return str(settings.get(key))


def config_table(settings: Any, note: str | None = None) -> Any:
    from .tables import Table

    files = ", ".join(str(p) for p in settings.files) or "none found"
    extra = f"Config files: {files}."
    return Table(
        "ttt-magic configuration",
        ["setting", "value", "source"],
        settings.rows(),
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


def status_report(session: dict[str, Any], chats: dict[str, Any] | None = None) -> Any:
    """``%ttt_status``: backends, plugins, and this session's calls, tokens and cost.

    ``session`` is ``ttt_magic.api.usage()``: every answer of this process, from
    magics, widgets or code alike.
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
        ["calls", "failures", "tokens in", "tokens out", "cost"],
        [
            [
                session["calls"],
                session["failures"],
                session["tokens_in"],
                session["tokens_out"],
                f"${session['cost']:.4f}",
            ]
        ],
    )
    parts: list[Any] = [
        Table("Backends", ["backend", "available", "reason / description", "source"], backend_rows),
        Table("Plugins", ["plugin", "status", "backends", "error / notes", "source"], plugin_rows),
        usage,
    ]
    if chats:
        parts.append(Table("Conversations", ["name", "exchanges"], [[k, len(v)] for k, v in chats.items()]))
    return Report(*parts)
