"""Web Push subscriptions (soju.im/webpush) on every backend: one per account and endpoint, replaced by
the same endpoint again, kept across reopening, gone with the account."""

from __future__ import annotations

from salotto.storage import Storage
from salotto.storage.base import PushSubscription

from .conftest import Reopen


def test_subscriptions_are_per_account_and_endpoint(storage: Storage, reopen: Reopen) -> None:
    storage.create_account("Alice", "h", 1.0)
    storage.create_account("bob", "h", 1.0)
    phone = PushSubscription("Alice", "https://push.example/a", "key-a", "auth-a", 10.0)
    laptop = PushSubscription("alice", "https://push.example/b", "key-b", "auth-b", 11.0)
    bobs = PushSubscription("bob", "https://push.example/a", "key-c", "auth-c", 12.0)  # the same URL: bob's own
    assert storage.put_push_subscription(phone)
    assert storage.put_push_subscription(laptop)
    assert storage.put_push_subscription(bobs)
    assert not storage.put_push_subscription(PushSubscription("ghost", "https://x.example/", "k", "a", 1.0))
    renewed = PushSubscription("ALICE", "https://push.example/a", "key-new", "auth-new", 13.0)
    assert storage.put_push_subscription(renewed)  # replaces the phone's
    by_account = {(s.account, s.endpoint): (s.p256dh, s.auth) for s in reopen().list_push_subscriptions()}
    assert by_account == {
        ("Alice", "https://push.example/a"): ("key-new", "auth-new"),  # (the account's name as registered)
        ("Alice", "https://push.example/b"): ("key-b", "auth-b"),
        ("bob", "https://push.example/a"): ("key-c", "auth-c"),
    }
    assert storage.delete_push_subscription("alice", "https://push.example/b")
    assert not storage.delete_push_subscription("alice", "https://push.example/b")
    assert storage.delete_account("alice")  # the rest go with the account
    assert [(s.account, s.endpoint) for s in storage.list_push_subscriptions()] == [("bob", "https://push.example/a")]
