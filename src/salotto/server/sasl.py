"""SASL mechanisms for AUTHENTICATE, as data in and data out: no I/O, no clock, no threads.

The AUTHENTICATE handler decodes the client's base64 chunks and hands the payload here; what comes back
is the next challenge to send, or the outcome. Specifications:

- IRCv3 SASL 3.1, the IRC framing: https://ircv3.net/specs/extensions/sasl-3.1
- PLAIN, RFC 4616: https://www.rfc-editor.org/rfc/rfc4616
- SCRAM, RFC 5802: https://www.rfc-editor.org/rfc/rfc5802 ; SCRAM-SHA-256, RFC 7677:
  https://www.rfc-editor.org/rfc/rfc7677 . Without channel binding: we offer no ``-PLUS`` variant.
- EXTERNAL, RFC 4422 appendix A: the TLS client certificate authenticates; the payload is only an authzid.

Every malformed payload is the peer's fault and comes back as a value (``None`` or a failed
:class:`ScramResult`), never as an exception.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from salotto.passwords import SCRAM_ITERATIONS, ScramCredentials
from salotto.proto.casemap import casefold

__all__ = ["MECHANISMS", "ScramResult", "ScramServer", "parse_external", "parse_plain"]

# What RPL_SASLMECHS and the sasl= capability value list. The handler may drop EXTERNAL when the
# connection has no client certificate to offer.
MECHANISMS: Final = ("PLAIN", "SCRAM-SHA-256", "EXTERNAL")

# secrets.token_urlsafe(18) gives 24 characters of 144 random bits: RFC 5802 wants a nonce that is
# unique per exchange and printable, and the urlsafe alphabet has no comma.
_SERVER_NONCE_BYTES = 18
# The fake salt for an unknown account is as long as a real one (salotto.passwords uses 16 bytes).
_FAKE_SALT_BYTES = 16
_HASH = "sha256"
_KEY_BYTES = hashlib.sha256().digest_size


def parse_plain(payload: bytes) -> tuple[str, str, str] | None:
    """``authzid NUL authcid NUL password`` (RFC 4616 section 2) as ``(authzid, authcid, password)``.

    Returns None for invalid UTF-8, a count of NULs other than two, or an empty authcid or password.
    ``authzid`` may be empty. It comes back as sent; the caller rejects a non-empty one that is not the
    authcid (we log in as exactly one account and act for no other).
    """
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        return None
    fields = text.split("\0")
    if len(fields) != 3:
        return None
    authzid, authcid, password = fields
    if not authcid or not password:
        return None
    return authzid, authcid, password


def parse_external(payload: bytes) -> str | None:
    """The authzid of an EXTERNAL request: ``""`` when the client asks for none (the usual ``+``).

    Returns None for invalid UTF-8 or a NUL.
    """
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return None if "\0" in text else text


@dataclass(frozen=True, slots=True)
class ScramResult:
    """What one :meth:`ScramServer.step` decided.

    Attributes:
        challenge: the server message to send next (server-first, then server-final ``v=...``), or None.
        done: the exchange is over, successfully (``account`` set) or not (``error`` set).
        account: the username the client proved it owns, as it sent it (the ``n=`` attribute,
            unescaped); set only with ``done``.
        error: why the exchange failed, short and for the log only: never the password, the proof or
            anything the peer sent. The peer gets ERR_SASLFAIL, not this.
    """

    challenge: bytes | None = None
    done: bool = False
    account: str | None = None
    error: str | None = None


class _Refused(Exception):
    """The peer's message breaks RFC 5802 or asks for something we don't support; ``args[0]`` says which."""


class _Stage(enum.Enum):
    CLIENT_FIRST = enum.auto()
    CLIENT_FINAL = enum.auto()
    CLIENT_ACK = enum.auto()  # server-final sent; waiting for the client's empty response
    FINISHED = enum.auto()


class ScramServer:
    """The server side of one SCRAM-SHA-256 exchange (RFC 5802 section 5), fed the decoded client payloads.

    An unknown account (``lookup`` returns None, including an account stored without SCRAM credentials)
    gets a server-first message of the same shape, with a salt derived from ``secret`` and the folded
    name: the same on every attempt, so asking twice doesn't reveal that the account doesn't exist. The
    exchange then fails at the proof, as a wrong password would.

    Args:
        lookup: account name (the ``n=`` username, unescaped) -> its credentials, or None.
        secret: random bytes kept by the server; keep them across restarts, or a fake salt that changes
            when a real one doesn't gives the unknown account away.
        nonce: makes the server nonce (printable ASCII without ``,``); for tests.
        fold_name: the name comparison the accounts use, so that every spelling of an unknown name gets
            the same fake salt, as every spelling of a known one gets the real salt.
        fake_iterations: iteration count announced for unknown accounts; match real accounts' count.

    Raises:
        ValueError: ``secret`` is empty.
    """

    def __init__(
        self,
        lookup: Callable[[str], ScramCredentials | None],
        secret: bytes,
        *,
        nonce: Callable[[], str] | None = None,
        fold_name: Callable[[str], str] = casefold,
        fake_iterations: int = SCRAM_ITERATIONS,
    ) -> None:
        if not secret:
            raise ValueError("ScramServer needs a non-empty secret")
        self._lookup = lookup
        self._secret = secret
        self._make_nonce = nonce or _random_nonce
        self._fold_name = fold_name
        self._fake_iterations = fake_iterations
        self._stage = _Stage.CLIENT_FIRST
        self._error: str | None = None
        # Set by the client-first step:
        self._username = ""
        self._known = False
        self._credentials: ScramCredentials | None = None
        self._gs2_header = b""
        self._client_first_bare = ""
        self._server_first = ""
        self._nonce = ""

    @property
    def username(self) -> str | None:
        """The ``n=`` username once the client-first message is accepted (for per-account throttling)."""
        return self._username or None

    def step(self, data: bytes) -> ScramResult:
        """Take the client's next message (base64-decoded; ``+`` is ``b""``) and say what follows."""
        handler = _STEPS.get(self._stage)
        if handler is None:
            return ScramResult(done=True, error=self._error or "exchange already finished")
        try:
            return handler(self, data)
        except _Refused as refused:
            self._stage = _Stage.FINISHED
            self._error = str(refused.args[0])
            return ScramResult(done=True, error=self._error)

    # client-first-message = gs2-header client-first-message-bare (RFC 5802 section 7)
    # gs2-header = ("n" / "y" / "p=" cb-name) "," ["a=" saslname] ","
    # client-first-message-bare = ["m=" ...","] "n=" saslname "," "r=" c-nonce ["," extensions]
    def _client_first(self, data: bytes) -> ScramResult:
        text = _decode(data)
        flag, comma1, rest = text.partition(",")
        authz, comma2, bare = rest.partition(",")
        if not (comma1 and comma2):
            raise _Refused("malformed client-first-message")
        if flag.startswith("p="):
            raise _Refused("channel binding not supported")
        if flag not in ("n", "y"):  # "y": the client could bind but believes we can't; true, so fine
            raise _Refused("malformed client-first-message")
        attributes = bare.split(",")
        if attributes[0].startswith("m=") or len(attributes) > 2:
            raise _Refused("extensions not supported")
        if len(attributes) != 2 or not attributes[0].startswith("n=") or not attributes[1].startswith("r="):
            raise _Refused("malformed client-first-message")
        username = _unescape_saslname(attributes[0][2:])
        if authz:
            if not authz.startswith("a="):
                raise _Refused("malformed client-first-message")
            if _unescape_saslname(authz[2:]) != username:
                raise _Refused("authzid differs from username")
        client_nonce = attributes[1][2:]
        if not _is_nonce(client_nonce):
            raise _Refused("malformed nonce")

        credentials = self._lookup(username)
        self._known = credentials is not None
        self._credentials = credentials if credentials is not None else self._fake_credentials(username)
        self._username = username
        self._gs2_header = f"{flag},{authz},".encode()
        self._client_first_bare = bare
        self._nonce = client_nonce + self._make_nonce()
        self._server_first = f"r={self._nonce},s={_b64(self._credentials.salt)},i={self._credentials.iterations}"
        self._stage = _Stage.CLIENT_FINAL
        return ScramResult(challenge=self._server_first.encode())

    # client-final-message = "c=" base64(gs2-header) "," "r=" nonce ["," extensions] "," "p=" proof
    def _client_final(self, data: bytes) -> ScramResult:
        text = _decode(data)
        attributes = text.split(",")
        if len(attributes) > 3 and attributes[-1].startswith("p="):
            raise _Refused("extensions not supported")
        if len(attributes) != 3 or [a[:2] for a in attributes] != ["c=", "r=", "p="]:
            raise _Refused("malformed client-final-message")
        channel_binding, nonce, proof_b64 = (a[2:] for a in attributes)
        if _b64decode(channel_binding) != self._gs2_header:
            raise _Refused("channel binding data differs from the gs2 header")
        if not hmac.compare_digest(nonce.encode(), self._nonce.encode()):
            raise _Refused("nonce mismatch")
        proof = _b64decode(proof_b64)
        if len(proof) != _KEY_BYTES:
            raise _Refused("malformed proof")

        assert self._credentials is not None  # set by the client-first step
        # RFC 5802 section 3: ClientKey = ClientProof XOR HMAC(StoredKey, AuthMessage); H(ClientKey) = StoredKey
        client_final_without_proof = ",".join(attributes[:2])
        auth_message = f"{self._client_first_bare},{self._server_first},{client_final_without_proof}".encode()
        client_signature = hmac.digest(self._credentials.stored_key, auth_message, _HASH)
        client_key = bytes(p ^ s for p, s in zip(proof, client_signature, strict=True))
        proved = hmac.compare_digest(hashlib.sha256(client_key).digest(), self._credentials.stored_key)
        if not self._known:
            raise _Refused("unknown account")
        if not proved:
            raise _Refused("invalid proof")
        server_signature = hmac.digest(self._credentials.server_key, auth_message, _HASH)
        self._stage = _Stage.CLIENT_ACK
        return ScramResult(challenge=b"v=" + _b64(server_signature).encode())

    # After server-final, IRC clients answer "AUTHENTICATE +": an empty message.
    def _client_ack(self, data: bytes) -> ScramResult:
        if data:
            raise _Refused("expected an empty response after server-final")
        self._stage = _Stage.FINISHED
        self._error = "exchange already finished"
        return ScramResult(done=True, account=self._username)

    def _fake_credentials(self, username: str) -> ScramCredentials:
        """Stable, secret-derived credentials that no proof can match (finding one inverts SHA-256)."""
        name = self._fold_name(username).encode()

        def derive(label: bytes) -> bytes:
            return hmac.digest(self._secret, label + b"\0" + name, _HASH)

        return ScramCredentials(
            salt=derive(b"salt")[:_FAKE_SALT_BYTES],
            iterations=self._fake_iterations,
            stored_key=derive(b"stored-key"),
            server_key=derive(b"server-key"),
        )


# Which method takes the client's next message; FINISHED has none.
_STEPS: Final[dict[_Stage, Callable[[ScramServer, bytes], ScramResult]]] = {
    _Stage.CLIENT_FIRST: ScramServer._client_first,
    _Stage.CLIENT_FINAL: ScramServer._client_final,
    _Stage.CLIENT_ACK: ScramServer._client_ack,
}


def _random_nonce() -> str:
    return secrets.token_urlsafe(_SERVER_NONCE_BYTES)


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise _Refused("invalid UTF-8") from None


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _b64decode(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except ValueError:  # binascii.Error, or a non-ASCII str
        raise _Refused("invalid base64") from None


def _unescape_saslname(text: str) -> str:
    """RFC 5802 ``saslname``: UTF-8 without NUL or ``,``, with ``=`` written ``=3D`` and ``,`` ``=2C``."""
    head, *escaped = text.split("=")
    pieces = [head]
    for piece in escaped:
        if piece.startswith("2C"):
            pieces.append("," + piece[2:])
        elif piece.startswith("3D"):
            pieces.append("=" + piece[2:])
        else:
            raise _Refused("malformed username")
    name = "".join(pieces)
    if not name or "\0" in name:
        raise _Refused("malformed username")
    return name


def _is_nonce(text: str) -> bool:
    """RFC 5802 ``printable``: %x21-2B / %x2D-7E, at least one."""
    return bool(text) and all("\x21" <= c <= "\x7e" and c != "," for c in text)
