"""JupyterLab in headless Chromium: what a person sees when using ttt_magic.

1. ``%%ask`` streams: the answer grows on screen while the cell still runs, and
   ends rendered as Markdown (heading and list elements, not raw ``#``/``-``).
2. ``%ttt_config`` shows the real panel; choosing a backend changes the model
   list; the next ``%%ask`` uses the chosen backend and model; a later
   ``%ttt_config key=value`` moves the panel (two-way binding in a real kernel).
3. The ask box streams without blocking the kernel, and Stop ends the answer
   with the partial text kept.

The mock backend is paced by TTT_MOCK_DELAY (0.05 s a chunk in the kernel).
"""

from __future__ import annotations

import time

import pytest
from lab_page import Notebook, distinct_growing

pytestmark = pytest.mark.browser

EXPLAIN = "Explain what a list comprehension is"


def _options(select) -> list[str]:
    return select.locator("option").evaluate_all("els => els.map(e => e.value)")


def _choose(select, name: str) -> str:
    """Select the option whose label starts with ``name`` (labels carry availability marks)."""
    for value in _options(select):
        if value == name or value.startswith(name + " "):
            select.select_option(value=value)
            return value
    raise AssertionError(f"no option {name!r} in {_options(select)}")


def _wait_for(predicate, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_ask_streams_into_the_cell_and_renders_markdown(page, lab_log, nb_name):
    lab_log.write_notebook(
        nb_name,
        [
            "%load_ext ttt_magic",
            f"%%ask -b mock\n{EXPLAIN}",
        ],
    )
    nb = Notebook(page).open(lab_log.notebook_url(nb_name))
    nb.run_and_wait(0)
    nb.run(1)
    samples = nb.sample_while_running(1, lambda: nb.output_text(1))
    growing = distinct_growing(samples)
    assert len(growing) >= 3, f"expected the answer to grow over at least 3 samples, saw {growing!r}"
    lengths = [len(s) for s in growing]
    assert lengths == sorted(lengths), f"the text shrank while streaming: {lengths}"

    out = nb.output(1)
    _wait_for(lambda: out.locator("li").count() >= 3, "the final Markdown list")
    assert out.locator("h1, h2, h3").count() >= 1
    heading = out.locator("h1, h2, h3").first.inner_text()
    assert "list comprehension" in heading.lower()
    text = nb.output_text(1)
    assert not any(line.lstrip().startswith(("#", "- ")) for line in text.splitlines()), text
    assert len(text) > max(lengths[:-1] or [0])


def test_panel_choice_drives_the_next_ask_and_follows_config(page, lab_log, nb_name):
    lab_log.write_notebook(
        nb_name,
        [
            "%load_ext ttt_magic",
            "%ttt_config",
            f"%%ask\n{EXPLAIN}",
            "import ttt_magic\nr = ttt_magic.last_response\nprint('ROUTE', r.backend, r.model)",
            "%ttt_config default_backend=echo",
        ],
    )
    nb = Notebook(page).open(lab_log.notebook_url(nb_name))
    nb.run_and_wait(0)
    nb.run_and_wait(1)
    panel = nb.output(1).locator(".ttt-panel")
    panel.wait_for(state="visible")
    assert "Loading widget" not in nb.output_text(1)
    backend = panel.locator(".ttt-backend select")
    model = panel.locator(".ttt-model select")
    values = _options(backend)
    assert any(v.startswith("mock ") and "available" in v for v in values), values
    assert any("unavailable" in v for v in values), values  # e.g. a cloud provider without a key

    _choose(backend, "echo")
    _wait_for(lambda: "echo" in _options(model), "echo's model list")
    echo_models = set(_options(model))
    _choose(backend, "mock")
    _wait_for(lambda: "mock-fast" in _options(model), "mock's model list")
    assert set(_options(model)) != echo_models
    assert "echo" not in _options(model)
    model.select_option(value="mock-fast")
    _wait_for(lambda: "fetching" not in panel.locator(".ttt-status").inner_text().lower(), "the status line")

    nb.run_and_wait(2)
    assert "list comprehension" in nb.output_text(2).lower()
    assert "ROUTE mock mock-fast" in nb.run_and_wait(3)

    nb.run_and_wait(4)  # configuration changed elsewhere: the panel follows
    _wait_for(lambda: backend.input_value().startswith("echo "), "the panel to show backend echo")


def test_ask_box_streams_without_blocking_and_stop_keeps_partial(page, lab_log, nb_name):
    lab_log.write_notebook(
        nb_name,
        [
            "%load_ext ttt_magic\nimport os, ttt_magic\nos.environ['TTT_MOCK_DELAY'] = '0.1'\n"
            "ttt_magic.configure(default_backend='mock')",
            "%ttt_askbox",
        ],
    )
    nb = Notebook(page).open(lab_log.notebook_url(nb_name))
    nb.run_and_wait(0)
    nb.run_and_wait(1)
    box = nb.output(1).locator(".ttt-askbox")
    box.wait_for(state="visible")
    box.locator(".ttt-prompt textarea").fill(EXPLAIN)
    box.locator(".ttt-ask button, button.ttt-ask").first.click()

    answer = box.locator(".ttt-answer").first
    samples: list[str] = []
    idle_while_streaming = []
    deadline = time.monotonic() + 20
    while len(distinct_growing(samples)) < 4 and time.monotonic() < deadline:
        samples.append(answer.inner_text())
        idle_while_streaming.append("Idle" in nb.kernel_status_text())
        time.sleep(0.1)
    growing = distinct_growing(samples)
    assert len(growing) >= 3, f"the ask box did not stream: {growing!r}"
    assert any(idle_while_streaming), "the kernel was busy while the ask box streamed"

    box.locator(".ttt-stop button, button.ttt-stop").first.click()
    _wait_for(lambda: "stopped" in answer.inner_text(), "the stopped mark")
    stopped = answer.inner_text()
    partial = stopped.split("(stopped")[0].strip()
    assert len(partial) >= len(growing[-1].strip()) > 0  # what had arrived is still there
    assert "That is the outline" not in stopped  # the mock's last sentence never came
    time.sleep(0.5)
    assert answer.inner_text() == stopped  # and nothing arrives after Stop
    assert not box.locator(".ttt-ask button, button.ttt-ask").first.is_disabled()
