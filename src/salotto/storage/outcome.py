"""What work run elsewhere (a storage thread, the hashing pool) returned, or the exception it raised."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar, cast

__all__ = ["Outcome"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Outcome(Generic[T]):
    """What a function returned, or the exception it raised."""

    value: T | None = None
    error: BaseException | None = None

    def unwrap(self) -> T:
        """The value; raises the function's exception if it failed."""
        if self.error is not None:
            raise self.error
        return cast(T, self.value)
