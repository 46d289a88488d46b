"""A real, throwaway PostgreSQL server for the tests (and ``bench/history_bench --start-postgres``).

:func:`start_postgres` runs ``initdb`` and ``pg_ctl start`` in a temporary directory, listening on
127.0.0.1 at a free port (and on a Unix socket inside that directory, for the superuser), and creates
the role :data:`ROLE` with password :data:`PASSWORD`, allowed to create databases. Run as root, it runs
them as the ``postgres`` user (initdb refuses root). TCP logins need the password (scram-sha-256), so a
test can see a wrong one refused.

Fixtures: ``postgres_server`` (one server per test session, stopped at its end) and ``postgres_url``
(a fresh database per test, dropped after it). Both skip when PostgreSQL is not installed.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import count
from pathlib import Path

import pytest

ROLE = "salotto"
PASSWORD = "pg-Test-p4ss"
NOT_INSTALLED = "PostgreSQL is not installed: apt-get install postgresql"


def postgres_bin_dir() -> Path | None:
    """The directory of initdb/pg_ctl/postgres: Debian's newest /usr/lib/postgresql/N/bin, else PATH."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return None if initdb is None else Path(os.path.realpath(initdb)).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class PostgresServer:
    base: Path  # the temporary directory: data/ and the socket
    port: int
    bin_dir: Path
    as_postgres: bool  # root: commands run as the postgres user
    _names: Iterator[int] = field(default_factory=lambda: count(1))

    @property
    def socket_dir(self) -> Path:
        return self.base

    def url(self, database: str, *, password: str = PASSWORD, host: str = "127.0.0.1", port: int | None = None) -> str:
        return f"postgresql://{ROLE}:{password}@{host}:{port or self.port}/{database}"

    def run(self, *command: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """A PostgreSQL client or server program, as the server's owner."""
        args = [str(self.bin_dir / command[0]), *command[1:]]
        if self.as_postgres:
            args = ["runuser", "-u", "postgres", "--", *args]
        return subprocess.run(args, check=check, capture_output=True, text=True, timeout=60, cwd="/")

    def psql(self, sql: str, database: str = "postgres") -> str:
        """Run ``sql`` as the superuser over the Unix socket."""
        result = self.run("psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", str(self.socket_dir),
                          "-p", str(self.port), "-U", "postgres", "-d", database, "-c", sql)
        return result.stdout.strip()

    def create_database(self) -> str:
        """A fresh, empty database owned by :data:`ROLE`; its name."""
        name = f"t{os.getpid()}_{next(self._names)}"
        self.psql(f'CREATE DATABASE "{name}" OWNER {ROLE} TEMPLATE template0')
        return name

    def drop_database(self, name: str) -> None:
        self.psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def stop(self) -> None:
        self.run("pg_ctl", "stop", "-D", str(self.base / "data"), "-m", "immediate", check=False)
        shutil.rmtree(self.base, ignore_errors=True)


def start_postgres(parent: str | None = None, *, durable: bool = False) -> PostgresServer:
    """Start a throwaway server (see the module docstring). Raises RuntimeError if it cannot start,
    FileNotFoundError if PostgreSQL is not installed.

    ``durable``: fsync on, as a real server has it (for benchmarks); the tests' server skips it."""
    bin_dir = postgres_bin_dir()
    if bin_dir is None:
        raise FileNotFoundError(NOT_INSTALLED)
    as_postgres = os.geteuid() == 0
    base = Path(tempfile.mkdtemp(prefix="salotto-pg-", dir=parent))
    if as_postgres:
        owner = pwd.getpwnam("postgres")
        os.chown(base, owner.pw_uid, owner.pw_gid)
    server = PostgresServer(base, _free_port(), bin_dir, as_postgres)
    try:
        server.run("initdb", "-D", str(base / "data"), "-U", "postgres", "-E", "UTF8", "--locale=C",
                   "--auth-local=trust", "--auth-host=scram-sha-256", "--no-sync")
        # Speed over crash safety of the test server itself (its data is thrown away); commits still
        # wait for the server, which is what the storage layer's durability rests on.
        options = (f"-c listen_addresses=127.0.0.1 -c port={server.port} -c unix_socket_directories={base} "
                   "-c max_connections=200 -c shared_buffers=128MB")
        if not durable:
            options += " -c fsync=off -c full_page_writes=off"
        started = server.run("pg_ctl", "start", "-D", str(base / "data"), "-w", "-t", "60",
                             "-l", str(base / "server.log"), "-o", options, check=False)
        if started.returncode != 0:
            log = (base / "server.log").read_text(errors="replace") if (base / "server.log").exists() else ""
            raise RuntimeError(f"pg_ctl start failed: {started.stdout}{started.stderr}{log[-2000:]}")
        server.psql(f"CREATE ROLE {ROLE} LOGIN CREATEDB PASSWORD '{PASSWORD}'")
    except BaseException:
        server.stop()
        raise
    return server


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One PostgreSQL server for the whole session; skips the test if PostgreSQL is not installed."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        pytest.skip("psycopg is not installed: scripts/setup test")
    if postgres_bin_dir() is None:
        pytest.skip(NOT_INSTALLED)
    server = start_postgres()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """The URL of a fresh database of its own for the test (dropped after it)."""
    name = postgres_server.create_database()
    yield postgres_server.url(name)
    postgres_server.drop_database(name)
