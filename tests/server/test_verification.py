"""Email verification of new accounts (account_verification = "email"), with a real SMTP exchange."""

from __future__ import annotations

import re
from pathlib import Path

from salotto.proto import Message
from tests.server.test_accounts import PASSWORD, _connecting, _harness, _sasl_plain
from tests.smtp_sink import SmtpSink


def _code(sink: SmtpSink) -> str:
    body = sink.received[-1].get_payload()
    assert isinstance(body, str)
    match = re.search(r"Your code: (\w+)", body)
    assert match, body
    return match.group(1)


def _fails(messages: list[Message], command: str) -> list[list[str]]:
    return [m.params[1:3] for m in messages if m.command == "FAIL" and m.params[0] == command]


def test_register_mails_a_code_and_verify_logs_in(tmp_path: Path) -> None:
    with SmtpSink() as sink:
        h = _harness(tmp_path, account_verification="email", smtp_server=sink.address)
        user = h.connect()
        user.send("CAP LS 302")
        assert "draft/account-registration=before-connect,email-required" in " ".join(user.lines())
        user.send("NICK alice")
        user.send(f"REGISTER * * {PASSWORD}")
        assert _fails(user.messages(), "REGISTER") == [["INVALID_EMAIL", "alice"]]
        user.send(f"REGISTER * alice@example.org {PASSWORD}")
        reply = [m for m in user.messages() if m.command == "REGISTER"]
        assert reply[0].params[:2] == ["VERIFICATION_REQUIRED", "alice"]
        assert user.client.account is None
        mail = sink.received[-1]
        assert mail["To"] == "alice@example.org" and "alice" in mail["Subject"]

        # Not verified: no login, and the nick is not protected yet.
        other = _connecting(h, "alice_")
        assert "not verified" in _sasl_plain(other, "alice", PASSWORD)[-1]
        assert h.server.accounts is not None and not h.server.accounts.is_registered("alice")
        user.send("VERIFY alice WRONGCODE1")
        assert _fails(user.messages(), "VERIFY") == [["INVALID_CODE", "alice"]]
        user.send(f"VERIFY alice {_code(sink)}")
        messages = user.messages()
        assert [m.params[:2] for m in messages if m.command == "VERIFY"] == [["SUCCESS", "alice"]]
        assert any(m.command == "900" for m in messages) and user.client.account == "alice"
        assert h.server.accounts.is_registered("alice")


def test_nickserv_register_with_verification(tmp_path: Path) -> None:
    with SmtpSink() as sink:
        h = _harness(tmp_path, account_verification="email", smtp_server=sink.address)
        user = h.user("bob")
        user.send(f"PRIVMSG NickServ :REGISTER {PASSWORD} bob@example.org")
        assert "A code was sent to bob@example.org" in user.messages()[-1].params[1]
        user.send(f"PRIVMSG NickServ :VERIFY bob {_code(sink)}")
        assert user.client.account == "bob"


def test_unreachable_mail_server_refuses_the_registration_and_keeps_nothing(tmp_path: Path) -> None:
    with SmtpSink() as sink:
        address = sink.address
    h = _harness(tmp_path, account_verification="email", smtp_server=address)  # nobody listens now
    user = h.user("carol")
    user.send(f"REGISTER * carol@example.org {PASSWORD}")
    assert _fails(user.messages(), "REGISTER") == [["TEMPORARILY_UNAVAILABLE", "carol"]]
    assert h.server.accounts is not None and h.server.accounts.get("carol") is None


def test_an_expired_unverified_account_can_be_registered_again(tmp_path: Path) -> None:
    with SmtpSink() as sink:
        h = _harness(tmp_path, account_verification="email", smtp_server=sink.address,
                     account_verify_timeout_s=3600)
        squatter = h.user("dave")
        squatter.send(f"REGISTER * nobody@example.org {PASSWORD}")
        squatter.send("QUIT")
        owner = h.user("dave")
        owner.send(f"REGISTER * dave@example.org {PASSWORD}")
        assert _fails(owner.messages(), "REGISTER") == [["ACCOUNT_EXISTS", "dave"]]
        h.wall[0] += 3601
        owner.send(f"REGISTER * dave@example.org {PASSWORD}")
        assert [m.params[0] for m in owner.messages() if m.command == "REGISTER"] == ["VERIFICATION_REQUIRED"]
        owner.send(f"VERIFY dave {_code(sink)}")
        assert owner.client.account == "dave"


def test_an_expired_name_taken_anew_never_deletes_the_account_verified_meanwhile(tmp_path: Path) -> None:
    """Past account_verify_timeout_s, the owner sends VERIFY while someone holding the nick sends REGISTER,
    both before the store answers either: the verification lands first and the newcomer is told the
    account exists; the owner's verified account stays theirs."""
    with SmtpSink() as sink:
        h = _harness(tmp_path, deferred=True, account_verification="email", smtp_server=sink.address,
                     account_verify_timeout_s=60.0)
        owner = h.user("bob")
        owner.send(f"REGISTER * bob@example.org {PASSWORD}")
        code = _code(sink)
        owner.send("NICK bob_away")
        h.wall[0] += 120  # past account_verify_timeout_s
        squatter = h.user("bob")
        owner.send_unsettled(f"VERIFY bob {code}")  # the verification is on its way to the store
        squatter.send_unsettled(f"REGISTER * bob2@example.org {PASSWORD}-other")  # it saw: unverified, expired
        owner_said, squatter_said = owner.messages(), squatter.messages()
        assert [m.params[:2] for m in owner_said if m.command == "VERIFY"] == [["SUCCESS", "bob"]]
        assert _fails(squatter_said, "REGISTER") == [["ACCOUNT_EXISTS", "bob"]]
        accounts = h.server.accounts
        assert accounts is not None
        account = accounts.get("bob")
        assert account is not None and account.verified and account.email == "bob@example.org"
        assert owner.client.account == "bob" and squatter.client.account is None
