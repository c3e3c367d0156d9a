"""A cheap, synchronous "is anything answering there?" for availability checks.

Routing asks ``is_available`` on every decision, from sync code that may run
inside an event loop, so the check cannot await and must not cost much: this
uses the standard library's ``http.client`` (no HTTP client library imported,
no TLS set up for a plain ``http://`` address, which is what local servers
use), bounded by a short timeout. ``cached_status`` remembers each answer for
a few seconds, so a burst of routing decisions costs one request.
"""

from __future__ import annotations

import hashlib
import http.client
import ipaddress
import threading
import time
from collections.abc import Mapping
from urllib.parse import urlsplit

__all__ = ["cached_status", "forget", "is_local", "probe_status"]

USER_AGENT = "ttt-magic"

_cache: dict[tuple[str, str], tuple[float, int | None]] = {}
_lock = threading.Lock()


def probe_status(url: str, *, timeout: float = 0.5, headers: Mapping[str, str] | None = None) -> int | None:
    """``GET url``: its HTTP status, or ``None`` when nothing answered within ``timeout``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    conn_type = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    sent = {"user-agent": USER_AGENT, "accept": "*/*", **{k.lower(): v for k, v in (headers or {}).items()}}
    try:
        conn = conn_type(parts.hostname, parts.port, timeout=timeout)
        try:
            conn.request("GET", path, headers=sent)
            return conn.getresponse().status
        finally:
            conn.close()
    except (OSError, http.client.HTTPException, ValueError):
        return None


def cached_status(
    url: str, *, timeout: float = 0.5, ttl: float = 5.0, headers: Mapping[str, str] | None = None
) -> int | None:
    """``probe_status``, answered from a cache for ``ttl`` seconds.

    The cache is keyed by the URL and a digest of the headers (a changed key
    is a new question); the headers themselves are never stored.
    """
    digest = hashlib.sha256(repr(sorted((headers or {}).items())).encode()).hexdigest()
    key = (url, digest)
    now = time.monotonic()
    with _lock:
        cached = _cache.get(key)
        if cached is not None and now - cached[0] < ttl:
            return cached[1]
    status = probe_status(url, timeout=timeout, headers=headers)
    with _lock:
        _cache[key] = (time.monotonic(), status)
    return status


def forget() -> None:
    """Drop every cached answer (tests; or right after starting a server)."""
    with _lock:
        _cache.clear()


def is_local(url: str) -> bool:
    """Whether ``url`` points at this machine (loopback or ``localhost``): cheap and safe to probe."""
    try:
        host = (urlsplit(str(url)).hostname or "").lower()
    except ValueError:
        return False
    if not host:
        return False
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_unspecified
