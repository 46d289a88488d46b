"""The web page's palette (light and dark) on ttk's "clam" theme, fonts in points (HiDPI-safe), nick colours.

The colours are those of ``clients/web/app.css``: warm paper panels, a green accent, an orange mark for
mentions, so the desktop window and the page look like one product.
"""

from __future__ import annotations

import tkinter as tk
import tkinter.font as tkfont
from dataclasses import dataclass
from tkinter import ttk
from typing import Any

from salotto.clients.core.text import NICK_COLOURS

__all__ = ["PALETTES", "Palette", "Theme", "apply_theme"]

# Font families tried in order for the interface and the messages; the first one installed wins (the
# web page asks for system-ui, which on a Linux desktop is one of these).
PREFERRED_FAMILIES = ("Inter", "Cantarell", "Noto Sans", "Segoe UI", "Ubuntu", "DejaVu Sans", "Helvetica")


@dataclass(frozen=True, slots=True)
class Palette:
    bg: str  # the message area and the window (app.css --bg)
    fg: str  # text (--text)
    field_bg: str  # the entry (--input)
    view_bg: str  # the message view
    dim: str  # times, events, hints (--muted)
    accent: str  # the shown buffer, Send, links to act on (--accent)
    select_bg: str  # a selected row in a list: the accent
    select_fg: str  # its text (--accent-text)
    error: str
    mention_bg: str  # a line that mentions you (--highlight)
    own: str  # your own messages
    nicks: tuple[str, ...]
    panel: str = ""  # the side columns (--panel)
    panel_2: str = ""  # hover, badges, quotes (--panel-2)
    border: str = ""  # lines between areas (--border)
    mention: str = ""  # the mark of a mention: the bar beside the line, the buffer's name (--mention)
    link: str = ""  # URLs (--link)
    text_select: str = ""  # selected text in the messages


PALETTES = {
    "light": Palette(
        bg="#f7f5f0", fg="#1f2422", field_bg="#ffffff", view_bg="#f7f5f0", dim="#66706b", accent="#2f6f5e",
        select_bg="#2f6f5e", select_fg="#ffffff", error="#b42318", mention_bg="#fdecc8", own="#1f2422",
        nicks=("#b4235a", "#1d6fa5", "#2d7a3a", "#a4520c", "#6c3fb5", "#0f7c7c", "#9b2f9b", "#596b12",
               "#c0392b", "#34609e", "#7a5410", "#1e7d5c"),
        panel="#ece8df", panel_2="#e2ddd1", border="#d6d0c4", mention="#c2410c", link="#1d5fa8",
        text_select="#cfe1d9",
    ),
    "dark": Palette(
        bg="#171a19", fg="#e6e8e3", field_bg="#12110f", view_bg="#171a19", dim="#97a29c", accent="#5fb49c",
        select_bg="#5fb49c", select_fg="#0d1412", error="#f87171", mention_bg="#3b3320", own="#e6e8e3",
        nicks=("#f27aa6", "#6cb6ea", "#77c987", "#f0a35c", "#b99af0", "#5ccfcf", "#e08be0", "#b5c95a",
               "#f58b7e", "#8fb1ea", "#d9b46a", "#6fd3ae"),
        panel="#1f2422", panel_2="#29302d", border="#333b37", mention="#fb923c", link="#7cb7f5",
        text_select="#2d4a41",
    ),
}
assert all(len(p.nicks) == NICK_COLOURS for p in PALETTES.values())


@dataclass(slots=True)
class Theme:
    name: str
    palette: Palette
    ui_font: tkfont.Font
    text_font: tkfont.Font
    bold_font: tkfont.Font
    italic_font: tkfont.Font
    # Smaller text: times, the quote above a reply, reactions (about the web page's .8rem).
    small_font: tkfont.Font | None = None
    # The buffer's name above the topic and the brand (about 1.15rem).
    title_font: tkfont.Font | None = None


def _family(root: tk.Misc) -> str:
    installed = set(tkfont.families(root))
    for family in PREFERRED_FAMILIES:
        if family in installed:
            return family
    return str(tkfont.nametofont("TkDefaultFont", root).actual("family"))


def _small(size: int) -> int:
    return max(size - 2, 6)


def _title(size: int) -> int:
    return size + 2


def apply_theme(root: tk.Misc, name: str, font_size: int, theme: Theme | None = None) -> Theme:
    """Style ttk widgets for ``name`` at ``font_size`` points; reuses ``theme``'s fonts when given."""
    palette = PALETTES.get(name, PALETTES["light"])
    if theme is None:
        family = _family(root)
        theme = Theme(
            name,
            palette,
            tkfont.Font(root, family=family, size=font_size),
            tkfont.Font(root, family=family, size=font_size),
            tkfont.Font(root, family=family, size=font_size, weight="bold"),
            tkfont.Font(root, family=family, size=font_size, slant="italic"),
            tkfont.Font(root, family=family, size=_small(font_size)),
            tkfont.Font(root, family=family, size=_title(font_size), weight="bold"),
        )
    else:
        theme.name, theme.palette = name, palette
        for font in (theme.ui_font, theme.text_font, theme.bold_font, theme.italic_font):
            font.configure(size=font_size)
        if theme.small_font is not None:
            theme.small_font.configure(size=_small(font_size))
        if theme.title_font is not None:
            theme.title_font.configure(size=_title(font_size))
    for named in ("TkDefaultFont", "TkTextFont", "TkMenuFont", "TkHeadingFont"):
        tkfont.nametofont(named, root).configure(size=font_size)
    style = ttk.Style(root)
    style.theme_use("clam")
    p = palette
    pad = max(font_size // 2, 4)  # spacing grows with the text, as rem does on the page
    style.configure(".", background=p.bg, foreground=p.fg, fieldbackground=p.field_bg, font=theme.ui_font,
                    bordercolor=p.border, lightcolor=p.bg, darkcolor=p.bg, troughcolor=p.bg,
                    selectbackground=p.text_select, selectforeground=p.fg, insertcolor=p.fg,
                    focuscolor=p.accent)
    style.map(".", background=[("disabled", p.bg)], foreground=[("disabled", p.dim)])
    style.configure("TFrame", background=p.bg)
    style.configure("Panel.TFrame", background=p.panel)
    style.configure("TLabel", background=p.bg, foreground=p.fg)
    style.configure("Panel.TLabel", background=p.panel, foreground=p.fg)
    style.configure("PanelDim.TLabel", background=p.panel, foreground=p.dim, font=theme.small_font)
    style.configure("Brand.TLabel", background=p.panel, foreground=p.fg, font=theme.title_font,
                    padding=(pad * 2, pad * 2, pad, pad))
    style.configure("Me.TLabel", background=p.panel, foreground=p.fg, font=theme.bold_font,
                    padding=(pad * 2, pad, pad, 0))
    style.configure("Title.TLabel", font=theme.title_font)
    style.configure("Topic.TLabel", foreground=p.dim)
    style.configure("Reply.TLabel", background=p.panel, foreground=p.dim, padding=(pad, pad // 2))
    style.configure("Header.TLabel", background=p.panel, foreground=p.dim, font=theme.small_font,
                    padding=(pad * 2, pad * 2, pad, pad))
    style.configure("TEntry", fieldbackground=p.field_bg, foreground=p.fg, bordercolor=p.border,
                    lightcolor=p.field_bg, darkcolor=p.field_bg, padding=(pad, pad))
    style.map("TEntry", fieldbackground=[("readonly", p.bg)], bordercolor=[("focus", p.accent)],
              lightcolor=[("focus", p.accent)], darkcolor=[("focus", p.accent)])
    # The search field's scope menu: a field like the entry, its list in the panel's colours.
    style.configure("TCombobox", fieldbackground=p.field_bg, foreground=p.fg, background=p.panel, arrowcolor=p.fg,
                    bordercolor=p.border, lightcolor=p.field_bg, darkcolor=p.field_bg, padding=(pad, pad // 2))
    style.map("TCombobox", fieldbackground=[("readonly", p.field_bg)], foreground=[("readonly", p.fg)],
              selectbackground=[("readonly", p.field_bg)], selectforeground=[("readonly", p.fg)],
              background=[("active", p.panel_2)], bordercolor=[("focus", p.accent)])
    root.option_add("*TCombobox*Listbox.background", p.panel)
    root.option_add("*TCombobox*Listbox.foreground", p.fg)
    root.option_add("*TCombobox*Listbox.selectBackground", p.select_bg)
    root.option_add("*TCombobox*Listbox.selectForeground", p.select_fg)
    style.configure("Heading", background=p.panel_2, foreground=p.fg, bordercolor=p.border, lightcolor=p.panel_2,
                    darkcolor=p.panel_2, font=theme.bold_font)
    style.map("Heading", background=[("active", p.panel_2)])
    style.configure("TCheckbutton", background=p.bg, foreground=p.fg, indicatorbackground=p.field_bg,
                    indicatorforeground=p.accent)
    style.map("TCheckbutton", background=[("active", p.bg)], indicatorbackground=[("selected", p.field_bg)])
    style.configure("TButton", padding=(pad * 2, pad // 2 + 2), background=p.panel, foreground=p.fg,
                    bordercolor=p.border, lightcolor=p.panel, darkcolor=p.panel, focuscolor=p.panel)
    style.map("TButton", background=[("pressed", p.border), ("active", p.panel_2)],
              lightcolor=[("active", p.panel_2)], darkcolor=[("active", p.panel_2)])
    style.configure("Accent.TButton", background=p.accent, foreground=p.select_fg, font=theme.bold_font,
                    bordercolor=p.accent, lightcolor=p.accent, darkcolor=p.accent, focuscolor=p.accent)
    style.map("Accent.TButton", background=[("pressed", p.accent), ("active", p.accent)],
              foreground=[("active", p.select_fg)], lightcolor=[("active", p.accent)],
              darkcolor=[("active", p.accent)])
    style.configure("Icon.TButton", padding=(pad, 1), font=theme.ui_font)
    style.configure("Flat.TButton", padding=(pad // 2, 0), background=p.panel, bordercolor=p.panel,
                    lightcolor=p.panel, darkcolor=p.panel)
    style.configure("Dim.TLabel", foreground=p.dim)
    style.configure("Heading.TLabel", font=theme.title_font)
    style.configure("Status.TLabel", background=p.panel, foreground=p.dim, padding=(pad * 2, 2),
                    font=theme.small_font)
    style.configure("Error.TLabel", foreground=p.error)
    style.configure("TSeparator", background=p.border)
    style.configure("TPanedwindow", background=p.border)
    style.configure("Sash", sashthickness=1, gripcount=0, background=p.border, lightcolor=p.border,
                    bordercolor=p.border)
    # Scrollbars as on the page: a thumb on the trough, no arrows.
    for orient in ("Vertical", "Horizontal"):
        thumb: Any = [(f"{orient}.Scrollbar.thumb", {"expand": "1", "sticky": "nswe"})]
        style.layout(f"{orient}.TScrollbar", [(f"{orient}.Scrollbar.trough", {"sticky": "nswe", "children": thumb})])
    style.configure("TScrollbar", troughcolor=p.bg, background=p.panel_2, bordercolor=p.bg,
                    lightcolor=p.panel_2, darkcolor=p.panel_2, arrowsize=max(font_size, 10))
    style.map("TScrollbar", background=[("active", p.border)])
    # ttk rows do not grow with the font by themselves; without this, HiDPI rows overlap.
    rowheight = theme.ui_font.metrics("linespace") + pad * 2
    style.configure("Treeview", background=p.panel, fieldbackground=p.panel, foreground=p.fg,
                    rowheight=rowheight, borderwidth=0, bordercolor=p.panel, lightcolor=p.panel,
                    darkcolor=p.panel, padding=(pad, 0))
    style.map("Treeview", background=[("selected", p.select_bg)], foreground=[("selected", p.select_fg)])
    style.layout("Treeview", [("Treeview.treearea", {"sticky": "nswe"})])  # no frame around the list
    style.configure("Treeview.Item", padding=(pad, 0))
    item: Any = [("Treeitem.text", {"side": "left", "sticky": ""})]
    style.layout("Treeview.Item", [("Treeitem.padding", {"sticky": "nswe", "children": item})])  # no expander
    if isinstance(root, tk.Tk | tk.Toplevel):
        root.configure(background=p.bg)
    return theme
