"""The connect dialog: server, port, nickname, TLS, a private server's password, optional SASL account
(and its always-on setting); prefilled from last time (passwords never)."""

from __future__ import annotations

import tkinter as tk
from collections.abc import Callable
from dataclasses import dataclass
from tkinter import ttk

from salotto.clients.core.servers import PLAIN_PORT, TLS_PORT, Server, ServerListError, parse_servers
from salotto.clients.tk.settings import Settings

__all__ = ["PLAIN_PORT", "TLS_PORT", "ConnectDialog", "ConnectRequest"]


@dataclass(frozen=True, slots=True)
class ConnectRequest:
    host: str
    port: int
    nick: str
    tls: bool
    account: str
    password: str
    server_password: str = ""  # PASS, for a private server
    # NickServ SET ALWAYS-ON once logged in: True (ON), False (OFF), None (leave the account's setting).
    always_on: bool | None = None
    always_on_ticked: bool = False  # the box as left, remembered for next time
    # The other servers of the network (a cluster's nodes), tried in turn when the connection goes.
    more_servers: tuple[Server, ...] = ()
    default_port: int = 0  # the port of entries without one (the dialog's Port field)


class ConnectDialog(ttk.Frame):
    """A frame filling ``master``; calls ``on_connect`` with the request once the fields are valid."""

    def __init__(
        self,
        master: tk.Misc,
        settings: Settings,
        on_connect: Callable[[ConnectRequest], None],
        on_cancel: Callable[[], None],
    ) -> None:
        super().__init__(master, padding=18)
        self._on_connect = on_connect
        self._on_cancel = on_cancel
        self.host = tk.StringVar(self, settings.host)
        self.port = tk.StringVar(self, str(settings.port))
        self.nick = tk.StringVar(self, settings.nick)
        self.tls = tk.BooleanVar(self, settings.tls)
        self.account = tk.StringVar(self, settings.account)
        self.password = tk.StringVar(self)
        self.server_password = tk.StringVar(self)
        self.always_on = tk.BooleanVar(self, settings.always_on)
        self._always_on_before = settings.always_on
        self.message = tk.StringVar(self)

        ttk.Label(self, text="Connect to a chat server", style="Heading.TLabel").grid(
            row=0, column=0, columnspan=2, sticky="w", pady=(0, 12))
        rows: list[tuple[str, tk.Widget]] = [
            ("Server", ttk.Entry(self, textvariable=self.host, width=28)),
            ("Port", ttk.Entry(self, textvariable=self.port, width=8)),
            ("Nickname", ttk.Entry(self, textvariable=self.nick, width=20)),
        ]
        for i, (label, widget) in enumerate(rows, start=1):
            ttk.Label(self, text=label).grid(row=i, column=0, sticky="w", padx=(0, 10), pady=3)
            widget.grid(row=i, column=1, sticky="we", pady=3)
        self.host_entry, self.port_entry, self.nick_entry = (w for _, w in rows)
        ttk.Checkbutton(self, text="Use TLS (encrypted)", variable=self.tls, command=self._tls_toggled).grid(
            row=4, column=1, sticky="w", pady=3)
        ttk.Label(self, text="Server password").grid(row=5, column=0, sticky="w", padx=(0, 10), pady=3)
        self.server_password_entry = ttk.Entry(self, textvariable=self.server_password, show="\u2022", width=20)
        self.server_password_entry.grid(row=5, column=1, sticky="we", pady=3)
        ttk.Label(self, text="Only for a private server: leave it empty otherwise.", style="Dim.TLabel",
                  wraplength=360).grid(row=6, column=1, sticky="w")
        ttk.Label(self, text="Account and password are optional (SASL login, if the server offers it).",
                  style="Dim.TLabel", wraplength=360).grid(row=7, column=0, columnspan=2, sticky="w", pady=(10, 3))
        ttk.Label(self, text="Account").grid(row=8, column=0, sticky="w", pady=3)
        ttk.Entry(self, textvariable=self.account, width=20).grid(row=8, column=1, sticky="we", pady=3)
        ttk.Label(self, text="Password").grid(row=9, column=0, sticky="w", pady=3)
        ttk.Entry(self, textvariable=self.password, show="\u2022", width=20).grid(
            row=9, column=1, sticky="we", pady=3)
        # Only for an account (it is the account's setting); ticked: on, unticked after it was: off.
        self.always_on_check = ttk.Checkbutton(self, text="Stay online when I disconnect (always-on)",
                                               variable=self.always_on)
        self.always_on_check.grid(row=10, column=1, sticky="w", pady=3)
        ttk.Label(self, textvariable=self.message, style="Error.TLabel", wraplength=360).grid(
            row=11, column=0, columnspan=2, sticky="w", pady=(8, 0))
        buttons = ttk.Frame(self)
        buttons.grid(row=12, column=0, columnspan=2, sticky="e", pady=(12, 0))
        ttk.Button(buttons, text="Quit", command=self._on_cancel).pack(side="right")
        self.connect_button = ttk.Button(buttons, text="Connect", command=self.submit, style="Accent.TButton")
        self.connect_button.pack(side="right", padx=(0, 8))
        self.columnconfigure(1, weight=1)
        for variable in (self.account, self.password):
            variable.trace_add("write", lambda *_args: self._account_changed())
        self._account_changed()
        self.bind_all("<Return>", self._on_return, add=True)
        self.bind_all("<Escape>", lambda _e: self._on_cancel(), add=True)
        first = self.nick_entry if settings.host and not settings.nick else self.host_entry
        if settings.nick:
            first = self.connect_button
        first.focus_set()

    def ask_server_password(self, why: str) -> None:
        """The server refused to let us in without (the right) server password: say why, cursor there."""
        self.message.set(why)
        self.server_password.set("")
        self.server_password_entry.focus_force()  # the focused chat window is gone: take it back

    def _logging_in(self) -> bool:
        return bool(self.account.get().strip() and self.password.get())

    def _account_changed(self) -> None:
        """The always-on box is for an account: usable once an account and its password are given."""
        self.always_on_check.state(["!disabled"] if self._logging_in() else ["disabled"])

    def _always_on_request(self) -> bool | None:
        """ON when ticked; OFF when unticked after it was ticked last time; otherwise nothing is sent, so
        a setting made elsewhere (the web page) stays."""
        if not self._logging_in():
            return None
        if self.always_on.get():
            return True
        return False if self._always_on_before else None

    def _on_return(self, _event: tk.Event[tk.Misc]) -> None:
        if self.winfo_exists():
            self.submit()

    def _tls_toggled(self) -> None:
        port = self.port.get().strip()
        if self.tls.get() and port == str(PLAIN_PORT):
            self.port.set(str(TLS_PORT))
        elif not self.tls.get() and port == str(TLS_PORT):
            self.port.set(str(PLAIN_PORT))

    def submit(self) -> None:
        host, nick = self.host.get().strip(), self.nick.get().strip()
        try:
            port = int(self.port.get().strip())
        except ValueError:
            port = 0
        servers: tuple[Server, ...] = ()
        if not host:
            self.message.set("Please enter the server's name or address.")
        elif not 0 < port < 65536:
            self.message.set("The port is a number between 1 and 65535 (usually 6667, or 6697 with TLS).")
        elif not nick or " " in nick or nick[0] in "#&:0123456789-":
            self.message.set("Please choose a nickname: one word, not starting with a digit or #.")
        else:
            try:  # one server, or several of one network: host[:port],host[:port]
                servers = parse_servers(host, port)
            except ServerListError as exc:
                self.message.set(f"Server: {exc}.")
        if servers:
            self.unbind_all("<Return>")
            self.unbind_all("<Escape>")
            ticked = self.always_on.get() if self._logging_in() else self._always_on_before
            first, *more = servers
            self._on_connect(ConnectRequest(first.host, first.port, nick, self.tls.get(),
                                            self.account.get().strip(), self.password.get(),
                                            self.server_password.get(), self._always_on_request(), ticked,
                                            more_servers=tuple(more), default_port=port))
