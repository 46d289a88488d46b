"""The TLS listener: a client speaking IRC over TLS chats with one on plaintext; the certificate is
re-read on SIGHUP and REHASH (new connections get the new one, open ones keep theirs), and a renewal
that cannot be loaded keeps the certificate in use and says why."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import pytest

from salotto.passwords import hash_password
from tests.conftest import RunningServer, start_server, stop_server
from tests.irc_client import RawClient
from tests.tls_certs import client_context, der_of, make_certificate, needs_openssl


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


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _wait_for_log(server: RunningServer, text: str, count: int = 1, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while server.log().count(text) < count:
        if time.monotonic() > deadline:
            raise AssertionError(f"{text!r} not logged {count} time(s): {server.log()[-2000:]}")
        time.sleep(0.02)


def _install(source: tuple[Path, Path], target: tuple[Path, Path]) -> None:
    """Overwrite the served files in place, as a renewal does."""
    for src, dst in zip(source, target, strict=True):
        dst.write_bytes(src.read_bytes())


OPER_PASSWORD = "renew it"


@needs_openssl
def test_sighup_and_rehash_renew_the_certificate_for_new_connections(tmp_path: Path) -> None:
    first, second, third = (make_certificate(tmp_path, name) for name in ("first", "second", "third"))
    served = (tmp_path / "served.pem", tmp_path / "served.key")
    _install(first, served)
    tls_port = _free_port()
    oper_hash = hash_password(OPER_PASSWORD, n=2**10)
    server = start_server(tmp_path, "--tls-listen", f"127.0.0.1:{tls_port}", "--tls-cert-file", str(served[0]),
                          "--tls-key-file", str(served[1]),
                          config_text=f'[opers.admin]\npassword_hash = "{oper_hash}"\n')
    trust_all = client_context(first[0], second[0], third[0])

    def connect(nick: str) -> RawClient:
        client = RawClient("127.0.0.1", tls_port, tls=trust_all)
        client.register(nick)
        client.expect("376")
        return client

    def presented(client: RawClient) -> bytes | None:
        assert isinstance(client.sock, ssl.SSLSocket)
        return client.sock.getpeercert(binary_form=True)

    try:
        early = connect("early")
        assert presented(early) == der_of(first[0])

        # Renewed in place, then SIGHUP (what a certbot deploy hook does): new connections get it.
        _install(second, served)
        server.process.send_signal(signal.SIGHUP)
        _wait_for_log(server, "TLS certificate renewed")
        late = connect("late")
        assert presented(late) == der_of(second[0])
        # The connection made before goes on, with the certificate it started with.
        assert presented(early) == der_of(first[0])
        early.send("PRIVMSG late :still here")
        assert late.expect("PRIVMSG").params == ["late", "still here"]

        # A renewal half done (the new certificate with the old key): refused, the certificate in use stays.
        served[0].write_bytes(third[0].read_bytes())
        server.process.send_signal(signal.SIGHUP)
        _wait_for_log(server, "rehash failed")
        assert "key values mismatch" in server.log()
        assert "new connections still get the certificate loaded before" in server.log()
        assert presented(connect("after_bad")) == der_of(second[0])

        # REHASH as an operator: a missing file is named in the answer, and the old certificate stays.
        late.send(f"OPER admin :{OPER_PASSWORD}")
        late.expect("381")
        os.unlink(served[1])
        late.send("REHASH")
        late.expect("382")
        refused = late.expect("NOTICE")
        assert "REHASH failed" in refused.params[-1] and "No such file or directory" in refused.params[-1]
        assert presented(connect("still_second")) == der_of(second[0])
        _install(third, served)
        late.send("REHASH")
        late.expect("382")
        _wait_for_log(server, "TLS certificate renewed", count=2)
        assert presented(connect("third_one")) == der_of(third[0])
        early.send("PING :alive")
        assert early.expect("PONG").params[-1] == "alive"
        for client in (early, late):
            client.close()
    finally:
        stop_server(server)


def _offered_sts(client: RawClient) -> str | None:
    client.send("CAP LS 302")
    caps = client.expect("CAP").params[-1].split()
    return next((item.partition("=")[2] for item in caps if item.partition("=")[0] == "sts"), None)


@needs_openssl
def test_sts_sends_plaintext_clients_to_the_tls_port_it_listens_on(tmp_path: Path) -> None:
    cert, key = make_certificate(tmp_path, "sts")
    # Port 0: the port advertised is the one bound, read back from the announcement.
    server = start_server(tmp_path, "--tls-listen", "127.0.0.1:0", "--tls-cert-file", str(cert),
                          "--tls-key-file", str(key), "--sts-duration-s", "2592000")
    try:
        assert server.process.stdout is not None
        announced = server.process.stdout.readline()
        assert "(IRC over TLS)" in announced
        tls_port = int(announced.split("listening on 127.0.0.1:")[1].split()[0])
        plain = server.client()
        assert _offered_sts(plain) == f"port={tls_port}"
        # A client honouring it reconnects there, over TLS, and learns the persistence policy.
        secure = RawClient("127.0.0.1", tls_port, tls=client_context(cert))
        assert _offered_sts(secure) == "duration=2592000"
        for client in (plain, secure):
            client.close()
    finally:
        stop_server(server)
