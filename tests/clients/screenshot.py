"""Take docs/gui.png: a real session (salotto or ngircd, Xvfb, the Tk window, two more users chatting).

Run: ``.venv/bin/python -m tests.clients.screenshot docs/gui.png [ngircd|salotto] [light|dark]`` (needs
Xvfb and ImageMagick's ``import``; fonts-symbola draws the emoji). Not a test; kept beside the tests
because it uses their fixtures. On salotto the picture has a reply and reactions too.

``... docs/gui-files.png files`` shows a shared picture's thumbnail and a file link; ``... docs/gui-search.png
search`` the search results and a message of last month jumped to (salotto with its web port).
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import tempfile
import time
import tkinter as tk
from pathlib import Path

from salotto.clients.core import Client, SessionConfig
from salotto.clients.tk.theme import apply_theme
from salotto.clients.tk.window import ChatWindow
from tests.clients.conftest import make_server
from tests.clients.test_live import has_member, joined

GEOMETRY = (1000, 620)


def settle(root: tk.Tk, clients: list[Client], seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for client in clients:
            client.pump()
        root.update()
        time.sleep(0.02)


def main(out: str, kind: str = "salotto", theme_name: str = "light") -> None:
    workdir = Path(tempfile.mkdtemp(prefix="salotto-shot-"))
    xvfb = subprocess.Popen(["Xvfb", ":93", "-screen", "0", "1280x800x24", "-nolisten", "tcp", "-dpi", "96"])
    os.environ["DISPLAY"] = ":93"
    time.sleep(0.5)
    server = make_server(kind, workdir)
    server.start()
    try:
        root = tk.Tk(className="salotto")
        root.geometry(f"{GEOMETRY[0]}x{GEOMETRY[1]}+0+0")
        theme = apply_theme(root, theme_name, 11)
        me = Client("127.0.0.1", server.port, SessionConfig(nick="giulia"))
        window = ChatWindow(root, me, theme)
        me.start()
        while window.shown_key != "#lobby":  # only the window pumps its client: it draws what changed
            settle(root, [], 0.05)
        if kind == "ngircd":  # the first to join is an operator there and may set the topic
            window.entry.insert(0, "/topic Release week: the desktop client ships on Friday")
            window.send_button.invoke()
        others = [Client("127.0.0.1", server.port, SessionConfig(nick=nick)) for nick in ("marco", "sofia")]
        for other in others:
            other.start()
            assert other.wait_until(joined("#lobby"))
        settle(root, others, 1.0)
        while not has_member("#lobby", "sofia")(me.session):
            settle(root, others, 0.05)
        script = [
            (others[0], "buongiorno a tutti!"),
            (None, "ciao marco, coffee at 10?"),
            (others[1], "/me brings biscotti"),
            (others[0], "giulia: yes, and the build is green again: https://ci.example.org/salotto/42"),
            (None, "great, let's ship the desktop client then"),
            (others[1], "I'll write the release notes"),
        ]
        for who, text in script:
            if who is None:
                window.entry.insert(0, text)
                window.send_button.invoke()
            else:
                who.input(text)
            settle(root, others, 0.4)
        lobby = [other.session.get_buffer("#lobby") for other in others]
        ship = lobby[1].lines[-2] if lobby[1] is not None else None
        if ship is not None and ship.msgid:  # a server with msgids: a reply and reactions
            others[1].session.say("#lobby", "on it, I'll tag the release tonight", reply_to=ship.msgid)
            others[0].session.react("#lobby", ship.msgid, "\U0001f389")
            others[1].session.react("#lobby", ship.msgid, "\U0001f389")
            others[1].session.react("#lobby", ship.msgid, "\U0001f44d")
            for other in others:
                other.flush()
            settle(root, others, 0.8)
        others[0].input("/msg giulia can you review my branch later?")
        window.entry.insert(0, "/jo")
        window.entry.event_generate("<Tab>")
        settle(root, others, 1.0)
        window.entry.delete(0, "end")
        window.entry.insert(0, "sounds good, so")
        settle(root, others, 0.5)
        subprocess.run(["import", "-window", "root", "-crop", f"{GEOMETRY[0]}x{GEOMETRY[1]}+0+0", out],
                       check=True)
        for other in others:
            other.close()
        window.close()
    finally:
        server.stop()
        xvfb.terminate()
        xvfb.wait(5)




def scenery(root: tk.Tk, width: int = 480, height: int = 270) -> bytes:
    """A small PNG to share in the picture: a sky, a sun and two hills (drawn by Tk, written as PNG)."""
    image = tk.PhotoImage(master=root, width=width, height=height)
    for y in range(height):
        row = []
        for x in range(width):
            hill = height * 0.64 + 26 * math.sin(x / 70) + 9 * math.sin(x / 23 + 1)
            if y > hill:
                shade = 90 + int(40 * (y - hill) / height)
                row.append(f"#{40:02x}{shade + 40:02x}{shade // 2 + 20:02x}")
            elif (x - width * 0.72) ** 2 + (y - height * 0.3) ** 2 < 34 ** 2:
                row.append("#f6c453")
            else:
                row.append(f"#{120 + y // 3:02x}{170 + y // 4:02x}{225:02x}")
        image.put("{" + " ".join(row) + "}", to=(0, y))
    path = Path(tempfile.mkdtemp(prefix="salotto-pic-")) / "scene.png"
    image.write(str(path), format="png")
    return path.read_bytes()


def sharing(out: str, what: str = "files", theme_name: str = "light") -> None:
    """The picture of a shared image's thumbnail (``files``) or of search results (``search``)."""
    from tests.clients.test_files_search import seed_history
    from tests.web.conftest import start_web_server, stop_web_server
    from tests.web.test_login import register_over_tcp

    workdir = Path(tempfile.mkdtemp(prefix="salotto-shot-"))
    xvfb = subprocess.Popen(["Xvfb", ":93", "-screen", "0", "1280x800x24", "-nolisten", "tcp", "-dpi", "96"])
    os.environ["DISPLAY"] = ":93"
    time.sleep(0.5)
    seed_history(workdir / "data")
    server = start_web_server(workdir)
    try:
        root = tk.Tk(className="salotto")
        root.geometry(f"{GEOMETRY[0]}x{GEOMETRY[1]}+0+0")
        theme = apply_theme(root, theme_name, 11)
        for nick in ("giulia", "marco", "sofia"):
            register_over_tcp(server, nick, f"{nick}-password")

        def login(nick: str) -> Client:
            return Client(server.irc.host, server.irc.port, SessionConfig(nick=nick, sasl_account=nick,
                                                                            sasl_password=f"{nick}-password"))

        me = login("giulia")
        window = ChatWindow(root, me, theme)
        me.start()
        while window.shown_key != "#lobby" or me.session.account != "giulia":
            settle(root, [], 0.05)
        others = [login(nick) for nick in ("marco", "sofia")]
        for other in others:
            other.start()
            assert other.wait_until(lambda s: s.account != "" and joined("#lobby")(s))
        settle(root, others, 1.0)
        files_dir = Path(tempfile.mkdtemp(prefix="salotto-files-"))
        if what == "files":
            picture = files_dir / "terrace-view.png"
            picture.write_bytes(scenery(root))
            notes = files_dir / "release-notes.pdf"
            notes.write_bytes(b"%PDF-1.4\n" + b"% the release notes\n" * 2000)
            others[0].input("the view from the new office terrace:")
            settle(root, others, 0.4)
            others[0].upload(picture, "#lobby")
            settle(root, others, 1.5)
            window.entry.insert(0, "wow, lucky you!")
            window.send_button.invoke()
            settle(root, others, 0.4)
            others[1].input("and the release notes for Friday")
            others[1].upload(notes, "#lobby")
            settle(root, others, 1.5)
        else:
            others[0].input("did anyone keep the chocolate cake recipe from last month?")
            settle(root, others, 0.4)
            window.search_entry.insert(0, "chocolate")
            window.search_scope.set("everywhere")
            window.run_search()
            settle(root, others, 1.5)
            children = window.search_list.get_children()
            window.search_list.selection_set(children[min(4, len(children) - 1)])
            window.jump_to_selected()
            settle(root, others, 1.5)
        settle(root, others, 1.0)
        subprocess.run(["import", "-window", "root", "-crop", f"{GEOMETRY[0]}x{GEOMETRY[1]}+0+0", out],
                       check=True)
        for other in others:
            other.close()
        window.close()
    finally:
        stop_web_server(server)
        xvfb.terminate()
        xvfb.wait(5)


if __name__ == "__main__":
    if sys.argv[2:3] in (["files"], ["search"]):
        sharing(sys.argv[1], *sys.argv[2:])
    else:
        main(*sys.argv[1:])
