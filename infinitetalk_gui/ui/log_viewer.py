"""The app's log file in a window: follows new lines, copy, open the folder."""

from __future__ import annotations

from pathlib import Path

from infinitetalk_gui.qt.compat import QtCore, QtGui, QtWidgets
from infinitetalk_gui.ui.preview import open_folder

TAIL_BYTES = 512 * 1024  # the end of the log is what matters; the file rotates at 2 MB anyway


def read_tail(path: Path, limit: int = TAIL_BYTES) -> str:
    """The last ``limit`` bytes of a text file, starting at a line boundary."""
    with path.open("rb") as handle:
        handle.seek(0, 2)
        size = handle.tell()
        handle.seek(max(0, size - limit))
        data = handle.read()
    if size > limit:
        newline = data.find(b"\n")
        data = data[newline + 1 :] if newline >= 0 else data
    return data.decode("utf-8", "replace")


class LogViewer(QtWidgets.QDialog):
    def __init__(self, log_path: Path, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.log_path = log_path
        self.setWindowTitle("Log")
        self.resize(860, 520)
        self.text = QtWidgets.QPlainTextEdit()
        self.text.setReadOnly(True)
        self.text.setLineWrapMode(QtWidgets.QPlainTextEdit.LineWrapMode.NoWrap)
        self.text.setFont(QtGui.QFontDatabase.systemFont(QtGui.QFontDatabase.SystemFont.FixedFont))
        self.path_label = QtWidgets.QLabel(str(log_path))
        self.path_label.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
        self.follow_check = QtWidgets.QCheckBox("Follow new lines")
        self.follow_check.setChecked(True)
        folder_button = QtWidgets.QPushButton("Open log folder")
        folder_button.clicked.connect(lambda: open_folder(self.log_path))
        copy_button = QtWidgets.QPushButton("Copy all")
        copy_button.clicked.connect(self.copy_all)
        close_button = QtWidgets.QPushButton("Close")
        close_button.clicked.connect(self.accept)
        buttons = QtWidgets.QHBoxLayout()
        buttons.addWidget(self.follow_check)
        buttons.addStretch(1)
        buttons.addWidget(folder_button)
        buttons.addWidget(copy_button)
        buttons.addWidget(close_button)
        layout = QtWidgets.QVBoxLayout(self)
        layout.addWidget(self.path_label)
        layout.addWidget(self.text, 1)
        layout.addLayout(buttons)

        # Reload when the file changes, at most a few times a second.
        self._reload_timer = QtCore.QTimer(self)
        self._reload_timer.setSingleShot(True)
        self._reload_timer.setInterval(250)
        self._reload_timer.timeout.connect(self.reload)
        self._watcher = QtCore.QFileSystemWatcher(self)
        self._watcher.fileChanged.connect(lambda _p: self._reload_timer.start())
        self._watcher.directoryChanged.connect(lambda _p: self._reload_timer.start())
        if log_path.parent.is_dir():
            self._watcher.addPath(str(log_path.parent))
        self.reload()

    def reload(self) -> None:
        if self.log_path.is_file() and str(self.log_path) not in self._watcher.files():
            self._watcher.addPath(str(self.log_path))  # the file exists once something is logged
        try:
            content = read_tail(self.log_path)
        except FileNotFoundError:
            content = ""
        except OSError as error:
            content = f"The log file cannot be read: {error.strerror or error}."
        if not content:
            content = "Nothing has been logged yet."
        bar = self.text.verticalScrollBar()
        at_end = bar.value() >= bar.maximum() - 2
        previous = bar.value()
        self.text.setPlainText(content)
        if self.follow_check.isChecked() or at_end:
            bar.setValue(bar.maximum())
        else:
            bar.setValue(previous)

    def copy_all(self) -> None:
        QtWidgets.QApplication.clipboard().setText(self.text.toPlainText())
