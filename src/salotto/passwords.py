"""Password hashing: scrypt for passwords the server sees, SCRAM-SHA-256 credentials for those it doesn't.

Two stored forms, both opaque strings with base64 (standard alphabet) fields:

- an operator password: ``scrypt$<n>$<r>$<p>$<salt>$<hash>`` (:func:`hash_password`);
- an account secret: that, then ``;``, then ``scram-sha-256$<iterations>$<salt>$<StoredKey>$<ServerKey>``
  (:func:`make_account_secret`).

SASL PLAIN and NickServ IDENTIFY send the password, which :func:`verify_password` checks against the
scrypt part. SCRAM-SHA-256 (RFC 5802, RFC 7677) never sends it: the client runs PBKDF2 itself and proves
it knows the result, so the server keeps the salt, iteration count, StoredKey and ServerKey
(:func:`scram_credentials`) and does the rest in :mod:`salotto.server.sasl`.

Passwords never go into a log line or an exception message here.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import stringprep
import unicodedata
from dataclasses import dataclass

__all__ = [
    "SCRAM_ITERATIONS",
    "SCRAM_MIN_ITERATIONS",
    "ScramCredentials",
    "hash_password",
    "is_password_hash",
    "make_account_secret",
    "scram_credentials",
    "scram_is_current",
    "scram_keys",
    "verify_password",
]

# OWASP's scrypt minimum (N=2^17, r=8, p=1) costs 128 MiB and ~0.3 s here; 2^15 keeps an OPER
# login near 50 ms with 32 MiB while staying far beyond what a GPU rig brute-forces cheaply.
SCRYPT_N = 2**15
SCRYPT_R = 8
SCRYPT_P = 1
_MAXMEM = 128 * 1024 * 1024

# PBKDF2-HMAC-SHA-256 rounds for SCRAM: OWASP's 600,000 for stored hashes. The keys stored beside the
# scrypt hash are as good as the password to someone who steals the database and guesses offline, so they
# must cost a guess no less than scrypt does (0.16 s here against scrypt's 0.1 s; at 10,000 rounds they
# cost 3 ms and undid scrypt). The server pays the rounds when the password is set; a SCRAM client pays
# them once per login. RFC 7677's floor (and scramp's) is 4096, what a caller may ask for in tests.
SCRAM_ITERATIONS = 600_000
SCRAM_MIN_ITERATIONS = 4096
# 16 random bytes, as for scrypt; scramp clients refuse salts under 12 bytes.
_SCRAM_SALT_BYTES = 16
_SCRAM_KEY_BYTES = hashlib.sha256().digest_size

_SCRYPT_SCHEME = "scrypt"
_SCRAM_SCHEME = "scram-sha-256"
_PART_SEPARATOR = ";"
_FIELD_SEPARATOR = "$"


@dataclass(frozen=True, slots=True)
class ScramCredentials:
    """What the server keeps for SCRAM-SHA-256 (RFC 5802 section 3): enough to check a proof, not to log in."""

    salt: bytes
    iterations: int
    stored_key: bytes
    server_key: bytes


def hash_password(password: str, *, n: int = SCRYPT_N, r: int = SCRYPT_R, p: int = SCRYPT_P) -> str:
    salt = os.urandom(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, maxmem=_MAXMEM)
    return "$".join(
        ["scrypt", str(n), str(r), str(p), base64.b64encode(salt).decode(), base64.b64encode(digest).decode()]
    )


def make_account_secret(password: str, *, scram_iterations: int = SCRAM_ITERATIONS) -> str:
    """The stored secret of an account: an scrypt hash and SCRAM-SHA-256 credentials in one string.

    Costs one scrypt hash and ``scram_iterations`` PBKDF2 rounds: run it off the event loop.

    Raises:
        ValueError: ``scram_iterations`` is below :data:`SCRAM_MIN_ITERATIONS` (a caller's mistake).
    """
    if scram_iterations < SCRAM_MIN_ITERATIONS:
        raise ValueError(f"SCRAM needs at least {SCRAM_MIN_ITERATIONS} iterations, got {scram_iterations}")
    salt = os.urandom(_SCRAM_SALT_BYTES)
    stored_key, server_key = scram_keys(password, salt, scram_iterations)
    scram = _FIELD_SEPARATOR.join(
        [_SCRAM_SCHEME, str(scram_iterations), _b64(salt), _b64(stored_key), _b64(server_key)]
    )
    return hash_password(password) + _PART_SEPARATOR + scram


def scram_is_current(stored: str) -> bool:
    """Whether an account secret's SCRAM keys are there with today's rounds (else: make them anew at the
    next login that gives the password)."""
    credentials = scram_credentials(stored)
    return credentials is not None and credentials.iterations >= SCRAM_ITERATIONS


def is_password_hash(stored: str) -> bool:
    """Whether ``stored`` has the shape of a :func:`hash_password` string (for checking a config file)."""
    parts = _split_parts(stored)
    part = parts.get(_SCRYPT_SCHEME) if parts is not None else None
    if part is None or len(part) != 5:
        return False
    try:
        n, r, p = (int(field) for field in part[:3])
        salt, digest = (base64.b64decode(field, validate=True) for field in part[3:])
    except ValueError:  # binascii.Error is one
        return False
    return n > 1 and n & (n - 1) == 0 and r > 0 and p > 0 and bool(salt) and bool(digest)


def verify_password(password: str, stored: str) -> bool:
    """True when ``password`` matches the scrypt part of ``stored``.

    ``stored`` is a :func:`hash_password` string or a :func:`make_account_secret` one. False for a wrong
    password, a malformed string or one without an scrypt part; never raises.
    """
    parts = _split_parts(stored)
    part = parts.get(_SCRYPT_SCHEME) if parts is not None else None
    if part is None:
        return False
    try:
        n, r, p, salt_b64, digest_b64 = part
        salt = base64.b64decode(salt_b64)
        expected = base64.b64decode(digest_b64)
        digest = hashlib.scrypt(
            password.encode(), salt=salt, n=int(n), r=int(r), p=int(p), maxmem=_MAXMEM, dklen=len(expected)
        )
    except (ValueError, TypeError, OverflowError):
        return False
    return hmac.compare_digest(digest, expected)


def scram_credentials(stored: str) -> ScramCredentials | None:
    """The SCRAM-SHA-256 part of a :func:`make_account_secret` string; None if absent or malformed."""
    parts = _split_parts(stored)
    part = parts.get(_SCRAM_SCHEME) if parts is not None else None
    if part is None or len(part) != 4:
        return None
    iterations_text, salt_b64, stored_key_b64, server_key_b64 = part
    if not (iterations_text.isascii() and iterations_text.isdigit()):
        return None
    try:
        iterations = int(iterations_text)  # ValueError past int's 4300-digit limit
        salt = base64.b64decode(salt_b64, validate=True)
        stored_key = base64.b64decode(stored_key_b64, validate=True)
        server_key = base64.b64decode(server_key_b64, validate=True)
    except ValueError:  # binascii.Error is one
        return None
    if iterations < 1 or not salt or len(stored_key) != _SCRAM_KEY_BYTES or len(server_key) != _SCRAM_KEY_BYTES:
        return None
    return ScramCredentials(salt, iterations, stored_key, server_key)


def scram_keys(password: str, salt: bytes, iterations: int) -> tuple[bytes, bytes]:
    """StoredKey and ServerKey of RFC 5802 section 3 for ``password`` (SASLprep'd first)."""
    salted = hashlib.pbkdf2_hmac("sha256", _saslprep_or_raw(password).encode(), salt, iterations)
    client_key = hmac.digest(salted, b"Client Key", "sha256")
    server_key = hmac.digest(salted, b"Server Key", "sha256")
    return hashlib.sha256(client_key).digest(), server_key


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _split_parts(stored: str) -> dict[str, list[str]] | None:
    """``{scheme: fields}`` for each ``;``-separated part; None when a scheme appears twice.

    Unknown schemes are kept and ignored by the callers, so a later version can add one.
    """
    parts: dict[str, list[str]] = {}
    for part in stored.split(_PART_SEPARATOR):
        scheme, *fields = part.split(_FIELD_SEPARATOR)
        if scheme in parts:
            return None
        parts[scheme] = fields
    return parts


def _saslprep_or_raw(password: str) -> str:
    """SASLprep (RFC 4013) as RFC 5802 section 2.2 asks, or the password as given if it is prohibited.

    Keeping a password SASLprep refuses, rather than rejecting it, is what PostgreSQL does: clients that
    skip SASLprep (most IRC clients) can still use it. For ASCII passwords both are the same.
    """
    try:
        return _saslprep(password)
    except ValueError:
        return password


def _saslprep(text: str) -> str:
    """RFC 4013 with unassigned code points prohibited ("stored strings", RFC 3454 section 7).

    Raises:
        ValueError: ``text`` holds a prohibited character or breaks the bidirectional rule.
    """
    mapped = "".join(" " if stringprep.in_table_c12(c) else c for c in text if not stringprep.in_table_b1(c))
    prepared = unicodedata.ucd_3_2_0.normalize("NFKC", mapped)
    for c in prepared:
        if (
            stringprep.in_table_a1(c)
            or stringprep.in_table_c12(c)
            or stringprep.in_table_c21_c22(c)
            or stringprep.in_table_c3(c)
            or stringprep.in_table_c4(c)
            or stringprep.in_table_c5(c)
            or stringprep.in_table_c6(c)
            or stringprep.in_table_c7(c)
            or stringprep.in_table_c8(c)
            or stringprep.in_table_c9(c)
        ):
            raise ValueError("prohibited character")
    # RFC 3454 section 6: a string with right-to-left characters has no left-to-right ones and starts
    # and ends with a right-to-left one.
    if any(stringprep.in_table_d1(c) for c in prepared) and (
        any(stringprep.in_table_d2(c) for c in prepared)
        or not (stringprep.in_table_d1(prepared[0]) and stringprep.in_table_d1(prepared[-1]))
    ):
        raise ValueError("bidirectional rule broken")
    return prepared
