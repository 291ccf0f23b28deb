"""Recent jobs from the job store: open, re-run, resume, remove; the resume offer at start."""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path

from infinitetalk_gui.core.errors import InfiniteTalkError
from infinitetalk_gui.core.models import Job, JobState
from infinitetalk_gui.core.store import JobStore
from infinitetalk_gui.qt.compat import QtCore, QtWidgets, Signal
from infinitetalk_gui.qt.models import (
    HIST_OUTPUT,
    HIST_PORTRAIT,
    HIST_VOICE,
    JobHistoryModel,
    fit_history_columns,
)
from infinitetalk_gui.ui import icons
from infinitetalk_gui.ui.widgets import empty_state_label

log = logging.getLogger(__name__)


def can_resume(job: Job) -> bool:
    """Unfinished, failed, cancelled or timed-out jobs can be finished; completed ones not."""
    return job.state is not JobState.COMPLETED


def describe_job(job: Job) -> str:
    """One line a person recognises a job by."""
    done = f"{job.chunks_done} of {job.chunks_total} chunks done" if job.chunks else "not started"
    when = datetime.fromtimestamp(job.created_at).strftime("%d %b %H:%M") if job.created_at else ""
    return (
        f"{Path(job.audio_path).name} with {Path(job.image_path).name} → "
        f"{Path(job.output_path).name} ({done}{', started ' + when if when else ''})"
    )


class HistoryPanel(QtWidgets.QWidget):
    openRequested = Signal(object)  # Job: show its output in the preview
    rerunRequested = Signal(object)  # Job: put its inputs and settings into the form
    resumeRequested = Signal(object)  # Job: render only what is missing

    def __init__(self, store: JobStore, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self._store = store
        self._busy = False
        self.model = JobHistoryModel(store, self)
        self.view = QtWidgets.QTableView()
        self.view.setModel(self.model)
        self.view.setSelectionBehavior(QtWidgets.QAbstractItemView.SelectionBehavior.SelectRows)
        self.view.setSelectionMode(QtWidgets.QAbstractItemView.SelectionMode.SingleSelection)
        self.view.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        self.view.setAlternatingRowColors(True)
        self.view.setShowGrid(False)
        self.view.verticalHeader().hide()
        self.view.setWordWrap(False)
        self.view.setTextElideMode(QtCore.Qt.TextElideMode.ElideMiddle)
        header = self.view.horizontalHeader()
        header.setHighlightSections(False)
        fit_history_columns(self.view, self.model)
        for column in (HIST_PORTRAIT, HIST_VOICE, HIST_OUTPUT):
            header.setSectionResizeMode(column, QtWidgets.QHeaderView.ResizeMode.Stretch)
        self.view.doubleClicked.connect(lambda _index: self.open_selected())

        self.open_button = QtWidgets.QPushButton("Open")
        self.open_button.setToolTip("Play the finished video in the Preview tab")
        self.rerun_button = QtWidgets.QPushButton("Re-run")
        self.rerun_button.setToolTip("Put this job's portrait, voice and settings into the form")
        self.resume_button = QtWidgets.QPushButton("Resume")
        self.resume_button.setToolTip("Finish this job: only the missing chunks are rendered")
        self.remove_button = QtWidgets.QPushButton("Remove from list")
        self.remove_button.setToolTip("Forget this job; its video file is kept")
        self.open_button.clicked.connect(self.open_selected)
        self.rerun_button.clicked.connect(self.rerun_selected)
        self.resume_button.clicked.connect(self.resume_selected)
        self.remove_button.clicked.connect(self.remove_selected)
        self.message = QtWidgets.QLabel()
        self.message.setWordWrap(True)
        self.message.hide()

        buttons = QtWidgets.QHBoxLayout()
        buttons.addWidget(self.open_button)
        buttons.addWidget(self.rerun_button)
        buttons.addWidget(self.resume_button)
        buttons.addStretch(1)
        buttons.addWidget(self.remove_button)

        self.empty_label = empty_state_label(
            "No renders yet",
            "Every render you start is listed here, so you can play it again,<br>"
            "re-run it with other settings, or finish one that was interrupted.",
        )
        list_page = QtWidgets.QWidget()
        list_layout = QtWidgets.QVBoxLayout(list_page)
        list_layout.setContentsMargins(0, 0, 0, 0)
        list_layout.addWidget(self.view, 1)
        list_layout.addWidget(self.message)
        list_layout.addLayout(buttons)
        self.stack = QtWidgets.QStackedWidget()
        self.stack.addWidget(self.empty_label)
        self.stack.addWidget(list_page)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.stack)

        self.view.selectionModel().selectionChanged.connect(lambda *_: self._update_buttons())
        self.model.modelReset.connect(self._update_page)
        self.model.rowsInserted.connect(self._update_page)
        self.model.rowsRemoved.connect(self._update_page)
        self.refresh()

    # -- data ----------------------------------------------------------------------------------

    def refresh(self) -> None:
        selected = self.selected_job()
        try:
            self.model.refresh()
        except InfiniteTalkError as error:
            self._say(f"The job list cannot be read: {error}", error=True)
            return
        if selected is not None:
            row = self.model.row_of(selected.id)
            if row is not None:
                self.view.selectRow(row)
        self._update_page()

    def update_job(self, job: Job) -> None:
        self.model.update_job(job)
        self._update_buttons()

    def set_busy(self, busy: bool) -> None:
        """While a render runs, nothing else may start (one job drives at a time here)."""
        self._busy = busy
        self._update_buttons()

    def selected_job(self) -> Job | None:
        rows = self.view.selectionModel().selectedRows()
        return self.model.job_at(rows[0].row()) if rows else None

    def select_job(self, job_id: str) -> None:
        row = self.model.row_of(job_id)
        if row is not None:
            self.view.selectRow(row)

    # -- actions -------------------------------------------------------------------------------

    def open_selected(self) -> None:
        job = self.selected_job()
        if job is None:
            return
        if job.state is JobState.COMPLETED and Path(job.output_path).is_file():
            self.openRequested.emit(job)
        elif job.state is JobState.COMPLETED:
            self._say(f"{job.output_path} is no longer there: it was moved or deleted.", error=True)
        else:
            reason = job.error or "it did not finish"
            self._say(
                f"This job has no video yet ({reason}). Resume renders only the missing chunks.",
                error=True,
            )

    def rerun_selected(self) -> None:
        job = self.selected_job()
        if job is not None and not self._busy:
            self.rerunRequested.emit(job)

    def resume_selected(self) -> None:
        job = self.selected_job()
        if job is not None and not self._busy and can_resume(job):
            self.resumeRequested.emit(job)

    def remove_selected(self) -> None:
        job = self.selected_job()
        if job is None:
            return
        try:
            self._store.delete(job.id)
        except InfiniteTalkError as error:
            self._say(str(error), error=True)
            return
        self._say(f"Removed {Path(job.output_path).name} from the list; files are untouched.")
        self.refresh()

    # -- look ----------------------------------------------------------------------------------

    def _say(self, text: str, *, error: bool = False) -> None:
        self.message.setStyleSheet(f"color: {icons.ERROR};" if error else "")
        self.message.setText(text)
        self.message.show()

    def _update_page(self) -> None:
        self.stack.setCurrentIndex(1 if self.model.rowCount() else 0)
        self._update_buttons()

    def _update_buttons(self) -> None:
        job = self.selected_job()
        self.open_button.setEnabled(job is not None and job.state is JobState.COMPLETED)
        self.rerun_button.setEnabled(job is not None and not self._busy)
        self.resume_button.setEnabled(job is not None and not self._busy and can_resume(job))
        running = job is not None and not job.state.terminal and self._busy
        self.remove_button.setEnabled(job is not None and not running)


def offer_resume(parent: QtWidgets.QWidget, jobs: list[Job]) -> Job | None:
    """Ask whether to finish the most recent interrupted job; the job to resume, or None."""
    if not jobs:
        return None
    job = jobs[0]
    box = QtWidgets.QMessageBox(parent)
    box.setIcon(QtWidgets.QMessageBox.Icon.Question)
    box.setWindowTitle("Unfinished render")
    box.setText("A render did not finish last time.")
    more = (
        f"\n\n{len(jobs) - 1} more unfinished job(s) are in the History tab."
        if len(jobs) > 1
        else ""
    )
    box.setInformativeText(
        f"{describe_job(job)}\n\nResume it now? Finished chunks are kept; only the missing "
        f"ones are rendered.{more}"
    )
    resume = box.addButton("Resume", QtWidgets.QMessageBox.ButtonRole.AcceptRole)
    box.addButton("Not now", QtWidgets.QMessageBox.ButtonRole.RejectRole)
    box.setDefaultButton(resume)
    box.exec()
    return job if box.clickedButton() is resume else None
