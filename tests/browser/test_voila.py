"""Voila serves notebooks/06_askbox_app.ipynb as an app: what a person sees and does there.

The real notebook, served by ``voila notebooks/06_askbox_app.ipynb --no-browser``
on 127.0.0.1 and a free port (``voila_server.py``), opened in headless Chromium:

1. the page shows its Markdown, the selector panel (on the mock backend) and the
   ask box, and none of the notebook's code;
2. a question typed into the box and sent with Ask streams in: the answer grows
   over several samples taken over time (the notebook paces the mock at 0.15 s
   a chunk, so an answer takes about six seconds);
3. Stop, pressed mid-answer, keeps what had arrived, marked stopped, and
   nothing arrives after it;
4. stopping Voila ends its kernel too (no process left behind, none killed).

The page may reach only the Voila server: every other request is aborted and
recorded (Voila's template asks a CDN for the Font Awesome stylesheet; the
widgets' icons come bundled anyway), and any non-loopback websocket fails the
test. The server has no provider key and proxies pointing at a closed port.

A screenshot of the stopped answer goes to test-artifacts/voila-askbox.png on
every run; with ``UPDATE_SCREENSHOTS=1`` also to docs/screenshots/voila-askbox.png.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import time
from dataclasses import dataclass, field
from typing import Any

import pytest
from lab_page import distinct_growing
from voila_server import REPO, VoilaServer, alive, start_voila

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]

NOTEBOOK = REPO / "notebooks" / "06_askbox_app.ipynb"
QUESTION = "Explain what a Python list comprehension is"
SCREENSHOT = "voila-askbox.png"
ARTIFACTS = REPO / "test-artifacts"
NOTHING_LISTENS = "http://127.0.0.1:9"
STOPPED_MARK = re.compile(r"\(\s*(stopped|interrupted)\b", re.IGNORECASE)


@dataclass
class App:
    page: Any
    server: VoilaServer
    outside: list[str] = field(default_factory=list)  # requests aimed off this machine (aborted)
    sockets: list[str] = field(default_factory=list)


@pytest.fixture
def voila(tmp_path: Any, request: pytest.FixtureRequest) -> Any:
    if importlib.util.find_spec("voila") is None:  # the browser tests' rule: never a skip in CI
        reason = "voila not installed (pip install -e .[test])"
        if os.environ.get("CI", "").strip().lower() == "true":
            pytest.fail(f"browser tests cannot run: {reason}")
        pytest.skip(reason)
    proxies = {name: NOTHING_LISTENS for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")}
    proxies.update({name.lower(): value for name, value in proxies.items()})
    server = start_voila(
        NOTEBOOK,
        tmp_path / "voila",
        env={
            **proxies,
            "NO_PROXY": "127.0.0.1,localhost",
            "no_proxy": "127.0.0.1,localhost",
            "OLLAMA_HOST": NOTHING_LISTENS,
        },
    )
    try:
        yield server
    finally:
        server.stop()
        report = getattr(request.node, "rep_call", None)
        if report is None or report.failed:
            print("---- voila log ----\n" + server.log_tail(80))


@pytest.fixture
def app(voila: VoilaServer, bare_page: Any) -> App:
    found = App(page=bare_page, server=voila)

    def only_this_server(route: Any) -> None:
        url = route.request.url
        if url.startswith((voila.url, "data:", "blob:")):
            route.continue_()
        else:
            found.outside.append(url)
            route.abort()

    bare_page.context.route("**/*", only_this_server)
    bare_page.on("websocket", lambda ws: found.sockets.append(ws.url))
    return found


def _code_only_lines() -> list[str]:
    """Lines of the notebook's code cells that its Markdown does not quote (so must never show)."""
    nb = json.loads(NOTEBOOK.read_text())
    markdown = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown")
    lines = []
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            for line in "".join(cell["source"]).splitlines():
                if line.strip() and line.strip() not in markdown:
                    lines.append(line.strip())
    return lines


def _full_answer_words() -> list[str]:
    """The words of the mock's complete answer to QUESTION (in this process, unpaced)."""
    import ttt_magic

    return re.findall(r"[A-Za-z]+", str(ttt_magic.ask(QUESTION, backend="mock")))


def _content_height(page: Any) -> int:
    """Height of everything on the page (Voila scrolls a panel inside the window, not the window)."""
    return page.evaluate(
        "() => Math.max(...Array.from(document.querySelectorAll('body, body *')).map(e => e.scrollHeight))"
    )


def test_voila_app_streams_and_stop_keeps_the_partial_answer(app):
    page, server = app.page, app.server
    started = time.monotonic()
    page.goto(server.url)
    box = page.locator(".ttt-askbox")
    box.wait_for(state="visible", timeout=90_000)  # Voila starts a kernel and runs every cell first
    opened = time.monotonic() - started

    # 1. an app page: Markdown, panel and ask box, no code
    assert page.get_by_role("heading", name="Ask a model: a notebook app").is_visible()
    assert page.locator(".jp-CodeCell").count() == 3
    assert page.locator(".jp-CodeCell .jp-InputArea, .cm-editor, .CodeMirror, .jp-InputPrompt").count() == 0
    shown = page.locator("body").inner_text()
    code_lines = _code_only_lines()
    assert "import ttt_magic" in code_lines
    leaked = [line for line in code_lines if line in shown]
    assert not leaked, f"code visible on the Voila page: {leaked}"
    assert "Traceback" not in shown and "Error" not in shown, shown[:2000]
    panel = page.locator(".ttt-panel")
    assert panel.is_visible()
    assert panel.locator(".ttt-backend select").input_value().startswith("mock")
    kernels = server.note_kernels()
    assert kernels, "voila started no kernel"

    # 2. ask: the answer streams in
    prompt = box.locator(".ttt-prompt textarea")
    prompt.click()
    prompt.press_sequentially(QUESTION, delay=30)  # a fast typist
    # ... who then moves to the button. (Clicking Ask in the same instant as the last keystroke
    # can send the question before the last keystrokes reach the kernel: ipywidgets buffers
    # value updates while one is unacknowledged, but sends the click at once.)
    page.wait_for_timeout(1000)
    ask = box.locator(".ttt-ask button, button.ttt-ask").first
    stop = box.locator(".ttt-stop button, button.ttt-stop").first
    ask.click()
    question = box.locator(".ttt-question").first
    question.wait_for(state="visible")
    assert question.inner_text().strip().endswith(QUESTION), question.inner_text()
    answer = box.locator(".ttt-answer").first
    samples: list[tuple[float, str]] = []
    stop_enabled_while_streaming = []
    deadline = time.monotonic() + 30
    first_text_at = None
    while time.monotonic() < deadline:  # about two seconds of a six-second answer, then Stop
        now, text = time.monotonic(), answer.inner_text()
        samples.append((now, text))
        stop_enabled_while_streaming.append(not stop.is_disabled())
        if text.strip() and first_text_at is None:
            first_text_at = now
        if (
            first_text_at
            and now - first_text_at >= 2.0
            and len(distinct_growing([s for _, s in samples])) >= 5
        ):
            break
        time.sleep(0.1)
    growing = distinct_growing([s for _, s in samples])
    assert len(growing) >= 5, f"the answer did not stream: {growing!r}"
    lengths = [len(s) for s in growing]
    assert lengths == sorted(lengths), f"the text shrank while streaming: {lengths}"
    first_seen = {text: at for at, text in reversed(samples)}
    spread = first_seen[growing[-1]] - first_seen[growing[0]]
    assert spread >= 0.3, f"the answer arrived in one burst ({spread:.2f} s), not streamed"
    assert any(stop_enabled_while_streaming) and ask.is_disabled()
    assert prompt.input_value() == "", "the question stayed in the box after Ask"

    # 3. Stop mid-answer: the partial answer stays, marked; nothing more arrives
    before_stop = answer.inner_text()
    stop.click()
    deadline = time.monotonic() + 15
    while not STOPPED_MARK.search(answer.inner_text()):
        assert time.monotonic() < deadline, f"no stopped mark after Stop: {answer.inner_text()!r}"
        time.sleep(0.05)
    stopped = answer.inner_text()
    partial = STOPPED_MARK.split(stopped)[0].strip()
    assert partial and len(partial) >= len(before_stop.strip()), (before_stop, stopped)
    full_words = _full_answer_words()
    partial_words = re.findall(r"[A-Za-z]+", partial)
    assert len(partial_words) < len(full_words) - 10, "Stop came too late: the answer was (nearly) complete"
    time.sleep(1.0)
    assert answer.inner_text() == stopped, "text arrived after Stop"
    assert not ask.is_disabled() and stop.is_disabled()
    assert "mock" in box.locator(".ttt-answer-footer").first.inner_text()

    # the page reached nothing but this server
    assert all(url.startswith("ws://127.0.0.1:") for url in app.sockets), app.sockets
    assert all("fontawesome" in url for url in app.outside), app.outside

    # the picture for the docs: the whole page, the stopped answer included
    page.set_viewport_size({"width": 1100, "height": min(_content_height(page) + 20, 3000)})
    page.wait_for_timeout(300)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / SCREENSHOT))
    if os.environ.get("UPDATE_SCREENSHOTS") == "1":
        shutil.copyfile(ARTIFACTS / SCREENSHOT, REPO / "docs" / "screenshots" / SCREENSHOT)

    # 4. stopping Voila ends its kernel; nothing had to be killed
    killed = server.stop()
    assert server.process.poll() is not None
    assert not [pid for pid in kernels if alive(pid)], "a voila kernel outlived the server"
    assert killed == [], f"had to kill {killed}: voila did not shut down cleanly"
    print(f"voila page ready in {opened:.1f} s; test {time.monotonic() - started:.1f} s")
