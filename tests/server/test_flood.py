"""Throttle: a token bucket per key, with bounded memory."""

from __future__ import annotations

from salotto.server.flood import _THROTTLE_PRUNE_AT, Throttle


def test_a_throttle_without_evict_partial_never_forgets_a_bucket_that_is_not_full() -> None:
    throttle = Throttle(evict_partial=False)
    for _ in range(5):
        throttle.take("victim", 5, 60.0, 0.0)
    assert throttle.take("victim", 5, 60.0, 0.0) > 0
    for i in range(3 * _THROTTLE_PRUNE_AT):
        throttle.take(f"other{i}", 5, 60.0, 0.0)
    assert throttle.take("victim", 5, 60.0, 0.0) > 0
    # Refilled buckets are forgotten as before: it changes nothing, a new bucket starts full.
    throttle.take("late", 5, 60.0, 120.0)
    for i in range(3 * _THROTTLE_PRUNE_AT):
        throttle.take(f"again{i}", 5, 60.0, 120.0)
    assert len(throttle._buckets) < 3 * _THROTTLE_PRUNE_AT + 2


def test_a_per_address_throttle_stays_bounded_under_a_storm_of_fresh_keys() -> None:
    throttle = Throttle()
    for i in range(5 * _THROTTLE_PRUNE_AT):
        throttle.take(f"203.0.113.{i}", 5, 60.0, 0.0)
    assert len(throttle._buckets) <= _THROTTLE_PRUNE_AT


def test_pruning_stays_rare_when_nothing_can_be_forgotten() -> None:
    """Past the mark with only partial buckets, a prune (a walk over every bucket) does not run again at
    each new key, only once they have doubled."""
    throttle = Throttle(evict_partial=False)
    calls = 0
    prune = throttle._prune

    def counting(now: float) -> None:
        nonlocal calls
        calls += 1
        prune(now)

    throttle._prune = counting  # type: ignore[method-assign]
    for i in range(4 * _THROTTLE_PRUNE_AT):
        throttle.take(f"k{i}", 5, 60.0, 0.0)
    assert calls <= 3
