"""Take the documentation screenshots: the panel, a streamed answer, the ask box, in JupyterLab.

    .venv/bin/python tests/browser/take_screenshots.py [OUTPUT_DIR]   # default docs/screenshots

Uses the same throwaway JupyterLab and headless Debian Chromium as the browser
tests, and the offline ``mock`` backend, so it runs anywhere the tests run.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from conftest import CHROMIUM, CHROMIUM_ARGS  # noqa: E402
from lab_page import Notebook  # noqa: E402
from lab_server import REPO, start_lab  # noqa: E402

PROMPT = "Explain what a list comprehension is and write Python code that squares the even numbers"


def _choose(select, name: str) -> None:
    values = select.locator("option").evaluate_all("els => els.map(e => e.value)")
    select.select_option(value=next(v for v in values if v == name or v.startswith(name + " ")))


def main(out: Path) -> None:
    from playwright.sync_api import sync_playwright

    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="ttt-shots-") as tmp:
        lab = start_lab(Path(tmp), kernel_env={"TTT_MOCK_DELAY": "0.06"})
        try:
            lab.write_notebook(
                "ttt_magic_tour",
                [
                    "%load_ext ttt_magic",
                    "%ttt_config",
                    f"%%ask\n{PROMPT}",
                    "%ttt_askbox",
                ],
            )
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                page = browser.new_page(viewport={"width": 1100, "height": 900}, device_scale_factor=1)
                nb = Notebook(page).open(lab.notebook_url("ttt_magic_tour"))
                page.keyboard.press("Control+b")  # hide the file browser
                nb.run_and_wait(0)
                nb.run_and_wait(1)
                panel = nb.output(1).locator(".ttt-panel")
                panel.wait_for(state="visible")
                _choose(panel.locator(".ttt-backend select"), "mock")
                model = panel.locator(".ttt-model select")
                for _ in range(200):
                    if "mock-1" in model.locator("option").evaluate_all("els => els.map(e => e.value)"):
                        break
                    time.sleep(0.05)
                model.select_option(value="mock-1")
                time.sleep(0.5)
                nb.cell(1).screenshot(path=str(out / "panel.png"))

                nb.run(2)
                for _ in range(600):  # mid-stream: some text, cell still running
                    if len(nb.output_text(2)) > 250 or nb.is_done(2):
                        break
                    time.sleep(0.02)
                nb.cell(2).screenshot(path=str(out / "streaming-answer.png"))
                nb.wait_done(2)
                time.sleep(0.3)
                nb.cell(2).screenshot(path=str(out / "streamed-answer.png"))

                nb.run_and_wait(3)
                box = nb.output(3).locator(".ttt-askbox")
                box.wait_for(state="visible")
                box.locator(".ttt-prompt textarea").fill("What is a generator expression?")
                box.locator("button.ttt-ask").click()
                time.sleep(1.2)
                box.locator("button.ttt-stop").click()
                box.locator(".ttt-answer", has_text="stopped").wait_for()
                box.locator(".ttt-prompt textarea").fill("Hello!")
                box.locator("button.ttt-ask").click()
                box.locator(".ttt-answer").nth(1).wait_for()
                time.sleep(1.5)
                nb.cell(3).screenshot(path=str(out / "askbox.png"))
                browser.close()
        finally:
            lab.stop()
    for name in ("panel.png", "streaming-answer.png", "streamed-answer.png", "askbox.png"):
        print(out / name)


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / "docs" / "screenshots")
