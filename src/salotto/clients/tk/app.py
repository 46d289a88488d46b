"""``salotto gui``: the connect dialog (or ``--server``/``--nick`` straight away), then the chat window."""

from __future__ import annotations

import argparse
import getpass
import signal
import sys
import tkinter as tk
from types import FrameType

from salotto.clients.core import Client, SessionConfig
from salotto.clients.core import servers as server_list
from salotto.clients.core.servers import PLAIN_PORT, TLS_PORT, Server, ServerListError, format_servers, parse_servers
from salotto.clients.tk.dialog import ConnectDialog, ConnectRequest
from salotto.clients.tk.options import build_parser
from salotto.clients.tk.settings import Settings, load_settings, save_settings
from salotto.clients.tk.theme import Theme, apply_theme
from salotto.clients.tk.window import ChatWindow

__all__ = ["main", "parse_server", "parse_server_list", "run"]

DEFAULT_GEOMETRY = "1000x640"
# Tk's main loop waits for X events in C; Python runs a signal handler only once it gets control back.
# A callback this often gives it control, so SIGTERM or Ctrl+C in the terminal is answered at once even
# while nothing else happens (the connect dialog with the mouse still).
SIGNAL_CHECK_MS = 100


def parse_server(text: str, tls: bool) -> Server:
    """``host``, ``host:port`` or ``[v6addr]:port`` to (host, port); the port defaults to 6667 (6697 with TLS).

    Raises:
        ServerListError (a ValueError): no host, or the port is not a number from 1 to 65535.
    """
    return server_list.parse_server(text, TLS_PORT if tls else PLAIN_PORT)


def parse_server_list(text: str, tls: bool) -> tuple[Server, ...]:
    """``--server``'s value: one server or a comma-separated list of them (a cluster's nodes), in order.

    Raises:
        ServerListError (a ValueError): the message names the bad entry.
    """
    return parse_servers(text, TLS_PORT if tls else PLAIN_PORT)


class App:
    """Owns the Tk root, the settings and whichever of dialog or chat window is showing."""

    def __init__(self, root: tk.Tk, settings: Settings, join: list[str], tls_verify: bool) -> None:
        self.root = root
        self.settings = settings
        self.join = join
        self.tls_verify = tls_verify
        self.theme: Theme = apply_theme(root, settings.theme, settings.font_size)
        self.window: ChatWindow | None = None
        self.dialog: ConnectDialog | None = None
        root.title("salotto")
        root.geometry(settings.geometry or DEFAULT_GEOMETRY)
        root.minsize(480, 320)

    def show_dialog(self, refused: str = "") -> None:
        """The connect dialog; ``refused``: why the server did not let us in (its password), asked for there."""
        self.root.geometry("")
        self.dialog = ConnectDialog(self.root, self.settings, self.connect, self.root.destroy)
        self.dialog.pack(fill="both", expand=True)
        self.root.protocol("WM_DELETE_WINDOW", self.root.destroy)
        if refused:
            self.dialog.ask_server_password(refused)

    def connect(self, request: ConnectRequest) -> None:
        s = self.settings
        s.host, s.port, s.nick, s.tls, s.account = (request.host, request.port, request.nick, request.tls,
                                                    request.account)
        if request.more_servers:  # the list as typed back: host:port of each
            s.host = format_servers([Server(request.host, request.port), *request.more_servers])
            s.port = request.default_port or s.port
        s.always_on = request.always_on_ticked
        save_settings(s)
        if self.dialog is not None:
            self.dialog.destroy()
            self.dialog = None
            self.root.geometry(s.geometry or DEFAULT_GEOMETRY)
        config = SessionConfig(
            nick=request.nick,
            server_password=request.server_password,
            sasl_account=request.account if request.password else "",
            sasl_password=request.password,
            autojoin=("#lobby", *self.join),
            always_on=request.always_on if request.password else None,
        )
        client = Client(request.host, request.port, config, more_servers=request.more_servers, tls=request.tls,
                        tls_verify=self.tls_verify)
        self.window = ChatWindow(self.root, client, self.theme, on_closed=self._save_geometry,
                                 on_font_size=self.set_font_size, on_refused=self._refused,
                                 on_theme=self.set_theme)
        client.start()

    def _refused(self, why: str) -> None:
        """A private server refused us (no or a wrong server password): back to the dialog to give it."""
        self._save_geometry()
        self.window = None
        self.show_dialog(refused=why)

    def set_font_size(self, size: int) -> None:
        self.settings.font_size = size
        self.settings.normalised()
        apply_theme(self.root, self.settings.theme, self.settings.font_size, self.theme)
        if self.window is not None:
            self.window.restyle(self.theme)
        save_settings(self.settings)

    def set_theme(self, name: str) -> None:
        """Light or dark (the window's sun/moon button): applied at once and saved for next time."""
        self.settings.theme = name
        self.settings.normalised()
        apply_theme(self.root, self.settings.theme, self.settings.font_size, self.theme)
        if self.window is not None:
            self.window.restyle(self.theme)
        save_settings(self.settings)

    def _save_geometry(self) -> None:
        if self.root.winfo_exists() and self.root.winfo_width() > 1:
            self.settings.geometry = f"{self.root.winfo_width()}x{self.root.winfo_height()}"
        save_settings(self.settings)

    def close(self) -> None:
        """SIGTERM or Ctrl+C in the terminal: leave as the close button does."""
        if self.window is not None:
            self.window.close()
        elif self.root.winfo_exists():
            self.root.destroy()


def main(argv: list[str] | None = None) -> int:
    """``python -m salotto.clients.tk``: ``argv`` are the same options as ``salotto gui``'s."""
    return run(build_parser().parse_args(argv))


def run(args: argparse.Namespace) -> int:
    """Run the desktop client with its parsed options (see salotto.clients.tk.options). Returns the exit code."""
    settings = load_settings()
    if args.font_size is not None:
        settings.font_size = args.font_size
    if args.theme is not None:
        settings.theme = args.theme
    settings.normalised()
    request: ConnectRequest | None = None
    if args.server:
        try:
            first, *more = parse_server_list(args.server, args.tls)
        except ServerListError as exc:
            print(f"salotto gui: --server wants HOST[:PORT] or a comma-separated list of them: {exc}",
                  file=sys.stderr)
            return 2
        nick = args.nick or settings.nick or getpass.getuser() or "guest"
        request = ConnectRequest(first.host, first.port, nick, args.tls, settings.account, "",
                                 always_on_ticked=settings.always_on, more_servers=tuple(more),
                                 default_port=TLS_PORT if args.tls else PLAIN_PORT)
    try:
        root = tk.Tk(className="salotto")
    except tk.TclError as exc:
        print(f"salotto gui: cannot open a window ({exc}). Is there a display (DISPLAY)?", file=sys.stderr)
        return 1
    app = App(root, settings, args.join, tls_verify=not args.tls_insecure)

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        root.after(0, app.close)

    def let_signal_handlers_run() -> None:
        root.after(SIGNAL_CHECK_MS, let_signal_handlers_run)

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    let_signal_handlers_run()
    try:
        if request is not None:
            app.connect(request)
        else:
            app.show_dialog()
        root.mainloop()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0
