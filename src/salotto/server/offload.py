"""CPU-heavy work off the event loop, as the server asks for it: password hashing, mail.

scrypt costs tens of milliseconds and 32 MiB per call (see :mod:`salotto.passwords`); on the loop
thread one login would stall every connection for that long. The server hands such work to an
:class:`Offload`; the runtime's runs it on a small thread pool (:class:`salotto.threads.ThreadOffload`),
and the results come back on the loop thread. The server layer itself starts no thread.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, TypeVar

from salotto.storage.outcome import Outcome

__all__ = ["InlineOffload", "Offload"]

T = TypeVar("T")


class Offload(Protocol):
    def run(self, fn: Callable[[], T], callback: Callable[[Outcome[T]], None]) -> None:
        """Run ``fn`` elsewhere; ``callback`` gets its Outcome on the loop thread."""


class InlineOffload:
    """Runs the work at once, on the caller's thread: for tests and tools without a loop."""

    def run(self, fn: Callable[[], T], callback: Callable[[Outcome[T]], None]) -> None:
        callback(Outcome.of(fn))
