"""The wheel ``pip install salotto`` would get: it must carry the web page, or the server it installs
serves no web chat.

The web client's files are package data (``pyproject.toml``'s ``package-data``), not modules: a
pattern that misses a new file, or a layout change, would ship a wheel without them while every other
test, run against the checkout's editable install, passes. So this one builds the wheel from a copy of
the source, installs it into a fresh virtual environment outside the checkout (its dependencies from the
package index pip is configured with), starts that environment's ``salotto serve`` and fetches every
file of the page over HTTP.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
import zipfile
from pathlib import Path

import pytest

CHECKOUT = Path(__file__).resolve().parents[1]
WEB = CHECKOUT / "src" / "salotto" / "clients" / "web"


def _run(*args: str | Path, cwd: Path, timeout_s: float = 240) -> str:
    result = subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=timeout_s,
                            env=_clean_env())
    assert result.returncode == 0, f"{args}: {result.stdout[-3000:]}{result.stderr[-3000:]}"
    return result.stdout


def _clean_env() -> dict[str, str]:
    """No trace of the checkout: nothing may import salotto from there instead of the installed wheel."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    venv_bin = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join(d for d in env.get("PATH", "").split(os.pathsep) if d and d != venv_bin)
    return env


# In the page's directory but not part of the page: what lets node load its scripts as modules (its unit tests).
_NOT_THE_PAGE = {"package.json"}


def _web_files() -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(WEB.iterdir())
            if p.is_file() and not p.name.startswith(".") and p.name not in _NOT_THE_PAGE}


@pytest.mark.timeout(400)
def test_the_wheel_installs_a_salotto_that_serves_the_real_web_page(tmp_path: Path) -> None:
    source = tmp_path / "source"
    source.mkdir()
    shutil.copytree(CHECKOUT / "src", source / "src",
                    ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "*.pyc"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(CHECKOUT / name, source / name)
    dist = tmp_path / "dist"
    _run(sys.executable, "-m", "pip", "wheel", ".", "--no-deps", "--no-build-isolation", "--quiet", "-w", dist,
         cwd=source)
    [wheel] = dist.glob("salotto-*.whl")
    web = _web_files()
    assert {"index.html", "main.js", "app.css"} <= set(web)
    with zipfile.ZipFile(wheel) as archive:
        shipped = {name.rpartition("/")[2] for name in archive.namelist() if name.startswith("salotto/clients/web/")}
    assert shipped == set(web), f"the wheel lacks {set(web) - shipped} (package-data in pyproject.toml)"

    venv = tmp_path / "venv"
    _run(sys.executable, "-m", "venv", venv, cwd=tmp_path)
    _run(venv / "bin" / "python", "-m", "pip", "install", "--quiet", wheel, cwd=tmp_path)
    where = _run(venv / "bin" / "python", "-c", "import salotto; print(salotto.__file__)", cwd=tmp_path)
    assert Path(where.strip()).is_relative_to(venv), where

    server = subprocess.Popen(
        [venv / "bin" / "salotto", "serve", "--listen", "127.0.0.1:0", "--web-listen", "127.0.0.1:0",
         "--data-dir", tmp_path / "data"],
        cwd=tmp_path, env=_clean_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        assert server.stdout is not None
        printed: list[str] = []
        deadline = time.monotonic() + 30
        url = None
        while url is None and time.monotonic() < deadline:
            line = server.stdout.readline()
            if not line:
                break
            printed.append(line)
            match = re.match(r"Web chat: (http://\S+/)$", line.strip())
            if match:
                url = match.group(1)
        assert url is not None, "".join(printed)
        page = _get(url)
        assert page == web["index.html"]
        for asset in ("app.css", "main.js", "favicon.svg"):
            assert f'"{asset}"'.encode() in page  # what the page asks for...
        for name, content in web.items():  # ...and every file of it, as in the source
            assert _get(url + name) == content, name
    finally:
        server.terminate()
        server.wait(timeout=30)
        if server.stdout is not None:
            server.stdout.close()
    assert server.returncode == 0


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.status == 200
        body: bytes = response.read()
    return body
