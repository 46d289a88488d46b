"""Telling the user about a mention or a private message while the window is in the background.

The desktop's notification service when there is one (``notify-send``, which speaks
org.freedesktop.Notifications), else the window's urgency hint (X11: the window manager flashes the
window or its taskbar entry; set through Xlib, as Tk 8.6 has no ``wm`` command for it), else a bell.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import shutil
import subprocess
import sys
import tkinter as tk

__all__ = ["NOTIFY_BODY_CHARS", "Notifier", "default_command", "set_urgent", "urgent"]

# Characters of the message shown in a notification; the rest is in the window.
NOTIFY_BODY_CHARS = 200
# How long notify-send may take before we stop waiting for it (it runs in the background anyway).
NOTIFY_TIMEOUT_S = 5.0
# XWMHints.flags bit for the urgency hint (ICCCM 4.1.2.4).
_X_URGENCY_HINT = 1 << 8


class _XWMHints(ctypes.Structure):
    _fields_ = [
        ("flags", ctypes.c_long),
        ("input", ctypes.c_int),
        ("initial_state", ctypes.c_int),
        ("icon_pixmap", ctypes.c_ulong),
        ("icon_window", ctypes.c_ulong),
        ("icon_x", ctypes.c_int),
        ("icon_y", ctypes.c_int),
        ("icon_mask", ctypes.c_ulong),
        ("window_group", ctypes.c_ulong),
    ]


def _xlib() -> ctypes.CDLL | None:
    if sys.platform in ("win32", "darwin"):
        return None
    name = ctypes.util.find_library("X11")
    if name is None:
        return None
    try:
        lib = ctypes.CDLL(name)
    except OSError:
        return None
    lib.XOpenDisplay.restype = ctypes.c_void_p
    lib.XOpenDisplay.argtypes = [ctypes.c_char_p]
    lib.XGetWMHints.restype = ctypes.POINTER(_XWMHints)
    lib.XGetWMHints.argtypes = [ctypes.c_void_p, ctypes.c_ulong]
    lib.XAllocWMHints.restype = ctypes.POINTER(_XWMHints)
    lib.XSetWMHints.argtypes = [ctypes.c_void_p, ctypes.c_ulong, ctypes.POINTER(_XWMHints)]
    lib.XFree.argtypes = [ctypes.c_void_p]
    lib.XCloseDisplay.argtypes = [ctypes.c_void_p]
    return lib


def _with_hints(window: tk.Wm, change: bool | None) -> bool:
    """Read (``change`` None) or set/clear the urgency hint of ``window``'s toplevel; its state after."""
    lib = _xlib()
    if lib is None:
        return False
    try:
        xid = int(window.wm_frame(), 16)
        display_name = str(window.winfo_screen()).encode()  # type: ignore[attr-defined]
    except (tk.TclError, ValueError):
        return False
    display = lib.XOpenDisplay(display_name)
    if not display:
        return False
    try:
        hints = lib.XGetWMHints(display, xid)
        if not hints:
            if change is None:
                return False
            hints = lib.XAllocWMHints()
            if not hints:
                return False
        try:
            if change is not None:
                if change:
                    hints.contents.flags |= _X_URGENCY_HINT
                else:
                    hints.contents.flags &= ~_X_URGENCY_HINT
                lib.XSetWMHints(display, xid, hints)
            return bool(hints.contents.flags & _X_URGENCY_HINT)
        finally:
            lib.XFree(hints)
    finally:
        lib.XCloseDisplay(display)  # flushes the change


def set_urgent(window: tk.Wm, on: bool) -> bool:
    """Set or clear the X11 urgency hint; False where there is no Xlib (Windows, macOS)."""
    return _with_hints(window, on) == on if _xlib() is not None else False


def urgent(window: tk.Wm) -> bool:
    """Whether the window has the urgency hint now."""
    return _with_hints(window, None)


def default_command() -> str:
    """``notify-send`` when there is a session bus to reach the notification service on, else "".

    Without ``DBUS_SESSION_BUS_ADDRESS`` (a bare X server, ssh -X) notify-send would fail, or have libdbus
    start a bus of its own that outlives us; the urgency hint serves better there.
    """
    if not os.environ.get("DBUS_SESSION_BUS_ADDRESS"):
        return ""
    return shutil.which("notify-send") or ""


class Notifier:
    """Shows a notification through ``command`` (notify-send's arguments) or marks the window urgent."""

    def __init__(self, window: tk.Tk | tk.Toplevel, command: str | None = None) -> None:
        self.window = window
        self.command = command if command is not None else default_command()
        self._running: list[subprocess.Popen[bytes]] = []
        self.urgent = False

    def notify(self, title: str, body: str) -> str:
        """Tell the user; returns how: "notification", "urgency" or "bell"."""
        if len(body) > NOTIFY_BODY_CHARS:
            body = body[: NOTIFY_BODY_CHARS - 1] + "\u2026"
        self._reap()
        if self.command:
            try:
                self._running.append(subprocess.Popen(
                    [self.command, "--app-name=salotto", "--category=im.received", title, body],
                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
                return "notification"
            except OSError:
                self.command = ""  # gone since: the urgency hint from now on
        if set_urgent(self.window, True):
            self.urgent = True
            return "urgency"
        self.window.bell()
        return "bell"

    def seen(self) -> None:
        """The window has the focus again: the urgency hint goes."""
        if self.urgent:
            self.urgent = False
            set_urgent(self.window, False)

    def _reap(self) -> None:
        self._running = [proc for proc in self._running if proc.poll() is None]

    def close(self) -> None:
        for proc in self._running:
            try:
                proc.wait(NOTIFY_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
        self._running.clear()
