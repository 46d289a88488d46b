"""What work run elsewhere (a storage thread, the hashing pool) returned, or the exception it raised."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, cast

__all__ = ["Outcome"]

T = TypeVar("T")
R = TypeVar("R")


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

    @staticmethod
    def of(fn: Callable[..., R], *args: Any) -> Outcome[R]:
        """Run ``fn(*args)``: what it returned, or the exception it raised."""
        try:
            return Outcome(value=fn(*args))
        except Exception as exc:
            return Outcome(error=exc)
