"""``salotto gui``: the connect dialog (or ``--server``/``--nick`` straight away), then the chat window."""

from __future__ import annotations

import argparse
import getpass
import signal
import sys
import tkinter as tk
from types import FrameType

from salotto.clients.core import Client, SessionConfig
from salotto.clients.tk.dialog import PLAIN_PORT, TLS_PORT, ConnectDialog, ConnectRequest
from salotto.clients.tk.options import build_parser
from salotto.clients.tk.settings import Settings, load_settings, save_settings
from salotto.clients.tk.theme import Theme, apply_theme
from salotto.clients.tk.window import ChatWindow

__all__ = ["main", "parse_server", "run"]

DEFAULT_GEOMETRY = "1000x640"
# Tk's main loop waits for X events in C; Python runs a signal handler only once it gets control back.
# A callback this often gives it control, so SIGTERM or Ctrl+C in the terminal is answered at once even
# while nothing else happens (the connect dialog with the mouse still).
SIGNAL_CHECK_MS = 100


def parse_server(text: str, tls: bool) -> tuple[str, int]:
    """``host``, ``host:port`` or ``[v6addr]:port`` to (host, port).

    Raises:
        ValueError: the port is not a number from 1 to 65535.
    """
    default = TLS_PORT if tls else PLAIN_PORT
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port_text = rest.removeprefix(":")
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
    else:
        host, port_text = text, ""
    port = int(port_text) if port_text else default
    if not 0 < port < 65536 or not host:
        raise ValueError(text)
    return host, port


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
        client = Client(request.host, request.port, config, tls=request.tls, tls_verify=self.tls_verify)
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
            host, port = parse_server(args.server, args.tls)
        except ValueError:
            print(f"salotto gui: --server wants HOST or HOST:PORT, not {args.server!r}", file=sys.stderr)
            return 2
        nick = args.nick or settings.nick or getpass.getuser() or "guest"
        request = ConnectRequest(host, port, nick, args.tls, settings.account, "",
                                 always_on_ticked=settings.always_on)
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
