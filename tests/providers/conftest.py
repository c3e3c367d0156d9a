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
