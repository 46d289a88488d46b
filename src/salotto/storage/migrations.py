"""The SQLite schema as numbered migrations.

``MIGRATIONS[n]`` takes a database from schema version ``n`` to ``n + 1``; ``PRAGMA user_version`` holds
the version. Append new scripts, never edit a released one: a database in the field has run it already.
"""

from __future__ import annotations

from typing import Final

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "SEARCH_BUILD", "SEARCH_ROW", "SEARCH_TABLE", "SEARCH_TRIGGER"]

_V1: Final = """
CREATE TABLE accounts (
    name_cf       TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    created       REAL NOT NULL,
    email         TEXT,
    verified      INTEGER NOT NULL DEFAULT 1
) WITHOUT ROWID;

CREATE TABLE certfps (
    fingerprint TEXT PRIMARY KEY,
    account_cf  TEXT NOT NULL REFERENCES accounts(name_cf) ON DELETE CASCADE
) WITHOUT ROWID;
CREATE INDEX certfps_account ON certfps(account_cf);

CREATE TABLE channels (
    name_cf      TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    founder      TEXT NOT NULL,
    registered   REAL NOT NULL,
    topic        TEXT NOT NULL DEFAULT '',
    topic_setter TEXT NOT NULL DEFAULT '',
    topic_time   REAL NOT NULL DEFAULT 0,
    modes        TEXT NOT NULL DEFAULT '',
    chan_key     TEXT,
    user_limit   INTEGER
) WITHOUT ROWID;

CREATE TABLE channel_access (
    channel_cf TEXT NOT NULL REFERENCES channels(name_cf) ON DELETE CASCADE,
    account_cf TEXT NOT NULL,
    level      TEXT NOT NULL,
    PRIMARY KEY (channel_cf, account_cf)
) WITHOUT ROWID;
CREATE INDEX channel_access_account ON channel_access(account_cf);

-- id is the rowid: insertion order, the tie-breaker of the total order (time_ms, id).
CREATE TABLE messages (
    id      INTEGER PRIMARY KEY,
    msgid   TEXT NOT NULL UNIQUE,
    target  TEXT NOT NULL,
    time_ms INTEGER NOT NULL,
    sender  TEXT NOT NULL,
    account TEXT,
    command TEXT NOT NULL,
    text    TEXT NOT NULL,
    tags    TEXT
);
-- Every chathistory query is an equality on target and a range on (time_ms, id); an index entry
-- carries the rowid after its columns, so this one index orders by (target, time_ms, id).
CREATE INDEX messages_target_time ON messages(target, time_ms);
-- Retention by age.
CREATE INDEX messages_time ON messages(time_ms);

-- Who takes part in which private conversation, and under which name they see the other side.
CREATE TABLE conversations (
    party_cf TEXT NOT NULL,
    target   TEXT NOT NULL,
    peer     TEXT NOT NULL,
    PRIMARY KEY (party_cf, target)
) WITHOUT ROWID;

CREATE TABLE read_markers (
    account_cf TEXT NOT NULL,
    target     TEXT NOT NULL,
    time_ms    INTEGER NOT NULL,
    PRIMARY KEY (account_cf, target)
) WITHOUT ROWID;
"""

# Every index is one more B-tree insert per stored message on the server's writer thread, and one more
# page in each commit. Version 2 keeps the one the chathistory queries need, (target, time_ms):
# - the server's own msgids (PREFIX-COUNTER, see sqlite_history) are stored in id itself, so a msgid
#   lookup is a rowid lookup; only other msgids (and those of messages stored by version 1) stay in the
#   msgid column, whose unique index is partial;
# - retention by age walks the (target, time_ms) index instead of an index on time alone.
# A UNIQUE column cannot be altered, so the table is rebuilt: a one-off copy at the first start (a few
# seconds per million messages). The rows keep their id and msgid.
_V2: Final = """
CREATE TABLE messages_v2 (
    id      INTEGER PRIMARY KEY,
    msgid   TEXT,
    target  TEXT NOT NULL,
    time_ms INTEGER NOT NULL,
    sender  TEXT NOT NULL,
    account TEXT,
    command TEXT NOT NULL,
    text    TEXT NOT NULL,
    tags    TEXT
);
INSERT INTO messages_v2 (id, msgid, target, time_ms, sender, account, command, text, tags)
    SELECT id, msgid, target, time_ms, sender, account, command, text, tags FROM messages;
DROP TABLE messages;
ALTER TABLE messages_v2 RENAME TO messages;
CREATE INDEX messages_target_time ON messages(target, time_ms);
CREATE UNIQUE INDEX messages_msgid ON messages(msgid) WHERE msgid IS NOT NULL;
"""

# SCRAM-SHA-256 keys made with fewer PBKDF2 rounds than OWASP's 600,000 are dropped: a stolen database
# cracked through them would undo scrypt. The scrypt hash stays; the next login that gives the password
# (SASL PLAIN, IDENTIFY) stores new keys (salotto.server.accounts.Accounts.renew_scram).
_V3: Final = """
UPDATE accounts
    SET password_hash = substr(password_hash, 1, instr(password_hash, ';scram-sha-256$') - 1)
    WHERE instr(password_hash, ';scram-sha-256$') > 0
      AND CAST(substr(password_hash, instr(password_hash, ';scram-sha-256$') + 15) AS INTEGER) < 600000;
"""

# The addresses (salotto.server.flood.ip_key: an IPv4 address or an IPv6 /64) an account logged in from,
# a few per account (salotto.server.accounts.TRUSTED_ADDRESSES): its owner's, which guessing from
# elsewhere must not lock out, before or after a restart. Written when a login comes from an address not
# on file (or not seen for a day), so rarely.
_V4: Final = """
CREATE TABLE login_addresses (
    account_cf TEXT NOT NULL REFERENCES accounts(name_cf) ON DELETE CASCADE,
    address    TEXT NOT NULL,
    last_seen  REAL NOT NULL,
    PRIMARY KEY (account_cf, address)
) WITHOUT ROWID;
"""

# Certificate fingerprints (for a SASL EXTERNAL that was never built): nothing wrote or read them.
_V5: Final = """
DROP TABLE certfps;
"""

# Redacted messages (draft/message-redaction): the row is deleted, its msgid remembered, so that a
# history journal still holding the message (replayed at startup) cannot store it again. time_ms is the
# message's own time: the record goes with retention by age as the message would have.
_V6: Final = """
CREATE TABLE redactions (
    msgid   TEXT PRIMARY KEY,
    time_ms INTEGER NOT NULL
) WITHOUT ROWID;
"""

# Always-on (several devices on one nick): an account's own setting (NULL: the server's always_on_default),
# and the always-on users present when the server stopped, recreated in their channels at startup.
_V7: Final = """
ALTER TABLE accounts ADD COLUMN always_on INTEGER;

CREATE TABLE always_on_users (
    account_cf   TEXT PRIMARY KEY REFERENCES accounts(name_cf) ON DELETE CASCADE,
    nick         TEXT NOT NULL,
    username     TEXT NOT NULL,
    realname     TEXT NOT NULL,
    channels     TEXT NOT NULL,
    away         TEXT,
    absent_since REAL NOT NULL
) WITHOUT ROWID;
"""

# Web Push subscriptions (soju.im/webpush, salotto.server.push): one row per account and endpoint (a
# REGISTER of the same endpoint replaces it); they go with the account.
_V_WEBPUSH: Final = """
CREATE TABLE push_subscriptions (
    account_cf TEXT NOT NULL REFERENCES accounts(name_cf) ON DELETE CASCADE,
    endpoint   TEXT NOT NULL,
    p256dh     TEXT NOT NULL,
    auth       TEXT NOT NULL,
    created    REAL NOT NULL,
    PRIMARY KEY (account_cf, endpoint)
) WITHOUT ROWID;
"""

# Uploaded files (soju.im/FILEHOST): their metadata; the bytes are in the FileStore (salotto.storage.files)
# under the same id. No foreign key to accounts: a deleted account's files go with retention, as its
# messages' links would stop working anyway.
_V_FILES: Final = """
CREATE TABLE uploads (
    id           TEXT PRIMARY KEY,
    account_cf   TEXT NOT NULL,
    account      TEXT NOT NULL,
    name         TEXT NOT NULL,
    content_type TEXT NOT NULL,
    size         INTEGER NOT NULL,
    created      REAL NOT NULL
) WITHOUT ROWID;
CREATE INDEX uploads_account ON uploads(account_cf);
CREATE INDEX uploads_created ON uploads(created);
"""

# Full-text search (soju.im/search; salotto.storage.sqlite_search). A contentless FTS5 table: the words of
# each PRIVMSG and NOTICE (``body``), its target as one opaque token (``tgt``: "t" and the UTF-8 of the
# casefolded name in hex, so that no target can look like another) and its sender's nick (``who``); each
# a column of its own, so that no word of a message can pass for a target or a nick. Its rowid is not the
# message's id but a key in time order, ``time_ms << 20 | (id & 0xFFFFF)`` (the server's ids are not in
# time order across runs: their prefix is random), so the index hands out the newest matches first and a
# time bound is a rowid bound; a key leads back to its message through the (target, time_ms) index.
# append_messages indexes each batch in its own transaction, by one statement (an FTS5 insert from a
# trigger costs the index a flush per row); a delete (redaction, retention) unindexes by trigger. The
# index is built here for the messages already stored.
SEARCH_TABLE: Final = """
CREATE VIRTUAL TABLE message_search USING fts5(body, tgt, who, content='', columnsize=0, detail=column);
"""
SEARCH_KEY: Final = "(({row}.time_ms << 20) | ({row}.id & 1048575))"
_SEARCH_TGT: Final = "'t' || hex({row}.target)"
# The sender's nick as it is (its words; the search compares the whole nick, casefolded, itself).
_SEARCH_WHO: Final = "substr({row}.sender, 1, instr({row}.sender || '!', '!') - 1)"
# What a row of messages (named {row}) puts in message_search: its key and the three columns.
SEARCH_ROW: Final = SEARCH_KEY + ", {row}.text, " + _SEARCH_TGT + ", " + _SEARCH_WHO
SEARCH_TRIGGER: Final = f"""
CREATE TRIGGER message_search_delete AFTER DELETE ON messages WHEN old.command != 'TAGMSG' BEGIN
    INSERT INTO message_search (message_search, rowid, body, tgt, who)
        VALUES ('delete', {SEARCH_ROW.format(row="old")});
END;
"""
# Every stored PRIVMSG and NOTICE.
SEARCH_BUILD: Final = f"""
INSERT INTO message_search (rowid, body, tgt, who)
    SELECT {SEARCH_ROW.format(row="m")} FROM messages AS m WHERE m.command != 'TAGMSG' ORDER BY 1;
"""
_V_SEARCH: Final = SEARCH_TABLE + SEARCH_TRIGGER + SEARCH_BUILD

MIGRATIONS: Final[tuple[str, ...]] = (_V1, _V2, _V3, _V4, _V5, _V6, _V7, _V_WEBPUSH, _V_FILES, _V_SEARCH)
SCHEMA_VERSION: Final = len(MIGRATIONS)
