"""Mail from the server: the verification codes of new accounts (see :mod:`salotto.server.verification`).

``smtplib`` blocks for a network round trip or several, so the server calls :func:`send_code` on its
offload pool; the runtime hands it to the server as its ``mailer``.
"""

from __future__ import annotations

import smtplib
from email.message import EmailMessage

from salotto.config import Config, parse_host_port
from salotto.storage.base import StoredAccount

__all__ = ["SMTP_TIMEOUT_S", "send_code"]

# An SMTP exchange that takes longer than this has failed; the REGISTER answer waits for it.
SMTP_TIMEOUT_S = 10.0


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
