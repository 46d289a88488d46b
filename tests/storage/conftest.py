"""The storage suite runs against every backend: the ``storage`` fixture is parametrised over them, so a
new backend is added to ``BACKENDS`` and must pass the same tests.

``location`` is what ``open_storage`` opens: the test's data directory for SQLite, a fresh database on
the session's PostgreSQL server (``tests/postgres.py``) for PostgreSQL, whose tests are skipped, saying
why, where PostgreSQL is not installed."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from salotto.storage import BACKENDS, HistoryMessage, Storage, open_storage

Reopen = Callable[..., Storage]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def location(backend: str, data_dir: Path, request: pytest.FixtureRequest) -> str:
    """Where the test's store is: ``open_storage(backend, location)``."""
    if backend == "postgresql":
        return str(request.getfixturevalue("postgres_url"))
    return str(data_dir)


@pytest.fixture
def reopen(backend: str, location: str) -> Iterator[Reopen]:
    """Open (again) a connection on the test's store; every connection opened is closed at the end."""
    opened: list[Storage] = []

    def open_(*, readonly: bool = False) -> Storage:
        storage = open_storage(backend, location, readonly=readonly)
        opened.append(storage)
        return storage

    yield open_
    for storage in opened:
        storage.close()


@pytest.fixture
def storage(reopen: Reopen) -> Storage:
    return reopen()


def message(
    i: int,
    target: str = "#chan",
    time: float | None = None,
    *,
    msgid: str | None = None,
    sender: str | None = None,
    account: str | None = None,
    command: str = "PRIVMSG",
    text: str | None = None,
    parties: tuple[str, str] | None = None,
) -> HistoryMessage:
    """Message number ``i``: msgid ``m0007``, at second ``1000 + i // 2`` (two messages per timestamp)."""
    return HistoryMessage(
        msgid=msgid or f"m{i:04d}",
        target=target,
        time=1000.0 + i // 2 if time is None else time,
        sender=sender or f"nick{i % 3}!u@h",
        account=account,
        command=command,
        text=f"line {i}" if text is None else text,
        parties=parties,
    )
