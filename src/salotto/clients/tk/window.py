"""The main window, laid out as the web page: rooms on the left, the buffer's name and topic over the
messages, people on the right, the entry with Send at the bottom.

It only draws the core's state and turns user actions into core calls. The one thread boundary is
the client's event queue, drained by :meth:`ChatWindow.poll` every ``POLL_MS`` through ``after()``.
A right-click on a message offers Reply, the quick reactions, Copy and (where the server lets you)
Delete.
"""

from __future__ import annotations

import functools
import tkinter as tk
import webbrowser
from collections.abc import Callable
from datetime import datetime
from tkinter import filedialog, ttk

from salotto.clients.core import (
    COMMANDS,
    SERVER_KEY,
    BufferKind,
    Change,
    ChangeKind,
    Client,
    Completer,
    InputHistory,
    Line,
    LineKind,
)
from salotto.clients.core.files import Preview
from salotto.clients.core.search import SearchResult
from salotto.clients.core.session import QUICK_REACTIONS
from salotto.clients.core.text import nick_colour_index
from salotto.clients.tk.notify import Notifier
from salotto.clients.tk.theme import Theme
from salotto.clients.tk.view import QUOTE_CHARS, MessageView, photo_image

__all__ = ["POLL_MS", "ChatWindow"]

# How often the Tk loop drains the client's queue: fast enough to feel instant, cheap when idle.
POLL_MS = 40
MENTION_MARK = "\u25cf "  # a dot before a buffer where someone mentioned you
THEME_ICONS = {"light": "\u263e", "dark": "\u2600"}  # the button shows what a click switches to
# The search field's scopes: the shown buffer, or all the history the user may read.
SEARCH_SCOPES = ("this buffer", "everywhere")
# Rows of search results shown at once (the list scrolls).
SEARCH_ROWS = 6
# Part of the screen a full-size image may take in its window at most.
IMAGE_WINDOW_SHARE = 0.85


class ChatWindow(ttk.Frame):
    """Fills ``master`` (a Tk or Toplevel) with the chat UI for ``client``."""

    def __init__(
        self,
        master: tk.Tk | tk.Toplevel,
        client: Client,
        theme: Theme,
        on_closed: Callable[[], None] | None = None,
        on_font_size: Callable[[int], None] | None = None,
        on_refused: Callable[[str], None] | None = None,
        on_theme: Callable[[str], None] | None = None,
        notifier: Notifier | None = None,
    ) -> None:
        """``on_refused``: called (the window gone) when the server refuses the server password; without
        it, the window stays and says so. ``on_theme``: the user switched light/dark (the app saves it).
        ``notifier``: how mentions reach a user who is elsewhere (default: the desktop's, see notify.py)."""
        super().__init__(master)
        self.master_window = master
        self.client = client
        self.session = client.session
        self.theme = theme
        self._on_closed = on_closed
        self._on_font_size = on_font_size
        self._on_refused = on_refused
        self._on_theme = on_theme
        self.notifier = notifier if notifier is not None else Notifier(master)
        self.focused = False
        # The message the next line answers (Reply in a message's menu), "" when none.
        self.reply_to: Line | None = None
        self._root_bindings: list[str] = []
        self.history = InputHistory()
        self.completer = Completer()
        self.shown_key = ""
        self._poll_job: str | None = None
        self._closed = False
        self._build()
        self.pack(fill="both", expand=True)
        master.protocol("WM_DELETE_WINDOW", self.close)
        self.bind("<Destroy>", self._destroyed, add=True)
        self._update_title()
        self.refresh_buffers()
        self.show(self.session.active)
        self.entry.focus_set()
        self.after_idle(self._grab_focus)
        master.bind("<FocusIn>", self._focus_in, add=True)
        master.bind("<FocusOut>", self._focus_out, add=True)
        self._poll_job = self.after(POLL_MS, self.poll)

    # -- layout -----------------------------------------------------------------------------------

    def _build(self) -> None:
        # pack gives space in packing order and squeezes the last packed first: the fixed-height rows
        # (status line, entry row, top bar) go in before the parts that stretch, or a window smaller than
        # everything's requested height (a small window, a big font, a HiDPI screen) cuts them off.
        self.status = ttk.Label(self, text=self.client.status, style="Status.TLabel", anchor="w")
        self.status.pack(side="bottom", fill="x")
        ttk.Separator(self, orient="horizontal").pack(side="bottom", fill="x")
        panes = ttk.PanedWindow(self, orient="horizontal")
        panes.pack(fill="both", expand=True)
        self.panes = panes

        # Left: the brand, the rooms, who you are.
        sidebar = ttk.Frame(panes, style="Panel.TFrame")
        ttk.Label(sidebar, text="salotto", style="Brand.TLabel").pack(side="top", fill="x")
        me = ttk.Frame(sidebar, style="Panel.TFrame")
        me.pack(side="bottom", fill="x", pady=(0, 8))
        ttk.Separator(sidebar, orient="horizontal").pack(side="bottom", fill="x")
        self.nick_label = ttk.Label(me, text=self.session.nick, style="Me.TLabel")
        self.nick_label.pack(side="top", fill="x")
        self.account_label = ttk.Label(me, text="", style="PanelDim.TLabel", padding=(16, 0, 8, 0))
        self.account_label.pack(side="top", fill="x")
        self.buffer_list = ttk.Treeview(sidebar, show="tree", selectmode="browse", takefocus=False)
        self.buffer_list.bind("<<TreeviewSelect>>", self._buffer_selected)
        self.buffer_list.pack(fill="both", expand=True, padx=8)
        panes.add(sidebar, weight=0)

        # Middle: name and topic, messages, the reply being written, the entry.
        centre = ttk.Frame(panes)
        topbar = ttk.Frame(centre, padding=(14, 8, 10, 8))
        topbar.pack(side="top", fill="x")
        self.theme_button = ttk.Button(topbar, text=THEME_ICONS.get(self.theme.name, "\u263e"), width=3,
                                       command=self.toggle_theme, style="Icon.TButton", takefocus=False)
        self.theme_button.pack(side="right")
        # The search field: words, and where (this buffer or everywhere); Enter searches.
        finder = ttk.Frame(topbar)
        finder.pack(side="right", padx=(8, 8))
        self.search_scope = ttk.Combobox(finder, values=SEARCH_SCOPES, state="readonly", width=11, takefocus=False)
        self.search_scope.set(SEARCH_SCOPES[0])
        self.search_scope.pack(side="right", padx=(4, 0))
        self.search_entry = ttk.Entry(finder, width=14)
        self.search_entry.pack(side="right")
        self.search_entry.bind("<Return>", lambda _e: self.run_search())
        self.search_entry.bind("<KP_Enter>", lambda _e: self.run_search())
        self.search_entry.bind("<Escape>", lambda _e: self.close_search())
        ttk.Label(finder, text="\U0001f50d", style="Dim.TLabel").pack(side="right", padx=(0, 4))
        self.title_label = ttk.Label(topbar, text="", style="Title.TLabel")
        self.title_label.pack(side="top", fill="x")
        self.topic = tk.StringVar(self)
        self.topic_label = ttk.Label(topbar, textvariable=self.topic, style="Topic.TLabel")
        self.topic_label.pack(side="top", fill="x")
        ttk.Separator(centre, orient="horizontal").pack(side="top", fill="x")
        self._build_search_panel(centre)
        bottom = ttk.Frame(centre, padding=(12, 6, 12, 10))
        bottom.pack(side="bottom", fill="x")
        self.reply_bar = ttk.Frame(centre, style="Panel.TFrame")
        self.reply_label = ttk.Label(self.reply_bar, text="", style="Reply.TLabel")
        self.reply_label.pack(side="left", fill="x", expand=True)
        self.reply_cancel = ttk.Button(self.reply_bar, text="\u2715", width=3, style="Flat.TButton",
                                       command=self.cancel_reply, takefocus=False)
        self.reply_cancel.pack(side="right")
        self.view = MessageView(centre, self.theme, self.open_query, self._older_wanted,
                                lookup=self._lookup, on_menu=self.show_menu, on_chip=self._chip_clicked,
                                files_of=self._files_of, on_image=self.open_image, on_gap=self.fill_gap)
        self.view.set_me(lambda: self.session.nick)
        self.view.pack(fill="both", expand=True)
        self.send_button = ttk.Button(bottom, text="Send", command=self.submit, style="Accent.TButton")
        self.send_button.pack(side="right", fill="y")
        self.attach_button = ttk.Button(bottom, text="\U0001f4ce", width=3, command=self.attach,
                                        style="Icon.TButton", takefocus=False)
        self.attach_button.pack(side="right", fill="y", padx=(0, 6))
        # Shown while a file is being uploaded.
        self.cancel_upload_button = ttk.Button(bottom, text="Cancel upload", style="Flat.TButton",
                                               command=self.cancel_upload, takefocus=False)
        # Pasted lines show as boxes in a one-line entry: this says how they will go.
        self.lines_hint = ttk.Label(bottom, text="", style="Dim.TLabel")
        self.entry_text = tk.StringVar(self)
        self.entry_text.trace_add("write", lambda *_args: self._entry_changed())
        self.entry = ttk.Entry(bottom, textvariable=self.entry_text)
        self.entry.pack(side="left", fill="x", expand=True, padx=(0, 8))
        panes.add(centre, weight=1)

        # Right: who is here.
        people = ttk.Frame(panes, style="Panel.TFrame")
        self.people_label = ttk.Label(people, text="", style="Header.TLabel")
        self.people_label.pack(side="top", fill="x")
        self.nick_list = tk.Listbox(people, activestyle="none", borderwidth=0, relief="flat",
                                    highlightthickness=0, exportselection=False, takefocus=False)
        self.nick_list.bind("<Double-Button-1>", self._nick_list_activated)
        self.nick_list.bind("<Return>", self._nick_list_activated)
        self.nick_list.pack(fill="both", expand=True, padx=(12, 4))
        panes.add(people, weight=0)
        self.menu = tk.Menu(self, tearoff=False)
        self.restyle(self.theme)
        self._bind_keys()

    def _build_search_panel(self, centre: ttk.Frame) -> None:
        """Search results over the messages (shown while there are some): buffer, time, nick, text."""
        panel = ttk.Frame(centre, style="Panel.TFrame", padding=(12, 6, 12, 8))
        header = ttk.Frame(panel, style="Panel.TFrame")
        header.pack(side="top", fill="x", pady=(0, 4))
        self.search_label = ttk.Label(header, text="", style="Panel.TLabel")
        self.search_label.pack(side="left", fill="x", expand=True)
        self.search_close_button = ttk.Button(header, text="\u2715", width=3, style="Flat.TButton",
                                              command=self.close_search, takefocus=False)
        self.search_close_button.pack(side="right")
        self.search_more_button = ttk.Button(header, text="Older results", style="Flat.TButton",
                                             command=self.search_more, takefocus=False)
        self.search_more_button.pack(side="right", padx=(0, 6))
        columns = ("buffer", "time", "nick", "text")
        self.search_list = ttk.Treeview(panel, columns=columns, show="headings", height=SEARCH_ROWS,
                                        selectmode="browse")
        for column, title in zip(columns, ("Where", "When", "Who", "Message"), strict=True):
            self.search_list.heading(column, text=title, anchor="w")
        scroll = ttk.Scrollbar(panel, orient="vertical", command=self.search_list.yview)
        self.search_list.configure(yscrollcommand=scroll.set)
        scroll.pack(side="right", fill="y")
        self.search_list.pack(side="left", fill="both", expand=True)
        self.search_list.bind("<Double-Button-1>", lambda _e: self.jump_to_selected())
        self.search_list.bind("<Return>", lambda _e: self.jump_to_selected())
        self.search_list.bind("<Escape>", lambda _e: self.close_search())
        self.search_panel = panel
        self._shown_results: list[SearchResult] = []

    def restyle(self, theme: Theme) -> None:
        self.theme = theme
        p = theme.palette
        width = theme.ui_font.measure("m") * 13
        self.buffer_list.column("#0", width=width)
        self.buffer_list.tag_configure("mention", foreground=p.mention or p.error, font=theme.bold_font)
        self.buffer_list.tag_configure("unread", font=theme.bold_font)
        self.buffer_list.tag_configure("parted", foreground=p.dim)
        self.buffer_list.tag_configure("server", font=theme.italic_font)
        self.nick_list.configure(background=p.panel, foreground=p.fg, font=theme.ui_font, width=14,
                                 selectbackground=p.panel_2, selectforeground=p.fg)
        self.menu.configure(background=p.panel, foreground=p.fg, activebackground=p.select_bg,
                            activeforeground=p.select_fg, font=theme.ui_font, relief="flat", borderwidth=1)
        self.theme_button.configure(text=THEME_ICONS.get(theme.name, "\u263e"))
        unit = theme.ui_font.measure("m")
        for column, width, stretch in (("buffer", 7, False), ("time", 10, False), ("nick", 6, False),
                                       ("text", 24, True)):
            self.search_list.column(column, width=unit * width, minwidth=unit * 4, stretch=stretch)
        self.view.restyle(theme)
        if self.shown_key:
            self._redraw_lines()
            self._redraw_members()

    def toggle_theme(self) -> None:
        """The sun/moon button: dark after light and back; the app applies and saves it."""
        if self._on_theme is not None:
            self._on_theme("dark" if self.theme.name == "light" else "light")

    def _bind_keys(self) -> None:
        e = self.entry
        e.bind("<Return>", lambda _e: self.submit())
        e.bind("<KP_Enter>", lambda _e: self.submit())
        e.bind("<Up>", lambda _e: self._recall(self.history.up))
        e.bind("<Down>", lambda _e: self._recall(self.history.down))
        e.bind("<Tab>", self._complete)
        e.bind("<Key>", self._key_typed, add=True)
        e.bind("<Escape>", lambda _e: self.cancel_reply())
        e.bind("<Prior>", lambda _e: self._scroll(-1))
        e.bind("<Next>", lambda _e: self._scroll(1))
        top = self.master_window
        keys: list[tuple[str, Callable[[tk.Event[tk.Misc]], object]]] = [
            ("<Control-q>", lambda _e: self.close()),
            ("<Control-w>", lambda _e: self._run("/close")),
            ("<Control-Prior>", lambda _e: self._cycle(-1)),
            ("<Control-Next>", lambda _e: self._cycle(1)),
            ("<Control-plus>", lambda _e: self._font_step(1)),
            ("<Control-equal>", lambda _e: self._font_step(1)),
            ("<Control-minus>", lambda _e: self._font_step(-1)),
            ("<Control-f>", lambda _e: self._focus_search()),
        ]
        keys += [(f"<Alt-Key-{digit}>", functools.partial(self._goto, digit - 1)) for digit in range(1, 10)]
        for sequence, handler in keys:
            top.bind(sequence, handler)
        self._root_bindings = [sequence for sequence, _ in keys]  # undone when the window gives way

    # -- the poll: the only place where core changes reach the widgets ------------------------------

    def poll(self) -> None:
        self._poll_job = None
        if self._closed:
            return
        self.apply(self.client.pump())
        if not self._closed:
            self._poll_job = self.after(POLL_MS, self.poll)

    def apply(self, changes: list[Change]) -> None:
        buffers_dirty = False
        read_more = False
        for change in changes:
            kind = change.kind
            if kind is ChangeKind.LINE and change.line is not None:
                if change.key == self.shown_key:
                    self.view.append(change.line)
                    read_more = True
                self._maybe_notify(change.key, change.line)
            elif kind is ChangeKind.UPDATE and change.key == self.shown_key and change.line is not None:
                self.view.update_line(change.line)
            elif kind is ChangeKind.RELOAD and change.key == self.shown_key:
                self._redraw_lines()
                read_more = True
            elif kind is ChangeKind.PREPEND and change.key == self.shown_key:
                self.view.prepend(change.lines)
            elif kind is ChangeKind.MEMBERS and change.key == self.shown_key:
                self._redraw_members()
            elif kind is ChangeKind.TOPIC and change.key == self.shown_key:
                self._redraw_topic()
            elif kind is ChangeKind.BUFFERS:
                buffers_dirty = True
            elif kind is ChangeKind.ACTIVATE:
                buffers_dirty = True
                self.show(change.key)
            elif kind is ChangeKind.STATUS or kind is ChangeKind.TRANSFER:
                self._update_title()
            elif kind is ChangeKind.PREVIEW:
                self._preview_ready(change.key)
            elif kind is ChangeKind.SEARCH:
                self._redraw_search()
            elif kind is ChangeKind.FOCUS and change.line is not None:
                if change.key != self.shown_key:
                    self.show(change.key)
                self.view.focus_line(change.line)
            elif kind is ChangeKind.PICK_FILE:
                self.after_idle(self.attach)
            elif kind is ChangeKind.QUIT:
                self.close()
                return
        if read_more and self.focused:
            self._mark_read()
        if buffers_dirty:
            self.refresh_buffers()
        if self.session.refused is not None and self._on_refused is not None:
            why = self.session.refused
            self._give_way()
            self._on_refused(why)

    # -- notifications and read markers -----------------------------------------------------------

    def _maybe_notify(self, key: str, line: Line) -> None:
        """A mention or a private message while the window is in the background: tell the user."""
        if self.focused or not line.highlight or line.own:
            return
        buf = self.session.buffers.get(key)
        if buf is None or buf.kind is BufferKind.SERVER:
            return
        who = line.nick or buf.name
        title = who if buf.kind is BufferKind.QUERY else f"{who} in {buf.name}"
        self.notifier.notify(title, line.text)
        self.missed += 1
        self._update_title()

    missed = 0  # mentions notified while the window was in the background (shown in its title)

    def _mark_read(self) -> None:
        if self.session.mark_read(self.shown_key):
            self.client.flush()

    def _focus_in(self, event: tk.Event[tk.Misc]) -> None:
        if self.focused or self._closed or getattr(event.widget, "winfo_toplevel", None) is None:
            return
        if event.widget.winfo_toplevel() is not self.master_window:
            return
        self.focused = True
        self.notifier.seen()
        if self.missed:
            self.missed = 0
            self._update_title()
        self._mark_read()

    def _focus_out(self, _event: tk.Event[tk.Misc]) -> None:
        # A FocusOut to one of our own widgets is followed by their FocusIn: ask Tk who has it now.
        self.after_idle(self._check_focus)

    def _check_focus(self) -> None:
        if self._closed or not self.winfo_exists():
            return
        try:
            widget = self.focus_get()
        except (KeyError, tk.TclError):  # a menu's internal widget has the focus
            return
        if widget is None or widget.winfo_toplevel() is not self.master_window:
            self.focused = False

    # -- replies, reactions, deleting -------------------------------------------------------------

    def _lookup(self, msgid: str) -> Line | str | None:
        buf = self.session.buffers.get(self.shown_key)
        if buf is not None and msgid in buf.deleted:
            return "a deleted message"
        return buf.find(msgid) if buf is not None else None

    def _can_answer(self, line: Line) -> bool:
        """Replies and reactions need the message's msgid and a server that relays client tags."""
        return (bool(line.msgid) and "message-tags" in self.session.caps_enabled and self.session.registered
                and line.kind in (LineKind.MESSAGE, LineKind.ACTION, LineKind.NOTICE)
                and self.shown_key != SERVER_KEY)

    def show_menu(self, line: Line, x: int, y: int) -> None:
        """Right-click on a message: Reply, the quick reactions, Copy text, Delete (where allowed)."""
        menu = self.menu
        menu.delete(0, "end")
        if self._can_answer(line):
            menu.add_command(label="\u21a9  Reply", command=lambda: self.start_reply(line))
            menu.add_separator()
            for emoji in QUICK_REACTIONS:
                menu.add_command(label=f"React  {emoji}", command=functools.partial(self.react, line, emoji))
            menu.add_separator()
        menu.add_command(label="Copy text", command=lambda: self._copy(line.text))
        if self.session.can_redact(self.shown_key, line):
            menu.add_separator()
            menu.add_command(label="Delete message", foreground=self.theme.palette.error,
                             command=lambda: self.delete_message(line))
        self.menu_line = line
        try:
            menu.tk_popup(x, y)
        finally:
            menu.grab_release()

    menu_line: Line | None = None

    def start_reply(self, line: Line) -> None:
        """The next message sent answers ``line``: a bar above the entry says so (Escape or x cancels)."""
        if not self._can_answer(line):
            return
        self.reply_to = line
        text = " ".join(line.text.split())
        if len(text) > QUOTE_CHARS:
            text = text[: QUOTE_CHARS - 1] + "\u2026"
        self.reply_label.configure(text=f"\u21aa Replying to {line.nick}: {text}")
        self.reply_bar.pack(side="bottom", fill="x", before=self.view, padx=12)
        self.entry.focus_set()

    def cancel_reply(self) -> None:
        self.reply_to = None
        self.reply_bar.pack_forget()

    def react(self, line: Line, emoji: str) -> None:
        buf = self.session.buffers.get(self.shown_key)
        if buf is not None and self.session.react(buf.name, line.msgid, emoji):
            self.client.flush()
            self.apply(self.session.take_changes())

    def _chip_clicked(self, line: Line, emoji: str) -> None:
        """A click on a reaction under a message adds yours (once)."""
        if self.session.nick not in line.reactions.get(emoji, []) and self._can_answer(line):
            self.react(line, emoji)

    def delete_message(self, line: Line) -> None:
        """REDACT; the line goes when the server confirms (it relays the REDACT back)."""
        if self.session.redact(self.shown_key, line.msgid):
            self.client.flush()

    def _copy(self, text: str) -> None:
        self.clipboard_clear()
        self.clipboard_append(text)

    # -- files: attach, thumbnails, the full image ------------------------------------------------

    def attach(self, path: str | None = None) -> bool:
        """The paperclip or /upload: share a file in the shown buffer (a file dialog without ``path``).

        The upload runs in the background (progress in the status line); its link is then sent here.
        """
        buf = self.session.buffers.get(self.shown_key)
        if buf is None or buf.kind is BufferKind.SERVER:
            self.session.error("Pick a channel or conversation to share the file in; this is the server tab.")
            self.apply(self.session.take_changes())
            return False
        if path is None:
            path = filedialog.askopenfilename(parent=self.master_window, title=f"Share a file in {buf.name}")
            if not path:
                return False
        started = self.client.upload(path, buf.name) is not None
        self.apply(self.session.take_changes())
        return started

    def cancel_upload(self) -> None:
        """The "Cancel upload" button: stop the uploads in progress (each tab says so)."""
        self.client.cancel_upload()

    def _files_of(self, line: Line) -> list[tuple[str, Preview | None]]:
        return [(url, self.client.preview(url)) for url in self.client.file_urls(line.text)]

    def _preview_ready(self, url: str) -> None:
        buf = self.session.buffers.get(self.shown_key)
        if buf is None:
            return
        for line in buf.lines:
            if url in line.text:
                self.view.update_line(line)

    def open_image(self, url: str) -> tk.Toplevel | None:
        """A click on a thumbnail: the image at full size (up to most of the screen) in a window of its own.

        Click or Escape closes it; "Open in browser" hands the URL to the desktop's browser.
        """
        preview = self.client.previews.get(url)
        if preview is None or preview.image is None:
            webbrowser.open(url, new=2)
            return None
        top = tk.Toplevel(self.master_window)
        top.title(f"{preview.name} \u2014 salotto")
        box = (int(self.winfo_screenwidth() * IMAGE_WINDOW_SHARE), int(self.winfo_screenheight() * IMAGE_WINDOW_SHARE))
        image = photo_image(top, preview.image, box)
        label = ttk.Label(top, image=image if image is not None else "", text="" if image else "unreadable image",
                          anchor="center")
        label.image = image  # type: ignore[attr-defined]  # keep it referenced while shown
        label.pack(fill="both", expand=True)
        bar = ttk.Frame(top, padding=6)
        bar.pack(side="bottom", fill="x")
        ttk.Label(bar, text=f"{preview.width}\u00d7{preview.height} \u00b7 {preview.label}",
                  style="Dim.TLabel").pack(side="left")
        ttk.Button(bar, text="Close", command=top.destroy).pack(side="right")
        ttk.Button(bar, text="Open in browser", command=lambda: webbrowser.open(url, new=2)).pack(side="right", padx=6)
        label.bind("<Button-1>", lambda _e: top.destroy())
        top.bind("<Escape>", lambda _e: top.destroy())
        self.image_window = top
        return top

    image_window: tk.Toplevel | None = None

    # -- search -----------------------------------------------------------------------------------

    def fill_gap(self) -> None:
        """A click on the gap line after a jump far back: load the messages missing there."""
        if self.session.fill_gap(self.shown_key):
            self.client.flush()
            self.apply(self.session.take_changes())

    def _focus_search(self) -> str:
        self.search_entry.focus_set()
        self.search_entry.select_range(0, "end")
        return "break"

    def run_search(self, text: str | None = None, everywhere: bool | None = None) -> bool:
        """The search field's Enter: search this buffer or everywhere, as the scope says."""
        text = self.search_entry.get() if text is None else text
        if everywhere is None:
            everywhere = self.search_scope.get() == SEARCH_SCOPES[1]
        buf = self.session.buffers.get(self.shown_key)
        target = "" if everywhere or buf is None or buf.kind is BufferKind.SERVER else buf.name
        started = self.session.search(text, target)
        self.client.flush()
        self.apply(self.session.take_changes())
        return started

    def search_more(self) -> None:
        if self.session.search_more():
            self.client.flush()
            self.apply(self.session.take_changes())

    def close_search(self) -> str:
        self.search_panel.pack_forget()
        self.session.search_results = None
        self.entry.focus_set()
        return "break"

    def _redraw_search(self) -> None:
        results = self.session.search_results
        if results is None:
            self.search_panel.pack_forget()
            return
        where = f"in {results.target}" if results.target else "everywhere"
        what = f"\u201c{results.text}\u201d" + (f" from {results.sender}" if results.sender else "")
        count = len(results.results)
        if results.error:
            label = f"Search for {what} {where}: {results.error}"
        elif results.pending and not count:
            label = f"Searching for {what} {where}\u2026"
        else:
            label = (f"{count} result{'s' if count != 1 else ''} for {what} {where}"
                     + ("; more are loading\u2026" if results.pending else ""))
        self.search_label.configure(text=label)
        self.search_more_button.state(["!disabled"] if results.more and not results.pending else ["disabled"])
        tree = self.search_list
        known = len(self._shown_results)
        if self._shown_results != results.results[:known]:  # a new search: start over
            tree.delete(*tree.get_children())
            known = 0
        this_year = datetime.now().astimezone().year
        for index, result in enumerate(results.results[known:], start=known):
            local = result.time.astimezone()
            moment = local.strftime("%d %b %H:%M" if local.year == this_year else "%d %b %Y")
            text = " ".join(result.text.split())
            tree.insert("", "end", iid=str(index), values=(result.buffer, moment, result.nick, text))
        self._shown_results = list(results.results)
        if not self.search_panel.winfo_ismapped():
            self.search_panel.pack(side="top", fill="x", before=self.view)
        if known == 0 and self._shown_results:
            tree.selection_set("0")
            tree.focus("0")

    def jump_to_selected(self) -> str:
        """Double-click or Enter on a result: show it in its buffer, highlighted."""
        selection = self.search_list.selection()
        if selection and int(selection[0]) < len(self._shown_results):
            self.session.jump_to(self._shown_results[int(selection[0])])
            self.client.flush()
            self.apply(self.session.take_changes())
        return "break"

    # -- drawing ----------------------------------------------------------------------------------

    def refresh_buffers(self) -> None:
        tree = self.buffer_list
        wanted = list(self._ordered_keys())
        for iid in tree.get_children():
            if iid not in wanted:
                tree.delete(iid)
        for index, key in enumerate(wanted):
            buf = self.session.buffers[key]
            label = buf.name
            tags: list[str] = ["server"] if buf.kind is BufferKind.SERVER else []
            if buf.mentioned:
                label = MENTION_MARK + label
                tags.append("mention")
            if buf.unread:
                label += f"   {buf.unread}"
                tags.append("unread")
            if buf.kind is BufferKind.CHANNEL and not buf.joined:
                tags.append("parted")
            if tree.exists(key):
                tree.item(key, text=label, tags=tags)
                if tree.index(key) != index:
                    tree.move(key, "", index)
            else:
                tree.insert("", index, iid=key, text=label, tags=tags)
        if self.shown_key and tree.exists(self.shown_key) and tree.selection() != (self.shown_key,):
            tree.selection_set(self.shown_key)

    def _ordered_keys(self) -> list[str]:
        rank = {BufferKind.SERVER: 0, BufferKind.CHANNEL: 1, BufferKind.QUERY: 2}
        return sorted(self.session.buffers, key=lambda key: (rank[self.session.buffers[key].kind], key))

    def show(self, key: str) -> None:
        """Make ``key`` the buffer on screen."""
        if key not in self.session.buffers:
            key = SERVER_KEY
        self.session.set_active(key)
        self.shown_key = key
        self._redraw_lines()
        self._redraw_members()
        self._redraw_topic()
        self.refresh_buffers()
        self._update_title()
        if self.reply_to is not None:
            self.cancel_reply()
        if self.focused:
            self._mark_read()

    def _redraw_lines(self) -> None:
        self.view.replace(self.session.buffers[self.shown_key].lines)

    def _redraw_members(self) -> None:
        buf = self.session.buffers[self.shown_key]
        self._redraw_topic()  # it shows how many are here
        self.nick_list.delete(0, "end")
        members = buf.sorted_members(self.session.prefix_symbols)
        if buf.kind is BufferKind.CHANNEL and buf.joined:
            self.people_label.configure(text=f"{len(members)} IN {buf.name.upper()}")
        else:
            self.people_label.configure(text="")
        for i, member in enumerate(members):
            self.nick_list.insert("end", member.display)
            # Each nick in its colour, as in the messages (the web page does the same).
            self.nick_list.itemconfigure(i, foreground=self.theme.palette.nicks[nick_colour_index(member.nick)])

    def _redraw_topic(self) -> None:
        buf = self.session.buffers[self.shown_key]
        if buf.kind is BufferKind.CHANNEL:
            text = buf.topic or "No topic yet: set one with /topic"
            if buf.joined:
                text += f"  \u00b7  {len(buf.members)} here"
            else:
                text += "  \u00b7  not joined"
        elif buf.kind is BufferKind.QUERY:
            text = f"Private conversation with {buf.name}"
        else:
            text = "Server messages. Type /help for commands."
        self.title_label.configure(text=buf.name)
        self.topic.set(text)

    def _update_title(self) -> None:
        buf = self.session.buffers.get(self.shown_key)
        where = f"{buf.name} \u2014 " if buf is not None and buf.kind is not BufferKind.SERVER else ""
        away = " (away)" if self.session.away else ""
        missed = f"({self.missed}) " if self.missed else ""
        self.master_window.title(f"{missed}{where}{self.session.nick}{away} \u2014 salotto")
        self.nick_label.configure(text=self.session.nick + away)
        account = self.session.account
        always_on = " \u00b7 always on" if account and self.session.always_on else ""
        self.account_label.configure(text=f"\u2713 logged in as {account}{always_on}" if account else
                                     "connected" if self.session.registered else "offline")
        self.status.configure(text=self.client.status_text)
        uploading = bool(self.client.activity)
        if uploading != bool(self.cancel_upload_button.winfo_manager()):
            if uploading:
                self.cancel_upload_button.pack(side="right", padx=(0, 6), before=self.attach_button)
            else:
                self.cancel_upload_button.pack_forget()

    # -- user actions -----------------------------------------------------------------------------

    def submit(self) -> None:
        """Enter or the Send button: run the entry's text in the shown buffer."""
        text = self.entry.get()
        if not text.strip():
            return
        self.entry.delete(0, "end")
        self.history.add(text)
        self.completer.reset()
        reply = self.reply_to
        if reply is not None:
            self.cancel_reply()
        if reply is not None and (not text.startswith("/") or text.startswith("//")) and self.session.registered:
            self.session.set_active(self.shown_key)
            body = text[1:] if text.startswith("//") else text
            self.session.say(self.session.buffers[self.shown_key].name, body, reply_to=reply.msgid)
            self.client.flush()
            self.apply(self.session.take_changes())
            return
        self._run(text)

    def _run(self, text: str) -> None:
        self.session.set_active(self.shown_key)
        self.client.input(text)
        self.apply(self.session.take_changes())

    def open_query(self, nick: str) -> None:
        nick = nick.lstrip(self.session.prefix_symbols)
        if not nick or self.session.is_me(nick):
            return
        self.session.open_buffer(nick, BufferKind.QUERY)
        self.session.activate(self.session.key(nick))
        self.apply(self.session.take_changes())
        self.entry.focus_set()

    def _nick_list_activated(self, _event: tk.Event[tk.Listbox]) -> str:
        if self.nick_list.size():
            self.open_query(self.nick_list.get(self.nick_list.index("active")))
        return "break"

    def _buffer_selected(self, _event: tk.Event[ttk.Treeview]) -> None:
        selection = self.buffer_list.selection()
        if selection and selection[0] != self.shown_key:
            self.show(selection[0])
            self.entry.focus_set()

    def _entry_changed(self) -> None:
        text = self.entry_text.get().strip("\r\n")
        count = text.count("\n") + 1
        if count < 2 or text.startswith("/"):
            self.lines_hint.pack_forget()
            return
        limits = self.session.multiline_limits()
        one = limits is not None and count <= limits[1] and len(text.encode("utf-8")) <= limits[0]
        self.lines_hint.configure(text=f"{count} lines: one message" if one else f"{count} lines: {count} messages")
        if not self.lines_hint.winfo_ismapped():
            self.lines_hint.pack(side="right", padx=(0, 8), before=self.attach_button)

    def _recall(self, step: Callable[[str], str]) -> str:
        text = step(self.entry.get())
        self.entry.delete(0, "end")
        self.entry.insert(0, text)
        return "break"

    def _complete(self, _event: tk.Event[ttk.Entry]) -> str:
        buf = self.session.buffers[self.shown_key]
        nicks = [m.nick for m in buf.members.values()] or ([buf.name] if buf.kind is BufferKind.QUERY else [])
        result = self.completer.complete(self.entry.get(), self.entry.index("insert"), nicks, COMMANDS)
        if result is not None:
            text, cursor = result
            self.entry.delete(0, "end")
            self.entry.insert(0, text)
            self.entry.icursor(cursor)
        return "break"

    def _key_typed(self, event: tk.Event[ttk.Entry]) -> None:
        if event.keysym not in ("Tab", "Shift_L", "Shift_R"):
            self.completer.reset()

    def _older_wanted(self) -> None:
        """The view reached its top: ask for older lines; they arrive as a PREPEND change."""
        if self.session.request_older(self.shown_key):
            self.client.flush()

    def _scroll(self, direction: int) -> str:
        self.view.scroll_page(direction)
        return "break"

    def _cycle(self, step: int) -> str:
        keys = self._ordered_keys()
        if self.shown_key in keys:
            self.show(keys[(keys.index(self.shown_key) + step) % len(keys)])
        return "break"

    def _goto(self, index: int, _event: object = None) -> str:
        keys = self._ordered_keys()
        if index < len(keys):
            self.show(keys[index])
        return "break"

    def _font_step(self, step: int) -> str:
        if self._on_font_size is not None:
            self._on_font_size(int(self.theme.text_font.cget("size")) + step)
        return "break"

    def _grab_focus(self) -> None:
        if self.winfo_exists():
            self.entry.focus_force()

    def _destroyed(self, event: tk.Event[tk.Misc]) -> None:
        # Destroyed from outside (the root went away): stop polling and hang up all the same.
        if event.widget is self and not self._closed:
            self._closed = True
            if self._poll_job is not None:
                self.after_cancel(self._poll_job)
                self._poll_job = None
            self.client.close()

    def _give_way(self) -> None:
        """Hang up and take the window (not its toplevel) away, for the connect dialog to come back."""
        self._closed = True
        if self._poll_job is not None:
            self.after_cancel(self._poll_job)
            self._poll_job = None
        self.client.close()
        for sequence in self._root_bindings:
            self.master_window.unbind(sequence)
        self.destroy()

    def close(self) -> None:
        """The window's close button, Ctrl+Q or /quit: QUIT, disconnect, go away."""
        if self._closed:
            return
        self._closed = True
        if self._poll_job is not None:
            self.after_cancel(self._poll_job)
            self._poll_job = None
        self.client.close()
        self.notifier.close()
        if self._on_closed is not None:
            self._on_closed()
        self.master_window.destroy()
