"""Configuration: one table of keys, read from TOML, overridden by CLI flags, validated at start.

Every key has a name, a type, a default and a line of help; the CLI flags (``--max-sendq-bytes``) and
the commented file that ``salotto init`` writes are generated from the same table, so they cannot
drift apart. Durations and sizes carry their unit in the name.
"""

from __future__ import annotations

import copy
import dataclasses
import ipaddress
import math
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from salotto.passwords import is_password_hash
from salotto.proto.filetypes import UPLOAD_TYPES
from salotto.proto.names import is_valid_channel, is_valid_hostname
from salotto.storage.urls import mask_password, postgresql_url_problem

__all__ = [
    "DEFAULT_ORIGIN", "KEYS", "Config", "ConfigError", "Key", "OperBlock", "bad_value", "default_template",
    "load_config", "toml_value",
]

# Where a setting nobody set comes from, as error messages say it.
DEFAULT_ORIGIN = "the default"


class ConfigError(Exception):
    """A setting is wrong. One line, naming the key, where it was set (flag, file or default) and the value."""


def bad_value(name: str, value: Any, why: str, origin: str = "") -> ConfigError:
    """``config key 'max_clients' (--max-clients): bad value -5 (must be at least 1)``.

    ``origin`` is where the value came from: a flag (``--max-clients``), a file (``in salotto.toml``) or
    :data:`DEFAULT_ORIGIN`; :meth:`Config.origin` tells it for a loaded config.
    """
    where = f" ({origin})" if origin else ""
    return ConfigError(f"config key {name!r}{where}: bad value {value!r} ({why})")


@dataclass(frozen=True, slots=True)
class Key:
    name: str
    kind: type  # int, float, str, bool or list (of str)
    default: Any
    help: str
    minimum: float | None = None
    choices: tuple[str, ...] = ()

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


def _default_data_dir() -> str:
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return os.path.join(base, "salotto")


KEYS: tuple[Key, ...] = (
    Key("server_name", str, "salotto.local", "This server's name, shown as the source of its replies."),
    Key("network_name", str, "salotto", "The network name advertised in ISUPPORT (NETWORK=)."),
    Key("listen", list, ["127.0.0.1:6667"], "Plaintext IRC listeners, HOST:PORT. 0.0.0.0:6667 opens to the LAN."),
    Key("tls_listen", list, [], "TLS IRC listeners, HOST:PORT (needs tls_cert_file and tls_key_file)."),
    Key("tls_cert_file", str, "", "PEM certificate chain for the TLS listeners."),
    Key("tls_key_file", str, "", "PEM private key for the TLS listeners."),
    Key("sts_duration_s", int, 0,
        "STS (IRCv3): seconds clients must keep to TLS, told on TLS connections; above 0, plaintext clients are "
        "also sent to the TLS port. 0: no upgrade, and clients drop a policy they had.", 0),
    Key("sts_port", int, 0,
        "The TLS port STS sends plaintext clients to, when the public one differs (NAT, proxy); 0: the first "
        "tls_listen port.", 0),
    Key("sts_preload", bool, False, "Let STS-aware clients put this server in their preload lists."),
    Key("web_listen", list, ["127.0.0.1:8080"],
        "HTTP listeners for the browser client, WebSocket IRC, /metrics and /healthz; [] disables them."),
    Key("web_tls_listen", list, [],
        "HTTPS listeners: the web port over TLS (page, WSS, /metrics, /healthz), with tls_cert_file and tls_key_file."),
    Key("web_allowed_origins", list, [],
        "Origins allowed to open the WebSocket besides the page's own (e.g. https://chat.example.org)."),
    Key("proxy_listen", list, [],
        "Plaintext IRC listeners, HOST:PORT, for a proxy that sends the PROXY protocol header (v1 or v2) first; "
        "only from trusted_proxies."),
    Key("trusted_proxies", list, [],
        "Reverse proxies (addresses or CIDR ranges) believed about the client's address: Forwarded and "
        "X-Forwarded-For on the web port, the PROXY header on proxy_listen. Nobody else's headers are read."),
    Key("data_dir", str, _default_data_dir(), "Where the server keeps its data."),
    Key("storage_backend", str, "sqlite",
        "Where accounts, channels and history are kept: sqlite (a file in data_dir) or postgresql (storage_url).",
        choices=("sqlite", "postgresql")),
    Key("storage_url", str, "",
        "With storage_backend postgresql: postgresql://USER:PASSWORD@HOST[:PORT]/DATABASE (never shown unmasked)."),
    Key("backplane", str, "local",
        "local: one server alone. redis: several nodes act as one network through Redis (redis_url), sharing "
        "PostgreSQL (storage_backend postgresql); see docs/cluster.md.", choices=("local", "redis")),
    Key("redis_url", str, "redis://127.0.0.1:6379/0",
        "With backplane redis: redis://[:PASSWORD@]HOST[:PORT]/DB (rediss:// for TLS; never shown unmasked)."),
    Key("node_name", str, "",
        "With backplane redis: this node's name, unique in the network (letters, digits, - and _); "
        "empty: server_name."),
    Key("cluster_node_timeout_s", float, 10.0,
        "With backplane redis: a node not heard of for this long is taken for dead; its users quit elsewhere.", 1),
    Key("history_enabled", bool, True, "Store channel and private messages (CHATHISTORY, replay on join)."),
    Key("history_private", bool, True, "Store private messages too, not only channel messages."),
    Key("history_max_age_s", float, 365 * 86400.0, "Delete history older than this (a year); 0 keeps it forever.", 0),
    Key("history_max_per_target", int, 100000,
        "Keep at most this many messages per channel or conversation; 0: no limit.", 0),
    Key("history_commit_interval_s", float, 0.001,
        "Under load, history is made durable at most this often; output waits for it (group commit).", 0),
    Key("history_store_interval_s", float, 0.025,
        "How often the messages waiting in the history journal go into the database (in one batch).", 0),
    Key("history_store_max_messages", int, 1000,
        "Messages that may wait in the history journal before they go into the database anyway.", 1),
    Key("history_store_retry_s", float, 300.0,
        "How long messages the database refuses (locked, full, unreachable) are offered again, every second, "
        "before they are given up (history_failed_writes_total); 0 gives them up at once.", 0),
    Key("history_max_waiting_messages", int, 200_000,
        "Messages that may wait for a slow or unreachable database (about 1 KiB of memory each); past this, "
        "the server slows to the database's pace.", 1),
    Key("history_prune_interval_s", float, 3600.0, "How often retention runs.", 1),
    Key("chathistory_max_lines", int, 100, "Most messages one CHATHISTORY request returns (CHATHISTORY=).", 1),
    Key("history_replay_lines", int, 10,
        "Messages replayed on join to clients without chathistory; 0 disables the replay.", 0),
    # Search (soju.im/search: SEARCH).
    Key("search", bool, True,
        "Keep a full-text index of history and offer search (soju.im/search). false: no index is kept (it is "
        "dropped at start) and SEARCH is unknown; true again: the index is rebuilt from history at start."),
    Key("search_default_limit", int, 50, "Messages a SEARCH returns when it gives no limit.", 1),
    Key("search_max_limit", int, 100, "Most messages one SEARCH returns (a larger limit is lowered to this).", 1),
    Key("search_timeout_ms", int, 2000,
        "A search still running after this long is stopped (FAIL SEARCH INTERNAL_ERROR); one that waited this "
        "long for its turn is not run (FAIL SEARCH TEMPORARILY_UNAVAILABLE).", 1),
    Key("search_per_ip", int, 30,
        "Searches one IP address (an IPv6 /64) may run per search_window_s, all its connections together.", 1),
    Key("search_window_s", float, 60.0, "The window of search_per_ip.", 1),
    Key("search_max_running", int, 1,
        "Searches running at once in the whole server; later ones wait their turn (the history readers "
        "stay free for CHATHISTORY).", 1),
    Key("redaction_window_s", float, 900.0,
        "How long after sending a message its author may delete it (REDACT); channel and server "
        "operators may at any time; 0: only they may.", 0),
    Key("account_registration", bool, True,
        "Let users register accounts (REGISTER, /msg NickServ REGISTER); existing accounts work either way."),
    Key("account_verification", str, "none",
        "How new accounts are verified: none, or email (a code mailed through smtp_server; VERIFY).",
        choices=("none", "email")),
    Key("account_verify_timeout_s", float, 86400.0,
        "An unverified account older than this can be registered again by someone else.", 1),
    Key("smtp_server", str, "127.0.0.1:25", "HOST:PORT of the mail server that sends verification codes."),
    Key("smtp_from", str, "salotto@localhost", "The From address of verification emails."),
    Key("account_password_min_len", int, 8, "Shortest password accepted when registering an account.", 1),
    Key("account_registrations_per_ip", int, 3,
        "Accounts one IP address may register per account_registration_window_s.", 1),
    Key("account_registrations", int, 30, "Accounts the whole server registers per account_registration_window_s.", 1),
    Key("account_registration_window_s", float, 600.0, "The window of the two registration limits above.", 1),
    Key("read_markers_max_targets", int, 200,
        "Read markers (MARKREAD) one account keeps; past this, setting one forgets its oldest.", 1),
    Key("read_markers_max_total", int, 1_000_000,
        "Read markers the server keeps in all (about 150 bytes of memory each); past this, a marker on a new "
        "target is refused (FAIL MARKREAD INTERNAL_ERROR).", 1),
    Key("multiclient", bool, True,
        "A connection logged in to the account that holds a nick may take that nick too: one user, several devices."),
    Key("multiclient_max_devices", int, 5,
        "Connections one user may have at once (its first included); one more is refused with 433.", 1),
    Key("always_on_default", bool, False,
        "Whether accounts are always-on unless their owner says otherwise (NickServ SET ALWAYS-ON)."),
    Key("always_on_max_accounts", int, 100,
        "Accounts that may set always-on (past this NickServ refuses it), and users left with no connection "
        "at once (past this, a user's last connection going is a normal QUIT).", 0),
    Key("nick_protection_grace_s", float, 30.0,
        "Time to log in after taking a registered nick before being renamed; 0 refuses the nick at once.", 0),
    Key("login_attempts_per_account", int, 5,
        "Password attempts against one account per login_throttle_window_s, from anywhere; and the server "
        "password's, from all the addresses that guessed it wrong together.", 1),
    Key("login_attempts_per_ip", int, 10, "Password attempts from one IP address per login_throttle_window_s.", 1),
    Key("login_throttle_window_s", float, 60.0, "The window of the two login limits above.", 1),
    Key("server_password_hash", str, "",
        "A private server: everyone must send this password (PASS) to connect; the hash from `salotto mkpasswd`. "
        "Empty: no server password."),
    Key("oper_attempts_per_connection", int, 3, "OPER password tries one connection gets (then: reconnect).", 1),
    Key("sasl_max_payload_bytes", int, 4096, "Longest SASL payload (AUTHENTICATE chunks together); 905 above.", 400),
    Key("max_channels_per_account", int, 20, "Channels one account may register with ChanServ.", 1),
    Key("motd_file", str, "", "A text file shown as the message of the day; empty for the built-in one."),
    Key("autojoin", list, ["#lobby"], "Channels every client joins on registration; [] disables it."),
    Key("admin_name", str, "salotto administrator", "Shown by ADMIN."),
    Key("admin_location", str, "", "Shown by ADMIN."),
    Key("admin_email", str, "", "Shown by ADMIN."),
    Key("log_level", str, "info", "Log level.", choices=("debug", "info", "warning", "error")),
    Key("log_format", str, "text", "Log line format.", choices=("text", "json")),
    # Limits. Defaults follow what common servers use; each is overridable.
    Key("max_line_bytes", int, 512, "Longest line without tags, CRLF included (RFC 1459: 512).", 64),
    Key("max_tags_bytes", int, 4096,
        "Longest tag section a client may send, '@' and the space included (IRCv3 message-tags: 4096).", 0),
    Key("flood_burst_lines", int, 20, "Lines a client may send at once before fakelag slows it.", 1),
    Key("flood_lines_per_s", float, 4.0, "Sustained lines per second a client may send.", 0.01),
    Key("flood_max_queued_lines", int, 100, "Lines held back by fakelag before disconnecting (Excess Flood).", 1),
    Key("max_sendq_bytes", int, 1048576, "Unsent bytes per client before it is disconnected (SendQ exceeded).",
        1024),
    Key("multiline_max_bytes", int, 4096,
        "Most bytes of text in one draft/multiline message (its lines and line breaks; max-bytes).", 1),
    Key("multiline_max_lines", int, 100,
        "Most lines in one draft/multiline message (max-lines). Sent at once they pass fakelag like any: keep "
        "it under flood_burst_lines + flood_max_queued_lines.", 1),
    Key("multiline_timeout_s", float, 60.0,
        "A draft/multiline batch still open after this long is dropped (FAIL BATCH TIMEOUT).", 1),
    Key("max_clients", int, 16384, "Connections the server accepts in all.", 1),
    Key("max_connections_per_ip", int, 20, "Connections accepted from one IP address.", 1),
    Key("connect_attempts_per_ip", int, 32,
        "New connections one IP address (an IPv6 /64) may open per connect_throttle_window_s.", 1),
    Key("connect_throttle_window_s", float, 600.0, "The window of connect_attempts_per_ip.", 1),
    Key("max_pending_connections", int, 1000,
        "Connections that are not IRC clients yet: TLS handshakes, page loads and WebSocket handshakes, in all.",
        1),
    Key("max_pending_connections_per_ip", int, 20, "The same, from one IP address (an IPv6 /64).", 1),
    Key("throttle_exempt", list, ["127.0.0.0/8", "::1/128"],
        "Addresses (or CIDR ranges) the connect and registration throttles do not apply to: this machine's."),
    Key("registration_timeout_s", float, 30.0, "Time to finish NICK/USER/CAP before being disconnected.", 0.1),
    Key("ping_interval_s", float, 120.0, "Idle time before the server sends PING.", 0.1),
    Key("ping_timeout_s", float, 60.0, "Time to answer a PING before being disconnected.", 0.1),
    Key("nick_max_len", int, 30, "Longest nickname (NICKLEN).", 1),
    Key("channel_max_len", int, 50, "Longest channel name (CHANNELLEN).", 2),
    Key("topic_max_len", int, 390, "Longest topic (TOPICLEN).", 1),
    Key("away_max_len", int, 200, "Longest away message (AWAYLEN).", 1),
    Key("kick_max_len", int, 255, "Longest kick reason (KICKLEN).", 1),
    Key("realname_max_len", int, 100, "Longest real name (USER, SETNAME).", 1),
    Key("max_channels_per_user", int, 50, "Channels one client may be in (CHANLIMIT).", 1),
    Key("max_targets", int, 4, "Targets of one PRIVMSG/NOTICE/JOIN... (TARGMAX).", 1),
    Key("max_list_entries", int, 100, "Entries of each ban/exception/invite list (MAXLIST).", 1),
    Key("large_channel_threshold", int, 500,
        "Above this many members, joins/parts/quits are shown only to channel operators.", 1),
    Key("whowas_max_entries", int, 1000, "Nicknames remembered for WHOWAS.", 0),
    Key("who_max_results", int, 500, "Replies to one WHO mask query, so WHO * stays bounded.", 1),
    Key("monitor_max_targets", int, 100, "Nicks one client may watch with MONITOR (MONITOR=).", 1),
    # Web Push (soju.im/webpush, draft/webpush): notifications for accounts none of whose devices is connected.
    Key("webpush", bool, True,
        "Web Push notifications (soju.im/webpush): private messages and mentions reach an always-on account's "
        "subscribed devices while none of them is connected. Needs accounts; the VAPID key is made in data_dir."),
    Key("webpush_vapid_subject", str, "",
        "Who runs this server, told to push services with each push (VAPID 'sub': mailto: or https: URL); "
        "empty: mailto:admin_email, else https://server_name."),
    Key("webpush_max_subscriptions_per_account", int, 10,
        "Push subscriptions (devices, browsers) one account may register; one more is refused.", 1),
    Key("webpush_allow_http", bool, False,
        "Accept push endpoints over plain http:// (only for testing: push services speak https)."),
    Key("webpush_allow_private_addresses", bool, False,
        "Accept push endpoints on loopback, private, link-local and other non-public addresses (only for "
        "testing: an endpoint is a URL the server POSTs to)."),
    Key("webpush_timeout_s", float, 10.0, "Time a push service has to answer one push.", 0.1),
    Key("webpush_ttl_s", int, 86400, "How long a push service keeps a push for a device that is offline (TTL).", 0),
    Key("webpush_max_concurrent", int, 4, "Pushes being sent at once (each holds a thread while it waits).", 1),
    Key("webpush_max_queued", int, 1000,
        "Pushes waiting to be sent (past this, new ones are dropped and counted); and endpoint look-ups of "
        "WEBPUSH REGISTER waiting (past this, FAIL WEBPUSH INTERNAL_ERROR).", 1),
    Key("webpush_burst", int, 5, "Pushes one subscription may get at once before webpush_per_minute applies.", 1),
    Key("webpush_per_minute", float, 10.0, "Sustained pushes per minute per subscription; more are dropped.", 0.01),
    # File uploads (soju.im/FILEHOST) on the web port; docs/files.md.
    Key("uploads", bool, True,
        "Let logged-in accounts upload files on the web port (POST /upload, soju.im/FILEHOST); needs a web listener."),
    Key("upload_public_url", str, "",
        "The web port's public address, as people open it (https://chat.example.org): the base of FILEHOST and "
        "of file links. Empty: the address the request came to (Host), or the first web listener's."),
    Key("upload_max_file_bytes", int, 25 * 1024 * 1024, "Largest file one upload may hold (413 above).", 1),
    Key("upload_max_account_bytes", int, 500 * 1024 * 1024,
        "Bytes of files one account may keep at once (413 past it, until old ones expire).", 1),
    Key("upload_retention_days", float, 90.0, "Uploaded files are deleted this many days after upload; 0 keeps them.",
        0),
    Key("upload_sweep_interval_s", float, 3600.0, "How often expired files are looked for and deleted.", 0.1),
    Key("upload_max_concurrent", int, 32, "Uploads in progress at once, in all (503 past it).", 1),
    Key("upload_max_concurrent_per_ip", int, 3, "Uploads in progress at once from one IP address (an IPv6 /64).", 1),
    Key("download_max_concurrent", int, 256,
        "File downloads in progress at once, in all (503 past it). Each holds a place among "
        "max_pending_connections while it lasts: keep this well below it, so page loads always find one.", 1),
    Key("download_max_concurrent_per_ip", int, 8,
        "File downloads in progress at once from one IP address (an IPv6 /64; 503 past it).", 1),
    Key("upload_timeout_s", float, 300.0,
        "An upload must arrive whole within this many seconds of its request (slow senders are cut); a download "
        "whose reader takes nothing for this long is cut too.", 1),
    Key("upload_types", list, list(UPLOAD_TYPES),
        "Content types (sniffed from the bytes, never the client's word) an upload may have; others get 415. "
        "application/octet-stream is every file of no known type."),
)

_BY_NAME = {key.name: key for key in KEYS}


@dataclass(frozen=True, slots=True)
class OperBlock:
    """``[opers.NAME]``: who may become a server operator, with a hashed password."""

    name: str
    password_hash: str
    hostmask: str = "*!*@*"


@dataclass(slots=True)
class Config:
    """The validated settings; the defaults live in :data:`KEYS` (``load_config()`` gives them)."""

    server_name: str
    network_name: str
    listen: list[str]
    tls_listen: list[str]
    tls_cert_file: str
    tls_key_file: str
    sts_duration_s: int
    sts_port: int
    sts_preload: bool
    web_listen: list[str]
    web_tls_listen: list[str]
    web_allowed_origins: list[str]
    proxy_listen: list[str]
    trusted_proxies: list[str]
    data_dir: str
    storage_backend: str
    storage_url: str
    backplane: str
    redis_url: str
    node_name: str
    cluster_node_timeout_s: float
    history_enabled: bool
    history_private: bool
    history_max_age_s: float
    history_max_per_target: int
    history_commit_interval_s: float
    history_store_interval_s: float
    history_store_max_messages: int
    history_store_retry_s: float
    history_max_waiting_messages: int
    history_prune_interval_s: float
    chathistory_max_lines: int
    history_replay_lines: int
    search: bool
    search_default_limit: int
    search_max_limit: int
    search_timeout_ms: int
    search_per_ip: int
    search_window_s: float
    search_max_running: int
    redaction_window_s: float
    account_registration: bool
    account_verification: str
    account_verify_timeout_s: float
    smtp_server: str
    smtp_from: str
    account_password_min_len: int
    account_registrations_per_ip: int
    account_registrations: int
    account_registration_window_s: float
    read_markers_max_targets: int
    read_markers_max_total: int
    multiclient: bool
    multiclient_max_devices: int
    always_on_default: bool
    always_on_max_accounts: int
    nick_protection_grace_s: float
    login_attempts_per_account: int
    login_attempts_per_ip: int
    login_throttle_window_s: float
    server_password_hash: str
    oper_attempts_per_connection: int
    sasl_max_payload_bytes: int
    max_channels_per_account: int
    motd_file: str
    autojoin: list[str]
    admin_name: str
    admin_location: str
    admin_email: str
    log_level: str
    log_format: str
    max_line_bytes: int
    max_tags_bytes: int
    flood_burst_lines: int
    flood_lines_per_s: float
    flood_max_queued_lines: int
    max_sendq_bytes: int
    multiline_max_bytes: int
    multiline_max_lines: int
    multiline_timeout_s: float
    max_clients: int
    max_connections_per_ip: int
    connect_attempts_per_ip: int
    connect_throttle_window_s: float
    max_pending_connections: int
    max_pending_connections_per_ip: int
    throttle_exempt: list[str]
    registration_timeout_s: float
    ping_interval_s: float
    ping_timeout_s: float
    nick_max_len: int
    channel_max_len: int
    topic_max_len: int
    away_max_len: int
    kick_max_len: int
    realname_max_len: int
    max_channels_per_user: int
    max_targets: int
    max_list_entries: int
    large_channel_threshold: int
    whowas_max_entries: int
    who_max_results: int
    monitor_max_targets: int
    webpush: bool
    webpush_vapid_subject: str
    webpush_max_subscriptions_per_account: int
    webpush_allow_http: bool
    webpush_allow_private_addresses: bool
    webpush_timeout_s: float
    webpush_ttl_s: int
    webpush_max_concurrent: int
    webpush_max_queued: int
    webpush_burst: int
    webpush_per_minute: float
    uploads: bool
    upload_public_url: str
    upload_max_file_bytes: int
    upload_max_account_bytes: int
    upload_retention_days: float
    upload_sweep_interval_s: float
    upload_max_concurrent: int
    upload_max_concurrent_per_ip: int
    download_max_concurrent: int
    download_max_concurrent_per_ip: int
    upload_timeout_s: float
    upload_types: list[str]
    opers: dict[str, OperBlock] = field(default_factory=dict)
    source_file: str | None = None
    # Key name -> the flag or "in FILE" it was set by; keys absent here have their default.
    origins: dict[str, str] = field(default_factory=dict, compare=False, repr=False)

    def origin(self, name: str) -> str:
        """Where the value of key ``name`` was set, for error messages: its flag, its file or the default."""
        return self.origins.get(name, DEFAULT_ORIGIN)


def _coerce(key: Key, value: Any, origin: str) -> Any:
    bad = bad_value(key.name, value, f"expected {_kind_name(key)}", origin)
    if key.kind is bool:
        if not isinstance(value, bool):
            raise bad
        return value
    if key.kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad
    elif key.kind is float:
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise bad
        value = float(value)
    elif key.kind is str:
        if not isinstance(value, str):
            raise bad
    elif key.kind is list:
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise bad
        value = list(value)
    if key.minimum is not None and value < key.minimum:
        raise bad_value(key.name, value, f"must be at least {key.minimum:g}", origin)
    if key.choices and value not in key.choices:
        raise bad_value(key.name, value, f"one of {', '.join(key.choices)}", origin)
    return value


def _kind_name(key: Key) -> str:
    return {int: "an integer", float: "a finite number", str: "a string", bool: "true or false",
            list: "a list of strings"}[key.kind]


def parse_host_port(text: str, key: str, origin: str = "") -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:6667`` for IPv6) -> (host, port), or ConfigError naming the key and ``origin``."""
    host, sep, port_text = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise bad_value(key, text, "expected HOST:PORT", origin)
    return host, int(port_text)


def _validate(config: Config) -> None:
    origin = config.origin
    if not is_valid_hostname(config.server_name):
        raise bad_value("server_name", config.server_name, "a dotted host name, like irc.example.org",
                        origin("server_name"))
    for name in ("listen", "tls_listen", "web_listen", "web_tls_listen", "proxy_listen"):
        for item in getattr(config, name):
            parse_host_port(item, name, origin(name))
    if config.account_verification == "email":
        parse_host_port(config.smtp_server, "smtp_server", origin("smtp_server"))
    if not config.listen and not config.tls_listen and not config.proxy_listen:
        raise bad_value("listen", [], "no listener at all", origin("listen"))
    if config.proxy_listen and not config.trusted_proxies:
        raise bad_value("proxy_listen", config.proxy_listen, "trusted_proxies must name the proxy that connects",
                        origin("proxy_listen"))
    for name in ("tls_listen", "web_tls_listen"):
        if getattr(config, name) and not (config.tls_cert_file and config.tls_key_file):
            raise bad_value(name, getattr(config, name), "tls_cert_file and tls_key_file are needed", origin(name))
    _validate_sts(config)
    _validate_storage(config)
    _validate_cluster(config)
    # A pasted hash may bring a newline along. A value that is not a hash is not shown: it may be the
    # password itself, put there by mistake.
    config.server_password_hash = config.server_password_hash.strip()
    if config.server_password_hash and not is_password_hash(config.server_password_hash):
        raise ConfigError(f"config key 'server_password_hash' ({origin('server_password_hash')}): not a hash "
                          "(the value is not shown); make one with `salotto mkpasswd`")
    for channel in config.autojoin:
        if not is_valid_channel(channel, config.channel_max_len):
            raise bad_value("autojoin", channel, "not a valid channel name", origin("autojoin"))
    for name in ("throttle_exempt", "trusted_proxies"):
        for item in getattr(config, name):
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise bad_value(name, item, "an IP address or a CIDR range, like 10.0.0.0/8", origin(name)) from None
    _validate_uploads(config)
    if config.motd_file and not Path(config.motd_file).is_file():
        raise bad_value("motd_file", config.motd_file, "no such file", origin("motd_file"))


def _validate_uploads(config: Config) -> None:
    """upload_types names only types the sniffer gives; upload_public_url is an http(s) URL without a path."""
    origin = config.origin
    for item in config.upload_types:
        if item not in UPLOAD_TYPES:
            raise bad_value("upload_types", item, f"one of {', '.join(UPLOAD_TYPES)}", origin("upload_types"))
    url = config.upload_public_url
    if url:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.path.strip("/") or parts.query:
            raise bad_value("upload_public_url", url, "an http:// or https:// address without a path, like "
                            "https://chat.example.org", origin("upload_public_url"))


def _validate_storage(config: Config) -> None:
    """storage_url must be a postgresql:// URL with postgresql, and unset otherwise; shown masked."""
    origin = config.origin
    if config.storage_backend == "postgresql":
        if not config.storage_url:
            raise bad_value("storage_backend", config.storage_backend,
                            "needs storage_url = postgresql://USER:PASSWORD@HOST[:PORT]/DATABASE",
                            origin("storage_backend"))
        problem = postgresql_url_problem(config.storage_url)
        if problem is not None:
            raise bad_value("storage_url", mask_password(config.storage_url), problem, origin("storage_url"))
    elif config.storage_url:
        raise bad_value("storage_url", mask_password(config.storage_url),
                        f"only storage_backend postgresql uses it (storage_backend is {config.storage_backend})",
                        origin("storage_url"))


def _validate_cluster(config: Config) -> None:
    """A node's name goes into Redis keys and user ids; a cluster shares one PostgreSQL store."""
    origin = config.origin
    if config.backplane != "redis":
        return
    if not config.redis_url.startswith(("redis://", "rediss://", "unix://")):
        raise bad_value("redis_url", mask_password(config.redis_url), "expected redis://HOST[:PORT]/DB",
                        origin("redis_url"))
    name = config.node_name or config.server_name
    if not name or len(name) > 64 or not all(c.isascii() and (c.isalnum() or c in "-_.") for c in name):
        raise bad_value("node_name", name, "letters, digits, '-', '_' and '.', at most 64", origin("node_name"))
    if config.storage_backend != "postgresql":
        raise bad_value("backplane", config.backplane,
                        "the nodes of a cluster share one store: storage_backend postgresql (storage_url)",
                        origin("backplane"))


def _validate_sts(config: Config) -> None:
    """STS must never send clients to a port that does not speak TLS: it needs a TLS listener, and sts_port
    cannot be one of the plaintext ports (unless a TLS listener has the same number on another address)."""
    origin = config.origin
    if config.sts_port > 65535:
        raise bad_value("sts_port", config.sts_port, "a port number, at most 65535", origin("sts_port"))
    if config.tls_listen:
        tls_ports = {parse_host_port(item, "tls_listen")[1] for item in config.tls_listen}
        plain_ports = {parse_host_port(item, "listen")[1] for item in config.listen}
        if config.sts_port and config.sts_port in plain_ports - tls_ports:
            raise bad_value("sts_port", config.sts_port, "a plaintext listen port; STS must name a TLS port",
                            origin("sts_port"))
        return
    for name in ("sts_duration_s", "sts_port"):
        if getattr(config, name):
            raise bad_value(name, getattr(config, name), "STS needs a TLS listener (tls_listen)", origin(name))


def _parse_opers(raw: Any, origin: str) -> dict[str, OperBlock]:
    if not isinstance(raw, dict):
        raise bad_value("opers", raw, "expected [opers.NAME] tables", origin)
    opers: dict[str, OperBlock] = {}
    for name, block in raw.items():
        if not isinstance(block, dict) or not isinstance(block.get("password_hash"), str):
            raise bad_value(f"opers.{name}", block, "needs password_hash; make one with `salotto mkpasswd`", origin)
        password_hash = block["password_hash"].strip()  # a pasted hash may bring a newline along
        if not is_password_hash(password_hash):
            raise bad_value(f"opers.{name}.password_hash", password_hash,
                            "not a hash; make one with `salotto mkpasswd`", origin)
        hostmask = block.get("hostmask", "*!*@*")
        if not isinstance(hostmask, str):
            raise bad_value(f"opers.{name}.hostmask", hostmask, "expected a string", origin)
        unknown = set(block) - {"password_hash", "hostmask"}
        if unknown:
            raise ConfigError(f"config key 'opers.{name}.{sorted(unknown)[0]}' ({origin}): unknown key")
        opers[name] = OperBlock(name, password_hash, hostmask)
    return opers


def load_config(path: str | None = None, overrides: dict[str, Any] | None = None) -> Config:
    """Read ``path`` (TOML) if given, apply ``overrides`` (from CLI flags), validate.

    Raises:
        ConfigError: a key is unknown or has a bad value, or the file cannot be read.
    """
    values: dict[str, Any] = {key.name: copy.copy(key.default) for key in KEYS}
    origins: dict[str, str] = {}
    opers: dict[str, OperBlock] = {}
    if path is not None:
        try:
            with open(path, "rb") as f:
                raw = tomllib.load(f)
        except OSError as exc:
            raise ConfigError(f"config file {path!r}: cannot read it ({exc.strerror})") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path!r}: not valid TOML ({exc})") from None
        except UnicodeDecodeError as exc:  # TOML is UTF-8; a Latin-1 file, say, fails here
            raise ConfigError(f"config file {path!r}: not UTF-8 (byte {exc.start}: {exc.reason}); "
                              f"save it as UTF-8") from None
        in_file = f"in {path}"
        for name, value in raw.items():
            if name == "opers":
                opers = _parse_opers(value, in_file)
                continue
            key = _BY_NAME.get(name)
            if key is None:
                raise ConfigError(f"config key {name!r} ({in_file}): unknown key")
            origins[name] = in_file
            values[name] = _coerce(key, value, in_file)
    for name, value in (overrides or {}).items():
        key = _BY_NAME[name]
        origins[name] = key.flag
        values[name] = _coerce(key, value, key.flag)
    config = Config(**values, opers=opers, source_file=path, origins=origins)
    _validate(config)
    return config


def toml_value(value: Any) -> str:
    """A value written as TOML (strings, numbers, booleans, lists of those)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return repr(value)


def default_template() -> str:
    """The commented config file that ``salotto init`` writes: every key, its default, its help."""
    lines = [
        "# salotto configuration (TOML). Every key is also a command-line flag of `salotto serve`:",
        "# max_sendq_bytes here is --max-sendq-bytes there. Uncomment what you change.",
        "",
    ]
    for key in KEYS:
        lines.append(f"# {key.help}")
        lines.append(f"# {key.name} = {toml_value(key.default)}")
        lines.append("")
    lines += [
        "# Server operators: OPER <name> <password>. Make the hash with `salotto mkpasswd`.",
        "# [opers.alice]",
        '# password_hash = "scrypt$..."',
        '# hostmask = "*!*@127.0.0.1"',
        "",
    ]
    return "\n".join(lines)


def _check_dataclass_matches_keys() -> None:
    names = {f.name for f in dataclasses.fields(Config)} - {"opers", "source_file", "origins"}
    assert names == set(_BY_NAME), names ^ set(_BY_NAME)


_check_dataclass_matches_keys()
