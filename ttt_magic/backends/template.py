"""The backend template: ``ask`` and ``astream`` written once, on ``send(resolved)``.

Every built-in backend is a wire protocol plus a few facts (its URL, its
headers, how it names models). ``ProtocolBackend.send`` does the rest the same
way for all of them: pick the model id, build the HTTP exchange, send it,
decode the body or the stream, and end with one ``StreamEnd``; a withheld
answer (a refusal, a safety block) is reported the same way streamed or not:
the text that arrived, then the usage, then a ``ProviderError``.

``pricing`` is here too: the one place an answer's cost is worked out.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from ..errors import ProviderError
from ..models import AIResponse, StreamEnd, Thinking
from ..request import REQUEST_ARGS, Request, Resolved, check_kwargs, resolve
from ..thinking import ThinkSplitter
from ..thinking import split as split_thinking
from .base import BaseBackend

__all__ = [
    "Exchange",
    "ProtocolBackend",
    "ResolvedBackend",
    "catalogue_default",
    "configured_default",
    "price",
]

# --------------------------------------------------------------------------- pricing


def model_info(name: str | None) -> Any:
    """The catalogue entry for ``name``, or None (a broken custom catalogue is no entry)."""
    if not name:
        return None
    from ..registry import model_registry

    try:
        return model_registry.get_model(name)
    except Exception:
        return None


def price(end: StreamEnd, *, model: str | None, free: bool = False) -> StreamEnd:
    """``end`` with its cost filled in: what the backend said, else 0 for free backends, else the catalogue.

    None stays None when nothing is known (no usage, or no price): unknown is
    not zero.
    """
    if end.cost is None:
        end.cost = end.metadata.pop("cost", None)
    if end.cost is not None:
        return end
    if free:
        end.cost = 0.0
        return end
    info = model_info(end.model or model) or model_info(model)
    end.cost = info.cost(end.tokens_in, end.tokens_out) if info is not None else None
    return end


# --------------------------------------------------------------------------- default models


def configured_default(config: dict[str, Any], provider: str, fallback: str) -> str:
    """``default_model`` from the configuration when it is a model of ``provider``, else ``fallback``.

    The configuration a backend gets merges the global ``default_model`` into
    every backend's settings; a global default naming another provider's model
    must not be sent to this one.
    """
    from ..registry import guess_provider

    wanted = config.get("default_model")
    if not wanted:
        return fallback
    info = model_info(wanted)
    owner = (
        info.provider
        if info is not None
        else (wanted.partition("/")[0] if "/" in wanted else guess_provider(wanted))
    )
    return str(wanted) if owner in (None, provider) else fallback


def catalogue_default(provider: str, fallback: str) -> str:
    """The cheapest ``fast`` model the catalogue lists for ``provider`` (earliest listed on a tie).

    Data, not code, decides the default, so it follows the catalogue as models
    are added and retired; ``fallback`` covers a catalogue without one.
    """
    from ..registry import model_registry

    try:
        fast = [m for m in model_registry.list_models(provider) if m.speed == "fast"]
    except Exception:  # a broken custom catalogue must not stop a request
        return fallback
    priced = [(m.cost(1_000_000, 1_000_000), i, m.name) for i, m in enumerate(fast)]
    known = [entry for entry in priced if entry[0] is not None]
    if known:
        return min(known)[2]
    return fast[0].name if fast else fallback


def catalogue_ids(chosen: str, provider: str, prefixes: tuple[str, ...] = ()) -> tuple[str, str]:
    """(name shown and priced, id sent) for a model of ``provider``.

    Catalogue names and aliases map to the entry's ``provider_name``; a name
    with one of ``prefixes`` (``anthropic/...``) loses it; anything else is
    sent as given.
    """
    info = model_info(chosen)
    if info is not None and info.provider.lower() == provider:
        return info.name, info.provider_name or info.name
    for prefix in prefixes:
        if chosen.lower().startswith(prefix) and len(chosen) > len(prefix):
            return chosen, chosen[len(prefix) :]
    return chosen, chosen


# --------------------------------------------------------------------------- conversations


def alternating(
    prompt: Any, history: list[Any] | None = None
) -> tuple[str | None, list[tuple[str, list[Any]]]]:
    """A conversation as (system text lifted out of it, turns of alternating roles).

    For the protocols that take the system prompt apart from the turns and
    want user and assistant to alternate (Anthropic, Gemini): system turns are
    lifted out, consecutive turns of one role are joined, empty turns dropped.
    Each turn is (``"user"``/``"assistant"``, content parts); adjacent text
    parts are joined with a blank line, images kept where they stand.
    """
    systems: list[str] = []
    turns: list[tuple[str, list[Any]]] = []
    for turn in [*(history or []), {"role": "user", "content": prompt}]:
        role, parts = turn.get("role"), _parts(turn.get("content"))
        if role == "system":
            text = "".join(p["text"] for p in parts if p.get("type") == "text")
            if text:
                systems.append(text)
            continue
        role = "assistant" if role == "assistant" else "user"
        if not parts:
            continue
        if turns and turns[-1][0] == role:
            turns[-1] = (role, _join(turns[-1][1], parts))
        else:
            turns.append((role, parts))
    return ("\n\n".join(systems) or None), turns


def _parts(content: Any) -> list[Any]:
    if isinstance(content, list):
        return [p for p in content if isinstance(p, dict) and (p.get("type") != "text" or p.get("text"))]
    text = content if isinstance(content, str) else ("" if content is None else str(content))
    return [{"type": "text", "text": text}] if text else []


def _join(first: list[Any], second: list[Any]) -> list[Any]:
    out = list(first)
    for part in second:
        if out and part.get("type") == "text" and out[-1].get("type") == "text":
            out[-1] = {"type": "text", "text": out[-1]["text"] + "\n\n" + part["text"]}
        else:
            out.append(part)
    return out


def only_text(parts: list[Any]) -> str | None:
    """The text of parts that are all text (the common case: a plain string content), else None."""
    if all(p.get("type") == "text" for p in parts):
        return "".join(p["text"] for p in parts)
    return None


# --------------------------------------------------------------------------- backends on Resolved


class ResolvedBackend(BaseBackend):
    """A backend whose one entry point is ``send(resolved)``; ``ask``/``astream`` derive from it.

    The router calls ``send`` with the attempt's resolved request. Called by
    hand (``await backend.ask("hi", model=...)``), ``ask``/``astream`` settle
    the request against this backend's own configuration first, by the same
    rule as the router.
    """

    #: Answers cost nothing (local and offline backends): cost 0 instead of a catalogue price.
    free = False
    #: What the provider does natively (``"schema"``: enforces a JSON schema itself).
    features: frozenset[str] = frozenset()

    async def send(self, call: Resolved) -> AsyncIterator[str | StreamEnd]:  # pragma: no cover - abstract
        raise NotImplementedError
        yield ""

    def effective_model(self, model: str | None) -> str | None:
        """The model an attempt will use when ``model`` is None (for keys and ``--explain``)."""
        return model

    def call_config(self, model: str | None, config: dict[str, Any]) -> dict[str, Any]:
        """The configuration one attempt is settled against (``cloud`` adds its provider's)."""
        return config

    def _resolved(self, prompt: Any, kwargs: dict[str, Any], *, stream: bool) -> Resolved:
        check_kwargs(kwargs, REQUEST_ARGS, where=f"{self.name}.ask")
        request = Request(prompt, **kwargs)
        model = self.effective_model(request.model)
        config = self.call_config(model, dict(self.backend_config))
        return resolve(request, self.name, model, config, stream=stream)

    async def ask(self, prompt: Any, **kwargs: Any) -> AIResponse:  # type: ignore[override]
        call = self._resolved(prompt, kwargs, stream=False)
        parts: list[str] = []
        end: StreamEnd | None = None
        try:
            async for item in self.send(call):
                if isinstance(item, StreamEnd):
                    end = item
                elif isinstance(item, str) and item:
                    parts.append(item)
        except ProviderError as exc:
            failed = self.failure(exc, model=call.model, text="".join(parts))
            if end is not None:
                failed = failed.copy_with(
                    model=end.model or call.model,
                    tokens_in=end.tokens_in,
                    tokens_out=end.tokens_out,
                    metadata={**end.metadata, **failed.metadata, **end.finish_metadata()},
                )
            return failed
        end = price(end or StreamEnd(model=call.model), model=call.model, free=self.free)
        return AIResponse(
            "".join(parts),
            model=end.model or call.model,
            backend=self.name,
            tokens_in=end.tokens_in,
            tokens_out=end.tokens_out,
            cost=end.cost,
            data=end.data,
            reasoning=end.reasoning,
            metadata={**end.metadata, **end.finish_metadata()},
        )

    async def astream(self, prompt: Any, **kwargs: Any) -> AsyncIterator[str | StreamEnd]:  # type: ignore[override]
        """Answer text then a ``StreamEnd`` (thinking, if any, is in its ``reasoning``)."""
        call = self._resolved(prompt, kwargs, stream=True)
        async for item in self.send(call):
            if isinstance(item, StreamEnd):
                item = price(item, model=call.model, free=self.free)
            elif isinstance(item, Thinking):
                continue
            yield item


# --------------------------------------------------------------------------- HTTP protocols


@dataclass
class Exchange:
    """One HTTP request of a protocol, before it is sent."""

    method: str
    url: str
    json: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    params: dict[str, Any] | None = None


class ProtocolBackend(ResolvedBackend):
    """An HTTP backend: subclasses give the wire format, ``send`` does the rest.

    A subclass provides ``model_ids``, ``exchange``, ``decoder``, ``feed``
    (one streamed event -> text) and ``parse`` (a whole body -> text, end,
    withheld error), and names its stream framing in ``framing``.
    """

    #: "sse" (server-sent events) or "ndjson" (one JSON object a line).
    framing = "sse"
    provider_label = "the provider"

    async def model_ids(self, model: str | None) -> tuple[str, str]:
        """(name shown and priced, id sent) for ``model`` or this backend's default."""
        raise NotImplementedError

    def exchange(self, call: Resolved, provider_id: str, *, stream: bool) -> Exchange:
        raise NotImplementedError

    def decoder(self, name: str) -> Any:
        raise NotImplementedError

    def feed(self, decoder: Any, event: Any) -> str | None:
        raise NotImplementedError

    def parse(self, body: Any, name: str) -> tuple[str, StreamEnd, ProviderError | None]:
        raise NotImplementedError

    def translate(self, error: ProviderError) -> ProviderError:
        """A provider-specific reading of an HTTP error (Gemini's bad key is a 400)."""
        return error

    def _context(self, model: str | None) -> dict[str, Any]:
        return {"provider": self.provider_label, "model": model}

    async def _events(self, response: Any) -> AsyncIterator[Any]:
        from . import wire

        if self.framing == "sse":
            async for event in wire.aiter_sse(response):
                yield event
            return
        try:
            async for line in wire.aiter_ndjson(response):
                yield line
        except wire.NDJSONError as exc:
            raise ProviderError(
                f"{self.provider_label} sent a {exc}",
                hint="The answer so far is kept; try again.",
                retryable=True,
                kind="malformed",
            ) from None

    async def send(self, call: Resolved) -> AsyncIterator[str | StreamEnd]:
        from . import http

        name, provider_id = await self.model_ids(call.model)
        exchange = self.exchange(call, provider_id, stream=call.stream)
        options = {
            "headers": exchange.headers,
            "json": exchange.json,
            "params": exchange.params,
            "timeout": http.timeout_for({"timeout": call.timeout}),
            **self._context(name),
        }
        withheld: ProviderError | None = None
        # Thinking sent as text (``<think>...</think>`` first) is split from the answer.
        splitter = ThinkSplitter() if call.config.get("think_tags", True) is not False else None
        thoughts: list[str] = []
        try:
            if call.stream:
                decoder = self.decoder(name)
                take = getattr(decoder, "take_thinking", None)
                async with http.stream_request(exchange.method, exchange.url, **options) as response:
                    async for event in self._events(response):
                        text = self.feed(decoder, event)
                        native = take() if take is not None else ""
                        if native:
                            thoughts.append(native)
                            yield Thinking(native)
                        if text:
                            for part in splitter.feed(text) if splitter else (text,):
                                if isinstance(part, Thinking):
                                    thoughts.append(part.text)
                                yield part
                for part in splitter.flush() if splitter else ():
                    if isinstance(part, Thinking):
                        thoughts.append(part.text)
                    yield part
                end = decoder.end()
                check = getattr(decoder, "withheld", None)
                withheld = check() if check is not None else None
            else:
                body = await http.request_json(exchange.method, exchange.url, **options)
                text, end, withheld = self.parse(body, name)
                if splitter is not None:
                    text, thought = split_thinking([text])
                    if thought:
                        thoughts.append(thought)
                if end.reasoning:
                    thoughts.insert(0, end.reasoning)
                if thoughts:
                    yield Thinking("".join(thoughts))
                if text:
                    yield text
        except ProviderError as exc:
            raise self.translate(exc) from None
        if thoughts:
            end.reasoning = "".join(thoughts)
        # Usage and the finish reason first: the answer keeps them even when withheld.
        yield price(end, model=name, free=self.free)
        if withheld is not None:
            raise withheld
