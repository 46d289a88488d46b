"""The desktop client's settings: what the connect dialog remembers, font size and theme.

Stored as JSON in the user's config directory (``$XDG_CONFIG_HOME/salotto/gui.json`` on Linux,
``%APPDATA%\\salotto`` on Windows, ``~/Library/Application Support/salotto`` on macOS; the
``SALOTTO_CONFIG_DIR`` environment variable overrides it). Passwords are never written to disk.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import asdict, dataclass, fields
from pathlib import Path

__all__ = ["DEFAULT_FONT_SIZE", "THEMES", "Settings", "config_dir", "load_settings", "save_settings"]

THEMES = ("light", "dark")
# Points, not pixels: Tk scales points by the screen's DPI, so this stays readable on HiDPI screens.
DEFAULT_FONT_SIZE = 11
MIN_FONT_SIZE = 6
MAX_FONT_SIZE = 40
SETTINGS_FILE = "gui.json"


@dataclass(slots=True)
class Settings:
    host: str = "127.0.0.1"  # or a network's servers, "a.example.org:6667,b.example.org:6667"
    port: int = 6667  # the port of a server given without one
    nick: str = ""
    tls: bool = False
    account: str = ""
    always_on: bool = False  # the connect dialog's always-on box, as last ticked (with an account)
    font_size: int = DEFAULT_FONT_SIZE
    theme: str = "light"
    geometry: str = ""

    def normalised(self) -> Settings:
        self.font_size = max(MIN_FONT_SIZE, min(MAX_FONT_SIZE, int(self.font_size)))
        if self.theme not in THEMES:
            self.theme = "light"
        if not 0 < int(self.port) < 65536:
            self.port = 6667
        return self


def config_dir() -> Path:
    override = os.environ.get("SALOTTO_CONFIG_DIR")
    if override:
        return Path(override)
    if sys.platform == "win32":
        return Path(os.environ.get("APPDATA") or Path.home() / "AppData" / "Roaming") / "salotto"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / "salotto"
    return Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "salotto"


def load_settings(path: Path | None = None) -> Settings:
    """The saved settings, or defaults when there are none or the file is unreadable."""
    path = path or config_dir() / SETTINGS_FILE
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return Settings()
    if not isinstance(raw, dict):
        return Settings()
    defaults = Settings()
    values: dict[str, object] = {}
    for f in fields(Settings):
        value = raw.get(f.name, getattr(defaults, f.name))
        expected = type(getattr(defaults, f.name))
        values[f.name] = value if isinstance(value, expected) else getattr(defaults, f.name)
    return Settings(**values).normalised()  # type: ignore[arg-type]


def save_settings(settings: Settings, path: Path | None = None) -> None:
    """Write the settings; a read-only home directory is not worth an error dialog."""
    path = path or config_dir() / SETTINGS_FILE
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(settings), indent=2) + "\n", encoding="utf-8")
        tmp.replace(path)
    except OSError:
        pass
