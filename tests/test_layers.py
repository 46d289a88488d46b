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
FORBIDDEN = frozenset({"asyncio", "socket", "sqlite3", "psycopg", "tkinter", "ssl", "selectors"})
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
