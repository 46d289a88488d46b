"""The PostgreSQL schema as numbered migrations.

``MIGRATIONS[n]`` takes a database from schema version ``n`` to ``n + 1``; the one-row table
``schema_version`` holds the version. Append new scripts, never edit a released one: a database in the
field has run it already. The numbering is the PostgreSQL backend's own (it started at SQLite's schema
version 4, so its version 1 has everything SQLite reached in four steps).

Keys that are compared or sorted (casefolded names, targets, addresses) are ``COLLATE "C"``: byte order,
as SQLite compares, whatever the database's locale; and the B-tree on ``(target, time_ms, seq)`` is
cheaper under "C" than under a linguistic collation.
"""

from __future__ import annotations

from typing import Final

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "SEARCH_COLUMN"]

_V1: Final = """
CREATE TABLE accounts (
    name_cf       text COLLATE "C" PRIMARY KEY,
    name          text NOT NULL,
    password_hash text NOT NULL,
    created       double precision NOT NULL,
    email         text,
    verified      boolean NOT NULL DEFAULT true
);

CREATE TABLE login_addresses (
    account_cf text COLLATE "C" NOT NULL REFERENCES accounts(name_cf) ON DELETE CASCADE,
    address    text COLLATE "C" NOT NULL,
    last_seen  double precision NOT NULL,
    PRIMARY KEY (account_cf, address)
);

CREATE TABLE channels (
    name_cf      text COLLATE "C" PRIMARY KEY,
    name         text NOT NULL,
    founder      text NOT NULL,
    registered   double precision NOT NULL,
    topic        text NOT NULL DEFAULT '',
    topic_setter text NOT NULL DEFAULT '',
    topic_time   double precision NOT NULL DEFAULT 0,
    modes        text NOT NULL DEFAULT '',
    chan_key     text,
    user_limit   integer
);

CREATE TABLE channel_access (
    channel_cf text COLLATE "C" NOT NULL REFERENCES channels(name_cf) ON DELETE CASCADE,
    account_cf text COLLATE "C" NOT NULL,
    level      text NOT NULL,
    PRIMARY KEY (channel_cf, account_cf)
);
CREATE INDEX channel_access_account ON channel_access(account_cf);

-- seq is insertion order, the tie-breaker of the total order (time_ms, seq) within a target.
CREATE TABLE messages (
    seq     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    msgid   text COLLATE "C" NOT NULL,
    target  text COLLATE "C" NOT NULL,
    time_ms bigint NOT NULL,
    sender  text NOT NULL,
    account text,
    command text NOT NULL,
    text    text NOT NULL,
    tags    jsonb
);
CREATE UNIQUE INDEX messages_msgid ON messages(msgid);
-- Every chathistory query is an equality on target and a range on (time_ms, seq), walked in either
-- direction: LATEST, BEFORE, AFTER, AROUND and BETWEEN are one index range scan each, and TARGETS one
-- backward probe per target.
CREATE INDEX messages_target_time ON messages(target, time_ms, seq);
-- Retention by age. BRIN, not a B-tree: messages arrive in time order, so block ranges summarise
-- time well for a few bytes per 128 pages and nearly nothing per insert; and it cannot return rows in
-- time order, so the planner never walks it (filtering on target) in place of messages_target_time
-- for a chathistory query, which a B-tree on time_ms invites on a target with few messages.
CREATE INDEX messages_time ON messages USING brin (time_ms) WITH (autosummarize = on);

-- Who takes part in which private conversation, and under which name they see the other side.
CREATE TABLE conversations (
    party_cf text COLLATE "C" NOT NULL,
    target   text COLLATE "C" NOT NULL,
    peer     text NOT NULL,
    PRIMARY KEY (party_cf, target)
);

CREATE TABLE read_markers (
    account_cf text COLLATE "C" NOT NULL,
    target     text COLLATE "C" NOT NULL,
    time_ms    bigint NOT NULL,
    PRIMARY KEY (account_cf, target)
);
"""

# Redacted messages (draft/message-redaction), as SQLite's version 6: the msgid of a deleted message, so
# that a history journal replayed at startup cannot store it again; time_ms is the message's own.
_V2: Final = """
CREATE TABLE redactions (
    msgid   text COLLATE "C" PRIMARY KEY,
    time_ms bigint NOT NULL
);
"""

# Always-on, as SQLite's version 7: an account's own setting (NULL: the server's always_on_default), and
# the always-on users present when the server stopped, recreated in their channels at startup.
_V3: Final = """
ALTER TABLE accounts ADD COLUMN always_on boolean;

CREATE TABLE always_on_users (
    account_cf   text COLLATE "C" PRIMARY KEY REFERENCES accounts(name_cf) ON DELETE CASCADE,
    nick         text NOT NULL,
    username     text NOT NULL,
    realname     text NOT NULL,
    channels     text NOT NULL,
    away         text,
    absent_since double precision NOT NULL
);
"""

# Web Push subscriptions, as SQLite's _V_WEBPUSH.
_V_WEBPUSH: Final = """
CREATE TABLE push_subscriptions (
    account_cf text COLLATE "C" NOT NULL REFERENCES accounts(name_cf) ON DELETE CASCADE,
    endpoint   text COLLATE "C" NOT NULL,
    p256dh     text NOT NULL,
    auth       text NOT NULL,
    created    double precision NOT NULL,
    PRIMARY KEY (account_cf, endpoint)
);
"""

# Uploaded files, as SQLite's _V_FILES: metadata only, the bytes are in the FileStore.
_V_FILES: Final = """
CREATE TABLE uploads (
    id           text COLLATE "C" PRIMARY KEY,
    account_cf   text COLLATE "C" NOT NULL,
    account      text NOT NULL,
    name         text NOT NULL,
    content_type text NOT NULL,
    size         bigint NOT NULL,
    created      double precision NOT NULL
);
CREATE INDEX uploads_account ON uploads(account_cf);
CREATE INDEX uploads_created ON uploads(created);
"""

# Full-text search (soju.im/search), as SQLite's FTS5 index: the words of each message as a tsvector of
# the 'simple' configuration (lower case, no stemming, no stop words: every word is found as it was
# written), kept by PostgreSQL itself (a stored generated column: computed on insert, for the rows already
# there by this ALTER), and a GIN index on it. The search key `search = false` drops both
# (salotto.storage.postgresql.PostgresStorage.set_search); true adds them again.
# ASCII punctuation is made blank first: PostgreSQL's parser keeps a link, a host name, an address or a
# version number as one lexeme ("example.com/docs", "bob@example.org", "1.2.3"), which no search by its
# words (salotto.storage.search.words cuts at punctuation, as SQLite's tokenizer does) would ever match.
_PUNCTUATION: Final = "!\"#$%&''()*+,-./:;<=>?@[\\]^_`{|}~"
SEARCH_COLUMN: Final = f"""
ALTER TABLE messages ADD COLUMN search tsvector
    GENERATED ALWAYS AS (to_tsvector('simple'::regconfig,
        translate(text, '{_PUNCTUATION}', '{" " * 32}'))) STORED;
CREATE INDEX messages_search ON messages USING gin (search);
"""
_V_SEARCH: Final = SEARCH_COLUMN

MIGRATIONS: Final[tuple[str, ...]] = (_V1, _V2, _V3, _V_WEBPUSH, _V_FILES, _V_SEARCH)
SCHEMA_VERSION: Final = len(MIGRATIONS)
