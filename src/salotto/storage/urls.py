"""Database URLs (``storage_url``): checked before use, and shown only with the password masked.

A URL such as ``postgresql://salotto:secret@db.example.org:5432/salotto`` carries a password; whatever
salotto prints or logs about it (config errors, connection errors, the server's start-up line) goes
through :func:`mask_password` first.
"""

from __future__ import annotations

import re
from typing import Final
from urllib.parse import unquote, urlsplit

__all__ = ["MASK", "POSTGRESQL_SCHEMES", "mask_password", "postgresql_url_problem", "url_password"]

MASK: Final = "***"
POSTGRESQL_SCHEMES: Final = ("postgresql", "postgres")

# scheme://[user[:password]@]host...: the password is what lies between the first ':' after '//' and
# the last '@' of the authority (a password may itself contain '@' or ':' when not percent-encoded).
_AUTHORITY: Final = re.compile(r"^(?P<head>[A-Za-z][A-Za-z0-9+.-]*://)(?P<authority>[^/?#]*)(?P<tail>.*)$", re.DOTALL)
# key=value query parameters libpq reads a password from.
_PASSWORD_PARAM: Final = re.compile(r"(?i)([?&]password=)[^&#]*")


def mask_password(url: str) -> str:
    """``url`` with its password (userinfo or ``?password=``) replaced by ``***``; the rest as given."""
    masked = _PASSWORD_PARAM.sub(lambda m: m[1] + MASK, url)
    match = _AUTHORITY.match(masked)
    if match is None:  # no scheme (a mistake): USER:PASSWORD@HOST... all the same
        userinfo, at, rest = masked.rpartition("@")
        return f"{userinfo.split(':', 1)[0]}:{MASK}@{rest}" if at and ":" in userinfo else masked
    authority = match["authority"]
    userinfo, at, hostport = authority.rpartition("@")
    if at and ":" in userinfo:
        user = userinfo.split(":", 1)[0]
        authority = f"{user}:{MASK}@{hostport}"
    return f"{match['head']}{authority}{match['tail']}"


def url_password(url: str) -> str | None:
    """The password in ``url`` (decoded), or None: what must never appear in a message."""
    match = _AUTHORITY.match(url)
    if match is not None:
        userinfo, at, _ = match["authority"].rpartition("@")
        if at and ":" in userinfo:
            return unquote(userinfo.split(":", 1)[1])
    param = re.search(r"(?i)[?&]password=([^&#]*)", url)
    return unquote(param[1]) if param else None


def postgresql_url_problem(url: str) -> str | None:
    """Why ``url`` is not a PostgreSQL URL salotto can use (None if it is one)."""
    if not url:
        return "empty; expected postgresql://USER:PASSWORD@HOST[:PORT]/DATABASE"
    scheme, sep, _ = url.partition("://")
    if not sep or scheme.lower() not in POSTGRESQL_SCHEMES:
        return "expected postgresql://USER:PASSWORD@HOST[:PORT]/DATABASE"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError as exc:
        return f"not a valid URL: {exc}"
    if not parts.path.strip("/"):
        return "the URL names no database (postgresql://USER:PASSWORD@HOST[:PORT]/DATABASE)"
    return None
