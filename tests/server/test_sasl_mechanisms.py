"""SASL mechanisms in memory: PLAIN and EXTERNAL payloads, and SCRAM-SHA-256 against scramp's client."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scramp import ScramClient

import salotto.server.sasl as sasl
from salotto.passwords import SCRAM_ITERATIONS, SCRAM_MIN_ITERATIONS, ScramCredentials, scram_keys
from salotto.server.sasl import MECHANISMS, ScramResult, ScramServer, parse_external, parse_plain

_SALT = bytes(range(16))
_SECRET = b"server secret, 32 bytes long...."


# The exchange is the same whatever the rounds; RFC 7677's floor keeps these tests (and the property test
# below, which runs hundreds of exchanges) quick. What the server stores by default is tested in
# tests/test_passwords.py.
def _credentials(password: str, iterations: int = SCRAM_MIN_ITERATIONS) -> ScramCredentials:
    stored_key, server_key = scram_keys(password, _SALT, iterations)
    return ScramCredentials(_SALT, iterations, stored_key, server_key)


_ACCOUNTS = {"user": _credentials("pencil"), "a,b=c": _credentials("pencil"),
             "stored": _credentials("pencil", SCRAM_ITERATIONS)}  # as the server stores an account
_SERVER_FIRST = re.compile(r"r=([\x21-\x2b\x2d-\x7e]+),s=([A-Za-z0-9+/]+={0,2}),i=(\d+)")


def _server(looked_up: list[str] | None = None) -> ScramServer:
    def lookup(name: str) -> ScramCredentials | None:
        if looked_up is not None:
            looked_up.append(name)
        return _ACCOUNTS.get(name.lower())

    return ScramServer(lookup, _SECRET, nonce=lambda: "SERVERNONCE")


def _client(username: str = "user", password: str = "pencil") -> ScramClient:
    return ScramClient(["SCRAM-SHA-256"], username, password, c_nonce="CLIENTNONCE")


def _to_final(server: ScramServer, client: ScramClient) -> ScramResult:
    """Run the exchange up to the server's answer to the client-final message."""
    first = server.step(client.get_client_first().encode())
    assert first.challenge is not None and first.error is None and not first.done
    client.set_server_first(first.challenge.decode())
    return server.step(client.get_client_final().encode())


def _failed(result: ScramResult, reason: str) -> bool:
    return result == ScramResult(done=True, error=reason)


# ---- a hand-rolled client, for the messages scramp won't send (y flag, authzid, tampering) ----


def _hand_client_final(client_first: str, server_first: str, password: str, c_attr: str | None = None) -> str:
    """RFC 5802 section 3 from the formulas, with hashlib: the client-final message for ``client_first``."""
    gs2_header = ",".join(client_first.split(",")[:2]) + ","
    bare = client_first[len(gs2_header) :]
    nonce, salt_b64, iterations = _SERVER_FIRST.fullmatch(server_first).groups()  # type: ignore[union-attr]
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), base64.b64decode(salt_b64), int(iterations))
    client_key = hmac.digest(salted, b"Client Key", "sha256")
    c_attr = c_attr if c_attr is not None else base64.b64encode(gs2_header.encode()).decode()
    without_proof = f"c={c_attr},r={nonce}"
    auth_message = f"{bare},{server_first},{without_proof}".encode()
    signature = hmac.digest(hashlib.sha256(client_key).digest(), auth_message, "sha256")
    proof = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
    return f"{without_proof},p={base64.b64encode(proof).decode()}"


def _hand_exchange(client_first: str, password: str = "pencil") -> ScramResult:
    server = _server()
    first = server.step(client_first.encode())
    assert first.challenge is not None, first
    return server.step(_hand_client_final(client_first, first.challenge.decode(), password).encode())


# ---- API, PLAIN, EXTERNAL ----


def test_public_api() -> None:
    assert [name for name in sasl.__all__ if not hasattr(sasl, name)] == []
    assert set(MECHANISMS) == {"PLAIN", "SCRAM-SHA-256", "EXTERNAL"}


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (b"\0jilles\0sesame", ("", "jilles", "sesame")),
        (b"jilles\0jilles\0sesame", ("jilles", "jilles", "sesame")),
        (b"admin\0jilles\0sesame", ("admin", "jilles", "sesame")),  # the caller refuses the authzid
        ("\0zoë\0pässword with spaces".encode(), ("", "zoë", "pässword with spaces")),
    ],
)
def test_parse_plain(payload: bytes, expected: tuple[str, str, str]) -> None:
    assert parse_plain(payload) == expected


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"jilles",
        b"\0jilles",
        b"\0jilles\0",  # empty password
        b"\0\0sesame",  # empty authcid
        b"\0jilles\0ses\0ame",  # three NULs
        b"\0jilles\0\xff\xfe",  # invalid UTF-8
    ],
)
def test_parse_plain_refuses_malformed_payloads(payload: bytes) -> None:
    assert parse_plain(payload) is None


def test_parse_external() -> None:
    assert parse_external(b"") == ""
    assert parse_external(b"jilles") == "jilles"
    assert parse_external(b"\xff") is None
    assert parse_external(b"a\0b") is None


# ---- SCRAM-SHA-256 ----


def test_scram_login_with_scramp() -> None:
    looked_up: list[str] = []
    server, client = _server(looked_up), _client()
    assert server.username is None
    final = _to_final(server, client)
    assert server.username == "user"
    assert final.challenge is not None and final.challenge.startswith(b"v=")
    assert not final.done and final.account is None and final.error is None
    client.set_server_final(final.challenge.decode())  # raises if our ServerSignature is wrong
    assert server.step(b"") == ScramResult(done=True, account="user")
    assert looked_up == ["user"]


def test_server_first_message() -> None:
    first = _server().step(_client().get_client_first().encode())
    salt = base64.b64encode(_SALT).decode()
    assert first.challenge == f"r=CLIENTNONCESERVERNONCE,s={salt},i={SCRAM_MIN_ITERATIONS}".encode()


def test_username_escapes_are_undone_before_lookup() -> None:
    looked_up: list[str] = []
    server, client = _server(looked_up), _client("a,b=c")
    assert client.get_client_first() == "n,,n=a=2Cb=3Dc,r=CLIENTNONCE"
    client = _client("a,b=c")
    final = _to_final(server, client)
    assert final.challenge is not None
    client.set_server_final(final.challenge.decode())
    assert server.step(b"").account == "a,b=c"
    assert looked_up == ["a,b=c"]


def test_wrong_password_fails_at_the_proof_and_stays_failed() -> None:
    server = _server()
    assert _failed(_to_final(server, _client(password="pen")), "invalid proof")
    assert _failed(server.step(b""), "invalid proof")
    assert _failed(server.step(b"anything"), "invalid proof")


def test_unknown_account_looks_like_a_known_one_until_the_proof() -> None:
    known = _server().step(_client("stored").get_client_first().encode())
    unknown = [_server().step(_client(name).get_client_first().encode()) for name in ("nobody", "nobody", "NoBody")]
    assert known.challenge is not None
    known_match = _SERVER_FIRST.fullmatch(known.challenge.decode())
    matches = [_SERVER_FIRST.fullmatch(result.challenge.decode()) for result in unknown if result.challenge]
    assert known_match is not None and len(matches) == 3 and all(matches)
    salts = {m.group(2) for m in matches if m}
    assert len(salts) == 1  # stable across attempts and spellings of the same name
    assert salts != {known_match.group(2)}
    assert len(base64.b64decode(next(iter(salts)))) == len(_SALT)
    assert {m.group(3) for m in matches if m} == {known_match.group(3)}
    # Another server secret, another fake salt: the salt comes from the secret, not the name alone.
    other = ScramServer(lambda name: None, b"another secret").step(b"n,,n=nobody,r=x").challenge
    other_match = _SERVER_FIRST.fullmatch(other.decode()) if other else None
    assert other_match is not None and other_match.group(2) not in salts

    server = _server()
    assert _failed(_to_final(server, _client("nobody")), "unknown account")
    assert _failed(server.step(b""), "unknown account")


def test_y_flag_and_matching_authzid_are_accepted() -> None:
    assert _hand_exchange("y,,n=user,r=abc").challenge is not None
    assert _hand_exchange("n,a=user,n=user,r=abc").challenge is not None


def test_hand_client_with_wrong_password_fails() -> None:
    assert _failed(_hand_exchange("n,,n=user,r=abc", password="nope"), "invalid proof")


@pytest.mark.parametrize(
    ("client_first", "reason"),
    [
        ("p=tls-unique,,n=user,r=abc", "channel binding not supported"),
        ("p=tls-server-end-point,,n=user,r=abc", "channel binding not supported"),
        ("n,a=admin,n=user,r=abc", "authzid differs from username"),
        ("n,,m=ext,n=user,r=abc", "extensions not supported"),
        ("n,,n=user,r=abc,x=ext", "extensions not supported"),
        ("x,,n=user,r=abc", "malformed client-first-message"),
        ("n,,", "malformed client-first-message"),
        ("n,", "malformed client-first-message"),
        ("", "malformed client-first-message"),
        ("n,,r=abc,n=user", "malformed client-first-message"),
        ("n,b=user,n=user,r=abc", "malformed client-first-message"),
        ("n,,n=,r=abc", "malformed username"),
        ("n,,n=us=2Xer,r=abc", "malformed username"),
        ("n,,n=us=er,r=abc", "malformed username"),
        ("n,,n=us\0er,r=abc", "malformed username"),
        ("n,,n=user,r=", "malformed nonce"),
        ("n,,n=user,r=a b", "malformed nonce"),
        ("n,,n=user,r=\u00e9", "malformed nonce"),
    ],
)
def test_client_first_refusals(client_first: str, reason: str) -> None:
    server = _server()
    assert _failed(server.step(client_first.encode()), reason)
    assert _failed(server.step(b"n,,n=user,r=abc"), reason)  # no second chance


def test_client_first_invalid_utf8() -> None:
    assert _failed(_server().step(b"n,,n=\xff,r=abc"), "invalid UTF-8")


def _tampered_final(change: str) -> ScramResult:
    """Send scramp's client-final message with one change applied to it."""
    server, client = _server(), _client()
    first = server.step(client.get_client_first().encode())
    assert first.challenge is not None
    client.set_server_first(first.challenge.decode())
    final = client.get_client_final()
    c_attr, r_attr, p_attr = final.split(",")
    tampered = {
        "nonce": f"{c_attr},r=CLIENTNONCEOTHER,{p_attr}",
        "client nonce only": f"{c_attr},r=CLIENTNONCE,{p_attr}",
        "binding": f"c=eSws,{r_attr},{p_attr}",  # base64 of "y,,"
        "binding base64": f"c=biws!,{r_attr},{p_attr}",
        "order": f"{r_attr},{c_attr},{p_attr}",
        "no proof": f"{c_attr},{r_attr}",
        "extension": f"{c_attr},{r_attr},x=1,{p_attr}",
        "proof base64": f"{c_attr},{r_attr},p=***",
        "proof length": f"{c_attr},{r_attr},p=" + base64.b64encode(bytes(31)).decode(),
        "zero proof": f"{c_attr},{r_attr},p=" + base64.b64encode(bytes(32)).decode(),
        "utf-8": final + "\udcff",
    }[change]
    return server.step(tampered.encode("utf-8", "surrogateescape"))


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ("nonce", "nonce mismatch"),
        ("client nonce only", "nonce mismatch"),
        ("binding", "channel binding data differs from the gs2 header"),
        ("binding base64", "invalid base64"),
        ("order", "malformed client-final-message"),
        ("no proof", "malformed client-final-message"),
        ("extension", "extensions not supported"),
        ("proof base64", "invalid base64"),
        ("proof length", "malformed proof"),
        ("zero proof", "invalid proof"),
        ("utf-8", "invalid UTF-8"),
    ],
)
def test_client_final_refusals(change: str, reason: str) -> None:
    assert _failed(_tampered_final(change), reason)


def test_c_attribute_must_encode_the_gs2_header_actually_sent() -> None:
    # A "y" client that claims "n" in the channel binding attribute: a downgrade, refused.
    server = _server()
    first = server.step(b"y,,n=user,r=abc")
    assert first.challenge is not None
    final = _hand_client_final("y,,n=user,r=abc", first.challenge.decode(), "pencil", c_attr="biws")
    assert _failed(server.step(final.encode()), "channel binding data differs from the gs2 header")


def test_the_last_message_must_be_empty() -> None:
    server, client = _server(), _client()
    final = _to_final(server, client)
    assert final.error is None
    assert _failed(server.step(b"+"), "expected an empty response after server-final")
    assert _failed(server.step(b""), "expected an empty response after server-final")


def test_nothing_after_success() -> None:
    server, client = _server(), _client()
    assert _to_final(server, client).error is None
    assert server.step(b"").account == "user"
    assert _failed(server.step(b""), "exchange already finished")


def test_iterations_come_from_the_stored_credentials() -> None:
    credentials = _credentials("pencil", SCRAM_MIN_ITERATIONS)
    server = ScramServer(lambda name: credentials, _SECRET)
    client = _client()
    final = _to_final(server, client)
    assert final.challenge is not None
    client.set_server_final(final.challenge.decode())
    assert server.step(b"").account == "user"


def test_default_server_nonces_differ_and_are_printable() -> None:
    nonces = set()
    for _ in range(2):
        first = ScramServer(lambda name: None, _SECRET).step(b"n,,n=user,r=abc").challenge
        assert first is not None
        match = _SERVER_FIRST.fullmatch(first.decode())
        assert match is not None and match.group(1).startswith("abc") and len(match.group(1)) > 20
        nonces.add(match.group(1))
    assert len(nonces) == 2


def test_an_empty_secret_is_a_local_error() -> None:
    with pytest.raises(ValueError):
        ScramServer(lambda name: None, b"")


def test_errors_never_carry_the_password_or_proof() -> None:
    server, client = _server(), _client(password="hunter2-secret")
    result = _to_final(server, client)
    assert result.error is not None
    assert "hunter2" not in result.error and "p=" not in result.error


# ---- anything at any step: a result, never an exception ----

_SCRAMISH = st.text(alphabet="nyp=,am\0rcsvx2C3D+/abcé\udcff", max_size=40).map(
    lambda text: text.encode("utf-8", "surrogateescape")
)
_PAYLOADS = st.one_of(st.binary(max_size=80), _SCRAMISH)


def _server_at(stage: int) -> ScramServer:
    server, client = _server(), _client()
    if stage >= 1:
        first = server.step(client.get_client_first().encode())
        assert first.challenge is not None
        client.set_server_first(first.challenge.decode())
    if stage >= 2:
        assert server.step(client.get_client_final().encode()).error is None
    return server


@given(stage=st.sampled_from([0, 1, 2]), payloads=st.lists(_PAYLOADS, min_size=1, max_size=3))
@settings(max_examples=300, deadline=None)
def test_random_payloads_give_results_not_exceptions(stage: int, payloads: list[bytes]) -> None:
    server = _server_at(stage)
    failed = False
    for payload in payloads:
        result = server.step(payload)
        assert isinstance(result, ScramResult)
        if failed:
            assert result.done and result.error is not None and result.account is None
        if result.error is not None:
            assert result.done and result.challenge is None and result.account is None
            failed = True
        assert result.account in (None, "user")
