"""What a notebook value looks like to a model: a compact, bounded description.

``describe(value)`` is the one way a value becomes prompt text when its whole
contents would be too much: ``{df}`` interpolation, ``%%ask --context``
(the variables a question names) and ``%ask --fix`` (the variables the failing
lines use) all call it. A DataFrame is described by its type, shape, columns
with their dtypes, missing values, memory size and a few rows (the first and
last ones); never by its whole contents, so describing a 1,000,000-row frame
costs about what describing a 10-row one does. Other values get their type and
a repr cut short with ``reprlib`` (containers say how many items they hold);
an image (a matplotlib figure, a PIL image, PNG/JPEG bytes) is named by its
size, never sent as text.

``budget`` (tokens, estimated with ``ttt_magic.tokens.count``) caps the
description: fewer rows first, then fewer columns, then the text is cut with
a visible mark. Nothing here imports pandas, numpy or matplotlib: a value is
recognised by its type's module, so describing an ``int`` stays cheap. The
header says ``DataFrame``, not ``pandas DataFrame``: "pandas" is a routing
keyword (it would send every question naming a frame to the coding model).
"""

from __future__ import annotations

import inspect
import reprlib
from collections.abc import Iterable
from typing import Any

from .tokens import count

__all__ = [
    "CUT_MARK",
    "describe",
    "fit",
    "image_of",
    "image_reference",
    "is_image",
    "size_text",
]

#: Rows a description shows by default (the first ones and the last ones).
DEFAULT_ROWS = 5
#: Columns listed with their dtypes before "... and N more".
MAX_LISTED_COLUMNS = 40
#: Columns a table of rows shows.
MAX_TABLE_COLUMNS = 12
#: Characters of one cell in a table of rows.
MAX_CELL = 50
#: Rows up to which memory is measured exactly (object columns are then read one by one).
EXACT_MEMORY_ROWS = 100_000
#: What ends a description cut to its budget.
CUT_MARK = "… [cut to fit the context budget]"


# --------------------------------------------------------------------------- small helpers


def size_text(nbytes: float) -> str:
    """Bytes as people read them, coarse on purpose: ``under 1 KB``, ``12 KB``, ``3.4 MB``."""
    if nbytes < 1024:
        return "under 1 KB"
    for unit, scale in (("KB", 1024), ("MB", 1024**2), ("GB", 1024**3)):
        if nbytes < scale * 1024 or unit == "GB":
            value = nbytes / scale
            return f"{value:.0f} {unit}" if unit == "KB" or value >= 100 else f"{value:.1f} {unit}"
    return f"{nbytes:.0f} B"  # pragma: no cover - the loop always returns


def _count(number: int) -> str:
    return f"{number:,}"


def _plural(number: int, word: str) -> str:
    return f"{_count(number)} {word}{'' if number == 1 else 's'}"


def _module(value: Any) -> str:
    return type(value).__module__.split(".")[0]


def fit(text: str, budget: int | None) -> str:
    """``text`` within ``budget`` estimated tokens, cut at a line or word with ``CUT_MARK`` when over."""
    if budget is None or count(text) <= budget:
        return text
    room = max(0, budget - count(CUT_MARK))
    low, high = 0, min(len(text), max(16, budget * 8))
    while low < high:  # the longest prefix that fits (count grows with the prefix)
        middle = (low + high + 1) // 2
        if count(text[:middle]) <= room:
            low = middle
        else:
            high = middle - 1
    cut = text[:low]
    for stop in ("\n", " "):
        at = cut.rfind(stop)
        if at > len(cut) // 2:
            cut = cut[:at]
            break
    return cut.rstrip() + (" " if cut and not cut.endswith("\n") else "") + CUT_MARK


# --------------------------------------------------------------------------- images


def _figure_of(value: Any) -> Any:
    """The matplotlib Figure behind a Figure, an Axes or a list of artists of one figure; else None."""
    if _module(value) != "matplotlib":
        if isinstance(value, (list, tuple)) and value and all(_module(v) == "matplotlib" for v in value):
            figures = {id(getattr(v, "figure", None)): getattr(v, "figure", None) for v in value}
            figure = next(iter(figures.values())) if len(figures) == 1 else None
            return figure if figure is not None and callable(getattr(figure, "savefig", None)) else None
        return None
    if callable(getattr(value, "savefig", None)):
        return value
    figure = getattr(value, "figure", None)
    return figure if callable(getattr(figure, "savefig", None)) else None


def is_image(value: Any) -> bool:
    """Whether ``value`` is sent as an image: a matplotlib figure (or its axes, or the artists of
    ``plt.plot``), a PIL image, PNG/JPEG/GIF/WebP bytes, or an IPython ``Image``."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        from .images import sniff

        return sniff(bytes(value[:16])) is not None
    module = _module(value)
    if module == "PIL":
        return hasattr(value, "save") and hasattr(value, "mode")
    if module == "IPython":
        return type(value).__name__ == "Image" and callable(getattr(value, "_repr_png_", None))
    return _figure_of(value) is not None


def image_of(value: Any) -> tuple[str, bytes]:
    """An image value as (MIME type, bytes) within the providers' limits (``ttt_magic.images``)."""
    from .images import to_image

    figure = _figure_of(value)
    if figure is not None:
        value = figure
    elif isinstance(value, memoryview):
        value = bytes(value)
    elif _module(value) == "IPython":  # IPython.display.Image: its own bytes, in its own format
        data = value.data if isinstance(getattr(value, "data", None), bytes) else value._repr_png_()
        value = data
    return to_image(value)


def image_reference(image: tuple[str, bytes], label: str | None = None) -> str:
    """What a prompt (and a conversation's history) keeps of an image.

    ``[image: a 640x480 PNG image (12 KB)]``, or with a label
    ``[image: chart.png, a 640x480 PNG image (12 KB)]``.
    """
    from .images import describe as describe_image

    where = f"{label}, " if label else ""
    return f"[image: {where}{describe_image(*image)}]"


# --------------------------------------------------------------------------- pandas


def _dtype(dtype: Any) -> str:
    return str(dtype)


def _memory(value: Any, rows: int) -> str:
    """The memory a frame or series takes; large object columns estimated from a sample."""
    if rows <= EXACT_MEMORY_ROWS:
        return size_text(_total(value.memory_usage(deep=True)))
    sample = value.iloc[:1000]
    extra = _total(sample.memory_usage(deep=True)) - _total(sample.memory_usage(deep=False))
    shallow = _total(value.memory_usage(deep=False))
    return "about " + size_text(shallow + extra * rows / max(1, len(sample)))


def _total(usage: Any) -> float:
    """A frame's memory_usage (a Series of bytes per column) or a series' (an int), summed."""
    return float(usage.sum() if hasattr(usage, "sum") else usage)


def _missing(frame: Any, names: list[Any]) -> str:
    try:
        counts = frame.isna().sum()
    except Exception:  # an exotic extension dtype
        return ""
    found = [(str(name), int(counts[name])) for name in names if int(counts[name])]
    if not found:
        return ""
    shown = ", ".join(f"{name} {_count(n)}" for name, n in found[:MAX_LISTED_COLUMNS])
    more = f", and {len(found) - MAX_LISTED_COLUMNS} more columns" if len(found) > MAX_LISTED_COLUMNS else ""
    return f"missing values: {shown}{more}"


def _table(frame: Any, rows: int, columns: int) -> str:
    """The rows of a frame as text: whole when it has at most ``rows``, else the first and the last ones.

    A whole, narrow table is a Markdown table when ``tabulate`` is installed;
    otherwise pandas' own text, which cuts the middle rows (``...``) before
    formatting anything, so a long frame costs no more than a short one.
    """
    if rows <= 0 or len(frame) == 0:
        return ""
    if len(frame) <= rows and frame.shape[1] <= columns:
        try:
            import importlib.util

            if importlib.util.find_spec("tabulate") is not None:
                return frame.to_markdown()
        except Exception:
            pass
    if rows < 2 and len(frame) > rows:  # one row: the first (pandas would show only its "...")
        frame = frame.iloc[:rows]
    return frame.to_string(max_rows=rows, max_cols=columns, max_colwidth=MAX_CELL, show_dimensions=False)


def _frame_lines(value: Any, rows: int, listed: int, columns: int) -> list[str]:
    n_rows, n_cols = value.shape
    names = list(value.columns)
    lines = [f"DataFrame, {_plural(n_rows, 'row')} × {_plural(n_cols, 'column')} ({_memory(value, n_rows)})"]
    if names:
        shown = ", ".join(f"{name} ({_dtype(value.dtypes.iloc[i])})" for i, name in enumerate(names[:listed]))
        more = f", and {_count(n_cols - listed)} more" if n_cols > listed else ""
        lines.append(f"columns: {shown}{more}")
        missing = _missing(value, names[:listed])
        if missing:
            lines.append(missing)
    if rows and n_rows:
        which = "rows" if n_rows <= rows else "first row" if rows < 2 else "first and last rows"
        lines.append(f"{which}:")
        lines.append(_table(value, rows, columns))
    return lines


def _series_lines(value: Any, rows: int, listed: int, columns: int) -> list[str]:
    n_rows = len(value)
    name = f" {value.name!r}" if value.name is not None else ""
    lines = [f"Series{name}, {_plural(n_rows, 'value')} of {_dtype(value.dtype)} ({_memory(value, n_rows)})"]
    try:
        missing = int(value.isna().sum())
    except Exception:
        missing = 0
    if missing:
        lines.append(f"missing values: {_count(missing)}")
    if rows and n_rows:
        which = "values" if n_rows <= rows else "first value" if rows < 2 else "first and last values"
        lines.append(f"{which}:")
        lines.append(_table(value.to_frame(), rows, columns))
    return lines


def _is_pandas(value: Any, *names: str) -> bool:
    return _module(value) == "pandas" and type(value).__name__ in names


# --------------------------------------------------------------------------- everything else


def _short_repr(rows: int) -> reprlib.Repr:
    shorten = reprlib.Repr()
    shorten.maxlevel = 2
    items = max(rows, 3) + 1
    shorten.maxlist = shorten.maxtuple = shorten.maxset = shorten.maxfrozenset = items
    shorten.maxdeque = shorten.maxdict = items
    shorten.maxstring = 160
    shorten.maxlong = 60
    shorten.maxother = 160
    return shorten


def _numpy_lines(value: Any, rows: int) -> list[str]:
    import numpy as np

    head = f"numpy ndarray, shape {tuple(value.shape)}, {value.dtype} ({size_text(float(value.nbytes))})"
    if not rows or value.size == 0:
        return [head]
    body = np.array2string(value, threshold=max(rows, 2) * 2, edgeitems=max(1, rows // 2), max_line_width=100)
    return [head, body]


def _callable_line(value: Any) -> str:
    if inspect.isclass(value):
        return f"class {value.__qualname__}"
    try:
        signature = str(inspect.signature(value))
    except (TypeError, ValueError):
        signature = "(...)"
    kind = "function" if inspect.isfunction(value) or inspect.isbuiltin(value) else type(value).__name__
    name = getattr(value, "__qualname__", getattr(value, "__name__", ""))
    doc = (inspect.getdoc(value) or "").strip().splitlines()
    first = f": {doc[0][:120]}" if doc and inspect.isfunction(value) else ""
    return f"{kind} {name}{signature}{first}"


def _plain_lines(value: Any, rows: int) -> list[str]:
    kind = type(value).__name__
    if isinstance(value, str):
        return [f"str of {_plural(len(value), 'character')}: {_short_repr(rows).repr(value)}"]
    if isinstance(value, (bool, int, float, complex)) or value is None:
        return [f"{kind}: {_short_repr(rows).repr(value)}"]
    if isinstance(value, (list, tuple, set, frozenset, dict)):
        unit = "key" if isinstance(value, dict) else "item"
        return [f"{kind} of {_plural(len(value), unit)}: {_short_repr(rows).repr(value)}"]
    if inspect.ismodule(value):
        return [f"module {value.__name__}"]
    if callable(value) and (inspect.isroutine(value) or inspect.isclass(value)):
        return [_callable_line(value)]
    try:
        text = _short_repr(rows).repr(value)
    except Exception as exc:  # a __repr__ that fails
        text = f"<repr failed: {type(exc).__name__}>"
    shape = getattr(value, "shape", None)
    where = f"{type(value).__module__}." if type(value).__module__ not in ("builtins", "__main__") else ""
    size = f", shape {tuple(shape)}" if isinstance(shape, tuple) else ""
    try:
        length = f", {_plural(len(value), 'item')}" if not size and hasattr(value, "__len__") else ""
    except Exception:
        length = ""
    return [f"{where}{kind}{size}{length}: {text}"]


def _lines(value: Any, rows: int, listed: int, columns: int) -> list[str]:
    if _is_pandas(value, "DataFrame"):
        return _frame_lines(value, rows, listed, columns)
    if _is_pandas(value, "Series"):
        return _series_lines(value, rows, listed, columns)
    if _module(value) == "numpy" and type(value).__name__ == "ndarray":
        return _numpy_lines(value, rows)
    if is_image(value):
        try:
            return [image_reference(image_of(value))]
        except Exception as exc:  # a figure that cannot be drawn
            return [f"{type(value).__name__} (an image that could not be drawn: {type(exc).__name__})"]
    return _plain_lines(value, rows)


def _levels(rows: int) -> Iterable[tuple[int, int, int]]:
    """(rows, columns listed, columns in the table), from the fullest to the barest."""
    yield rows, MAX_LISTED_COLUMNS, MAX_TABLE_COLUMNS
    if rows > 3:
        yield 3, MAX_LISTED_COLUMNS, MAX_TABLE_COLUMNS
    if rows > 1:
        yield 1, 20, 6
    yield 0, 12, 0
    yield 0, 4, 0


def describe(
    value: Any, *, name: str | None = None, budget: int | None = None, rows: int = DEFAULT_ROWS
) -> str:
    """A compact description of ``value`` for a prompt, within ``budget`` tokens when given.

    ``name`` prefixes it (``df: DataFrame, ...``); ``rows`` is how many
    rows of a table (or items of a container) are shown at most: the first
    half and the last half, with ``...`` between. A table of at most ``rows``
    rows is shown whole.
    """
    prefix = f"{name}: " if name else ""
    text = ""
    for level in _levels(max(0, rows)):
        text = prefix + "\n".join(line for line in _lines(value, *level) if line)
        if budget is None or count(text) <= budget:
            return text
    return fit(text, budget)
