"""What every telemetry store must return for the same readings: one contract, checked on each."""

from __future__ import annotations

from facility.store.telemetry import TelemetryStore

S = 1_000_000_000


def assert_level_history(store: TelemetryStore, start: int) -> None:
    """tank-1/level holds 0.0 .. 9.0 at one-second steps from `start`: raw samples come back as
    written, and three-second buckets aligned to `start` as min/mean/max/count."""
    raw = store.history("tank-1", "level", start, start + 10 * S)
    assert [(s.ts, s.mean, s.min, s.max, s.count) for s in raw] == [
        (start + k * S, float(k), float(k), float(k), 1) for k in range(10)
    ]
    buckets = store.history("tank-1", "level", start, start + 10 * S, bucket_s=3.0)
    assert [(s.ts, s.mean, s.min, s.max, s.count) for s in buckets] == [
        (start, 1.0, 0.0, 2.0, 3),
        (start + 3 * S, 4.0, 3.0, 5.0, 3),
        (start + 6 * S, 7.0, 6.0, 8.0, 3),
        (start + 9 * S, 9.0, 9.0, 9.0, 1),
    ]
