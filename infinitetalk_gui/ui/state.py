"""Window state that is not an app setting: geometry, splitter, last folders, endpoint choice.

App settings (endpoint, price, silence, size, prompt...) live in core/settings.py, shared with the
CLI. This is the GUI's own memory, kept in an INI file beside them (QSettings writes it
atomically). An explicit file, not QSettings' default location, so the folder follows
platformdirs like every other file of the app.
"""

from __future__ import annotations

from pathlib import Path

from infinitetalk_gui.core import paths
from infinitetalk_gui.qt.compat import QtCore

ENDPOINT_DEMO = "demo"
ENDPOINT_RUNPOD = "runpod"


class UiState:
    def __init__(self, path: Path | None = None) -> None:
        self.path = path or paths.config_dir() / "window.ini"
        self._qs = QtCore.QSettings(str(self.path), QtCore.QSettings.Format.IniFormat)

    def _bytes(self, key: str) -> QtCore.QByteArray | None:
        value = self._qs.value(key)
        return value if isinstance(value, QtCore.QByteArray) and not value.isEmpty() else None

    def geometry(self) -> QtCore.QByteArray | None:
        return self._bytes("window/geometry")

    def set_geometry(self, data: QtCore.QByteArray) -> None:
        self._qs.setValue("window/geometry", data)

    def splitter(self) -> QtCore.QByteArray | None:
        return self._bytes("window/splitter")

    def set_splitter(self, data: QtCore.QByteArray) -> None:
        self._qs.setValue("window/splitter", data)

    def last_dir(self, kind: str) -> str:
        """The folder last used for ``kind`` ("portrait", "voice", "save"), else home."""
        value = self._qs.value(f"folders/{kind}")
        if isinstance(value, str) and value and Path(value).is_dir():
            return value
        return str(Path.home())

    def set_last_dir(self, kind: str, folder: Path) -> None:
        self._qs.setValue(f"folders/{kind}", str(folder))

    def endpoint_choice(self) -> str:
        value = self._qs.value("render/endpoint")
        return value if value in (ENDPOINT_DEMO, ENDPOINT_RUNPOD) else ""

    def set_endpoint_choice(self, choice: str) -> None:
        self._qs.setValue("render/endpoint", choice)

    def sync(self) -> None:
        self._qs.sync()
