"""The message view: a read-only Text widget that renders :class:`Line` objects with tags.

When the user scrolls to the top (mouse wheel, scrollbar, Page Up) it calls ``on_top``; the window then
asks the core for older lines, which arrive through :meth:`MessageView.prepend`. A reply shows the line
it answers as a small quote above it; reactions show as chips under the message. Every message's text
carries a tag of its own, so one line can be redrawn in place (a reaction came) and a right-click knows
which message it was on.
"""

from __future__ import annotations

import base64
import math
import re
import tkinter as tk
import webbrowser
from collections.abc import Callable, Iterable, Sequence
from datetime import date, datetime, timedelta
from tkinter import ttk

from salotto.clients.core.files import Preview, human_size
from salotto.clients.core.model import MAX_LINES_PER_BUFFER, Line, LineKind
from salotto.clients.core.text import nick_colour_index
from salotto.clients.tk.theme import Theme

__all__ = ["THUMBNAIL_BOX", "MessageView", "day_label", "photo_image"]

# Lines kept in the widget: all the model keeps, so that older lines inserted at the top of the model
# join the ones shown without a gap.
MAX_VIEW_LINES = MAX_LINES_PER_BUFFER
# Where older lines are inserted while prepending (right gravity: it moves past each insertion).
_OLDER_MARK = "older"
# Characters of the replied-to message shown in the quote above a reply.
QUOTE_CHARS = 90
# The box (pixels, before the screen's scaling) a thumbnail of a shared image fits in.
THUMBNAIL_BOX = (360, 240)
# Lines shown above a message jumped to (a search result), for what led to it.
FOCUS_CONTEXT_LINES = 3
# Thumbnails kept drawn-ready (Tk images, at most 360x240x4 bytes each), the oldest dropped first.
MAX_THUMBNAILS = 100
_URL = re.compile(r"https?://[^\s<>\"']+[^\s<>\"'.,;:!?)\]]")


def photo_image(master: tk.Misc, data: bytes, box: tuple[int, int] | None = None) -> tk.PhotoImage | None:
    """A Tk image of a PNG or GIF (the first frame), shrunk by a whole factor to fit ``box``; None if unreadable."""
    try:
        image = tk.PhotoImage(master=master, data=base64.b64encode(data).decode("ascii"))
    except tk.TclError:
        return None
    if box is not None:
        factor = math.ceil(max(image.width() / box[0], image.height() / box[1], 1.0))
        if factor > 1:
            image = image.subsample(factor)
    return image


def day_label(day: date, today: date | None = None) -> str:
    """How a day is named above its first message, as the web page does."""
    today = today or datetime.now().astimezone().date()
    if day == today:
        return "Today"
    if day == today - timedelta(days=1):
        return "Yesterday"
    return f"{day:%A}, {day.day} {day:%B %Y}"


class MessageView(ttk.Frame):
    """Timestamps, coloured nicks, quiet events; clicking a nick calls ``on_nick``, a link opens it.

    ``lookup(msgid)`` finds the line a reply quotes (or says why there is none); ``on_menu(line, x, y)``
    is a right-click on a message (screen coordinates); ``on_chip(line, emoji)`` is a click on one of
    its reactions.
    """

    def __init__(
        self,
        master: tk.Misc,
        theme: Theme,
        on_nick: Callable[[str], None],
        on_top: Callable[[], None] | None = None,
        lookup: Callable[[str], Line | str | None] | None = None,
        on_menu: Callable[[Line, int, int], None] | None = None,
        on_chip: Callable[[Line, str], None] | None = None,
        files_of: Callable[[Line], list[tuple[str, Preview | None]]] | None = None,
        on_image: Callable[[str], object] | None = None,
        on_gap: Callable[[], None] | None = None,
    ) -> None:
        """``files_of(line)``: the shared files ``line`` links to, each with its preview (None while it is
        fetched); ``on_image(url)``: a click on a thumbnail; ``on_gap()``: a click on the line that says
        newer messages are missing (after a jump to an old search result)."""
        super().__init__(master)
        self.text = tk.Text(self, wrap="word", state="disabled", borderwidth=0, highlightthickness=0,
                            padx=10, pady=8, cursor="arrow", undo=False, takefocus=False)
        scroll = ttk.Scrollbar(self, orient="vertical", command=self._scrollbar_moved)
        self.text.configure(yscrollcommand=scroll.set)
        self.text.grid(row=0, column=0, sticky="nsew")
        scroll.grid(row=0, column=1, sticky="ns")
        self.rowconfigure(0, weight=1)
        self.columnconfigure(0, weight=1)
        self._on_nick = on_nick
        self._on_top = on_top
        self._lookup = lookup or (lambda _msgid: None)
        self._on_menu = on_menu
        self._on_chip = on_chip
        self._files_of = files_of
        self._on_image = on_image
        self._on_gap = on_gap
        # Thumbnails by URL (Tk images must be kept referenced to stay drawn); tags of file links -> URL.
        self._thumbnails: dict[str, tk.PhotoImage | None] = {}
        self._file_tags: dict[str, str] = {}
        self._found_tag = ""
        # id(line) -> its tag, and back: which message a click was on, and what to redraw on UPDATE.
        self._tag_of: dict[int, str] = {}
        self._line_of: dict[str, Line] = {}
        self._serial = 0
        # The day of the last message drawn at the end: a new day gets a "Today" / "Yesterday" line first.
        self._last_day: date | None = None
        # Our wheel bindings run after the Text class ones (which scroll), so the view has moved already.
        after_class = f"scrolled{self.text}"
        self.text.bindtags((str(self.text), "Text", after_class, *self.text.bindtags()[2:]))
        self.text.bind_class(after_class, "<Button-4>", self._wheeled)  # X11 wheel up
        self.text.bind_class(after_class, "<MouseWheel>", self._wheeled)  # Windows, macOS (and Tk 9 on X11)
        self.text.bind("<Button-3>", self._right_clicked)
        self.text.bind("<Button-2>", self._right_clicked)  # macOS's right button
        clickable = (("nicklink", self._clicked_nick), ("url", self._clicked_url), ("chip", self._clicked_chip),
                     ("thumb", self._clicked_file), ("filelink", self._clicked_file),
                     ("gap", self._clicked_gap))
        for tag, handler in clickable:
            self.text.tag_bind(tag, "<Button-1>", handler)
            self.text.tag_bind(tag, "<Enter>", lambda _e: self.text.configure(cursor="hand2"))
            self.text.tag_bind(tag, "<Leave>", lambda _e: self.text.configure(cursor="arrow"))
        self.restyle(theme)

    def restyle(self, theme: Theme) -> None:
        p = theme.palette
        self.theme = theme
        small = theme.small_font or theme.text_font
        self.text.configure(background=p.view_bg, foreground=p.fg, font=theme.text_font,
                            selectbackground=p.text_select or p.select_bg, selectforeground=p.fg,
                            insertbackground=p.fg, spacing1=3, spacing3=3)
        # Continuation lines of a long message start under the text, not under the timestamp; so do the
        # quote above a reply, the reactions under a message, and the further lines of a multiline one.
        indent = small.measure("00:00") + theme.text_font.measure("  ") + 4
        t = self.text
        t.tag_configure("line", lmargin1=4, lmargin2=indent, rmargin=8)
        t.tag_configure("under", lmargin1=indent, lmargin2=indent)
        t.tag_configure("time", foreground=p.dim, font=small)
        t.tag_configure("daysep", foreground=p.dim, font=small, justify="center", spacing1=10, spacing3=4)
        t.tag_configure("quiet", foreground=p.dim)
        t.tag_configure("info", foreground=p.dim)
        t.tag_configure("error", foreground=p.error)
        t.tag_configure("notice", foreground=p.accent, font=theme.italic_font)
        t.tag_configure("action", font=theme.italic_font)
        t.tag_configure("own", foreground=p.own)
        t.tag_configure("nick", font=theme.bold_font)
        t.tag_configure("url", foreground=p.link or p.accent, underline=True)
        t.tag_configure("quote", foreground=p.dim, font=small, spacing1=4, spacing3=0)
        t.tag_configure("quotenick", font=small)
        t.tag_configure("chips", spacing1=1, spacing3=4)
        t.tag_configure("chip", background=p.panel_2 or p.bg)
        t.tag_configure("mychip", background=p.text_select or p.select_bg)
        t.tag_configure("highlight", background=p.mention_bg)
        t.tag_configure("filelink", foreground=p.link or p.accent, underline=True)
        t.tag_configure("fileinfo", foreground=p.dim, font=small)
        t.tag_configure("thumbs", spacing1=4, spacing3=6)
        t.tag_configure("gap", foreground=p.link or p.accent, font=small, justify="center", spacing1=8, spacing3=8,
                        background=p.panel_2 or p.bg)
        # The message a search result jumped to.
        t.tag_configure("found", background=p.text_select or p.select_bg)
        # The time of a line that mentions you takes the mention colour (the page draws a bar there).
        t.tag_configure("hltime", foreground=p.mention or p.error)
        for i, colour in enumerate(p.nicks):
            t.tag_configure(f"nick{i}", foreground=colour)
        t.tag_raise("under", "line")
        t.tag_raise("highlight")
        t.tag_raise("found")
        t.tag_raise("hltime")
        t.tag_raise("chip")
        t.tag_raise("mychip")
        t.tag_raise("sel")

    # -- drawing ----------------------------------------------------------------------------------

    def replace(self, lines: Iterable[Line]) -> None:
        self.text.configure(state="normal")
        self.text.delete("1.0", "end")
        for tag in (*self._line_of, *self._file_tags):
            self.text.tag_delete(tag)
        self._file_tags.clear()
        self._tag_of.clear()
        self._line_of.clear()
        self._last_day = None
        for line in list(lines)[-MAX_VIEW_LINES:]:
            self._insert_day(line)
            self._insert(line)
        self.text.configure(state="disabled")
        self._to_bottom()

    def _to_bottom(self) -> None:
        # Tk measures line heights in the background; lines of other heights (the day lines) make its
        # estimate short of the end. Measure now, then go there.
        self.text.tk.call(self.text._w, "sync")  # type: ignore[attr-defined]
        self.text.see("end")

    def append(self, line: Line) -> None:
        """Draw ``line`` at the end, unless it is drawn already: a redraw (a RELOAD, or switching to its
        buffer) earlier in the same batch of changes drew the buffer as it is, with the lines whose own
        LINE changes come after it."""
        tag = self._tag_of.get(id(line))
        if tag is not None and self._line_of.get(tag) is line and self.text.tag_ranges(tag):
            return
        at_bottom = self.text.yview()[1] >= 0.999
        self.text.configure(state="normal")
        self._insert_day(line)
        self._insert(line)
        excess = int(self.text.index("end-1c").split(".")[0]) - MAX_VIEW_LINES
        if excess > 0:
            self.text.delete("1.0", f"{excess + 1}.0")
            self._forget_scrolled_off()
        self.text.configure(state="disabled")
        if at_bottom:
            self._to_bottom()

    def _forget_scrolled_off(self) -> None:
        """Drop the tags of messages no longer in the widget (oldest first), so they do not pile up."""
        self._forget_file_tags()
        for tag in list(self._line_of):
            if self.text.tag_ranges(tag):
                break
            line = self._line_of.pop(tag)
            self._tag_of.pop(id(line), None)
            self.text.tag_delete(tag)

    def _forget_file_tags(self) -> None:
        for tag in [tag for tag in self._file_tags if not self.text.tag_ranges(tag)]:
            del self._file_tags[tag]
            self.text.tag_delete(tag)

    def update_line(self, line: Line) -> bool:
        """Redraw ``line`` where it is (its reactions changed); False when it is not shown."""
        tag = self._tag_of.get(id(line), "")
        ranges = self.text.tag_ranges(tag) if tag else ()
        if not ranges:
            return False
        t = self.text
        top = t.index("@0,0")
        at_bottom = t.yview()[1] >= 0.999
        t.configure(state="normal")
        start = t.index(ranges[0])
        t.delete(start, ranges[-1])
        self._line_of.pop(tag, None)
        t.mark_set(_OLDER_MARK, start)
        t.mark_gravity(_OLDER_MARK, "right")
        self._insert(line, _OLDER_MARK)
        t.mark_unset(_OLDER_MARK)
        t.configure(state="disabled")
        self._forget_file_tags()
        if at_bottom:
            self._to_bottom()
        else:
            t.yview(top)
        return True

    def prepend(self, lines: Sequence[Line]) -> None:
        """Insert older lines above the shown ones; the line at the top of the view stays there."""
        if not lines:
            return
        t = self.text
        line_no, column = t.index("@0,0").split(".")
        old_top_day = self._day_at("1.0")
        t.configure(state="normal")
        t.mark_set(_OLDER_MARK, "1.0")
        t.mark_gravity(_OLDER_MARK, "right")
        day: date | None = None
        for line in lines:
            day = self._insert_day(line, _OLDER_MARK, day)
            self._insert(line, _OLDER_MARK)
        added = int(t.index(_OLDER_MARK).split(".")[0]) - 1
        removed = 0
        if old_top_day is not None and old_top_day == day:  # the old top's day line is one too many now
            t.delete(_OLDER_MARK, f"{_OLDER_MARK} + 1 line")
            removed = 1
        t.mark_unset(_OLDER_MARK)
        t.configure(state="disabled")
        t.yview(f"{max(int(line_no) - removed, 1) + added}.{column}")

    def _day_at(self, index: str) -> date | None:
        for tag in self.text.tag_names(index):
            if tag.startswith("day-"):
                return date.fromisoformat(tag[4:])
        return None

    def _insert_day(self, line: Line, where: str = "end", previous: date | None = None) -> date:
        """A centred "Today" (or "Yesterday", or the date) before the first line of a day; the line's day.

        At the end, ``previous`` is the last line drawn; while prepending it is the one before in the block.
        """
        day = line.time.astimezone().date()
        if where == "end":
            previous, self._last_day = self._last_day, day
        if day != previous:
            self.text.insert(where, day_label(day) + "\n", ("daysep", f"day-{day.isoformat()}"))
        return day

    def content(self) -> str:
        """All text shown (for tests and copy-all)."""
        return self.text.get("1.0", "end-1c")

    def line_at(self, x: int, y: int) -> Line | None:
        """The message drawn at widget coordinates ``x, y``, if any."""
        for tag in self.text.tag_names(f"@{x},{y}"):
            if tag in self._line_of:
                return self._line_of[tag]
        return None

    def bbox_of(self, line: Line) -> tuple[int, int, int, int] | None:
        """Where ``line``'s message text is on screen (for tests: a click there)."""
        tag = self._tag_of.get(id(line))
        ranges = self.text.tag_ranges(tag) if tag else ()
        if not ranges:
            return None
        for index in (f"{ranges[0]} lineend -2c", str(ranges[0])):
            box = self.text.bbox(index)
            if box is not None:
                return box
        return None

    def _insert(self, line: Line, where: str = "end") -> None:
        t = self.text
        tag = self._tag_of.get(id(line))
        if tag is None:
            self._serial += 1
            tag = f"msg{self._serial}"
            self._tag_of[id(line)] = tag
        self._line_of[tag] = line
        base: tuple[str, ...] = ("line", tag, "highlight") if line.highlight else ("line", tag)
        kind = line.kind
        if line.reply_to and kind in (LineKind.MESSAGE, LineKind.ACTION, LineKind.NOTICE):
            self._insert_quote(line.reply_to, where, base)
        if kind is LineKind.GAP:  # no time: it stands for a stretch of them
            t.insert(where, "\u22ef  " + line.text + "  \u22ef\n", (*base, "gap"))
            return
        stamp = line.time.astimezone().strftime("%H:%M")
        t.insert(where, stamp + "  ", (*base, "time", "hltime") if line.highlight else (*base, "time"))
        nick_tags = (*base, "nick", "nicklink", f"nick{nick_colour_index(line.nick)}")
        own = (*base, "own") if line.own else base
        if kind is LineKind.MESSAGE:
            t.insert(where, line.nick, nick_tags)
            t.insert(where, "  ", base)
            self._insert_text(line.text, where, own)
        elif kind is LineKind.ACTION:
            t.insert(where, "* ", (*base, "action"))
            t.insert(where, line.nick, (*nick_tags, "action"))
            self._insert_text(" " + line.text, where, (*own, "action"))
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
        if self._files_of is not None and kind in (LineKind.MESSAGE, LineKind.ACTION, LineKind.NOTICE):
            for url, preview in self._files_of(line):
                self._insert_file(url, preview, where, base)
        if line.reactions:
            self._insert_chips(line, where, base)

    def _insert_file(self, url: str, preview: Preview | None, where: str, base: tuple[str, ...]) -> None:
        """Under a message that links a shared file: its thumbnail (PNG, GIF), or its name and size."""
        t = self.text
        self._serial += 1
        file_tag = f"file{self._serial}"
        self._file_tags[file_tag] = url
        tags = (*base, "under", file_tag)
        image = self._thumbnail(url, preview)
        if image is not None:
            at = t.index(where if where != "end" else "end-1c")
            t.image_create(at, image=image, padx=0, pady=2)
            t.tag_add("thumb", at)
            for tag in (*tags, "thumbs"):
                t.tag_add(tag, at)
            t.insert(where, "\n", (*tags, "thumbs"))
            return
        t.insert(where, "\U0001f4ce ", (*tags, "fileinfo"))
        if preview is None:
            t.insert(where, url.rsplit("/", 1)[-1] + "  loading\u2026\n", (*tags, "fileinfo"))
            return
        t.insert(where, preview.name, (*tags, "filelink"))
        details = [preview.content_type] if preview.content_type else []
        if preview.size is not None:
            details.append(human_size(preview.size))
        if preview.error:
            details.append(preview.error)
        t.insert(where, ("  " + " \u00b7 ".join(details) if details else "") + "\n", (*tags, "fileinfo"))

    def _thumbnail(self, url: str, preview: Preview | None) -> tk.PhotoImage | None:
        if preview is None or preview.image is None:
            return None
        if url not in self._thumbnails:
            scale = float(self.text.tk.call("tk", "scaling")) / (96 / 72)  # 1.0 at 96 dpi
            box = (round(THUMBNAIL_BOX[0] * max(scale, 1.0)), round(THUMBNAIL_BOX[1] * max(scale, 1.0)))
            self._thumbnails[url] = photo_image(self.text, preview.image, box)
            while len(self._thumbnails) > MAX_THUMBNAILS:
                del self._thumbnails[next(iter(self._thumbnails))]
        return self._thumbnails[url]

    def thumbnail_shown(self, url: str) -> bool:
        """Is a thumbnail of ``url`` drawn (for tests)?"""
        image = self._thumbnails.get(url)
        return image is not None and str(image) in {
            self.text.image_cget(name, "image") for name in self.text.image_names()}

    def file_tag_of(self, url: str) -> str:
        """The tag of the (last) preview or link drawn for ``url`` ("" when none), for tests to click."""
        found = [tag for tag, known in self._file_tags.items() if known == url and self.text.tag_ranges(tag)]
        return found[-1] if found else ""

    def focus_line(self, line: Line) -> bool:
        """Scroll to ``line`` and mark it (a search result jumped to); False when it is not drawn."""
        tag = self._tag_of.get(id(line), "")
        ranges = self.text.tag_ranges(tag) if tag else ()
        if not ranges:
            return False
        self.text.tag_remove("found", "1.0", "end")
        self.text.tag_add("found", ranges[0], ranges[-1])
        self.text.tk.call(self.text._w, "sync")  # type: ignore[attr-defined]
        self.text.see(ranges[-1])
        self.text.see(ranges[0])
        if self.text.yview()[0] > 0.0 and self.text.bbox(ranges[0]) is not None:  # a few lines of what led to it
            self.text.yview(f"{ranges[0]} - {FOCUS_CONTEXT_LINES} lines")
        self._found_tag = tag
        return True

    def found_text(self) -> str:
        """The text marked as found (for tests)."""
        ranges = self.text.tag_ranges("found")
        return self.text.get(ranges[0], ranges[-1]) if ranges else ""

    def _insert_quote(self, msgid: str, where: str, base: tuple[str, ...]) -> None:
        """The line a reply answers, shortened, above it: "↪ marco  lunch at noon?"."""
        quoted = self._lookup(msgid)
        tags = (*base, "under", "quote")
        self.text.insert(where, "\u21aa ", tags)
        if not isinstance(quoted, Line):  # None, or why it cannot be shown
            self.text.insert(where, (quoted or "a message not loaded here") + "\n", tags)
            return
        text = " ".join(quoted.text.split())
        if len(text) > QUOTE_CHARS:
            text = text[: QUOTE_CHARS - 1] + "\u2026"
        self.text.insert(where, quoted.nick, (*tags, "quotenick", f"nick{nick_colour_index(quoted.nick)}"))
        self.text.insert(where, "  " + text + "\n", tags)

    def _insert_chips(self, line: Line, where: str, base: tuple[str, ...]) -> None:
        """Reactions under the message: one chip per emoji with how many sent it; yours stand out."""
        tags = (*base, "under", "chips")
        # Something that is no chip first: Tk paints the first character's background into the margin.
        self.text.insert(where, "\u200a", tags)
        for emoji, nicks in line.reactions.items():
            mine = self._me is not None and self._me() in nicks
            label = f" {emoji} {len(nicks)} "
            self.text.insert(where, label, (*tags, "chip", "mychip" if mine else "otherchip"))
            self.text.insert(where, "  ", tags)
        self.text.insert(where, "\n", tags)

    _me: Callable[[], str] | None = None

    def set_me(self, me: Callable[[], str]) -> None:
        """Who "you" are, to mark your own reactions."""
        self._me = me

    def _insert_text(self, text: str, where: str, tags: tuple[str, ...]) -> None:
        for i, part in enumerate(text.split("\n")):
            if i:  # the further lines of a multiline message, under its first
                self.text.insert(where, "\n", tags)
                tags = (*tags, "under") if "under" not in tags else tags
            pos = 0
            for match in _URL.finditer(part):
                self.text.insert(where, part[pos : match.start()], tags)
                self.text.insert(where, match.group(0), (*tags, "url"))
                pos = match.end()
            self.text.insert(where, part[pos:], tags)

    def _tagged_word(self, tag: str, event: tk.Event[tk.Text]) -> str:
        index = self.text.index(f"@{event.x},{event.y}")
        ranges = self.text.tag_prevrange(tag, f"{index}+1c")
        return self.text.get(ranges[0], ranges[1]) if ranges else ""

    def _clicked_url(self, event: tk.Event[tk.Text]) -> None:
        url = self._tagged_word("url", event)
        if url:
            webbrowser.open(url, new=2)

    def _clicked_file(self, event: tk.Event[tk.Text]) -> None:
        index = self.text.index(f"@{event.x},{event.y}")
        for tag in self.text.tag_names(index):
            if tag in self._file_tags:
                url = self._file_tags[tag]
                if self._thumbnails.get(url) is not None and self._on_image is not None:
                    self._on_image(url)
                else:
                    webbrowser.open(url, new=2)
                return

    def _clicked_gap(self, _event: tk.Event[tk.Text]) -> None:
        if self._on_gap is not None:
            self._on_gap()

    def _clicked_nick(self, event: tk.Event[tk.Text]) -> None:
        nick = self._tagged_word("nicklink", event)
        if nick:
            self._on_nick(nick)

    def _clicked_chip(self, event: tk.Event[tk.Text]) -> None:
        line = self.line_at(event.x, event.y)
        label = self._tagged_word("chip", event).strip()
        if line is not None and label and self._on_chip is not None:
            self._on_chip(line, label.rsplit(" ", 1)[0])

    def _right_clicked(self, event: tk.Event[tk.Text]) -> str:
        line = self.line_at(event.x, event.y)
        if line is not None and self._on_menu is not None:
            self._on_menu(line, event.x_root, event.y_root)
        return "break"

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
