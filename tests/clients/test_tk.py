"""The Tk app under Xvfb against live servers: typing, Send, what the other user's window shows, close."""

from __future__ import annotations

import contextlib
import functools
import gc
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path

import pytest

from salotto.clients.core import Client, Line, SessionConfig
from salotto.clients.core.history import START_OF_HISTORY
from salotto.clients.core.session import QUICK_REACTIONS
from tests.clients.conftest import HISTORY_LINES_SAID, IrcServer, free_port, make_server, numbered_line
from tests.clients.test_failover import FAILOVER_S, address, kill, say_in_lobby
from tests.clients.test_live import has_line, has_member, joined
from tests.conftest import RunningServer
from tests.entry_point import path_without_the_venv, salotto_command

try:
    import tkinter as tk
except ImportError:  # pragma: no cover - depends on how Python was built
    pytest.skip("this Python has no tkinter (apt-get install python3-tk)", allow_module_level=True)

import tkinter.font as tkfont
from tkinter import ttk

from salotto.clients.tk.app import DEFAULT_GEOMETRY, App, main, parse_server
from salotto.clients.tk.dialog import ConnectRequest
from salotto.clients.tk.notify import Notifier, urgent
from salotto.clients.tk.settings import DEFAULT_FONT_SIZE, Settings, load_settings
from salotto.clients.tk.theme import PALETTES, apply_theme
from salotto.clients.tk.window import ChatWindow

WAIT_S = 10.0


def pump_until(root: tk.Tk, predicate: Callable[[], bool], timeout_s: float = WAIT_S) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        root.update()
        if predicate():
            return True
        time.sleep(0.02)
    return False


@pytest.fixture
def root(xdisplay: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tk.Tk]:
    monkeypatch.setenv("SALOTTO_CONFIG_DIR", str(tmp_path / "config"))
    window = tk.Tk()
    yield window
    with contextlib.suppress(tk.TclError):  # unless the test closed it
        window.destroy()
    # Tk objects left in reference cycles must be collected here, on the thread Tk runs on: a collection
    # that happens to run on a client's network thread later calls into Tcl from there, which aborts.
    gc.collect()


def open_window(root: tk.Tk, server: IrcServer, nick: str) -> tuple[tk.Toplevel, ChatWindow]:
    top = tk.Toplevel(root)
    top.geometry("900x560")
    theme = apply_theme(root, "light", 10)
    client = Client("127.0.0.1", server.port, SessionConfig(nick=nick))
    window = ChatWindow(top, client, theme)
    client.start()
    assert pump_until(root, lambda: window.shown_key == "#lobby"), window.view.content()
    return top, window


def test_send_shows_in_other_window_and_close_is_a_quit(root: tk.Tk, irc_server: IrcServer) -> None:
    alice_top, alice = open_window(root, irc_server, "alice")
    _bob_top, bob = open_window(root, irc_server, "bob")
    assert pump_until(root, lambda: "bob" in alice.nick_list.get(0, "end"))

    alice.entry.insert(0, "hello from the alice window")
    alice.send_button.invoke()
    assert alice.entry.get() == ""
    assert pump_until(root, lambda: "hello from the alice window" in bob.view.content())
    assert "hello from the alice window" in alice.view.content()

    # Enter in the entry sends too; Up recalls the last line.
    bob.entry.focus_force()
    bob.entry.insert(0, "and bob answers")
    bob.entry.event_generate("<Return>")
    assert pump_until(root, lambda: "and bob answers" in alice.view.content())
    bob.entry.event_generate("<Up>")
    root.update()
    assert bob.entry.get() == "and bob answers"
    bob.entry.delete(0, "end")

    # Tab completes a nick at the start of the line.
    bob.entry.insert(0, "al")
    bob.entry.event_generate("<Tab>")
    root.update()
    assert bob.entry.get() == "alice: "
    bob.entry.delete(0, "end")

    # Unknown commands and /help are readable lines, not tracebacks.
    bob.entry.insert(0, "/frobnicate")
    bob.send_button.invoke()
    assert "Unknown command /frobnicate" in bob.view.content()
    bob.entry.insert(0, "/help")
    bob.send_button.invoke()
    assert "/join #channel" in bob.view.content()

    # Double-clicking a nick in the list opens a private conversation.
    names = list(bob.nick_list.get(0, "end"))
    box = bob.nick_list.bbox(names.index(next(n for n in names if n.lstrip("@+") == "alice")))
    assert box is not None
    x, y, _w, h = box
    for _ in range(2):
        bob.nick_list.event_generate("<ButtonPress-1>", x=x + 2, y=y + h // 2)
        bob.nick_list.event_generate("<ButtonRelease-1>", x=x + 2, y=y + h // 2)
    root.update()
    assert bob.shown_key == "alice"
    assert bob.buffer_list.exists("alice")
    bob.entry.insert(0, "a private word")
    bob.send_button.invoke()
    assert pump_until(root, lambda: alice.buffer_list.exists("bob"))
    assert "mention" in alice.buffer_list.item("bob", "tags")  # a private message counts as a mention
    alice.show("bob")
    assert "a private word" in alice.view.content()

    # Closing the window (the window manager's close button) sends QUIT.
    alice_top.tk.call(alice_top.protocol("WM_DELETE_WINDOW"))
    assert not alice_top.winfo_exists()
    bob.show("#lobby")
    assert pump_until(root, lambda: "alice quit" in bob.view.content())
    assert "alice" not in [n.lstrip("@+") for n in bob.nick_list.get(0, "end")]


def test_connect_dialog_connects_and_remembers(root: tk.Tk, irc_server: IrcServer) -> None:
    app = App(root, Settings(), [], tls_verify=True)
    app.show_dialog()
    dialog = app.dialog
    assert dialog is not None
    dialog.host.set("127.0.0.1")
    dialog.port.set("not a port")
    dialog.nick.set("erin")
    dialog.submit()
    assert "port" in dialog.message.get()
    dialog.port.set(str(irc_server.port))
    dialog.connect_button.invoke()
    window = app.window
    assert window is not None
    assert pump_until(root, lambda: window.shown_key == "#lobby")
    assert root.focus_get() == window.entry
    saved = load_settings()
    assert (saved.host, saved.port, saved.nick) == ("127.0.0.1", irc_server.port, "erin")
    app.set_font_size(16)
    assert window.theme.text_font.cget("size") == 16
    assert load_settings().font_size == 16
    # The sun/moon button: dark at once (the web page's dark palette), saved, and back.
    light_bg = str(window.view.text.cget("background"))
    window.theme_button.invoke()
    root.update()
    assert window.theme.name == "dark" and load_settings().theme == "dark"
    assert str(window.view.text.cget("background")) == PALETTES["dark"].view_bg != light_bg
    assert ttk.Style(root).lookup("Accent.TButton", "background") == PALETTES["dark"].accent
    assert window.theme_button.cget("text") == "\u2600"  # the sun: back to light
    window.theme_button.invoke()
    root.update()
    assert load_settings().theme == "light" and str(window.view.text.cget("background")) == light_bg
    window.close()


def test_parse_server() -> None:
    assert parse_server("chat.example.org", tls=False) == ("chat.example.org", 6667)
    assert parse_server("chat.example.org", tls=True) == ("chat.example.org", 6697)
    assert parse_server("127.0.0.1:7000", tls=False) == ("127.0.0.1", 7000)
    assert parse_server("[::1]:7000", tls=False) == ("::1", 7000)
    with pytest.raises(ValueError):
        parse_server("host:99999", tls=False)


def test_main_rejects_a_bad_server(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--server", "host:port", "--nick", "x"]) == 2
    assert "--server" in capsys.readouterr().err
    # In a list, the message names the entry that is wrong.
    assert main(["--server", "a.example.org:6667,b.example.org:66x7", "--nick", "x"]) == 2
    err = capsys.readouterr().err
    assert "--server" in err and "'b.example.org:66x7': the port must be a number from 1 to 65535" in err
    assert main(["--server", "a.example.org,,b.example.org", "--nick", "x"]) == 2
    assert "server 2 of 3 in 'a.example.org,,b.example.org' is empty" in capsys.readouterr().err


def test_the_window_follows_its_network_to_the_next_server_when_its_server_is_killed(
        root: tk.Tk, two_salottos: tuple[RunningServer, RunningServer]) -> None:
    """The connect dialog takes a list; kill -9 the server the window is on: it carries on on the next."""
    a, b = two_salottos
    app = App(root, Settings(), [], tls_verify=True)
    app.show_dialog()
    dialog = app.dialog
    assert dialog is not None
    dialog.host.set(f"{address(a)},127.0.0.1:bad")
    dialog.nick.set("erin")
    dialog.submit()
    assert dialog.message.get() == "Server: '127.0.0.1:bad': the port must be a number from 1 to 65535, not 'bad'."
    assert app.window is None
    dialog.host.set(f"{address(a)}, {address(b)}")
    dialog.connect_button.invoke()
    window = app.window
    assert window is not None
    assert pump_until(root, lambda: window.shown_key == "#lobby" and window.session.registered)
    assert window.status.cget("text") == f"connected to {address(a)}"
    assert load_settings().host == f"{address(a)},{address(b)}"  # the dialog offers the list next time

    kill(a)
    killed_at = time.monotonic()
    lobby_joined = joined("#lobby")
    assert pump_until(root, lambda: window.client.server == address(b) and lobby_joined(window.session),
                      FAILOVER_S), window.status.cget("text")
    assert time.monotonic() - killed_at < FAILOVER_S
    assert window.status.cget("text") == f"connected to {address(b)}"
    assert window.shown_key == "#lobby" and window.session.nick == "erin"
    assert f"Connection to {address(a)} lost" in window.view.content()
    assert f"connecting to {address(b)}..." in window.view.content()
    dora = say_in_lobby(b, "dora", "hello from the other node")
    try:
        assert pump_until(root, lambda: "hello from the other node" in window.view.content())
        assert pump_until(root, lambda: "dora" in window.nick_list.get(0, "end"))
    finally:
        dora.close()
    window.close()


def test_salotto_gui_with_a_list_goes_to_the_next_server_when_the_first_is_down(
        xdisplay: str, two_salottos: tuple[RunningServer, RunningServer], tmp_path: Path) -> None:
    """``salotto gui --server A,B`` with A down at start: the window is on B at once."""
    a, b = two_salottos
    kill(a)
    watcher = Client(b.host, b.port, SessionConfig(nick="watcher"))
    watcher.start()
    app = start_gui(xdisplay, tmp_path, "--server", f"{address(a)},{address(b)}", "--nick", "erin")
    try:
        assert watcher.wait_until(joined("#lobby"), WAIT_S)
        assert watcher.wait_until(has_member("#lobby", "erin"), FAILOVER_S), gui_output(app)
        app.send_signal(signal.SIGTERM)
        assert app.wait(5) == 0
    finally:
        out = gui_output(app)
        watcher.close()
    assert "Traceback" not in out, out


@pytest.mark.skipif(shutil.which("xdotool") is None, reason="xdotool not installed (apt-get install xdotool)")
def test_real_keys_in_the_app_process(xdisplay: str, irc_server: IrcServer, tmp_path: Path) -> None:
    """``python -m salotto.clients.tk --server --nick``: focus lands in the entry; real keys chat and quit."""
    watcher = Client("127.0.0.1", irc_server.port, SessionConfig(nick="watcher"))
    watcher.start()
    env = {**os.environ, "DISPLAY": xdisplay, "SALOTTO_CONFIG_DIR": str(tmp_path / "config")}
    app = subprocess.Popen(
        [sys.executable, "-m", "salotto.clients.tk", "--server", f"127.0.0.1:{irc_server.port}", "--nick", "dave"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    try:
        assert watcher.wait_until(joined("#lobby"), WAIT_S)
        assert watcher.wait_until(has_member("#lobby", "dave"), WAIT_S)
        time.sleep(0.5)  # the window maps and takes focus after registration
        subprocess.run(["xdotool", "type", "--delay", "10", "typed for real"], env=env, check=True)
        subprocess.run(["xdotool", "key", "Return"], env=env, check=True)
        assert watcher.wait_until(has_line("#lobby", "typed for real"), WAIT_S)
        subprocess.run(["xdotool", "key", "ctrl+q"], env=env, check=True)
        assert app.wait(WAIT_S) == 0
        assert watcher.wait_until(has_line("#lobby", "dave quit"), WAIT_S)
        assert load_settings(tmp_path / "config" / "gui.json").nick == "dave"
    finally:
        if app.poll() is None:
            app.kill()
        out = app.communicate()[0].decode(errors="replace")
        assert "Traceback" not in out, out
        watcher.close()


def start_gui(xdisplay: str, tmp_path: Path, *args: str) -> subprocess.Popen[bytes]:
    """``salotto gui ARGS`` as a user types it: the installed command, on the Xvfb display."""
    env = {**os.environ, "DISPLAY": xdisplay, "SALOTTO_CONFIG_DIR": str(tmp_path / "config")}
    return subprocess.Popen([salotto_command(), "gui", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)


@functools.cache  # the output can be read once; an assertion's message and the cleanup both want it
def gui_output(app: subprocess.Popen[bytes]) -> str:
    """Everything the app printed; kills it first if it still runs."""
    if app.poll() is None:
        app.kill()
    return app.communicate()[0].decode(errors="replace")


def test_salotto_gui_command_connects_straight_in_and_leaves_on_sigterm(
    xdisplay: str, server_factory: Callable[[str], IrcServer], tmp_path: Path
) -> None:
    """The command the README and the server's banner print: ``salotto gui --server HOST:PORT --nick NAME``."""
    server = server_factory("salotto")
    watcher = Client("127.0.0.1", server.port, SessionConfig(nick="watcher"))
    watcher.start()
    app = start_gui(xdisplay, tmp_path, "--server", f"127.0.0.1:{server.port}", "--nick", "erin")
    try:
        assert watcher.wait_until(joined("#lobby"), WAIT_S)
        assert watcher.wait_until(has_member("#lobby", "erin"), WAIT_S), gui_output(app)
        app.send_signal(signal.SIGTERM)
        assert app.wait(2) == 0
        assert watcher.wait_until(has_line("#lobby", "erin quit"), WAIT_S)
    finally:
        out = gui_output(app)
        watcher.close()
    assert "Traceback" not in out and "error" not in out, out


@pytest.mark.parametrize("launcher", ["installed command", "python -m"])
def test_the_command_the_banner_prints_connects_from_anywhere(xdisplay: str, tmp_path: Path, launcher: str) -> None:
    """Copy the server's "Connect with:" command into another terminal, in another directory: it connects."""
    env = {**os.environ, "PATH": path_without_the_venv(), "SALOTTO_CONFIG_DIR": str(tmp_path / "config")}
    program = [salotto_command()] if launcher == "installed command" else [sys.executable, "-m", "salotto"]
    port = free_port()
    server = subprocess.Popen(
        [*program, "serve", "--listen", f"127.0.0.1:{port}", "--web-listen", "", "--data-dir", str(tmp_path / "data")],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    watcher: Client | None = None
    app: subprocess.Popen[bytes] | None = None
    try:
        assert server.stdout is not None
        banner = ""
        while "Connect with:" not in banner:
            line = server.stdout.readline()
            assert line, f"salotto serve printed no 'Connect with:' line: {banner!r}"
            banner += line
        printed = re.search(r"Connect with: (.+?)  \(", banner)
        assert printed is not None, banner
        argv = [arg.replace("YOURNAME", "copier") for arg in shlex.split(printed.group(1))]
        assert argv[argv.index("--server") + 1] == f"127.0.0.1:{port}"
        watcher = Client("127.0.0.1", port, SessionConfig(nick="watcher"))
        watcher.start()
        app = subprocess.Popen(argv, env=env, cwd=elsewhere, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        assert watcher.wait_until(has_member("#lobby", "copier"), WAIT_S), gui_output(app)
        app.send_signal(signal.SIGTERM)
        assert app.wait(WAIT_S) == 0
    finally:
        if watcher is not None:
            watcher.close()
        out = gui_output(app) if app is not None else ""
        server.terminate()
        server.communicate(timeout=10)
    assert "Traceback" not in out, out


def wait_for_window(app: subprocess.Popen[bytes], title: str, timeout_s: float = WAIT_S) -> None:
    """Until a window called ``title`` shows on the display (xdotool asks the X server)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert app.poll() is None, f"the app exited with {app.returncode}: {gui_output(app)}"
        found = subprocess.run(["xdotool", "search", "--onlyvisible", "--name", f"^{title}$"],
                               capture_output=True)
        if found.returncode == 0:
            return
        time.sleep(0.1)
    raise AssertionError(f"no window {title!r} within {timeout_s} s: {gui_output(app)}")


@pytest.mark.skipif(shutil.which("xdotool") is None, reason="xdotool not installed (apt-get install xdotool)")
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_connect_dialog_leaves_at_once_on_sigterm_and_ctrl_c(
    xdisplay: str, tmp_path: Path, signum: signal.Signals
) -> None:
    """Nobody touches the dialog, so Tk has no event to wake up for; the signal must still end it."""
    app = start_gui(xdisplay, tmp_path)
    try:
        wait_for_window(app, "salotto")
        time.sleep(0.5)  # idle in Tk's main loop, waiting for X events
        app.send_signal(signum)
        try:
            code = app.wait(2)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"salotto gui still runs 2 s after {signum.name}") from None
        assert code == 0
    finally:
        out = gui_output(app)
    assert "Traceback" not in out, out


def test_status_line_and_entry_are_whole_at_default_and_small_sizes(
    root: tk.Tk, server_factory: Callable[[str], IrcServer]
) -> None:
    """The fixed-height rows get their full height; the messages shrink instead.

    A bigger font (Ctrl+plus, or the same points on a HiDPI screen) is a smaller window for the layout.
    """
    server = server_factory("salotto")
    app = App(root, Settings(), [], tls_verify=True)
    app.connect(ConnectRequest("127.0.0.1", server.port, "sizer", False, "", ""))
    window = app.window
    assert window is not None
    assert pump_until(root, lambda: window.shown_key == "#lobby")
    status_font = tkfont.Font(root, name=ttk.Style(root).lookup("Status.TLabel", "font"), exists=True)
    smallest = "x".join(str(n) for n in root.minsize())
    for font_size in (DEFAULT_FONT_SIZE, DEFAULT_FONT_SIZE + 3):
        app.set_font_size(font_size)
        for geometry in (DEFAULT_GEOMETRY, smallest):
            size = tuple(int(n) for n in geometry.split("x"))
            root.geometry(geometry)
            assert pump_until(root, lambda size=size: (root.winfo_width(), root.winfo_height()) == size)
            root.update()
            status, entry = window.status, window.entry
            where = f"{geometry} at {font_size} points"
            assert status.winfo_ismapped() and status.cget("text"), where
            assert status.winfo_height() >= status.winfo_reqheight() > status_font.metrics("linespace"), (
                f"{where}: status line {status.winfo_height()} px high, its text {status_font.metrics('linespace')}")
            assert entry.winfo_height() >= entry.winfo_reqheight(), (
                f"{where}: entry {entry.winfo_height()} px high of {entry.winfo_reqheight()}")
            assert window.view.winfo_height() > status_font.metrics("linespace"), where
    window.close()


def top_line(window: ChatWindow) -> str:
    """The text line at the top of the message view."""
    return window.view.text.get("@0,0 linestart", "@0,0 lineend")


def xdotool(*args: str) -> None:
    subprocess.run(["xdotool", *args], check=True)


@pytest.mark.skipif(shutil.which("xdotool") is None, reason="xdotool not installed (apt-get install xdotool)")
def test_scrolling_up_loads_older_lines_and_keeps_the_view(root: tk.Tk, history_server: IrcServer) -> None:
    """Real wheel clicks and Page Up (xdotool) scroll #lobby back to its first line, the view holding still."""
    _top, window = open_window(root, history_server, "reader")
    text = window.view.text
    newest, oldest_on_join = numbered_line(HISTORY_LINES_SAID), numbered_line(HISTORY_LINES_SAID - 49)
    assert pump_until(root, lambda: newest in window.view.content())
    assert oldest_on_join in window.view.content()
    assert numbered_line(HISTORY_LINES_SAID - 50) not in window.view.content()
    assert text.yview()[1] == 1.0  # a freshly shown buffer is at its bottom

    # The mouse wheel, over the messages, up to the top of what is there: that asks for more.
    root.update()
    x = text.winfo_rootx() + text.winfo_width() // 2
    y = text.winfo_rooty() + text.winfo_height() // 2
    xdotool("mousemove", "--sync", str(x), str(y))
    older = numbered_line(HISTORY_LINES_SAID - 50)
    for _ in range(100):  # until the top; clicking on would scroll the older lines into view
        if text.yview()[0] == 0.0 or older in window.view.content():
            break
        xdotool("click", "4")
        pump_until(root, lambda: False, 0.05)
    assert pump_until(root, lambda: older in window.view.content()), "no older lines after scrolling to the top"
    # They went in above: the line the user had scrolled up to is still the one at the top.
    assert oldest_on_join in top_line(window)
    first, last = text.yview()
    assert first > 0.0 and last < 1.0, "the view jumped"

    # Page Up in the entry, with real keys, all the way to the first line ever said.
    window.entry.focus_force()
    root.update()
    for _ in range(200):
        if START_OF_HISTORY in window.view.content():
            break
        xdotool("key", "Prior")
        pump_until(root, lambda: False, 0.05)
    assert START_OF_HISTORY in window.view.content()
    said = re.findall(r"line \d{3}", window.view.content())
    assert said == [numbered_line(i) for i in range(1, HISTORY_LINES_SAID + 1)]
    assert window.view.content().count(START_OF_HISTORY) == 1
    assert text.yview()[1] < 1.0


def test_a_private_server_sends_the_app_back_to_the_dialog_for_its_password(
        root: tk.Tk, tmp_path: Path) -> None:
    from salotto.passwords import hash_password
    from tests.clients.conftest import make_server

    server = make_server("salotto", tmp_path, "--server-password-hash", hash_password("let us in", n=2**10),
                         "--login-attempts-per-ip", "100")
    server.start()
    try:
        app = App(root, Settings(host="127.0.0.1", port=server.port, nick="kim"), [], tls_verify=True)
        app.show_dialog()
        assert app.dialog is not None
        app.dialog.connect_button.invoke()  # no server password
        assert pump_until(root, lambda: app.dialog is not None and "private" in app.dialog.message.get())
        dialog = app.dialog
        assert pump_until(root, lambda: root.focus_get() == dialog.server_password_entry)
        dialog.server_password.set("wrong")
        dialog.connect_button.invoke()
        assert pump_until(root, lambda: app.dialog is not None and "refused" in app.dialog.message.get())
        assert app.dialog.server_password.get() == ""
        app.dialog.server_password.set("let us in")
        app.dialog.connect_button.invoke()
        window = app.window
        assert window is not None
        assert pump_until(root, lambda: window.shown_key == "#lobby"), window.view.content()
        assert "let us in" not in (tmp_path / "config" / "gui.json").read_text()  # passwords are never saved
        window.close()
    finally:
        server.stop()


def test_a_refused_server_password_is_not_retried(xdisplay: str, tmp_path: Path) -> None:
    from salotto.passwords import hash_password
    from tests.clients.conftest import make_server

    server = make_server("salotto", tmp_path, "--server-password-hash", hash_password("let us in", n=2**10))
    server.start()
    try:
        client = Client("127.0.0.1", server.port, SessionConfig(nick="lee", server_password="nope"),
                        reconnect_delays_s=[0.05])
        client.start()
        assert client.wait_until(lambda s: s.refused is not None, WAIT_S)
        assert client.wait_until(lambda s: not s.connected, WAIT_S)
        client.pump(0.3)  # a reconnection would be due by now
        assert "refused: Password incorrect" in client.status
        assert sum("wrong server password" in line for line in server.log[-1].read_text().splitlines()) == 1
        client.close()
    finally:
        server.stop()


def test_desktop_clients_chat_on_a_postgresql_store_and_find_the_history_after_a_restart(
    root: tk.Tk, tmp_path: Path, postgres_url: str
) -> None:
    """``--storage-backend postgresql`` end to end with the desktop client: two windows chat; after the
    server restarts on the same database, a new window finds what was said."""
    server = make_server("salotto", tmp_path, "--storage-backend", "postgresql", "--storage-url", postgres_url)
    server.start()
    try:
        alice_top, alice = open_window(root, server, "alice")
        bob_top, bob = open_window(root, server, "bob")
        alice.entry.insert(0, "stored in postgres by tk")
        alice.send_button.invoke()
        assert pump_until(root, lambda: "stored in postgres by tk" in bob.view.content())
        for top in (alice_top, bob_top):
            top.destroy()
        server.restart()
        _erin_top, erin = open_window(root, server, "erin")
        assert pump_until(root, lambda: "stored in postgres by tk" in erin.view.content()), erin.view.content()
    finally:
        server.stop()


# -- replies, reactions, deleting, notifications, pasting several lines ------------------------------


def sees(window: ChatWindow, nick: str) -> bool:
    return any(name.lstrip("@+") == nick for name in window.nick_list.get(0, "end"))


def line_with(window: ChatWindow, text: str) -> Line:
    buf = window.session.buffers["#lobby"]
    return next(line for line in reversed(buf.lines) if line.text == text)


def right_click(root: tk.Tk, window: ChatWindow, line: Line) -> list[str]:
    """Right-click the message in the view; the labels of the menu that comes up (then closed)."""
    box = window.view.bbox_of(line)
    assert box is not None, window.view.content()
    x, y, _w, h = box
    window.view.text.event_generate("<Button-3>", x=x + 1, y=y + h // 2, rootx=100, rooty=100)
    root.update()
    assert window.menu_line is line
    labels = [str(window.menu.entrycget(i, "label")) for i in range(int(window.menu.index("end") or 0) + 1)
              if window.menu.type(i) == "command"]
    window.menu.unpost()
    return labels


def choose(root: tk.Tk, window: ChatWindow, line: Line, label: str) -> None:
    labels = right_click(root, window, line)
    index = next(i for i in range(int(window.menu.index("end") or 0) + 1)
                 if window.menu.type(i) == "command" and window.menu.entrycget(i, "label") == label)
    assert label in labels
    window.menu.invoke(index)
    root.update()


def test_reply_and_react_from_the_message_menu(root: tk.Tk, irc_server: IrcServer) -> None:
    _at, alice = open_window(root, irc_server, "alice")
    _bt, bob = open_window(root, irc_server, "bob")
    assert pump_until(root, lambda: sees(bob, "alice"))
    bob.entry.insert(0, "lunch at noon?")
    bob.send_button.invoke()
    assert pump_until(root, lambda: "lunch at noon?" in alice.view.content())
    question = line_with(alice, "lunch at noon?")
    if irc_server.kind == "ngircd":
        # No message-tags there: nothing to reply or react with, and nothing pretends to.
        assert right_click(root, alice, question) == ["Copy text"]
        return

    choose(root, alice, question, "\u21a9  Reply")
    assert alice.reply_bar.winfo_ismapped() and "Replying to bob: lunch at noon?" in alice.reply_label.cget("text")
    alice.entry.insert(0, "yes, the usual place")
    alice.entry.event_generate("<Return>")
    root.update()
    assert not alice.reply_bar.winfo_ismapped()
    # Bob sees the quote above the answer.
    assert pump_until(root, lambda: "\u21aa bob  lunch at noon?\n" in bob.view.content()), bob.view.content()
    assert "yes, the usual place" in bob.view.content()

    thumbs = QUICK_REACTIONS[0]
    choose(root, alice, question, f"React  {thumbs}")
    assert pump_until(root, lambda: f" {thumbs} 1 " in bob.view.content()), bob.view.content()
    # Bob's click on the chip adds his: two, on both sides.
    mine = line_with(bob, "lunch at noon?")
    start = bob.view.text.search(f" {thumbs} 1 ", "1.0")
    box = bob.view.text.bbox(f"{start}+2c")
    assert box is not None
    where = {"x": box[0] + 1, "y": box[1] + box[3] // 2}
    bob.view.text.event_generate("<Motion>", **where)  # Tk finds the tag under the mouse on motion
    bob.view.text.event_generate("<Button-1>", **where)
    assert pump_until(root, lambda: f" {thumbs} 2 " in alice.view.content()), alice.view.content()
    assert pump_until(root, lambda: mine.reactions == {thumbs: ["alice", "bob"]}), mine.reactions
    assert f" {thumbs} 2 " in bob.view.content()

    # Someone who comes later gets both from the history replay.
    _ct, carol = open_window(root, irc_server, "carol")
    assert pump_until(root, lambda: f" {thumbs} 2 " in carol.view.content()), carol.view.content()
    assert "\u21aa bob  lunch at noon?\n" in carol.view.content()


def test_deleting_a_message_removes_it_for_everyone(root: tk.Tk, server_factory: Callable[[str], IrcServer]) -> None:
    server = server_factory("salotto")
    _at, alice = open_window(root, server, "alice")
    _bt, bob = open_window(root, server, "bob")
    if "draft/message-redaction" not in alice.session.caps_enabled:
        pytest.skip("this salotto does not offer draft/message-redaction yet (branch redact)")
    assert pump_until(root, lambda: sees(bob, "alice"))
    alice.entry.insert(0, "oops, wrong window")
    alice.send_button.invoke()
    assert pump_until(root, lambda: "oops, wrong window" in bob.view.content())
    assert "Delete message" not in right_click(root, bob, line_with(bob, "oops, wrong window"))
    choose(root, bob, line_with(bob, "oops, wrong window"), "\u21a9  Reply")
    bob.entry.insert(0, "which window?")
    bob.send_button.invoke()
    assert pump_until(root, lambda: "\u21aa alice  oops, wrong window\n" in alice.view.content())
    choose(root, alice, line_with(alice, "oops, wrong window"), "Delete message")
    assert pump_until(root, lambda: "oops, wrong window" not in bob.view.content()), bob.view.content()
    assert pump_until(root, lambda: "oops, wrong window" not in alice.view.content())
    # The reply stays, quoting what is no longer there.
    assert "\u21aa a deleted message\n" in bob.view.content()


def test_a_mention_in_the_background_notifies(root: tk.Tk, irc_server: IrcServer, tmp_path: Path) -> None:
    """Through the notification command when there is one, else the window's X11 urgency hint."""
    _at, alice = open_window(root, irc_server, "alice")
    bob_top, bob = open_window(root, irc_server, "bob")
    assert pump_until(root, lambda: sees(bob, "alice"))
    record = tmp_path / "notified"
    sender = tmp_path / "notify-send"  # what notify-send would show, written down
    sender.write_text(f"#!/bin/sh\nprintf '%s|' \"$@\" >> {record}\n")
    sender.chmod(0o755)
    alice.notifier = Notifier(alice.master_window, command=str(sender))
    bob.notifier = Notifier(bob_top, command="")  # no notification service
    bob_top.focus_force()
    assert pump_until(root, lambda: bob.focused and not alice.focused)

    bob.entry.insert(0, "alice: are you there?")
    bob.send_button.invoke()
    assert pump_until(root, lambda: record.exists() and "bob in #lobby|alice: are you there?|" in record.read_text())
    assert alice.master_window.title().startswith("(1) ")
    bob.entry.insert(0, "not a mention")
    bob.send_button.invoke()
    assert pump_until(root, lambda: "not a mention" in alice.view.content())
    assert record.read_text().count("|alice") == 1  # only mentions (and private messages) notify

    alice.master_window.focus_force()
    assert pump_until(root, lambda: alice.focused and not bob.focused)
    assert not alice.master_window.title().startswith("(")
    alice.entry.insert(0, "/msg bob psst")
    alice.send_button.invoke()
    assert pump_until(root, lambda: urgent(bob_top)), "no urgency hint on bob's window"
    bob_top.focus_force()
    assert pump_until(root, lambda: not urgent(bob_top))


def test_pasting_several_lines_sends_them(root: tk.Tk, irc_server: IrcServer) -> None:
    """One draft/multiline batch where the server offers it, one message per line elsewhere."""
    _at, alice = open_window(root, irc_server, "alice")
    _bt, bob = open_window(root, irc_server, "bob")
    assert pump_until(root, lambda: sees(bob, "alice"))
    alice.entry.focus_force()
    alice.clipboard_clear()
    alice.clipboard_append("def f():\n    return 42\n")
    alice.entry.event_generate("<<Paste>>")
    root.update()
    batch = "draft/multiline" in alice.session.caps_enabled
    # The entry shows line breaks as boxes; a hint says how the lines will go.
    assert alice.lines_hint.winfo_ismapped()
    assert alice.lines_hint.cget("text") == ("2 lines: one message" if batch else "2 lines: 2 messages")
    alice.entry.event_generate("<Return>")
    root.update()
    assert not alice.lines_hint.winfo_ismapped()
    assert pump_until(root, lambda: "return 42" in bob.view.content())
    texts = [line.text for line in bob.session.buffers["#lobby"].lines]
    if "draft/multiline" in bob.session.caps_enabled and "draft/multiline" in alice.session.caps_enabled:
        assert "def f():\n    return 42" in texts
    else:
        assert texts[-2:] == ["def f():", "    return 42"]


def register_account(server: IrcServer, nick: str, password: str) -> None:
    """Register ``nick`` as an account, as a user would with the client: /quote REGISTER."""
    first = Client("127.0.0.1", server.port, SessionConfig(nick=nick))
    first.start()
    try:
        assert first.wait_until(joined("#lobby"), WAIT_S)
        first.input(f"/quote REGISTER * * {password}")
        assert first.wait_until(has_line("*", f"logged in as {nick}"), WAIT_S)
    finally:
        first.close()


def test_reading_on_one_device_clears_the_unread_count_on_the_other(
    root: tk.Tk, server_factory: Callable[[str], IrcServer]
) -> None:
    server = server_factory("salotto")
    register_account(server, "carol", "carol-secret-pw")
    windows = []
    for nick in ("carol", "carol_laptop"):
        top = tk.Toplevel(root)
        top.geometry("900x560")
        config = SessionConfig(nick=nick, sasl_account="carol", sasl_password="carol-secret-pw",
                               autojoin=("#lobby", "#dev"))
        client = Client("127.0.0.1", server.port, config)
        window = ChatWindow(top, client, apply_theme(root, "light", 10))
        client.start()
        assert pump_until(root, lambda window=window: window.session.account == "carol"
                          and joined("#dev")(window.session))
        windows.append(window)
    desk, laptop = windows
    if "draft/read-marker" not in desk.session.caps_enabled:
        pytest.skip("this salotto does not offer draft/read-marker")
    assert "logged in as carol" in desk.account_label.cget("text")
    for window in windows:
        window.show("#lobby")
    bob = Client("127.0.0.1", server.port, SessionConfig(nick="bob", autojoin=("#lobby", "#dev")))
    bob.start()
    try:
        assert bob.wait_until(joined("#dev"), WAIT_S)
        bob.session.say("#dev", "the build is green")
        bob.flush()
        both = lambda: all(w.session.buffers["#dev"].unread == 1 for w in windows)  # noqa: E731
        assert pump_until(root, both), [w.session.buffers["#dev"].unread for w in windows]
        assert "#dev   1" in laptop.buffer_list.item("#dev", "text")
        # Read on the desk: the laptop's count goes too.
        desk.master_window.focus_force()
        assert pump_until(root, lambda: desk.focused)
        desk.show("#dev")
        assert pump_until(root, lambda: laptop.session.buffers["#dev"].unread == 0)
        assert pump_until(root, lambda: laptop.buffer_list.item("#dev", "text") == "#dev")
    finally:
        bob.close()


def test_a_private_message_in_the_background_is_a_desktop_notification(
    root: tk.Tk, irc_server: IrcServer, notification_service: Callable[[], list[tuple[str, str]]]
) -> None:
    """notify-send to the desktop's notification service (dunst here), as on a desktop session."""
    _at, alice = open_window(root, irc_server, "alice")
    bob_top, bob = open_window(root, irc_server, "bob")
    assert alice.notifier.command.endswith("notify-send")  # found, with a session bus to reach
    assert pump_until(root, lambda: sees(bob, "alice"))
    bob_top.focus_force()
    assert pump_until(root, lambda: bob.focused and not alice.focused)
    bob.entry.insert(0, "/msg alice the keys are under the mat")
    bob.send_button.invoke()
    assert pump_until(root, lambda: ("bob", "the keys are under the mat") in notification_service(), 15), (
        notification_service())


def test_days_are_named_above_their_first_message_also_when_older_lines_come(root: tk.Tk) -> None:
    from datetime import datetime, timedelta

    from salotto.clients.core import LineKind
    from salotto.clients.tk.view import MessageView, day_label

    now = datetime.now().astimezone().replace(hour=12)
    yesterday, today = now - timedelta(days=1), now
    view = MessageView(root, apply_theme(root, "light", 10), lambda _nick: None)
    view.pack()
    view.replace([Line(yesterday, LineKind.MESSAGE, "late last night", "bob"),
                  Line(today, LineKind.MESSAGE, "good morning", "bob")])
    view.append(Line(today + timedelta(minutes=1), LineKind.MESSAGE, "coffee?", "ann"))
    shown = view.content()
    assert shown.index("Yesterday\n") < shown.index("late last night") < shown.index("Today\n") < shown.index(
        "good morning") < shown.index("coffee?")
    assert shown.count("Today") == 1
    # Older lines of the same day: "Yesterday" once, above the oldest.
    view.prepend([Line(yesterday - timedelta(hours=1), LineKind.MESSAGE, "earlier still", "bob")])
    shown = view.content()
    assert shown.startswith("Yesterday\n") and shown.count("Yesterday") == 1
    assert shown.index("earlier still") < shown.index("late last night")
    assert day_label(now.date() - timedelta(days=3), now.date()).endswith(str((now - timedelta(days=3)).year))


def test_the_connect_dialog_logs_in_with_sasl(root: tk.Tk, server_factory: Callable[[str], IrcServer]) -> None:
    server = server_factory("salotto")
    register_account(server, "dora", "dora-secret-pw")
    app = App(root, Settings(), [], tls_verify=True)
    app.show_dialog()
    dialog = app.dialog
    assert dialog is not None
    dialog.host.set("127.0.0.1")
    dialog.port.set(str(server.port))
    dialog.nick.set("dora_desk")
    dialog.account.set("dora")
    dialog.password.set("dora-secret-pw")
    dialog.connect_button.invoke()
    window = app.window
    assert window is not None
    assert pump_until(root, lambda: window.session.account == "dora")
    root.update()
    assert window.account_label.cget("text") == "\u2713 logged in as dora"
    saved = load_settings()
    assert saved.account == "dora" and "dora-secret-pw" not in json.dumps(asdict(saved))
    window.close()


def test_the_connect_dialog_turns_always_on_on_and_then_off(
        root: tk.Tk, server_factory: Callable[[str], IrcServer]) -> None:
    server = server_factory("salotto")
    register_account(server, "ella", "ella-stays-pw")
    watcher = Client("127.0.0.1", server.port, SessionConfig(nick="watcher"))
    watcher.start()
    remembered: list[bool] = []

    def connect(tk_root: tk.Tk, tick: bool) -> ChatWindow:
        app = App(tk_root, load_settings(), [], tls_verify=True)
        app.show_dialog()
        dialog = app.dialog
        assert dialog is not None
        dialog.host.set("127.0.0.1")
        dialog.port.set(str(server.port))
        dialog.nick.set("ella")
        dialog.account.set("")
        tk_root.update()
        assert dialog.always_on_check.instate(["disabled"])  # an account's setting: none given
        dialog.account.set("ella")
        assert dialog.always_on_check.instate(["disabled"])  # no password yet
        dialog.password.set("ella-stays-pw")
        assert not dialog.always_on_check.instate(["disabled"])
        remembered.append(dialog.always_on.get())
        if dialog.always_on.get() != tick:
            dialog.always_on_check.invoke()
        dialog.connect_button.invoke()
        window = app.window
        assert window is not None
        assert pump_until(tk_root, lambda: window.session.account == "ella" and sees(window, "watcher"))
        return window

    try:
        assert watcher.wait_until(joined("#lobby"), WAIT_S)
        window = connect(root, True)
        # NickServ's answer (in the server buffer) says it is on; so does the window.
        assert pump_until(root, lambda: window.session.always_on is True)
        root.update()
        assert window.account_label.cget("text") == "\u2713 logged in as ella \u00b7 always on"
        assert load_settings().always_on
        window.close()  # QUIT: the nick stays, away, in #lobby
        def away(s: object) -> bool:  # WHOIS's 301, in the buffer the watcher shows
            return any("Not connected (always-on)" in ln.text for b in watcher.session.buffers.values()
                       for ln in b.lines)

        for _ in range(5):  # (asked again if asked before the server had the QUIT)
            watcher.input("/whois ella")
            if watcher.wait_until(away, WAIT_S / 5):
                break
        assert away(None), [ln.text for b in watcher.session.buffers.values() for ln in b.lines]
        assert has_member("#lobby", "ella")(watcher.session)

        # Next time the box is ticked already; unticked, it turns always-on off.
        again = tk.Tk()
        try:
            window = connect(again, False)
            assert remembered == [False, True]
            assert pump_until(again, lambda: window.session.always_on is False)
            again.update()
            assert window.account_label.cget("text") == "\u2713 logged in as ella"
            assert not load_settings().always_on
            window.close()  # now leaving is leaving
            assert watcher.wait_until(has_line("#lobby", "ella quit"), WAIT_S)
            assert not has_member("#lobby", "ella")(watcher.session)
        finally:
            with contextlib.suppress(tk.TclError):
                again.destroy()
            gc.collect()
    finally:
        watcher.close()
