"""The main window: buffer list, topic bar, message view, nick list, entry with Send.

It only draws the core's state and turns user actions into core calls. The one thread boundary is
the client's event queue, drained by :meth:`ChatWindow.poll` every ``POLL_MS`` through ``after()``.
"""

from __future__ import annotations

import functools
import tkinter as tk
from collections.abc import Callable
from tkinter import ttk

from salotto.clients.core import (
    COMMANDS,
    SERVER_KEY,
    BufferKind,
    Change,
    ChangeKind,
    Client,
    Completer,
    InputHistory,
)
from salotto.clients.tk.theme import Theme
from salotto.clients.tk.view import MessageView

__all__ = ["POLL_MS", "ChatWindow"]

# How often the Tk loop drains the client's queue: fast enough to feel instant, cheap when idle.
POLL_MS = 40
MENTION_MARK = "\u25cf "  # a dot before a buffer where someone mentioned you


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
    ) -> None:
        """``on_refused``: called (the window gone) when the server refuses the server password; without
        it, the window stays and says so."""
        super().__init__(master)
        self.master_window = master
        self.client = client
        self.session = client.session
        self.theme = theme
        self._on_closed = on_closed
        self._on_font_size = on_font_size
        self._on_refused = on_refused
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
        self._poll_job = self.after(POLL_MS, self.poll)

    # -- layout -----------------------------------------------------------------------------------

    def _build(self) -> None:
        # pack gives space in packing order and squeezes the last packed first: the fixed-height rows
        # (status line, entry row, topic) go in before the parts that stretch, or a window smaller than
        # everything's requested height (a small window, a big font, a HiDPI screen) cuts them off.
        self.status = ttk.Label(self, text=self.client.status, style="Status.TLabel", anchor="w")
        self.status.pack(side="bottom", fill="x")
        panes = ttk.PanedWindow(self, orient="horizontal")
        panes.pack(fill="both", expand=True)
        self.buffer_list = ttk.Treeview(panes, show="tree", selectmode="browse", takefocus=False)
        self.buffer_list.bind("<<TreeviewSelect>>", self._buffer_selected)
        panes.add(self.buffer_list, weight=0)

        centre = ttk.Frame(panes)
        self.topic = tk.StringVar(self)
        self.topic_entry = ttk.Entry(centre, textvariable=self.topic, state="readonly", takefocus=False)
        self.topic_entry.pack(fill="x", padx=2, pady=(2, 0))
        bottom = ttk.Frame(centre)
        bottom.pack(side="bottom", fill="x", padx=2, pady=(0, 2))
        self.view = MessageView(centre, self.theme, self.open_query, self._older_wanted)
        self.view.pack(fill="both", expand=True, padx=2, pady=2)
        self.nick_label = ttk.Label(bottom, text=self.session.nick, style="Heading.TLabel")
        self.nick_label.pack(side="left", padx=(4, 6))
        self.send_button = ttk.Button(bottom, text="Send", command=self.submit, style="Accent.TButton")
        self.send_button.pack(side="right")
        self.entry = ttk.Entry(bottom)
        self.entry.pack(side="left", fill="x", expand=True, padx=(0, 6), ipady=3)
        panes.add(centre, weight=1)

        self.nick_list = tk.Listbox(panes, activestyle="none", borderwidth=6, relief="flat", highlightthickness=0,
                                    exportselection=False, takefocus=False)
        self.nick_list.bind("<Double-Button-1>", self._nick_list_activated)
        self.nick_list.bind("<Return>", self._nick_list_activated)
        panes.add(self.nick_list, weight=0)
        self.restyle(self.theme)
        self._bind_keys()

    def restyle(self, theme: Theme) -> None:
        self.theme = theme
        p = theme.palette
        width = theme.ui_font.measure("m") * 11
        self.buffer_list.configure(padding=0)
        self.buffer_list.column("#0", width=width)
        self.buffer_list.tag_configure("mention", foreground=p.error, font=theme.bold_font)
        self.buffer_list.tag_configure("unread", font=theme.bold_font)
        self.buffer_list.tag_configure("parted", foreground=p.dim)
        self.nick_list.configure(background=p.field_bg, foreground=p.fg, font=theme.ui_font, width=13,
                                 selectbackground=p.select_bg, selectforeground=p.select_fg)
        self.view.restyle(theme)

    def _bind_keys(self) -> None:
        e = self.entry
        e.bind("<Return>", lambda _e: self.submit())
        e.bind("<KP_Enter>", lambda _e: self.submit())
        e.bind("<Up>", lambda _e: self._recall(self.history.up))
        e.bind("<Down>", lambda _e: self._recall(self.history.down))
        e.bind("<Tab>", self._complete)
        e.bind("<Key>", self._key_typed, add=True)
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
        for change in changes:
            kind = change.kind
            if kind is ChangeKind.LINE and change.key == self.shown_key and change.line is not None:
                self.view.append(change.line)
            elif kind is ChangeKind.RELOAD and change.key == self.shown_key:
                self._redraw_lines()
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
            elif kind is ChangeKind.STATUS:
                self._update_title()
            elif kind is ChangeKind.QUIT:
                self.close()
                return
        if buffers_dirty:
            self.refresh_buffers()
        if self.session.refused is not None and self._on_refused is not None:
            why = self.session.refused
            self._give_way()
            self._on_refused(why)

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
            tags: list[str] = []
            if buf.mentioned:
                label = MENTION_MARK + label
                tags.append("mention")
            if buf.unread:
                label += f"  ({buf.unread})"
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

    def _redraw_lines(self) -> None:
        self.view.replace(self.session.buffers[self.shown_key].lines)

    def _redraw_members(self) -> None:
        buf = self.session.buffers[self.shown_key]
        self._redraw_topic()  # it shows how many are here
        self.nick_list.delete(0, "end")
        members = buf.sorted_members(self.session.prefix_symbols)
        for i, member in enumerate(members):
            self.nick_list.insert("end", member.display)
            if member.prefixes:
                self.nick_list.itemconfigure(i, foreground=self.theme.palette.accent)

    def _redraw_topic(self) -> None:
        buf = self.session.buffers[self.shown_key]
        if buf.kind is BufferKind.CHANNEL:
            text = buf.topic or "(no topic; set one with /topic ...)"
            text = f"{buf.name}: {text}  \u2014  {len(buf.members)} here" if buf.joined else f"{buf.name}: {text}"
        elif buf.kind is BufferKind.QUERY:
            text = f"Private conversation with {buf.name}"
        else:
            text = f"{buf.name} \u2014 server messages. Type /help for commands."
        self.topic.set(text)

    def _update_title(self) -> None:
        buf = self.session.buffers.get(self.shown_key)
        where = f"{buf.name} \u2014 " if buf is not None and buf.kind is not BufferKind.SERVER else ""
        away = " (away)" if self.session.away else ""
        self.master_window.title(f"{where}{self.session.nick}{away} \u2014 salotto")
        self.nick_label.configure(text=self.session.nick + away)
        self.status.configure(text=self.client.status)

    # -- user actions -----------------------------------------------------------------------------

    def submit(self) -> None:
        """Enter or the Send button: run the entry's text in the shown buffer."""
        text = self.entry.get()
        if not text.strip():
            return
        self.entry.delete(0, "end")
        self.history.add(text)
        self.completer.reset()
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
        if self._on_closed is not None:
            self._on_closed()
        self.master_window.destroy()
