"""Table models for the chunk table and the job history, and the chunk progress bar delegate.

The chunk model tracks a job through snapshots handed over by the controller. It announces only
the cells that changed (``dataChanged`` per contiguous run of columns of one row), so a view
repaints a cell, not the table. Chunks being rendered get an estimated progress, refreshed by a
timer on the GUI thread, because the endpoint reports no progress of its own.
"""

from __future__ import annotations

import builtins
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from infinitetalk_gui.core.models import Chunk, Job, JobState, RenderSettings
from infinitetalk_gui.qt.compat import QtCore, QtGui, QtWidgets

Qt = QtCore.Qt
ItemRole = Qt.ItemDataRole
_INVALID = QtCore.QModelIndex()
Index = QtCore.QModelIndex | QtCore.QPersistentModelIndex

# Columns of the chunk table.
COL_INDEX = 0
COL_RANGE = 1
COL_DURATION = 2
COL_STATE = 3
COL_ATTEMPT = 4
COL_QUEUE = 5
COL_GPU = 6
COL_PROGRESS = 7
CHUNK_COLUMNS = 8
CHUNK_HEADERS = ("#", "Time range", "Length", "State", "Attempt", "Queue", "GPU time", "Progress")

PROGRESS_ROLE = int(ItemRole.UserRole) + 1  # int 0-100, or None when there is no progress to show
CHUNK_ROLE = int(ItemRole.UserRole) + 2  # the Chunk itself (a snapshot), any column

# What a rendering chunk is expected to take when no chunk of the job has finished yet.
DEFAULT_EXEC_S = 60.0
# How often estimated progress and queue waits are refreshed while chunks are live.
TICK_MS = 500

STATE_LABELS: dict[JobState, str] = {
    JobState.IN_QUEUE: "queued",
    JobState.IN_PROGRESS: "rendering",
    JobState.COMPLETED: "done",
    JobState.FAILED: "failed",
    JobState.CANCELLED: "cancelled",
    JobState.TIMED_OUT: "timed out",
}
# Readable on light and dark palettes alike.
STATE_COLOURS: dict[JobState, str] = {
    JobState.IN_QUEUE: "#8a8f98",
    JobState.IN_PROGRESS: "#2d7fd3",
    JobState.COMPLETED: "#2e9d4f",
    JobState.FAILED: "#d64541",
    JobState.CANCELLED: "#b7791f",
    JobState.TIMED_OUT: "#d4691e",
}
# Computed once: combining enum flags is slow Python, and views ask for alignment per cell.
_ALIGN_NUMBER = int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
_ALIGN_TEXT = int(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
_ALIGN_CENTRE = int(Qt.AlignmentFlag.AlignCenter)
_NUMERIC_COLUMNS = frozenset({COL_INDEX, COL_DURATION, COL_ATTEMPT, COL_QUEUE, COL_GPU})
_LIVE_COLUMNS = (COL_QUEUE, COL_PROGRESS)  # the cells that change with time alone


def format_clock(ms: int) -> str:
    """``m:ss.s`` (or ``h:mm:ss.s``): a position in the audio."""
    tenths = round(ms / 100)
    seconds, tenth = divmod(tenths, 10)
    minutes, second = divmod(seconds, 60)
    hours, minute = divmod(minutes, 60)
    if hours:
        return f"{hours}:{minute:02d}:{second:02d}.{tenth}"
    return f"{minute}:{second:02d}.{tenth}"


def format_seconds(ms: float) -> str:
    """A span for a person: ``8.4 s``, ``2 min 05 s``, ``1 h 02 min``."""
    seconds = ms / 1000
    if seconds < 60:
        return f"{seconds:.1f} s"
    whole = round(seconds)
    minutes, second = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes} min {second:02d} s"
    hours, minute = divmod(minutes, 60)
    return f"{hours} h {minute:02d} min"


def chunk_label(chunk: Chunk) -> str:
    """The state word shown for a chunk: a queued chunk not yet sent is "waiting"."""
    if chunk.state is JobState.IN_QUEUE and chunk.runpod_id is None:
        return "waiting"
    return STATE_LABELS[chunk.state]


class ChunkTableModel(QtCore.QAbstractTableModel):
    """One row per chunk of the current job. Feed it with ``set_job`` and ``update_chunk``."""

    def __init__(
        self,
        parent: QtCore.QObject | None = None,
        *,
        clock: Callable[[], float] = time.time,
        tick_ms: int = TICK_MS,
    ) -> None:
        super().__init__(parent)
        self._clock = clock
        self._job: Job | None = None
        self._chunks: list[Chunk] = []
        # (index, attempt) -> wall time when this model first saw the chunk rendering, used
        # when the endpoint has not said how long it queued.
        self._started: dict[tuple[int, int], float] = {}
        self._live_cache: dict[tuple[int, int], Any] = {}
        self._icons: dict[JobState, QtGui.QIcon] = {}
        self._timer = QtCore.QTimer(self)
        self._timer.setInterval(tick_ms)
        self._timer.timeout.connect(self.refresh_live)

    # -- feeding ----------------------------------------------------------------------------

    @property
    def job(self) -> Job | None:
        return self._job

    def clock(self) -> float:
        """The wall clock this model measures waits with (a test may pass its own)."""
        return self._clock()

    def set_job(self, job: Job | None) -> None:
        """Show this job's chunks (a model reset). ``None`` empties the table."""
        same_job = job is not None and self._job is not None and job.id == self._job.id
        self.beginResetModel()
        self._job = job
        self._chunks = list(job.chunks) if job is not None else []
        if not same_job:
            self._started.clear()
        self._live_cache.clear()
        for row, chunk in enumerate(self._chunks):
            self._note_started(chunk)
            self._remember_live(row)
        self.endResetModel()
        self._update_timer()

    def update_chunk(self, job: Job, index: int) -> None:
        """One chunk changed: emit ``dataChanged`` for just its cells whose content changed."""
        if (
            self._job is None
            or job.id != self._job.id
            or len(job.chunks) != len(self._chunks)
            or not 0 <= index < len(self._chunks)
        ):
            self.set_job(job)  # the chunk list itself changed: a reset is the honest signal
            return
        old_values = self._row_values(index)
        old_ratio = self._exec_ratio()
        self._job = job
        # Only this row: a coalesced batch sends one snapshot for several changed chunks, each
        # with its own call, and each call must find its row's old values to compare.
        self._chunks[index] = job.chunks[index]
        self._note_started(self._chunks[index])
        new_values = self._row_values(index)
        self._remember_live(index, new_values)
        changed = [c for c in range(CHUNK_COLUMNS) if old_values[c] != new_values[c]]
        self._emit_runs(index, changed)
        if self._exec_ratio() != old_ratio:
            # A chunk finished: the expected time of the rendering ones moved.
            self.refresh_live()
        self._update_timer()

    def refresh_live(self) -> None:
        """Re-estimate the time-driven cells (progress, queue wait) of live rows."""
        for row, chunk in enumerate(self._chunks):
            if chunk.state.terminal:
                continue
            for column in _LIVE_COLUMNS:
                value = self._values(chunk, column)
                if self._live_cache.get((row, column)) != value:
                    self._live_cache[(row, column)] = value
                    index = self.index(row, column)
                    self.dataChanged.emit(index, index, [])

    def _remember_live(self, row: int, values: Sequence[Any] | None = None) -> None:
        # What the view was last told about the time-driven cells, so ticks signal changes only.
        chunk = self._chunks[row]
        for column in _LIVE_COLUMNS:
            value = values[column] if values is not None else self._values(chunk, column)
            self._live_cache[(row, column)] = value

    # -- estimates --------------------------------------------------------------------------

    def chunk_at(self, row: int) -> Chunk | None:
        return self._chunks[row] if 0 <= row < len(self._chunks) else None

    def progress(self, chunk: Chunk) -> int | None:
        """0-100 for the progress bar; None for a chunk that failed or was stopped."""
        if chunk.state is JobState.COMPLETED:
            return 100
        if chunk.state is JobState.IN_QUEUE:
            return 0
        if chunk.state is not JobState.IN_PROGRESS:
            return None
        started = self._exec_start(chunk)
        if started is None:
            return 0
        elapsed = max(0.0, self._clock() - started)
        fraction = elapsed / self.expected_exec_s(chunk)
        return max(0, min(99, int(fraction * 100)))  # 100 only once the video is back

    def expected_exec_s(self, chunk: Chunk) -> float:
        """GPU seconds this chunk should take: finished chunks' pace, scaled to its length."""
        ratio = self._exec_ratio()
        if ratio is None:
            return DEFAULT_EXEC_S
        return max(1.0, ratio * chunk.duration_ms / 1000)

    def overall_progress(self) -> float:
        """The job's progress, 0.0-1.0, counting a rendering chunk by its estimate."""
        if not self._chunks:
            return 0.0
        total_ms = sum(c.duration_ms for c in self._chunks) or 1
        done = 0.0
        for chunk in self._chunks:
            value = self.progress(chunk) or 0
            done += chunk.duration_ms * value / 100
        return done / total_ms

    def eta_seconds(self) -> float | None:
        """Seconds of rendering left (queue waits excluded), or None before any estimate."""
        if self._job is None or not self._chunks:
            return None
        left = [c for c in self._chunks if c.state is not JobState.COMPLETED]
        if not left:
            return 0.0
        remaining = 0.0
        for chunk in left:
            value = self.progress(chunk) or 0
            remaining += self.expected_exec_s(chunk) * (1 - value / 100)
        lanes = max(1, min(self._job.settings.concurrency, len(left)))
        return remaining / lanes

    def _exec_ratio(self) -> float | None:
        """Mean GPU seconds per second of audio over this job's finished chunks."""
        ratios = [
            c.exec_ms / c.duration_ms
            for c in self._chunks
            if c.state is JobState.COMPLETED and c.exec_ms and c.duration_ms > 0
        ]
        return sum(ratios) / len(ratios) if ratios else None

    def _exec_start(self, chunk: Chunk) -> float | None:
        if chunk.submitted_at is not None and chunk.queue_ms is not None:
            return chunk.submitted_at + chunk.queue_ms / 1000
        return self._started.get((chunk.index, chunk.attempt))

    def _note_started(self, chunk: Chunk) -> None:
        if chunk.state is JobState.IN_PROGRESS:
            self._started.setdefault((chunk.index, chunk.attempt), self._clock())

    def _update_timer(self) -> None:
        live = any(not c.state.terminal and c.runpod_id is not None for c in self._chunks)
        if live and not self._timer.isActive():
            self._timer.start()
        elif not live and self._timer.isActive():
            self._timer.stop()

    # -- cells ------------------------------------------------------------------------------

    def _row_values(self, row: int) -> list[Any]:
        chunk = self._chunks[row]
        return [self._values(chunk, column) for column in range(CHUNK_COLUMNS)]

    def _values(self, chunk: Chunk, column: int) -> Any:
        """What a cell paints, in one comparable value (to find the changed cells).

        The row-wide tooltip counts for the state cell only: views fetch tooltips when the
        pointer hovers, so a changed tooltip needs no repaint of the other cells.
        """
        return (
            self._display(chunk, column),
            chunk.state if column == COL_STATE else None,
            self._tooltip(chunk) if column == COL_STATE else None,
            self.progress(chunk) if column == COL_PROGRESS else None,
        )

    def _display(self, chunk: Chunk, column: int) -> str:
        if column == COL_INDEX:
            return str(chunk.index + 1)
        if column == COL_RANGE:
            return f"{format_clock(chunk.start_ms)} – {format_clock(chunk.end_ms)}"
        if column == COL_DURATION:
            return format_seconds(chunk.duration_ms)
        if column == COL_STATE:
            return chunk_label(chunk)
        if column == COL_ATTEMPT:
            return str(chunk.attempt) if chunk.attempt else ""
        if column == COL_QUEUE:
            if chunk.queue_ms is not None:
                return format_seconds(chunk.queue_ms)
            if chunk.state is JobState.IN_QUEUE and chunk.submitted_at is not None:
                waited = max(0.0, self._clock() - chunk.submitted_at) * 1000
                return f"waiting {format_seconds(waited)}"
            return ""
        if column == COL_GPU:
            return format_seconds(chunk.exec_ms) if chunk.exec_ms is not None else ""
        if column == COL_PROGRESS:
            value = self.progress(chunk)
            return "" if value is None else f"{value} %"
        return ""

    def _tooltip(self, chunk: Chunk) -> str:
        if chunk.state in (JobState.FAILED, JobState.TIMED_OUT) and chunk.error:
            return f"Chunk {chunk.index + 1} {STATE_LABELS[chunk.state]}: {chunk.error}"
        if chunk.state is JobState.IN_QUEUE and chunk.runpod_id is not None:
            return (
                f"Chunk {chunk.index + 1} is waiting for a GPU worker on the endpoint. "
                "When no worker is running, the first chunk waits for one to start "
                "(a cold start can take a few minutes)."
            )
        if chunk.state is JobState.IN_QUEUE:
            return f"Chunk {chunk.index + 1} will be sent when a slot frees up."
        if chunk.state is JobState.IN_PROGRESS:
            return (
                f"Chunk {chunk.index + 1} is rendering (attempt {chunk.attempt}); progress "
                f"is estimated from an expected {self.expected_exec_s(chunk):.0f} s."
            )
        if chunk.state is JobState.CANCELLED:
            return f"Chunk {chunk.index + 1} was cancelled."
        return ""

    def _state_icon(self, state: JobState) -> QtGui.QIcon:
        icon = self._icons.get(state)
        if icon is None:
            pixmap = QtGui.QPixmap(12, 12)
            pixmap.fill(Qt.GlobalColor.transparent)
            painter = QtGui.QPainter(pixmap)
            painter.setRenderHint(QtGui.QPainter.RenderHint.Antialiasing)
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(QtGui.QColor(STATE_COLOURS[state]))
            painter.drawEllipse(1, 1, 10, 10)
            painter.end()
            icon = QtGui.QIcon(pixmap)
            self._icons[state] = icon
        return icon

    def _emit_runs(self, row: int, columns: Sequence[int]) -> None:
        """One dataChanged per contiguous run of changed columns in this row."""
        start = previous = None
        for column in [*columns, None]:
            if column is not None and previous is not None and column == previous + 1:
                previous = column
                continue
            if start is not None and previous is not None:
                self.dataChanged.emit(self.index(row, start), self.index(row, previous), [])
            start = previous = column

    # -- QAbstractTableModel ----------------------------------------------------------------

    def rowCount(self, parent: Index = _INVALID) -> int:
        return 0 if parent.isValid() else len(self._chunks)

    def columnCount(self, parent: Index = _INVALID) -> int:
        return 0 if parent.isValid() else CHUNK_COLUMNS

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = ItemRole.DisplayRole
    ) -> Any:
        if orientation == Qt.Orientation.Horizontal and 0 <= section < CHUNK_COLUMNS:
            if role == ItemRole.DisplayRole:
                return CHUNK_HEADERS[section]
            if role == ItemRole.TextAlignmentRole and section in _NUMERIC_COLUMNS:
                return _ALIGN_NUMBER
        return None

    def data(self, index: Index, role: int = ItemRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._chunks):
            return None
        chunk = self._chunks[index.row()]
        column = index.column()
        if role == ItemRole.DisplayRole:
            return self._display(chunk, column)
        if role == ItemRole.ToolTipRole:
            return self._tooltip(chunk) or None
        if role == ItemRole.ForegroundRole and column == COL_STATE:
            return QtGui.QBrush(QtGui.QColor(STATE_COLOURS[chunk.state]))
        if role == ItemRole.DecorationRole and column == COL_STATE:
            return self._state_icon(chunk.state)
        if role == ItemRole.TextAlignmentRole:
            if column in _NUMERIC_COLUMNS:
                return _ALIGN_NUMBER
            return _ALIGN_TEXT
        if role == PROGRESS_ROLE and column == COL_PROGRESS:
            return self.progress(chunk)
        if role == CHUNK_ROLE:
            return chunk
        return None

    def roleNames(self) -> dict[int, QtCore.QByteArray]:
        names = dict(super().roleNames())
        names[PROGRESS_ROLE] = QtCore.QByteArray(b"progress")
        names[CHUNK_ROLE] = QtCore.QByteArray(b"chunk")
        return names


class ProgressBarDelegate(QtWidgets.QStyledItemDelegate):
    """Draws ``PROGRESS_ROLE`` as a flat bar in the chunk's state colour; text where there is none.

    Painted with plain QPainter fills rather than the style's progress bar: the style's
    gradients cost milliseconds per cell, and these cells repaint twice a second while chunks
    render.
    """

    def paint(
        self,
        painter: QtGui.QPainter,
        option: QtWidgets.QStyleOptionViewItem,
        index: Index,
    ) -> None:
        value = index.data(PROGRESS_ROLE)
        if value is None:
            super().paint(painter, option, index)
            return
        widget = option.widget
        style = widget.style() if widget is not None else QtWidgets.QApplication.style()
        view_option = QtWidgets.QStyleOptionViewItem(option)
        self.initStyleOption(view_option, index)
        view_option.text = ""
        # The row's selection/hover background first, then the bar inside the cell.
        style.drawPrimitive(
            QtWidgets.QStyle.PrimitiveElement.PE_PanelItemViewItem, view_option, painter, widget
        )
        chunk = index.data(CHUNK_ROLE)
        colour = QtGui.QColor(
            STATE_COLOURS[chunk.state if isinstance(chunk, Chunk) else JobState.IN_PROGRESS]
        )
        palette = option.palette
        track = option.rect.adjusted(4, 4, -4, -4)
        painter.save()
        painter.setRenderHint(QtGui.QPainter.RenderHint.Antialiasing, False)
        painter.fillRect(track, palette.color(QtGui.QPalette.ColorRole.Midlight))
        filled = QtCore.QRect(track)
        filled.setWidth(round(track.width() * max(0, min(100, int(value))) / 100))
        painter.fillRect(filled, colour)
        painter.setPen(palette.color(QtGui.QPalette.ColorRole.Mid))
        painter.drawRect(track.adjusted(0, 0, -1, -1))
        painter.setPen(palette.color(QtGui.QPalette.ColorRole.Text))
        painter.drawText(track, _ALIGN_CENTRE, f"{int(value)} %")
        painter.restore()

    def sizeHint(self, option: QtWidgets.QStyleOptionViewItem, index: Index) -> QtCore.QSize:
        hint = super().sizeHint(option, index)
        return QtCore.QSize(max(hint.width(), 90), hint.height())


def widest_sample_job(now: float) -> Job:
    """A job whose rows hold the widest text each column shows in a usual job (a voice of up
    to an hour, chunks of up to two minutes, waits and GPU times under ten minutes), one row
    per state: for sizing the columns and warming up. Longer texts are elided (the columns
    can be widened by hand)."""
    rows: list[tuple[JobState, str | None]] = [
        (JobState.IN_QUEUE, None),  # "waiting" to be sent
        *((state, "sample") for state in JobState),
    ]
    chunks = [
        Chunk(
            index=998 - len(rows) + row,  # three-digit numbers: up to chunk 999
            start_ms=3_480_100,
            end_ms=3_599_900,  # 58:00.1 – 59:59.9, 2 min 00 s
            state=state,
            attempt=10,
            runpod_id=runpod_id,
            queue_ms=None if state is JobState.IN_QUEUE else 599_000,
            exec_ms=599_000 if state is JobState.COMPLETED else None,  # 9 min 59 s
            error="sample" if state is JobState.FAILED else None,
            submitted_at=now - 599,  # "waiting 9 min 59 s"
        )
        for row, (state, runpod_id) in enumerate(rows)
    ]
    return Job(
        id="sample",
        image_path="",
        audio_path="",
        output_path="",
        settings=RenderSettings(endpoint_url=""),
        chunks=chunks,
    )


def fit_chunk_columns(view: QtWidgets.QTableView, model: ChunkTableModel) -> None:
    """Size the chunk table's columns once, for the widest text each can show.

    Not ``ResizeToContents``: that re-measures every row of a column on every ``dataChanged``,
    hundreds of ``data()`` calls through Python per chunk update on a long job, all on the
    GUI thread (``bench/bench_gui_stall.py`` measured 30-60 ms per update with a few rows).
    The columns stay resizable by hand.
    """
    keep = model.job
    model.set_job(widest_sample_job(model.clock()))
    view.resizeColumnsToContents()
    model.set_job(keep)


def warm_up_chunk_table() -> None:
    """Paint a chunk table off screen once, with a row in every state, and throw it away.

    PySide6 creates its Python types and their enums (QStyle, QPainter, QStyleOption, QIcon,
    QPalette...) lazily, the first time Python code touches them: each costs from one to a few
    tens of milliseconds of GUI-thread time. Left alone, the first rows of the first job pay
    all of it at once mid-render (a 60 ms stall in ``bench/bench_gui_stall.py``). Called at
    start-up, before the window shows, it costs the same once, when nobody is waiting.
    """
    view = QtWidgets.QTableView()
    model = ChunkTableModel(view)
    view.setModel(model)
    view.setItemDelegateForColumn(COL_PROGRESS, ProgressBarDelegate(view))
    sample = widest_sample_job(model.clock())
    model.set_job(sample)
    view.resize(1000, 40 + 30 * len(sample.chunks))
    view.selectRow(0)  # the selected row's colours too
    view.grab()
    for row in range(len(sample.chunks)):
        for column in range(CHUNK_COLUMNS):
            model.data(model.index(row, column), ItemRole.ToolTipRole)
    model.set_job(None)  # stops its timer; the view and model go with this frame


class JobLister(Protocol):
    """What the history model needs from the job store (core.store.JobStore fits)."""

    def list(self, limit: int | None = 50) -> builtins.list[Job]: ...


# Columns of the job history.
HIST_STATE = 0
HIST_DATE = 1
HIST_PORTRAIT = 2
HIST_VOICE = 3
HIST_OUTPUT = 4
HISTORY_COLUMNS = 5
HISTORY_HEADERS = ("State", "Date", "Portrait", "Voice", "Output")
JOB_ROLE = int(ItemRole.UserRole) + 3  # the Job itself, any column


class JobHistoryModel(QtCore.QAbstractTableModel):
    """Recent jobs from the store, newest first. ``refresh()`` re-reads the store."""

    def __init__(
        self, store: JobLister, parent: QtCore.QObject | None = None, *, limit: int = 200
    ) -> None:
        super().__init__(parent)
        self._store = store
        self._limit = limit
        self._jobs: list[Job] = []

    def refresh(self) -> None:
        """Re-read the store (one indexed query: fast enough for the GUI thread)."""
        self.set_jobs(self._store.list(self._limit))

    def set_jobs(self, jobs: Sequence[Job]) -> None:
        """Show these jobs (a model reset)."""
        self.beginResetModel()
        self._jobs = list(jobs)
        self.endResetModel()

    @property
    def jobs(self) -> builtins.list[Job]:
        return list(self._jobs)

    def job_at(self, row: int) -> Job | None:
        return self._jobs[row] if 0 <= row < len(self._jobs) else None

    def row_of(self, job_id: str) -> int | None:
        for row, job in enumerate(self._jobs):
            if job.id == job_id:
                return row
        return None

    def update_job(self, job: Job) -> None:
        """A job changed (e.g. from the controller): update its row in place, or add it on top."""
        row = self.row_of(job.id)
        if row is None:
            self.beginInsertRows(_INVALID, 0, 0)
            self._jobs.insert(0, job)
            self.endInsertRows()
            return
        self._jobs[row] = job
        self.dataChanged.emit(self.index(row, 0), self.index(row, HISTORY_COLUMNS - 1), [])

    def _display(self, job: Job, column: int) -> str:
        if column == HIST_STATE:
            text = STATE_LABELS[job.state]
            if job.chunks and job.state is not JobState.COMPLETED:
                text += f" ({job.chunks_done}/{job.chunks_total})"
            return text
        if column == HIST_DATE:
            stamp = job.created_at or job.updated_at
            return datetime.fromtimestamp(stamp).strftime("%Y-%m-%d %H:%M") if stamp else ""
        if column == HIST_PORTRAIT:
            return Path(job.image_path).name
        if column == HIST_VOICE:
            return Path(job.audio_path).name
        if column == HIST_OUTPUT:
            return Path(job.output_path).name
        return ""

    def _tooltip(self, job: Job, column: int) -> str | None:
        if column == HIST_STATE:
            return job.error or None
        if column == HIST_PORTRAIT:
            return job.image_path
        if column == HIST_VOICE:
            return job.audio_path
        if column == HIST_OUTPUT:
            return job.output_path
        return None

    def rowCount(self, parent: Index = _INVALID) -> int:
        return 0 if parent.isValid() else len(self._jobs)

    def columnCount(self, parent: Index = _INVALID) -> int:
        return 0 if parent.isValid() else HISTORY_COLUMNS

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = ItemRole.DisplayRole
    ) -> Any:
        if (
            orientation == Qt.Orientation.Horizontal
            and role == ItemRole.DisplayRole
            and 0 <= section < HISTORY_COLUMNS
        ):
            return HISTORY_HEADERS[section]
        return None

    def data(self, index: Index, role: int = ItemRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._jobs):
            return None
        job = self._jobs[index.row()]
        column = index.column()
        if role == ItemRole.DisplayRole:
            return self._display(job, column)
        if role == ItemRole.ToolTipRole:
            return self._tooltip(job, column)
        if role == ItemRole.ForegroundRole and column == HIST_STATE:
            return QtGui.QBrush(QtGui.QColor(STATE_COLOURS[job.state]))
        if role == JOB_ROLE:
            return job
        return None


def fit_history_columns(view: QtWidgets.QTableView, model: JobHistoryModel) -> None:
    """Size the history's state and date columns once, for the widest text they can show.

    Not ``ResizeToContents``, for the reason given in ``fit_chunk_columns``: here every update
    of the running job would re-measure up to the whole history.
    """
    now = time.time()
    chunks = [Chunk(index=n, start_ms=0, end_ms=1, state=JobState.COMPLETED) for n in range(998)]
    chunks.append(Chunk(index=998, start_ms=0, end_ms=1))
    samples = [
        Job(
            id=f"sample-{state}",
            image_path="",
            audio_path="",
            output_path="",
            settings=RenderSettings(endpoint_url=""),
            state=state,
            created_at=now,
            chunks=chunks,  # "(998/999)"
        )
        for state in JobState
    ]
    keep = model.jobs
    model.set_jobs(samples)
    for column in (HIST_STATE, HIST_DATE):
        view.resizeColumnToContents(column)
    model.set_jobs(keep)
