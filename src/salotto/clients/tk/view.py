"""The message view: a read-only Text widget that renders :class:`Line` objects with tags.

When the user scrolls to the top (mouse wheel, scrollbar, Page Up) it calls ``on_top``; the window then
asks the core for older lines, which arrive through :meth:`MessageView.prepend`.
"""

from __future__ import annotations

import re
import tkinter as tk
import webbrowser
from collections.abc import Callable, Iterable, Sequence
from tkinter import ttk

from salotto.clients.core.model import MAX_LINES_PER_BUFFER, Line, LineKind
from salotto.clients.core.text import nick_colour_index
from salotto.clients.tk.theme import Theme

__all__ = ["MessageView"]

# Lines kept in the widget: all the model keeps, so that older lines inserted at the top of the model
# join the ones shown without a gap.
MAX_VIEW_LINES = MAX_LINES_PER_BUFFER
# Where older lines are inserted while prepending (right gravity: it moves past each insertion).
_OLDER_MARK = "older"
_URL = re.compile(r"https?://[^\s<>\"']+[^\s<>\"'.,;:!?)\]]")


class MessageView(ttk.Frame):
    """Timestamps, coloured nicks, quiet events; clicking a nick calls ``on_nick``, a link opens it."""

    def __init__(
        self,
        master: tk.Misc,
        theme: Theme,
        on_nick: Callable[[str], None],
        on_top: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(master)
        self.text = tk.Text(self, wrap="word", state="disabled", borderwidth=0, highlightthickness=0,
                            padx=8, pady=6, cursor="arrow", undo=False, takefocus=False)
        scroll = ttk.Scrollbar(self, orient="vertical", command=self._scrollbar_moved)
        self.text.configure(yscrollcommand=scroll.set)
        self.text.grid(row=0, column=0, sticky="nsew")
        scroll.grid(row=0, column=1, sticky="ns")
        self.rowconfigure(0, weight=1)
        self.columnconfigure(0, weight=1)
        self._on_nick = on_nick
        self._on_top = on_top
        # Our wheel bindings run after the Text class ones (which scroll), so the view has moved already.
        after_class = f"scrolled{self.text}"
        self.text.bindtags((str(self.text), "Text", after_class, *self.text.bindtags()[2:]))
        self.text.bind_class(after_class, "<Button-4>", self._wheeled)  # X11 wheel up
        self.text.bind_class(after_class, "<MouseWheel>", self._wheeled)  # Windows, macOS (and Tk 9 on X11)
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

    def prepend(self, lines: Sequence[Line]) -> None:
        """Insert older lines above the shown ones; the line at the top of the view stays there."""
        if not lines:
            return
        t = self.text
        line_no, column = t.index("@0,0").split(".")
        t.configure(state="normal")
        t.mark_set(_OLDER_MARK, "1.0")
        t.mark_gravity(_OLDER_MARK, "right")
        for line in lines:
            self._insert(line, _OLDER_MARK)
        added = int(t.index(_OLDER_MARK).split(".")[0]) - 1
        t.mark_unset(_OLDER_MARK)
        t.configure(state="disabled")
        t.yview(f"{int(line_no) + added}.{column}")

    def content(self) -> str:
        """All text shown (for tests and copy-all)."""
        return self.text.get("1.0", "end-1c")

    def _insert(self, line: Line, where: str = "end") -> None:
        t = self.text
        base: tuple[str, ...] = ("line", "highlight") if line.highlight else ("line",)
        stamp = line.time.astimezone().strftime("%H:%M")
        t.insert(where, stamp + "  ", (*base, "time"))
        nick_tags = (*base, "nick", "nicklink", f"nick{nick_colour_index(line.nick)}")
        kind = line.kind
        if kind is LineKind.MESSAGE:
            t.insert(where, line.nick, nick_tags)
            t.insert(where, "  ", base)
            self._insert_text(line.text, where, (*base, "own") if line.own else base)
        elif kind is LineKind.ACTION:
            t.insert(where, "\u2022 ", base)
            t.insert(where, line.nick, nick_tags)
            self._insert_text(" " + line.text, where, (*base, "own") if line.own else base)
        elif kind is LineKind.NOTICE:
            t.insert(where, f"-{line.nick}-" if line.nick else "-notice-", (*base, "notice"))
            self._insert_text("  " + line.text, where, (*base, "notice"))
        elif kind is LineKind.ERROR:
            t.insert(where, "! " + line.text, (*base, "error"))
        elif kind is LineKind.INFO or kind is LineKind.KICK:
            self._insert_text(line.text, where, (*base, "info"))
        else:
            t.insert(where, "\u2192 " if kind is LineKind.JOIN else "\u2190 " if kind in
                     (LineKind.PART, LineKind.QUIT) else "\u00b7 ", (*base, "quiet"))
            self._insert_text(line.text, where, (*base, "quiet"))
        t.insert(where, "\n", base)

    def _insert_text(self, text: str, where: str, tags: tuple[str, ...]) -> None:
        pos = 0
        for match in _URL.finditer(text):
            self.text.insert(where, text[pos : match.start()], tags)
            self.text.insert(where, match.group(0), (*tags, "url"))
            pos = match.end()
        self.text.insert(where, text[pos:], tags)

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
        if direction < 0:
            self._scrolled_up()

    def _scrollbar_moved(self, *args: str) -> None:
        self.text.yview(*args)
        self._scrolled_up()

    def _wheeled(self, event: tk.Event[tk.Misc]) -> None:
        if event.num == 4 or event.delta > 0:
            self._scrolled_up()

    def _scrolled_up(self) -> None:
        """The user scrolled: at the very top, ask for what came before."""
        if self._on_top is not None and self.text.yview()[0] <= 0.0:
            self._on_top()
