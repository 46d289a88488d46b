"""The TLS listener: a client speaking IRC over TLS chats with one on plaintext."""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import start_server, stop_server
from tests.irc_client import RawClient


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-days", "1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )
    return cert, key


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is needed to make a test certificate")
def test_tls_client_chats_with_plaintext_client(tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        tls_port = probe.getsockname()[1]
    server = start_server(tmp_path, "--tls-listen", f"127.0.0.1:{tls_port}", "--tls-cert-file", str(cert),
                          "--tls-key-file", str(key))
    try:
        context = ssl.create_default_context(cafile=str(cert))
        context.check_hostname = False
        secure = RawClient("127.0.0.1", tls_port, tls=context)
        secure.register("tlsuser")
        secure.expect("366")
        plain = server.client()
        plain.register("plainuser")
        plain.expect("366")
        secure.send("PRIVMSG #lobby :over tls")
        msg = plain.expect("PRIVMSG")
        assert msg.source.startswith("tlsuser!") and msg.params == ["#lobby", "over tls"]
        plain.send("PRIVMSG tlsuser :back in clear")
        assert secure.expect("PRIVMSG").params == ["tlsuser", "back in clear"]
        assert "(tls)" in server.log()
    finally:
        stop_server(server)


def test_tls_listener_without_certificate_is_a_config_error(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "salotto", "serve", "--tls-listen", "127.0.0.1:0"],
        capture_output=True, text=True, timeout=30,
    )
    assert result.returncode == 2
    assert "tls_listen" in result.stderr and "Traceback" not in result.stderr
