"""Web Push (soju.im/webpush) over real sockets: a ``salotto serve`` process, and a push service of the
test's own on 127.0.0.1 that receives the encrypted pushes. The test subscribes with keys it made, as a
browser would, checks the VAPID signature against the key ISUPPORT advertises, decrypts each push with
the subscription's private key and secret, and reads the IRC line inside. No traffic leaves the machine."""

from __future__ import annotations

import base64
import json
import os
import queue
import socket
import stat
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import http_ece  # type: ignore[import-untyped]
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from salotto.proto import Message, parse
from tests.conftest import RunningServer, start_server, stop_server
from tests.e2e.helpers import joined, wait_for_log
from tests.irc_client import RawClient
from tests.web.conftest import start_web_server

PASSWORD = "push-account-password"
# What the tests' endpoints on 127.0.0.1 over http need.
LOOPBACK_PUSH = ("--webpush-allow-http", "--webpush-allow-private-addresses")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float = field(default_factory=time.time)


class PushService:
    """A push service on 127.0.0.1: records every POST, answers 201 (or what ``status`` says per path)."""

    def __init__(self) -> None:
        self.received: queue.Queue[Received] = queue.Queue()
        self.status: dict[str, int] = {}
        # Requests wait for this before they are answered (set: at once); how many were in at once, at most.
        self.go = threading.Event()
        self.go.set()
        self.inside = 0
        self.most_inside = 0
        lock = threading.Lock()
        service = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                with lock:
                    service.inside += 1
                    service.most_inside = max(service.most_inside, service.inside)
                service.go.wait(30)
                with lock:
                    service.inside -= 1
                service.received.put(Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(service.status.get(self.path, 201))
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                return

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.http.server_address[1]
        self.thread = threading.Thread(target=self.http.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def next(self, timeout_s: float = 10.0) -> Received:
        try:
            return self.received.get(timeout=timeout_s)
        except queue.Empty:
            raise AssertionError("no push within the timeout") from None

    def nothing(self, wait_s: float = 1.0) -> None:
        try:
            got = self.received.get(timeout=wait_s)
        except queue.Empty:
            return
        raise AssertionError(f"an unexpected push to {got.path}")

    def close(self) -> None:
        self.go.set()
        self.http.shutdown()
        self.http.server_close()


@pytest.fixture
def push_service() -> Iterator[PushService]:
    service = PushService()
    yield service
    service.close()


class Subscriber:
    """A browser's side of one subscription: its ECDH key pair and auth secret (RFC 8291)."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.auth = os.urandom(16)

    @property
    def keys(self) -> str:
        public = self.key.public_key().public_bytes(serialization.Encoding.X962,
                                                    serialization.PublicFormat.UncompressedPoint)
        return f"p256dh={_b64(public)};auth={_b64(self.auth)}"

    def decrypt(self, push: Received) -> bytes:
        assert push.headers["content-encoding"] == "aes128gcm"
        data: bytes = http_ece.decrypt(push.body, private_key=self.key, auth_secret=self.auth, version="aes128gcm")
        return data


def check_vapid(push: Received, vapid: str, origin: str) -> dict[str, object]:
    """The push's VAPID Authorization (RFC 8292): signed by the key ISUPPORT advertised, for ``origin``,
    not expired. Returns its claims."""
    scheme, _, params = push.headers["authorization"].partition(" ")
    assert scheme == "vapid"
    fields = dict(part.strip().split("=", 1) for part in params.split(","))
    assert fields["k"] == vapid
    header, claims, signature = fields["t"].split(".")
    assert json.loads(_unb64(header)) == {"typ": "JWT", "alg": "ES256"}
    raw = _unb64(signature)
    public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), _unb64(vapid))
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    try:
        public.verify(der, f"{header}.{claims}".encode(), ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise AssertionError("the VAPID token's signature does not verify with the advertised key") from None
    decoded: dict[str, object] = json.loads(_unb64(claims))
    assert decoded["aud"] == origin
    exp = decoded["exp"]
    assert isinstance(exp, int) and time.time() < exp <= time.time() + 24 * 3600
    assert str(decoded["sub"]).startswith(("mailto:", "https://"))
    return decoded


def _register(server: RunningServer, nick: str, caps: tuple[str, ...] = ()) -> tuple[RawClient, list[Message]]:
    client = RawClient(server.host, server.port, timeout_s=10)
    start = client.register(nick, caps=list(caps) or None)
    rest = client.lines_until("366")
    return client, start + rest


def _vapid(lines: list[Message]) -> str:
    for msg in lines:
        if msg.command == "005":
            for token in msg.params[1:-1]:
                if token.startswith("VAPID="):
                    return token[len("VAPID="):]
    raise AssertionError("no VAPID in ISUPPORT")


def _always_on_account(server: RunningServer, nick: str) -> tuple[RawClient, str]:
    """A client registered as ``nick`` with an always-on account of that name, and the VAPID key."""
    client, lines = _register(server, nick, ("soju.im/webpush", "message-tags", "server-time"))
    acked = " ".join(m.params[-1] for m in lines if m.command == "CAP" and m.params[1] == "ACK")
    assert "soju.im/webpush" in acked.split()
    client.send(f"REGISTER * * :{PASSWORD}")
    client.expect("REGISTER", p0="SUCCESS")
    client.send("PRIVMSG NickServ :SET ALWAYS-ON ON")
    client.expect("NOTICE")
    return client, _vapid(lines)


def _subscribe(client: RawClient, subscriber: Subscriber) -> None:
    client.send(f"WEBPUSH REGISTER {subscriber.endpoint} {subscriber.keys}")
    assert client.expect("WEBPUSH").params == ["REGISTER", subscriber.endpoint]


def _leave(client: RawClient) -> None:
    client.send("QUIT :phone locked")
    client.expect("ERROR")
    client.close()


def _device(server: RunningServer, nick: str) -> RawClient:
    client = server.client()
    client.send("CAP LS 302")
    client.send("CAP REQ :sasl")
    client.expect("CAP", p1="ACK")
    client.send(f"NICK {nick}")
    client.send(f"USER {nick} 0 * :{nick}")
    client.send("AUTHENTICATE PLAIN")
    client.expect("AUTHENTICATE")
    client.send("AUTHENTICATE " + base64.b64encode(f"\0{nick}\0{PASSWORD}".encode()).decode())
    client.expect("903")
    client.send("CAP END")
    client.expect("366", p1="#lobby")
    return client


def _metrics(port: int) -> dict[str, float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    return {name: float(value) for name, _, value in
            (line.partition(" ") for line in text.splitlines() if line and not line.startswith("#"))}


def _line(subscriber: Subscriber, push: Received) -> Message:
    data = subscriber.decrypt(push)
    assert b"\r" not in data and b"\n" not in data
    return parse(data.decode())


def test_a_private_message_and_a_mention_reach_the_absent_account_as_pushes(
        tmp_path: Path, push_service: PushService) -> None:
    server = start_server(tmp_path, *LOOPBACK_PUSH)
    try:
        alice, vapid = _always_on_account(server, "alice")
        assert len(_unb64(vapid)) == 65 and _unb64(vapid)[0] == 4  # an uncompressed P-256 point
        phone = Subscriber(push_service.url("/push/alice-phone?token=1"))
        _subscribe(alice, phone)
        bob = joined(server, "bob")
        bob.send("PRIVMSG alice :while connected")  # alice is here: her client shows it, no push
        alice.expect("PRIVMSG")
        push_service.nothing(0.5)
        _leave(alice)

        bob.send("PRIVMSG alice :are you there?")
        push = push_service.next()
        assert push.path == "/push/alice-phone?token=1"
        check_vapid(push, vapid, f"http://127.0.0.1:{push_service.port}")
        assert push.headers["urgency"] == "high"
        assert int(push.headers["ttl"]) > 0
        line = _line(phone, push)
        assert (line.source, line.command) == ("bob!~bob@127.0.0.1", "PRIVMSG")
        assert line.params == ["alice", "are you there?"]
        assert line.tags["msgid"] and line.tags["time"].endswith("Z")

        bob.send("PRIVMSG #lobby :lunch, Alice?")
        push = push_service.next()
        assert push.headers["urgency"] == "normal"
        line = _line(phone, push)
        assert line.params == ["#lobby", "lunch, Alice?"]
        bob.send("PRIVMSG #lobby :malice and alice_bot are not her")  # not her nick as a word
        bob.send("NOTICE #lobby :nothing for alice's phone?")  # (a NOTICE mentioning her is one)
        line = _line(phone, push_service.next())
        assert line.command == "NOTICE" and line.params[1] == "nothing for alice's phone?"
        push_service.nothing(0.5)

        laptop = _device(server, "alice")  # a device is back: no pushes while it is on
        bob.send("PRIVMSG alice :now you are back")
        # (what she missed may be played back to the laptop before or after it: look for this one)
        assert laptop.expect("PRIVMSG", p1="now you are back").params == ["alice", "now you are back"]
        push_service.nothing(0.5)
        _leave(laptop)
        bob.send("PRIVMSG alice :gone again")
        assert _line(phone, push_service.next()).params == ["alice", "gone again"]
    finally:
        stop_server(server)


def test_a_subscription_the_push_service_calls_gone_is_dropped(tmp_path: Path, push_service: PushService) -> None:
    server = start_server(tmp_path, *LOOPBACK_PUSH)
    try:
        alice, _ = _always_on_account(server, "alice")
        expired = Subscriber(push_service.url("/expired"))
        kept = Subscriber(push_service.url("/kept"))
        _subscribe(alice, expired)
        _subscribe(alice, kept)
        push_service.status["/expired"] = 410
        _leave(alice)
        bob = joined(server, "bob")
        bob.send("PRIVMSG alice :first")
        paths = sorted(push_service.next().path for _ in range(2))
        assert paths == ["/expired", "/kept"]
        wait_for_log(server, "push subscription of alice dropped (the push service answered 410)")
        bob.send("PRIVMSG alice :second")
        assert push_service.next().path == "/kept"  # only the one still subscribed
        push_service.nothing(0.5)
    finally:
        stop_server(server)


def test_endpoints_the_server_must_not_post_to_are_refused(tmp_path: Path, push_service: PushService) -> None:
    server = start_server(tmp_path)  # the defaults: https only, public addresses only
    try:
        alice, _ = _always_on_account(server, "alice")
        keys = Subscriber("").keys
        for endpoint, why in [
            (push_service.url("/plain"), "https://"),
            ("https://127.0.0.1/push", "not a public one"),
            ("https://[::1]:8443/push", "not a public one"),
            ("https://10.1.2.3/push", "not a public one"),
            ("https://169.254.169.254/latest/meta-data", "not a public one"),
            ("https://[::ffff:192.168.0.1]/push", "not a public one"),
            ("https://localhost/push", "this machine"),
            ("https://user:pw@push.example/x", "no user name"),
            ("file:///etc/passwd", "https://"),
        ]:
            alice.send(f"WEBPUSH REGISTER {endpoint} {keys}")
            fail = alice.expect("FAIL")
            assert fail.params[:4] == ["WEBPUSH", "INVALID_PARAMS", "REGISTER", endpoint], fail
            assert why in fail.params[-1], (endpoint, fail.params[-1])
        alice.send("WEBPUSH REGISTER https://push.example/x p256dh=AAAA;auth=AAAA")
        assert alice.expect("FAIL").params[1] == "INVALID_PARAMS"  # keys that are no key
        alice.send("WEBPUSH REGISTER https://push.example/x")
        assert alice.expect("FAIL").params[1] == "INVALID_PARAMS"
        alice.send("WEBPUSH FROB https://push.example/x")
        assert alice.expect("FAIL").params[:3] == ["WEBPUSH", "INVALID_PARAMS", "FROB"]
        for line in ["WEBPUSH REGISTER :two words", "WEBPUSH UNREGISTER :", "WEBPUSH UNREGISTER ::x",
                     "WEBPUSH :", "WEBPUSH REGISTER https://push.example/x :p256dh", "WEBPUSH REGISTER a b c"]:
            alice.send(line)
            assert alice.expect("FAIL").params[:2] == ["WEBPUSH", "INVALID_PARAMS"], line
        stranger = joined(server, "stranger")  # no account
        stranger.send(f"WEBPUSH REGISTER https://push.example/x {keys}")
        assert stranger.expect("FAIL").params[1] == "ACCOUNT_REQUIRED"
    finally:
        stop_server(server)


def test_a_name_that_resolves_to_a_private_address_is_refused(tmp_path: Path, push_service: PushService) -> None:
    # The machine's own name resolves (from /etc/hosts) to one of its addresses: loopback or private.
    name = socket.gethostname()
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(name, push_service.port, type=socket.SOCK_STREAM)}
    except OSError:
        pytest.skip(f"this machine's name {name!r} does not resolve")
    assert addresses
    server = start_server(tmp_path, "--webpush-allow-http")  # http for the test, but no private addresses
    try:
        alice, _ = _always_on_account(server, "alice")
        endpoint = f"http://{name}:{push_service.port}/push"
        alice.send(f"WEBPUSH REGISTER {endpoint} {Subscriber(endpoint).keys}")
        fail = alice.expect("FAIL")
        assert fail.params[:4] == ["WEBPUSH", "INVALID_PARAMS", "REGISTER", endpoint]
        assert "not a public address" in fail.params[-1]
    finally:
        stop_server(server)


@pytest.mark.parametrize(("allowed_after", "logged"), [
    # loopback no longer allowed: the address is checked again at each push (as a name that resolves
    # otherwise by then would be), and nothing is sent
    ("--webpush-allow-http", "resolves to 127.0.0.1, not a public address"),
    # webpush_allow_http turned off: no cleartext POST (with its VAPID token) goes out any more
    ("--webpush-allow-private-addresses", "push subscription of alice dropped"),
], ids=["address", "http"])
def test_an_endpoint_no_longer_allowed_when_a_push_goes_drops_the_subscription(
        tmp_path: Path, push_service: PushService, allowed_after: str, logged: str) -> None:
    """Registered while the test's loopback http endpoint was allowed; the server restarts allowing only one
    of the two: the push is not sent, and the subscription is dropped (the next message does not try it)."""
    server = start_server(tmp_path, *LOOPBACK_PUSH)
    try:
        alice, _ = _always_on_account(server, "alice")
        _subscribe(alice, Subscriber(push_service.url("/push")))
        _leave(alice)
    finally:
        stop_server(server)
    server = start_server(tmp_path, allowed_after)
    try:
        bob = joined(server, "bob")
        bob.send("PRIVMSG alice :hello")
        wait_for_log(server, logged)
        push_service.nothing(0.5)
        bob.send("PRIVMSG alice :again")  # the subscription was dropped: not even tried
        push_service.nothing(1.0)
        assert len([line for line in server.log().splitlines() if logged in line]) == 1
    finally:
        stop_server(server)


def test_limits_subscriptions_rate_and_payload_size(tmp_path: Path, push_service: PushService) -> None:
    web = start_web_server(tmp_path, *LOOPBACK_PUSH, "--webpush-max-subscriptions-per-account", "2",
                           "--webpush-burst", "2", "--webpush-per-minute", "1")
    server = web.irc
    try:
        alice, _ = _always_on_account(server, "alice")
        first, second = Subscriber(push_service.url("/1")), Subscriber(push_service.url("/2"))
        _subscribe(alice, first)
        _subscribe(alice, second)
        _subscribe(alice, Subscriber(push_service.url("/2")))  # the same endpoint: replaced, not one more
        alice.send(f"WEBPUSH REGISTER {push_service.url('/3')} {first.keys}")
        fail = alice.expect("FAIL")
        assert fail.params[1] == "MAX_REGISTRATIONS" and "webpush_max_subscriptions_per_account" in fail.params[-1]
        alice.send(f"WEBPUSH UNREGISTER {push_service.url('/2')}")
        assert alice.expect("WEBPUSH").params == ["UNREGISTER", push_service.url("/2")]
        alice.send(f"WEBPUSH UNREGISTER {push_service.url('/never')}")  # silently fine
        assert alice.expect("WEBPUSH").params == ["UNREGISTER", push_service.url("/never")]
        _leave(alice)

        bob, _ = _register(server, "bob", ("message-tags",))
        big = "x" * 3900
        bob.send(f"@+example/big={big} PRIVMSG alice :{'y' * 400}")
        data = first.decrypt(push_service.next())
        assert len(data) <= 3993
        line = parse(data.decode())
        assert list(line.tags) == ["msgid"]  # every tag but msgid dropped to fit
        assert line.params == ["alice", "y" * 400]
        bob.send("PRIVMSG alice :two")
        assert _line(first, push_service.next()).params[1] == "two"
        bob.send("PRIVMSG alice :three")  # past the burst of 2 at 1 a minute: dropped
        push_service.nothing(1.0)
        metrics = _metrics(web.web_port)
        assert metrics["salotto_webpush_subscriptions"] == 1
        assert metrics["salotto_webpush_sent_total"] == 2
        assert metrics["salotto_webpush_rate_limited_total"] == 1
        assert metrics["salotto_webpush_failed_total"] == 0
    finally:
        stop_server(server)


@pytest.mark.parametrize("backend_name", ["sqlite", "postgresql"])
def test_a_restart_keeps_the_vapid_key_and_the_subscriptions(
        tmp_path: Path, push_service: PushService, backend_name: str, request: pytest.FixtureRequest) -> None:
    backend = [] if backend_name == "sqlite" else [
        "--storage-backend", "postgresql", "--storage-url", str(request.getfixturevalue("postgres_url"))]
    server = start_server(tmp_path, *LOOPBACK_PUSH, *backend)
    try:
        alice, vapid = _always_on_account(server, "alice")
        phone = Subscriber(push_service.url("/phone"))
        _subscribe(alice, phone)
        _leave(alice)
    finally:
        stop_server(server)
    key_file = tmp_path / "data" / "vapid-key.pem"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    server = start_server(tmp_path, *LOOPBACK_PUSH, *backend)
    try:
        bob, lines = _register(server, "bob")
        assert _vapid(lines) == vapid
        bob.send("PRIVMSG alice :after the restart")
        push = push_service.next()
        check_vapid(push, vapid, f"http://127.0.0.1:{push_service.port}")
        assert _line(phone, push).params == ["alice", "after the restart"]
    finally:
        stop_server(server)


def test_a_corrupt_vapid_key_is_a_startup_error_naming_the_file(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "vapid-key.pem").write_text("-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n")
    with pytest.raises(RuntimeError) as failed:
        start_server(tmp_path)
    assert str(data / "vapid-key.pem") in str(failed.value)
    server = start_server(tmp_path, "--no-webpush")  # push off: the file is not read
    stop_server(server)


def test_a_push_service_that_answers_a_byte_at_a_time_is_cut_off(tmp_path: Path) -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    stop = threading.Event()

    def drip() -> None:  # reads the push, then answers one byte every 0.3 s: each read waits less than the timeout
        conn, _ = listener.accept()
        with conn:
            conn.recv(65536)
            for byte in b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n":
                if stop.wait(0.3):
                    return
                try:
                    conn.sendall(bytes([byte]))
                except OSError:
                    return

    thread = threading.Thread(target=drip, daemon=True)
    thread.start()
    server = start_server(tmp_path, *LOOPBACK_PUSH, "--webpush-timeout-s", "1")
    try:
        alice, _ = _always_on_account(server, "alice")
        _subscribe(alice, Subscriber(f"http://127.0.0.1:{port}/slow"))
        _leave(alice)
        bob = joined(server, "bob")
        started = time.monotonic()
        bob.send("PRIVMSG alice :hello")
        failed = wait_for_log(server, "push to alice failed")
        assert time.monotonic() - started < 5  # the whole answer would take 13 s
        assert "no whole answer within 1.0 s (webpush_timeout_s)" in failed[0]
    finally:
        stop.set()
        stop_server(server)
        listener.close()


def test_a_subscription_made_under_another_nick_of_the_account_serves_the_absent_one(
        tmp_path: Path, push_service: PushService) -> None:
    server = start_server(tmp_path, *LOOPBACK_PUSH)
    try:
        alice, _ = _always_on_account(server, "alice")
        _leave(alice)  # alice stays, absent, with no subscription yet
        other = server.client()  # the same account under another nick: a user of its own, not a device
        other.send("CAP LS 302")
        other.send("CAP REQ :sasl")
        other.expect("CAP", p1="ACK")
        other.send("NICK alice_tablet")
        other.send("USER tablet 0 * :tablet")
        other.send("AUTHENTICATE PLAIN")
        other.expect("AUTHENTICATE")
        other.send("AUTHENTICATE " + base64.b64encode(f"\0alice\0{PASSWORD}".encode()).decode())
        other.expect("903")
        other.send("CAP END")
        other.expect("366", p1="#lobby")
        tablet = Subscriber(push_service.url("/tablet"))
        _subscribe(other, tablet)
        bob = joined(server, "bob")
        bob.send("PRIVMSG alice :the account has a connection: no push")
        push_service.nothing(0.5)
        _leave(other)
        bob.send("PRIVMSG alice :now nobody is on")
        assert _line(tablet, push_service.next()).params == ["alice", "now nobody is on"]
    finally:
        stop_server(server)


def test_pushes_in_flight_and_waiting_are_bounded(tmp_path: Path, push_service: PushService) -> None:
    web = start_web_server(tmp_path, *LOOPBACK_PUSH, "--webpush-max-concurrent", "1", "--webpush-max-queued", "1",
                           "--webpush-burst", "10", "--webpush-ttl-s", "600")
    server = web.irc
    try:
        alice, _ = _always_on_account(server, "alice")
        phone = Subscriber(push_service.url("/phone"))
        _subscribe(alice, phone)
        _leave(alice)
        push_service.go.clear()  # the push service holds every push until told
        bob = joined(server, "bob")
        for text in ("one", "two", "three"):  # one being sent, one waiting, the third dropped
            bob.send(f"PRIVMSG alice :{text}")
        bob.send("PING :sent")
        bob.expect("PONG")
        deadline = time.monotonic() + 10
        while push_service.inside < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _metrics(web.web_port)["salotto_webpush_queue_full_total"] == 1
        push_service.go.set()
        pushes = [push_service.next(), push_service.next()]
        push_service.nothing(0.5)
        assert [_line(phone, push).params[1] for push in pushes] == ["one", "two"]
        assert push_service.most_inside == 1  # webpush_max_concurrent
        assert pushes[0].headers["ttl"] == "600"
        wait_for_log(server, "dropped: webpush_max_queued")
    finally:
        stop_server(server)


def test_a_dropped_accounts_subscriptions_do_not_serve_whoever_registers_its_name_next(
        tmp_path: Path, push_service: PushService) -> None:
    server = start_server(tmp_path, *LOOPBACK_PUSH)
    try:
        alice, _ = _always_on_account(server, "alice")
        old_phone = Subscriber(push_service.url("/old-owner"))
        _subscribe(alice, old_phone)
        alice.send(f"PRIVMSG NickServ :DROP {PASSWORD}")
        assert "dropped" in alice.expect("NOTICE").params[-1]
        _leave(alice)
        newcomer, _ = _always_on_account(server, "alice")  # the name is free: someone else's account now
        _leave(newcomer)
        bob = joined(server, "bob")
        bob.send("PRIVMSG alice :for the new owner only")
        push_service.nothing(1.0)  # the old owner's phone must not get the new owner's messages
    finally:
        stop_server(server)


def test_ipv6_forms_that_carry_a_private_ipv4_address_are_refused(tmp_path: Path) -> None:
    """NAT64 (RFC 6052, and RFC 8215's local-use prefix), 6to4 and IPv4-compatible addresses reach the IPv4
    address inside them on networks that translate them (an IPv6-only host behind NAT64: 169.254.169.254)."""
    server = start_server(tmp_path)
    try:
        alice, _ = _always_on_account(server, "alice")
        keys = Subscriber("").keys
        for endpoint in ("https://[64:ff9b::a9fe:a9fe]/latest", "https://[64:ff9b::7f00:1]/push",
                         "https://[64:ff9b:1::a00:1]/push", "https://[2002:c0a8:1::1]/push",
                         "https://[::127.0.0.1]/push"):
            alice.send(f"WEBPUSH REGISTER {endpoint} {keys}")
            fail = alice.expect("FAIL")
            assert fail.params[:4] == ["WEBPUSH", "INVALID_PARAMS", "REGISTER", endpoint], fail
            assert "not a public one" in fail.params[-1], (endpoint, fail.params[-1])
    finally:
        stop_server(server)


def test_a_host_name_that_cannot_be_looked_up_is_refused_and_the_connection_goes_on(tmp_path: Path) -> None:
    """A name the IDNA codec refuses (a label over 63 characters, an empty one) fails before any DNS query,
    with a UnicodeError rather than an OSError: REGISTER must still be answered, and the next command too."""
    server = start_server(tmp_path)  # the defaults: the name is looked up off the loop
    try:
        alice, _ = _always_on_account(server, "alice")
        keys = Subscriber("").keys
        for endpoint in (f"https://{'a' * 64}.example/push", "https://a..example/push"):
            alice.send(f"WEBPUSH REGISTER {endpoint} {keys}")
            alice.send("PING :after")
            fail = alice.expect("FAIL", timeout_s=5)
            assert fail.params[:4] == ["WEBPUSH", "INVALID_PARAMS", "REGISTER", endpoint], fail
            assert alice.expect("PONG", timeout_s=5).params[-1] == "after"
    finally:
        stop_server(server)
