"""WEBPUSH (soju.im/webpush, draft/webpush): an account's devices subscribe to Web Push notifications.

https://github.com/emersion/soju/blob/master/doc/ext/webpush.md; what gets pushed, when: salotto.server.push.
"""

from __future__ import annotations

import base64
import binascii

from salotto.proto.framing import valid_utf8
from salotto.proto.message import parse_tags
from salotto.proto.numerics import ERR_UNKNOWNCOMMAND
from salotto.server.context import Context
from salotto.storage.base import PushSubscription
from salotto.storage.outcome import Outcome

__all__ = ["handle_webpush", "parse_keys"]


def handle_webpush(ctx: Context) -> None:
    # WEBPUSH REGISTER <endpoint> <keys> | WEBPUSH UNREGISTER <endpoint>
    server = ctx.server
    push = server.push
    accounts = server.accounts
    if push is None or accounts is None:
        ctx.reply(ERR_UNKNOWNCOMMAND, "WEBPUSH", "Push notifications are off on this server")
        return
    params = ctx.msg.params
    subcommand = params[0].upper() if params else ""
    endpoint = params[1] if len(params) > 1 else ""
    if subcommand not in ("REGISTER", "UNREGISTER"):
        ctx.fail("WEBPUSH", "INVALID_PARAMS", _word(subcommand), _word(endpoint),
                 description="Unknown subcommand: REGISTER or UNREGISTER")
        return
    wanted = 3 if subcommand == "REGISTER" else 2
    if len(params) != wanted or _word(endpoint) is not endpoint or valid_utf8(endpoint) is not endpoint:
        ctx.fail("WEBPUSH", "INVALID_PARAMS", subcommand, _word(endpoint),
                 description=f"WEBPUSH {subcommand} takes {'<endpoint> <keys>' if wanted == 3 else '<endpoint>'}")
        return
    account = ctx.client.account
    if account is None:
        ctx.fail("WEBPUSH", "ACCOUNT_REQUIRED", subcommand, endpoint,
                 description="Log in to an account to get push notifications")
        return
    if subcommand == "UNREGISTER":
        if endpoint not in push.of(account):  # (the spec: silently ignored)
            ctx.from_server("WEBPUSH", "UNREGISTER", endpoint)
            return

        def deleted(outcome: Outcome[bool]) -> None:
            if outcome.error is not None:
                ctx.fail("WEBPUSH", "INTERNAL_ERROR", "UNREGISTER", endpoint,
                         description="Could not remove it; try again")
                return
            push.removed(account, endpoint)
            ctx.from_server("WEBPUSH", "UNREGISTER", endpoint)

        accounts.write(lambda store: store.delete_push_subscription(account, endpoint), ctx.wait(deleted))
        return
    keys = parse_keys(params[2])
    problem = "Keys must be p256dh=<key>;auth=<secret>, URL-safe base64" if keys is None else None
    if keys is not None:
        problem = push.sender.check(endpoint, keys[0], keys[1])
    if problem is not None or keys is None:
        ctx.fail("WEBPUSH", "INVALID_PARAMS", "REGISTER", endpoint, description=problem or "Invalid keys")
        return
    if _too_many(ctx, account, endpoint):
        return
    subscription = PushSubscription(account, endpoint, _b64(keys[0]), _b64(keys[1]), int(server.wallclock()))

    def stored(outcome: Outcome[bool]) -> None:
        if outcome.error is not None or not outcome.value:
            ctx.fail("WEBPUSH", "INTERNAL_ERROR", "REGISTER", endpoint, description="Could not store it; try again")
            return
        push.added(subscription)
        ctx.from_server("WEBPUSH", "REGISTER", endpoint)

    def resolved(refusal: tuple[str, str] | None) -> None:
        if refusal is not None:
            ctx.fail("WEBPUSH", refusal[0], "REGISTER", endpoint, description=refusal[1])
        elif not _too_many(ctx, account, endpoint):  # (again: another connection may have registered meanwhile)
            accounts.write(lambda store: store.put_push_subscription(subscription), ctx.wait(stored))

    # The host's addresses now, so that the client hears of a refused one (they are checked again at each push).
    ctx.call(lambda done: push.sender.resolve(endpoint, done), resolved)


def _too_many(ctx: Context, account: str, endpoint: str) -> bool:
    """Whether the account has its most subscriptions already (and not this endpoint): then FAIL says so."""
    push = ctx.server.push
    assert push is not None
    existing = push.of(account)
    limit = ctx.server.config.webpush_max_subscriptions_per_account
    if endpoint in existing or len(existing) < limit:
        return False
    ctx.fail("WEBPUSH", "MAX_REGISTRATIONS", "REGISTER", endpoint,
             description=f"This account has {limit} push subscriptions already "
                         "(webpush_max_subscriptions_per_account); unregister one first")
    return True


def _word(text: str) -> str:
    """``text`` as a FAIL's context parameter (one word, not starting with ':'), else ``*``."""
    return text if text and " " not in text and text[0] != ":" else "*"


def parse_keys(text: str) -> tuple[bytes, bytes] | None:
    """``p256dh=<key>;auth=<secret>`` (message-tag format, URL-safe base64 values, padded or not) as the
    two byte strings; None when either is missing or not base64. Other keys are ignored."""
    values = parse_tags(text)
    try:
        return _unb64(values["p256dh"]), _unb64(values["auth"])
    except (KeyError, ValueError, binascii.Error):
        return None


def _unb64(value: str) -> bytes:
    if not value or not value.isascii():
        raise ValueError("empty or not ASCII")
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")
