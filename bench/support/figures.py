"""Latency figures as the benchmarks report them, computed one way so that a p99 in one bench's
JSON means what it means in another's."""

from __future__ import annotations

import statistics


def summary(prefix: str, samples: list[float], *, digits: int) -> dict[str, float]:
    """p50, p99 and max in milliseconds of `samples` (seconds), rounded to `digits`: keys
    `{prefix}_p50_ms`, `{prefix}_p99_ms`, `{prefix}_max_ms`. The p99 is the nearest-rank sample, so
    it is one that was measured."""
    ms = sorted(s * 1000 for s in samples)
    p99 = ms[min(len(ms) - 1, round(0.99 * (len(ms) - 1)))]
    return {
        f"{prefix}_p50_ms": round(statistics.median(ms), digits),
        f"{prefix}_p99_ms": round(p99, digits),
        f"{prefix}_max_ms": round(ms[-1], digits),
    }
