"""``salotto init --systemd``: a unit that runs this salotto as a hardened service, valid for systemd.

``systemd-analyze verify`` checks the unit as systemd would load it (syntax, specifiers, that ExecStart's
program exists and is executable); it needs no running systemd. ``systemd-analyze security --offline``
scores its hardening.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from salotto.service import DATA_DIR, DEFAULT_CONFIG, systemd_quote, unit
from tests.entry_point import salotto_command


def init_systemd(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([salotto_command(), "init", "--systemd", *args], capture_output=True, text=True,
                          timeout=30, cwd=cwd)


def directives(text: str) -> list[tuple[str, str, str]]:
    """(section, key, value) of every setting, in order (a key may repeat, as SystemCallFilter= does)."""
    found: list[tuple[str, str, str]] = []
    section = ""
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        found.append((section, key, value))
    return found


def service(text: str) -> dict[str, str]:
    return {key: value for section, key, value in directives(text) if section == "Service"}


def test_the_unit_runs_this_salotto_as_its_own_user_with_the_usual_hardening() -> None:
    result = init_systemd()
    assert result.returncode == 0, result.stderr
    settings = service(result.stdout)
    assert settings["ExecStart"] == f"{salotto_command()} serve --config {DEFAULT_CONFIG} --data-dir {DATA_DIR}"
    assert settings["ExecReload"] == "/bin/kill -HUP $MAINPID"  # SIGHUP reloads the config
    expected = {
        "DynamicUser": "yes", "StateDirectory": "salotto", "ProtectSystem": "strict", "ProtectHome": "yes",
        "NoNewPrivileges": "yes", "PrivateTmp": "yes", "CapabilityBoundingSet": "", "AmbientCapabilities": "",
        "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX", "UMask": "0077",
    }
    assert {key: settings.get(key) for key in expected} == expected
    assert ("Install", "WantedBy", "multi-user.target") in directives(result.stdout)
    # The program it names is this salotto, and runs.
    version = subprocess.run([settings["ExecStart"].split()[0], "--version"], capture_output=True, text=True,
                             timeout=30)
    assert version.returncode == 0 and version.stdout.startswith("salotto ")


def test_a_system_user_and_a_config_file_of_ones_own(tmp_path: Path) -> None:
    result = init_systemd("--user", "chat", "--config", "conf/salotto.toml", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    settings = service(result.stdout)
    assert (settings["User"], settings["Group"]) == ("chat", "chat")
    assert "DynamicUser" not in settings
    assert f"--config {tmp_path / 'conf' / 'salotto.toml'} " in settings["ExecStart"]  # absolute: systemd's cwd is /
    result = init_systemd("--user", "Robert'); DROP")
    assert result.returncode == 2 and "not a system user name" in result.stderr


def test_output_writes_the_same_unit_and_keeps_an_existing_file(tmp_path: Path) -> None:
    printed = init_systemd().stdout
    path = tmp_path / "salotto.service"
    result = init_systemd("--output", str(path))
    assert result.returncode == 0, result.stderr
    assert path.read_text() == printed
    assert "systemctl enable --now salotto" in result.stdout
    path.write_text("mine")
    result = init_systemd("--output", str(path))
    assert result.returncode == 1 and "--force" in result.stderr and "Traceback" not in result.stderr
    assert path.read_text() == "mine"
    assert init_systemd("--output", str(path), "--force").returncode == 0
    assert path.read_text() == printed


def test_init_without_systemd_refuses_the_unit_flags(tmp_path: Path) -> None:
    result = subprocess.run([salotto_command(), "init", "--output", "x.service"], capture_output=True, text=True,
                            timeout=30, cwd=tmp_path)
    assert result.returncode == 2 and "go with --systemd" in result.stderr
    result = init_systemd("salotto.toml", cwd=tmp_path)
    assert result.returncode == 2 and "--output FILE" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_exec_start_quotes_what_systemd_would_read_otherwise() -> None:
    assert systemd_quote("/opt/salotto/bin/salotto") == "/opt/salotto/bin/salotto"
    assert systemd_quote("/opt/my salotto/bin/salotto") == '"/opt/my salotto/bin/salotto"'
    assert systemd_quote("/srv/100%/salotto") == "/srv/100%%/salotto"  # % starts a specifier
    assert systemd_quote("/srv/$HOME/x") == '"/srv/$$HOME/x"'  # $ a variable
    assert systemd_quote("/srv/$HOME/x", program=True) == '"/srv/$HOME/x"'  # but not in the program's path
    assert systemd_quote('a"b\\c') == '"a\\"b\\\\c"'


def _systemd_analyze() -> str:
    found = shutil.which("systemd-analyze")
    if found is None:
        pytest.skip("systemd-analyze is not installed (Debian package systemd)")
    probe = subprocess.run([found, "--version"], capture_output=True, text=True, timeout=30)
    if probe.returncode != 0:
        pytest.skip(f"systemd-analyze cannot run here: {probe.stderr.strip()}")
    return found


def _verify(path: Path) -> None:
    result = subprocess.run([_systemd_analyze(), "verify", str(path)], capture_output=True, text=True, timeout=60)
    # Only what it says about this unit: other units installed on the machine may have their own problems.
    about_ours = [line for line in (result.stdout + result.stderr).splitlines() if path.name in line]
    assert result.returncode == 0 and about_ours == [], result.stdout + result.stderr


def test_systemd_analyze_verify_accepts_the_unit(tmp_path: Path) -> None:
    path = tmp_path / "salotto.service"
    assert init_systemd("--output", str(path)).returncode == 0
    _verify(path)
    # Its hardening scores "OK" or better (exposure 2.0 or lower, of 10).
    result = subprocess.run([_systemd_analyze(), "security", "--offline=yes", "--threshold=20", str(path)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr


def test_systemd_analyze_verify_accepts_an_odd_install_path(tmp_path: Path) -> None:
    """A path with a space, a % and a $ reaches systemd as the same path: verify finds the program there."""
    odd = tmp_path / "my salotto 100% $x"
    odd.mkdir()
    os.symlink(salotto_command(), odd / "salotto")
    path = tmp_path / "odd.service"
    path.write_text(unit([str(odd / "salotto")], str(odd / "salotto.toml")))
    _verify(path)
    missing = tmp_path / "missing.service"
    missing.write_text(unit([str(tmp_path / "no such dir" / "salotto")]))
    with pytest.raises(AssertionError, match="is not executable"):
        _verify(missing)
