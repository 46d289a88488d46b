"""The server password (``server_password_hash``): who may try it, and how often.

Three rules, so that guessing is slow without ever keeping out who knows the password:

- Per address (:func:`~salotto.server.flood.ip_key`): ``login_attempts_per_ip`` attempts per
  ``login_throttle_window_s``, counted when the attempt starts (before its hash), as logins are; a
  right password gives its attempt back. Past it the address waits: its own guesses, nobody else's.
- Server-wide: an address whose last password was wrong (in the last ``FAILED_REMEMBERED_S``) and that
  has not given the right one since the server started also draws from one budget,
  ``login_attempts_per_account`` per window, shared by all such addresses: forty guessing addresses get
  one try each, then no more than that budget together. An address with no wrong password on file never
  draws from it, so what other addresses do never refuses it.
- The same password already being checked: the attempt waits for that check and gets its answer,
  counting nothing and costing no hash. A burst of connections from one office (one address behind
  NAT), all sending the password at once, makes one check, whatever the per-address limit.

A refusal for one of the limits is not a wrong password: the handler answers it with ``ERROR`` (clients
reconnect later), keeping 464 for a password that was checked and is wrong (clients take it as final).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from salotto.config import Config
from salotto.server.flood import Throttle

__all__ = ["FAILED_KEPT", "FAILED_REMEMBERED_S", "TRUSTED_KEPT", "Attempt", "ServerPasswordGate"]

# How long an address that gave a wrong password draws from the server-wide budget (unless it gives the
# right one): one free guess per address per day at most.
FAILED_REMEMBERED_S = 24 * 3600.0
# Addresses with a wrong password on file, at most (the oldest forgotten past it): bounds the memory.
FAILED_KEPT = 10_000
# Addresses that gave the right password, remembered (the newest): their typos never make them draw
# from the server-wide budget.
TRUSTED_KEPT = 4096


def _unanswered(right: bool) -> None:
    return


@dataclass(slots=True)
class Attempt:
    """One PASS on its way: what it counted (to give back if right), and whom to answer."""

    address: str
    answer: Callable[[bool], None] = _unanswered  # gets whether the password was right
    counted: bool = False  # took the address's attempt (it started the check)
    budget: bool = False  # and one of the server-wide budget


class ServerPasswordGate:
    """The limits' state: per-address buckets, the server-wide budget, the addresses on file, and the
    checks in flight (by password, while they run: the password is not kept past its check)."""

    def __init__(self) -> None:
        self.per_address = Throttle()
        self.budget = Throttle(evict_partial=False)  # one key
        self._failed: dict[str, float] = {}  # address -> its last wrong password (clock), oldest first
        self._trusted: dict[str, None] = {}  # addresses that gave the right password, oldest first
        self._checking: dict[tuple[str, str], list[Attempt]] = {}

    def join(self, stored: str, password: str, attempt: Attempt) -> bool:
        """If ``password`` is being checked against ``stored``, wait for that check's answer (True)."""
        attempts = self._checking.get((stored, password))
        if attempts is None:
            return False
        attempts.append(attempt)
        return True

    def start(self, attempt: Attempt, config: Config, now: float) -> tuple[float, str]:
        """Count an attempt before its check: ``(0.0, "")`` if it may go ahead, else the seconds to wait
        and why (nothing is counted then)."""
        window = config.login_throttle_window_s
        address = attempt.address
        wait = self.per_address.take(address, config.login_attempts_per_ip, window, now)
        if wait:
            return wait, "Too many attempts from your address"
        if self.failed_recently(address, now):
            wait = self.budget.take("", config.login_attempts_per_account, window, now)
            if wait:
                self.per_address.give_back(address, now)  # not checked: the address's allowance stays
                return wait, "Too many wrong passwords lately, from your address and others"
            attempt.budget = True
        attempt.counted = True
        return 0.0, ""

    def checking(self, stored: str, password: str, attempt: Attempt) -> None:
        """``attempt`` started the check of ``password``: others with the same one join it."""
        self._checking[(stored, password)] = [attempt]

    def checked(self, stored: str, password: str, right: bool, now: float) -> list[Attempt]:
        """The check is done: note it for every attempt that waited for it (a right password gives back
        what it counted, and takes its address off file), and return them to answer."""
        attempts = self._checking.pop((stored, password), [])
        for attempt in attempts:
            address = attempt.address
            if right:
                if attempt.counted:
                    self.per_address.give_back(address, now)
                if attempt.budget:
                    self.budget.give_back("", now)
                self._failed.pop(address, None)
                self._trusted.pop(address, None)
                self._trusted[address] = None
                if len(self._trusted) > TRUSTED_KEPT:
                    del self._trusted[next(iter(self._trusted))]
            else:
                self._failed.pop(address, None)
                self._failed[address] = now
                if len(self._failed) > FAILED_KEPT:
                    del self._failed[next(iter(self._failed))]
        return attempts

    def failed_recently(self, address: str, now: float) -> bool:
        """Whether the address draws from the server-wide budget: a wrong password on file, recent, and
        no right one since the server started."""
        if address in self._trusted:
            return False
        failed = self._failed.get(address)
        if failed is None:
            return False
        if now - failed >= FAILED_REMEMBERED_S:
            del self._failed[address]
            return False
        return True
