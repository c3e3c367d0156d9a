"""Progress of a batch: the line, the text bar, choosing a display, and which thread draws it."""

from __future__ import annotations

import io
import sys
import threading

import pytest

from ttt_magic import progress
from ttt_magic.backends import BaseBackend
from ttt_magic.batch import ask_many
from ttt_magic.models import AIResponse
from ttt_magic.progress import Snapshot, TextBar, format_line, make
from ttt_magic.registry import backend_registry


class Slowish(BaseBackend):
    backend_name = "slowish"

    async def ask(self, prompt, **kwargs):
        import asyncio

        await asyncio.sleep(0.02)
        if "bad" in prompt:
            return AIResponse("", error="no")
        return AIResponse(prompt, tokens_in=3, tokens_out=2, cost=0.001)


@pytest.fixture(autouse=True)
def slowish():
    from ttt_magic import batch

    batch.forget()  # answers kept for resuming must not leak between tests
    backend_registry.register_backend("slowish", Slowish)
    yield
    backend_registry.unregister("slowish")
    batch.forget()


def test_the_line_says_done_failures_rate_eta_tokens_and_cost():
    snap = Snapshot(total=1000, done=400, failed=3, tokens=41200, cost=0.0123, elapsed=10.0)
    line = format_line(snap)
    assert line == "400/1,000 · 3 failed · 40.0/s · ETA 15s · 41,200 tokens · $0.0123"


def test_the_line_at_the_end_and_while_rate_limited():
    assert format_line(Snapshot(total=2, done=2, elapsed=61.0, unpriced=2)) == "2/2 · 2.0/min · in 1m01s"
    waiting = format_line(Snapshot(total=10, done=1, elapsed=1.0, waiting=2.0, resumed=0))
    assert "rate-limited, waiting 2.0s" in waiting and "ETA 9s" in waiting
    resumed = format_line(Snapshot(total=10, done=6, resumed=5, elapsed=1.0))
    assert "5 resumed" in resumed and "1.0/s" in resumed
    stopped = format_line(Snapshot(total=10, done=4, elapsed=1.0, stopped="budget reached"))
    assert "budget reached" in stopped and "ETA" not in stopped
    unknown_cost = format_line(Snapshot(total=3, done=3, elapsed=1.0, cost=0.5, unpriced=1))
    assert "$0.5000+" in unknown_cost


def test_the_text_bar_redraws_in_place_and_ends_with_a_newline():
    out = io.StringIO()
    bar = TextBar(out)
    bar.draw(Snapshot(total=4, done=1, elapsed=1.0))
    bar.close(Snapshot(total=4, done=4, elapsed=2.0))
    text = out.getvalue()
    assert text.startswith("\r[######..................] 1/4")
    assert "\r[########################] 4/4" in text and text.endswith("\n")


def test_updates_are_throttled():
    drawn = []
    bar = progress.CallbackBar(drawn.append)
    for i in range(100):
        bar.update(Snapshot(total=100, done=i))
    assert len(drawn) == 1


def test_choosing_a_display(monkeypatch):
    monkeypatch.setattr(progress, "in_kernel", lambda: False)
    tty = io.StringIO()
    tty.isatty = lambda: True  # type: ignore[method-assign]
    assert make(None, 5, stream=tty) is None  # a handful of items: no bar
    assert isinstance(make(None, 6, stream=tty), TextBar)
    assert make(None, 100, stream=io.StringIO()) is None  # not interactive: no bar
    assert isinstance(make(True, 100, stream=io.StringIO()), TextBar)
    assert make(False, 100) is None and make(True, 0) is None
    assert isinstance(make(print, 10), progress.CallbackBar)
    with pytest.raises(TypeError):
        make("yes", 10)


def test_in_a_kernel_an_ipywidgets_bar(monkeypatch):
    import IPython.display
    import ipywidgets  # noqa: F401 - a test dependency: missing must fail

    shown = []
    monkeypatch.setattr(progress, "in_kernel", lambda: True)
    monkeypatch.setattr(IPython.display, "display", lambda *objs, **kw: shown.append(objs))
    bar = make(None, 50)
    assert isinstance(bar, progress.WidgetBar) and shown
    bar.close(Snapshot(total=50, done=50, elapsed=1.0, failed=1))
    assert bar.bar.value == 50 and bar.bar.bar_style == "danger" and "50/50" in bar.label.value


def test_no_kernel_without_ipython(monkeypatch):
    monkeypatch.setitem(sys.modules, "IPython", None)
    monkeypatch.delitem(sys.modules, "IPython")
    assert progress.in_kernel() is False


def test_progress_is_drawn_by_the_thread_that_called_ask_many():
    calls: list[tuple[int, Snapshot]] = []
    answers = ask_many(
        [f"p{i}" for i in range(30)] + ["bad"],
        backend="slowish",
        concurrency=4,
        progress=lambda snap: calls.append((threading.get_ident(), snap)),
    )
    assert answers.failed == [30]
    assert calls and {ident for ident, _ in calls} == {threading.get_ident()}
    last = calls[-1][1]
    assert (last.done, last.total, last.failed) == (31, 31, 1)
    assert last.tokens == 150 and last.cost == pytest.approx(0.03)


def test_a_terminal_run_shows_the_text_bar_on_stderr(capsys):
    ask_many([f"p{i}" for i in range(8)], backend="slowish", progress=True)
    err = capsys.readouterr().err
    assert "\r[" in err and "8/8" in err and err.endswith("\n")


def test_tqdm_when_there_is_no_ipywidgets(monkeypatch):
    import types

    made = []

    class FakeTqdm:
        def __init__(self, total, **kwargs):
            self.total, self.n, self.postfix, self.closed = total, 0, "", False
            made.append(self)

        def update(self, n):
            self.n += n

        def set_postfix_str(self, text, refresh=True):
            self.postfix = text

        def close(self):
            self.closed = True

    auto = types.ModuleType("tqdm.auto")
    auto.tqdm = FakeTqdm
    package = types.ModuleType("tqdm")
    package.auto = auto
    monkeypatch.setitem(sys.modules, "tqdm", package)
    monkeypatch.setitem(sys.modules, "tqdm.auto", auto)
    monkeypatch.setattr(progress, "in_kernel", lambda: True)
    monkeypatch.setattr(progress, "_has", lambda name: name == "tqdm")
    bar = make(None, 20)
    assert isinstance(bar, progress.TqdmBar)
    bar.draw(Snapshot(total=20, done=7, failed=1, tokens=90))
    bar.close(Snapshot(total=20, done=20, failed=1, tokens=300, cost=0.25))
    (fake,) = made
    assert fake.n == 20 and fake.closed and "1 failed" in fake.postfix and "$0.2500" in fake.postfix
