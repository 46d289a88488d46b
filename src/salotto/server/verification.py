"""Email verification of new accounts (draft/account-registration VERIFY), off by default.

With ``account_verification = "email"`` a new account starts unverified: it can't log in and does
not protect its nick until its owner sends ``VERIFY <account> <code>`` with the code mailed to the
address given at REGISTER. The code is not stored: it is an HMAC of the account's name and creation
time under the server's secret, so it can't be guessed and dies with the account. An unverified account
older than ``account_verify_timeout_s`` may be registered again by anyone holding the nick.

Mail goes out through the SMTP server ``smtp_server`` (a local MTA by default), from the offload pool:
``smtplib`` blocks for a network round trip or several.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import smtplib
from email.message import EmailMessage

from salotto.config import Config, parse_host_port
from salotto.proto.casemap import casefold
from salotto.storage.base import StoredAccount

__all__ = ["CODE_LENGTH", "SMTP_TIMEOUT_S", "send_code", "verification_code"]

# Characters of the code: 10 base32 characters are 50 bits, far beyond what the login throttle
# (login_attempts_per_ip per window) lets anyone try, and short enough to type.
CODE_LENGTH = 10
# An SMTP exchange that takes longer than this has failed; the REGISTER answer waits for it.
SMTP_TIMEOUT_S = 10.0


def verification_code(secret: bytes, account: StoredAccount) -> str:
    material = f"verify\0{casefold(account.name)}\0{account.created!r}".encode()
    digest = hmac.new(secret, material, hashlib.sha256).digest()
    return base64.b32encode(digest).decode()[:CODE_LENGTH]


def codes_match(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.strip().upper().encode("utf-8", "surrogateescape"), expected.encode())


def send_code(config: Config, account: StoredAccount, code: str) -> None:
    """Mail the code to the account's address. Raises OSError/smtplib.SMTPException on failure."""
    assert account.email is not None
    message = EmailMessage()
    message["From"] = config.smtp_from
    message["To"] = account.email
    message["Subject"] = f"Your {config.network_name} account {account.name}: verification code"
    message.set_content(
        f"Someone (hopefully you) registered the account {account.name} on {config.network_name}.\n\n"
        f"Your code: {code}\n\n"
        f"To finish, send from your IRC client:\n\n    /quote VERIFY {account.name} {code}\n\n"
        f"or /msg NickServ VERIFY {account.name} {code}\n\n"
        f"If it was not you, ignore this message: the account is deleted if nobody verifies it.\n"
    )
    host, port = parse_host_port(config.smtp_server, "smtp_server")
    with smtplib.SMTP(host, port, timeout=SMTP_TIMEOUT_S) as smtp:
        smtp.send_message(message)
