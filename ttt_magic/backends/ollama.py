"""A local Ollama server: ``POST {ollama_base_url}/api/chat``, streamed as NDJSON.

Each streamed line is a JSON object carrying ``message.content``; the last has
``done: true`` with ``done_reason``, ``prompt_eval_count`` (tokens in) and
``eval_count`` (tokens out). An error after the 200 status arrives as a line
``{"error": "..."}``. ``is_available`` is asked on every routing decision from
sync code that may be running inside an event loop, so it probes the server
with a short synchronous request and caches the answer for a few seconds.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from ..errors import ProviderError
from ..models import StreamEnd
from ..request import Resolved
from .template import Exchange, ProtocolBackend, configured_default

__all__ = ["ChatStream", "OllamaBackend", "build_payload", "probe"]

PROVIDER = "Ollama"
DEFAULT_BASE_URL = "http://localhost:11434"
PROBE_TIMEOUT = 0.5
PROBE_TTL = 5.0
MODELS_TTL = 30.0

_probes: dict[str, tuple[float, bool, str | None]] = {}
_probe_lock = threading.Lock()


def probe(
    base_url: str, *, timeout: float = PROBE_TIMEOUT, ttl: float = PROBE_TTL
) -> tuple[bool, str | None]:
    """(reachable, reason) for an Ollama server, from a cache refreshed every ``ttl`` seconds.

    Synchronous on purpose (see the module docstring); bounded by ``timeout``.
    """
    now = time.monotonic()
    with _probe_lock:
        cached = _probes.get(base_url)
        if cached is not None and now - cached[0] < ttl:
            return cached[1], cached[2]
    from .probe import probe_status

    reason: str | None = None
    status = probe_status(f"{base_url}/api/version", timeout=timeout)
    ok = status is not None and status < 500
    if status is not None and not ok:
        reason = f"The Ollama server at {base_url} answered HTTP {status}."
    if not ok and reason is None:
        reason = (
            f"No Ollama server at {base_url}: start it with `ollama serve`, set OLLAMA_HOST, "
            "or use backend='mock'."
        )
    with _probe_lock:
        _probes[base_url] = (time.monotonic(), ok, reason)
    return ok, reason


def forget_probes() -> None:
    """Drop cached probe results (tests; or after starting a server)."""
    with _probe_lock:
        _probes.clear()


def build_payload(
    messages: list[dict[str, Any]],
    *,
    model: str,
    temperature: float | None = None,
    max_tokens: int | None = None,
    stream: bool = True,
    options: dict[str, Any] | None = None,
    keep_alive: Any = None,
) -> dict[str, Any]:
    """The JSON body of ``POST /api/chat``."""
    opts = dict(options or {})
    if temperature is not None:
        opts["temperature"] = float(temperature)
    if max_tokens:
        opts["num_predict"] = int(max_tokens)
    payload: dict[str, Any] = {"model": model, "messages": [dict(m) for m in messages], "stream": stream}
    if opts:
        payload["options"] = opts
    if keep_alive is not None:
        payload["keep_alive"] = keep_alive
    return payload


class ChatStream:
    """Interprets the decoded lines of one ``/api/chat`` answer."""

    def __init__(self, *, model: str | None = None) -> None:
        self.model = model
        self.provider_model: str | None = None
        self.tokens_in: int | None = None
        self.tokens_out: int | None = None
        self.finish_reason: str | None = None
        self.done = False
        self.chars = 0
        self.extra: dict[str, Any] = {}
        self._thinking: list[str] = []

    def take_thinking(self) -> str:
        """``message.thinking`` that arrived since the last call (with ``think`` on)."""
        text, self._thinking = "".join(self._thinking), []
        return text

    def handle(self, line: Any) -> str:
        """Text of one line ('' when none); raises ``ProviderError`` for an error line."""
        if not isinstance(line, dict):
            raise ProviderError(
                f"{PROVIDER} sent a stream line that is not a JSON object.", retryable=True, kind="malformed"
            )
        if line.get("error"):
            message = str(line["error"])
            retryable = not any(w in message.lower() for w in ("not found", "invalid", "unsupported"))
            raise ProviderError(
                f"{PROVIDER} reported an error mid-answer: {message[:240]}",
                hint="The answer so far is kept." + (" Try again." if retryable else ""),
                retryable=retryable,
                kind="stream_error",
            )
        self.provider_model = line.get("model") or self.provider_model
        message = line.get("message") or {}
        text = message.get("content") if isinstance(message, dict) else None
        text = text if isinstance(text, str) else ""
        thinking = message.get("thinking") if isinstance(message, dict) else None
        if isinstance(thinking, str) and thinking:
            self._thinking.append(thinking)
        self.chars += len(text)
        if line.get("done"):
            self.done = True
            self.finish_reason = line.get("done_reason") or "stop"
            for key, attr in (("prompt_eval_count", "tokens_in"), ("eval_count", "tokens_out")):
                value = line.get(key)
                if isinstance(value, int) and not isinstance(value, bool):
                    setattr(self, attr, value)
            for key in ("total_duration", "load_duration", "eval_duration"):
                if isinstance(line.get(key), int):
                    self.extra[key] = line[key]
        return text

    def end(self) -> StreamEnd:
        if not self.done:
            got = f" after {self.chars} characters" if self.chars else ""
            raise ProviderError(
                f"The {PROVIDER} stream ended before its final line{got}: the answer is incomplete.",
                hint="Try again.",
                retryable=True,
                kind="truncated",
            )
        meta: dict[str, Any] = {"provider": "ollama", **self.extra}
        if self.provider_model:
            meta["provider_model"] = self.provider_model
        pending = "".join(self._thinking)
        return StreamEnd(
            model=self.model,
            tokens_in=self.tokens_in,
            tokens_out=self.tokens_out,
            finish_reason=self.finish_reason,
            metadata=meta,
            reasoning=pending or None,
        )


def _ollama_message(message: dict[str, Any]) -> dict[str, Any]:
    """A message whose content holds images, in Ollama's shape: text ``content`` plus base64 ``images``."""
    content = message.get("content")
    if not isinstance(content, list):
        return message
    import base64

    text = "".join(p.get("text", "") for p in content if p.get("type") == "text")
    images = [base64.b64encode(p["data"]).decode("ascii") for p in content if p.get("type") == "image"]
    out: dict[str, Any] = {"role": message["role"], "content": text}
    if images:
        out["images"] = images
    return out


class OllamaBackend(ProtocolBackend):
    """Models served by a local Ollama (``/api/chat``); free, private, offline."""

    backend_name = "local"
    prefixes = ("ollama/", "local/")
    framing = "ndjson"
    provider_label = PROVIDER
    free = True
    features = frozenset({"schema"})

    def __init__(self, config: dict[str, Any] | None = None) -> None:
        super().__init__(config)
        cfg = self.backend_config
        self.base_url = str(cfg.get("base_url") or cfg.get("ollama_base_url") or DEFAULT_BASE_URL).rstrip("/")
        self._models_cache: tuple[float, list[str]] | None = None

    # -- availability

    def _probe(self) -> tuple[bool, str | None]:
        cfg = self.backend_config
        return probe(
            self.base_url,
            timeout=float(cfg.get("probe_timeout") or PROBE_TIMEOUT),
            ttl=float(cfg.get("probe_ttl") or PROBE_TTL),
        )

    @property
    def is_available(self) -> bool:
        return self._probe()[0]

    @property
    def unavailable_reason(self) -> str | None:
        return self._probe()[1]

    # -- models

    @property
    def default_model(self) -> str | None:
        """``default_model`` (backend or global) when it is an Ollama model, else the ``local`` alias.

        ``None`` when neither names one: ``pick_model`` then takes the first installed model.
        """
        from ..registry import model_registry

        configured = configured_default(self.backend_config, "ollama", "")
        if not configured and str(self.backend_config.get("default_model") or "").startswith("local/"):
            configured = str(self.backend_config["default_model"])
        return configured or model_registry.list_aliases().get("local")

    async def pick_model(self) -> str:
        """The model used when none is named (may ask the server for its installed models)."""
        chosen = self.default_model
        if chosen:
            return chosen
        installed = await self.models()
        if installed:
            return installed[0]
        raise ProviderError(
            f"No model is installed in the Ollama server at {self.base_url}.",
            hint="Pull one with `ollama pull llama3.2`, or set backends.local.default_model.",
            retryable=False,
            kind="no_model",
        )

    async def resolve(self, model: str | None) -> tuple[str, str]:
        """(name shown to people, name sent to Ollama)."""
        from ..registry import model_registry

        chosen = model or await self.pick_model()
        for prefix in self.prefixes:
            if chosen.startswith(prefix) and len(chosen) > len(prefix):
                return chosen, chosen[len(prefix) :]
        try:
            info = model_registry.get_model(chosen)
        except Exception:
            info = None
        if info is not None and info.provider.lower() in ("ollama", "local"):
            return info.name, info.provider_name or info.name
        return chosen, chosen

    async def models(self) -> list[str]:
        """Installed models from ``GET /api/tags``, cached for ``models_ttl`` seconds (default 30)."""
        from . import http

        ttl = float(self.backend_config.get("models_ttl") or MODELS_TTL)
        now = time.monotonic()
        if self._models_cache is not None and now - self._models_cache[0] < ttl:
            return list(self._models_cache[1])
        body = (
            await http.request_json(
                "GET",
                f"{self.base_url}/api/tags",
                timeout=http.timeout_for(self.backend_config),
                provider=PROVIDER,
            )
            or {}
        )
        found = [
            str(m.get("name") or m.get("model"))
            for m in body.get("models") or []
            if isinstance(m, dict) and (m.get("name") or m.get("model"))
        ]
        self._models_cache = (now, found)
        return list(found)

    def _context(self, model: str | None) -> dict[str, Any]:
        return {"provider": PROVIDER, "model": model}

    async def model_ids(self, model: str | None) -> tuple[str, str]:
        return await self.resolve(model)

    # -- the wire format

    def exchange(self, call: Resolved, provider_id: str, *, stream: bool) -> Exchange:
        cfg = self.backend_config
        options = dict(cfg.get("options") or {}) if isinstance(cfg.get("options"), dict) else {}
        for key in ("top_p", "seed", "stop"):
            if call.params.get(key) is not None:
                options[key] = call.params[key]
        payload = build_payload(
            [_ollama_message(m) for m in call.messages()],
            model=provider_id,
            temperature=call.temperature,
            max_tokens=call.max_tokens,
            stream=stream,
            options=options,
            keep_alive=cfg.get("keep_alive"),
        )
        if call.effort is not None:
            # gpt-oss takes a level; the other thinking models take true.
            payload["think"] = call.effort if provider_id.startswith("gpt-oss") else True
        if call.schema is not None:
            payload["format"] = call.schema
        payload.update(call.options)
        return Exchange("POST", f"{self.base_url}/api/chat", payload)

    def decoder(self, name: str) -> ChatStream:
        return ChatStream(model=name)

    def feed(self, decoder: ChatStream, line: Any) -> str | None:
        if decoder.done:  # read on to the body's end so the connection can be reused
            return None
        return decoder.handle(line)

    def parse(self, body: Any, name: str) -> tuple[str, StreamEnd, ProviderError | None]:
        state = ChatStream(model=name)
        text = state.handle(body)
        return text, state.end(), None

    async def status(self) -> dict[str, Any]:
        from . import http

        available, reason = probe(self.base_url, ttl=0)
        info: dict[str, Any] = {
            "backend": self.name,
            "available": available,
            "base_url": http.server_label(self.base_url),
        }
        if not available:
            info["reason"] = reason
            info["models"] = []
            return info
        try:
            info["models"] = await self.models()
            version = await http.request_json(
                "GET",
                f"{self.base_url}/api/version",
                timeout=http.timeout_for(self.backend_config),
                provider=PROVIDER,
            )
            if isinstance(version, dict) and version.get("version"):
                info["version"] = version["version"]
        except ProviderError as exc:
            info.setdefault("models", [])
            info["models_error"] = str(exc)
        return info
