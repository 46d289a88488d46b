"""Starting and stopping the terminal clients under test, which are separate programs from Debian."""

from __future__ import annotations

import shutil
import subprocess

import pytest

__all__ = ["require_binary", "stop_process"]

# A client that ignores SIGTERM this long gets SIGKILL; all of ours exit within milliseconds.
TERMINATE_GRACE_S = 3.0


def require_binary(name: str, package: str) -> str:
    """The binary's path; skip the test (not fail it) when the package is not installed."""
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} not installed (apt-get install -y {package})")
    return path


def stop_process(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=TERMINATE_GRACE_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
