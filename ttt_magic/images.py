"""Images for a prompt: whatever a notebook holds, as (MIME type, bytes) within the providers' limits.

``ask(..., images=[...])`` takes a matplotlib ``Figure``, a PIL image, PNG or
JPEG bytes, a path to an image file, or an IPython display object holding an
image (``Out[7]`` of a plotting cell). Each becomes one ``(mime_type, bytes)``
pair, the one shape every protocol encodes its own way (OpenAI data URLs,
Anthropic base64 sources, Gemini ``inline_data``, Ollama ``images``) and custom
backends receive as ``images=``.

Sizes: an image larger than ``MAX_EDGE`` pixels on its long side, or than the
byte budget, is scaled down (with Pillow, when installed) so that one request
stays within every provider's limit (Anthropic's 5 MB per image after base64
encoding is the tightest; it also recommends at most 1,568 px). Without
Pillow an image over the budget is refused with a message saying so, never
sent to fail at the provider.
"""

from __future__ import annotations

import io
import os
import struct
from typing import Any

from .errors import UsageError

__all__ = ["MAX_BYTES", "MAX_EDGE", "describe", "dimensions", "to_image"]

#: Longest side, in pixels, an image is scaled down to.
MAX_EDGE = 1568
#: Bytes one image may take before base64 (3.75 MB -> 5 MB encoded: Anthropic's limit).
MAX_BYTES = 3_750_000

_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
)


def sniff(data: bytes) -> str | None:
    """The MIME type of image bytes, from their signature (PNG, JPEG, GIF, WebP)."""
    for signature, mime in _SIGNATURES:
        if data.startswith(signature):
            return mime
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def dimensions(mime: str, data: bytes) -> tuple[int, int] | None:
    """(width, height) read from the header, without decoding the image (PNG, GIF, JPEG)."""
    try:
        if mime == "image/png" and len(data) >= 24:
            return struct.unpack(">II", data[16:24])
        if mime == "image/gif" and len(data) >= 10:
            return struct.unpack("<HH", data[6:10])
        if mime == "image/jpeg":
            return _jpeg_size(data)
    except struct.error:
        return None
    return None


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            i += 1
            continue
        marker = data[i + 1]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height, width = struct.unpack(">HH", data[i + 5 : i + 9])
            return width, height
        i += 2 + struct.unpack(">H", data[i + 2 : i + 4])[0]
    return None


def describe(mime: str, data: bytes) -> str:
    """``"a 640x480 PNG image (12 KB)"``: for the mock's answers, footers and notes."""
    size = dimensions(mime, data)
    kind = mime.split("/")[-1].upper()
    shape = f"{size[0]}x{size[1]} " if size else ""
    return f"a {shape}{kind} image ({max(1, len(data) // 1024)} KB)"


def _from_value(value: Any) -> tuple[str, bytes]:
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[1], (bytes, bytearray)):
        return str(value[0]), bytes(value[1])
    if isinstance(value, (bytes, bytearray, memoryview)):
        data = bytes(value)
        mime = sniff(data)
        if mime is None:
            raise UsageError("These bytes are not a PNG, JPEG, GIF or WebP image.")
        return mime, data
    if isinstance(value, (str, os.PathLike)):
        path = os.fspath(value)
        try:
            with open(path, "rb") as handle:
                data = handle.read()
        except OSError as exc:
            raise UsageError(f"Cannot read the image {path!r}: {exc.strerror or exc}.") from None
        mime = sniff(data)
        if mime is None:
            raise UsageError(f"{path!r} is not a PNG, JPEG, GIF or WebP image.")
        return mime, data
    savefig = getattr(value, "savefig", None)  # a matplotlib Figure
    if callable(savefig):
        buffer = io.BytesIO()
        savefig(buffer, format="png", bbox_inches="tight")
        return "image/png", buffer.getvalue()
    if hasattr(value, "save") and hasattr(value, "size") and hasattr(value, "mode"):  # a PIL image
        buffer = io.BytesIO()
        value.save(buffer, format="PNG")
        return "image/png", buffer.getvalue()
    for mime in ("image/png", "image/jpeg"):  # IPython.display.Image and other rich outputs
        bundle = getattr(value, "_repr_png_" if mime == "image/png" else "_repr_jpeg_", None)
        if callable(bundle):
            data = bundle()
            if isinstance(data, (bytes, bytearray)):
                return mime, bytes(data)
    raise UsageError(
        f"Cannot send a {type(value).__name__} as an image: give a matplotlib Figure, a PIL image, "
        "PNG/JPEG bytes or a path to an image file."
    )


def to_image(value: Any, *, max_bytes: int = MAX_BYTES, max_edge: int = MAX_EDGE) -> tuple[str, bytes]:
    """One image value as (MIME type, bytes), scaled down to the limits when needed."""
    mime, data = _from_value(value)
    size = dimensions(mime, data)
    too_big = len(data) > max_bytes or (size is not None and max(size) > max_edge)
    if not too_big:
        return mime, data
    try:
        from PIL import Image  # optional: only to scale an image down
    except ImportError:
        if len(data) <= max_bytes:
            return mime, data  # larger than recommended, but within every limit
        raise UsageError(
            f"The image is {len(data) // 1_000_000} MB, over the {max_bytes // 1_000_000} MB a request may "
            "carry; install Pillow (pip install pillow) to have it scaled down, or send a smaller one."
        ) from None
    image = Image.open(io.BytesIO(data))
    image.thumbnail((max_edge, max_edge))
    for quality in (90, 75, 60, 45):
        buffer = io.BytesIO()
        if mime == "image/png" and quality == 90:
            image.save(buffer, format="PNG", optimize=True)
            out_mime = "image/png"
        else:
            image.convert("RGB").save(buffer, format="JPEG", quality=quality)
            out_mime = "image/jpeg"
        if buffer.tell() <= max_bytes:
            return out_mime, buffer.getvalue()
    raise UsageError("The image stays over the byte budget even scaled down: send a smaller one.")
