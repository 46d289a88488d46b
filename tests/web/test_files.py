"""File uploads on the web port (soju.im/FILEHOST) against a real server: upload, serve, limits, safety."""

from __future__ import annotations

import base64
import http.client
import socket
import time
import urllib.parse
from collections.abc import Iterator
from email.message import Message
from pathlib import Path

import pytest

from salotto.storage import open_storage
from salotto.storage.base import UploadRecord
from salotto.storage.files import LocalFileStore, new_file_id
from salotto.transport.files import SWEEP_BATCH
from tests.web.conftest import WebServer, start_web_server, stop_web_server
from tests.web.test_http import fetch

PASSWORD = "correct horse battery"
MAX_FILE = 200_000
QUOTA = 500_000
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40
CONFIG = f"""
upload_max_file_bytes = {MAX_FILE}
upload_max_account_bytes = {QUOTA}
upload_timeout_s = 3.0
upload_max_concurrent_per_ip = 2
login_attempts_per_ip = 1000
"""


@pytest.fixture(scope="module")
def files_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebServer]:
    server = start_web_server(tmp_path_factory.mktemp("files"), config_text=CONFIG)
    yield server
    stop_web_server(server)


def register(server: WebServer, name: str, password: str = PASSWORD) -> list[str]:
    """Register account ``name`` over IRC; the ISUPPORT tokens its connection was given."""
    client = server.irc.client()
    lines = client.register(name) + client.lines_until("376")
    client.send(f"REGISTER * * :{password}")
    client.expect("REGISTER", p0="SUCCESS")
    client.close()
    return [param for line in lines if line.command == "005" for param in line.params[1:-1]]


def basic(name: str, password: str = PASSWORD) -> str:
    return "Basic " + base64.b64encode(f"{name}:{password}".encode()).decode()


def upload(server: WebServer, body: bytes, *, auth: str | None, filename: str = "picture.png",
           content_type: str = "image/png", url: str | None = None) -> tuple[int, Message, bytes]:
    headers = {"Content-Type": content_type, "Content-Disposition": f'attachment; filename="{filename}"'}
    if auth is not None:
        headers["Authorization"] = auth
    conn = http.client.HTTPConnection("127.0.0.1", server.web_port, timeout=10)
    try:
        conn.request("POST", url or "/upload", body=body, headers=headers)
        response = conn.getresponse()
        return response.status, response.headers, response.read()
    finally:
        conn.close()


def stored_files(server: WebServer) -> list[Path]:
    root = server.irc.data_dir / "files"
    return sorted(path for path in root.rglob("*") if path.is_file())


def raw_request(server: WebServer, data: bytes) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.web_port), timeout=10)
    sock.sendall(data)
    return sock


def read_all(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    sock.close()
    return b"".join(chunks)


def test_filehost_is_advertised_and_options_say_what_may_be_posted(files_server: WebServer) -> None:
    tokens = register(files_server, "adv")
    assert f"soju.im/FILEHOST={files_server.url}upload" in tokens
    status, headers, body = fetch(files_server.url + "upload", method="OPTIONS")
    assert status == 204 and body == b""
    assert headers["Allow"] == "OPTIONS, POST"
    assert headers["Accept-Post"] == "*/*"
    # The page may show uploaded pictures and videos (from its own origin, nowhere else).
    csp = fetch(files_server.url)[1]["Content-Security-Policy"]
    assert "img-src 'self' data:;" in csp and "media-src 'self';" in csp


def test_an_upload_comes_back_the_same_with_safe_headers(files_server: WebServer) -> None:
    register(files_server, "alice")
    status, headers, body = upload(files_server, PNG, auth=basic("alice"), filename="holiday photo.png")
    assert status == 201, body
    location = headers["Location"]
    assert location.startswith(files_server.url + "files/") and location.endswith("/holiday_photo.png")
    assert body.decode().strip() == location
    status, headers, body = fetch(location)
    assert status == 200 and body == PNG
    assert headers["Content-Type"] == "image/png"
    assert headers["Content-Disposition"].startswith('inline; filename="holiday_photo.png"')
    assert headers["X-Content-Type-Options"] == "nosniff"
    csp = headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "sandbox" in csp and "script" not in csp
    assert headers["Cache-Control"] and int(headers["Content-Length"]) == len(PNG)
    status, _, body = fetch(location, headers={"If-None-Match": headers["ETag"]})
    assert status == 304 and body == b""
    # HEAD: the same headers, no body.
    status, headers, body = fetch(location, method="HEAD")
    assert status == 200 and body == b"" and int(headers["Content-Length"]) == len(PNG)
    # A byte range (video seeking), and one past the end.
    status, headers, body = fetch(location, headers={"Range": "bytes=8-17"})
    assert status == 206 and body == PNG[8:18] and headers["Content-Range"] == f"bytes 8-17/{len(PNG)}"
    status, headers, body = fetch(location, headers={"Range": "bytes=-5"})
    assert status == 206 and body == PNG[-5:]
    status, headers, body = fetch(location, headers={"Range": "bytes=0-"})  # what a video element asks first
    assert status == 206 and body == PNG and headers["Content-Range"] == f"bytes 0-{len(PNG) - 1}/{len(PNG)}"
    status, headers, _ = fetch(location, headers={"Range": f"bytes={len(PNG)}-"})
    assert status == 416 and headers["Content-Range"] == f"bytes */{len(PNG)}"
    for ignored in ("bytes=0-1,5-6", "lines=1-2", "bytes=x-"):  # not a form served: the whole file
        status, _, body = fetch(location, headers={"Range": ignored})
        assert status == 200 and body == PNG
    # The name in the URL is for people; the id finds the file; an unknown id does not.
    file_id = location.split("/")[-2]
    assert fetch(f"{files_server.url}files/{file_id}/other-name.txt")[2] == PNG
    assert fetch(f"{files_server.url}files/{'A' * 22}/holiday_photo.png")[0] == 404


@pytest.mark.parametrize(("name", "data", "claimed"), [
    ("page.html", b"<!doctype html><html><script>alert(document.cookie)</script></html>", "text/html"),
    ("logo.svg", b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>', "image/svg+xml"),
    ("notes.txt", "caff\u00e8 e cornetto\n".encode(), "text/plain"),
])
def test_html_and_svg_are_served_as_text_to_download(files_server: WebServer, name: str, data: bytes,
                                                     claimed: str) -> None:
    register(files_server, "mallory" + name.split(".")[1])
    status, headers, body = upload(files_server, data, auth=basic("mallory" + name.split(".")[1]), filename=name,
                                   content_type=claimed)
    assert status == 201, body
    status, headers, body = fetch(headers["Location"])
    assert status == 200 and body == data
    assert headers["Content-Type"] == "text/plain; charset=utf-8"  # never the type the uploader claimed
    assert headers["Content-Disposition"].startswith("attachment;")
    assert headers["X-Content-Type-Options"] == "nosniff" and "sandbox" in headers["Content-Security-Policy"]


def test_binary_of_no_known_type_is_an_octet_stream_attachment(files_server: WebServer) -> None:
    register(files_server, "binary")
    data = bytes([0, 1, 2, 3, 255, 254]) * 100
    status, headers, _ = upload(files_server, data, auth=basic("binary"), filename="blob.exe",
                                content_type="image/png")
    assert status == 201
    _, headers, body = fetch(headers["Location"])
    assert body == data and headers["Content-Type"] == "application/octet-stream"
    assert headers["Content-Disposition"].startswith('attachment; filename="blob.exe"')


def test_a_file_over_the_limit_is_refused_and_nothing_is_kept(files_server: WebServer) -> None:
    register(files_server, "big")
    before = stored_files(files_server)
    status, _, body = upload(files_server, PNG + bytes(MAX_FILE), auth=basic("big"))
    assert status == 413 and b"too big" in body and str(MAX_FILE).encode() in body
    status, _, body = upload(files_server, b"\x89PNG" + bytes(MAX_FILE - 4), auth=basic("big"))  # the limit: taken
    assert status == 201
    assert len(stored_files(files_server)) == len(before) + 1  # the refused one left nothing, not even a temp


def test_an_account_cannot_keep_more_than_its_quota(files_server: WebServer) -> None:
    register(files_server, "hoarder")
    register(files_server, "other")
    chunk = b"\x89PNG" + bytes(190_000)
    assert upload(files_server, chunk, auth=basic("hoarder"))[0] == 201
    assert upload(files_server, chunk, auth=basic("hoarder"))[0] == 201
    status, _, body = upload(files_server, chunk, auth=basic("hoarder"))
    assert status == 413 and b"of your 500000 bytes" in body
    assert upload(files_server, b"\x89PNG" + bytes(100_000), auth=basic("hoarder"))[0] == 201  # what fits
    assert upload(files_server, chunk, auth=basic("other"))[0] == 201  # a quota per account


def test_metrics_count_uploads(files_server: WebServer) -> None:
    register(files_server, "counted")
    def sample(name: str) -> float:
        text = fetch(files_server.url + "metrics")[2].decode()
        return float(next(line.split()[1] for line in text.splitlines() if line.startswith(name + " ")))

    before = {name: sample(name) for name in ("salotto_uploads_total", "salotto_upload_bytes_total",
                                              "salotto_uploads_refused_total")}
    assert upload(files_server, PNG, auth=basic("counted"))[0] == 201
    assert upload(files_server, PNG, auth=basic("counted", "wrong"))[0] == 401
    assert sample("salotto_uploads_total") == before["salotto_uploads_total"] + 1
    assert sample("salotto_upload_bytes_total") == before["salotto_upload_bytes_total"] + len(PNG)
    assert sample("salotto_uploads_refused_total") == before["salotto_uploads_refused_total"] + 1
    assert sample("salotto_uploads_in_progress") == 0


def test_uploads_need_the_accounts_password(files_server: WebServer) -> None:
    register(files_server, "carol")
    status, headers, body = upload(files_server, PNG, auth=None)
    assert status == 401 and headers["WWW-Authenticate"].startswith("Basic") and b"Log in" in body
    status, headers, body = upload(files_server, PNG, auth=basic("carol", "wrong password"))
    assert status == 401 and b"Invalid account name or password" in body
    assert upload(files_server, PNG, auth=basic("nobody-of-that-name"))[0] == 401
    assert upload(files_server, PNG, auth="Basic !!!notbase64")[0] == 401
    assert upload(files_server, PNG, auth=basic("carol"))[0] == 201


def test_names_and_urls_cannot_leave_their_directory(files_server: WebServer) -> None:
    register(files_server, "dave")
    status, headers, _ = upload(files_server, b"hello\n", auth=basic("dave"), filename="../../server-secret")
    assert status == 201
    location = headers["Location"]
    name = urllib.parse.unquote(location.rsplit("/", 1)[1])
    assert name == "server-secret" and "/files/" in location
    for path in ("files/../server-secret", "files/..%2f..%2fserver-secret/x", f"files/{'.' * 22}/x",
                 "files/" + "A" * 22 + "/../../server-secret", "files/%2e%2e/%2e%2e/server-secret"):
        status, _, body = fetch(files_server.url + path)
        assert status == 404, path
        assert b"secret" not in body or body.startswith(b"No such")
    for url in ("/files/x", "/upload/../files", "/upload/", "/"):
        status, headers, _ = upload(files_server, b"x", auth=basic("dave"), url=url)
        assert status == 405 and headers["Allow"] == "GET, HEAD"


def test_a_request_without_content_length_or_with_bad_headers_is_refused(files_server: WebServer) -> None:
    register(files_server, "erin")
    auth = basic("erin").encode()
    for head, status in [
        (b"POST /upload HTTP/1.1\r\nHost: x\r\nAuthorization: " + auth + b"\r\n\r\n", b"411"),
        (b"POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", b"411"),
        (b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello", b"400"),
        (b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n", b"400"),
        (b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", b"400"),
        (b"POST /upload HTTP/1.1\r\n bad header\r\n\r\n", b"400"),
        (b"POST /upload HTTP/1.1\r\nX: " + b"a" * 20000 + b"\r\n\r\n", b"431"),
        (b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Type: multipart/form-data; boundary=b"
         b"\r\n\r\nhello", b"415"),
        (b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: something\r\n\r\nhello", b"417"),
    ]:
        answer = read_all(raw_request(files_server, head))
        assert answer.startswith(b"HTTP/1.1 " + status), (head[:60], answer[:100])


def test_expect_100_continue_is_answered_before_the_body(files_server: WebServer) -> None:
    register(files_server, "frank")
    sock = raw_request(files_server, b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\nExpect: 100-continue"
                                     b"\r\nAuthorization: " + basic("frank").encode() + b"\r\n\r\n")
    assert sock.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"
    sock.sendall(b"hello\n")
    assert read_all(sock).startswith(b"HTTP/1.1 201 Created")


def test_a_slow_upload_is_cut_at_the_timeout_and_leaves_nothing(files_server: WebServer) -> None:
    register(files_server, "slow")
    before = stored_files(files_server)
    started = time.monotonic()
    sock = raw_request(files_server, b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\nAuthorization: "
                                     + basic("slow").encode() + b"\r\n\r\n" + b"a" * 10)
    for _ in range(2):
        time.sleep(0.5)
        sock.sendall(b"a")  # a trickle does not keep it alive
    answer = read_all(sock)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:100]
    assert 2.5 < time.monotonic() - started < 6
    assert stored_files(files_server) == before


def test_uploads_at_once_from_one_address_are_limited(files_server: WebServer) -> None:
    register(files_server, "busy")
    head = (b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\nAuthorization: " + basic("busy").encode()
            + b"\r\n\r\nabc")
    open_ones = [raw_request(files_server, head) for _ in range(2)]
    time.sleep(0.3)
    answer = read_all(raw_request(files_server, head))
    assert answer.startswith(b"HTTP/1.1 503") and b"from your address" in answer and b"Retry-After" in answer
    for sock in open_ones:
        sock.close()
    time.sleep(0.3)
    assert upload(files_server, PNG, auth=basic("busy"))[0] == 201  # their places are free again


def test_a_big_file_downloads_whole_to_a_slow_reader(files_server: WebServer) -> None:
    register(files_server, "video")
    data = b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 700
    status, headers, _ = upload(files_server, data, auth=basic("video"), filename="clip.mp4")
    assert status == 201
    path = urllib.parse.urlsplit(headers["Location"]).path
    sock = socket.create_connection(("127.0.0.1", files_server.web_port), timeout=10)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    time.sleep(0.5)  # the server's buffers fill; it waits rather than holding the file in memory
    answer = read_all(sock)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert b"Content-Type: video/mp4" in head and b"Content-Disposition: inline" in head
    assert body == data


@pytest.fixture(scope="module")
def strict_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebServer]:
    """Files kept 3 seconds, swept every half second; PNG only; two uploads at once in all; seven password
    tries (registrations count) per address and three per account, none given back by time during the tests;
    the test client is also a trusted proxy (X-Forwarded-For names other addresses)."""
    server = start_web_server(tmp_path_factory.mktemp("strict"), config_text="""
upload_retention_days = 0.000035
upload_sweep_interval_s = 0.5
upload_types = ["image/png"]
upload_max_concurrent = 2
login_attempts_per_ip = 7
login_attempts_per_account = 3
login_throttle_window_s = 36000
trusted_proxies = ["127.0.0.1"]
""")
    yield server
    stop_web_server(server)


def test_expired_files_are_swept_with_their_rows(strict_server: WebServer) -> None:
    register(strict_server, "brief")
    status, headers, _ = upload(strict_server, PNG, auth=basic("brief"))
    assert status == 201
    location = headers["Location"]
    assert fetch(location)[0] == 200 and len(stored_files(strict_server)) == 1
    deadline = time.monotonic() + 10
    while stored_files(strict_server) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert stored_files(strict_server) == []
    assert fetch(location)[0] == 404


def test_a_type_not_in_upload_types_is_refused(strict_server: WebServer) -> None:
    register(strict_server, "texter")
    status, _, body = upload(strict_server, b"just text\n", auth=basic("texter"), filename="a.txt")
    assert status == 415 and b"text/plain" in body
    assert fetch(strict_server.url + "upload", method="OPTIONS")[1]["Accept-Post"] == "image/png"
    assert [path for path in stored_files(strict_server) if "tmp" in path.parts] == []


def test_uploads_at_once_in_all_are_limited(strict_server: WebServer) -> None:
    head = (b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\nAuthorization: " + basic("brief").encode()
            + b"\r\n\r\n\x89PNG")
    open_ones = [raw_request(strict_server, head) for _ in range(2)]  # upload_max_concurrent_per_ip is 3
    time.sleep(0.5)
    answer = read_all(raw_request(strict_server, head))
    assert answer.startswith(b"HTTP/1.1 503") and b"on this server" in answer
    for sock in open_ones:
        sock.close()
    time.sleep(0.3)
    assert upload(strict_server, PNG, auth=basic("brief"))[0] == 201


def test_a_file_bigger_than_the_socket_buffers_reaches_a_reader_that_waits(strict_server: WebServer) -> None:
    """6 MB to a reader that takes nothing for a second: more than the sockets' buffers hold, so the server
    stops writing (flow control: it paused with some 2 MB left when this was written) and sends the rest, in
    order, once the reader reads."""
    data = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * (6_000_000 // 256)
    status, headers, _ = upload(strict_server, data, auth=basic("brief"), filename="big.png")
    assert status == 201
    path = urllib.parse.urlsplit(headers["Location"]).path
    sock = socket.create_connection(("127.0.0.1", strict_server.web_port), timeout=10)
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    time.sleep(1.0)
    head, _, body = read_all(sock).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and body == data
    # A record whose bytes are gone (a lost disk, a restore without the files) is a 404, not an error.
    for stored in stored_files(strict_server):
        stored.unlink()
    assert fetch(headers["Location"])[0] == 404


def test_guesses_from_many_addresses_share_the_accounts_limit(strict_server: WebServer) -> None:
    register(strict_server, "target")  # from 127.0.0.1: the owner's address from now on
    statuses = [upload_from(strict_server, f"10.0.{i}.1", basic("target", f"guess {i}"))[0] for i in range(40)]
    assert statuses == [401] * 3 + [429] * 37  # login_attempts_per_account, whatever the number of addresses
    assert upload_from(strict_server, "10.1.0.1", basic("target"))[0] == 429  # the right one too, from elsewhere
    assert upload(strict_server, PNG, auth=basic("target"))[0] == 201  # the owner's address is not locked out


def upload_from(server: WebServer, address: str, auth: str) -> tuple[int, Message, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", server.web_port, timeout=10)
    try:
        conn.request("POST", "/upload", body=PNG, headers={"Authorization": auth, "X-Forwarded-For": address})
        response = conn.getresponse()
        return response.status, response.headers, response.read()
    finally:
        conn.close()


def test_wrong_passwords_over_http_count_against_irc_logins_too(strict_server: WebServer) -> None:
    register(strict_server, "victim")  # the fourth registration (and the owner's upload gave its try back)
    for _ in range(3):
        assert upload(strict_server, PNG, auth=basic("victim", "guess"))[0] == 401
    status, headers, body = upload(strict_server, PNG, auth=basic("victim"))
    assert status == 429 and int(headers["Retry-After"]) > 0 and b"Too many login attempts" in body
    # The same bucket as SASL: this address may not guess over IRC either now.
    client = strict_server.irc.client()
    client.send("CAP REQ :sasl")
    client.send("NICK victim2")
    client.send("USER v 0 * :v")
    client.expect("CAP")
    client.send("AUTHENTICATE PLAIN")
    client.expect("AUTHENTICATE")
    client.send("AUTHENTICATE " + base64.b64encode(f"\0victim\0{PASSWORD}".encode()).decode())
    failure = client.expect("904")
    assert "too many attempts" in failure.params[-1]
    client.close()


def test_no_uploads_no_filehost(tmp_path: Path) -> None:
    server = start_web_server(tmp_path, config_text="uploads = false\n")
    try:
        assert not any(token.startswith("soju.im/FILEHOST") for token in register(server, "plain"))
        assert upload(server, PNG, auth=basic("plain"))[0] in (400, 405)
    finally:
        stop_web_server(server)


def test_a_wildcard_listener_without_upload_public_url_is_warned_about(tmp_path: Path) -> None:
    server = start_web_server(tmp_path, web_listen="0.0.0.0:0")
    try:
        tokens = register(server, "lan")
        filehost = next(token for token in tokens if token.startswith("soju.im/FILEHOST="))
        assert filehost.startswith("soju.im/FILEHOST=http://127.0.0.1:")
        assert "set upload_public_url" in server.irc.log()
    finally:
        stop_web_server(server)
    (tmp_path / "public").mkdir()
    public = start_web_server(tmp_path / "public", config_text='upload_public_url = "https://chat.example.org"\n')
    try:
        assert "soju.im/FILEHOST=https://chat.example.org/upload" in register(public, "pub")
        status, headers, _ = upload(public, PNG, auth=basic("pub"))
        assert status == 201 and headers["Location"].startswith("https://chat.example.org/files/")
        assert "upload_public_url" not in public.irc.log()
    finally:
        stop_web_server(public)


def test_a_content_length_of_digits_that_are_not_ascii_is_a_400(files_server: WebServer) -> None:
    """Latin-1 superscripts are digits to str.isdigit but not to int(): a clear 400, at once, no traceback."""
    register(files_server, "sup")
    started = time.monotonic()
    for length in (b"\xb2", b"1\xb3"):
        answer = read_all(raw_request(files_server, b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: " + length
                                      + b"\r\nAuthorization: " + basic("sup").encode() + b"\r\n\r\nab"))
        assert answer.startswith(b"HTTP/1.1 400") and b"Content-Length" in answer, answer[:100]
    assert time.monotonic() - started < 2
    assert "Traceback" not in files_server.irc.log()


def test_a_client_that_half_closes_after_its_body_still_gets_the_answer(files_server: WebServer) -> None:
    """A client may send its request and shut its side (``nc -N``, scripts): the answer still comes."""
    register(files_server, "halfclose")
    sock = raw_request(files_server, b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: " + str(len(PNG)).encode()
                       + b"\r\nAuthorization: " + basic("halfclose").encode() + b"\r\n\r\n" + PNG)
    sock.shutdown(socket.SHUT_WR)
    answer = read_all(sock)
    assert answer.startswith(b"HTTP/1.1 201"), answer[:100]
    path = urllib.parse.urlsplit(answer.partition(b"\r\n\r\n")[2].decode().strip()).path
    assert fetch(files_server.url + path.lstrip("/"))[2] == PNG
    # A download asked for the same way: the whole file comes.
    sock = raw_request(files_server, f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    sock.shutdown(socket.SHUT_WR)
    head, _, body = read_all(sock).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and body == PNG
    # A body cut short by the client's EOF is answered at once.
    started = time.monotonic()
    sock = raw_request(files_server, b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\nAuthorization: "
                       + basic("halfclose").encode() + b"\r\n\r\n" + PNG[:100])
    time.sleep(0.3)
    sock.shutdown(socket.SHUT_WR)
    assert read_all(sock).startswith(b"HTTP/1.1 400") and time.monotonic() - started < 2


def test_a_name_that_would_be_a_dot_segment_is_not_one(files_server: WebServer) -> None:
    """A Location ending in /. or /.. is a different URL to a browser (dot segments are removed): not a name."""
    register(files_server, "dots")
    for filename in ("_..", "__.", "_ .."):
        status, headers, _ = upload(files_server, b"hello\n", auth=basic("dots"), filename=filename)
        assert status == 201
        path = urllib.parse.urlsplit(headers["Location"]).path
        assert fetch(urllib.parse.urljoin(files_server.url, path))[0] == 200, path  # as a browser resolves it


def test_basic_credentials_that_are_not_ascii_are_a_401(files_server: WebServer) -> None:
    """Header values are Latin-1: a non-ASCII byte in the Basic token is bad credentials, not an exception."""
    register(files_server, "latin")
    answer = read_all(raw_request(files_server, b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                                                b"Authorization: Basic \xe9t\xe9\r\n\r\nhello"))
    assert answer.startswith(b"HTTP/1.1 401") and b"WWW-Authenticate: Basic" in answer, answer[:100]
    assert upload(files_server, PNG, auth=basic("latin"))[0] == 201  # (its place among the uploads is free)


def test_slow_downloads_cannot_take_every_place_on_the_web_port(tmp_path: Path) -> None:
    """A download lasts as long as its reader wants (a big video read slowly) and holds a place among the web
    port's pending connections: without a limit of their own, a few addresses reading slowly would leave no
    place for anyone's page load or WebSocket. Past download_max_concurrent(_per_ip): 503, and pages load."""
    server = start_web_server(tmp_path, config_text="""
max_pending_connections = 6
download_max_concurrent = 3
download_max_concurrent_per_ip = 2
trusted_proxies = ["127.0.0.1"]
""")
    slow: list[socket.socket] = []
    try:
        register(server, "streamer")
        data = b"\x00\x00\x00\x18ftypmp42" + bytes(8_000_000)
        status, headers, _ = upload(server, data, auth=basic("streamer"), filename="film.mp4")
        assert status == 201
        path = urllib.parse.urlsplit(headers["Location"]).path

        def download_from(address: str) -> socket.socket:
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.settimeout(10)
            sock.connect(("127.0.0.1", server.web_port))
            sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: {address}\r\n\r\n".encode())
            return sock

        for address in ("10.0.0.1", "10.0.0.1", "10.0.0.2"):  # readers that take (almost) nothing
            if address == "10.0.0.2":
                answer = read_all(download_from("10.0.0.1"))
                assert answer.startswith(b"HTTP/1.1 503") and b"from your address" in answer, answer[:100]
            sock = download_from(address)
            assert sock.recv(12) == b"HTTP/1.1 200"
            slow.append(sock)
        answer = read_all(download_from("10.0.0.3"))
        assert answer.startswith(b"HTTP/1.1 503") and b"download_max_concurrent" in answer, answer[:100]
        for _ in range(3):  # the page still loads, again and again
            assert fetch(server.url)[0] == 200
        slow.pop().close()
        time.sleep(0.3)
        sock = download_from("10.0.0.3")  # a place is free again
        assert sock.recv(12) == b"HTTP/1.1 200"
        slow.append(sock)
    finally:
        for sock in slow:
            sock.close()
        stop_web_server(server)


def test_a_backlog_of_expired_files_bigger_than_a_sweep_batch_is_swept_whole(tmp_path: Path) -> None:
    """Files that expired while the server was down, more than one batch of them (SWEEP_BATCH: each batch is
    one job of the writer, so logins and history never wait behind the whole backlog): all go, with their
    rows; a fresh one stays."""
    data_dir = tmp_path / "data"
    storage = open_storage("sqlite", data_dir)
    files = LocalFileStore(data_dir / "files")
    old = [UploadRecord(new_file_id(), "alice", "old.png", "image/png", len(PNG), 1000.0 + i)
           for i in range(2 * SWEEP_BATCH + 7)]
    fresh = UploadRecord(new_file_id(), "alice", "new.png", "image/png", len(PNG), time.time())
    for record in [*old, fresh]:
        handle, temp = files.temp_file()
        with handle:
            handle.write(PNG)
        files.put(record.id, temp)
        assert storage.add_upload(record, max_account_bytes=1 << 30)
    storage.close()
    server = start_web_server(tmp_path, config_text="upload_sweep_interval_s = 3600\n")
    try:
        deadline = time.monotonic() + 20
        while len(stored_files(server)) > 1 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert [path.name for path in stored_files(server)] == [fresh.id]
        assert fetch(server.url + f"files/{fresh.id}/new.png")[0] == 200
        assert fetch(server.url + f"files/{old[-1].id}/old.png")[0] == 404
    finally:
        stop_web_server(server)
