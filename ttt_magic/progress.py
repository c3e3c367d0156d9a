"""Progress of a batch: done/total, failures, rate, ETA, tokens and cost so far.

Three displays, chosen by ``make``:

- in a Jupyter kernel, an ipywidgets bar with a one-line label (or
  ``tqdm.auto`` when ipywidgets is missing and tqdm is installed, or the text
  bar when neither is);
- in a terminal, a text bar redrawn in place on standard error;
- a callable of your own, given ``progress=callback``: it receives a
  ``Snapshot`` on every update.

``progress=None`` (the default) shows a bar for more than ``AUTO_MIN_ITEMS``
items when the run is interactive (standard error is a terminal, or a kernel
is running), and nothing in scripts, CI and pipes.

Threading: every method here is called from the thread that called
``ask_many``, never from the library's event-loop thread. That thread is the
one executing the cell, so ipykernel routes the output to that cell (output
written from another thread lands in whichever cell runs at that moment, or is
dropped). ``ask_many`` waits for the loop thread in 50 ms slices and redraws
between them, at most ``Bar.interval`` apart.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TextIO

__all__ = ["AUTO_MIN_ITEMS", "Snapshot", "TextBar", "format_line", "in_kernel", "make"]

#: ``progress=None`` shows a bar only for batches larger than this.
AUTO_MIN_ITEMS = 5


@dataclass
class Snapshot:
    """The counts of a batch at one moment."""

    total: int
    done: int = 0
    failed: int = 0
    #: Items answered from an earlier, unfinished run of the same batch (not sent again).
    resumed: int = 0
    tokens: int = 0
    cost: float = 0.0
    #: Calls whose cost is unknown (no price): the cost shown is then a lower bound.
    unpriced: int = 0
    elapsed: float = 0.0
    #: Seconds the batch still waits because a provider asked it to slow down (429).
    waiting: float = 0.0
    #: Set at the end: why the batch stopped early (budget, interrupt, a failure).
    stopped: str | None = None

    @property
    def rate(self) -> float:
        """Items per second answered by this run (resumed items excluded)."""
        sent = self.done - self.resumed
        return sent / self.elapsed if self.elapsed > 0 and sent > 0 else 0.0

    @property
    def eta(self) -> float | None:
        rate = self.rate
        if rate <= 0:
            return None
        return max(0.0, (self.total - self.done) / rate)


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def format_line(snap: Snapshot) -> str:
    """``412/1000 · 3 failed · 38.1/s · ETA 15s · 41,200 tokens · $0.0123`` (parts only when known)."""
    parts = [f"{snap.done:,}/{snap.total:,}"]
    if snap.failed:
        parts.append(f"{snap.failed:,} failed")
    if snap.resumed:
        parts.append(f"{snap.resumed:,} resumed")
    rate = snap.rate
    if rate >= 1:
        parts.append(f"{rate:.1f}/s")
    elif rate > 0:
        parts.append(f"{rate * 60:.1f}/min")
    if snap.stopped:
        parts.append(snap.stopped)
    elif snap.done < snap.total:
        if snap.waiting > 0.05:
            parts.append(f"rate-limited, waiting {snap.waiting:.1f}s")
        eta = snap.eta
        if eta is not None:
            parts.append(f"ETA {_duration(eta)}")
    else:
        parts.append(f"in {_duration(snap.elapsed)}")
    if snap.tokens:
        parts.append(f"{snap.tokens:,} tokens")
    if snap.cost or snap.unpriced < snap.done - snap.resumed:
        more = "+" if snap.unpriced else ""
        parts.append(f"${snap.cost:.4f}{more}")
    return " · ".join(parts)


class Bar:
    """The interface: ``update`` (throttled) while running, ``close`` once at the end."""

    #: Seconds between two redraws.
    interval = 0.1

    def __init__(self) -> None:
        self._last = 0.0

    def due(self, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        if now - self._last >= self.interval:
            self._last = now
            return True
        return False

    def update(self, snap: Snapshot) -> None:
        if self.due():
            self.draw(snap)

    def draw(self, snap: Snapshot) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def close(self, snap: Snapshot) -> None:
        self.draw(snap)


class TextBar(Bar):
    """``[########........] 412/1000 · ...`` redrawn in place with ``\\r`` on ``stream``."""

    width = 24

    def __init__(self, stream: TextIO | None = None) -> None:
        super().__init__()
        self.stream = stream if stream is not None else sys.stderr
        self._shown = 0

    def render(self, snap: Snapshot) -> str:
        filled = int(self.width * snap.done / snap.total) if snap.total else self.width
        bar = "#" * filled + "." * (self.width - filled)
        return f"[{bar}] {format_line(snap)}"

    def draw(self, snap: Snapshot) -> None:
        line = self.render(snap)
        pad = " " * max(0, self._shown - len(line))
        self._shown = len(line)
        try:
            self.stream.write("\r" + line + pad)
            self.stream.flush()
        except (OSError, ValueError):  # a closed stream must not fail the batch
            pass

    def close(self, snap: Snapshot) -> None:
        self.draw(snap)
        try:
            self.stream.write("\n")
            self.stream.flush()
        except (OSError, ValueError):
            pass


class WidgetBar(Bar):
    """An ipywidgets progress bar and label, displayed in the cell that runs the batch."""

    interval = 0.2

    def __init__(self, total: int) -> None:
        super().__init__()
        import ipywidgets
        from IPython.display import display

        self.bar = ipywidgets.IntProgress(value=0, min=0, max=max(total, 1), bar_style="info")
        self.label = ipywidgets.HTML(value=f"0/{total:,}")
        self.box = ipywidgets.HBox([self.bar, self.label])
        display(self.box)

    def draw(self, snap: Snapshot) -> None:
        self.bar.value = snap.done
        self.label.value = format_line(snap)

    def close(self, snap: Snapshot) -> None:
        self.draw(snap)
        self.bar.bar_style = "danger" if snap.failed or snap.stopped else "success"


class TqdmBar(Bar):
    """``tqdm.auto`` (a notebook widget or a terminal bar, as tqdm decides)."""

    def __init__(self, total: int) -> None:
        super().__init__()
        from tqdm.auto import tqdm

        self.bar = tqdm(total=total, unit="item", dynamic_ncols=True)
        self._done = 0

    def draw(self, snap: Snapshot) -> None:
        if snap.done > self._done:
            self.bar.update(snap.done - self._done)
            self._done = snap.done
        extra = []
        if snap.failed:
            extra.append(f"{snap.failed} failed")
        if snap.tokens:
            extra.append(f"{snap.tokens:,} tok")
        if snap.cost:
            extra.append(f"${snap.cost:.4f}")
        self.bar.set_postfix_str(" · ".join(extra), refresh=False)

    def close(self, snap: Snapshot) -> None:
        self.draw(snap)
        self.bar.close()


class CallbackBar(Bar):
    """Calls ``fn(snapshot)`` on every throttled update and at the end."""

    def __init__(self, fn: Callable[[Snapshot], Any]) -> None:
        super().__init__()
        self.fn = fn

    def draw(self, snap: Snapshot) -> None:
        self.fn(snap)


def in_kernel() -> bool:
    """Whether a Jupyter kernel runs this process (without importing IPython if it is not loaded)."""
    ipython_mod = sys.modules.get("IPython")
    if ipython_mod is None:
        return False
    try:
        shell = ipython_mod.get_ipython()
    except Exception:
        return False
    return shell is not None and getattr(shell, "kernel", None) is not None


def _has(module: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except Exception:
        return False


def make(setting: Any, total: int, *, stream: TextIO | None = None) -> Bar | None:
    """The display for ``progress=setting`` (None/True/False, a ``Bar`` or a callable), or None."""
    if setting is False or total == 0:
        return None
    if isinstance(setting, Bar):
        return setting
    if callable(setting) and setting is not True:
        return CallbackBar(setting)
    kernel = in_kernel()
    if setting is None:
        interactive = kernel or _isatty(stream if stream is not None else sys.stderr)
        if total <= AUTO_MIN_ITEMS or not interactive:
            return None
    elif setting is not True:
        raise TypeError(f"progress must be True, False, None or a callable, not {setting!r}.")
    if kernel and stream is None:
        try:
            if _has("ipywidgets"):
                return WidgetBar(total)
            if _has("tqdm"):
                return TqdmBar(total)
        except Exception:  # no frontend, an old ipywidgets: fall back to text
            pass
    return TextBar(stream)
