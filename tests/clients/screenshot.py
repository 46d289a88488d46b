"""Take docs/gui.png: a real session (salotto or ngircd, Xvfb, the Tk window, two more users chatting).

Run: ``.venv/bin/python -m tests.clients.screenshot docs/gui.png [ngircd|salotto] [light|dark]`` (needs
Xvfb and ImageMagick's ``import``; fonts-symbola draws the emoji). Not a test; kept beside the tests
because it uses their fixtures. On salotto the picture has a reply and reactions too.
"""

from __future__ import annotations

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


if __name__ == "__main__":
    main(*sys.argv[1:])
