"""Reading magic lines: ``%ask`` options before a verbatim prompt, ``%ttt_config key=value`` words.

Kept apart from the magics so the parsing rules (quotes, brackets, dotted keys)
can be read and tested on their own.
"""

from __future__ import annotations

import difflib
import re
import shlex
from collections.abc import Iterable
from typing import Any

__all__ = [
    "BadInput",
    "closest",
    "parse_assignments",
    "split_cell_line",
    "split_line",
    "split_words",
    "unknown_option",
]

#: A word that can only be meant as an option: ``-x``, ``--name`` (``-1`` and ``->`` are text).
_OPTION_LIKE = re.compile(r"--?[A-Za-z]")
DASH_HINT = "A prompt that starts with - goes after --: %ask -- -x ..."


class BadInput(Exception):
    """A problem with what was typed after a magic: shown as a short message."""


def closest(word: str, choices: Iterable[str]) -> str | None:
    """The one of ``choices`` close enough to ``word`` to be what was meant, if any."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return close[0] if close else None


def unknown_option(word: str, parser: Any) -> BadInput:
    """The refusal of an option the parser does not know, in one line, with a did-you-mean.

    Names are compared without their dashes, so ``--bogus`` is not "close" to
    ``--out`` merely by sharing ``--``.
    """
    name = word.split("=", 1)[0]
    known = {o.lstrip("-"): o for o in parser._option_string_actions if o.startswith("--")}
    match = closest(name.lstrip("-"), known)
    suggestion = f" (did you mean {known[match]}?)" if match else ""
    return BadInput(f"Unknown option {name}{suggestion}. {DASH_HINT}")


def _read_token(line: str, pos: int) -> tuple[str, int]:
    """One shell-like word starting at ``pos`` (quotes group, and are removed); returns (word, end)."""
    out: list[str] = []
    n = len(line)
    while pos < n and not line[pos].isspace():
        char = line[pos]
        if char in "'\"":
            close = line.find(char, pos + 1)
            if close < 0:
                out.append(line[pos + 1 :])
                pos = n
                break
            out.append(line[pos + 1 : close])
            pos = close + 1
        else:
            out.append(char)
            pos += 1
    return "".join(out), pos


def split_line(line: str, parser: Any) -> tuple[list[str], str]:
    """Split ``%ask`` options from the prompt: options first, the rest of the line verbatim.

    The prompt is not tokenised, so apostrophes and quotes in it survive
    (``%ask what's {x}?``). An option taking a value consumes the next word
    (quotes allowed: ``-s "be brief"``). ``-c``/``--chat`` never takes the next
    word on a line (it would be the prompt's first word): write ``--chat=NAME``
    or ``-cNAME``. ``--`` ends the options.

    An unknown option (``--bogus``, ``-x``) raises ``BadInput`` rather than
    becoming the prompt: it is almost always a typo, and sending it would be a
    paid request for the wrong question. A prompt that starts with ``-`` goes
    after ``--``; one starting with a number (``-1 is negative``) needs nothing.
    """
    actions = parser._option_string_actions
    tokens: list[str] = []
    pos, n = 0, len(line)
    while True:
        while pos < n and line[pos].isspace():
            pos += 1
        if pos >= n or line[pos] != "-":
            break
        word, end = _read_token(line, pos)
        if word == "--":
            pos = end
            break
        name = word.split("=", 1)[0]
        action = actions.get(name)
        if action is None and not word.startswith("--") and word[:2] in actions:
            action, name = actions[word[:2]], word[:2]  # -cNAME, -t0.5
            if action.nargs == 0:
                action = None
        if action is None and _OPTION_LIKE.match(word):
            raise unknown_option(word, parser)
        if action is None:
            break  # "-1 is negative?": the prompt starts here
        tokens.append(word)
        pos = end
        takes_value = action.nargs is None or action.nargs == 1
        attached = "=" in word or (name != word and not word.startswith("--"))
        if takes_value and not attached:
            while pos < n and line[pos].isspace():
                pos += 1
            if pos < n:
                value, pos = _read_token(line, pos)
                tokens.append(value)
    return tokens, line[pos:].strip()


def split_cell_line(line: str) -> list[str]:
    """The options on a ``%%ask`` line, shell-quoted; ``BadInput`` for an unclosed quote."""
    try:
        return shlex.split(line, posix=True)
    except ValueError as exc:
        raise BadInput(f'Cannot read the options: {exc} (quote values like -s "be brief").') from None


def split_words(line: str) -> list[str]:
    """Split on spaces outside quotes and brackets: ``models=[{name: a, provider: b}]`` is one word.

    Quotes stay in the word so that YAML can read ``system="be brief"`` as a string.
    """
    words: list[str] = []
    buf: list[str] = []
    depth = 0
    quote: str | None = None
    for char in line:
        if quote:
            buf.append(char)
            if char == quote:
                quote = None
            continue
        if char in "'\"":
            quote = char
        elif char in "[{(":
            depth += 1
        elif char in "]})":
            depth = max(0, depth - 1)
        elif char.isspace() and depth == 0:
            if buf:
                words.append("".join(buf))
                buf = []
            continue
        buf.append(char)
    if buf:
        words.append("".join(buf))
    return words


def parse_assignments(words: list[str]) -> dict[str, Any]:
    """``key=value`` words to configure() keywords; dotted keys nest (``backends.mock.delay=0``)."""
    changes: dict[str, Any] = {}
    for word in words:
        key, sep, raw = word.partition("=")
        if not sep or not key:
            raise BadInput(f"Expected key=value, got {word!r}.")
        value = parse_value(raw)
        parts = key.split(".")
        if len(parts) > 1:
            nested: Any = value
            for part in reversed(parts[1:]):
                nested = {part: nested}
            value = nested
            if isinstance(changes.get(parts[0]), dict):
                from ..config import deep_merge

                value = deep_merge(changes[parts[0]], value)
        changes[parts[0]] = value
    return changes


def parse_value(raw: str) -> Any:
    if raw == "":
        return None
    import yaml

    try:
        return yaml.safe_load(raw)
    except yaml.YAMLError:
        return raw
