"""Fixtures of the provider tests: fake servers started per test on an ephemeral port.

``fake_server`` is a bare ``FakeServer`` (add routes yourself); ``fake_factory``
starts any ``FakeServer`` subclass (``fake_factory(AnthropicFake)``) and stops
it after the test; ``openai_fake`` and ``ollama_fake`` are the two protocol
fakes of this folder.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest

from tests.fakes import SENTINEL_KEY
from tests.fakes.server import FakeServer

T = TypeVar("T", bound=FakeServer)


@pytest.fixture
def fake_factory() -> Iterator[Callable[..., Any]]:
    started: list[FakeServer] = []

    def make(cls: type[T] = FakeServer, *args: Any, **kwargs: Any) -> T:  # type: ignore[assignment]
        server = cls(*args, **kwargs)
        server.start()
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()


@pytest.fixture
def fake_server(fake_factory: Callable[..., FakeServer]) -> FakeServer:
    return fake_factory(FakeServer)


@pytest.fixture
def openai_fake(fake_factory: Callable[..., Any]) -> Any:
    from tests.fakes.openai_fake import OpenAIFake

    return fake_factory(OpenAIFake, api_key=SENTINEL_KEY)


@pytest.fixture
def ollama_fake(fake_factory: Callable[..., Any]) -> Any:
    from tests.fakes.ollama_fake import OllamaFake

    return fake_factory(OllamaFake)


@pytest.fixture(autouse=True)
def _fresh_pools() -> Iterator[None]:
    """Forget cached Ollama probes; pooled clients die with each test's event loop."""
    yield
    import sys

    ollama = sys.modules.get("ttt_magic.backends.ollama")
    if ollama is not None:
        ollama.forget_probes()
