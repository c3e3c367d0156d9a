"""A cheap, synchronous "is anything answering there?" for availability checks.

Routing asks ``is_available`` on every decision, from sync code that may run
inside an event loop, so the check cannot await and must not cost much: this
uses the standard library's ``http.client`` (no HTTP client library imported,
no TLS set up for a plain ``http://`` address, which is what local servers
use), bounded by a short timeout.
"""

from __future__ import annotations

import http.client
from urllib.parse import urlsplit

__all__ = ["probe_status"]

USER_AGENT = "ttt-magic"


def probe_status(url: str, *, timeout: float = 0.5) -> int | None:
    """``GET url``: its HTTP status, or ``None`` when nothing answered within ``timeout``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    conn_type = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    try:
        conn = conn_type(parts.hostname, parts.port, timeout=timeout)
        try:
            conn.request("GET", path, headers={"user-agent": USER_AGENT, "accept": "*/*"})
            return conn.getresponse().status
        finally:
            conn.close()
    except (OSError, http.client.HTTPException, ValueError):
        return None
