"""Light and dark palettes on ttk's "clam" theme, fonts in points (HiDPI-safe), nick colours."""

from __future__ import annotations

import tkinter as tk
import tkinter.font as tkfont
from dataclasses import dataclass
from tkinter import ttk

from salotto.clients.core.text import NICK_COLOURS

__all__ = ["PALETTES", "Palette", "Theme", "apply_theme"]


@dataclass(frozen=True, slots=True)
class Palette:
    bg: str
    fg: str
    field_bg: str
    view_bg: str
    dim: str
    accent: str
    select_bg: str
    select_fg: str
    error: str
    mention_bg: str
    own: str
    nicks: tuple[str, ...]


PALETTES = {
    "light": Palette(
        bg="#eceff1", fg="#1b1f23", field_bg="#ffffff", view_bg="#ffffff", dim="#7a828a", accent="#1565c0",
        select_bg="#cfe3fa", select_fg="#0b1a2a", error="#c62828", mention_bg="#fff3c4", own="#37474f",
        nicks=("#c62828", "#ad1457", "#6a1b9a", "#4527a0", "#1565c0", "#00838f", "#2e7d32", "#558b2f",
               "#9e7700", "#d84315", "#5d4037", "#0277bd"),
    ),
    "dark": Palette(
        bg="#1f2328", fg="#e6e6e6", field_bg="#2b3036", view_bg="#16191d", dim="#8b949e", accent="#64b5f6",
        select_bg="#2f4a6b", select_fg="#ffffff", error="#ff6b6b", mention_bg="#4a3f12", own="#b0bec5",
        nicks=("#ff8a80", "#f48fb1", "#ce93d8", "#b39ddb", "#90caf9", "#80deea", "#a5d6a7", "#c5e1a5",
               "#ffe082", "#ffab91", "#bcaaa4", "#81d4fa"),
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


def apply_theme(root: tk.Misc, name: str, font_size: int, theme: Theme | None = None) -> Theme:
    """Style ttk widgets for ``name`` at ``font_size`` points; reuses ``theme``'s fonts when given."""
    palette = PALETTES.get(name, PALETTES["light"])
    if theme is None:
        family = tkfont.nametofont("TkDefaultFont", root).actual("family")
        theme = Theme(
            name,
            palette,
            tkfont.Font(root, family=family, size=font_size),
            tkfont.Font(root, family=family, size=font_size),
            tkfont.Font(root, family=family, size=font_size, weight="bold"),
            tkfont.Font(root, family=family, size=font_size, slant="italic"),
        )
    else:
        theme.name, theme.palette = name, palette
        for font in (theme.ui_font, theme.text_font, theme.bold_font, theme.italic_font):
            font.configure(size=font_size)
    for named in ("TkDefaultFont", "TkTextFont", "TkMenuFont", "TkHeadingFont"):
        tkfont.nametofont(named, root).configure(size=font_size)
    style = ttk.Style(root)
    style.theme_use("clam")
    p = palette
    style.configure(".", background=p.bg, foreground=p.fg, fieldbackground=p.field_bg, font=theme.ui_font,
                    bordercolor=p.dim, lightcolor=p.bg, darkcolor=p.bg, troughcolor=p.bg,
                    selectbackground=p.select_bg, selectforeground=p.select_fg, insertcolor=p.fg)
    style.map(".", background=[("active", p.select_bg), ("disabled", p.bg)],
              foreground=[("disabled", p.dim)])
    style.configure("TEntry", fieldbackground=p.field_bg, foreground=p.fg)
    style.map("TEntry", fieldbackground=[("readonly", p.bg)])
    style.configure("TButton", padding=(10, 3))
    style.configure("Accent.TButton", foreground=p.accent)
    style.configure("Dim.TLabel", foreground=p.dim)
    style.configure("Heading.TLabel", font=theme.bold_font)
    style.configure("Status.TLabel", foreground=p.dim, padding=(6, 2))
    style.configure("Error.TLabel", foreground=p.error)
    style.configure("Topic.TEntry", fieldbackground=p.bg)
    # ttk rows do not grow with the font by themselves; without this, HiDPI rows overlap.
    rowheight = theme.ui_font.metrics("linespace") + 6
    style.configure("Treeview", background=p.field_bg, fieldbackground=p.field_bg, foreground=p.fg,
                    rowheight=rowheight, borderwidth=0)
    style.map("Treeview", background=[("selected", p.select_bg)], foreground=[("selected", p.select_fg)])
    if isinstance(root, tk.Tk | tk.Toplevel):
        root.configure(background=p.bg)
    return theme
