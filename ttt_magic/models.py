"""Plain data passed between layers: model metadata, messages, answers.

Nothing here performs I/O or imports anything heavy, so every other module
(and every plugin) can depend on it freely.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal, TypedDict

__all__ = [
    "AIResponse",
    "ImagePart",
    "Message",
    "ModelInfo",
    "Part",
    "StreamEnd",
    "TextPart",
    "Thinking",
    "text_of",
]


class TextPart(TypedDict):
    """Text inside a message whose content is a list of parts."""

    type: Literal["text"]
    text: str


class ImagePart(TypedDict):
    """An image inside a message: its MIME type and bytes (each protocol encodes it its own way)."""

    type: Literal["image"]
    mime_type: str
    data: bytes


Part = TextPart | ImagePart


class Message(TypedDict):
    """One turn of a conversation, in the provider-neutral shape backends receive.

    ``content`` is a plain string for text (what every plugin written against
    the seed expects), or a list of parts when a turn carries images.
    """

    role: Literal["system", "user", "assistant"]
    content: str | list[Part]


def text_of(content: Any) -> str:
    """The text of a message's content: the string itself, or its text parts joined."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return "" if content is None else str(content)


@dataclass
class ModelInfo:
    """Catalogue entry for a model (the seed's "Model Metadata").

    ``cost_per_token`` is the seed's single figure; ``input_cost_per_mtok`` and
    ``output_cost_per_mtok`` (US dollars per million tokens) are the providers'
    published prices and win when present, because output tokens usually cost
    several times more than input tokens.
    """

    name: str
    provider: str
    provider_name: str | None = None
    aliases: list[str] = field(default_factory=list)
    speed: str = "medium"
    quality: str = "medium"
    capabilities: list[str] = field(default_factory=lambda: ["text"])
    context_length: int | None = None
    cost_per_token: float | None = None
    input_cost_per_mtok: float | None = None
    output_cost_per_mtok: float | None = None
    description: str = ""

    def __post_init__(self) -> None:
        if not self.provider_name:
            self.provider_name = self.name
        self.aliases = list(self.aliases or [])
        self.capabilities = list(self.capabilities or [])

    def cost(self, tokens_in: int | None, tokens_out: int | None) -> float | None:
        """Estimated price of one call in dollars, or None when the price is unknown."""
        if tokens_in is None and tokens_out is None:
            return None
        tin, tout = tokens_in or 0, tokens_out or 0
        if self.input_cost_per_mtok is not None or self.output_cost_per_mtok is not None:
            return (tin * (self.input_cost_per_mtok or 0) + tout * (self.output_cost_per_mtok or 0)) / 1e6
        if self.cost_per_token is not None:
            return (tin + tout) * self.cost_per_token
        return None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


#: Finish reasons that mean "cut off by max_tokens", across the protocols.
LENGTH_REASONS = frozenset({"length", "max_tokens", "MAX_TOKENS"})


@dataclass
class Thinking:
    """A piece of the model's reasoning, streamed apart from the answer.

    Not a ``str`` on purpose: code that joins answer chunks must never take
    thinking for answer text by accident. ``str(piece)`` gives its text.
    """

    text: str

    def __str__(self) -> str:
        return self.text


@dataclass
class StreamEnd:
    """Optional last item of a backend's ``astream``: what only the end of a stream knows.

    Custom backends may simply yield ``str`` chunks; built-in ones yield one of
    these last so that token counts and the finish reason survive streaming.
    """

    model: str | None = None
    tokens_in: int | None = None
    tokens_out: int | None = None
    finish_reason: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    #: Dollars, when the backend knows the price better than the catalogue (else None).
    cost: float | None = None
    #: A structured answer (parsed and validated against the request's schema).
    data: Any = None
    #: The model's thinking, when the provider sent it apart from the answer.
    reasoning: str | None = None

    def finish_metadata(self) -> dict[str, Any]:
        """``finish_reason``, and ``truncated`` when the answer was cut by ``max_tokens``.

        The protocols name that cut differently (``length``, ``max_tokens``,
        ``MAX_TOKENS``); footers and callers read the one flag.
        """
        if not self.finish_reason:
            return {}
        meta: dict[str, Any] = {"finish_reason": self.finish_reason}
        if self.finish_reason in LENGTH_REASONS:
            meta["truncated"] = True
        return meta


#: The fields of an answer besides its text, with their defaults. Adding a field is one
#: line here: the constructor, ``copy_with``, pickling and ``repr`` all read this table.
RESPONSE_FIELDS: dict[str, Any] = {
    "model": None,
    "backend": None,
    "tokens_in": None,
    "tokens_out": None,
    "time_taken": None,
    "cost": None,
    "metadata": None,
    "error": None,
    "data": None,
    "reasoning": None,
}


class AIResponse(str):
    """An answer: usable as the text itself, carrying where it came from.

    A ``str`` subclass so that ``print(ask(...))``, ``answer.replace(...)`` and
    pandas' ``.str`` methods just work, while ``.failed`` / ``.error`` make
    failures explicit instead of raising. No attribute shadows a ``str``
    method. ``.data`` holds a structured answer (parsed and validated against
    a schema); ``.reasoning`` the model's thinking when the provider sent it.
    """

    model: str | None
    backend: str | None
    tokens_in: int | None
    tokens_out: int | None
    time_taken: float | None
    cost: float | None
    metadata: dict[str, Any]
    error: str | None
    data: Any
    reasoning: str | None

    def __new__(cls, text: str = "", **values: Any) -> AIResponse:
        unknown = set(values) - RESPONSE_FIELDS.keys()
        if unknown:
            raise TypeError(f"AIResponse() got unexpected field(s): {', '.join(sorted(unknown))}")
        self = super().__new__(cls, "" if text is None else text)
        for name, default in RESPONSE_FIELDS.items():
            setattr(self, name, values.get(name, default))
        self.metadata = dict(self.metadata or {})
        return self

    @property
    def text(self) -> str:
        return str.__str__(self)

    @property
    def failed(self) -> bool:
        return self.error is not None

    @property
    def succeeded(self) -> bool:
        return self.error is None

    @property
    def route(self) -> Any:
        """The routing record (see ``ttt_magic.router.Route``), when the router produced this."""
        return self.metadata.get("route")

    def fields(self) -> dict[str, Any]:
        """Every field but the text, as a dict."""
        return {name: getattr(self, name, RESPONSE_FIELDS[name]) for name in RESPONSE_FIELDS}

    def copy_with(self, **changes: Any) -> AIResponse:
        """A copy with some fields changed (responses are treated as immutable values).

        Not called ``replace``: an answer is a ``str`` everywhere a ``str`` is
        expected, so ``answer.replace("\\n", " ")`` must stay ``str.replace``.
        """
        text = changes.pop("text", self.text)
        return AIResponse(text, **{**self.fields(), **changes})

    def __repr__(self) -> str:
        text = self.text
        shown = text if len(text) <= 60 else text[:57] + "..."
        parts = [repr(shown)]
        for key in ("model", "backend", "tokens_in", "tokens_out", "error"):
            value = getattr(self, key, None)
            if value is not None:
                parts.append(f"{key}={value!r}")
        return f"AIResponse({', '.join(parts)})"

    def __reduce__(self):  # keep fields through pickle/copy
        return (_rebuild_response, (self.text, self.fields()))


def _rebuild_response(text: str, values: dict[str, Any]) -> AIResponse:
    return AIResponse(text, **values)
