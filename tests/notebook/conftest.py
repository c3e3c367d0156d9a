"""Fixtures for the notebook tests: a shared real kernel, an in-process shell."""

from __future__ import annotations

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
    """A terminal-style InteractiveShell with the extension loaded (unloaded afterwards)."""
    from IPython.core.interactiveshell import InteractiveShell

    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "ttt_magic")
    try:
        yield ip
    finally:
        ip.run_line_magic("unload_ext", "ttt_magic")
        ip.user_ns.pop("r", None)
