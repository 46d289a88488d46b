"""Receive-rate limiting: a token bucket whose clock is passed in, so tests never sleep."""

from __future__ import annotations

import ipaddress

__all__ = ["AddressSet", "Throttle", "TokenBucket", "ip_key"]

# Buckets kept before full (idle) ones are forgotten; bounds a throttle's memory under a storm of
# attempts from many addresses.
_THROTTLE_PRUNE_AT = 10_000


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


class Throttle:
    """One token bucket per key (an address, an account...): ``limit`` attempts per ``window_s``.

    Its memory is bounded: past ``_THROTTLE_PRUNE_AT`` buckets, refilled ones (idle keys) are forgotten,
    which changes nothing, as a new bucket starts full. If that is not enough (a storm of fresh keys), a
    throttle with ``evict_partial`` forgets the oldest half too: right for per-address limits, where a
    forgotten address only gets its own allowance back. A throttle without it never forgets a bucket
    that is not full (a per-account limit: forgetting the account under attack would reset its limit),
    so its keys must be bounded by other means (only existing accounts get one)."""

    def __init__(self, *, evict_partial: bool = True) -> None:
        self._buckets: dict[str, TokenBucket] = {}
        self._evict_partial = evict_partial
        self._prune_at = _THROTTLE_PRUNE_AT

    def _bucket(self, key: str, limit: int, window_s: float, now: float) -> TokenBucket:
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self._prune_at:
                self._prune(now)
            bucket = self._buckets[key] = TokenBucket(limit / window_s, limit, now)
        return bucket

    def take(self, key: str, limit: int, window_s: float, now: float) -> float:
        """Take an attempt: 0.0 if allowed, else the seconds until the next one is."""
        return self._bucket(key, limit, window_s, now).delay(now)

    def give_back(self, key: str, now: float) -> None:
        """Return the attempt taken for ``key`` (it succeeded: only failures use the limit up)."""
        bucket = self._buckets.get(key)
        if bucket is not None:
            bucket.refund(now)

    def _prune(self, now: float) -> None:
        """Forget refilled buckets; if that is not enough and ``evict_partial``, the oldest half."""
        for key, bucket in list(self._buckets.items()):
            if bucket.is_full(now):
                del self._buckets[key]
        if self._evict_partial and len(self._buckets) >= _THROTTLE_PRUNE_AT:
            for key in list(self._buckets)[: len(self._buckets) // 2]:
                del self._buckets[key]
        # What could not be forgotten stays; the next prune waits until there are twice as many, so that
        # pruning stays rare (each one walks every bucket).
        self._prune_at = max(_THROTTLE_PRUNE_AT, 2 * len(self._buckets))


def ip_key(ip: str) -> str:
    """The per-IP throttle's key: the address, or its /64 for IPv6 (one host's usual allocation). An
    IPv4-mapped IPv6 address (``::ffff:192.0.2.7``, an IPv4 client of a dual-stack socket) is its IPv4
    address: its /64 would hold every IPv4 client at once."""
    if ":" not in ip:
        return ip
    try:
        address = ipaddress.IPv6Address(ip)
    except ValueError:
        return ip
    if address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(ipaddress.IPv6Network((address, 64), strict=False))


class AddressSet:
    """IP addresses and CIDR ranges (validated by the config); ``ip in addresses``.

    Every new connection asks (throttle_exempt, trusted_proxies), so IPv4 addresses are matched with
    integer masks rather than parsed by :mod:`ipaddress`, which costs more than the rest of accepting one."""

    __slots__ = ("_exact", "_v4", "_v6")

    def __init__(self, items: list[str]) -> None:
        networks = [ipaddress.ip_network(item, strict=False) for item in items]
        self._exact = frozenset(str(n.network_address) for n in networks if n.num_addresses == 1)
        self._v4 = tuple((int(n.network_address), int(n.netmask)) for n in networks
                         if n.version == 4 and n.num_addresses > 1)
        self._v6 = tuple(n for n in networks if n.version == 6 and n.num_addresses > 1)

    def __contains__(self, ip: str) -> bool:
        if ip in self._exact:
            return True
        if ip[:7].lower() == "::ffff:" and "." in ip:  # an IPv4 client of a dual-stack socket
            ip = ip[7:]
            if ip in self._exact:
                return True
        if ":" not in ip:
            if not self._v4:
                return False
            parts = ip.split(".")
            if len(parts) != 4:
                return False
            try:
                a, b, c, d = map(int, parts)
            except ValueError:
                return False
            value = (a << 24) | (b << 16) | (c << 8) | d
            for network, mask in self._v4:  # noqa: SIM110  (a loop: no generator per connection)
                if value & mask == network:
                    return True
            return False
        if not self._v6:
            return False
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            return False
        return any(address in network for network in self._v6)
