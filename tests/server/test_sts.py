"""IRCv3 Strict Transport Security (https://ircv3.net/specs/extensions/sts): the persistence policy on TLS
connections, the upgrade policy on plaintext ones, never without a TLS port to send clients to."""

from __future__ import annotations

from typing import Any

import pytest

from salotto.config import ConfigError, load_config
from tests.server.harness import Harness, User

TLS = {"tls_listen": ["0.0.0.0:6697"], "tls_cert_file": "cert.pem", "tls_key_file": "key.pem"}
MONTH_S = 30 * 86400


def offered(user: User, version: str = "302") -> dict[str, str]:
    user.send(f"CAP LS {version}".strip())
    caps: dict[str, str] = {}
    for msg in user.messages():
        assert msg.command == "CAP" and msg.params[1] == "LS"
        for item in msg.params[-1].split():
            name, _, value = item.partition("=")
            caps[name] = value
    return caps


def harness(**overrides: Any) -> Harness:
    h = Harness(**overrides)
    if overrides.get("tls_listen"):
        h.server.tls_port = 6697  # the runtime sets it from the bound TLS listener
    return h


def connect(h: Harness, transport: str) -> User:
    user = h.connect()
    user.conn.transport_name = transport  # type: ignore[misc]
    return user


def test_no_tls_listener_no_sts() -> None:
    h = harness()
    for transport in ("tcp", "tls", "websocket"):
        assert "sts" not in offered(connect(h, transport))


def test_plaintext_is_sent_to_the_tls_port_and_tls_gets_the_duration() -> None:
    h = harness(**TLS, sts_duration_s=MONTH_S)
    assert offered(connect(h, "tcp"))["sts"] == "port=6697"
    assert offered(connect(h, "tls"))["sts"] == f"duration={MONTH_S}"


def test_preload_only_with_a_duration_and_only_on_tls() -> None:
    h = harness(**TLS, sts_duration_s=MONTH_S, sts_preload=True)
    assert offered(connect(h, "tls"))["sts"] == f"duration={MONTH_S},preload"
    assert offered(connect(h, "tcp"))["sts"] == "port=6697"
    h = harness(**TLS, sts_preload=True)
    assert offered(connect(h, "tls"))["sts"] == "duration=0"


def test_duration_0_upgrades_no_one_and_tells_tls_clients_to_drop_the_policy() -> None:
    h = harness(**TLS)  # the default
    assert "sts" not in offered(connect(h, "tcp"))
    assert offered(connect(h, "tls"))["sts"] == "duration=0"


def test_sts_port_names_the_public_port() -> None:
    h = harness(**TLS, sts_duration_s=MONTH_S, sts_port=443)
    assert offered(connect(h, "tcp"))["sts"] == "port=443"


def test_websocket_clients_and_pre_302_clients_get_no_policy() -> None:
    h = harness(**TLS, sts_duration_s=MONTH_S)
    assert "sts" not in offered(connect(h, "websocket"))
    assert "sts" not in offered(connect(h, "tcp"), version="")
    assert "sts" not in offered(connect(h, "tls"), version="")


def test_sts_cannot_be_requested() -> None:
    h = harness(**TLS, sts_duration_s=MONTH_S)
    user = connect(h, "tcp")
    offered(user)
    user.send("CAP REQ :sts")
    assert [(m.command, m.params) for m in user.messages()] == [("CAP", ["*", "NAK", "sts"])]
    user.send("CAP REQ :server-time")
    assert [(m.command, m.params) for m in user.messages()] == [("CAP", ["*", "ACK", "server-time"])]


def test_a_rehash_changes_the_policy_for_the_next_cap_ls() -> None:
    h = harness(**TLS, sts_duration_s=MONTH_S)
    user = connect(h, "tls")
    assert offered(user)["sts"] == f"duration={MONTH_S}"
    h.server.apply_config(load_config(None, {**TLS, "sts_duration_s": 0}))
    assert offered(user)["sts"] == "duration=0"


@pytest.mark.parametrize(
    ("overrides", "why"),
    [
        ({"sts_duration_s": MONTH_S}, "needs a TLS listener"),
        ({"sts_port": 6697}, "needs a TLS listener"),
        ({**TLS, "sts_duration_s": MONTH_S, "listen": ["0.0.0.0:6667"], "sts_port": 6667}, "plaintext listen port"),
        ({**TLS, "sts_port": 70000}, "at most 65535"),
        ({**TLS, "sts_duration_s": -1}, "at least 0"),
    ],
)
def test_sts_never_points_at_a_port_without_tls(overrides: dict[str, Any], why: str) -> None:
    with pytest.raises(ConfigError, match=why):
        load_config(None, overrides)


def test_the_same_port_number_on_another_address_may_speak_tls() -> None:
    config = load_config(None, {**TLS, "listen": ["127.0.0.1:6697"], "tls_listen": ["192.0.2.1:6697"],
                                "sts_port": 6697})
    assert config.sts_port == 6697
