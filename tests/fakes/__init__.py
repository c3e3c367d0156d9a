"""Fake provider servers for tests: real HTTP on 127.0.0.1 (see ``server.py``)."""

#: An API key that must never appear in any output, log, repr or error message.
SENTINEL_KEY = "sk-test-SENTINEL-7f3a9c1e5b2d4680aa"

#: Provider variables a test environment drops (besides every TTT_*): no real key or server.
PROVIDER_VARS = (
    "OPENAI_API_KEY",
    "ANTHROPIC_API_KEY",
    "GEMINI_API_KEY",
    "GOOGLE_API_KEY",
    "OPENROUTER_API_KEY",
    "OPENAI_BASE_URL",
    "ANTHROPIC_BASE_URL",
    "GEMINI_BASE_URL",
    "OPENROUTER_BASE_URL",
    "OLLAMA_BASE_URL",
    "OLLAMA_HOST",
)


def run(coro):
    """Run ``coro`` on a fresh event loop, closing that loop's pooled HTTP client at the end."""
    import asyncio

    async def main():
        from ttt_magic.backends import http

        try:
            return await coro
        finally:
            await http.aclose_clients()

    return asyncio.run(main())


async def collect(agen):
    """(text chunks, StreamEnd or None, ProviderError or None) of a backend's ``astream``."""
    from ttt_magic.errors import ProviderError
    from ttt_magic.models import StreamEnd

    parts, end, error = [], None, None
    try:
        async for item in agen:
            if isinstance(item, StreamEnd):
                end = item
            else:
                parts.append(item)
    except ProviderError as exc:
        error = exc
    return parts, end, error


def png(width: int = 4, height: int = 3) -> bytes:
    """A real (tiny, grey) PNG written by hand: the image tests need no imaging library."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + b"\x80" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )
