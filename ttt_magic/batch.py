"""Many prompts at once: ``ask_many``, its ``Answers``, ``estimate``, budgets, resume, back-off.

::

    df["summary"] = ask_many(df["text"], "Summarize: {}").texts
    df = df.join(ask_many(df, "{title}: {body}", schema={"topic": str, "score": int}).to_frame())

Inputs are any iterable of strings or dicts, a pandas Series (plain items) or
a DataFrame (each row a dict). Answers come back in input order, one
``AIResponse`` per item; a failed item holds a failed response and never
stops the others (unless ``on_error="raise"``).

How the batch runs: ``concurrency`` worker tasks on the library's event loop
take the next item, wait while the batch is throttled, check the budget, and
ask it with ``api.aask``. So there are never more than ``concurrency``
requests in flight, and memory grows with the answers, not with the number of
pending tasks.

Rate limits: a ``ContextVar`` marks the calls made inside a batch, and the
``batch-gate`` interceptor (chain order 45) sees every attempt of those calls:
when one is refused with a rate limit (429, ``kind="rate_limit"``), the whole
batch pauses for the server's Retry-After (or ``DEFAULT_BACKOFF``) and its
effective concurrency halves, then grows back by one per ``limit`` successes.
Calls outside a batch pass through the gate untouched, at no cost.

Interrupts (Ctrl-C while ``ask_many`` waits): the outstanding requests are
cancelled at once, and ``BatchInterrupted`` (a ``KeyboardInterrupt``, so "Run
All" still stops) is raised carrying ``.answers``: what finished, in place,
the rest failed responses with ``metadata["interrupted"]``. ``last_answers()``
returns the same. The finished answers are kept in memory, keyed by each
item's prompt and options: calling the same ``ask_many`` again sends only the
rest. The same holds after a budget stop, an ``on_error="raise"`` stop, or a
batch with failed items (only the failed ones are sent again);
``resume=False`` ignores that memory, ``forget()`` clears it.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextvars
import csv
import difflib
import hashlib
import json
import re
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from . import progress as _progress
from . import runner, tokens
from .chain import Handler, Item, chain
from .errors import ProviderError, TTTError, UsageError
from .models import AIResponse
from .request import REQUEST_ARGS, check_kwargs

__all__ = [
    "Answers",
    "BatchFailed",
    "BatchInterrupted",
    "Estimate",
    "Template",
    "aask_many",
    "ask_many",
    "cli_ask_many",
    "estimate",
    "forget",
    "last_answers",
    "preview_table",
    "run_each",
]

#: Output tokens assumed per answer when ``max_tokens`` is not set (estimates and budgets).
ASSUMED_OUTPUT_TOKENS = 256
#: Seconds the batch pauses after a rate limit that did not say how long (no Retry-After).
DEFAULT_BACKOFF = 1.0
#: Finished answers kept for resuming (most recent first out when full).
MEMORY_MAX = 100_000
#: Where the gate sits in the chain: inside usage (0), cache (30) and schema (40).
GATE_ORDER = 45

#: The waiting function and clock of the back-off; tests replace them.
sleep = asyncio.sleep
clock = time.monotonic

_ASK_MANY_ARGS = (
    "template",
    "concurrency",
    "progress",
    "budget",
    "schema",
    "on_error",
    "dry_run",
    "resume",
    "engine",
)


# --------------------------------------------------------------------------- errors


class BatchInterrupted(KeyboardInterrupt):
    """Ctrl-C during ``ask_many``: ``.answers`` holds what finished (the rest marked interrupted)."""

    def __init__(self, answers: Answers) -> None:
        self.answers = answers
        super().__init__(answers.stopped or "interrupted")

    def __str__(self) -> str:
        return self.answers.stopped or "interrupted"


class BatchFailed(TTTError):
    """``on_error="raise"``: item ``.index`` failed; ``.answers`` holds what finished before."""

    def __init__(self, index: int, response: AIResponse, answers: Answers) -> None:
        self.index = index
        self.response = response
        self.answers = answers
        label = answers._label(index)
        super().__init__(
            f"Item {label} failed: {response.error}",
            hint=f"{answers.ok_count} of {len(answers)} finished before the batch stopped "
            "(see .answers); on_error='keep' keeps going past failures.",
        )


# --------------------------------------------------------------------------- inputs and templates


def _is_pandas(value: Any, name: str) -> bool:
    kind = type(value)
    return kind.__name__ == name and kind.__module__.split(".")[0] == "pandas"


def _missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and value != value:
        return True
    return type(value).__name__ in ("NAType", "NaTType")


@dataclass
class _Inputs:
    items: list[Any]
    #: "plain" (strings) or "rows" (dicts).
    kind: str
    #: The pandas index of a Series/DataFrame input (for aligned results), else None.
    index: Any = None
    #: A Series' name: ``{name}`` then means the item too.
    name: str | None = None


def _read_inputs(inputs: Any) -> _Inputs:
    if isinstance(inputs, (str, bytes)):
        raise UsageError(
            "inputs is one string: pass a list of prompts (ask_many(['a', 'b'])), or use ask() for one."
        )
    if _is_pandas(inputs, "DataFrame"):
        return _Inputs(inputs.to_dict("records"), "rows", inputs.index)
    if _is_pandas(inputs, "Series"):
        name = inputs.name if isinstance(inputs.name, str) else None
        return _Inputs(list(inputs), "plain", inputs.index, name)
    if isinstance(inputs, Mapping):
        raise UsageError("inputs is one dict: pass a list of dicts (one per item), or a DataFrame.")
    try:
        items = list(inputs)
    except TypeError:
        raise UsageError(
            f"inputs must be an iterable of strings or dicts, a pandas Series or DataFrame, "
            f"not {type(inputs).__name__}."
        ) from None
    if any(isinstance(item, Mapping) for item in items):
        for i, item in enumerate(items):
            if not isinstance(item, Mapping):
                raise UsageError(
                    f"inputs mixes dicts and {type(item).__name__}s (item {i}): give all items as dicts."
                )
        return _Inputs([dict(item) for item in items], "rows")
    return _Inputs(items, "plain")


_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_LATEX_CMD = re.compile(r"\\[A-Za-z]+\*?$")


@dataclass
class _Slot:
    #: None for ``{}``, else the field name.
    name: str | None


class Template:
    """A prompt template: ``{}`` is the item, ``{name}`` a field of a dict item.

    Brace-safe like ``%%ask`` interpolation: only ``{}`` and ``{identifier}``
    are placeholders; everything else (JSON such as ``{"a": 1}``, ``{{ x }}``,
    ``{ }``, LaTeX groups such as ``\\frac{a}{b}`` and ``x^{n}``) is sent as
    written. The one literal a template cannot hold is an empty JSON object:
    ``{}`` is the item's placeholder, so write ``{ }``.
    """

    def __init__(self, text: str) -> None:
        if not isinstance(text, str):
            raise UsageError(f"template must be a string, not {type(text).__name__}.")
        self.text = text
        self.parts: list[str | _Slot] = self._parse(text)
        self.fields = [p.name for p in self.parts if isinstance(p, _Slot) and p.name is not None]
        self.has_item = any(isinstance(p, _Slot) and p.name is None for p in self.parts)

    @staticmethod
    def _parse(text: str) -> list[str | _Slot]:
        parts: list[str | _Slot] = []
        literal: list[str] = []
        i, n = 0, len(text)
        while i < n:
            start = text.find("{", i)
            if start < 0:
                literal.append(text[i:])
                break
            literal.append(text[i:start])
            if text.startswith("{{", start):
                literal.append("{{")
                i = start + 2
                continue
            end = text.find("}", start + 1)
            name = text[start + 1 : end] if end >= 0 else None
            if name is not None and (name == "" or _IDENT.fullmatch(name)) and not _latex(text, start):
                if literal:
                    parts.append("".join(literal))
                    literal = []
                parts.append(_Slot(name or None))
                i = end + 1
                continue
            literal.append("{")
            i = start + 1
        if literal:
            parts.append("".join(literal))
        return parts

    def render(self, values: Mapping[str, str], item: str | None = None) -> str:
        out = []
        for part in self.parts:
            if isinstance(part, str):
                out.append(part)
            elif part.name is None:
                out.append(item if item is not None else "{}")
            else:
                out.append(values[part.name])
        return "".join(out)

    def __repr__(self) -> str:
        return f"Template({self.text!r})"


def _latex(text: str, brace: int) -> bool:
    if brace == 0:
        return False
    before = text[brace - 1]
    if before in "^_" or before == "}":
        return True
    return bool(_LATEX_CMD.search(text, max(0, brace - 40), brace))


def _text_of(value: Any) -> str:
    return value if isinstance(value, str) else str(value)


def _row_label(i: int, index: Any) -> str:
    if index is None:
        return f"row {i}"
    try:
        label = index[i]
    except Exception:
        return f"row {i}"
    return f"row {i}" if label == i else f"row {i} (index {label!r})"


def _prompts(
    data: _Inputs,
    template: str | None,
    *,
    namespace: Mapping[str, Any] | None = None,
    column: str | None = None,
) -> list[str]:
    """The prompt of every item; ``UsageError`` before anything is sent when one cannot be made."""
    items = data.items
    if template is None:
        if data.kind == "rows":
            keys = ", ".join(f"{{{k}}}" for k in list(items[0])[:3]) if items else "{title}"
            raise UsageError(
                f"The items are dicts (rows): give a template naming their fields, e.g. {keys!r}."
            )
        prompts = []
        for i, item in enumerate(items):
            if _missing(item):
                raise UsageError(
                    f"{_row_label(i, data.index).capitalize()} is empty ({item!r}): drop it first "
                    "(e.g. series.dropna()) or fill it (series.fillna(''))."
                )
            text = _text_of(item)
            if not text.strip():
                raise UsageError(f"{_row_label(i, data.index).capitalize()} is an empty prompt.")
            prompts.append(text)
        return prompts

    tpl = Template(template)
    if namespace is not None:
        tpl = _bind_namespace(tpl, data, namespace)
    if data.kind == "plain":
        aliases = {data.name} if data.name else set()
        if not tpl.has_item and not aliases & set(tpl.fields):
            raise UsageError(
                f"The template {template!r} has no {{}}: every item would get the same prompt. "
                "Write {} where the item goes, e.g. 'Summarize: {}'."
            )
        prompts = []
        for i, item in enumerate(items):
            if _missing(item):
                raise UsageError(
                    f"{_row_label(i, data.index).capitalize()} is empty ({item!r}): drop it first "
                    "(e.g. series.dropna()) or fill it (series.fillna(''))."
                )
            text = _text_of(item)
            values = {name: (text if name in aliases else "{" + name + "}") for name in tpl.fields}
            prompts.append(tpl.render(values, text))
        return prompts

    # Rows: every {name} must be a field of every row.
    if tpl.has_item and column is None:
        raise UsageError(
            "{} stands for a plain item, but the items are dicts (rows): name a field instead, "
            f"e.g. {{{next(iter(items[0]), 'text')}}}."
            if items
            else "{} needs plain items."
        )
    if not tpl.fields and not tpl.has_item:
        raise UsageError(
            f"The template {template!r} names no field: every row would get the same prompt. "
            "Write {field} where a value goes, e.g. '{title}: {body}'."
        )
    known: set[str] = set()
    for item in items:
        known.update(k for k in item if isinstance(k, str))
    for name in dict.fromkeys(tpl.fields):
        if name not in known:
            close = difflib.get_close_matches(name, sorted(known), n=1)
            hint = f" Did you mean {{{close[0]}}}?" if close else ""
            shown = ", ".join(sorted(known)[:12])
            raise UsageError(
                f"The template names {{{name}}}, which is not a field of any row (fields: {shown}).{hint}"
            )
    prompts = []
    fields = list(dict.fromkeys(tpl.fields))
    for i, row in enumerate(items):
        values = {}
        for name in fields:
            value = row.get(name)
            if _missing(value):
                what = "lacks the field" if name not in row else f"has no value ({value!r}) for"
                raise UsageError(
                    f"{_row_label(i, data.index).capitalize()} {what} {{{name}}}: nothing was sent. "
                    "Fill or drop such rows first (df.dropna(subset=[...]) or df.fillna(''))."
                )
            values[name] = _text_of(value)
        item = None
        if column is not None:
            value = row.get(column)
            if _missing(value):
                raise UsageError(
                    f"{_row_label(i, data.index).capitalize()} has no value in column {column!r}."
                )
            item = _text_of(value)
        prompts.append(tpl.render(values, item))
    return prompts


def _bind_namespace(tpl: Template, data: _Inputs, namespace: Mapping[str, Any]) -> Template:
    """For ``%%ask --each``: names that are not item fields come from the notebook's namespace."""
    from .notebook.interpolate import interpolate, to_text

    item_fields: set[str] = set()
    if data.kind == "rows":
        for row in data.items:
            item_fields.update(k for k in row if isinstance(k, str))
    elif data.name:
        item_fields.add(data.name)
    bound = Template.__new__(Template)
    bound.text = tpl.text
    parts: list[str | _Slot] = []
    for part in tpl.parts:
        if isinstance(part, str):
            part = interpolate(part, namespace)
        elif part.name is not None and part.name not in item_fields and part.name in namespace:
            part = to_text(namespace[part.name])
        if isinstance(part, str) and parts and isinstance(parts[-1], str):
            parts[-1] += part
        else:
            parts.append(part)
    bound.parts = parts
    bound.fields = [p.name for p in parts if isinstance(p, _Slot) and p.name is not None]
    bound.has_item = any(isinstance(p, _Slot) and p.name is None for p in parts)
    return bound


# --------------------------------------------------------------------------- answers


def _data_dict(value: Any) -> dict[str, Any] | None:
    if isinstance(value, dict):
        return value
    dump = getattr(value, "model_dump", None) or getattr(value, "dict", None)
    if callable(dump) and hasattr(
        type(value), "model_fields" if hasattr(value, "model_dump") else "__fields__"
    ):
        try:
            result = dump()
        except Exception:
            return None
        return result if isinstance(result, dict) else None
    return None


class Answers(list):
    """The answers of a batch, in input order: a list of ``AIResponse``.

    ``.texts``, ``.data`` and ``.failed`` (indices) for plain Python;
    ``.to_series()`` / ``.to_frame()`` for pandas, indexed like the input
    Series or DataFrame so ``df.join(answers.to_frame())`` lines up.
    """

    def __init__(
        self,
        responses: Iterable[AIResponse] = (),
        *,
        prompts: list[str] | None = None,
        index: Any = None,
        usage: dict[str, Any] | None = None,
        stopped: str | None = None,
        interrupted: bool = False,
    ) -> None:
        super().__init__(responses)
        self.prompts = prompts if prompts is not None else [""] * len(self)
        self.index = index
        self.usage: dict[str, Any] = usage if usage is not None else _usage_of(self)
        #: Why the batch stopped before the end (budget, interrupt, a failure), or None.
        self.stopped = stopped
        self.interrupted = interrupted

    @property
    def texts(self) -> list[str]:
        return [r.text for r in self]

    @property
    def data(self) -> list[Any]:
        return [r.data for r in self]

    @property
    def errors(self) -> list[str | None]:
        return [r.error for r in self]

    @property
    def failed(self) -> list[int]:
        """Positions of the failed answers (interrupted and not-sent ones included)."""
        return [i for i, r in enumerate(self) if r.failed]

    @property
    def ok_count(self) -> int:
        return sum(1 for r in self if not r.failed)

    def _label(self, i: int) -> str:
        if self.index is None:
            return str(i)
        try:
            label = self.index[i]
        except Exception:
            return str(i)
        return str(i) if label == i else f"{i} (index {label!r})"

    def _pandas(self) -> Any:
        try:
            import pandas
        except ImportError:
            raise ImportError(
                "to_series()/to_frame() need pandas (pip install pandas); "
                "without it use .texts, .data and .errors."
            ) from None
        return pandas

    def to_series(self, name: str = "answer") -> Any:
        """The texts as a pandas Series, on the input's index."""
        pd = self._pandas()
        return pd.Series(self.texts, index=self.index, name=name, dtype="object")

    def to_frame(self) -> Any:
        """A DataFrame on the input's index: the fields of dict ``.data`` as columns
        (else a ``text`` column), and ``error``."""
        pd = self._pandas()
        dicts = [_data_dict(r.data) for r in self]
        columns: dict[str, list[Any]] = {}
        if any(d is not None for d in dicts):
            names: dict[str, None] = {}
            for d in dicts:
                names.update(dict.fromkeys(d or ()))
            for name in names:
                columns[name] = [d.get(name) if d is not None else None for d in dicts]
        else:
            columns["text"] = self.texts
        columns["error"] = self.errors
        return pd.DataFrame(columns, index=self.index)

    def summary(self) -> str:
        u = self.usage
        parts = [f"{len(self):,} answers"]
        failed = len(self.failed)
        if failed:
            parts.append(f"{failed:,} failed")
        if u.get("resumed"):
            parts.append(f"{u['resumed']:,} resumed")
        tokens_total = (u.get("tokens_in") or 0) + (u.get("tokens_out") or 0)
        if tokens_total:
            parts.append(f"{tokens_total:,} tokens")
        if u.get("cost"):
            parts.append(f"${u['cost']:.4f}" + ("+" if u.get("unpriced") else ""))
        if u.get("seconds") is not None:
            parts.append(f"{u['seconds']:.1f}s")
        return " · ".join(parts)

    def __repr__(self) -> str:
        lines = [f"Answers({self.summary()})"]
        if self.stopped:
            lines.append(f"  stopped: {self.stopped}")
        for i, r in enumerate(self[:5]):
            lines.append(f"  [{self._label(i)}] {r!r}")
        if len(self) > 5:
            lines.append(f"  ... {len(self) - 5:,} more")
        return "\n".join(lines)

    def _repr_markdown_(self) -> str:
        return preview_table(self)


def _usage_of(responses: Iterable[AIResponse]) -> dict[str, Any]:
    out = {"calls": 0, "failures": 0, "tokens_in": 0, "tokens_out": 0, "cost": 0.0, "unpriced": 0}
    for r in responses:
        out["calls"] += 1
        out["failures"] += r.failed
        out["tokens_in"] += r.tokens_in or 0
        out["tokens_out"] += r.tokens_out or 0
        if r.cost is None:
            out["unpriced"] += 1
        else:
            out["cost"] += r.cost
    out["cost"] = round(out["cost"], 6)
    return out


def _cell(text: str, width: int) -> str:
    text = " ".join(str(text).split())
    if len(text) > width:
        text = text[: width - 1] + "…"
    return text.replace("|", "\\|")


def preview_table(answers: Answers, n: int = 5) -> str:
    """The first ``n`` answers as a Markdown table (prompt, answer or error), with a summary line."""
    structured = any(r.data is not None for r in answers)
    lines = [
        "| # | prompt | " + ("data" if structured else "answer") + " |",
        "| ---: | --- | --- |",
    ]
    for i, r in enumerate(list.__getitem__(answers, slice(0, n))):
        prompt = answers.prompts[i] if i < len(answers.prompts) else ""
        if r.failed:
            shown = f"**failed**: {_cell(r.error or '', 70)}"
        elif structured:
            shown = "`" + _cell(json.dumps(_data_dict(r.data) or r.data, default=str), 70) + "`"
        else:
            shown = _cell(r.text, 90)
        lines.append(f"| {answers._label(i)} | {_cell(prompt, 50)} | {shown} |")
    more = f" (first {min(n, len(answers))} shown)" if len(answers) > n else ""
    lines.append("")
    lines.append(f"{answers.summary()}{more}")
    if answers.stopped:
        lines.append("")
        lines.append(f"Stopped: {answers.stopped}")
    return "\n".join(lines)


# --------------------------------------------------------------------------- resume memory

_memory: OrderedDict[str, AIResponse] = OrderedDict()
_last: list[Answers | None] = [None]


def forget() -> None:
    """Drop the finished answers kept for resuming."""
    _memory.clear()


def last_answers() -> Answers | None:
    """The answers of the most recent batch of this process, finished or not (e.g. after Ctrl-C)."""
    return _last[0]


def _options_key(kwargs: Mapping[str, Any], schema: Any) -> str:
    material = {k: kwargs[k] for k in sorted(kwargs)}
    if schema is not None:
        material["schema"] = schema
    return json.dumps(material, sort_keys=True, default=repr, separators=(",", ":"))


def _item_key(prompt: str, options: str) -> str:
    return hashlib.sha256(f"{options}\x00{prompt}".encode()).hexdigest()


# --------------------------------------------------------------------------- estimates


@dataclass
class Estimate:
    """What a batch would send and cost; nothing is sent to make it."""

    requests: int
    tokens_in: int
    tokens_out: int
    #: True when ``tokens_out`` assumes ``ASSUMED_OUTPUT_TOKENS`` per answer (no max_tokens).
    output_assumed: bool
    #: Dollars, or None when the model's price is unknown.
    cost: float | None
    backend: str | None = None
    model: str | None = None
    #: Items that would come from an unfinished earlier run instead of being sent.
    resumed: int = 0
    notes: list[str] = field(default_factory=list)
    per_item_tokens_in: list[int] = field(default_factory=list, repr=False)
    per_item_cost: list[float] | None = field(default=None, repr=False)

    def _cost_text(self) -> str:
        if self.cost is None:
            return "unknown (no price for this model)"
        if 0 < self.cost < 0.001:  # small jobs: two significant digits say more than $0.0000
            return f"${self.cost:.6f}"
        return f"${self.cost:.4f}"

    def _output_text(self) -> str:
        if self.output_assumed:
            return f"{self.tokens_out:,} (assumed {ASSUMED_OUTPUT_TOKENS} per answer: no max_tokens)"
        return f"{self.tokens_out:,} (at most max_tokens per answer)"

    def __repr__(self) -> str:
        target = f"{self.backend or '?'}" + (f" / {self.model}" if self.model else "")
        lines = [
            f"Estimate: {self.requests:,} requests to {target}",
            f"  input tokens:  {self.tokens_in:,} (counted: {tokens.METHOD})",
            f"  output tokens: {self._output_text()}",
            f"  cost:          {self._cost_text()}",
        ]
        if self.resumed:
            lines.append(f"  resumed:       {self.resumed:,} items already answered (not counted)")
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)

    def _repr_markdown_(self) -> str:
        target = f"`{self.backend or '?'}`" + (f" / `{self.model}`" if self.model else "")
        rows = [
            "| | estimate |",
            "| --- | ---: |",
            f"| requests | {self.requests:,} |",
            f"| input tokens | {self.tokens_in:,} |",
            f"| output tokens | {self._output_text()} |",
            f"| cost | {self._cost_text()} |",
        ]
        if self.resumed:
            rows.append(f"| resumed (not sent) | {self.resumed:,} |")
        foot = [f"Target: {target}. Input tokens are counted, not tokenized: {tokens.METHOD}."]
        foot += self.notes
        return "\n".join(rows) + "\n\n" + " ".join(foot)

    def to_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "tokens_in": self.tokens_in,
            "tokens_out": self.tokens_out,
            "output_assumed": self.output_assumed,
            "cost": self.cost,
            "backend": self.backend,
            "model": self.model,
            "resumed": self.resumed,
        }


def _target(prompt: str, kwargs: Mapping[str, Any]) -> tuple[str | None, str | None, Any, str | None]:
    """(backend, model, backend instance or None, error) as routing would decide; sends nothing."""
    from . import api

    decided = api.route(
        prompt,
        model=kwargs.get("model"),
        backend=kwargs.get("backend"),
    )
    backend_name, model = decided.backend, decided.model
    if backend_name is None:
        return None, None, None, decided.error
    instance = None
    try:
        from .registry import backend_registry

        instance = backend_registry.get(backend_name)
    except Exception:
        instance = None
    if model is None and instance is not None:
        model = getattr(instance, "fallback_model", None)
    return backend_name, model, instance, None


def _price(backend: Any, model: str | None) -> Any:
    """A ``cost(tokens_in, tokens_out)`` callable, or None when the price is unknown."""
    if backend is not None and getattr(type(backend), "free", False):
        return lambda tin, tout: 0.0
    if not model:
        return None
    from .registry import model_registry

    info = model_registry.get_model(model)
    if info is None or info.cost(1, 1) is None:
        return None
    return info.cost


def _estimate(
    prompts: list[str],
    kwargs: Mapping[str, Any],
    schema_json: dict[str, Any] | None,
    *,
    resumed: set[int] | frozenset[int] = frozenset(),
) -> Estimate:
    from .config import get_config

    settings = get_config()
    backend_name, model, instance, error = (
        _target(prompts[0], kwargs) if prompts else (None, None, None, None)
    )
    system = kwargs.get("system")
    if system is None:
        system = settings.system
    history = list(kwargs.get("history") or [])
    fixed = tokens.count_messages(([{"content": system}] if system else []) + history)
    notes: list[str] = []
    if error:
        notes.append(error)
    if schema_json is not None:
        native = instance is not None and "schema" in (getattr(instance, "features", None) or ())
        if not native:
            from .structured import instructions

            fixed += tokens.count(instructions(schema_json))
            notes.append("Schema instructions are counted in the system prompt; a retry would add more.")
    max_tokens = kwargs.get("max_tokens")
    if max_tokens is None:
        max_tokens = settings.max_tokens
    assumed = max_tokens is None
    per_out = ASSUMED_OUTPUT_TOKENS if assumed else int(max_tokens)
    price = _price(instance, model)
    per_in: list[int] = []
    per_cost: list[float] | None = [] if price is not None else None
    for i, prompt in enumerate(prompts):
        tin = fixed + tokens.count(prompt) + tokens.MESSAGE_OVERHEAD
        per_in.append(tin)
        if per_cost is not None:
            per_cost.append(0.0 if i in resumed else (price(tin, per_out) or 0.0))
    sent = [i for i in range(len(prompts)) if i not in resumed]
    tokens_in = sum(per_in[i] for i in sent)
    if price is None and backend_name is not None:
        notes.append(f"No price is known for {model or backend_name!r}: the cost cannot be estimated.")
    return Estimate(
        requests=len(sent),
        tokens_in=tokens_in,
        tokens_out=per_out * len(sent),
        output_assumed=assumed,
        cost=round(sum(per_cost), 6) if per_cost is not None else None,
        backend=backend_name,
        model=model,
        resumed=len(resumed),
        notes=notes,
        per_item_tokens_in=per_in,
        per_item_cost=per_cost,
    )


# --------------------------------------------------------------------------- planning


@dataclass
class _Plan:
    data: _Inputs
    prompts: list[str]
    kwargs: dict[str, Any]
    schema: Any
    schema_json: dict[str, Any] | None
    keys: list[str]
    resumed: dict[int, AIResponse]


def _plan(
    inputs: Any,
    template: str | None,
    schema: Any,
    ask_kwargs: dict[str, Any],
    *,
    resume: bool,
    where: str,
    namespace: Mapping[str, Any] | None = None,
    column: str | None = None,
) -> _Plan:
    check_kwargs(ask_kwargs, [*REQUEST_ARGS, *_ASK_MANY_ARGS], where=where)
    for name in _ASK_MANY_ARGS:  # allowed above only for the did-you-mean of a typo
        if name in ask_kwargs:
            raise TypeError(f"{where}() got an unexpected keyword argument {name!r}.")
    data = _read_inputs(inputs)
    prompts = _prompts(data, template, namespace=namespace, column=column)
    schema_json = None
    if schema is not None:
        from . import structured

        schema_json = structured.normalize(schema)
    if prompts:
        from .request import Request

        Request(prompts[0], **{k: v for k, v in ask_kwargs.items()}, schema=schema)  # UsageError now
    options = _options_key(ask_kwargs, schema_json)
    keys = [_item_key(p, options) for p in prompts]
    resumed: dict[int, AIResponse] = {}
    if resume and _memory:
        for i, key in enumerate(keys):
            found = _memory.get(key)
            if found is not None:
                resumed[i] = found
    return _Plan(data, prompts, dict(ask_kwargs), schema, schema_json, keys, resumed)


# --------------------------------------------------------------------------- the run


class _Gate:
    """Shared back-off of one batch: a pause until ``open_at`` and an effective concurrency."""

    def __init__(self, concurrency: int) -> None:
        self.max = concurrency
        self.limit = concurrency
        self.open_at = 0.0
        self.throttled = 0
        self._successes = 0

    def remaining(self) -> float:
        return max(0.0, self.open_at - clock())

    async def wait(self, cap: float | None = None) -> float:
        """Sleep while the batch is paused; returns the seconds waited."""
        waited = 0.0
        while True:
            left = self.remaining()
            if left <= 0:
                return waited
            if cap is not None:
                left = min(left, max(0.0, cap - waited))
                if left <= 0:
                    return waited
            await sleep(left)
            waited += left

    def rate_limited(self, retry_after: float | None) -> None:
        pause = DEFAULT_BACKOFF if retry_after is None else max(0.0, float(retry_after))
        self.open_at = max(self.open_at, clock() + pause)
        self.throttled += 1
        self.limit = max(1, self.limit // 2)
        self._successes = 0

    def succeeded(self) -> None:
        if self.limit < self.max:
            self._successes += 1
            if self._successes >= self.limit:
                self.limit += 1
                self._successes = 0


_current: contextvars.ContextVar[_Run | None] = contextvars.ContextVar("ttt_magic_batch", default=None)


def _is_rate_limit(exc: ProviderError) -> bool:
    return exc.kind == "rate_limit" or exc.status == 429


def gate(call: Any, proceed: Handler) -> AsyncIterator[Item]:
    """The ``batch-gate`` interceptor: calls outside a batch pass straight through."""
    run = _current.get()
    if run is None:
        return proceed(call)
    return _gated(run, call, proceed)


async def _gated(run: _Run, call: Any, proceed: Handler) -> AsyncIterator[Item]:
    # Capped below the attempt's own timeout: the router's idle watch counts this wait.
    cap = min(getattr(call, "max_retry_wait", 30.0), getattr(call, "timeout", 30.0) / 2)
    await run.gate.wait(cap=cap)
    try:
        async for item in proceed(call):
            yield item
    except ProviderError as exc:
        if _is_rate_limit(exc):
            run.gate.rate_limited(exc.retry_after)
        raise


chain.add("batch-gate", gate, order=GATE_ORDER)


class _Stop(Exception):
    pass


class _Run:
    """One execution of a plan: the workers' shared state, read by the caller's thread for progress."""

    def __init__(
        self,
        plan: _Plan,
        *,
        concurrency: int,
        budget: float | None,
        on_error: str,
        per_item_cost: list[float] | None,
    ) -> None:
        self.plan = plan
        n = len(plan.prompts)
        self.results: list[AIResponse | None] = [None] * n
        for i, response in plan.resumed.items():
            self.results[i] = response.copy_with(metadata={**response.metadata, "resumed": True})
        self.pending = [i for i in range(n) if i not in plan.resumed]
        self.cursor = 0
        self.concurrency = concurrency
        self.gate = _Gate(concurrency)
        self.budget = budget
        self.per_item_cost = per_item_cost
        self.on_error = on_error
        self.done = len(plan.resumed)
        self.resumed = len(plan.resumed)
        self.failed = 0
        self.sent = 0
        self.tokens_in = self.tokens_out = 0
        self.cost = 0.0
        self.unpriced = 0
        self.inflight = 0
        self.inflight_cost = 0.0
        self.started = time.perf_counter()
        self.finished_at: float | None = None
        self.stop_reason: str | None = None
        self.stop_kind: str | None = None
        self.failure: int | None = None
        self.slot_free: asyncio.Event | None = None
        #: Set when the workers have all ended (the caller waits on it after Ctrl-C).
        self.closed = threading.Event()

    # -- shared by the workers (loop thread only)

    def take(self) -> int | None:
        if self.stop_reason is not None or self.cursor >= len(self.pending):
            return None
        index = self.pending[self.cursor]
        self.cursor += 1
        return index

    def stop(self, kind: str, reason: str) -> None:
        if self.stop_reason is None:
            self.stop_kind, self.stop_reason = kind, reason

    def finish(self, i: int, response: AIResponse) -> None:
        self.results[i] = response
        self.done += 1
        self.sent += 1
        if response.failed:
            self.failed += 1
        else:
            self.gate.succeeded()
        self.tokens_in += response.tokens_in or 0
        self.tokens_out += response.tokens_out or 0
        if response.cost is None:
            self.unpriced += 1
        else:
            self.cost += response.cost

    # -- read by the caller's thread

    def snapshot(self) -> _progress.Snapshot:
        end = self.finished_at if self.finished_at is not None else time.perf_counter()
        return _progress.Snapshot(
            total=len(self.results),
            done=self.done,
            failed=self.failed,
            resumed=self.resumed,
            tokens=self.tokens_in + self.tokens_out,
            cost=self.cost,
            unpriced=self.unpriced,
            elapsed=end - self.started,
            waiting=self.gate.remaining(),
            stopped=self.stop_reason,
        )

    def answers(self, *, interrupted: bool = False) -> Answers:
        plan = self.plan
        if interrupted and self.stop_reason is None:
            left = len(self.results) - self.done
            self.stop(
                "interrupted",
                f"Interrupted after {self.done:,} of {len(self.results):,} items ({left:,} not finished): "
                "run the same ask_many(...) again to send only those.",
            )
        out: list[AIResponse] = []
        for i, response in enumerate(self.results):
            if response is None:
                response = self._placeholder(i)
            out.append(response)
        usage = {
            "calls": self.sent,
            "failures": self.failed,
            "resumed": self.resumed,
            "tokens_in": self.tokens_in,
            "tokens_out": self.tokens_out,
            "cost": round(self.cost, 6),
            "unpriced": self.unpriced,
            "seconds": round((self.finished_at or time.perf_counter()) - self.started, 3),
        }
        return Answers(
            out,
            prompts=plan.prompts,
            index=plan.data.index,
            usage=usage,
            stopped=self.stop_reason,
            interrupted=self.stop_kind == "interrupted",
        )

    def _placeholder(self, i: int) -> AIResponse:
        kind = self.stop_kind or "interrupted"
        if kind == "budget":
            error = f"Not sent: {self.stop_reason}"
            metadata = {"not_sent": True, "budget": True}
        elif kind == "error":
            error = (
                f"Not finished: the batch stopped at the failure of item {self.failure} (on_error='raise')."
            )
            metadata = {"not_sent": True, "stopped": True}
        else:
            error = "Interrupted: not finished (run the same ask_many again to resume)."
            metadata = {"interrupted": True}
        return AIResponse("", error=error, metadata=metadata)

    def remember(self) -> None:
        """Keep the finished answers for a later run, or consume the memory when all succeeded."""
        keys = self.plan.keys
        complete = self.stop_reason is None and all(r is not None and not r.failed for r in self.results)
        if complete:
            for key in keys:
                _memory.pop(key, None)
            return
        for key, response in zip(keys, self.results):
            if response is not None and not response.failed:
                _memory[key] = response
                _memory.move_to_end(key)
        while len(_memory) > MEMORY_MAX:
            _memory.popitem(last=False)


async def _ask_one(prompt: str, kwargs: dict[str, Any]) -> AIResponse:
    from . import api

    return await api.aask(prompt, **kwargs)


async def _worker(run: _Run) -> None:
    plan = run.plan
    kwargs = dict(plan.kwargs)
    if plan.schema is not None:
        kwargs["schema"] = plan.schema
    assert run.slot_free is not None
    while True:
        while run.inflight >= run.gate.limit and run.stop_reason is None:
            run.slot_free.clear()
            await run.slot_free.wait()
        i = run.take()
        if i is None:
            return
        await run.gate.wait()
        estimate = run.per_item_cost[i] if run.per_item_cost is not None else 0.0
        if run.budget is not None and run.cost + run.inflight_cost + estimate > run.budget + 1e-12:
            run.stop(
                "budget",
                f"the budget of ${run.budget:.4f} would be passed: stopped after {run.done:,} of "
                f"{len(run.results):,} items (spent ${run.cost:.4f}, "
                f"${run.inflight_cost:.4f} more in flight, the next item ~${estimate:.4f}).",
            )
            return
        run.inflight += 1
        run.inflight_cost += estimate
        try:
            response = await _ask_one(plan.prompts[i], kwargs)
        except UsageError:
            raise
        except Exception as exc:  # a bug below us fails this item, not the batch
            response = AIResponse("", error=f"{type(exc).__name__}: {exc}")
        finally:
            run.inflight -= 1
            run.inflight_cost -= estimate
            run.slot_free.set()
        if not isinstance(response, AIResponse):
            response = AIResponse(str(response))
        run.finish(i, response)
        if response.failed and run.on_error == "raise":
            run.failure = i
            run.stop("error", f"item {i} failed: {response.error}")
            raise _Stop


async def _execute(run: _Run) -> None:
    """Run the workers; on any exit (cancel included) no request is left running."""
    token = _current.set(run)
    run.slot_free = asyncio.Event()
    workers = [asyncio.ensure_future(_worker(run)) for _ in range(min(run.concurrency, len(run.pending)))]
    try:
        if workers:
            done, _ = await asyncio.wait(workers, return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                exc = task.exception()
                if exc is not None and not isinstance(exc, _Stop):
                    raise exc
    finally:
        _current.reset(token)
        for task in workers:
            task.cancel()
        pending = [t for t in workers if not t.done()]
        if pending:
            await asyncio.wait(pending)
        run.finished_at = time.perf_counter()
        run.closed.set()


def _prepare(
    inputs: Any,
    template: str | None,
    *,
    concurrency: int,
    budget: float | None,
    schema: Any,
    on_error: str,
    resume: bool,
    ask_kwargs: dict[str, Any],
    where: str,
    namespace: Mapping[str, Any] | None = None,
    column: str | None = None,
) -> tuple[_Plan, _Run | None, Estimate | None]:
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise UsageError(f"concurrency must be a whole number of at least 1, not {concurrency!r}.")
    if on_error not in ("keep", "raise"):
        raise UsageError(f"on_error must be 'keep' or 'raise', not {on_error!r}.")
    if budget is not None:
        if isinstance(budget, bool) or not isinstance(budget, (int, float)) or not budget >= 0:
            raise UsageError(f"budget must be a number of dollars (e.g. 0.50), not {budget!r}.")
        budget = float(budget)
    plan = _plan(
        inputs,
        template,
        schema,
        ask_kwargs,
        resume=resume,
        where=where,
        namespace=namespace,
        column=column,
    )
    est = None
    if budget is not None and plan.prompts:
        est = _estimate(plan.prompts, plan.kwargs, plan.schema_json, resumed=set(plan.resumed))
        if est.per_item_cost is None:
            raise UsageError(
                f"budget= needs a price, and none is known for {est.model or est.backend!r}.",
                hint="Pick a model from the catalogue (ttt_magic.model_registry.list_models()), "
                "or drop budget=.",
            )
    run = _Run(
        plan,
        concurrency=concurrency,
        budget=budget,
        on_error=on_error,
        per_item_cost=est.per_item_cost if est is not None else None,
    )
    return plan, run, est


def _finish_run(run: _Run, *, interrupted: bool = False) -> Answers:
    answers = run.answers(interrupted=interrupted)
    run.remember()
    _last[0] = answers
    return answers


def _announce(answers: Answers, shown: bool) -> None:
    if answers.stopped and not answers.interrupted:
        print(f"ask_many: {answers.stopped}", file=sys.stderr, flush=True)


def ask_many(
    inputs: Any,
    template: str | None = None,
    *,
    concurrency: int = 8,
    progress: Any = None,
    budget: float | None = None,
    schema: Any = None,
    on_error: str = "keep",
    dry_run: bool = False,
    resume: bool = True,
    engine: str = "direct",
    **ask_kwargs: Any,
) -> Any:
    """Ask one prompt per item, ``concurrency`` at a time; ``Answers`` in input order.

    ``template``: ``"Summarize: {}"`` for plain items, ``"{title}: {body}"`` for
    dict items / DataFrame rows (see ``Template``). ``budget`` (dollars) stops
    sending once spent plus the estimated cost in flight would pass it;
    ``schema`` asks for structured answers (``answer.data``); ``dry_run=True``
    returns the ``estimate`` instead of sending. Every other keyword is an
    ``ask()`` argument applied to every item (``model``, ``system``, ...).

    Ctrl-C raises ``BatchInterrupted`` (a KeyboardInterrupt) with ``.answers``;
    asking the same again resumes. ``on_error="raise"`` raises ``BatchFailed``
    at the first failure.

    ``engine="batch"``: the provider's batch service (half price, answers within
    24 h, see ``ttt_magic.batchjobs``; a backend without one is a UsageError);
    ``engine="auto"``: the batch service where the backend has one, else asked directly.
    """
    if engine != "direct":
        from .batchjobs import run_batch

        return run_batch(
            inputs,
            template,
            engine=engine,
            progress=progress,
            budget=budget,
            schema=schema,
            on_error=on_error,
            dry_run=dry_run,
            **ask_kwargs,
        )
    if dry_run:
        return estimate(
            inputs,
            template,
            schema=schema,
            _where="ask_many",
            _resume=resume,
            _on_error=on_error,
            **ask_kwargs,
        )
    _, run, _ = _prepare(
        inputs,
        template,
        concurrency=concurrency,
        budget=budget,
        schema=schema,
        on_error=on_error,
        resume=resume,
        ask_kwargs=ask_kwargs,
        where="ask_many",
    )
    return _drive(run, progress)


def _drive(run: _Run, progress: Any) -> Answers:
    """Run the batch on the loop thread; this (the caller's) thread draws the progress."""
    if not run.pending:
        answers = _finish_run(run)
        return answers
    if runner._runner.in_loop_thread():
        raise RuntimeError(
            "ask_many() was called from inside ttt_magic's own event loop: use `await aask_many(...)`."
        )
    bar = _progress.make(progress, len(run.results))
    future = asyncio.run_coroutine_threadsafe(_execute(run), runner.loop())
    try:
        while True:
            try:
                future.result(timeout=runner.POLL_INTERVAL)
                break
            except concurrent.futures.TimeoutError:
                if future.done():
                    raise
                if bar is not None:
                    bar.update(run.snapshot())
    except _Stop:
        pass
    except KeyboardInterrupt:
        future.cancel()
        run.closed.wait(runner.CANCEL_GRACE)  # the workers' cleanup: cancelled requests closed
        answers = _finish_run(run, interrupted=True)
        if bar is not None:
            bar.close(run.snapshot())
        raise BatchInterrupted(answers) from None
    except BaseException:
        if bar is not None:
            bar.close(run.snapshot())
        raise
    answers = _finish_run(run)
    if bar is not None:
        bar.close(run.snapshot())
    if run.stop_kind == "error" and run.failure is not None:
        raise BatchFailed(run.failure, answers[run.failure], answers)
    _announce(answers, bar is not None)
    return answers


async def aask_many(
    inputs: Any,
    template: str | None = None,
    *,
    concurrency: int = 8,
    progress: Any = False,
    budget: float | None = None,
    schema: Any = None,
    on_error: str = "keep",
    resume: bool = True,
    **ask_kwargs: Any,
) -> Answers:
    """``ask_many`` on the caller's own event loop (no progress unless asked: ``progress=True``)."""
    _, run, _ = _prepare(
        inputs,
        template,
        concurrency=concurrency,
        budget=budget,
        schema=schema,
        on_error=on_error,
        resume=resume,
        ask_kwargs=ask_kwargs,
        where="aask_many",
    )
    assert run is not None
    bar = _progress.make(progress, len(run.results)) if run.pending else None
    task = asyncio.ensure_future(_execute(run))
    try:
        while not task.done():
            await asyncio.wait({task}, timeout=0.1)
            if bar is not None and not task.done():
                bar.update(run.snapshot())
        try:
            task.result()
        except _Stop:
            pass
    except asyncio.CancelledError:
        task.cancel()
        await asyncio.wait({task})
        _finish_run(run, interrupted=True)
        if bar is not None:
            bar.close(run.snapshot())
        raise
    answers = _finish_run(run)
    if bar is not None:
        bar.close(run.snapshot())
    if run.stop_kind == "error" and run.failure is not None:
        raise BatchFailed(run.failure, answers[run.failure], answers)
    _announce(answers, bar is not None)
    return answers


def estimate(
    inputs: Any,
    template: str | None = None,
    *,
    model: str | None = None,
    max_tokens: int | None = None,
    schema: Any = None,
    _where: str = "estimate",
    _resume: bool = True,
    _on_error: str = "keep",
    **kw: Any,
) -> Estimate:
    """Requests, input tokens (counted, see ``ttt_magic.tokens``), output tokens and dollars; sends nothing.

    Output tokens are ``max_tokens`` per answer (the most that can be billed),
    or ``ASSUMED_OUTPUT_TOKENS`` per answer when no max_tokens is set.
    Dollars come from the catalogue's prices for the model routing would pick.
    """
    for name in ("concurrency", "progress", "budget", "on_error", "dry_run", "resume"):
        kw.pop(name, None)  # accepted so ask_many(..., dry_run=True) can pass everything through
    if _on_error not in ("keep", "raise"):
        raise UsageError(f"on_error must be 'keep' or 'raise', not {_on_error!r}.")
    ask_kwargs = dict(kw)
    if model is not None:
        ask_kwargs["model"] = model
    if max_tokens is not None:
        ask_kwargs["max_tokens"] = max_tokens
    plan = _plan(inputs, template, schema, ask_kwargs, resume=_resume, where=_where)
    if not plan.prompts:
        return Estimate(0, 0, 0, max_tokens is None, 0.0)
    return _estimate(plan.prompts, plan.kwargs, plan.schema_json, resumed=set(plan.resumed))


# --------------------------------------------------------------------------- notebook and CLI helpers


def run_each(
    items: Any, template: str, *, namespace: Mapping[str, Any] | None = None, **kwargs: Any
) -> Answers:
    """``%%ask --each items``: the cell is the template, asked once per item.

    Item fields (``{}``, ``{column}``) are filled per item; any other
    ``{name}`` / ``{df.shape}`` comes from ``namespace`` (the user's
    namespace, same rules as ``%%ask``) once, before anything is sent.
    """
    options = {
        k: kwargs.pop(k) for k in ("concurrency", "budget", "schema", "on_error", "resume") if k in kwargs
    }
    progress = kwargs.pop("progress", None)
    _, run, _ = _prepare(
        items,
        template,
        concurrency=options.get("concurrency", 8),
        budget=options.get("budget"),
        schema=options.get("schema"),
        on_error=options.get("on_error", "keep"),
        resume=options.get("resume", True),
        ask_kwargs=kwargs,
        where="run_each",
        namespace=namespace,
    )
    assert run is not None
    return _drive(run, progress)


def _parse_schema_arg(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        example = '{"topic": "str", "score": "int"}'
        raise UsageError(f"--schema must be JSON, e.g. '{example}', not {text!r}.") from None


def _cli_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m ttt_magic ask-many",
        description="Ask one prompt per row of a CSV file; write the answers as CSV.",
    )
    parser.add_argument("file", help="input CSV file (with a header row); '-' reads standard input")
    parser.add_argument("--column", "-c", help="the column {} stands for (default: the first column)")
    parser.add_argument(
        "--template",
        "-t",
        help="prompt template: {} is the --column value, {name} any column (default: '{}')",
    )
    parser.add_argument("--out", "-o", help="output CSV (default: standard output)")
    parser.add_argument(
        "--answer-column", default="answer", help="name of the answer column (default: answer)"
    )
    parser.add_argument("--model", "-m")
    parser.add_argument("--backend", "-b")
    parser.add_argument("--system", "-s")
    parser.add_argument("--temperature", type=float)
    parser.add_argument("--max-tokens", type=int)
    parser.add_argument("--concurrency", "-n", type=int, default=8)
    parser.add_argument("--budget", type=float, help="stop once this many dollars would be passed")
    parser.add_argument("--schema", help="JSON Schema or shorthand as JSON: its fields become columns")
    parser.add_argument("--dry-run", action="store_true", help="print the estimate; send nothing")
    bar = parser.add_mutually_exclusive_group()
    bar.add_argument("--progress", dest="progress", action="store_true", default=None)
    bar.add_argument("--no-progress", dest="progress", action="store_false")
    return parser


def cli_ask_many(argv: list[str]) -> int:
    """``python -m ttt_magic ask-many FILE.csv --column text --template ... --out results.csv``.

    Exit codes: 0 every row answered, 1 some rows failed, 2 bad usage, 130 interrupted
    (the output then holds what finished; the rest have an ``error``).
    """
    try:
        args = _cli_parser().parse_args(argv)
    except SystemExit as exc:
        return 0 if exc.code == 0 else 2
    try:
        if args.file == "-":
            rows = list(csv.DictReader(sys.stdin))
            header = list(rows[0]) if rows else []
        else:
            with open(args.file, newline="", encoding="utf-8-sig") as handle:
                reader = csv.DictReader(handle)
                rows = list(reader)
                header = list(reader.fieldnames or [])
    except OSError as exc:
        print(f"Cannot read {args.file}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    if not header:
        print(f"{args.file} has no header row: the first line must name the columns.", file=sys.stderr)
        return 2
    column = args.column or header[0]
    if column not in header:
        close = difflib.get_close_matches(column, header, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        print(f"No column {column!r} in {args.file} (columns: {', '.join(header)}).{hint}", file=sys.stderr)
        return 2
    kwargs: dict[str, Any] = {}
    for name in ("model", "backend", "system", "temperature", "max_tokens"):
        value = getattr(args, name)
        if value is not None:
            kwargs[name] = value
    try:
        schema = _parse_schema_arg(args.schema) if args.schema else None
        template = args.template or "{}"
        if args.dry_run:
            plan = _plan(rows, template, schema, kwargs, resume=False, where="ask-many", column=column)
            print(repr(_estimate(plan.prompts, plan.kwargs, plan.schema_json)))
            return 0
        _, run, _ = _prepare(
            rows,
            template,
            concurrency=args.concurrency,
            budget=args.budget,
            schema=schema,
            on_error="keep",
            resume=True,
            ask_kwargs=kwargs,
            where="ask-many",
            column=column,
        )
    except (UsageError, TypeError) as exc:
        print(str(exc), file=sys.stderr)
        return 2
    assert run is not None
    code = 0
    try:
        answers = _drive(run, args.progress)
    except BatchInterrupted as exc:
        answers = exc.answers
        code = 130
    _write_csv(args.out, header, rows, answers, args.answer_column)
    if code == 0 and answers.failed:
        code = 1
    where = f" -> {args.out}" if args.out else ""
    print(answers.summary() + where, file=sys.stderr)
    if answers.stopped:
        print(answers.stopped, file=sys.stderr)
    return code


def _write_csv(path: str | None, header: list[str], rows: list[dict], answers: Answers, answer: str) -> None:
    extra: list[str] = []
    dicts = [_data_dict(r.data) for r in answers]
    for d in dicts:
        for name in d or ():
            if name not in extra and name not in header:
                extra.append(name)
    columns = [*header, answer, *extra, "error"]
    handle = open(path, "w", newline="", encoding="utf-8") if path else sys.stdout  # noqa: SIM115
    try:
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        for row, response, d in zip(rows, answers, dicts):
            out = dict(row)
            out[answer] = response.text
            for name in extra:
                value = (d or {}).get(name)
                out[name] = json.dumps(value) if isinstance(value, (dict, list)) else value
            out["error"] = response.error or ""
            writer.writerow(out)
    finally:
        if path:
            handle.close()
