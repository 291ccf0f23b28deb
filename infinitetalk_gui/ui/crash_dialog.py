"""Shown when the app hits an error it did not expect: where the details are, what is safe."""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from infinitetalk_gui.qt.compat import QtCore, QtWidgets
from infinitetalk_gui.ui import icons
from infinitetalk_gui.ui.preview import open_folder

log = logging.getLogger(__name__)


class CrashDialog(QtWidgets.QDialog):
    """Plain words first; the technical details sit behind "Show details" for a bug report."""

    QUIT = 2  # exec() result when the user chose to quit

    def __init__(
        self,
        summary: str,
        details: str,
        log_path: Path,
        job_note: str | None = None,
        parent: QtWidgets.QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Something went wrong")
        self.log_path = log_path
        icon = QtWidgets.QLabel()
        icon.setPixmap(icons.standard_icon(self, "SP_MessageBoxCritical").pixmap(48, 48))
        safe = job_note or "Your settings and finished renders are safe."
        self.message = QtWidgets.QLabel(
            "<p style='font-size:12pt'><b>The app ran into a problem it did not expect.</b></p>"
            f"<p>{_escape(summary)}</p><p>{_escape(safe)}</p>"
            f"<p>The details were written to the log file:<br><code>{_escape(str(log_path))}"
            "</code></p><p>You can keep working, or quit and start the app again.</p>"
        )
        self.message.setWordWrap(True)
        self.message.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
        top = QtWidgets.QHBoxLayout()
        top.addWidget(icon, 0, QtCore.Qt.AlignmentFlag.AlignTop)
        top.addWidget(self.message, 1)

        self.details = QtWidgets.QPlainTextEdit(details)
        self.details.setReadOnly(True)
        self.details.setMinimumHeight(160)
        self.details.hide()
        self.details_button = QtWidgets.QPushButton("Show details")
        self.details_button.setCheckable(True)
        self.details_button.toggled.connect(self._toggle_details)
        folder_button = QtWidgets.QPushButton("Open log folder")
        folder_button.clicked.connect(lambda: open_folder(self.log_path))
        copy_button = QtWidgets.QPushButton("Copy details")
        copy_button.clicked.connect(
            lambda: QtWidgets.QApplication.clipboard().setText(self.details.toPlainText())
        )
        self.keep_button = QtWidgets.QPushButton("Keep working")
        self.keep_button.clicked.connect(self.reject)
        self.quit_button = QtWidgets.QPushButton("Quit")
        self.quit_button.clicked.connect(lambda: self.done(self.QUIT))
        self.keep_button.setDefault(True)
        buttons = QtWidgets.QHBoxLayout()
        buttons.addWidget(self.details_button)
        buttons.addWidget(folder_button)
        buttons.addWidget(copy_button)
        buttons.addStretch(1)
        buttons.addWidget(self.quit_button)
        buttons.addWidget(self.keep_button)
        layout = QtWidgets.QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.details)
        layout.addLayout(buttons)
        self.setMinimumWidth(520)

    def _toggle_details(self, shown: bool) -> None:
        self.details.setVisible(shown)
        self.details_button.setText("Hide details" if shown else "Show details")
        self.adjustSize()


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class CrashHandler:
    """A ``sys.excepthook`` for the GUI: log the error, show the dialog, maybe quit.

    ``on_quit`` leaves any running job resumable (the controller shuts down without cancelling).
    A second error while the dialog is open is only logged: one dialog at a time.
    """

    def __init__(
        self,
        log_path: Path,
        *,
        parent: Callable[[], QtWidgets.QWidget | None] = lambda: None,
        job_note: Callable[[], str | None] = lambda: None,
        on_quit: Callable[[], None] = lambda: None,
    ) -> None:
        self.log_path = log_path
        self._parent = parent
        self._job_note = job_note
        self._on_quit = on_quit
        self._showing = False
        self.last_dialog: CrashDialog | None = None

    def __call__(
        self,
        exc_type: type[BaseException],
        exc: BaseException,
        tb: TracebackType | None,
    ) -> None:
        log.critical("unexpected error", exc_info=(exc_type, exc, tb))
        if issubclass(exc_type, KeyboardInterrupt):
            self._on_quit()
            return
        if self._showing or QtWidgets.QApplication.instance() is None:
            return
        self._showing = True
        try:
            details = "".join(traceback.format_exception(exc_type, exc, tb))
            summary = f"{exc_type.__name__}: {exc}" if str(exc) else exc_type.__name__
            dialog = CrashDialog(summary, details, self.log_path, self._safe_note(), self._parent())
            self.last_dialog = dialog
            if dialog.exec() == CrashDialog.QUIT:
                self._on_quit()
        finally:
            self._showing = False

    def _safe_note(self) -> str | None:
        try:
            return self._job_note()
        except Exception:  # the note is a courtesy; never fail the crash dialog for it
            log.exception("crash dialog: job note failed")
            return None
