"""The configuration table: defaults, file and flags, and the values it refuses."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from salotto.cli import _overrides, build_parser
from salotto.config import KEYS, ConfigError, default_template, load_config
from salotto.passwords import hash_password

# A valid value for each kind, different from every default.
SAMPLE = {int: ("4242", 4242), float: ("42.5", 42.5), str: ("", "")}


def sample_flag_value(key: Any) -> tuple[str, Any]:
    if key.choices:
        choice = next((c for c in key.choices if c != key.default), key.default)
        return choice, choice
    if key.name in ("listen", "tls_listen", "web_listen", "web_tls_listen", "proxy_listen"):
        return "127.0.0.1:7000", ["127.0.0.1:7000"]
    if key.name in ("web_allowed_origins", "upload_public_url"):
        url = "https://chat.example.org"
        return url, [url] if key.kind is list else url
    if key.name == "upload_types":
        return "image/png", ["image/png"]
    if key.name == "autojoin":
        return "#elsewhere", ["#elsewhere"]
    if key.name in ("throttle_exempt", "trusted_proxies"):
        return "10.0.0.0/8", ["10.0.0.0/8"]
    if key.name == "server_name":
        return "irc.example.org", "irc.example.org"
    if key.name == "server_password_hash":
        hashed = hash_password("pw", n=2**4)
        return hashed, hashed
    if key.name in ("motd_file", "tls_cert_file", "tls_key_file"):
        return "", ""
    if key.name == "storage_url":
        return "postgresql://salotto@localhost/salotto", "postgresql://salotto@localhost/salotto"
    if key.kind is str:
        return "something else", "something else"
    return SAMPLE[key.kind]


def test_defaults_come_from_the_key_table() -> None:
    config = load_config()
    for key in KEYS:
        assert getattr(config, key.name) == key.default, key.name
    assert config.opers == {} and config.source_file is None


@pytest.mark.parametrize("key", KEYS, ids=lambda key: key.name)
def test_every_key_is_a_serve_flag(key: Any) -> None:
    if key.kind is bool:
        flag = key.flag if not key.default else "--no-" + key.flag[2:]
        args = build_parser().parse_args(["serve", flag])
        assert _overrides(args)[key.name] is (not key.default)
        assert getattr(load_config(None, _overrides(args)), key.name) is (not key.default)
        return
    text, value = sample_flag_value(key)
    args = build_parser().parse_args(["serve", key.flag, text])
    overrides = _overrides(args)
    if key.name in ("tls_listen", "web_tls_listen", "sts_duration_s", "sts_port"):
        overrides |= {"tls_cert_file": "cert.pem", "tls_key_file": "key.pem"}
    if key.name == "proxy_listen":
        overrides |= {"trusted_proxies": ["127.0.0.1"]}
    if key.name.startswith("sts_"):  # STS needs a TLS listener
        overrides |= {"tls_listen": ["127.0.0.1:6697"]}
    if key.name in ("storage_backend", "storage_url", "backplane"):  # postgresql needs its URL, a URL needs
        # postgresql, and a cluster needs postgresql
        pg = {"storage_backend": "postgresql", "storage_url": "postgresql://salotto@localhost/salotto"}
        overrides = pg | overrides
    assert overrides[key.name] == value
    assert getattr(load_config(None, overrides), key.name) == value


@pytest.mark.parametrize(("overrides", "named"), [
    ({"upload_types": ["image/svg+xml"]}, "'upload_types'"),
    ({"upload_types": ["text/html"]}, "'upload_types'"),
    ({"upload_public_url": "chat.example.org"}, "'upload_public_url'"),
    ({"upload_public_url": "https://chat.example.org/irc/"}, "'upload_public_url'"),
    ({"upload_public_url": "javascript:alert(1)"}, "'upload_public_url'"),
    ({"upload_max_file_bytes": 0}, "'upload_max_file_bytes'"),
    ({"upload_max_account_bytes": 0}, "'upload_max_account_bytes'"),
    ({"upload_retention_days": -1}, "'upload_retention_days'"),
    ({"upload_max_concurrent": 0}, "'upload_max_concurrent'"),
    ({"upload_max_concurrent_per_ip": 0}, "'upload_max_concurrent_per_ip'"),
    ({"download_max_concurrent": 0}, "'download_max_concurrent'"),
    ({"download_max_concurrent_per_ip": 0}, "'download_max_concurrent_per_ip'"),
    ({"upload_timeout_s": 0}, "'upload_timeout_s'"),
    ({"upload_sweep_interval_s": 0}, "'upload_sweep_interval_s'"),
])
def test_bad_upload_settings_name_their_key(overrides: dict[str, Any], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        load_config(None, overrides)


def test_flags_override_the_file(tmp_path: Path) -> None:
    path = tmp_path / "salotto.toml"
    path.write_text('max_targets = 6\nnetwork_name = "from-file"\nautojoin = ["#a", "#b"]\n')
    config = load_config(str(path), {"max_targets": 8})
    assert (config.max_targets, config.network_name, config.autojoin) == (8, "from-file", ["#a", "#b"])
    assert config.source_file == str(path)


def test_an_empty_list_flag_clears_the_list() -> None:
    args = build_parser().parse_args(["serve", "--autojoin", ""])
    assert load_config(None, _overrides(args)).autojoin == []


def test_integers_are_accepted_for_number_keys(tmp_path: Path) -> None:
    path = tmp_path / "salotto.toml"
    path.write_text("ping_interval_s = 30\n")
    config = load_config(str(path))
    assert config.ping_interval_s == 30.0 and isinstance(config.ping_interval_s, float)


def test_opers_blocks(tmp_path: Path) -> None:
    path = tmp_path / "salotto.toml"
    alice, bob = hash_password("alice's", n=2), hash_password("bob's", n=2)
    path.write_text(f'[opers.alice]\npassword_hash = "{alice}"\nhostmask = "*!*@127.0.0.1"\n'
                    f'[opers.bob]\npassword_hash = "{bob}"\n')
    opers = load_config(str(path)).opers
    assert opers["alice"].hostmask == "*!*@127.0.0.1" and opers["bob"].hostmask == "*!*@*"
    assert opers["alice"].password_hash == alice
    path.write_text(f'[opers.alice]\npassword_hash = """\n{alice}\n"""\n')  # pasted into a multi-line string
    assert load_config(str(path)).opers["alice"].password_hash == alice
    path.write_text(f'[opers.alice]\npassword_hash = "{alice}"\npassword = "plain"\n')
    with pytest.raises(ConfigError, match=r"opers\.alice\.password"):
        load_config(str(path))


@pytest.mark.parametrize("bad", ["notahash", "scrypt$x", "scrypt$32768$8$1$c2FsdA==", "scrypt$100$8$1$c2FsdA==$ZGln",
                                 "scrypt$32768$8$1$not base64$ZGln", "sha1$32768$8$1$c2FsdA==$ZGln"])
def test_an_oper_password_hash_that_is_not_one_is_refused(tmp_path: Path, bad: str) -> None:
    """A typo or a plain password in password_hash would make every OPER fail with 464 and no hint why."""
    path = tmp_path / "salotto.toml"
    path.write_text(f'[opers.alice]\npassword_hash = "{bad}"\n')
    with pytest.raises(ConfigError, match=r"config key 'opers\.alice\.password_hash' \(in .*salotto\.toml\): "
                                          r"bad value .*salotto mkpasswd"):
        load_config(str(path))


def test_a_config_file_that_is_not_utf8_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "salotto.toml"
    path.write_bytes('admin_name = "Jürgen"\n'.encode("latin-1"))
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(str(path))


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"max_clients": True}, "max_clients"),
        ({"max_clients": "10"}, "max_clients"),
        ({"flood_lines_per_s": 0.0}, "flood_lines_per_s"),
        ({"listen": []}, "listen"),
        ({"listen": ["127.0.0.1:"]}, "listen"),
        ({"tls_listen": ["127.0.0.1:6697"]}, "tls_listen"),  # without a certificate
        ({"web_tls_listen": ["127.0.0.1:8443"]}, "web_tls_listen"),
        ({"web_tls_listen": ["8443"], "tls_cert_file": "c.pem", "tls_key_file": "k.pem"}, "web_tls_listen"),
        ({"autojoin": ["#" + "x" * 60]}, "autojoin"),  # longer than channel_max_len
        ({"server_name": "bad name"}, "server_name"),
        ({"history_store_interval_s": -0.5}, "history_store_interval_s"),
        ({"history_store_max_messages": 0}, "history_store_max_messages"),
        ({"proxy_listen": ["127.0.0.1"], "trusted_proxies": ["127.0.0.1"]}, "proxy_listen"),
        ({"trusted_proxies": ["10.0.0.0/33"]}, "trusted_proxies"),
    ],
)
def test_bad_values_are_refused_naming_the_key(overrides: dict[str, Any], named: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(None, overrides)
    assert f"config key '{named}'" in str(info.value)


@pytest.mark.parametrize("name", [key.name for key in KEYS if key.kind is float])
def test_nan_is_refused(tmp_path: Path, name: str) -> None:
    path = tmp_path / "salotto.toml"
    path.write_text(f"{name} = nan\n")
    with pytest.raises(ConfigError, match=name):
        load_config(str(path))


def test_template_mentions_every_key_with_its_help() -> None:
    template = default_template()
    for key in KEYS:
        assert f"# {key.name} = " in template
        assert f"# {key.help}" in template


def test_throttle_exempt_takes_addresses_and_ranges_only() -> None:
    assert load_config(None, {"throttle_exempt": ["192.0.2.7", "2001:db8::/32"]}).throttle_exempt == [
        "192.0.2.7", "2001:db8::/32"]
    with pytest.raises(ConfigError, match=r"config key 'throttle_exempt' \(--throttle-exempt\): bad value 'localhost'"):
        load_config(None, {"throttle_exempt": ["localhost"]})


def test_trusted_proxies_take_addresses_and_ranges_only() -> None:
    assert load_config(None, {"trusted_proxies": ["192.0.2.7", "2001:db8::/32"]}).trusted_proxies == [
        "192.0.2.7", "2001:db8::/32"]
    with pytest.raises(ConfigError, match=r"config key 'trusted_proxies' \(--trusted-proxies\): bad value 'nginx'"):
        load_config(None, {"trusted_proxies": ["nginx"]})


def test_proxy_listen_needs_trusted_proxies_and_may_be_the_only_irc_listener(tmp_path: Path) -> None:
    path = tmp_path / "salotto.toml"
    path.write_text('listen = []\nproxy_listen = ["127.0.0.1:6668"]\n')
    with pytest.raises(ConfigError, match=r"config key 'proxy_listen' \(in .*salotto\.toml\): bad value "
                                          r"\['127\.0\.0\.1:6668'\] \(trusted_proxies must name the proxy"):
        load_config(str(path))
    path.write_text('listen = []\nproxy_listen = ["127.0.0.1:6668"]\ntrusted_proxies = ["127.0.0.1"]\n')
    assert load_config(str(path)).proxy_listen == ["127.0.0.1:6668"]


# -- storage_backend = "postgresql" and storage_url -------------------------------------------------


def test_postgresql_takes_a_storage_url() -> None:
    url = "postgresql://salotto:pw@db.example.org:5433/salotto"
    config = load_config(None, {"storage_backend": "postgresql", "storage_url": url})
    assert (config.storage_backend, config.storage_url) == ("postgresql", url)
    assert load_config().storage_url == ""  # SQLite needs none


@pytest.mark.parametrize(
    ("overrides", "named", "shown"),
    [
        ({"storage_backend": "postgresql"}, "storage_backend", "needs storage_url"),
        ({"storage_backend": "postgresql", "storage_url": "mysql://salotto:s3cret@h/db"}, "storage_url",
         "'mysql://salotto:***@h/db' (expected postgresql://"),
        ({"storage_backend": "postgresql", "storage_url": "salotto:s3cret@localhost/db"}, "storage_url",
         "expected postgresql://"),
        ({"storage_backend": "postgresql", "storage_url": "postgresql://salotto:s3cret@h:port/db"}, "storage_url",
         "'postgresql://salotto:***@h:port/db' (not a valid URL"),
        ({"storage_backend": "postgresql", "storage_url": "postgresql://salotto:s3cret@h"}, "storage_url",
         "names no database"),
        ({"storage_url": "postgresql://salotto:s3cret@h/db"}, "storage_url", "only storage_backend postgresql"),
        ({"storage_backend": "mysql"}, "storage_backend", "one of sqlite, postgresql"),
    ],
)
def test_bad_storage_settings_are_refused_without_showing_the_password(
    overrides: dict[str, Any], named: str, shown: str
) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(None, overrides)
    message = str(info.value)
    assert f"config key '{named}'" in message and shown in message, message
    assert "s3cret" not in message


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("postgresql://salotto:s3cret@localhost/salotto", "postgresql://salotto:***@localhost/salotto"),
        ("postgresql://salotto:s3:cr@t@[::1]:5432/db?sslmode=require",
         "postgresql://salotto:***@[::1]:5432/db?sslmode=require"),
        ("postgres://salotto@localhost/db?password=s3cret&sslmode=require",
         "postgres://salotto@localhost/db?password=***&sslmode=require"),
        ("postgresql://salotto@localhost/db", "postgresql://salotto@localhost/db"),  # no password: as given
        ("postgresql:///db?host=/run/postgresql", "postgresql:///db?host=/run/postgresql"),
        ("salotto:s3cret@localhost/db", "salotto:***@localhost/db"),  # no scheme: masked all the same
    ],
)
def test_mask_password(url: str, masked: str) -> None:
    from salotto.storage.urls import mask_password, url_password

    assert mask_password(url) == masked
    password = url_password(url)
    assert password is None or password not in mask_password(url)


def test_a_cluster_needs_the_shared_store_and_a_good_node_name() -> None:
    with pytest.raises(ConfigError, match=r"'backplane'.*storage_backend postgresql"):
        load_config(None, {"backplane": "redis"})
    pg = {"backplane": "redis", "storage_backend": "postgresql", "storage_url": "postgresql://s@localhost/s"}
    with pytest.raises(ConfigError, match=r"'node_name'.*bad value 'a:b'"):
        load_config(None, pg | {"node_name": "a:b"})
    with pytest.raises(ConfigError, match=r"'redis_url'.*'http://:\*\*\*@x'"):
        load_config(None, pg | {"redis_url": "http://:secret@x"})
    assert load_config(None, pg | {"node_name": "node-1"}).node_name == "node-1"
