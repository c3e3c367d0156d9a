"""Fixtures for the notebook tests: a shared real kernel, an in-process shell."""

from __future__ import annotations

import copy
from typing import NamedTuple

import pytest

from tests.notebook.kernel_harness import Kernel, isolated_env


@pytest.fixture(scope="module")
def kernel(tmp_path_factory):
    """One kernel for a test module, started in a fresh HOME and cwd with the extension loaded."""
    home = tmp_path_factory.mktemp("kernel-home")
    cwd = tmp_path_factory.mktemp("kernel-cwd")
    k = Kernel(cwd, isolated_env(home))
    try:
        k.ok("%load_ext ttt_magic\n%ttt_config default_backend=mock")
        yield k
    finally:
        k.stop()


@pytest.fixture
def shell():
    """A terminal-style InteractiveShell with the extension loaded (unloaded afterwards).

    The shell is one process-wide instance, so what a test leaves in it is
    undone here: ``%config TTTMagics.x = ...`` lands in ``shell.config``, which
    the next load would mirror into ``configure()``.
    """
    from IPython.core.interactiveshell import InteractiveShell

    ip = InteractiveShell.instance()
    saved = copy.deepcopy(ip.config.get("TTTMagics"))
    ip.run_line_magic("load_ext", "ttt_magic")
    try:
        yield ip
    finally:
        ip.run_line_magic("unload_ext", "ttt_magic")
        ip.user_ns.pop("r", None)
        if saved is None:
            ip.config.pop("TTTMagics", None)
        else:
            ip.config["TTTMagics"] = saved


@pytest.fixture
def sent():
    """Every request that reaches the ``mock`` or ``echo`` backend (a ``Sent``), in order.

    The two offline backends are replaced by recording subclasses for the test
    and put back afterwards, so a test can assert that a refused input sent nothing.
    """
    from ttt_magic.plugins import ensure_discovered
    from ttt_magic.registry import backend_registry

    ensure_discovered()  # mock and echo are plugins: found on first use
    calls: list[Sent] = []
    originals = {name: backend_registry.entries()[name] for name in ("mock", "echo")}
    for name, entry in originals.items():
        backend_registry.register_backend(name, _recording(entry.load_class(), calls), source=entry.source)
    try:
        yield calls
    finally:
        for name, entry in originals.items():
            backend_registry.register_backend(
                name,
                entry.target,
                version=entry.version,
                description=entry.description,
                author=entry.author,
                requires=entry.requires,
                source=entry.source,
            )


class Sent(NamedTuple):
    backend: str
    prompt: str
    system: str | None


def _recording(cls: type, calls: list[Sent]) -> type:
    class Recording(cls):  # type: ignore[misc, valid-type]
        async def ask(self, prompt, **kwargs):
            calls.append(Sent(self.name, prompt, kwargs.get("system")))
            return await super().ask(prompt, **kwargs)

        async def astream(self, prompt, **kwargs):
            calls.append(Sent(self.name, prompt, kwargs.get("system")))
            async for item in super().astream(prompt, **kwargs):
                yield item

    Recording.__name__ = Recording.__qualname__ = f"Recording{cls.__name__}"
    return Recording
