"""Shared HTTP plumbing of the wire-protocol backends: pooled clients, timeouts, error mapping.

Why one module: every provider needs the same four things done the same way:
a keep-alive connection pool per event loop (httpx2 clients are bound to the
loop they first ran on), timeouts taken from configuration, a translation of
HTTP statuses and provider error bodies into ``ProviderError`` with a message a
person can act on, and a streaming request that always gives its connection
back, even when the consumer is cancelled half-way.

This module is the only place that imports ``httpx2``; it is itself imported
only when a backend first sends a request, so loading ttt_magic stays cheap.
Nothing here retries or sleeps: the router owns that.
"""

from __future__ import annotations

import asyncio
import email.utils
import json as _json
import re
import threading
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import httpx2

from ..errors import ProviderError

__all__ = [
    "aclose_clients",
    "close_all_clients",
    "error_from_status",
    "get_client",
    "iter_json_lines",
    "open_client_count",
    "parse_retry_after",
    "probe_status",
    "redact",
    "request_bytes",
    "request_json",
    "server_label",
    "stream_request",
    "timeout_for",
    "transport_error",
    "use_transport",
]

DEFAULT_TIMEOUT = 30.0
USER_AGENT = "ttt-magic"

_clients: dict[asyncio.AbstractEventLoop, httpx2.AsyncClient] = {}
_lock = threading.Lock()


# --------------------------------------------------------------------------- clients


#: A transport to use instead of the network (tests, recording proxies); see ``use_transport``.
_transport: httpx2.AsyncBaseTransport | None = None


def _new_client() -> httpx2.AsyncClient:
    return httpx2.AsyncClient(
        timeout=httpx2.Timeout(DEFAULT_TIMEOUT, connect=10.0),
        limits=httpx2.Limits(max_connections=100, max_keepalive_connections=100, keepalive_expiry=30.0),
        headers={"user-agent": USER_AGENT},
        follow_redirects=False,
        transport=_transport,
    )


def use_transport(transport: httpx2.AsyncBaseTransport | None) -> None:
    """Send every later request through ``transport`` (``None``: the network again).

    The one seam below the protocols: an ``httpx2.MockTransport`` answers in
    process, a custom transport can record or replay bytes. Pooled clients
    are dropped so the next request builds one on the new transport.
    """
    global _transport
    with _lock:
        _transport = transport
        stale = list(_clients.items())
        _clients.clear()
    for loop, client in stale:
        if not loop.is_closed() and not client.is_closed:
            try:
                if loop.is_running():
                    asyncio.run_coroutine_threadsafe(client.aclose(), loop)
                else:
                    loop.run_until_complete(client.aclose())
            except Exception:  # a client that will not close is left to the garbage collector
                pass


def _forget_dead_loops() -> None:
    """Drop clients whose loop is closed: nothing can close them any more, the GC frees sockets."""
    for loop in [lp for lp in _clients if lp.is_closed()]:
        _clients.pop(loop, None)


def get_client() -> httpx2.AsyncClient:
    """The pooled client of the running event loop, created on first use.

    One client per loop because a client's connections belong to the loop that
    opened them; sharing one across loops fails in confusing ways.
    """
    loop = asyncio.get_running_loop()
    with _lock:
        client = _clients.get(loop)
        if client is None or client.is_closed:
            _forget_dead_loops()
            client = _clients[loop] = _new_client()
        return client


def open_client_count() -> int:
    """How many loops currently hold an open pooled client (for tests and status)."""
    with _lock:
        return sum(1 for lp, c in _clients.items() if not lp.is_closed() and not c.is_closed)


async def aclose_clients() -> None:
    """Close the running loop's pooled client (a later request opens a new one)."""
    loop = asyncio.get_running_loop()
    with _lock:
        client = _clients.pop(loop, None)
    if client is not None:
        await client.aclose()


def close_all_clients(loop: asyncio.AbstractEventLoop | None = None, *, timeout: float = 5.0) -> None:
    """Close pooled clients from synchronous code, e.g. the runner at interpreter exit.

    With ``loop``, only that loop's client; otherwise every loop's. A loop
    running in another thread gets the close submitted to it; a stopped loop
    runs it to completion; a closed loop's client is simply forgotten. Called
    from inside the loop itself it schedules the close and returns.
    """
    with _lock:
        if loop is None:
            items = list(_clients.items())
            _clients.clear()
        else:
            client = _clients.pop(loop, None)
            items = [(loop, client)] if client is not None else []
    try:
        current = asyncio.get_running_loop()
    except RuntimeError:
        current = None
    for lp, client in items:
        if client.is_closed or lp.is_closed():
            continue
        try:
            if lp is current:
                lp.create_task(client.aclose())
            elif lp.is_running():
                asyncio.run_coroutine_threadsafe(client.aclose(), lp).result(timeout)
            else:
                lp.run_until_complete(client.aclose())
        except Exception:  # shutdown must not fail because one socket would not close
            pass


def probe_status(url: str, *, timeout: float = 0.5) -> int | None:
    """Synchronous ``GET url``: its HTTP status, or ``None`` (see ``backends.probe``)."""
    from .probe import probe_status as probe

    return probe(url, timeout=timeout)


# --------------------------------------------------------------------------- timeouts


def timeout_for(backend_config: Mapping[str, Any] | None) -> httpx2.Timeout:
    """Timeouts from configuration: ``timeout`` bounds each read; connecting gets at most 10 s.

    A read timeout (not a total one) suits streaming: a long answer that keeps
    arriving is fine, a server that goes silent for ``timeout`` seconds is not.
    """
    raw = (backend_config or {}).get("timeout")
    try:
        seconds = float(raw) if raw is not None else DEFAULT_TIMEOUT
    except (TypeError, ValueError):
        seconds = DEFAULT_TIMEOUT
    if seconds <= 0:
        seconds = DEFAULT_TIMEOUT
    return httpx2.Timeout(seconds, connect=min(10.0, seconds), read=seconds, write=seconds, pool=seconds)


# --------------------------------------------------------------------------- errors


def _header(headers: Any, name: str) -> str | None:
    if headers is None:
        return None
    try:
        value = headers.get(name)
    except Exception:
        value = None
    if value is None and isinstance(headers, Mapping):
        low = name.lower()
        for key, val in headers.items():
            if str(key).lower() == low:
                return str(val)
    return None if value is None else str(value)


def parse_retry_after(headers: Any) -> float | None:
    """The wait a server asked for, in seconds: ``retry-after-ms``, or ``Retry-After`` as seconds or date."""
    ms = _header(headers, "retry-after-ms")
    if ms:
        try:
            value = float(ms) / 1000.0
            if value >= 0:
                return value
        except ValueError:
            pass
    raw = _header(headers, "retry-after")
    if not raw:
        return None
    raw = raw.strip()
    try:
        value = float(raw)
        return value if value >= 0 else None
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - time.time())


# Things that look like credentials: vendor-prefixed keys, Google keys, bearer tokens.
_KEYISH = re.compile(r"\b(?:sk|pk|rk)-[A-Za-z0-9_\-*.]{8,}|AIza[0-9A-Za-z_\-]{20,}|(?i:bearer)\s+\S+")


def redact(text: str, *secrets: str | None) -> str:
    """``text`` with the given secret values and anything key-shaped replaced by ``[redacted]``."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "[redacted]")
    return _KEYISH.sub("[redacted]", text)


def server_label(url: str) -> str:
    """``scheme://host:port`` of a URL: what error messages show (never the path's or query's secrets)."""
    try:
        parts = urlsplit(str(url))
    except ValueError:
        return "the server"
    if not parts.hostname:
        return "the server"
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}"


def _error_fields(body: bytes | str | None) -> tuple[str, str, str]:
    """(message, type, code) from any provider's error body; empty strings when absent."""
    return _error_details(body)[:3]


def _error_details(body: bytes | str | None) -> tuple[str, str, str, str]:
    """(message, type, code, param) from any provider's error body; empty strings when absent."""
    if body is None:
        return "", "", "", ""
    text = body.decode("utf-8", "replace") if isinstance(body, (bytes, bytearray)) else str(body)
    try:
        data = _json.loads(text)
    except ValueError:
        return _first_line(text), "", "", ""
    if isinstance(data, list) and data and isinstance(data[0], dict):  # Gemini sometimes wraps in a list
        data = data[0]
    if not isinstance(data, dict):
        return _first_line(text), "", "", ""
    err = data.get("error", data)
    if isinstance(err, str):  # Ollama: {"error": "..."}
        return _first_line(err), "", "", ""
    if not isinstance(err, dict):
        return _first_line(text), "", "", ""
    message = err.get("message") or data.get("message") or data.get("detail") or ""
    etype = err.get("type") or err.get("status") or ""
    code = err.get("code")
    if code is None and isinstance(data.get("type"), str) and data.get("type") != "error":
        code = data["type"]
    param = err.get("param")
    param = "" if param in (None, "None", "null") else str(param)
    return _first_line(str(message)), str(etype or ""), "" if code is None else str(code), param


def _first_line(text: str, limit: int = 240) -> str:
    line = " ".join(text.strip().split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


_CONTEXT_WORDS = (
    "context length",
    "context_length",
    "context window",
    "maximum context",
    "too many tokens",
    "prompt is too long",
    "input is too long",
    "exceeds the maximum",
    "token count",
    "too long",
)


def _context_limit(model: str | None, message: str) -> str:
    match = re.search(
        r"(?:maximum context length is|context length of|limit of|maximum of)\s*([\d,]+)", message
    )
    if match:
        return match.group(1).replace(",", "")
    if model:
        try:
            from ..registry import model_registry

            info = model_registry.get_model(model)
            if info is not None and info.context_length:
                return str(info.context_length)
        except Exception:
            pass
    return ""


def _suggest(model: str) -> list[str]:
    try:
        from ..registry import model_registry

        return [s for s in model_registry.suggest(model) if s != model]
    except Exception:
        return []


def _key_hint(provider: str, key_env: str | None) -> str:
    if key_env:
        return f"Check {key_env}: set a valid {provider} key there (or pass it with configure())."
    return f"Check the API key configured for {provider}."


#: Error types/codes that name a credential problem, whatever the HTTP status.
_KEY_TYPES = re.compile(
    r"auth|api_?key|invalid_key|key_invalid|credential|invalid_token|token_expired|expired_token"
)
#: Messages that name a credential problem (LiteLLM's "No connected db." answers a key that is
#: not its master key when it keeps no database of virtual keys).
_KEY_WORDS = (
    "api key",
    "api_key",
    "apikey",
    "invalid key",
    "master key",
    "virtual key",
    "no connected db",
    "authorization header",
    "bearer token",
    "invalid token",
    "expired token",
    "not authenticated",
    "unauthorized",
)


def _key_problem(message: str, etype: str, code: str) -> bool:
    """Whether an error body says the key (or its absence) is the problem."""
    if _KEY_TYPES.search(f"{etype} {code}".lower()):
        return True
    low = message.lower()
    return any(word in low for word in _KEY_WORDS)


def _request_hint(status: int, message: str, etype: str, param: str, model: str | None) -> str:
    """What to check for a refused request, worded by its status and the server's error type."""
    low = f"{message} {etype}".lower()
    if param:
        return f"Check the request's {param!r} (the server names it as the problem)."
    if status == 413:
        return "The request is too large for the server: shorten the prompt or history, or send fewer images."
    if status == 405:
        return (
            "The server does not take this request at this address: check the base URL "
            "(it usually ends in /v1)."
        )
    if "model" in low:
        named = f" {model!r}" if model else ""
        return f"Check the model name{named}: the server may not serve it under that name."
    if status == 422 or "unsupported" in low or "unrecognized" in low or "unknown" in low or "extra" in low:
        return (
            "The server does not take one of the request's fields: drop it, or check the server's "
            "documentation."
        )
    return (
        "The server refused the request as sent: its message above says why "
        "(check the model name and the parameters)."
    )


def error_from_status(
    status: int,
    body: bytes | str | None,
    headers: Any = None,
    *,
    provider: str,
    key_env: str | None = None,
    model: str | None = None,
    secret: str | None = None,
) -> ProviderError:
    """A ``ProviderError`` for an HTTP error answer, with a one-line message and a hint.

    ``key_env`` names the variable the rejected key came from (the key itself
    is never shown); ``secret``, when given, is scrubbed from anything the
    provider echoed back.
    """
    pmsg, etype, code, param = _error_details(body)
    pmsg = redact(pmsg, secret)
    low = f"{pmsg} {etype} {code}".lower()
    retry_after = parse_retry_after(headers)
    said = f": {pmsg}" if pmsg else ""
    who = provider

    if status in (401, 403) or "authentication" in etype.lower() or "permission" in etype.lower():
        where = f" from {key_env}" if key_env else ""
        if status == 403 or "permission" in low:
            return ProviderError(
                f"{who} refused the request with the API key{where} (HTTP {status}){said}",
                hint=_key_hint(provider, key_env) + " The key may lack access to this model or project.",
                status=status,
                retryable=False,
                kind="auth",
            )
        return ProviderError(
            f"{who} rejected the API key{where} (HTTP {status}).",
            hint=_key_hint(provider, key_env),
            status=status,
            retryable=False,
            kind="auth",
        )

    if (any(word in low for word in _CONTEXT_WORDS) and status in (400, 413, 422)) or "context_length" in low:
        limit = _context_limit(model, pmsg)
        of = f" of {model}" if model else ""
        lim = f" ({limit} tokens)" if limit else ""
        return ProviderError(
            f"The prompt is longer than the context window{of}{lim}{said}",
            hint="Shorten the prompt or history (chat.reset()), or pick a model with a longer context.",
            status=status,
            retryable=False,
            kind="context_length",
        )

    if status == 404 and "v1/responses" in low:
        return ProviderError(
            f"{who} serves {model or 'this model'} only through its Responses API (HTTP 404){said}",
            hint="Leave backends.openai.api unset (or set it to 'responses') so such models use /responses.",
            status=404,
            retryable=False,
            kind="wrong_api",
        )

    if status == 404:
        if model and ("model" in low or not pmsg or code == "model_not_found" or "not found" in low):
            close = _suggest(model)
            if provider.lower() in ("ollama", "local"):
                hint = f"Pull it with `ollama pull {model}`, or list installed models with `ollama list`."
            elif close:
                hint = f"Did you mean {', '.join(repr(s) for s in close)}?"
            else:
                hint = "List models with `ttt_magic.model_registry.list_models()` or `%ttt_models`."
            return ProviderError(
                f"{who} has no model {model!r} (HTTP 404){said}",
                hint=hint,
                status=404,
                retryable=False,
                kind="model_not_found",
            )
        return ProviderError(
            f"{who} answered 404 Not Found{said}",
            hint="Check the backend's base URL in the configuration.",
            status=404,
            retryable=False,
            kind="not_found",
        )

    if status == 429 or "rate_limit" in low or "resource_exhausted" in low:
        if "insufficient_quota" in low or ("quota" in code.lower() and "exceeded" not in low):
            return ProviderError(
                f"{who} says the account is out of quota (HTTP {status}){said}",
                hint="Check the plan and billing of this API key.",
                status=status,
                retryable=False,
                retry_after=retry_after,
                kind="quota",
            )
        wait = f" (retry after {retry_after:g} s)" if retry_after is not None else ""
        return ProviderError(
            f"{who} rate limit reached{wait}{said}",
            hint="Wait a moment, or lower the request rate.",
            status=status,
            retryable=True,
            retry_after=retry_after,
            kind="rate_limit",
        )

    if status == 529 or "overloaded" in low:
        return ProviderError(
            f"{who} is overloaded (HTTP {status}){said}",
            hint="Try again shortly, or use another backend.",
            status=status,
            retryable=True,
            retry_after=retry_after,
            kind="overloaded",
        )

    if status >= 500 or status in (408, 409):
        return ProviderError(
            f"{who} server error (HTTP {status}){said}",
            hint="Usually temporary: try again, or use another backend.",
            status=status,
            retryable=True,
            retry_after=retry_after,
            kind="server",
        )

    named = ", ".join(x for x in (etype, code) if x and x != str(status))
    label = f"HTTP {status}, {named}" if named else f"HTTP {status}"
    if 400 <= status < 500 and _key_problem(pmsg, etype, code):
        note = ""
        if "no connected db" in low:
            note = (
                " (A LiteLLM proxy says this when the key is not its master key and it has no"
                " database of virtual keys.)"
            )
        return ProviderError(
            f"{who} refused the request ({label}){said}",
            hint="This is a key problem. " + _key_hint(provider, key_env) + note,
            status=status,
            retryable=False,
            retry_after=retry_after,
            kind="auth",
        )

    return ProviderError(
        f"{who} rejected the request ({label}){said}",
        hint=_request_hint(status, pmsg, etype, param, model),
        status=status,
        retryable=False,
        retry_after=retry_after,
        kind="bad_request",
    )


def _start_hint(provider: str, url: str = "") -> str:
    if provider.lower() in ("ollama", "local"):
        return "Start Ollama with `ollama serve`, set OLLAMA_HOST, or use backend='mock'."
    from .probe import is_local

    if url and is_local(url):
        return f"Nothing listens there: start the server, or check the configured {provider} base URL."
    return f"Check the network connection and the configured {provider} base URL."


def transport_error(
    exc: BaseException, *, provider: str, url: str, timeout: float | None = None
) -> ProviderError:
    """A retryable ``ProviderError`` for a failure below HTTP: refused, timed out, dropped."""
    where = server_label(url)
    secs = f" {timeout:g} s" if timeout else ""
    if isinstance(exc, httpx2.ConnectTimeout):
        message, kind = f"Timed out connecting to {provider} at {where}.", "timeout"
    elif isinstance(exc, httpx2.TimeoutException):
        message, kind = (
            f"{provider} at {where} sent nothing for{secs or ' too long'}: the read timed out.",
            "timeout",
        )
    elif isinstance(exc, httpx2.ConnectError):
        message, kind = f"Could not connect to {provider} at {where}.", "connect"
    elif isinstance(exc, (httpx2.ReadError, httpx2.RemoteProtocolError, httpx2.WriteError)):
        message, kind = f"The connection to {provider} at {where} broke off mid-response.", "connection"
    else:
        message, kind = f"Request to {provider} at {where} failed ({type(exc).__name__}).", "connection"
    hint = (
        _start_hint(provider, url)
        if kind == "connect"
        else "Usually temporary: try again; raise `timeout` in the configuration if answers are slow."
        if kind == "timeout"
        else "Usually temporary: try again."
    )
    return ProviderError(message, hint=hint, retryable=True, kind=kind)


# --------------------------------------------------------------------------- requests


def _timeout_seconds(timeout: Any) -> float | None:
    if isinstance(timeout, httpx2.Timeout):
        return timeout.read
    if isinstance(timeout, (int, float)):
        return float(timeout)
    return None


@asynccontextmanager
async def stream_request(
    method: str,
    url: str,
    *,
    headers: Mapping[str, str] | None = None,
    json: Any = None,
    params: Mapping[str, Any] | None = None,
    content: bytes | None = None,
    files: Mapping[str, Any] | None = None,
    data: Mapping[str, Any] | None = None,
    timeout: httpx2.Timeout | float | None = None,
    provider: str = "the provider",
    key_env: str | None = None,
    model: str | None = None,
    secret: str | None = None,
) -> AsyncIterator[httpx2.Response]:
    """Send a request and yield the streaming response; non-2xx raises ``error_from_status``.

    The response is closed on every exit (normal, error, cancellation) so an
    abandoned stream never holds a pooled connection. Transport failures while
    the body is being read inside the ``async with`` become ``transport_error``.
    """
    client = get_client()
    request = client.build_request(
        method,
        url,
        headers=dict(headers or {}),
        json=json,
        params=params,
        content=content,
        files=files,
        data=data,
        timeout=timeout if timeout is not None else httpx2.Timeout(DEFAULT_TIMEOUT, connect=10.0),
    )
    seconds = _timeout_seconds(timeout)
    try:
        response = await client.send(request, stream=True)
    except httpx2.TransportError as exc:
        raise transport_error(exc, provider=provider, url=url, timeout=seconds) from None
    try:
        if not 200 <= response.status_code < 300:
            try:
                body = await response.aread()
            except httpx2.TransportError:
                body = b""
            raise error_from_status(
                response.status_code,
                body,
                response.headers,
                provider=provider,
                key_env=key_env,
                model=model,
                secret=secret,
            )
        try:
            yield response
        except httpx2.TransportError as exc:
            raise transport_error(exc, provider=provider, url=url, timeout=seconds) from None
    finally:
        await response.aclose()


async def request_bytes(method: str, url: str, **options: Any) -> bytes:
    """Send a request (JSON, raw ``content`` bytes or multipart ``files``) and return the body's bytes."""
    async with stream_request(method, url, **options) as response:
        return await response.aread()


async def request_json(method: str, url: str, **options: Any) -> Any:
    """Send a request and return its decoded JSON body (errors as in ``stream_request``)."""
    body = await request_bytes(method, url, **options)
    try:
        return _json.loads(body) if body.strip() else None
    except ValueError:
        provider = options.get("provider", "the provider")
        raise ProviderError(
            f"{provider} at {server_label(url)} answered with something that is not JSON.",
            hint="Check the configured base URL: it may point at a web page or a proxy.",
            retryable=False,
            kind="protocol",
        ) from None


async def iter_json_lines(method: str, url: str, **options: Any) -> AsyncIterator[Any]:
    """Stream a JSON Lines body (a batch service's results file), one decoded object at a time.

    The file is never held whole: memory stays that of one line.
    """
    from . import wire

    async with stream_request(method, url, **options) as response:
        try:
            async for item in wire.aiter_ndjson(response):
                yield item
        except wire.NDJSONError as exc:
            provider = options.get("provider", "the provider")
            raise ProviderError(f"{provider} sent a {exc}", retryable=False, kind="malformed") from None
