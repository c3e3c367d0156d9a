"""A string type for API keys that refuses to show itself.

Keys travel through configuration, backends and error paths; holding them as
``Secret`` means an accidental ``print``, ``repr``, log line or f-string shows
``sk-…f3a9`` and never the key. Only ``reveal()`` gives the value, and only the
code that builds an HTTP header should call it.
"""

from __future__ import annotations

__all__ = ["Secret", "clean_key", "mask", "reveal"]


def mask(value: str | None) -> str:
    """The masked form shown to people: a vendor prefix such as ``sk-``, and the last four.

    Short values show nothing at all: four characters of a short secret are too much of it.
    """
    if not value:
        return "(not set)"
    if len(value) < 16:
        return "****"
    head, sep, _ = value[:8].partition("-")
    prefix = head + sep if sep and head.isalpha() else ""
    return f"{prefix}…{value[-4:]}"


def _describe(char: str) -> str:
    """A name for a character that cannot be in a key; never the key's own characters."""
    if char in "\r\n":
        return "a line break"
    if char == "\t":
        return "a tab"
    if char.isspace():
        return "a space"
    if "\ud800" <= char <= "\udfff":
        return "a byte that is not UTF-8"
    if not char.isprintable():
        return "a control character"
    return f"a non-ASCII character (U+{ord(char):04X})"


def clean_key(value: str) -> str:
    """The key without the spaces and line breaks that pasting, or a file's last line, add around it.

    An HTTP header cannot carry whitespace, control or non-ASCII characters, so a key
    with one left inside would fail only after every retry, as an obscure protocol
    error. Refusing it here says what is wrong at once; the message says where the
    bad character is, never what the key is.
    """
    key = value.strip()
    for position, char in enumerate(key, 1):
        if char.isspace() or not char.isprintable() or not char.isascii():
            raise ValueError(
                f"the key has {_describe(char)} inside it (character {position} of {len(key)});"
                " copy the key again without it"
            )
    if len(key) >= 2 and key[0] == key[-1] and key[0] in "\"'":
        raise ValueError("the key is wrapped in quotes; remove them")
    return key


class Secret:
    """Holds a secret value; every textual form of it is masked."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if isinstance(value, Secret):
            value = value.reveal()
        self._value = str(value)

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret({mask(self._value)!r})"

    def __str__(self) -> str:
        return mask(self._value)

    def __format__(self, spec: str) -> str:
        return format(str(self), spec)

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Secret):
            return other._value == self._value
        return NotImplemented

    def __hash__(self) -> int:
        return hash(("Secret", self._value))

    def __reduce__(self):  # pickling would be a way out; refuse it
        raise TypeError("Secret values cannot be pickled")


def reveal(value: object) -> str | None:
    """The plain value of a configured key, ``Secret`` or ``str``; None when unset.

    For the one place a key must be plain text: the request header.
    """
    if value is None or value == "":
        return None
    return value.reveal() if isinstance(value, Secret) else str(value)
