"""When to redraw a growing answer: one rule for the ``%%ask`` display and the ask box.

Re-sending the whole answer on every token costs O(n²) bytes and trips
Jupyter's iopub rate limit. So the first text is drawn at once, and after that
the wait between redraws grows with the text's size relative to the stream's
speed::

    interval = clamp(size / (pace * chars_per_second), min_interval, max_interval)

which is ``elapsed / pace``: at most 20 redraws a second early on, then fewer
and fewer. Each redraw re-sends the text, whose size grows at the stream's
speed, so the bytes sent stay about ``pace`` times the answer's size whatever
the speed (a fixed rate would send ~20 × duration × size / 2). The cap keeps a
very long, slow answer from looking stalled.

The clock is injected, so tests (and benchmarks) can drive it.
"""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["MAX_INTERVAL", "MIN_INTERVAL", "PACE", "Throttle"]

MIN_INTERVAL = 0.05  # seconds: at most 20 redraws a second
MAX_INTERVAL = 5.0  # seconds: never longer between redraws while text arrives
PACE = 20  # the bytes sent stay about PACE times the answer's size


class Throttle:
    """Decides whether a redraw is due; ``mark`` records that one was made."""

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        min_interval: float = MIN_INTERVAL,
        max_interval: float = MAX_INTERVAL,
        pace: float = PACE,
    ) -> None:
        self.clock = clock
        self.min_interval = min_interval
        self.max_interval = max_interval
        self.pace = pace
        self.start: float | None = None  # when the first text was drawn
        self.last: float | None = None  # when the latest redraw was made

    def interval(self, size: int, elapsed: float) -> float:
        """Seconds between redraws: ``size / (pace * speed)``, i.e. ``elapsed / pace``, clamped.

        ``size`` characters arrived in ``elapsed`` seconds since the first one.
        """
        if size <= 0 or elapsed <= 0:
            return self.min_interval
        speed = size / elapsed
        return min(self.max_interval, max(self.min_interval, size / (self.pace * speed)))

    def wait(self, size: int, now: float | None = None) -> float:
        """Seconds until the next redraw of ``size`` characters is allowed; 0 means now."""
        now = self.clock() if now is None else now
        if self.last is None or self.start is None:
            return 0.0
        return max(0.0, self.last + self.interval(size, now - self.start) - now)

    def due(self, size: int, now: float | None = None) -> bool:
        """Whether a redraw of ``size`` characters may be made now."""
        return self.wait(size, now) == 0.0

    def mark(self, now: float | None = None) -> float:
        """Record a redraw (the first one starts the clock); returns the time used."""
        now = self.clock() if now is None else now
        if self.start is None:
            self.start = now
        self.last = now
        return now
