"""Test isolation shared by the whole suite.

Every test runs with HOME and the working directory in fresh temporary folders,
no provider keys or TTT_* variables from the developer's shell, the
programmatic configuration layer cleared, and the mock backend without pacing.
So no test can read a developer's real config or key, or reach a real provider.
"""

from __future__ import annotations

import os

import pytest

from tests.fakes import PROVIDER_VARS as _PROVIDER_VARS


@pytest.fixture(autouse=True)
def isolated_env(tmp_path_factory, monkeypatch):
    home = tmp_path_factory.mktemp("home")
    work = tmp_path_factory.mktemp("cwd")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(work)
    for name in list(os.environ):
        if name.startswith("TTT_") or name in _PROVIDER_VARS:
            monkeypatch.delenv(name, raising=False)
    # Nothing listens here: "local" is reliably unavailable unless a test starts a fake.
    monkeypatch.setenv("OLLAMA_HOST", "http://127.0.0.1:9")
    monkeypatch.setenv("TTT_MOCK_DELAY", "0")
    from ttt_magic import config
    from ttt_magic.registry import model_registry

    config.reset()
    added = dict(model_registry._added)  # models a test (or a doc example) adds at run time
    yield home
    config.reset()
    if model_registry._added != added:
        with model_registry._lock:
            model_registry._added.clear()
            model_registry._added.update(added)
            model_registry._added_version += 1
            model_registry._view = None
