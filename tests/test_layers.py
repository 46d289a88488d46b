"""The layer rule of DESIGN.md: the protocol and the server logic do no I/O of their own.

Nothing under ``src/salotto/proto/`` or ``src/salotto/server/`` may import an event loop, sockets,
TLS, a database or a GUI toolkit; the transports and storage layers do that and call in.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "salotto"
PURE_LAYERS = ("proto", "server")
# No I/O of their own and no threads: mail, thread pools and the database are the runtime's and the
# storage layer's, handed to the server as objects it calls (Offload, Mailer, Store).
FORBIDDEN = frozenset({"asyncio", "socket", "sqlite3", "tkinter", "ssl", "selectors", "smtplib", "concurrent",
                       "threading", "multiprocessing", "subprocess", "psycopg", "redis"})
# Nor may they reach them through salotto's own modules that do.
FORBIDDEN_SALOTTO = ("salotto.threads", "salotto.mail", "salotto.runtime", "salotto.transport", "salotto.clients")
_DYNAMIC_IMPORTERS = frozenset({"__import__", "import_module"})


def imported_modules(tree: ast.AST) -> list[tuple[int, str]]:
    """Every absolute module a file imports, with its line: statements and literal dynamic imports."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
        elif isinstance(node, ast.Call) and node.args:
            func = node.func
            name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
            first = node.args[0]
            if name in _DYNAMIC_IMPORTERS and isinstance(first, ast.Constant) and isinstance(first.value, str):
                found.append((node.lineno, first.value))
    return found


def forbidden_imports(source: str, filename: str) -> list[str]:
    tree = ast.parse(source, filename=filename)
    return [
        f"{filename}:{line}: {module}"
        for line, module in imported_modules(tree)
        if module.split(".", 1)[0] in FORBIDDEN
        or any(module == name or module.startswith(name + ".") for name in FORBIDDEN_SALOTTO)
    ]


def _layer_files() -> list[Path]:
    return sorted(path for layer in PURE_LAYERS for path in (SRC / layer).rglob("*.py"))


def test_layers_have_files() -> None:
    files = _layer_files()
    assert any(p.parent.name == "proto" for p in files)
    assert any(p.name == "message.py" for p in files)


@pytest.mark.parametrize("path", _layer_files(), ids=lambda p: str(p.relative_to(SRC)))
def test_pure_layers_do_no_io(path: Path) -> None:
    assert forbidden_imports(path.read_text(encoding="utf-8"), str(path.relative_to(SRC))) == []


@pytest.mark.parametrize(
    "source",
    [
        "import asyncio",
        "import os, socket",
        "import asyncio.events as ev",
        "from ssl import SSLContext",
        "from selectors import DefaultSelector",
        "def f():\n    import sqlite3",
        "if True:\n    from tkinter import ttk",
        "__import__('socket')",
        "import importlib\nimportlib.import_module('asyncio')",
        "import smtplib",
        "from concurrent.futures import ThreadPoolExecutor",
        "import threading",
        "from salotto.threads import ThreadOffload",
        "from salotto.mail import send_code",
    ],
)
def test_checker_catches_forbidden_imports(source: str) -> None:
    assert forbidden_imports(source, "example.py") != []


@pytest.mark.parametrize(
    "source",
    [
        "import re, typing",
        "from salotto.proto.message import parse",
        "from . import socket",  # a sibling module of ours, not the stdlib one
        "import asyncio_helpers",
        "x = 'import asyncio'",
    ],
)
def test_checker_allows_the_rest(source: str) -> None:
    assert forbidden_imports(source, "example.py") == []


# -- the seams (docs/architecture.md, "Seams") -------------------------------------------------------
# Handlers change nick and channel state only through the server's registries and deliver to others only
# through its backplane, so that a clustered implementation of those plugs in without touching them.
SEAM_CHECKED = [*sorted((SRC / "server" / "handlers").glob("*.py")), SRC / "server" / "accounts.py"]
# Attributes behind the seams: the fanout's own loop, a channel's member dict and invitations, MONITOR's index.
_BEHIND_SEAMS = frozenset({"deliver", "members", "invited", "monitors"})
# Server attributes that are views for tests and metrics only.
_SERVER_VIEWS = frozenset({"users", "channels"})
# Channel methods that change state the channel registry owns.
_CHANNEL_MUTATORS = frozenset({"set_status", "add", "discard"})


def seam_bypasses(source: str, filename: str, *, handler: bool) -> list[str]:
    """Where ``source`` reaches around the registries or the backplane."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source, filename=filename)):
        if not isinstance(node, ast.Attribute):
            continue
        owner = node.value
        owner_name = owner.id if isinstance(owner, ast.Name) else owner.attr if isinstance(owner, ast.Attribute) else ""
        if node.attr in _BEHIND_SEAMS:
            found.append(f"{filename}:{node.lineno}: .{node.attr}")
        elif node.attr in _SERVER_VIEWS and owner_name == "server":
            found.append(f"{filename}:{node.lineno}: server.{node.attr}")
        elif node.attr in _CHANNEL_MUTATORS and owner_name == "channel":
            found.append(f"{filename}:{node.lineno}: channel.{node.attr}")
        elif handler and node.attr == "write" and owner_name == "conn":
            found.append(f"{filename}:{node.lineno}: conn.write (to the sender: ctx; to others: the backplane)")
    return sorted(found, key=lambda entry: int(entry.split(":")[1]))


@pytest.mark.parametrize("path", SEAM_CHECKED, ids=lambda p: str(p.relative_to(SRC)))
def test_handlers_go_through_the_seams(path: Path) -> None:
    handler = path.parent.name == "handlers"
    assert seam_bypasses(path.read_text(encoding="utf-8"), str(path.relative_to(SRC)), handler=handler) == []


def test_the_seam_check_finds_a_bypass() -> None:
    source = (
        "def f(ctx, channel, out):\n"
        "    out.deliver(channel.members, exclude=ctx.client)\n"
        "    ctx.server.users.get('x')\n"
        "    channel.set_status(ctx.client, 'o')\n"
        "    ctx.client.conn.write(b'')\n"
    )
    found = seam_bypasses(source, "x.py", handler=True)
    assert [entry.split(": ", 1)[1].split(" ")[0] for entry in found] == [
        ".deliver", ".members", "server.users", "channel.set_status", "conn.write"]
