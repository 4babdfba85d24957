"""plumbing.rate_limits: token buckets per key, refilled over time, in a bounded table."""

from __future__ import annotations

from plumbing.rate_limits import Rate, RateLimiter


def test_the_rate_limiter_refills_and_says_how_long_to_wait() -> None:
    now = [0.0]
    limiter = RateLimiter(Rate(per_second=2, burst=2), clock=lambda: now[0])
    assert [limiter.take("a"), limiter.take("a"), limiter.take("a")] == [0, 0, 1]
    assert limiter.take("b") == 0  # another caller has its own bucket
    now[0] = 0.5
    assert limiter.take("a") == 0
    assert RateLimiter(Rate(per_second=0, burst=0)).take("a") == 0  # no limit


def test_the_rate_limiters_table_stays_bounded() -> None:
    now = [0.0]
    limiter = RateLimiter(Rate(per_second=1, burst=5), max_keys=100, clock=lambda: now[0])
    for n in range(10_000):
        now[0] += 0.001
        limiter.take(f"10.0.{n // 256}.{n % 256}")
    assert len(limiter._buckets) <= 101
