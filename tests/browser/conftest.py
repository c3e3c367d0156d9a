"""Fixtures for the browser tests: one JupyterLab per session, headless Debian Chromium.

When ``CI=true`` the browser tests must run: a missing Chromium or Playwright is
an error, never a skip. Elsewhere they skip with a one-line reason. Playwright
never downloads a browser here; it drives the system Chromium through
``executable_path`` (override with ``TTT_CHROMIUM``).
"""

from __future__ import annotations

import importlib.util
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

if str(Path(__file__).parent) not in sys.path:  # helpers import alike under any import mode
    sys.path.insert(0, str(Path(__file__).parent))
from lab_server import REPO, LabServer, start_lab

CHROMIUM = os.environ.get("TTT_CHROMIUM") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = REPO / "test-artifacts"


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() == "true"


def _missing() -> str | None:
    """Why the browser tests cannot run here, or None."""
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        return f"{CHROMIUM} not found (apt-get install -y chromium)"
    if importlib.util.find_spec("playwright") is None:
        return "playwright not installed (pip install -e .[test])"
    if importlib.util.find_spec("jupyterlab") is None:
        return "jupyterlab not installed (pip install -e .[test])"
    if importlib.util.find_spec("ipywidgets") is None:
        return "ipywidgets not installed (pip install -e .[widgets])"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    reason = _missing()
    if reason is None or _in_ci():
        return  # in CI a missing piece fails in the fixtures below, loudly
    skip = pytest.mark.skip(reason=f"browser tests skipped: {reason}")
    for item in items:
        if Path(str(item.fspath)).parent == here:
            item.add_marker(skip)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: Any) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


@pytest.fixture(scope="session")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabServer]:
    """A JupyterLab server for the whole session (about 4 s to start)."""
    reason = _missing()
    if reason:
        pytest.fail(f"browser tests cannot run: {reason}" if _in_ci() else reason)
    server = start_lab(tmp_path_factory.mktemp("jupyterlab"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def browser(lab: LabServer) -> Iterator[Any]:
    """Headless Chromium, for one test module at a time.

    Not session-wide: while Playwright's sync API is active its event loop shows
    as *running* on the main thread, so any later test calling ``asyncio.run``
    would fail. Module scope stops it before other modules' tests run.
    """
    yield from _chromium()


def _chromium() -> Iterator[Any]:
    """Debian's Chromium driven by Playwright, closed after."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


def _page(browser: Any, request: pytest.FixtureRequest, width: int) -> Iterator[Any]:
    """A fresh page in its own context; a screenshot goes to test-artifacts/ when the test fails."""
    context = browser.new_context(viewport={"width": width, "height": 900})
    page = context.new_page()
    page.set_default_timeout(30_000)
    try:
        yield page
    finally:
        report = getattr(request.node, "rep_call", None)
        if report is None or report.failed:
            ARTIFACTS.mkdir(exist_ok=True)
            name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
            try:
                page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
            except Exception:  # a crashed page must not hide the real failure
                pass
        context.close()


@pytest.fixture
def page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh 1280 x 900 page for JupyterLab."""
    yield from _page(browser, request, 1280)


@pytest.fixture
def lab_log(lab: LabServer, request: pytest.FixtureRequest) -> Iterator[LabServer]:
    """The server, whose log tail is printed when the test fails; the test's kernels are shut down after."""
    yield lab
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        print("---- JupyterLab log ----\n" + lab.log_tail(60))
    lab.shutdown_kernels()


def notebook_name(request: pytest.FixtureRequest) -> str:
    return re.sub(r"[^A-Za-z0-9_]+", "_", request.node.name)


@pytest.fixture
def nb_name(request: pytest.FixtureRequest) -> str:
    """A notebook file name unique to the test."""
    return notebook_name(request)


# ------------------------------------------------------------- pages served by something else (Voila)


@pytest.fixture(scope="module")
def bare_browser() -> Iterator[Any]:
    """Headless Chromium without a JupyterLab server; module-scoped for the reason ``browser`` is."""
    reason = _missing()
    if reason and _in_ci():
        pytest.fail(f"browser tests cannot run: {reason}")
    if reason:
        pytest.skip(reason)
    yield from _chromium()


@pytest.fixture
def bare_page(bare_browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh 1100 x 900 page in its own context."""
    yield from _page(bare_browser, request, 1100)
