"""Email verification of new accounts (draft/account-registration VERIFY), off by default.

With ``account_verification = "email"`` a new account starts unverified: it can't log in and does
not protect its nick until its owner sends ``VERIFY <account> <code>`` with the code mailed to the
address given at REGISTER. The code is not stored: it is an HMAC of the account's name and creation
time under the server's secret, so it can't be guessed and dies with the account. An unverified account
older than ``account_verify_timeout_s`` may be registered again by anyone holding the nick.

Mail goes out through the server's ``mailer`` (:func:`salotto.mail.send_code` in the runtime: the SMTP
server ``smtp_server``), from the offload pool: sending blocks for a network round trip or several.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import TYPE_CHECKING, Protocol

from salotto.proto.casemap import casefold
from salotto.storage.base import StoredAccount

if TYPE_CHECKING:
    from salotto.config import Config

__all__ = ["CODE_LENGTH", "Mailer", "codes_match", "no_mailer", "verification_code"]

# Characters of the code: 10 base32 characters are 50 bits, far beyond what the login throttle
# (login_attempts_per_ip per window) lets anyone try, and short enough to type.
CODE_LENGTH = 10


class Mailer(Protocol):
    """Sends ``code`` to the address of ``account`` (blocking: it runs on the offload pool); raises
    OSError (or the mail library's own exception) when it cannot."""

    def __call__(self, config: Config, account: StoredAccount, code: str, /) -> None: ...


def no_mailer(config: Config, account: StoredAccount, code: str) -> None:
    """The mailer of a server the runtime gave none (a test harness): nothing can be mailed."""
    raise OSError("this server has no way to send mail")


def verification_code(secret: bytes, account: StoredAccount) -> str:
    material = f"verify\0{casefold(account.name)}\0{account.created!r}".encode()
    digest = hmac.new(secret, material, hashlib.sha256).digest()
    return base64.b32encode(digest).decode()[:CODE_LENGTH]


def codes_match(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.strip().upper().encode("utf-8", "surrogateescape"), expected.encode())
