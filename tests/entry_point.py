"""The installed ``salotto`` command: the console script that installing the package puts beside Python.

Tests that check what a user types run this, not ``python -m salotto``: argparse behaves differently
under another program name, and the script is what README and the server's banner tell people to run.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

__all__ = ["path_without_the_venv", "salotto_command"]


def salotto_command() -> str:
    exe = Path(sys.executable).with_name("salotto")
    assert exe.is_file(), f"{exe} is missing: install salotto into this Python's environment (scripts/setup test)"
    return str(exe)


def path_without_the_venv() -> str:
    """PATH as in a fresh terminal after ./scripts/serve: the venv's bin directory (where salotto is) not on it."""
    venv_bin = Path(sys.executable).parent.resolve()
    dirs = os.environ.get("PATH", "").split(os.pathsep)
    return os.pathsep.join(d for d in dirs if d and Path(d).resolve() != venv_bin)
