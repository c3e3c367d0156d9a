"""A reasoning model's answer in JupyterLab (issue #16): what a person sees of its thinking.

The mock thinks first (``%ttt_config backends.mock.think=true``, ``--effort high``),
paced at 0.05 s a chunk by the lab's kernel, so the thinking takes about two
seconds and the answer about two more:

1. while the model thinks, the output is one collapsed block whose summary
   reads "Thinking… (N characters)" with N growing, and no answer yet;
2. once the answer streams, the block folds to "Thinking (x s, N characters)"
   above it, still collapsed, and the answer renders as Markdown;
3. the block is a real disclosure: a click opens it and shows the thinking;
4. the saved notebook holds one output per ``%%ask``: ``text/markdown`` the
   ``<details>`` block then the answer, ``text/plain`` the answer only.

A screenshot of the finished answer, block opened, goes to
test-artifacts/thinking-answer.png on every run; with ``UPDATE_SCREENSHOTS=1``
also to docs/screenshots/thinking-answer.png.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time

import pytest
from lab_page import Notebook, distinct_growing
from lab_server import REPO

pytestmark = pytest.mark.browser

PROMPT = "Explain what a list comprehension is"
SCREENSHOT = "thinking-answer.png"
ARTIFACTS = REPO / "test-artifacts"
THINKING_NOW = re.compile(r"^Thinking… \(([\d,]+) characters?\)$")
THOUGHT = re.compile(r"^Thinking \((\d+ ms|[\d.]+ s), ([\d,]+) characters\)$")


def _state(out) -> tuple[str, int]:
    """(the block's summary text, or "", how many answer headings) of an output area, read at once."""
    return out.evaluate(
        """el => [
            (el.querySelector('details > summary') || {innerText: ''}).innerText.trim(),
            el.querySelectorAll('h1, h2, h3').length,
        ]"""
    )


def _wait_for(predicate, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_thinking_streams_collapsed_above_the_answer(page, lab_log, nb_name):
    lab_log.write_notebook(
        nb_name,
        [
            "%load_ext ttt_magic",
            "%ttt_config backends.mock.think=true",
            f"%%ask -b mock --effort high\n{PROMPT}",
        ],
    )
    nb = Notebook(page).open(lab_log.notebook_url(nb_name))
    page.keyboard.press("Control+b")  # hide the file browser: the screenshot shows the cell
    nb.run_and_wait(0)
    nb.run_and_wait(1)
    nb.run(2)
    out = nb.output(2)
    samples = nb.sample_while_running(2, lambda: _state(out))

    # 1. Thinking: the collapsed block alone, its size growing.
    thinking = [summary for summary, headings in samples if THINKING_NOW.match(summary) and not headings]
    sizes = [int(THINKING_NOW.match(s).group(1).replace(",", "")) for s in distinct_growing(thinking)]
    assert len(sizes) >= 2 and sizes == sorted(sizes), f"the thinking did not grow on screen: {samples!r}"
    # 2. Then the answer below the folded block, while the cell still runs.
    answering = [summary for summary, headings in samples if headings]
    assert answering and all(THOUGHT.match(s) for s in answering), samples
    assert samples.index(next(s for s in samples if s[1])) > samples.index(
        next(s for s in samples if THINKING_NOW.match(s[0]))
    )

    details = out.locator("details")
    _wait_for(lambda: out.locator("li").count() >= 3, "the final Markdown list")
    assert details.count() == 1
    summary = details.locator("summary").inner_text().strip()
    found = THOUGHT.match(summary)
    assert found, summary
    assert details.evaluate("el => el.open") is False
    body = details.locator(".ttt-thinking")
    assert not body.is_visible()  # collapsed: the thinking is not on screen
    heading = out.locator("h2").first
    assert "list comprehension" in heading.inner_text().lower()
    assert out.locator("sub").inner_text().count("thinking") == 1  # "N in / N out, N thinking"

    # 3. A click opens it: the thinking, as the model wrote it.
    details.locator("summary").click()
    _wait_for(body.is_visible, "the opened thinking")
    assert body.inner_text().startswith("The question is about “list comprehension”.")
    assert len(body.inner_text()) >= int(found.group(2).replace(",", "")) - 10  # line breaks aside
    time.sleep(0.3)
    ARTIFACTS.mkdir(exist_ok=True)
    nb.cell(2).screenshot(path=str(ARTIFACTS / SCREENSHOT))
    if os.environ.get("UPDATE_SCREENSHOTS") == "1":
        shutil.copyfile(ARTIFACTS / SCREENSHOT, REPO / "docs" / "screenshots" / SCREENSHOT)

    # 4. Saved: one output, collapsed block then the answer; text/plain the answer only.
    path = lab_log.root / f"{nb_name}.ipynb"
    before = path.stat().st_mtime
    page.keyboard.press("Control+s")
    _wait_for(lambda: path.stat().st_mtime > before, "the notebook to be saved")
    _wait_for(lambda: len(json.loads(path.read_text())["cells"][2]["outputs"]) == 1, "the saved output")
    (saved,) = json.loads(path.read_text())["cells"][2]["outputs"]
    markdown = "".join(saved["data"]["text/markdown"])
    plain = "".join(saved["data"]["text/plain"])
    assert saved["output_type"] == "display_data"
    assert markdown.startswith(f"<details><summary>{summary}</summary>")
    assert "<details open" not in markdown
    block, _, answer = markdown.partition("</details>\n\n")
    assert answer.startswith(plain) and plain.startswith("## List comprehension")
    assert "The question is about" in block and "The question is about" not in plain
