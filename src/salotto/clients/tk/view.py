"""The message view: a read-only Text widget that renders :class:`Line` objects with tags."""

from __future__ import annotations

import re
import tkinter as tk
import webbrowser
from collections.abc import Callable, Iterable
from tkinter import ttk

from salotto.clients.core.model import Line, LineKind
from salotto.clients.core.text import nick_colour_index
from salotto.clients.tk.theme import Theme

__all__ = ["MessageView"]

# Lines kept in the widget; the model keeps its own (larger) backlog.
MAX_VIEW_LINES = 1500
_URL = re.compile(r"https?://[^\s<>\"']+[^\s<>\"'.,;:!?)\]]")


class MessageView(ttk.Frame):
    """Timestamps, coloured nicks, quiet events; clicking a nick calls ``on_nick``, a link opens it."""

    def __init__(self, master: tk.Misc, theme: Theme, on_nick: Callable[[str], None]) -> None:
        super().__init__(master)
        self.text = tk.Text(self, wrap="word", state="disabled", borderwidth=0, highlightthickness=0,
                            padx=8, pady=6, cursor="arrow", undo=False, takefocus=False)
        scroll = ttk.Scrollbar(self, orient="vertical", command=self.text.yview)
        self.text.configure(yscrollcommand=scroll.set)
        self.text.grid(row=0, column=0, sticky="nsew")
        scroll.grid(row=0, column=1, sticky="ns")
        self.rowconfigure(0, weight=1)
        self.columnconfigure(0, weight=1)
        self._on_nick = on_nick
        self.text.tag_bind("nicklink", "<Button-1>", self._clicked_nick)
        self.text.tag_bind("nicklink", "<Enter>", lambda _e: self.text.configure(cursor="hand2"))
        self.text.tag_bind("nicklink", "<Leave>", lambda _e: self.text.configure(cursor="arrow"))
        self.text.tag_bind("url", "<Button-1>", self._clicked_url)
        self.text.tag_bind("url", "<Enter>", lambda _e: self.text.configure(cursor="hand2"))
        self.text.tag_bind("url", "<Leave>", lambda _e: self.text.configure(cursor="arrow"))
        self.restyle(theme)

    def restyle(self, theme: Theme) -> None:
        p = theme.palette
        self.theme = theme
        self.text.configure(background=p.view_bg, foreground=p.fg, font=theme.text_font,
                            selectbackground=p.select_bg, selectforeground=p.select_fg,
                            spacing1=2, spacing3=2)
        # Continuation lines of a long message start under the text, not under the timestamp.
        indent = theme.text_font.measure("00:00  ")
        self.text.tag_configure("line", lmargin2=indent)
        self.text.tag_configure("time", foreground=p.dim)
        self.text.tag_configure("quiet", foreground=p.dim, font=theme.italic_font)
        self.text.tag_configure("info", foreground=p.dim)
        self.text.tag_configure("error", foreground=p.error)
        self.text.tag_configure("notice", foreground=p.accent)
        self.text.tag_configure("own", foreground=p.own)
        self.text.tag_configure("highlight", background=p.mention_bg)
        self.text.tag_configure("nick", font=theme.bold_font)
        self.text.tag_configure("url", foreground=p.accent, underline=True)
        for i, colour in enumerate(p.nicks):
            self.text.tag_configure(f"nick{i}", foreground=colour)
        self.text.tag_raise("highlight")

    # -- drawing ----------------------------------------------------------------------------------

    def replace(self, lines: Iterable[Line]) -> None:
        self.text.configure(state="normal")
        self.text.delete("1.0", "end")
        for line in list(lines)[-MAX_VIEW_LINES:]:
            self._insert(line)
        self.text.configure(state="disabled")
        self.text.see("end")

    def append(self, line: Line) -> None:
        at_bottom = self.text.yview()[1] >= 0.999
        self.text.configure(state="normal")
        self._insert(line)
        excess = int(self.text.index("end-1c").split(".")[0]) - MAX_VIEW_LINES
        if excess > 0:
            self.text.delete("1.0", f"{excess + 1}.0")
        self.text.configure(state="disabled")
        if at_bottom:
            self.text.see("end")

    def content(self) -> str:
        """All text shown (for tests and copy-all)."""
        return self.text.get("1.0", "end-1c")

    def _insert(self, line: Line) -> None:
        t = self.text
        base: tuple[str, ...] = ("line", "highlight") if line.highlight else ("line",)
        stamp = line.time.astimezone().strftime("%H:%M")
        t.insert("end", stamp + "  ", (*base, "time"))
        nick_tags = (*base, "nick", "nicklink", f"nick{nick_colour_index(line.nick)}")
        kind = line.kind
        if kind is LineKind.MESSAGE:
            t.insert("end", line.nick, nick_tags)
            t.insert("end", "  ", base)
            self._insert_text(line.text, (*base, "own") if line.own else base)
        elif kind is LineKind.ACTION:
            t.insert("end", "\u2022 ", base)
            t.insert("end", line.nick, nick_tags)
            self._insert_text(" " + line.text, (*base, "own") if line.own else base)
        elif kind is LineKind.NOTICE:
            t.insert("end", f"-{line.nick}-" if line.nick else "-notice-", (*base, "notice"))
            self._insert_text("  " + line.text, (*base, "notice"))
        elif kind is LineKind.ERROR:
            t.insert("end", "! " + line.text, (*base, "error"))
        elif kind is LineKind.INFO or kind is LineKind.KICK:
            self._insert_text(line.text, (*base, "info"))
        else:
            t.insert("end", "\u2192 " if kind is LineKind.JOIN else "\u2190 " if kind in
                     (LineKind.PART, LineKind.QUIT) else "\u00b7 ", (*base, "quiet"))
            self._insert_text(line.text, (*base, "quiet"))
        t.insert("end", "\n", base)

    def _insert_text(self, text: str, tags: tuple[str, ...]) -> None:
        pos = 0
        for match in _URL.finditer(text):
            self.text.insert("end", text[pos : match.start()], tags)
            self.text.insert("end", match.group(0), (*tags, "url"))
            pos = match.end()
        self.text.insert("end", text[pos:], tags)

    def _tagged_word(self, tag: str, event: tk.Event[tk.Text]) -> str:
        index = self.text.index(f"@{event.x},{event.y}")
        ranges = self.text.tag_prevrange(tag, f"{index}+1c")
        return self.text.get(ranges[0], ranges[1]) if ranges else ""

    def _clicked_url(self, event: tk.Event[tk.Text]) -> None:
        url = self._tagged_word("url", event)
        if url:
            webbrowser.open(url, new=2)

    def _clicked_nick(self, event: tk.Event[tk.Text]) -> None:
        nick = self._tagged_word("nicklink", event)
        if nick:
            self._on_nick(nick)

    def scroll_page(self, direction: int) -> None:
        self.text.yview_scroll(direction, "pages")
