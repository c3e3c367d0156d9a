"""Driving a JupyterLab notebook page with Playwright, the way a person would.

Cells are run with Shift+Enter; "finished" means the cell's prompt shows an
execution count instead of ``[*]``, and "ready" means the status bar reports
the kernel idle. Selectors are JupyterLab 4's CSS classes.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

CELL = ".jp-Notebook .jp-Cell"
KERNEL_IDLE_TEXT = re.compile(r"\|\s*Idle")


class Notebook:
    """One open notebook tab."""

    def __init__(self, page: Any) -> None:
        self.page = page

    # ------------------------------------------------------------------ opening

    def open(self, url: str, *, timeout: float = 60.0) -> Notebook:
        """Open a notebook alone (``?reset``: no tabs restored from an earlier test)."""
        self.page.goto(url + ("&" if "?" in url else "?") + "reset")
        self.page.wait_for_selector(CELL, timeout=timeout * 1000)
        self.wait_kernel_idle(timeout=timeout)
        return self

    def kernel_status_text(self) -> str:
        return " ".join(self.page.locator(".jp-StatusBar-Widget").all_inner_texts())

    def wait_kernel_idle(self, *, timeout: float = 60.0) -> None:
        """Wait until the status bar says the kernel is connected and idle."""
        self.page.wait_for_function(
            """() => Array.from(document.querySelectorAll('.jp-StatusBar-Widget'))
                    .some(el => /\\|\\s*Idle/.test(el.innerText))""",
            timeout=timeout * 1000,
        )

    # ------------------------------------------------------------------ cells

    def cell(self, index: int) -> Any:
        return self.page.locator(CELL).nth(index)

    def output(self, index: int) -> Any:
        return self.cell(index).locator(".jp-OutputArea")

    def output_text(self, index: int) -> str:
        return self.output(index).inner_text()

    def prompt(self, index: int) -> str:
        return self.cell(index).locator(".jp-InputPrompt").inner_text().strip()

    def is_running(self, index: int) -> bool:
        return "*" in self.prompt(index)

    def is_done(self, index: int) -> bool:
        return re.search(r"\[\d+\]", self.prompt(index)) is not None

    def run(self, index: int, *, retry_after: float = 3.0) -> None:
        """Select cell ``index`` and press Shift+Enter; returns once the cell is queued or running.

        A Shift+Enter pressed while the kernel connection is still settling can be
        dropped by the front end (the prompt stays ``[ ]``); it is then pressed
        again, which cannot run the cell twice since it never started.
        """
        for _attempt in range(3):
            before = self.prompt(index)
            self.cell(index).locator(".jp-InputArea-editor").click()
            self.page.keyboard.press("Escape")  # command mode: the click must not type anything
            self.page.keyboard.press("Shift+Enter")
            deadline = time.monotonic() + retry_after
            while time.monotonic() < deadline:
                now = self.prompt(index)
                if "*" in now or (now != before and re.search(r"\[\d+\]", now)):
                    return
                time.sleep(0.02)
        raise AssertionError(f"cell {index} did not start (prompt {self.prompt(index)!r})")

    def wait_done(self, index: int, *, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while not self.is_done(index):
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"cell {index} did not finish in {timeout:.0f} s (prompt {self.prompt(index)!r})"
                )
            time.sleep(0.05)

    def run_and_wait(self, index: int, *, timeout: float = 60.0) -> str:
        self.run(index)
        self.wait_done(index, timeout=timeout)
        return self.output_text(index)

    def sample_while_running(
        self, index: int, read: Callable[[], str], *, timeout: float = 60.0, interval: float = 0.05
    ) -> list[str]:
        """Read ``read()`` repeatedly until cell ``index`` finishes; the samples taken before that."""
        samples: list[str] = []
        deadline = time.monotonic() + timeout
        while True:
            text = read()  # read first, then check: a sample counts only if the cell was still running
            if self.is_done(index):
                return samples
            samples.append(text)
            if time.monotonic() > deadline:
                raise AssertionError(f"cell {index} still running after {timeout:.0f} s")
            time.sleep(interval)


def distinct_growing(samples: list[str]) -> list[str]:
    """The distinct non-empty samples, in order of first appearance."""
    seen: list[str] = []
    for text in samples:
        if text.strip() and text not in seen:
            seen.append(text)
    return seen
