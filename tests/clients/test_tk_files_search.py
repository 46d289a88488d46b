"""The Tk window shares files and searches, under Xvfb against a real salotto: the paperclip's upload (the
API, without the dialog), thumbnails for a PNG and a GIF, a link for other files, the full image on a
click; /search and the search field, "More", and jumping to last month's message, highlighted."""

from __future__ import annotations

import re
import socket
import threading
import tkinter as tk
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from salotto.clients.core import Client, SessionConfig
from salotto.clients.core.history import GAP_TEXT
from salotto.clients.tk.theme import apply_theme
from salotto.clients.tk.window import SEARCH_SCOPES, ChatWindow
from tests.clients.conftest import IrcServer
from tests.clients.test_files_search import (
    CAKE_LINES,
    needs_filehost,
    needs_search,
    share_server,  # noqa: F401 (a fixture)
)
from tests.clients.test_tk import pump_until, root  # noqa: F401 (root: a fixture)
from tests.web.conftest import WebServer
from tests.web.test_login import register_over_tcp

WAIT_S = 15.0


def tk_window(tk_root: tk.Tk, server: WebServer, nick: str, *, register: bool = True) -> ChatWindow:
    password = f"{nick}-secret-pw"
    if register:
        register_over_tcp(server, nick, password)
    top = tk.Toplevel(tk_root)
    top.geometry("1000x640")
    client = Client(server.irc.host, server.irc.port, SessionConfig(nick=nick, sasl_account=nick,
                                                                    sasl_password=password))
    window = ChatWindow(top, client, apply_theme(tk_root, "light", 10))
    client.start()
    assert pump_until(tk_root, lambda: window.session.account == nick and window.shown_key == "#lobby",
                      WAIT_S), window.view.content()
    return window


@pytest.fixture
def pictures(tmp_path: Path, root: tk.Tk) -> Iterator[dict[str, Path]]:  # noqa: F811
    """A PNG and a GIF written by Tk itself, and a text file."""
    image = tk.PhotoImage(master=root, width=120, height=80)
    image.put("#2f6f5e", to=(0, 0, 120, 80))
    image.put("#fdecc8", to=(30, 20, 90, 60))
    paths = {"png": tmp_path / "garden.png", "gif": tmp_path / "dance.gif", "txt": tmp_path / "notes.txt"}
    image.write(str(paths["png"]), format="png")
    image.write(str(paths["gif"]), format="gif")
    paths["txt"].write_text("shopping list: flour, eggs, chocolate\n")
    yield paths


def sent_url(root: tk.Tk, window: ChatWindow, name: str) -> str:  # noqa: F811
    """Wait for the upload of ``name`` to end and its link to be in the shown buffer; the link."""
    transfers = [t for t in window.client.transfers if t.name == name]
    assert transfers, window.view.content()
    transfer = transfers[-1]
    assert pump_until(root, lambda: transfer.state != "sending", WAIT_S)
    assert transfer.state == "done", transfer.error
    assert pump_until(root, lambda: transfer.url in window.view.content(), WAIT_S), window.view.content()
    return transfer.url


def test_attached_pictures_show_as_thumbnails_and_other_files_as_links(
        root: tk.Tk, share_server: tuple[WebServer, dict[str, str]], pictures: dict[str, Path],  # noqa: F811
        monkeypatch: pytest.MonkeyPatch) -> None:
    server, _ = share_server
    monkeypatch.setenv("HOME", str(pictures["gif"].parent))
    ugo = tk_window(root, server, "ugo")
    vera = tk_window(root, server, "vera")
    needs_filehost(ugo.client)
    # The paperclip's work, without its dialog: the path as the dialog would give it.
    assert ugo.attach(str(pictures["png"]))
    png_url = sent_url(root, ugo, "garden.png")
    ugo.entry.insert(0, "/upload ~/dance.gif")  # the command does the same
    ugo.send_button.invoke()
    gif_url = sent_url(root, ugo, "dance.gif")
    assert ugo.attach(str(pictures["txt"]))
    txt_url = sent_url(root, ugo, "notes.txt")

    # vera sees both pictures as thumbnails under their messages, and the text file as a named link.
    assert pump_until(root, lambda: vera.view.thumbnail_shown(png_url) and vera.view.thumbnail_shown(gif_url),
                      WAIT_S), vera.view.content()
    assert ugo.view.thumbnail_shown(png_url)  # and so does the sender
    size = pictures["txt"].stat().st_size
    assert pump_until(root, lambda: f"notes.txt  text/plain \u00b7 {size} bytes" in vera.view.content(), WAIT_S), (
        vera.view.content())
    assert not vera.view.thumbnail_shown(txt_url)
    # The status line said how the upload went, and says nothing once it is over.
    assert "uploading" not in ugo.status.cget("text")

    # A click on the thumbnail opens the picture at full size in a window of its own.
    tag = vera.view.file_tag_of(png_url)
    start = vera.view.text.tag_ranges(tag)[0]
    vera.view.text.see(start)
    root.update()
    box = vera.view.text.bbox(start)
    assert box is not None
    where = {"x": box[0] + box[2] // 2, "y": box[1] + box[3] // 2}
    vera.view.text.event_generate("<Motion>", **where)  # Tk finds the tag under the mouse on motion
    vera.view.text.event_generate("<Button-1>", **where)
    root.update()
    full = vera.image_window
    assert full is not None and full.winfo_exists()
    assert "garden.png" in full.title()
    full.destroy()
    ugo.close()
    vera.close()


def test_uploading_without_an_account_or_from_the_server_tab_says_why(
        root: tk.Tk, share_server: tuple[WebServer, dict[str, str]], pictures: dict[str, Path]) -> None:  # noqa: F811
    server, _ = share_server
    top = tk.Toplevel(root)
    client = Client(server.irc.host, server.irc.port, SessionConfig(nick="walker"))
    guest = ChatWindow(top, client, apply_theme(root, "light", 10))
    client.start()
    assert pump_until(root, lambda: guest.shown_key == "#lobby", WAIT_S)
    needs_filehost(client)
    assert not guest.attach(str(pictures["png"]))
    assert "Could not share garden.png: sharing files needs an account" in guest.view.content()
    guest.show("*")
    assert not guest.attach(str(pictures["png"]))
    assert "this is the server tab" in guest.view.content()
    guest.close()


def test_search_from_the_field_and_the_command_and_jump_to_last_months_message(
        root: tk.Tk, share_server: tuple[WebServer, dict[str, str]]) -> None:  # noqa: F811
    server, cake = share_server
    window = tk_window(root, server, "xena")
    needs_search(window.client)
    # The search field: words, this buffer (#lobby), Enter.
    window.search_entry.insert(0, "chocolate")
    assert window.search_scope.get() == SEARCH_SCOPES[0]
    window.search_entry.focus_force()
    root.update()
    window.search_entry.event_generate("<Return>")
    assert pump_until(root, lambda: window.search_panel.winfo_ismapped()
                      and len(window.search_list.get_children()) > 0, WAIT_S), window.search_label.cget("text")
    results = window.session.search_results
    assert results is not None and results.target == "#lobby"
    first = window.search_list.item("0", "values")
    assert first[0] == "#lobby" and first[2] == "otto"
    assert first[3] == f"cake recipe number {CAKE_LINES - 1:02d}: more chocolate"
    assert "in #lobby" in window.search_label.cget("text")
    # "More" brings the older ones, listed below, each message once.
    while results.more:
        assert "disabled" not in window.search_more_button.state()
        window.search_more_button.invoke()
        assert pump_until(root, lambda: not results.pending, WAIT_S)
    assert pump_until(root, lambda: len(window.search_list.get_children()) == CAKE_LINES, WAIT_S)
    assert {window.search_list.item(iid, "values")[3] for iid in window.search_list.get_children()} == set(
        cake.values())
    assert "disabled" in window.search_more_button.state()

    # Double-click on the oldest result: #lobby shows it (fetched around it), highlighted.
    oldest = window.search_list.get_children()[-1]
    window.search_list.selection_set(oldest)
    window.search_list.see(oldest)
    window.search_list.focus_force()
    root.update()
    window.search_list.event_generate("<Return>")
    assert pump_until(root, lambda: window.view.found_text() != "", WAIT_S), window.view.content()
    assert "cake recipe number 00: more chocolate" in window.view.found_text()
    assert window.shown_key == "#lobby"
    assert "unrelated chatter 00" in window.view.content()  # the lines around it came too
    # Between that stretch and the newest lines, a gap line; clicks on it load what is missing.
    for _ in range(CAKE_LINES):
        if GAP_TEXT not in window.view.content():
            break
        start = window.view.text.tag_ranges("gap")[0]
        window.view.text.see(start)
        root.update()
        box = window.view.text.bbox(f"{start} + 5c")
        assert box is not None
        where = {"x": box[0] + 1, "y": box[1] + box[3] // 2}
        window.view.text.event_generate("<Motion>", **where)
        window.view.text.event_generate("<Button-1>", **where)
        assert pump_until(root, lambda: "#lobby" not in window.session.history.pending, WAIT_S)
    assert GAP_TEXT not in window.view.content()
    content = window.view.content()
    assert all(text in content for text in cake.values())  # the whole month's talk, in order
    assert content.index("cake recipe number 00") < content.index("cake recipe number 30") < content.index(
        "cake recipe number 59")

    # /search everywhere, from the entry; Escape closes the panel.
    window.entry.insert(0, "/search unrelated chatter")
    window.send_button.invoke()
    assert pump_until(root, lambda: window.session.search_results is not None
                      and not window.session.search_results.pending, WAIT_S)
    assert "everywhere" in window.search_label.cget("text")
    assert window.search_list.item("0", "values")[3].startswith("unrelated chatter")
    window.search_list.focus_force()
    root.update()
    window.search_list.event_generate("<Escape>")
    root.update()
    assert not window.search_panel.winfo_ismapped()
    window.close()


def test_a_server_without_a_file_host_or_search_says_so(
        root: tk.Tk, server_factory: Callable[[str], IrcServer], pictures: dict[str, Path]) -> None:  # noqa: F811
    """salotto without its web port has no file host; ngircd has neither files nor search."""
    for kind in ("salotto", "ngircd"):
        server = server_factory(kind)
        top = tk.Toplevel(root)
        client = Client("127.0.0.1", server.port, SessionConfig(nick=f"nofiles{kind[0]}"))
        window = ChatWindow(top, client, apply_theme(root, "light", 10))
        client.start()
        assert pump_until(root, lambda w=window: w.shown_key == "#lobby", WAIT_S)
        assert not window.attach(str(pictures["png"]))
        assert "this server does not take files (it advertises no soju.im/FILEHOST)" in window.view.content()
        if kind == "ngircd":
            assert not window.run_search("anything")
            assert "This server does not offer search" in window.view.content()
            assert "does not offer search" in window.search_label.cget("text")
        window.close()


def test_an_upload_in_progress_shows_in_the_status_line_and_can_be_cancelled(
        root: tk.Tk, share_server: tuple[WebServer, dict[str, str]], tmp_path: Path) -> None:  # noqa: F811
    """The file host here takes the request and then reads nothing (a stalled server), so the upload
    stays in progress until the button cancels it."""
    server, _ = share_server
    window = tk_window(root, server, "yuri")
    needs_filehost(window.client)
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    threading.Thread(target=lambda: held.append(listener.accept()[0]), daemon=True).start()
    window.session.isupport["soju.im/FILEHOST"] = f"http://127.0.0.1:{listener.getsockname()[1]}/upload"
    big = tmp_path / "holiday.mov"
    big.write_bytes(b"\0" * (32 * 1024 * 1024))
    assert not window.cancel_upload_button.winfo_ismapped()
    assert window.attach(str(big))
    assert pump_until(root, lambda: window.cancel_upload_button.winfo_ismapped(), WAIT_S)
    assert re.fullmatch(r"connected to .* \u00b7 uploading holiday\.mov \(32 MB\): \d+%",
                        window.status.cget("text")), window.status.cget("text")
    window.cancel_upload_button.invoke()
    transfer = window.client.transfers[-1]
    assert pump_until(root, lambda: transfer.state == "cancelled", WAIT_S), transfer
    assert pump_until(root, lambda: not window.cancel_upload_button.winfo_ismapped(), WAIT_S)
    assert "The upload of holiday.mov was cancelled." in window.view.content()
    assert "uploading" not in window.status.cget("text")
    window.close()
    for sock in (*held, listener):
        sock.close()


def test_a_line_drawn_by_a_redraw_is_not_drawn_again_by_its_own_change(root: tk.Tk) -> None:  # noqa: F811
    """A history batch's RELOAD and a join in one pump: the redraw draws the join, whose LINE change comes
    after it in the batch; the join must show once (it showed twice next to a picture shared)."""
    from datetime import UTC, datetime

    from salotto.clients.core import Line, LineKind
    from salotto.clients.tk.view import MessageView

    view = MessageView(root, apply_theme(root, "light", 10), lambda _nick: None)
    now = datetime.now(UTC)
    old = Line(now, LineKind.MESSAGE, "from the history", "ann", msgid="h1")
    join = Line(now, LineKind.JOIN, "marco joined", "marco")
    view.replace([old, join])
    view.append(join)
    assert view.content().count("marco joined") == 1
    view.append(Line(now, LineKind.JOIN, "marco joined", "marco"))  # another join, an equal line: drawn
    assert view.content().count("marco joined") == 2
    view.destroy()
