"""The About box: what this is and the versions of the app, Qt and ffmpeg in use."""

from __future__ import annotations

import platform

from infinitetalk_gui import __version__
from infinitetalk_gui.core import paths, secrets
from infinitetalk_gui.core.errors import ConfigError
from infinitetalk_gui.core.ffmpeg import find_ffmpeg
from infinitetalk_gui.qt.compat import PYSIDE_VERSION, QT_VERSION, QtCore, QtWidgets
from infinitetalk_gui.ui import icons
from infinitetalk_gui.ui.text import ffmpeg_version_line


class AboutDialog(QtWidgets.QDialog):
    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("About InfiniteTalk")
        logo = QtWidgets.QLabel()
        logo.setPixmap(icons.app_icon().pixmap(96, 96))
        title = QtWidgets.QLabel(
            f"<p style='font-size:15pt'><b>InfiniteTalk</b> {__version__}</p>"
            "<p>Lip-synced talking-head videos from a portrait and a voice recording, "
            "rendered on your own RunPod InfiniteTalk endpoint (or on this computer in "
            "demo mode).</p><p>MIT licence.</p>"
        )
        title.setWordWrap(True)
        top = QtWidgets.QHBoxLayout()
        top.addWidget(logo, 0, QtCore.Qt.AlignmentFlag.AlignTop)
        top.addWidget(title, 1)

        self.ffmpeg_label = QtWidgets.QLabel("checking…")
        form = QtWidgets.QFormLayout()
        form.addRow("App", QtWidgets.QLabel(__version__))
        form.addRow("Qt", QtWidgets.QLabel(f"{QT_VERSION} (PySide6 {PYSIDE_VERSION})"))
        form.addRow("Python", QtWidgets.QLabel(platform.python_version()))
        form.addRow("ffmpeg", self.ffmpeg_label)
        form.addRow(
            "Keyring", QtWidgets.QLabel(secrets.backend_name() or "none (session-only key)")
        )
        log_label = QtWidgets.QLabel(str(paths.log_file()))
        log_label.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
        form.addRow("Log file", log_label)
        for row in range(form.rowCount()):
            item = form.itemAt(row, QtWidgets.QFormLayout.ItemRole.FieldRole)
            widget = item.widget() if item is not None else None
            if isinstance(widget, QtWidgets.QLabel):
                widget.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)

        buttons = QtWidgets.QDialogButtonBox(QtWidgets.QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout = QtWidgets.QVBoxLayout(self)
        layout.addLayout(top)
        layout.addLayout(form)
        layout.addWidget(buttons)
        self.setMinimumWidth(480)

        # `ffmpeg -version` of a large static binary takes a moment: ask it without blocking.
        self._process = QtCore.QProcess(self)
        self._process.finished.connect(self._ffmpeg_answered)
        self._process.errorOccurred.connect(self._ffmpeg_failed)
        try:
            self._ffmpeg = find_ffmpeg()
        except ConfigError as error:
            self._ffmpeg = ""
            self.ffmpeg_label.setText(str(error))
        else:
            self._process.start(self._ffmpeg, ["-hide_banner", "-version"])

    def _ffmpeg_answered(self, _code: int, _status: QtCore.QProcess.ExitStatus) -> None:
        output = bytes(self._process.readAllStandardOutput().data()).decode("utf-8", "replace")
        self.ffmpeg_label.setText(ffmpeg_version_line(output))
        self.ffmpeg_label.setToolTip(self._ffmpeg)  # the full path is long: on hover

    def _ffmpeg_failed(self, _error: QtCore.QProcess.ProcessError) -> None:
        self.ffmpeg_label.setText(f"cannot run {self._ffmpeg}")

    def done(self, result: int) -> None:
        if self._process.state() != QtCore.QProcess.ProcessState.NotRunning:
            self._process.kill()
            self._process.waitForFinished(1000)
        super().done(result)
