"""Images in prompts (issue #15): from a figure or bytes to each protocol's own image part.

Each fake records the request body; the image must arrive in that protocol's
shape (Anthropic base64 ``source``, Gemini ``inline_data``, Ollama ``images``,
OpenAI ``image_url`` data URL), and the catalogue's ``vision`` capability is
checked before anything is sent.
"""

from __future__ import annotations

import base64

import pytest

import ttt_magic
from tests.fakes import SENTINEL_KEY, png
from tests.fakes.anthropic_fake import AnthropicFake
from tests.fakes.google_fake import GeminiFake
from ttt_magic.backends.base import BaseBackend
from ttt_magic.config import configure
from ttt_magic.errors import UsageError
from ttt_magic.images import MAX_EDGE, describe, dimensions, sniff, to_image
from ttt_magic.models import AIResponse
from ttt_magic.registry import backend_registry


def test_values_become_mime_and_bytes(tmp_path):
    data = png(640, 480)
    assert to_image(data) == ("image/png", data)
    path = tmp_path / "chart.png"
    path.write_bytes(data)
    assert to_image(path) == ("image/png", data) == to_image(str(path))
    assert dimensions(*to_image(data)) == (640, 480)
    assert describe("image/png", data) == "a 640x480 PNG image (1 KB)"
    assert sniff(b"\xff\xd8\xff\xe0") == "image/jpeg"
    with pytest.raises(UsageError, match="not a PNG"):
        to_image(b"hello")
    with pytest.raises(UsageError, match="Cannot send a dict"):
        to_image({"x": 1})


def test_a_matplotlib_figure_is_sent_as_png():
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    figure = Figure(figsize=(2, 1), dpi=50)
    figure.add_subplot().plot([1, 2, 3])
    mime, data = to_image(figure)
    assert mime == "image/png" and sniff(data) == "image/png"


def test_large_images_are_scaled_down_within_the_limits():
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (4000, 1000), (200, 30, 30)).save(buffer, format="PNG")
    mime, data = to_image(buffer.getvalue())
    assert mime in ("image/png", "image/jpeg")
    assert max(Image.open(io.BytesIO(data)).size) <= MAX_EDGE


def _last_user(body: dict) -> dict:
    return [m for m in body["messages"] if m["role"] == "user"][-1]


def test_anthropic_receives_a_base64_image_block(fake_factory):
    fake = fake_factory(AnthropicFake)
    configure(anthropic_base_url=fake.url, anthropic_api_key=SENTINEL_KEY)
    answer = ttt_magic.ask("What is this?", backend="anthropic", model="claude-sonnet-4-5", images=[png()])
    assert answer.succeeded, answer.error
    content = _last_user(fake.last.json)["content"]
    assert content[0] == {"type": "text", "text": "What is this?"}
    assert content[1]["type"] == "image" and content[1]["source"]["media_type"] == "image/png"
    assert base64.b64decode(content[1]["source"]["data"]) == png()


def test_gemini_receives_inline_data(fake_factory):
    fake = fake_factory(GeminiFake)
    configure(gemini_base_url=fake.url, google_api_key=SENTINEL_KEY)
    chunks = ttt_magic.stream("Describe", backend="google", model="gemini-2.5-flash", images=png())
    "".join(chunks)
    assert chunks.response.succeeded, chunks.response.error
    parts = fake.last.json["contents"][-1]["parts"]
    assert parts[0] == {"text": "Describe"}
    assert parts[1]["inline_data"]["mime_type"] == "image/png"
    assert base64.b64decode(parts[1]["inline_data"]["data"]) == png()


def test_ollama_receives_images_beside_the_text(ollama_fake):
    ollama_fake.installed.append("llava:latest")
    configure(ollama_base_url=ollama_fake.url)
    answer = ttt_magic.ask("What is in it?", backend="local", model="llava", images=[png()])
    assert answer.succeeded, answer.error
    message = ollama_fake.last.json["messages"][-1]
    assert message["content"] == "What is in it?"
    assert [base64.b64decode(i) for i in message["images"]] == [png()]


def test_a_custom_backend_receives_images_as_mime_and_bytes():
    seen = []

    class Looker(BaseBackend):
        backend_name = "looker"

        async def ask(self, prompt, *, images=None, **kwargs):
            seen.append((prompt, images))
            return AIResponse("seen", backend=self.name)

    backend_registry.register_backend("looker", Looker)
    try:
        ttt_magic.ask("look", backend="looker", images=[png()])
    finally:
        backend_registry.unregister("looker")
    assert seen == [("look", [("image/png", png())])]


def test_a_model_without_vision_is_refused_naming_ones_with_it(openai_fake):
    with pytest.raises(UsageError, match=r"does not read images.*Vision-capable models of ollama"):
        ttt_magic.ask("What is this?", backend="local", model="deepseek-r1", images=[png()])
    assert openai_fake.requests == []
