"""The systemd unit that ``salotto init --systemd`` writes: ``salotto serve`` as a hardened system service.

The service runs as a user of its own (systemd makes one up with ``DynamicUser=yes``, or a system user
given with ``--user``), which can write its data directory (``StateDirectory=``: ``/var/lib/salotto``) and
nothing else: the rest of the file system is read-only, home directories are hidden, it has no
capabilities and may open only IP and Unix sockets. See docs/operations.md.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Final

__all__ = ["DATA_DIR", "DEFAULT_CONFIG", "entry_point", "hidden_from_service", "systemd_quote", "unit"]

# StateDirectory=salotto: systemd creates it, owned by the service's user, before it starts.
DATA_DIR: Final = "/var/lib/salotto"
DEFAULT_CONFIG: Final = "/etc/salotto/salotto.toml"
# What ProtectHome=yes hides from the service.
_HIDDEN: Final = ("/home", "/root", "/run/user")

_TEMPLATE: Final = """\
# salotto as a system service; written by `salotto init --systemd` (see docs/operations.md).
#   sudo cp salotto.service /etc/systemd/system/ && sudo systemctl daemon-reload
#   sudo systemctl enable --now salotto      reload the config: sudo systemctl reload salotto
[Unit]
Description=salotto chat server (IRC and web chat)
After=network-online.target
Wants=network-online.target

[Service]
Type=exec
ExecStart={exec_start}
# SIGHUP reloads the config file and keeps every connection.
ExecReload=/bin/kill -HUP $MAINPID
# SIGTERM (systemctl stop): each client gets an ERROR saying why, history is stored, the process exits.
TimeoutStopSec=30s
Restart=on-failure
RestartSec=5s
# A connection is a file descriptor, and max_clients allows 16384 of them.
LimitNOFILE=65536

{user}
# The data directory, {data_dir}: the one place the service may write.
StateDirectory=salotto
StateDirectoryMode=0700
UMask=0077

# Everything else read-only, home directories hidden, no privileges; IP and Unix sockets only.
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes
PrivateDevices=yes
PrivateMounts=yes
NoNewPrivileges=yes
CapabilityBoundingSet=
AmbientCapabilities=
# To listen on a port below 1024, give it this one capability instead of none:
#   CapabilityBoundingSet=CAP_NET_BIND_SERVICE and AmbientCapabilities=CAP_NET_BIND_SERVICE
RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
ProtectClock=yes
ProtectControlGroups=yes
ProtectHostname=yes
ProtectKernelLogs=yes
ProtectKernelModules=yes
ProtectKernelTunables=yes
ProtectProc=invisible
ProcSubset=pid
RemoveIPC=yes
SystemCallArchitectures=native
SystemCallFilter=@system-service
SystemCallFilter=~@privileged
SystemCallErrorNumber=EPERM

[Install]
WantedBy=multi-user.target
"""

_DYNAMIC_USER: Final = """\
# A user of its own, made up by systemd while the service runs; it owns {data_dir}.
DynamicUser=yes
User=salotto"""

_SYSTEM_USER: Final = """\
# Runs as the system user {name} (create it first: sudo useradd --system --no-create-home {name}).
User={name}
Group={name}"""


def entry_point() -> list[str]:
    """The command line that runs this same salotto, as absolute paths: the ``salotto`` script being run,
    else the one installed beside this Python, else this Python with ``-m salotto``."""
    running = os.path.abspath(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    if os.path.splitext(os.path.basename(running))[0] == "salotto" and os.path.isfile(running):
        return [running]
    beside = Path(sys.executable).with_name("salotto")
    if beside.is_file() and os.access(beside, os.X_OK):
        return [str(beside)]
    return [os.path.abspath(sys.executable), "-m", "salotto"]


def hidden_from_service(command: list[str]) -> list[str]:
    """The paths the service needs that ``ProtectHome=yes`` hides from it: the command and the Python
    it runs on (a virtual environment's python is a link to the one it was made with)."""
    paths = [command[0], os.path.realpath(command[0]), os.path.realpath(sys.executable)]
    hidden: list[str] = []
    for path in paths:
        if any(path == top or path.startswith(top + "/") for top in _HIDDEN) and path not in hidden:
            hidden.append(path)
    return hidden


_PLAIN: Final = re.compile(r"[A-Za-z0-9_@%+=:,./-]+")


def systemd_quote(arg: str, *, program: bool = False) -> str:
    """``arg`` as one word of an ``ExecStart=`` line: specifiers (%) and variables ($) taken literally.
    systemd expands no variable in the ``program`` (the first word): a $ there stays as it is."""
    escaped = arg.replace("%", "%%")
    if not program:
        escaped = escaped.replace("$", "$$")
    if _PLAIN.fullmatch(arg):
        return escaped
    return '"' + escaped.replace("\\", "\\\\").replace('"', '\\"') + '"'


def unit(command: list[str], config_path: str = DEFAULT_CONFIG, user: str | None = None) -> str:
    """The unit file's text: ``command`` (see :func:`entry_point`) ``serve --config config_path``, with the
    data directory the service's own; as ``user`` (a system user) or, by default, a dynamic user."""
    argv = [*command, "serve", "--config", config_path, "--data-dir", DATA_DIR]
    users = _SYSTEM_USER.format(name=user) if user else _DYNAMIC_USER.format(data_dir=DATA_DIR)
    exec_start = " ".join(systemd_quote(arg, program=i == 0) for i, arg in enumerate(argv))
    return _TEMPLATE.format(exec_start=exec_start, user=users, data_dir=DATA_DIR)
