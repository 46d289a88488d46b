"""Fixtures of the end-to-end tests."""

from __future__ import annotations

import pytest


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> list[str]:
    """The ``salotto serve`` flags that put the store on each backend: none for SQLite (the default, in
    the data directory), a fresh database of its own on the tests' PostgreSQL server."""
    if request.param == "postgresql":
        return ["--storage-backend", "postgresql", "--storage-url", str(request.getfixturevalue("postgres_url"))]
    return []
