"""What every telemetry store offers: batched writes that are safe to replay, and history."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from facility.model import Reading, Value


class StoreUnavailable(Exception):
    """The store cannot take writes now (down, slow, unreachable): keep the batch and retry later."""


class HistoryUnavailable(StoreUnavailable):
    """The store cannot give history now: it cannot be reached, refuses, or answers in a shape it
    should not (a server that is not what the site file says it is). `store` names it as an
    operator knows it ("InfluxDB at http://10.0.0.5:8086"), `reason` says why, for the API's 502.

    A StoreUnavailable, so that callers that already stop cleanly on an unavailable store (the
    backtest command) stop as cleanly on this."""

    def __init__(self, store: str, reason: str) -> None:
        self.store = store
        self.reason = reason
        super().__init__(f"{store} cannot give history: {reason}")


class BatchRejected(Exception):
    """The store refused readings as malformed: retrying cannot help; dead-letter them.

    `rejected` names the readings that were refused (the rest of the batch was stored); None means
    the whole batch. `reasons`, when given, holds the store's reason for each rejected reading.
    """

    def __init__(
        self, reason: str, rejected: Sequence[Reading] | None = None, reasons: Sequence[str] | None = None
    ) -> None:
        self.reason = reason
        self.rejected = rejected
        self.reasons = reasons
        super().__init__(reason)


@dataclass(frozen=True, slots=True)
class Sample:
    """A point's value over one bucket of time (or one raw reading when not downsampled)."""

    ts: int  # UTC ns: start of the bucket, or the reading's time
    mean: Value
    min: Value
    max: Value
    count: int


class TelemetryStore(Protocol):
    """Where readings are kept as time series. Calls block: history always runs in a worker thread,
    and so does write unless the store says its writes are quick."""

    # True: write() is local and takes a few milliseconds per thousand readings, so the writer
    # calls it on the event loop. A worker thread would contend with a busy loop for the GIL and
    # fall behind. False: it may wait on a network or a disk, and runs in a worker thread.
    quick_writes: bool

    def write(self, readings: Sequence[Reading]) -> None:
        """Store a batch; raises StoreUnavailable (retry later) or BatchRejected (never retry).
        Writing the same reading twice must leave one copy: replays after an outage are safe."""

    def history(
        self, device: str, point: str, start_ns: int, end_ns: int, bucket_s: float | None = None
    ) -> list[Sample]:
        """Samples in [start, end), raw or as min/mean/max per bucket, oldest first."""

    def prune(self, now_ns: int) -> int:
        """Delete readings older than the store's retention; returns how many. Runs in a worker
        thread, and must not hold up writes for long. A server with retention policies of its own
        returns 0."""

    def close(self) -> None: ...
