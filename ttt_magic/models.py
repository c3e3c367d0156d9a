"""Plain data passed between layers: model metadata, messages, answers.

Nothing here performs I/O or imports anything heavy, so every other module
(and every plugin) can depend on it freely.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal, TypedDict

__all__ = ["AIResponse", "Message", "ModelInfo", "StreamEnd"]


class Message(TypedDict):
    """One turn of a conversation, in the provider-neutral shape backends receive."""

    role: Literal["system", "user", "assistant"]
    content: str


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


class AIResponse(str):
    """An answer: usable as the text itself, carrying where it came from.

    A ``str`` subclass so that ``print(ask(...))`` and string methods just work,
    while ``.failed`` / ``.error`` make failures explicit instead of raising.
    """

    model: str | None
    backend: str | None
    tokens_in: int | None
    tokens_out: int | None
    time_taken: float | None
    cost: float | None
    metadata: dict[str, Any]
    error: str | None

    def __new__(
        cls,
        text: str = "",
        *,
        model: str | None = None,
        backend: str | None = None,
        tokens_in: int | None = None,
        tokens_out: int | None = None,
        time_taken: float | None = None,
        cost: float | None = None,
        metadata: dict[str, Any] | None = None,
        error: str | None = None,
    ) -> AIResponse:
        self = super().__new__(cls, "" if text is None else text)
        self.model = model
        self.backend = backend
        self.tokens_in = tokens_in
        self.tokens_out = tokens_out
        self.time_taken = time_taken
        self.cost = cost
        self.metadata = dict(metadata or {})
        self.error = error
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

    def copy_with(self, **changes: Any) -> AIResponse:
        """A copy with some fields changed (responses are treated as immutable values).

        Not called ``replace``: an answer is a ``str`` everywhere a ``str`` is
        expected, so ``answer.replace("\\n", " ")`` must stay ``str.replace``.
        """
        fields = {
            "model": self.model,
            "backend": self.backend,
            "tokens_in": self.tokens_in,
            "tokens_out": self.tokens_out,
            "time_taken": self.time_taken,
            "cost": self.cost,
            "metadata": self.metadata,
            "error": self.error,
        }
        text = changes.pop("text", self.text)
        fields.update(changes)
        return AIResponse(text, **fields)

    def __repr__(self) -> str:
        text = self.text
        shown = text if len(text) <= 60 else text[:57] + "..."
        parts = [repr(shown)]
        for key in ("model", "backend", "tokens_in", "tokens_out"):
            value = getattr(self, key, None)
            if value is not None:
                parts.append(f"{key}={value!r}")
        if getattr(self, "error", None) is not None:
            parts.append(f"error={self.error!r}")
        return f"AIResponse({', '.join(parts)})"

    def __reduce__(self):  # keep fields through pickle/copy
        return (
            _rebuild_response,
            (
                self.text,
                self.model,
                self.backend,
                self.tokens_in,
                self.tokens_out,
                self.time_taken,
                self.cost,
                self.metadata,
                self.error,
            ),
        )


def _rebuild_response(text, model, backend, tokens_in, tokens_out, time_taken, cost, metadata, error):
    return AIResponse(
        text,
        model=model,
        backend=backend,
        tokens_in=tokens_in,
        tokens_out=tokens_out,
        time_taken=time_taken,
        cost=cost,
        metadata=metadata,
        error=error,
    )
