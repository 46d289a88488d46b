"""The command table: every command the server knows, its handler and its rules.

The dispatcher (:mod:`salotto.server.dispatch`) enforces the rules, so handlers don't repeat them.
"""

from __future__ import annotations

from salotto.server.dispatch import Command
from salotto.server.handlers import (
    auth,
    channels,
    history,
    markers,
    messaging,
    modes,
    monitor,
    multiline,
    oper,
    queries,
    redaction,
    registration,
    search,
    services,
    webpush,
)

__all__ = ["COMMANDS"]

COMMANDS: dict[str, Command] = {
    # Registration
    "CAP": Command(registration.handle_cap, min_params=1, before_registration=True, before_password=True),
    "PASS": Command(registration.handle_pass, min_params=1, before_registration=True, before_password=True),
    "NICK": Command(registration.handle_nick, before_registration=True, before_password=True),
    "USER": Command(registration.handle_user, min_params=4, before_registration=True, before_password=True),
    "PING": Command(registration.handle_ping, min_params=1, before_registration=True, before_password=True),
    "PONG": Command(registration.handle_pong, before_registration=True, before_password=True),
    "QUIT": Command(registration.handle_quit, before_registration=True, before_password=True),
    # Accounts
    "AUTHENTICATE": Command(auth.handle_authenticate, min_params=1, before_registration=True, capability="sasl"),
    "REGISTER": Command(auth.handle_register, min_params=3, before_registration=True),
    "VERIFY": Command(auth.handle_verify, min_params=2, before_registration=True),
    "NICKSERV": Command(services.handle_nickserv_command),
    "NS": Command(services.handle_nickserv_command),
    "CHANSERV": Command(services.handle_chanserv_command),
    "CS": Command(services.handle_chanserv_command),
    # Channels
    "JOIN": Command(channels.handle_join, min_params=1),
    "PART": Command(channels.handle_part, min_params=1),
    "TOPIC": Command(channels.handle_topic, min_params=1),
    "NAMES": Command(channels.handle_names),
    "LIST": Command(channels.handle_list),
    "INVITE": Command(channels.handle_invite, min_params=2),
    "KICK": Command(channels.handle_kick, min_params=2),
    "MODE": Command(modes.handle_mode, min_params=1),
    # Messages
    "PRIVMSG": Command(messaging.handle_privmsg),
    "NOTICE": Command(messaging.handle_notice),
    "TAGMSG": Command(messaging.handle_tagmsg, min_params=1, capability="message-tags"),
    "AWAY": Command(messaging.handle_away),
    "SETNAME": Command(messaging.handle_setname, min_params=1, capability="setname"),
    "CHATHISTORY": Command(history.handle_chathistory, min_params=1),
    "BATCH": Command(multiline.handle_batch, min_params=1, capability="draft/multiline"),
    "MARKREAD": Command(markers.handle_markread, capability=markers.READ_MARKER_CAP),
    "REDACT": Command(redaction.handle_redact, min_params=2, capability=redaction.REDACTION_CAP),
    "WEBPUSH": Command(webpush.handle_webpush, min_params=1),
    "SEARCH": Command(search.handle_search, capability=search.SEARCH_CAP),
    # Queries
    "WHO": Command(queries.handle_who, min_params=1),
    "WHOIS": Command(queries.handle_whois, min_params=1),
    "WHOWAS": Command(queries.handle_whowas, min_params=1),
    "USERHOST": Command(queries.handle_userhost, min_params=1),
    "ISON": Command(queries.handle_ison, min_params=1),
    "LUSERS": Command(queries.handle_lusers),
    "MOTD": Command(queries.handle_motd),
    "VERSION": Command(queries.handle_version),
    "TIME": Command(queries.handle_time),
    "ADMIN": Command(queries.handle_admin),
    "INFO": Command(queries.handle_info),
    "MONITOR": Command(monitor.handle_monitor, min_params=1),
    # Operators
    "OPER": Command(oper.handle_oper, min_params=2),
    "KILL": Command(oper.handle_kill, min_params=2, oper_only=True),
    "REHASH": Command(oper.handle_rehash, oper_only=True),
    "CHGHOST": Command(oper.handle_chghost, min_params=3, oper_only=True),
}
