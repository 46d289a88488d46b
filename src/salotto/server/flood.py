"""Receive-rate limiting: a token bucket whose clock is passed in, so tests never sleep."""

from __future__ import annotations

__all__ = ["TokenBucket"]


class TokenBucket:
    """``burst`` lines at once, then ``rate_per_s`` lines per second.

    :meth:`delay` says how long the next line must wait (fakelag): 0 when it may go now.
    """

    __slots__ = ("_stamp", "_tokens", "burst", "rate_per_s")

    def __init__(self, rate_per_s: float, burst: int, now: float) -> None:
        self.rate_per_s = rate_per_s
        self.burst = burst
        self._tokens = float(burst)
        self._stamp = now

    def is_full(self, now: float) -> bool:
        """Whether the bucket has refilled to its burst (an idle sender), without taking a token."""
        return self._tokens + (now - self._stamp) * self.rate_per_s >= self.burst

    def available(self, now: float) -> float:
        """Seconds until a token is there (0.0: one is now), without taking it."""
        tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate_per_s)
        return 0.0 if tokens >= 1.0 else (1.0 - tokens) / self.rate_per_s

    def refund(self, now: float) -> None:
        """Give back a token taken earlier (up to the burst)."""
        tokens = self._tokens + (now - self._stamp) * self.rate_per_s + 1.0
        self._tokens = tokens if tokens < self.burst else float(self.burst)
        self._stamp = now

    def delay(self, now: float) -> float:
        """Take one token if there is one and return 0.0; otherwise return the seconds until there is."""
        tokens = self._tokens + (now - self._stamp) * self.rate_per_s
        if tokens > self.burst:
            tokens = self.burst
        self._stamp = now
        if tokens >= 1.0:
            self._tokens = tokens - 1.0
            return 0.0
        self._tokens = tokens
        return (1.0 - tokens) / self.rate_per_s
