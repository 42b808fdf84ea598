"""How late the event loop runs: a sleeper that wakes every `interval_s` and notes how late it woke.

Everything in the process shares one asyncio loop, so a callback that blocks it (a slow regex, a
synchronous file write, a big JSON dump) delays every poll, every alarm and every desk answer at
once; nothing else shows it. The lag is what a person sees as "the desk is slow" and what makes
a Modbus poll miss its interval, so it is a figure of its own and a part of the readiness view.

The figure is the worst lag of the last `window_s` (two Prometheus scrapes at the usual 15 s), not
the last one alone, so that a block between two scrapes is still seen; it also counts a sleep that
is overdue at the moment of asking, as when a scrape is handled before the sleeper it delayed.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Iterable

from facility.readiness import Figure, PartState, State

INTERVAL_S = 0.25  # short enough to see a blocked quarter second, long enough to cost nothing
WINDOW_S = 30.0
DEGRADED_S = 1.0  # a loop this late delays alarms by a second: a person should know


class LoopLag:
    """A `Reporter` of the event loop; `run()` is its task (the runtime starts it, cancels it)."""

    def __init__(
        self,
        interval_s: float = INTERVAL_S,
        window_s: float = WINDOW_S,
        degraded_s: float = DEGRADED_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._interval = interval_s
        self._window = window_s
        self._degraded = degraded_s
        self._clock = clock
        self._lags: deque[float] = deque(maxlen=max(1, round(window_s / interval_s)))
        self._due: float | None = None  # when the sleep under way should end; None: not running
        self._on_time_ns: int | None = None  # UTC ns of the last wake-up less late than `degraded_s`

    async def run(self) -> None:
        # Starting is the loop running this task now: "up" from the first answer, with a time of its
        # last success, rather than up and never on time until the first interval has passed.
        self._on_time_ns = time.time_ns()
        try:
            while True:
                self._due = self._clock() + self._interval
                await asyncio.sleep(self._interval)
                late = max(0.0, self._clock() - self._due)
                self._lags.append(late)
                if late < self._degraded:
                    self._on_time_ns = time.time_ns()
        finally:
            self._due = None

    def lag(self) -> float:
        """Seconds: the worst lateness of the window, or of the sleep now overdue if that is worse."""
        overdue = 0.0 if self._due is None else max(0.0, self._clock() - self._due)
        return max(max(self._lags, default=0.0), overdue)

    def _measuring(self) -> bool:
        """Whether there is anything to tell: a monitor never started knows nothing of the loop,
        and says nothing rather than "up" (Prometheus can alert on the figure being absent)."""
        return self._due is not None or bool(self._lags)

    def parts(self) -> Iterable[PartState]:
        if not self._measuring():
            return []
        lag = self.lag()
        if lag < self._degraded:
            return [PartState("event loop", "event_loop", State.UP, self._on_time_ns)]
        detail = f"the event loop ran {lag:.1f} s late: polls, alarms and answers wait that long"
        return [PartState("event loop", "event_loop", State.DEGRADED, self._on_time_ns, detail)]

    def figures(self) -> Iterable[Figure]:
        if not self._measuring():
            return []
        return [
            Figure(
                "event_loop_lag_seconds",
                f"The worst lateness of the event loop over the last {self._window:g} s.",
                "gauge",
                self.lag(),
            )
        ]
