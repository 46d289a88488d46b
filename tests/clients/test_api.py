"""The client core's public API and its one rule: no GUI toolkit inside."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import salotto.clients.core as core

CORE_DIR = Path(core.__file__).parent
FORBIDDEN = {"tkinter", "_tkinter", "asyncio"}


def test_public_names() -> None:
    assert sorted(core.__all__) == sorted(
        ["COMMANDS", "SERVER_KEY", "Buffer", "BufferKind", "Change", "ChangeKind", "Client", "Completer",
         "InputHistory", "Line", "LineKind", "Member", "Preview", "SearchResult", "SearchResults", "Session",
         "SessionConfig", "Transfer", "UploadError"]
    )
    for name in core.__all__:
        assert hasattr(core, name)


def test_core_imports_no_gui() -> None:
    for path in CORE_DIR.glob("*.py"):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                assert name.split(".")[0] not in FORBIDDEN, f"{path.name} imports {name}"
    probe = "import sys, salotto.clients.core; print('tkinter' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True).stdout.strip() == "False"
