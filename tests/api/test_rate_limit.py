"""The per-user limit on changes: a burst, then a steady rate, each user on their own."""

from __future__ import annotations

from api.auth import RateLimit


def test_a_burst_then_the_steady_rate_and_users_do_not_share_a_bucket() -> None:
    now = [0.0]
    limit = RateLimit(burst=3, per_second=2.0, clock=lambda: now[0])
    assert [limit.take("ana") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limit.take("ana") == 0.5  # the next token comes in half a second
    assert limit.take("li") == 0.0  # another user is not held back by ana
    now[0] = 0.5
    assert limit.take("ana") == 0.0
    assert limit.take("ana") > 0
    now[0] = 100.0  # a long pause refills to the burst, not beyond it
    assert [limit.take("ana") for _ in range(4)][-1] > 0
