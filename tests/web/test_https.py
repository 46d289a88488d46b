"""The web port over TLS (web_tls_listen), without a proxy: the page, /healthz, /metrics and IRC over WSS,
from real TLS clients (Python's ssl, the websockets client, Chromium); the certificate renews on SIGHUP."""

from __future__ import annotations

import base64
import http.client
import re
import signal
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from websockets.sync.client import connect

from salotto.proto import parse
from tests.conftest import RunningServer, start_server, stop_server
from tests.tls_certs import client_context, der_of, make_certificate, needs_openssl

pytestmark = needs_openssl

TIMEOUT_S = 10.0


@dataclass
class HttpsServer:
    irc: RunningServer
    url: str  # https://127.0.0.1:PORT/
    served: tuple[Path, Path]  # the certificate and key files the server reads
    certificates: dict[str, tuple[Path, Path]]

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1].strip("/"))


@pytest.fixture(scope="module")
def https_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HttpsServer]:
    tmp_path = tmp_path_factory.mktemp("https")
    certificates = {name: make_certificate(tmp_path, name) for name in ("first", "second")}
    served = (tmp_path / "served.pem", tmp_path / "served.key")
    for source, target in zip(certificates["first"], served, strict=True):
        target.write_bytes(source.read_bytes())
    irc = start_server(tmp_path, "--web-tls-listen", "127.0.0.1:0", "--tls-cert-file", str(served[0]),
                       "--tls-key-file", str(served[1]))
    assert irc.process.stdout is not None
    url = None
    deadline = time.monotonic() + TIMEOUT_S
    while url is None and time.monotonic() < deadline:
        match = re.search(r"Web chat: (\S+)", irc.process.stdout.readline())
        url = match.group(1) if match else None
    if url is None:
        stop_server(irc)
        raise RuntimeError(f"no web chat URL printed: {irc.log()}")
    yield HttpsServer(irc, url, served, certificates)
    stop_server(irc)


def trusting(server: HttpsServer) -> ssl.SSLContext:
    return client_context(*(cert for cert, _ in server.certificates.values()))


def get(server: HttpsServer, path: str) -> tuple[http.client.HTTPResponse, bytes, bytes | None]:
    """GET over HTTPS: the response, its body and the certificate the server presented."""
    conn = http.client.HTTPSConnection("127.0.0.1", server.port, timeout=TIMEOUT_S, context=trusting(server))
    try:
        conn.request("GET", path, headers={"Host": f"localhost:{server.port}"})
        assert isinstance(conn.sock, ssl.SSLSocket)
        presented = conn.sock.getpeercert(binary_form=True)
        response = conn.getresponse()
        return response, response.read(), presented
    finally:
        conn.close()


def test_the_url_printed_is_https(https_server: HttpsServer) -> None:
    assert https_server.url.startswith("https://127.0.0.1:")


def test_page_healthz_and_metrics_over_https(https_server: HttpsServer) -> None:
    response, body, _ = get(https_server, "/")
    assert response.status == 200
    assert b"<title>salotto</title>" in body
    assert "script-src 'self'" in (response.getheader("Content-Security-Policy") or "")
    response, body, _ = get(https_server, "/healthz")
    assert (response.status, body) == (200, b"ok\n")
    response, body, _ = get(https_server, "/metrics")
    assert response.status == 200 and b"salotto_connections" in body


def test_plain_http_on_the_tls_port_gets_no_page(https_server: HttpsServer) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", https_server.port, timeout=TIMEOUT_S)
    try:
        conn.request("GET", "/")
        with pytest.raises((http.client.HTTPException, ConnectionError)):
            conn.getresponse().read()
    finally:
        conn.close()


def wss_client(server: HttpsServer) -> Any:
    ws_url = "wss://localhost:" + str(server.port) + "/irc"
    # max_queue=None: frames the test does not read must not stop the client reading (the close frame).
    return connect(ws_url, ssl=trusting(server), subprotocols=["text.ircv3.net"],
                   open_timeout=TIMEOUT_S, origin=f"https://localhost:{server.port}", max_queue=None)


def ws_expect(ws: Any, command: str) -> Any:
    deadline = time.monotonic() + TIMEOUT_S
    while True:
        msg = parse(ws.recv(timeout=max(0.01, deadline - time.monotonic())))
        if msg.command == command:
            return msg


def test_irc_over_wss_and_a_renewed_certificate(https_server: HttpsServer) -> None:
    first, second = https_server.certificates["first"], https_server.certificates["second"]
    with wss_client(https_server) as early:
        assert early.subprotocol == "text.ircv3.net"
        early.send("NICK wssuser")
        early.send("USER wssuser 0 * :over wss")
        assert ws_expect(early, "001").params[0] == "wssuser"
        assert early.socket.getpeercert(binary_form=True) == der_of(first[0])

        for source, target in zip(second, https_server.served, strict=True):
            target.write_bytes(source.read_bytes())
        https_server.irc.process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + TIMEOUT_S
        while "TLS certificate renewed" not in https_server.irc.log():
            assert time.monotonic() < deadline, https_server.irc.log()
            time.sleep(0.02)
        _, _, presented = get(https_server, "/healthz")
        assert presented == der_of(second[0])
        with wss_client(https_server) as late:
            late.send("NICK wsslate")
            late.send("USER wsslate 0 * :over wss")
            ws_expect(late, "001")
            assert late.socket.getpeercert(binary_form=True) == der_of(second[0])
            # The WebSocket opened before the renewal goes on.
            early.send("PRIVMSG wsslate :still here")
            assert ws_expect(late, "PRIVMSG").params == ["wsslate", "still here"]


def test_the_page_chats_over_https_in_chromium(https_server: HttpsServer, browser: Any) -> None:
    # The test certificate is self-signed: Chromium is told to accept it, as a user would add the CA.
    context = browser.new_context(ignore_https_errors=True, viewport={"width": 1200, "height": 760})
    try:
        from playwright.sync_api import expect

        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(https_server.url.replace("127.0.0.1", "localhost"))
        page.locator("#nick-input").fill("secureweb")
        page.locator("#nick-input").press("Enter")
        expect(page.locator("#buffer-title")).to_have_text("#lobby", timeout=8000)
        expect(page.locator("#nick-list")).to_contain_text("secureweb", timeout=8000)
        assert page.evaluate("location.protocol") == "https:"
        assert not errors, errors
    finally:
        context.close()


def test_upload_and_download_over_https(https_server: HttpsServer) -> None:
    """FILEHOST and the file's Location are https:// on the TLS port; the file comes back over TLS."""
    client = https_server.irc.client()
    lines = client.register("uploader") + client.lines_until("376")
    client.send("REGISTER * * :a good password")
    client.expect("REGISTER", p0="SUCCESS")
    client.close()
    tokens = [param for line in lines if line.command == "005" for param in line.params[1:-1]]
    assert f"soju.im/FILEHOST={https_server.url}upload" in tokens
    context = trusting(https_server)
    conn = http.client.HTTPSConnection("127.0.0.1", https_server.port, timeout=TIMEOUT_S, context=context)
    body = b"GIF89a" + bytes(3000)
    try:
        conn.request("POST", "/upload", body=body, headers={
            "Host": f"localhost:{https_server.port}", "Content-Disposition": 'attachment; filename="a.gif"',
            "Authorization": "Basic " + base64.b64encode(b"uploader:a good password").decode()})
        response = conn.getresponse()
        assert response.status == 201, response.read()
        location = response.getheader("Location") or ""
    finally:
        conn.close()
    assert location.startswith(f"https://localhost:{https_server.port}/files/") and location.endswith("/a.gif")
    response, served, _ = get(https_server, location.split(str(https_server.port), 1)[1])
    assert response.status == 200 and served == body and response.getheader("Content-Type") == "image/gif"
