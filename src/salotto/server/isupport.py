"""RPL_ISUPPORT (005) tokens (https://modern.ircdocs.horse/#rplisupport-005)."""

from __future__ import annotations

from salotto.config import Config
from salotto.proto.casemap import CASEMAPPING
from salotto.proto.modes import (
    BOT_MODE,
    CHANMODES_A,
    CHANMODES_B,
    CHANMODES_C,
    CHANMODES_D,
    PREFIX_MODES,
    PREFIX_SYMBOLS,
)
from salotto.proto.names import CHANTYPES

__all__ = ["ISUPPORT_TOKENS_PER_LINE", "MODES_PER_COMMAND", "USERLEN", "isupport_tokens"]

# Tokens per RPL_ISUPPORT line: Modern IRC caps a 005 line at 13 parameters, plus nick and the text.
ISUPPORT_TOKENS_PER_LINE = 12
# MODES=: changes with a parameter in one MODE command; 4 to 6 is what most servers allow.
MODES_PER_COMMAND = 6


def isupport_tokens(config: Config, *, history: bool = False, filehost: str | None = None,
                    vapid: str | None = None) -> list[str]:
    """``filehost``: the upload URL (soju.im/FILEHOST, doc/ext/filehost.md in soju), when uploads are on;
    ``vapid``: the public key Web Push messages are signed with (soju.im/webpush), when push is on."""
    targets = config.max_targets
    tokens = [
        *([f"soju.im/FILEHOST={filehost}"] if filehost else []),
        *([f"CHATHISTORY={config.chathistory_max_lines}", "MSGREFTYPES=timestamp,msgid"] if history else []),
        f"AWAYLEN={config.away_max_len}",
        f"BOT={BOT_MODE}",
        f"CASEMAPPING={CASEMAPPING}",
        f"CHANLIMIT={CHANTYPES}:{config.max_channels_per_user}",
        f"CHANMODES={CHANMODES_A},{CHANMODES_B},{CHANMODES_C},{CHANMODES_D}",
        f"CHANNELLEN={config.channel_max_len}",
        f"CHANTYPES={CHANTYPES}",
        "EXCEPTS=e",
        "INVEX=I",
        f"KICKLEN={config.kick_max_len}",
        f"MAXLIST=beI:{config.max_list_entries}",
        f"MAXTARGETS={targets}",
        f"MODES={MODES_PER_COMMAND}",
        f"MONITOR={config.monitor_max_targets}",
        f"NETWORK={config.network_name}",
        f"NICKLEN={config.nick_max_len}",
        f"PREFIX=({PREFIX_MODES}){PREFIX_SYMBOLS}",
        "SAFELIST",
        f"TARGMAX=PRIVMSG:{targets},NOTICE:{targets},TAGMSG:{targets},JOIN:{targets},PART:{targets},"
        f"KICK:{targets},NAMES:1,WHOIS:1",
        f"TOPICLEN={config.topic_max_len}",
        f"USERLEN={USERLEN}",
        "WHOX",
        *([f"VAPID={vapid}"] if vapid else []),
    ]
    return sorted(tokens)


# USER names are cut to this length (the usual USERLEN of ircd-ratbox and InspIRCd).
USERLEN = 10
