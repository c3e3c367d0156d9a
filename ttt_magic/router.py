"""Routing: decide which backend and model answer a prompt, then run the attempt plan.

``decide`` is pure bookkeeping (no request is sent) and explains itself step by
step, so ``route()`` and ``%%ask --explain`` can show why. ``complete`` and
``stream`` execute a ``Route``: retries with exponential backoff and jitter for
retryable failures only (honouring the server's Retry-After), then fallbacks
along ``fallback_order``. Retries live here and nowhere else.

A stream falls back only before its first chunk: once text has reached the
reader, a failure ends the answer with that text kept and ``error`` set.
"""

from __future__ import annotations

import asyncio
import random
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from . import scope
from .backends.base import error_from_response, error_info
from .chain import Item, chain
from .config import Settings, get_config
from .errors import BackendUnavailable, ConfigError, ProviderError, TTTError
from .models import AIResponse, StreamEnd, Thinking
from .registry import PROVIDER_BACKENDS, backend_registry, model_registry
from .request import Request, Resolved, resolve
from .withhold import configured_secrets, withhold_call

__all__ = [
    "Attempt",
    "Request",
    "Route",
    "StreamOutcome",
    "complete",
    "decide",
    "prepare",
    "run",
    "sleep",
    "stream",
]

#: The waiting function between retries; tests replace it with a fake clock.
sleep = asyncio.sleep

#: First backoff step in seconds (doubled per retry, with jitter, capped by max_retry_wait).
BACKOFF_BASE = 0.5

NO_BACKEND_HINT = (
    "Set an API key (OPENAI_API_KEY, ANTHROPIC_API_KEY, GEMINI_API_KEY or OPENROUTER_API_KEY), "
    "start Ollama (`ollama serve`), or use backend='mock' for offline answers."
)


@dataclass
class Attempt:
    """One try at one backend: what happened and how long we waited before it."""

    backend: str
    model: str | None
    outcome: str  # "ok", "error", "retry", "unavailable", "interrupted"
    error: str | None = None
    wait: float = 0.0
    elapsed: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        # By hand: dataclasses.asdict deep-copies, which cost more than the rest of a route record.
        return {
            "backend": self.backend,
            "model": self.model,
            "outcome": self.outcome,
            "error": self.error,
            "wait": self.wait,
            "elapsed": self.elapsed,
        }


@dataclass
class Route:
    """The decision: a backend and model, the fallbacks after them, and the reasons."""

    backend: str | None
    model: str | None
    steps: list[str] = field(default_factory=list)
    fallbacks: list[tuple[str, str | None]] = field(default_factory=list)
    error: str | None = None
    attempts: list[Attempt] = field(default_factory=list)
    #: The settings the decision was made under; execution uses the same ones.
    settings: Settings | None = field(default=None, repr=False, compare=False)
    #: Said before the error when no backend of the plan could be used (names the alias and why).
    note: str | None = None

    @property
    def plan(self) -> list[tuple[str, str | None]]:
        return ([(self.backend, self.model)] if self.backend else []) + list(self.fallbacks)

    def explain(self) -> str:
        """Human-readable reasoning, one step a line."""
        lines = [f"Route: backend={self.backend or '-'} model={self.model or '(backend default)'}"]
        lines += [f"  {i}. {step}" for i, step in enumerate(self.steps, 1)]
        if self.fallbacks:
            chain = ", ".join(f"{b}" + (f" ({m})" if m else "") for b, m in self.fallbacks)
            lines.append(f"  fallbacks: {chain}")
        if self.error:
            lines.append(f"  error: {self.error}")
        for a in self.attempts:
            wait = f" after {a.wait:.2f}s" if a.wait else ""
            lines.append(
                f"  attempt {a.backend}/{a.model or '-'}{wait}: {a.outcome}"
                + (f" - {a.error}" if a.error else "")
            )
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "model": self.model,
            "steps": list(self.steps),
            "fallbacks": [list(f) for f in self.fallbacks],
            "error": self.error,
            "attempts": [a.to_dict() for a in self.attempts],
        }

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> Route:
        """The route an answer recorded (``response.route``), to ``explain()`` it again."""
        return cls(
            record.get("backend"),
            record.get("model"),
            list(record.get("steps") or []),
            [tuple(f) for f in record.get("fallbacks") or []],  # type: ignore[misc]
            record.get("error"),
            [Attempt(**a) for a in record.get("attempts") or []],
        )

    def __str__(self) -> str:
        return self.explain()

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(self.explain())


# --------------------------------------------------------------------------- deciding


def backend_for_provider(provider: str) -> str:
    provider = provider.lower()
    return PROVIDER_BACKENDS.get(provider, provider)


def _keyword_hit(prompt: str, keywords: list[str]) -> str | None:
    low = prompt.lower()
    for word in keywords:
        if re.search(r"(?<![a-z0-9_])" + re.escape(word) + r"(?![a-z0-9_])", low):
            return word
    return None


def _rule_matches(rule: dict[str, Any], prompt: str) -> bool:
    cond = rule.get("if") or {}
    low = prompt.lower()
    if "contains" in cond and not any(word in low for word in cond["contains"]):
        return False
    if "length_gt" in cond and not len(prompt) > cond["length_gt"]:
        return False
    return not ("length_lt" in cond and not len(prompt) < cond["length_lt"])


def _model_for_backend(name: str | None, backend: str, settings: Settings) -> tuple[str | None, str | None]:
    """(model to send, note) for a model name under a fixed backend."""
    if not name:
        return None, None
    info = model_registry.get_model(name, settings)
    if info is None:
        return name, f"model {name!r} passed to {backend!r} as given"
    if backend_for_provider(info.provider) == backend or info.provider == backend:
        return info.name, f"model {name!r} is {info.name!r} ({info.provider})" if info.name != name else None
    return name, None


def _backend_default_model(settings: Settings, backend: str) -> str | None:
    return (settings.backends.get(backend) or {}).get("default_model")


def decide(request: Request, settings: Settings | None = None) -> Route:
    """Choose backend and model for ``request`` and say why. Sends nothing.

    Order (the seed's "Dynamic Backend Selection"): explicit backend; the model's
    provider; routing rules, then keywords; configuration defaults; availability.
    Raises ``UsageError`` for an unknown backend or model.
    """
    from .plugins import ensure_discovered

    settings = settings or get_config()
    ensure_discovered()
    steps: list[str] = []
    _check_default_backend(settings)

    if request.backend:
        backend = request.backend
        if not backend_registry.has(backend, settings):
            backend_registry.get(backend, settings)  # raises ConfigError with did-you-mean
        steps.append(f"backend {backend!r} given explicitly")
        model, note = _model_for_backend(request.model, backend, settings)
        if note:
            steps.append(note)
        if request.model is None:
            model = _backend_default_model(settings, backend)
            if model:
                steps.append(f"model {model!r} from backends.{backend}.default_model")
            else:
                steps.append(f"no model given: {backend!r} uses its own default")
        route = Route(backend, model, steps)
        return _with_fallbacks(route, request, settings, pinned=True)

    if request.model:
        info = model_registry.resolve(request.model, settings)  # raises UnknownModelError
        backend = backend_for_provider(info.provider)
        alias = f" (alias of {info.name!r})" if info.name != request.model else ""
        steps.append(
            f"model {request.model!r}{alias} is served by provider {info.provider!r} -> backend {backend!r}"
        )
        ok, why = backend_registry.availability(backend, settings)
        lister = backend_registry.listed_models(settings).get(info.name) if not ok else None
        if lister and lister != backend and backend_registry.availability(lister, settings)[0]:
            steps.append(f"backend {backend!r} is unavailable ({why}); {lister!r} lists {info.name!r}")
            return _with_fallbacks(Route(lister, info.name, steps), request, settings)
        fixed = settings.default_backend
        if not ok and fixed != "auto" and _serves_any_model(fixed, settings):
            steps.append(
                f"backend {backend!r} is unavailable ({why}); default_backend {fixed!r} "
                f"({settings.source('default_backend')}) answers any model name: it serves {request.model!r}"
            )
            return _with_fallbacks(Route(fixed, request.model, steps), request, settings)
        route = _with_fallbacks(Route(backend, info.name, steps), request, settings)
        if not ok:
            route.note = (
                f"Model {request.model!r}{alias} is served by backend {backend!r}, which is unavailable:"
            )
        return route

    proposals = _proposals(request, settings, steps)
    for backend, model, reason in proposals:
        ok, why = backend_registry.availability(backend, settings)
        if ok:
            steps.append(f"{reason}: backend {backend!r}" + (f", model {model!r}" if model else ""))
            return _with_fallbacks(Route(backend, model, steps), request, settings)
        steps.append(f"{reason}, but backend {backend!r} is unavailable: {why}")
    if proposals and settings.get("replay"):
        backend, model, reason = proposals[0]
        steps.append(f"replaying {settings.get('replay')}: recorded answers need no backend, so {reason}")
        return _with_fallbacks(Route(backend, model, steps), request, settings)
    steps.append("no backend available")
    return Route(None, None, steps, error="No backend is available. " + NO_BACKEND_HINT, settings=settings)


def _check_default_backend(settings: Settings) -> None:
    """A ``default_backend`` nobody registered is a configuration error, said as one.

    Otherwise every ask would end in "No backend is available. Set an API
    key...", which sends the user the wrong way.
    """
    name = settings.default_backend
    if name == "auto" or backend_registry.has(name, settings):
        return
    import difflib

    known = sorted(backend_registry.entries(settings))
    close = difflib.get_close_matches(str(name), known, n=1)
    raise ConfigError(
        f"default_backend {name!r} ({settings.source('default_backend')}) is not a registered backend.",
        hint=(f"Did you mean {close[0]!r}? " if close else "")
        + f"Registered: {', '.join(known)} (or 'auto'); a plugin that registers it may not be loaded.",
    )


def _serves_any_model(name: str, settings: Settings) -> bool:
    """Whether backend ``name`` answers whatever model is named (the offline mock and echo do)."""
    try:
        return bool(getattr(backend_registry.get(name, settings), "serves_any_model", False))
    except TTTError:
        return False


def _proposals(request: Request, settings: Settings, steps: list[str]) -> list[tuple[str, str | None, str]]:
    """Candidate (backend, model, reason) in order of preference, before availability."""
    found: list[tuple[str, str | None, str]] = []
    default_backend = settings.default_backend

    def add_model(name: str, reason: str, backend: str | None = None) -> None:
        try:
            info = model_registry.resolve(name, settings)
        except TTTError as exc:
            if backend:  # a fixed backend knows its own models: pass the name on as given
                found.append((backend, name, f"{reason}, passed to {backend!r} as given"))
            else:
                steps.append(f"{reason}: {exc}")
            return
        found.append((backend or backend_for_provider(info.provider), info.name, reason))

    for i, rule in enumerate(settings.routing.get("rules", [])):
        if _rule_matches(rule, request.text):
            reason = f"routing rule {i + 1} matches"
            if rule.get("prefer_model"):
                add_model(rule["prefer_model"], reason, rule.get("prefer_backend"))
            else:
                backend = rule["prefer_backend"]
                found.append((backend, _backend_default_model(settings, backend), reason))
            break

    if settings.default_model:
        steps.append("default_model is set, so prompt keywords are not used")
    else:
        for category, alias in (("code", "coding"), ("speed", "fast"), ("quality", "best")):
            word = _keyword_hit(request.text, settings.routing.get(f"{category}_keywords", []))
            if not word:
                continue
            try:
                info = model_registry.resolve(alias, settings)
            except TTTError:
                steps.append(f"{category} keyword {word!r}, but alias {alias!r} names no model")
                break
            backend = backend_for_provider(info.provider)
            if default_backend not in ("auto", backend):
                steps.append(
                    f"{category} keyword {word!r} suggests {alias!r} ({info.name}), "
                    f"but default_backend is {default_backend!r}"
                )
                break
            found.append((backend, info.name, f"{category} keyword {word!r} -> alias {alias!r}"))
            break

    if settings.default_model:
        add_model(
            settings.default_model,
            f"default_model {settings.default_model!r} ({settings.source('default_model')})",
            None if default_backend == "auto" else default_backend,
        )
    if default_backend != "auto":
        found.append(
            (
                default_backend,
                _backend_default_model(settings, default_backend),
                f"default_backend {default_backend!r} ({settings.source('default_backend')})",
            )
        )
    else:
        found.append(("cloud", _backend_default_model(settings, "cloud"), "auto: a cloud provider key"))
        found.append(("local", _backend_default_model(settings, "local"), "auto: a local Ollama server"))
    return found


def _with_fallbacks(route: Route, request: Request, settings: Settings, pinned: bool = False) -> Route:
    route.settings = settings
    if pinned:
        route.steps.append("no fallbacks: the backend was chosen by the caller")
        return route
    if not settings.enable_fallbacks:
        return route
    for backend in settings.fallback_order:
        if backend == route.backend or any(backend == b for b, _ in route.fallbacks):
            continue
        model = route.model
        info = model_registry.get_model(model, settings) if model else None
        if info is None or backend_for_provider(info.provider) != backend:
            model = _backend_default_model(settings, backend)
        route.fallbacks.append((backend, model))
    return route


# --------------------------------------------------------------------------- executing


def _backoff(retry: int, error: ProviderError, cap: float) -> float:
    if error.retry_after is not None:
        return max(0.0, min(float(error.retry_after), cap))
    step = min(cap, BACKOFF_BASE * (2**retry))
    return step / 2 + random.uniform(0, step / 2)


def _finish(
    text: str,
    route: Route,
    backend: str | None,
    model: str | None,
    started: float,
    *,
    end: StreamEnd | None = None,
    error: str | None = None,
) -> AIResponse:
    """The caller's response, built in one place: text, usage, cost, the route record."""
    metadata: dict[str, Any] = {**end.metadata, **end.finish_metadata()} if end is not None else {}
    metadata.pop("cost", None)
    metadata["route"] = route.to_dict()
    return AIResponse(
        text,
        model=(end.model if end is not None else None) or model,
        backend=backend,
        tokens_in=end.tokens_in if end is not None else None,
        tokens_out=end.tokens_out if end is not None else None,
        time_taken=time.perf_counter() - started,
        cost=end.cost if end is not None else None,
        data=end.data if end is not None else None,
        reasoning=end.reasoning if end is not None else None,
        metadata=metadata,
        error=error,
    )


def _usable_backend(name: str, settings: Settings) -> tuple[Any, TTTError | None]:
    """(the backend instance or None, why it cannot be used or None)."""
    backend = None
    try:
        backend = backend_registry.get(name, settings)
        if not backend.is_available:
            raise BackendUnavailable(backend.unavailable_reason or f"Backend {name!r} is unavailable.")
    except TTTError as exc:
        return backend, exc
    return backend, None


class _Unusable:
    """Stands in for a backend that cannot be used, so a replay can still answer through the chain."""

    def __init__(self, error: TTTError) -> None:
        self.error = error

    async def send(self, call: Resolved) -> AsyncIterator[Item]:
        raise BackendUnavailable(str(self.error))
        yield ""  # pragma: no cover - makes this an async generator


def prepare(
    request: Request, backend: Any, name: str, model: str | None, settings: Settings, *, stream: bool
) -> Resolved:
    """The resolved request of one attempt at ``backend`` (what is sent is what this says)."""
    effective = getattr(backend, "effective_model", None)
    if effective is not None:
        model = effective(model)
    config = settings.backend_config(name)
    narrow = getattr(backend, "call_config", None)
    if narrow is not None:
        config = narrow(model, config)
    call = resolve(request, name, model, config, stream=stream, schema=_schema_of(request))
    features = getattr(backend, "features", None)
    if features:
        call.features = frozenset(features)
    call, withheld = withhold_call(call, configured_secrets(settings))
    if withheld:
        call.withheld = withheld
    return call


def _schema_of(request: Request) -> dict[str, Any] | None:
    if request.schema is None:
        return None
    from .structured import normalize  # imported (and its interceptor installed) only when used

    return normalize(request.schema)


async def call_backend(backend: Any, call: Resolved) -> AsyncIterator[Item]:
    """The innermost link of the chain: one backend call, as text chunks then one priced ``StreamEnd``.

    Backends built on the template take the resolved request (``send``); any
    other backend (a plugin written against the seed's ``BaseBackend``) is
    called with the keyword arguments it has always received. A failed
    ``AIResponse`` becomes a ``ProviderError`` here, so failures travel one
    way inside the router.
    """
    from .backends.template import price

    free = bool(getattr(backend, "free", False))
    send = getattr(backend, "send", None)
    if send is not None:
        chars = 0
        async for item in send(call):
            if isinstance(item, StreamEnd):
                item = price(_estimated(item, call, chars), model=call.model, free=free)
            elif isinstance(item, str):
                chars += len(item)
            yield item
        return
    kwargs = call.backend_kwargs()
    if call.stream:
        end: StreamEnd | None = None
        thoughts: list[str] = []
        chunks = backend.astream(call.prompt, **kwargs)
        try:
            async for item in chunks:
                if isinstance(item, StreamEnd):
                    end = item
                elif isinstance(item, Thinking):  # a plugin may stream its thinking apart too
                    thoughts.append(item.text)
                    yield item
                elif item:
                    yield str(item)
        finally:
            aclose = getattr(chunks, "aclose", None)
            if aclose is not None:
                await aclose()
        end = end or StreamEnd(model=call.model)
        if thoughts and not end.reasoning:
            end.reasoning = "".join(thoughts)  # before the chain's cache and recording keep the end
        yield price(end, model=call.model, free=free)
        return
    response = await backend.ask(call.prompt, **kwargs)
    if not isinstance(response, AIResponse):
        response = AIResponse(str(response), model=call.model, backend=call.backend)
    end = StreamEnd(
        model=response.model or call.model,
        tokens_in=response.tokens_in,
        tokens_out=response.tokens_out,
        finish_reason=response.metadata.get("finish_reason"),
        metadata={k: v for k, v in response.metadata.items() if k not in ("route", "error_info")},
        cost=response.cost,
        data=response.data,
        reasoning=response.reasoning,
    )
    if response.failed:
        error = error_from_response(response)
        error.partial_text = response.text  # type: ignore[attr-defined]
        error.end = end  # type: ignore[attr-defined]
        raise error
    if response.text:
        yield response.text
    yield price(end, model=call.model, free=free)


def _estimated(end: StreamEnd, call: Resolved, chars: int) -> StreamEnd:
    """Token counts for a server that reported none (llama.cpp streams, some proxies), marked estimated.

    Counted by ``tokens.count`` (words of four characters, punctuation one
    each): close enough for totals and budgets, and said to be an estimate in
    ``metadata["tokens_estimated"]`` and the footer (``~120 tokens``).
    """
    if end.tokens_in is not None and end.tokens_out is not None:
        return end
    from . import tokens

    if end.tokens_in is None:
        end.tokens_in = tokens.count_messages(call.messages())
    if end.tokens_out is None:
        end.tokens_out = max(1, -(-chars // tokens.CHARS_PER_TOKEN)) if chars else 0
    end.metadata["tokens_estimated"] = True
    return end


def _timeout_error(backend: str, call: Resolved) -> ProviderError:
    said = "gave no answer within" if not call.stream else "sent nothing for"
    return ProviderError(
        f"{backend} {said} {call.timeout:g} s.",
        retryable=True,
        kind="timeout",
        hint="Raise `timeout` or try again.",
    )


class StreamOutcome:
    """Filled in by ``run`` when it ends: the final response."""

    response: AIResponse | None = None


async def run(
    route: Route, request: Request, outcome: StreamOutcome, *, stream: bool, parts_wanted: bool = False
) -> AsyncIterator[str | Thinking]:
    """The attempt loop: walk the plan, retry, back off, fall back; the one loop for ask and stream.

    Every attempt goes through the interception chain. With ``stream`` the
    text is yielded as it arrives, and once any has reached the reader a
    failure ends the answer (text kept, ``error`` set) instead of retrying or
    falling back; without it nothing is yielded and every failure may be
    retried. The final response is left in ``outcome``. With ``parts_wanted``
    a stream also yields the model's thinking as ``Thinking`` pieces.
    """
    started = time.perf_counter()
    if route.backend is None:
        outcome.response = _finish("", route, None, None, started, error=route.error)
        return
    settings = route.settings or get_config()
    with scope.active(settings):
        async for item in _attempts(route, request, outcome, settings, started, stream, parts_wanted):
            yield item


async def _attempts(
    route: Route,
    request: Request,
    outcome: StreamOutcome,
    settings: Settings,
    started: float,
    stream: bool,
    parts_wanted: bool,
) -> AsyncIterator[str | Thinking]:
    errors: list[str] = []
    kept: tuple[str, str, str | None, StreamEnd | None, str] | None = None  # a failure's partial text
    for backend_name, model in route.plan:
        backend, unusable = _usable_backend(backend_name, settings)
        if unusable is not None:
            if not settings.get("replay"):
                route.attempts.append(Attempt(backend_name, model, "unavailable", str(unusable)))
                errors.append(str(unusable))
                continue
            # A recording may answer without the backend: run the chain, whose innermost
            # link says why the backend cannot be used if the answer was not recorded.
            call = prepare(request, backend, backend_name, model, settings, stream=stream)
            stand_in: Any = _Unusable(unusable)
            handler = chain.wrap(lambda c, b=stand_in: call_backend(b, c))
        else:
            call = prepare(request, backend, backend_name, model, settings, stream=stream)
            handler = chain.wrap(lambda c, b=backend: call_backend(b, c))
        wait = 0.0
        for retry in range(call.max_retries + 1):
            if wait:
                await sleep(wait)
            t0 = time.perf_counter()
            parts: list[str] = []
            thoughts: list[str] = []
            end: StreamEnd | None = None
            failure: ProviderError | None = None
            items = handler(call)
            watch = _IdleWatch(call.timeout)
            try:
                async for item in items:
                    if isinstance(item, StreamEnd):
                        end = item
                    elif isinstance(item, Thinking):
                        thoughts.append(item.text)
                        if stream and parts_wanted:
                            watch.pause()
                            yield item
                            watch.resume()
                        else:
                            watch.resume()  # thinking is a sign of life
                    elif item:
                        parts.append(item)
                        if stream:
                            watch.pause()
                            yield item
                            watch.resume()
            except ProviderError as exc:
                failure = exc
            except (asyncio.CancelledError, GeneratorExit):
                if not watch.absorb():
                    route.attempts.append(
                        Attempt(backend_name, call.model, "interrupted", None, wait, time.perf_counter() - t0)
                    )
                    raise
                failure = _timeout_error(backend_name, call)
            except Exception as exc:  # a plugin that raises instead of returning an error
                failure = ProviderError(error_info(exc)["message"], retryable=False, kind="exception")
            finally:
                watch.stop()
                aclose = getattr(items, "aclose", None)
                if aclose is not None:
                    try:
                        await aclose()
                    except Exception:
                        pass
            elapsed = time.perf_counter() - t0
            if failure is None:
                route.attempts.append(Attempt(backend_name, call.model, "ok", None, wait, elapsed))
                if end is not None and thoughts and not end.reasoning:
                    end.reasoning = "".join(thoughts)
                outcome.response = _finish("".join(parts), route, backend_name, call.model, started, end=end)
                if call.withheld:
                    outcome.response.metadata["withheld_secrets"] = call.withheld
                return
            end = end or getattr(failure, "end", None)
            text = "".join(parts) or getattr(failure, "partial_text", "") or ""
            if stream and parts:  # text already reached the reader: keep it, do not retry or fall back
                route.attempts.append(Attempt(backend_name, call.model, "error", str(failure), wait, elapsed))
                outcome.response = _finish(
                    text,
                    route,
                    backend_name,
                    call.model,
                    started,
                    end=end,
                    error=f"The answer was cut off: {failure}",
                )
                return
            retryable = failure.retryable and retry < call.max_retries
            route.attempts.append(
                Attempt(
                    backend_name, call.model, "retry" if retryable else "error", str(failure), wait, elapsed
                )
            )
            if not retryable:
                errors.append(str(failure))
                if kept is None:
                    kept = (text, backend_name, call.model, end, str(failure))
                break
            wait = _backoff(retry, failure, call.max_retry_wait)
    if kept is not None and errors and errors[0] == kept[4]:
        # Keep what the failing backend did say (e.g. text before a refusal or a safety stop).
        text, name, used, end, error = kept
        outcome.response = _finish(text, route, name, used, started, end=end, error=error)
        return
    error = errors[0] if errors else route.error
    if route.note and error and all(a.outcome == "unavailable" for a in route.attempts):
        error = f"{route.note} {error}"
    outcome.response = _finish("", route, route.backend, route.model, started, error=error)


async def complete(route: Route, request: Request) -> AIResponse:
    """Run the plan without streaming; always returns a response, failed or not."""
    outcome = StreamOutcome()
    async for _ in run(route, request, outcome, stream=False):
        pass
    assert outcome.response is not None
    return outcome.response


def stream(
    route: Route, request: Request, outcome: StreamOutcome, *, parts: bool = False
) -> AsyncIterator[str | Thinking]:
    """Run the plan streaming: yields text chunks, leaves the final response in ``outcome``."""
    return run(route, request, outcome, stream=True, parts_wanted=parts)


class _IdleWatch:
    """Cancels the running task when an attempt stays silent longer than ``timeout``.

    For a stream that is the silence between chunks; for ``ask``, where
    nothing is handed over until the end, it bounds the whole call. Costs two
    attribute writes a chunk (``asyncio.wait_for`` around every chunk cost
    ~50 µs each). Time the reader spends between chunks is not counted:
    ``pause()`` before handing a chunk over, ``resume()`` after.
    """

    def __init__(self, timeout: float) -> None:
        self.loop = asyncio.get_running_loop()
        self.task = asyncio.current_task()
        self.timeout = timeout
        self.fired = False
        self.paused = False
        self.last = self.loop.time()
        self.handle = self.loop.call_at(self.last + timeout, self._check)

    def _check(self) -> None:
        due = self.last + self.timeout
        if self.paused or self.loop.time() < due:
            self.handle = self.loop.call_at(max(due, self.loop.time() + 0.01), self._check)
            return
        self.fired = True
        if self.task is not None:
            self.task.cancel()

    def pause(self) -> None:
        self.paused = True

    def resume(self) -> None:
        self.paused = False
        self.last = self.loop.time()

    def stop(self) -> None:
        self.handle.cancel()

    def absorb(self) -> bool:
        """After a CancelledError: True when it was our timeout (and forget that cancel)."""
        if not self.fired:
            return False
        uncancel = getattr(self.task, "uncancel", None)
        if uncancel is not None:
            uncancel()
        return True
