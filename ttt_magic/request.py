"""What a caller asks (``Request``) and what one attempt sends (``Resolved``).

A ``Request`` is the call as written: the prompt, the options the caller
named, nothing filled in. Routing picks a plan of (backend, model) pairs; for
each attempt ``resolve`` turns the request into a ``Resolved``: every value
settled once, by one rule (call argument > ``backends.<name>.*`` > global
setting > default), so that what is sent, what a cache keys on, what a budget
prices and what ``--explain`` shows are the same value.

Nothing here performs I/O.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from .errors import UsageError
from .models import Message, Part, text_of

__all__ = ["NAMED_PARAMS", "REQUEST_ARGS", "Request", "Resolved", "check_kwargs", "resolve"]

#: Sampling parameters every built-in protocol knows; each is a keyword argument of ``ask``.
NAMED_PARAMS = ("top_p", "stop", "seed", "presence_penalty", "frequency_penalty")

#: Every keyword argument ``ask``/``stream``/``aask``/``astream`` accept besides the prompt.
REQUEST_ARGS = (
    "model",
    "backend",
    "system",
    "temperature",
    "max_tokens",
    "history",
    *NAMED_PARAMS,
    "schema",
    "images",
    "options",
    "cache",
    "effort",
)

#: Reasoning effort levels (``effort=``), mapped by each protocol to its own control.
EFFORTS = ("low", "medium", "high")

DEFAULT_TIMEOUT = 30.0


def check_kwargs(
    kwargs: Mapping[str, Any], allowed: Iterable[str] = REQUEST_ARGS, where: str = "ask"
) -> None:
    """``TypeError`` with a did-you-mean for a keyword argument nobody reads.

    A typo such as ``progres=True`` must not be dropped silently: it would
    change nothing the caller can see, and the caller would trust it.
    """
    allowed = list(allowed)
    for name in kwargs:
        if name not in allowed:
            close = difflib.get_close_matches(name, allowed, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            extra = " Provider-specific options go in options={...}." if not close else ""
            raise TypeError(f"{where}() got an unexpected keyword argument {name!r}.{hint}{extra}")


def _number(name: str, value: Any, low: float, high: float | None) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise UsageError(f"{name} must be a number, not {value!r}.") from None
    if not math.isfinite(number) or number < low or (high is not None and number > high):
        span = f"between {low:g} and {high:g}" if high is not None else f"at least {low:g}"
        raise UsageError(f"{name} must be {span}, not {value!r}.")
    return number


def _whole(name: str, value: Any, low: int) -> int:
    if isinstance(value, bool):
        raise UsageError(f"{name} must be a whole number, not {value!r}.")
    if not isinstance(value, int):
        try:
            as_float = float(value)
        except (TypeError, ValueError):
            raise UsageError(f"{name} must be a whole number, not {value!r}.") from None
        if not math.isfinite(as_float) or as_float != int(as_float):
            raise UsageError(f"{name} must be a whole number, not {value!r}.")
        value = int(as_float)
    if value < low:
        raise UsageError(f"{name} must be at least {low}, not {value}.")
    return value


def _check_prompt(prompt: Any) -> str | list[Part]:
    if isinstance(prompt, str):
        if not prompt.strip():
            raise UsageError("The prompt is empty: write a question (nothing was sent).")
        return prompt
    if isinstance(prompt, list) and prompt and all(isinstance(p, dict) and "type" in p for p in prompt):
        if not text_of(prompt).strip() and not any(p["type"] != "text" for p in prompt):
            raise UsageError("The prompt is empty: write a question (nothing was sent).")
        return prompt
    raise UsageError(f"The prompt must be a string, not {type(prompt).__name__}.")


@dataclass
class Request:
    """What the caller asked for, validated; ``None`` means "not said, use the settings"."""

    prompt: str | list[Part]
    model: str | None = None
    backend: str | None = None
    system: str | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    history: list[Message] = field(default_factory=list)
    top_p: float | None = None
    stop: str | list[str] | None = None
    seed: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    #: A JSON Schema (dict), a pydantic model class or a shorthand; normalised by ``structured``.
    schema: Any = None
    #: Images for the prompt, as ``(mime_type, bytes)`` pairs.
    images: list[tuple[str, bytes]] = field(default_factory=list)
    #: Provider-specific payload fields, sent verbatim (``{"logit_bias": {...}, "user": "u-42"}``).
    options: dict[str, Any] = field(default_factory=dict)
    #: Per-call cache switch: True/False, or None for the configured default.
    cache: bool | None = None
    #: How hard a reasoning model thinks: "low", "medium" or "high".
    effort: str | None = None

    def __post_init__(self) -> None:
        self.prompt = _check_prompt(self.prompt)
        if self.model is not None and not isinstance(self.model, str):
            raise UsageError(f"model must be a name (a string), not {type(self.model).__name__}.")
        if self.backend is not None and not isinstance(self.backend, str):
            raise UsageError(f"backend must be a name (a string), not {type(self.backend).__name__}.")
        if self.system is not None and not isinstance(self.system, str):
            raise UsageError(f"system must be a string, not {type(self.system).__name__}.")
        if self.temperature is not None:
            self.temperature = _number("temperature", self.temperature, 0.0, 2.0)
        if self.max_tokens is not None:
            self.max_tokens = _whole("max_tokens", self.max_tokens, 1)
        if self.top_p is not None:
            self.top_p = _number("top_p", self.top_p, 0.0, 1.0)
        for name in ("presence_penalty", "frequency_penalty"):
            if getattr(self, name) is not None:
                setattr(self, name, _number(name, getattr(self, name), -2.0, 2.0))
        if self.seed is not None:
            self.seed = _whole("seed", self.seed, -(2**63))
        if self.stop is not None and not (
            isinstance(self.stop, str)
            or (isinstance(self.stop, list) and all(isinstance(s, str) for s in self.stop))
        ):
            raise UsageError("stop must be a string or a list of strings.")
        if not isinstance(self.options, dict):
            raise UsageError("options must be a dict of provider-specific fields, e.g. {'user': 'u-42'}.")
        self.history = list(self.history or [])
        for turn in self.history:
            if not isinstance(turn, dict) or turn.get("role") not in ("system", "user", "assistant"):
                raise UsageError("history must be a list of {'role': 'user'|'assistant', 'content': str}.")
        self.images = list(self.images or [])
        if not all(
            isinstance(i, tuple) and len(i) == 2 and isinstance(i[0], str) and isinstance(i[1], bytes)
            for i in self.images
        ):
            raise UsageError(
                "images must be (mime_type, bytes) pairs (ttt_magic.images.to_image makes them)."
            )
        if self.effort is not None and self.effort not in EFFORTS:
            raise UsageError(f"effort must be one of {', '.join(EFFORTS)}, not {self.effort!r}.")

    @property
    def params(self) -> dict[str, Any]:
        """The named sampling parameters the caller set."""
        return {name: getattr(self, name) for name in NAMED_PARAMS if getattr(self, name) is not None}

    @property
    def text(self) -> str:
        """The prompt's text (its text parts joined, for content-part prompts)."""
        return text_of(self.prompt)


@dataclass
class Resolved:
    """One attempt's request with every value settled: what is sent is what this says."""

    backend: str
    model: str | None
    prompt: str | list[Part]
    system: str | None = None
    history: list[Message] = field(default_factory=list)
    temperature: float | None = None
    max_tokens: int | None = None
    params: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    schema: dict[str, Any] | None = None
    images: list[tuple[str, bytes]] = field(default_factory=list)
    stream: bool = True
    effort: str | None = None
    #: Seconds: the whole call for ``ask``, the silence between chunks for a stream.
    timeout: float = DEFAULT_TIMEOUT
    max_retries: int = 3
    max_retry_wait: float = 30.0
    cache: bool | None = None
    #: How many configured secrets were masked out of what is sent (see ``withhold``).
    withheld: int = 0
    #: What the backend does natively (e.g. ``"schema"``: the provider enforces the schema itself).
    features: frozenset[str] = frozenset()
    #: The backend's merged configuration (global settings overlaid with ``backends.<name>``).
    config: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def text(self) -> str:
        return text_of(self.prompt)

    def messages(self) -> list[Message]:
        """System (if any), then the conversation so far, then this prompt (with its images as parts)."""
        out: list[Message] = []
        if self.system:
            out.append({"role": "system", "content": self.system})
        out.extend(self.history)
        out.append({"role": "user", "content": self.user_content()})
        return out

    def user_content(self) -> str | list[Part]:
        """This turn's content: the prompt, or text and image parts when images go with it."""
        if not self.images:
            return self.prompt
        parts: list[Part] = (
            list(self.prompt) if isinstance(self.prompt, list) else [{"type": "text", "text": self.prompt}]
        )
        parts += [{"type": "image", "mime_type": mime, "data": data} for mime, data in self.images]
        return parts

    def backend_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of ``BaseBackend.ask``/``astream`` for this attempt.

        Only what is set, so a plugin written against the seed's signature
        receives exactly what it received before; ``options``, ``schema`` and
        ``images`` reach a plugin only when the caller used them.
        """
        kwargs: dict[str, Any] = {
            "model": self.model,
            "system": self.system,
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            **self.params,
        }
        if self.history:
            kwargs["history"] = list(self.history)
        if self.options:
            kwargs["options"] = dict(self.options)
        if self.schema is not None:
            kwargs["schema"] = self.schema
        if self.images:
            kwargs["images"] = list(self.images)
        if self.effort is not None:
            kwargs["effort"] = self.effort
        return kwargs

    def key_material(self) -> dict[str, Any]:
        """Everything that can change an answer, as plain JSON-able data (cache and record keys)."""
        return {
            "backend": self.backend,
            "model": self.model,
            "messages": [_plain_message(m) for m in self.messages()],
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "params": self.params,
            "options": self.options,
            "schema": self.schema,
            "images": [(mime, hashlib.sha256(data).hexdigest()) for mime, data in self.images],
            "effort": self.effort,
        }

    def key(self) -> str:
        """A stable digest of ``key_material()``."""
        text = json.dumps(self.key_material(), sort_keys=True, default=repr, separators=(",", ":"))
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def with_changes(self, **changes: Any) -> Resolved:
        return replace(self, **changes)


def _plain_message(message: Message) -> dict[str, Any]:
    content = message.get("content")
    if isinstance(content, list):
        parts = []
        for part in content:
            if part.get("type") == "text":
                parts.append({"type": "text", "text": part.get("text", "")})
            else:
                data = part.get("data") or b""
                digest = hashlib.sha256(data if isinstance(data, bytes) else str(data).encode()).hexdigest()
                parts.append({"type": part.get("type"), "mime_type": part.get("mime_type"), "sha256": digest})
        content = parts
    return {"role": message.get("role"), "content": content}


def _setting(config: Mapping[str, Any], name: str) -> Any:
    value = config.get(name)
    return None if value == "" else value


def _seconds(value: Any, default: float) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return default
    return number if math.isfinite(number) and number > 0 else default


def resolve(
    request: Request,
    backend: str,
    model: str | None,
    config: Mapping[str, Any],
    *,
    stream: bool,
    schema: dict[str, Any] | None = None,
) -> Resolved:
    """Settle ``request`` for one attempt at ``backend``/``model``.

    ``config`` is the backend's merged configuration (``Settings.backend_config``:
    global values overlaid with ``backends.<name>``), so one lookup gives
    "backend-specific, else global"; the call's own argument wins over both.
    """

    def pick(name: str) -> Any:
        given = getattr(request, name)
        return given if given is not None else _setting(config, name)

    temperature = pick("temperature")
    max_tokens = pick("max_tokens")
    if temperature is not None and temperature is not request.temperature:
        temperature = _number("temperature", temperature, 0.0, 2.0)
    if max_tokens is not None and max_tokens is not request.max_tokens:
        max_tokens = _whole("max_tokens", max_tokens, 1)
    retries = config.get("max_retries")
    try:
        max_retries = max(0, int(retries)) if retries is not None else 3
    except (TypeError, ValueError):
        max_retries = 3
    return Resolved(
        backend=backend,
        model=model,
        prompt=request.prompt,
        system=pick("system"),
        history=list(request.history),
        temperature=temperature,
        max_tokens=max_tokens,
        params=request.params,
        options=dict(request.options),
        schema=schema,
        images=list(request.images),
        stream=stream,
        effort=pick("effort"),
        timeout=_seconds(config.get("timeout"), DEFAULT_TIMEOUT),
        max_retries=max_retries,
        max_retry_wait=_seconds(config.get("max_retry_wait"), 30.0),
        cache=request.cache,
        config=dict(config),
    )
