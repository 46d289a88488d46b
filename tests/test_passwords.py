"""Stored password forms: scrypt for OPER and PLAIN, SCRAM-SHA-256 credentials alongside for accounts."""

from __future__ import annotations

import base64
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scramp import ScramClient, ScramMechanism

import salotto.passwords as passwords
from salotto.passwords import (
    SCRAM_ITERATIONS,
    SCRAM_MIN_ITERATIONS,
    ScramCredentials,
    hash_password,
    make_account_secret,
    scram_credentials,
    scram_keys,
    verify_password,
)

# One full-cost secret for the whole module: scrypt N=2^15 plus 10k PBKDF2 rounds is ~0.1 s.
_SECRET = make_account_secret("correct horse")
_B64 = r"[A-Za-z0-9+/]+={0,2}"


def _scramp_login(credentials: ScramCredentials, username: str, password: str) -> None:
    """A whole exchange between scramp's own client and server, fed our stored credentials."""

    def auth_fn(name: str) -> tuple[bytes, bytes, bytes, int]:
        assert name == username
        return credentials.salt, credentials.stored_key, credentials.server_key, credentials.iterations

    server = ScramMechanism("SCRAM-SHA-256").make_server(auth_fn)
    client = ScramClient(["SCRAM-SHA-256"], username, password)
    server.set_client_first(client.get_client_first())
    client.set_server_first(server.get_server_first())
    server.set_client_final(client.get_client_final())
    client.set_server_final(server.get_server_final())


def test_public_api() -> None:
    assert [name for name in passwords.__all__ if not hasattr(passwords, name)] == []
    assert {"make_account_secret", "verify_password", "scram_credentials", "hash_password"} <= set(passwords.__all__)


def test_account_secret_has_an_scrypt_part_and_a_scram_part() -> None:
    scrypt_part, scram_part = _SECRET.split(";")
    assert re.fullmatch(rf"scrypt\$32768\$8\$1\${_B64}\${_B64}", scrypt_part)
    assert re.fullmatch(rf"scram-sha-256\${SCRAM_ITERATIONS}\${_B64}\${_B64}\${_B64}", scram_part)
    assert "correct horse" not in _SECRET


def test_verify_password_checks_the_scrypt_part() -> None:
    assert verify_password("correct horse", _SECRET)
    assert not verify_password("correct horse ", _SECRET)
    assert not verify_password("", _SECRET)


def test_operator_hashes_in_the_old_form_still_verify() -> None:
    stored = hash_password("hunter2", n=2**10)
    assert ";" not in stored
    assert verify_password("hunter2", stored)
    assert not verify_password("hunter3", stored)
    assert scram_credentials(stored) is None


_CHEAP = hash_password("pw", n=2**4)
_CHEAP_FIELDS = _CHEAP.split("$")


@pytest.mark.parametrize(
    "stored",
    [
        "",
        ";",
        "scrypt",
        "scrypt$",
        "plaintext",
        "bcrypt$" + "$".join(_CHEAP_FIELDS[1:]),
        "$".join(["scrypt", "x", *_CHEAP_FIELDS[2:]]),  # n not a number
        "$".join(["scrypt", "3", *_CHEAP_FIELDS[2:]]),  # n not a power of two
        "$".join(["scrypt", str(2**40), *_CHEAP_FIELDS[2:]]),  # more memory than allowed
        "$".join(["scrypt", "9" * 30, *_CHEAP_FIELDS[2:]]),  # past a C integer
        "$".join(["scrypt", "16", "8", "-1", *_CHEAP_FIELDS[4:]]),
        "$".join([*_CHEAP_FIELDS[:5], ""]),  # empty hash
        "$".join([*_CHEAP_FIELDS[:5], "!!!"]),
        _CHEAP + "$extra",
        _CHEAP + ";" + _CHEAP,  # two scrypt parts
        _SECRET.split(";")[1],  # SCRAM only: nothing to check a plain password against
    ],
)
def test_malformed_stored_strings_never_verify(stored: str) -> None:
    assert verify_password("pw", stored) is False


def test_a_password_that_cannot_be_encoded_does_not_verify() -> None:
    assert verify_password("\udc80", _CHEAP) is False


@given(st.text(max_size=80))
@settings(max_examples=200, deadline=None)
def test_random_stored_strings_never_raise(stored: str) -> None:
    assert verify_password("pw", stored) in (True, False)
    credentials = scram_credentials(stored)
    assert credentials is None or isinstance(credentials, ScramCredentials)


def test_scram_credentials_round_trip() -> None:
    credentials = scram_credentials(_SECRET)
    assert credentials is not None
    assert credentials.iterations == SCRAM_ITERATIONS
    assert len(credentials.salt) == 16
    assert scram_keys("correct horse", credentials.salt, credentials.iterations) == (
        credentials.stored_key,
        credentials.server_key,
    )


def test_scram_credentials_match_an_independent_implementation() -> None:
    credentials = scram_credentials(_SECRET)
    assert credentials is not None
    salt, stored_key, server_key, iterations = ScramMechanism("SCRAM-SHA-256").make_auth_info(
        "correct horse", iteration_count=credentials.iterations, salt=credentials.salt
    )
    assert credentials == ScramCredentials(salt, iterations, stored_key, server_key)
    _scramp_login(credentials, "alice", "correct horse")


def test_scramp_refuses_the_wrong_password_against_our_credentials() -> None:
    credentials = scram_credentials(_SECRET)
    assert credentials is not None
    with pytest.raises(Exception, match="invalid-proof"):
        _scramp_login(credentials, "alice", "wrong horse")


def test_non_ascii_passwords_are_saslprepped_for_scram() -> None:
    # U+00A0 (no-break space) maps to a space and U+00AD (soft hyphen) to nothing (RFC 4013 section 2.1);
    # the scrypt part keeps the password exactly as given.
    stored = make_account_secret("pass\u00a0wo\u00adrd", scram_iterations=SCRAM_MIN_ITERATIONS)
    credentials = scram_credentials(stored)
    assert credentials is not None
    _scramp_login(credentials, "alice", "pass\u00a0wo\u00adrd")
    _scramp_login(credentials, "alice", "pass word")
    assert verify_password("pass\u00a0wo\u00adrd", stored)
    assert not verify_password("pass word", stored)


def test_a_password_saslprep_refuses_is_kept_as_given() -> None:
    # A control character is prohibited by SASLprep; clients that skip SASLprep still send it raw.
    credentials = scram_credentials(make_account_secret("bell\x07", scram_iterations=SCRAM_MIN_ITERATIONS))
    assert credentials is not None
    assert scram_keys("bell\x07", credentials.salt, credentials.iterations) == (
        credentials.stored_key,
        credentials.server_key,
    )


def test_too_few_scram_iterations_is_a_local_error_without_the_password() -> None:
    with pytest.raises(ValueError) as raised:
        make_account_secret("s3cret-pw", scram_iterations=SCRAM_MIN_ITERATIONS - 1)
    assert "s3cret-pw" not in str(raised.value)


def _scram_part(iterations: str, salt: str, stored_key: str, server_key: str) -> str:
    return _CHEAP + ";" + "$".join(["scram-sha-256", iterations, salt, stored_key, server_key])


_KEY = base64.b64encode(bytes(32)).decode()
_SALT = base64.b64encode(bytes(16)).decode()


@pytest.mark.parametrize(
    "stored",
    [
        _CHEAP,
        _scram_part("x", _SALT, _KEY, _KEY),
        _scram_part("0", _SALT, _KEY, _KEY),
        _scram_part("-5", _SALT, _KEY, _KEY),
        _scram_part("\u0664\u0660\u0669\u0666", _SALT, _KEY, _KEY),  # Arabic-Indic digits
        _scram_part("9" * 5000, _SALT, _KEY, _KEY),
        _scram_part("4096", "", _KEY, _KEY),
        _scram_part("4096", _SALT, _KEY[:-4], _KEY),  # 30 bytes
        _scram_part("4096", _SALT, _KEY, "not base64!"),
        _scram_part("4096", _SALT, _KEY, _KEY) + "$extra",
        _scram_part("4096", _SALT, _KEY, _KEY) + ";" + _scram_part("4096", _SALT, _KEY, _KEY).split(";")[1],
    ],
)
def test_malformed_scram_parts_give_none(stored: str) -> None:
    assert scram_credentials(stored) is None


def test_a_well_formed_scram_part_parses() -> None:
    assert scram_credentials(_scram_part("4096", _SALT, _KEY, _KEY)) == ScramCredentials(
        bytes(16), 4096, bytes(32), bytes(32)
    )
