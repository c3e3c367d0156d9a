"""``{variable}`` expansion in prompts that never crashes on literal braces.

Prompts are full of braces that are not placeholders: JSON, dict
comprehensions, TypeScript, f-strings, LaTeX (``\\frac{a}{b}``), Jinja
(``{{ x }}``). ``str.format`` raises on most of them and ``eval`` would run
them. Here a field is expanded only when it matches a tiny grammar and every
step of it resolves in the user namespace; anything else is copied through
byte for byte.

Grammar of a field (the text between ``{`` and ``}``, no spaces in the reference)::

    field  := ref [ "!" ("r" | "s" | "a") ] [ ":" spec ]
    ref    := NAME ( "." NAME | "[" key "]" )*
    key    := INTEGER | 'text' | "text" | NAME      (a bare NAME is a literal string key,
                                                   as in str.format: {d[key]} is d["key"])

So ``{df}``, ``{df.shape}``, ``{cfg['model']}``, ``{rows[0].name}``,
``{In[3]}``, ``{Out[3]}`` and ``{_}`` work; attributes starting with ``__``
are never followed. A conversion and a format spec apply as in an f-string
(``{x:.2f}``, ``{x!r}``, ``{df.shape[0]:,}``); a spec that fails to apply
leaves the field as written, like a reference that does not resolve.
A pandas DataFrame or Series is written by ``ttt_magic.describe.describe``
(type, shape, columns with dtypes, missing values, memory, and the rows: all
of them up to 20, else the first and last ones), the one description that
``%%ask --context`` and ``%ask --fix`` use too. With ``images=True`` an image
value (a matplotlib figure, a PIL image, PNG/JPEG bytes, ``{Out[7]}`` of a
plotting cell) is not written as text: it is collected on
``Expansion.images`` (sent as an image) and the field becomes a reference,
``[image: a 640x480 PNG image (12 KB)]``, which is what a conversation's
history keeps.
Configured API keys found in a value are replaced by their masked form
(``withhold.py``). ``{{`` is copied as is. A ``{`` right after a LaTeX
command (``\\frac{``), ``^`` or ``_``, and the groups chained to it
(``}{``), is LaTeX and stays literal.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .withhold import withhold

__all__ = [
    "Expansion",
    "Unresolved",
    "expand",
    "interpolate",
    "parse_field",
    "resolve_field",
    "split_field",
    "to_text",
]

DEFAULT_LIMIT = 2000
#: Rows of a DataFrame or Series a ``{field}`` shows whole (a longer one: its first and last rows).
TABLE_MAX_ROWS = 20

_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_NAME_RE = re.compile(_NAME)
_INT_RE = re.compile(r"-?[0-9]+")
_LATEX_CMD_RE = re.compile(r"\\[A-Za-z]+\*?$")
_WORD_BEFORE_RE = re.compile(r"\\?[A-Za-z0-9}]*$")
_CONVERSIONS: dict[str, Callable[[Any], str]] = {"r": repr, "s": str, "a": ascii}
_SPEC_NUMBER_RE = re.compile(r"[0-9]+")
#: Widths and precisions above this stay literal: ``{n:999999999}`` would build a gigabyte first.
MAX_SPEC_NUMBER = 10_000


class Unresolved(Exception):
    """The field is not a placeholder we can fill: it stays literal."""


def parse_field(field: str) -> list[tuple[str, Any]] | None:
    """Split a field into steps: ("name", x), ("attr", x), ("item", key); None if not our grammar."""
    match = _NAME_RE.match(field)
    if not match:
        return None
    steps: list[tuple[str, Any]] = [("name", match.group())]
    pos = match.end()
    n = len(field)
    while pos < n:
        char = field[pos]
        if char == ".":
            match = _NAME_RE.match(field, pos + 1)
            if not match or match.group().startswith("__"):
                return None
            steps.append(("attr", match.group()))
            pos = match.end()
        elif char == "[":
            end = field.find("]", pos + 1)
            if end < 0:
                return None
            key = _parse_key(field[pos + 1 : end])
            if key is None:
                return None
            steps.append(("item", key[0]))
            pos = end + 1
        else:
            return None
    return steps


def _parse_key(raw: str) -> tuple[Any] | None:
    if _INT_RE.fullmatch(raw):
        return (int(raw),)
    if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "'\"":
        inner = raw[1:-1]
        if raw[0] in inner or "\\" in inner:
            return None
        return (inner,)
    if _NAME_RE.fullmatch(raw):
        return (raw,)
    return None


def resolve_field(field: str, namespace: Mapping[str, Any]) -> Any:
    """The value a field names, or raise ``Unresolved``. Runs no code but attribute/item access."""
    steps = parse_field(field)
    if steps is None:
        raise Unresolved(field)
    _, name = steps[0]
    if name not in namespace:
        raise Unresolved(field)
    value = namespace[name]
    for kind, arg in steps[1:]:
        try:
            value = getattr(value, arg) if kind == "attr" else value[arg]
        except Exception:  # a property or __getitem__ that fails means "not ours"
            raise Unresolved(field) from None
    return value


def split_field(field: str) -> tuple[str, str | None, str | None]:
    """(reference, conversion, spec) of a field: ``x.y!r:>8`` is ("x.y", "r", ">8").

    ``!`` and ``:`` inside brackets belong to the reference (``{d['a:b']}``).
    Raises ``Unresolved`` for a conversion f-strings do not have.
    """
    depth = 0
    for i, char in enumerate(field):
        if char == "[":
            depth += 1
        elif char == "]":
            depth = max(0, depth - 1)
        elif depth == 0 and char == ":":
            return field[:i], None, field[i + 1 :]
        elif depth == 0 and char == "!":
            conversion, rest = field[i + 1 : i + 2], field[i + 2 :]
            if conversion not in _CONVERSIONS or (rest and not rest.startswith(":")):
                raise Unresolved(field)
            return field[:i], conversion, (rest[1:] if rest else None)
    return field, None, None


def to_text(value: Any, limit: int = DEFAULT_LIMIT) -> str:
    """The text a value interpolates as: tables for pandas objects, truncated past ``limit``."""
    return _truncate(_plain_text(value), limit)


def _plain_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if _is_table(value):
        from ..describe import describe

        try:
            return describe(value, rows=TABLE_MAX_ROWS)
        except Exception:  # an exotic frame pandas cannot print: its str() below
            pass
    return str(value)


def _truncate(text: str, limit: int) -> str:
    if limit and len(text) > limit:
        dropped = len(text) - limit
        text = f"{text[:limit]}… [truncated {dropped} chars]"
    return text


def _field_text(field: str, namespace: Mapping[str, Any]) -> str:
    """The text a field stands for (before secrets are withheld and length is limited)."""
    reference, conversion, spec = split_field(field)
    value = resolve_field(reference, namespace)
    if conversion is None and not spec:
        return _plain_text(value)
    if spec and any(int(n) > MAX_SPEC_NUMBER for n in _SPEC_NUMBER_RE.findall(spec)):
        raise Unresolved(field)
    try:
        if conversion is not None:
            value = _CONVERSIONS[conversion](value)
        return format(value, spec or "")
    except Exception:  # a spec the value rejects, or a __format__/__repr__ that fails: not ours
        raise Unresolved(field) from None


def _is_table(value: Any) -> bool:
    kind = type(value)
    return kind.__module__.split(".")[0] == "pandas" and kind.__name__ in ("DataFrame", "Series")


@dataclass(frozen=True)
class Expansion:
    """An interpolated text, in how many of its values a configured secret was withheld, its images.

    ``images`` (with ``expand(..., images=True)``): the (MIME type, bytes) of
    each image value, in order; the text holds a reference to each.
    """

    text: str
    withheld: int = 0
    images: tuple[tuple[str, bytes], ...] = ()


def interpolate(
    text: str, namespace: Mapping[str, Any], limit: int = DEFAULT_LIMIT, *, secrets: Iterable[str] = ()
) -> str:
    """Expand ``{field}`` placeholders that resolve in ``namespace``; keep everything else as written."""
    return expand(text, namespace, limit, secrets=secrets).text


def expand(
    text: str,
    namespace: Mapping[str, Any],
    limit: int = DEFAULT_LIMIT,
    *,
    secrets: Iterable[str] = (),
    images: bool = False,
) -> Expansion:
    """``interpolate``, also reporting secrets withheld: each of ``secrets`` found in a value is masked.

    ``images=True``: image values are collected (``Expansion.images``) and
    referred to in the text instead of being written out.
    """
    if "{" not in text:
        return Expansion(text)
    secrets = tuple(secrets)
    withheld = 0
    found_images: list[tuple[str, bytes]] = []
    out: list[str] = []
    i = 0
    n = len(text)
    latex_chain = False  # the previous group was a LaTeX argument and ended right here
    while i < n:
        start = text.find("{", i)
        if start < 0:
            out.append(text[i:])
            break
        if start > i:
            out.append(text[i:start])
            latex_chain = False
        if start + 1 < n and text[start + 1] == "{":
            out.append("{{")
            i = start + 2
            latex_chain = False
            continue
        end = text.find("}", start + 1)
        inner_open = text.find("{", start + 1)
        if end < 0 or (0 <= inner_open < end):
            # Unclosed, or a nested group: this brace is literal; look inside it.
            out.append("{")
            i = start + 1
            latex_chain = _is_latex_position(text, start, latex_chain)
            continue
        field = text[start + 1 : end]
        literal = _is_latex_position(text, start, latex_chain)
        if not literal:
            try:
                image = _field_image(field, namespace) if images else None
                if image is not None:
                    from ..describe import image_reference

                    found_images.append(image)
                    value, found = image_reference(image), 0
                else:
                    value, found = withhold(_field_text(field, namespace), secrets)
            except Unresolved:
                pass
            else:
                out.append(_truncate(value, limit))
                withheld += bool(found)
                i = end + 1
                latex_chain = False
                continue
        out.append(text[start : end + 1])
        i = end + 1
        latex_chain = literal
    return Expansion("".join(out), withheld, tuple(found_images))


def _field_image(field: str, namespace: Mapping[str, Any]) -> tuple[str, bytes] | None:
    """(MIME type, bytes) when a bare field (no conversion, no spec) names an image value; else None."""
    reference, conversion, spec = split_field(field)
    if conversion is not None or spec:
        return None
    value = resolve_field(reference, namespace)
    from ..describe import image_of, is_image

    return image_of(value) if is_image(value) else None


def _is_latex_position(text: str, brace: int, chained: bool) -> bool:
    """Whether the ``{`` at ``brace`` opens a LaTeX argument (``\\cmd{``, ``^{``, ``_{``, ``}{``)."""
    if brace == 0:
        return False
    before = text[brace - 1]
    if before == "^":
        return True
    if before == "_":
        # x_{i}, a_{ij}, \\sum_{k}, }_{ are subscripts; file_{name} is a placeholder.
        word = _WORD_BEFORE_RE.search(text, 0, brace - 1)
        token = word.group() if word else ""
        return token.startswith("\\") or len(token) <= 2
    if before == "}" and chained:
        return True
    return bool(_LATEX_CMD_RE.search(text, max(0, brace - 40), brace))
