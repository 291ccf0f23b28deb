"""The chunk table and history models, under Qt's QAbstractItemModelTester."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path

import pytest

from infinitetalk_gui.core.models import Chunk, Job, JobState, RenderSettings
from infinitetalk_gui.core.store import JobStore
from infinitetalk_gui.qt.compat import QtCore, QtGui, QtTest, QtWidgets
from infinitetalk_gui.qt.models import (
    CHUNK_COLUMNS,
    CHUNK_ROLE,
    COL_ATTEMPT,
    COL_DURATION,
    COL_GPU,
    COL_INDEX,
    COL_PROGRESS,
    COL_QUEUE,
    COL_RANGE,
    COL_STATE,
    DEFAULT_EXEC_S,
    HIST_OUTPUT,
    HIST_PORTRAIT,
    HIST_STATE,
    HISTORY_COLUMNS,
    JOB_ROLE,
    PROGRESS_ROLE,
    STATE_COLOURS,
    ChunkTableModel,
    JobHistoryModel,
    ProgressBarDelegate,
    fit_chunk_columns,
    fit_history_columns,
    format_clock,
    format_seconds,
)

Role = QtCore.Qt.ItemDataRole


class FakeClock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def make_job(job_id: str = "job1", chunks: int = 3, chunk_ms: int = 45_000) -> Job:
    job = Job(
        id=job_id,
        image_path="/media/face.png",
        audio_path="/media/voice.wav",
        output_path="/out/talk.mp4",
        settings=RenderSettings(endpoint_url="http://127.0.0.1:1", concurrency=2),
        state=JobState.IN_PROGRESS,
        stage="rendering",
        created_at=1_700_000_000.0,
    )
    job.chunks = [
        Chunk(index=i, start_ms=i * chunk_ms, end_ms=(i + 1) * chunk_ms) for i in range(chunks)
    ]
    return job


def model_tester(model: QtCore.QAbstractItemModel) -> QtTest.QAbstractItemModelTester:
    # Warning mode: a broken invariant is a qt.modeltest warning, which fails the test.
    return QtTest.QAbstractItemModelTester(
        model, QtTest.QAbstractItemModelTester.FailureReportingMode.Warning
    )


class DataChangedSpy:
    def __init__(self, model: QtCore.QAbstractItemModel) -> None:
        self.ranges: list[tuple[int, int, int, int]] = []
        model.dataChanged.connect(self._on)

    def _on(self, top: QtCore.QModelIndex, bottom: QtCore.QModelIndex, roles: object) -> None:
        self.ranges.append((top.row(), top.column(), bottom.row(), bottom.column()))

    def cells(self) -> set[tuple[int, int]]:
        return {
            (row, col)
            for top, left, bottom, right in self.ranges
            for row in range(top, bottom + 1)
            for col in range(left, right + 1)
        }


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def chunk_model(clock: FakeClock) -> Iterator[ChunkTableModel]:
    model = ChunkTableModel(clock=clock)
    check = model_tester(model)
    yield model
    del check


def test_formatting() -> None:
    assert format_clock(0) == "0:00.0"
    assert format_clock(45_120) == "0:45.1"
    assert format_clock(3_723_400) == "1:02:03.4"
    assert format_seconds(8_400) == "8.4 s"
    assert format_seconds(125_000) == "2 min 05 s"
    assert format_seconds(3_720_000) == "1 h 02 min"


def test_rows_columns_and_cells(chunk_model: ChunkTableModel) -> None:
    job = make_job()
    job.chunks[0].state = JobState.COMPLETED
    job.chunks[0].attempt = 1
    job.chunks[0].runpod_id = "r0"
    job.chunks[0].queue_ms = 1_500
    job.chunks[0].exec_ms = 30_000
    chunk_model.set_job(job)

    assert chunk_model.rowCount() == 3
    assert chunk_model.columnCount() == CHUNK_COLUMNS == 8
    header = [
        chunk_model.headerData(c, QtCore.Qt.Orientation.Horizontal) for c in range(CHUNK_COLUMNS)
    ]
    assert header[COL_STATE] == "State" and header[COL_PROGRESS] == "Progress"

    def cell(row: int, col: int, role: int = Role.DisplayRole) -> object:
        return chunk_model.data(chunk_model.index(row, col), role)

    assert cell(0, COL_INDEX) == "1"
    assert cell(1, COL_RANGE) == "0:45.0 – 1:30.0"
    assert cell(0, COL_DURATION) == "45.0 s"
    assert cell(0, COL_STATE) == "done"
    assert cell(1, COL_STATE) == "waiting"  # queued here, not sent yet
    assert cell(0, COL_ATTEMPT) == "1"
    assert cell(0, COL_QUEUE) == "1.5 s"
    assert cell(0, COL_GPU) == "30.0 s"
    assert cell(0, COL_PROGRESS, PROGRESS_ROLE) == 100
    assert cell(1, COL_PROGRESS, PROGRESS_ROLE) == 0
    brush = cell(0, COL_STATE, Role.ForegroundRole)
    assert isinstance(brush, QtGui.QBrush)
    assert brush.color() == QtGui.QColor(STATE_COLOURS[JobState.COMPLETED])
    assert isinstance(cell(0, COL_STATE, Role.DecorationRole), QtGui.QIcon)
    chunk = cell(2, COL_GPU, CHUNK_ROLE)
    assert isinstance(chunk, Chunk) and chunk.index == 2
    assert chunk_model.data(chunk_model.index(9, 0)) is None


def test_update_signals_only_changed_cells(chunk_model: ChunkTableModel, clock: FakeClock) -> None:
    job = make_job()
    chunk_model.set_job(copy.deepcopy(job))
    spy = DataChangedSpy(chunk_model)

    # Submitted: state word (waiting -> queued), attempt and the live queue wait change.
    job.chunks[1].attempt = 1
    job.chunks[1].runpod_id = "r1"
    job.chunks[1].submitted_at = clock.now
    chunk_model.update_chunk(copy.deepcopy(job), 1)
    assert spy.cells() == {(1, COL_STATE), (1, COL_ATTEMPT), (1, COL_QUEUE)}
    assert (1, COL_STATE, 1, COL_QUEUE) in spy.ranges  # one signal for the contiguous run

    # The same snapshot again: nothing to repaint.
    spy.ranges.clear()
    chunk_model.update_chunk(copy.deepcopy(job), 1)
    assert spy.ranges == []

    # Rendering after 4 s in the queue: state, queue time; progress still 0 %.
    clock.now += 4
    job.chunks[1].state = JobState.IN_PROGRESS
    job.chunks[1].queue_ms = 4_000
    chunk_model.update_chunk(copy.deepcopy(job), 1)
    assert spy.cells() == {(1, COL_STATE), (1, COL_QUEUE)}
    assert all(row == 1 for row, _ in spy.cells())


def test_one_snapshot_for_several_changed_chunks(chunk_model: ChunkTableModel) -> None:
    # The controller coalesces: one snapshot, then one update_chunk per changed index.
    job = make_job()
    chunk_model.set_job(copy.deepcopy(job))
    spy = DataChangedSpy(chunk_model)
    for chunk in job.chunks[:2]:
        chunk.attempt = 1
        chunk.runpod_id = f"r{chunk.index}"
    snapshot = copy.deepcopy(job)
    chunk_model.update_chunk(snapshot, 0)
    chunk_model.update_chunk(snapshot, 1)
    assert {row for row, _ in spy.cells()} == {0, 1}
    assert (0, COL_ATTEMPT) in spy.cells() and (1, COL_ATTEMPT) in spy.cells()
    assert chunk_model.data(chunk_model.index(1, COL_STATE)) == "queued"


def test_progress_is_estimated_from_finished_chunks(
    chunk_model: ChunkTableModel, clock: FakeClock
) -> None:
    job = make_job()
    for chunk in job.chunks[:2]:
        chunk.state = JobState.IN_PROGRESS
        chunk.attempt = 1
        chunk.runpod_id = f"r{chunk.index}"
        chunk.submitted_at = clock.now
        chunk.queue_ms = 0
    chunk_model.set_job(copy.deepcopy(job))
    spy = DataChangedSpy(chunk_model)

    # No chunk finished yet: the default expectation.
    clock.now += DEFAULT_EXEC_S / 2
    chunk_model.refresh_live()
    assert chunk_model.progress(chunk_model.chunk_at(1)) == 50  # type: ignore[arg-type]
    assert spy.cells() == {(0, COL_PROGRESS), (1, COL_PROGRESS)}

    # Chunk 1 finishes in 30 s for 45 s of audio: chunk 2 (same length) is now at 100 %
    # of its expected time, capped at 99 until its video is back.
    spy.ranges.clear()
    job.chunks[0].state = JobState.COMPLETED
    job.chunks[0].exec_ms = 30_000
    chunk_model.update_chunk(copy.deepcopy(job), 0)
    assert chunk_model.expected_exec_s(job.chunks[1]) == pytest.approx(30.0)
    assert chunk_model.progress(chunk_model.chunk_at(1)) == 99  # type: ignore[arg-type]
    assert (1, COL_PROGRESS) in spy.cells()
    assert 0 < chunk_model.overall_progress() < 1
    eta = chunk_model.eta_seconds()
    assert eta is not None and eta > 0


def test_failed_chunk_tooltip_and_no_progress(chunk_model: ChunkTableModel) -> None:
    job = make_job()
    chunk_model.set_job(copy.deepcopy(job))
    job.chunks[2].state = JobState.FAILED
    job.chunks[2].attempt = 4
    job.chunks[2].error = "CUDA out of memory"
    chunk_model.update_chunk(copy.deepcopy(job), 2)
    for column in (COL_INDEX, COL_STATE, COL_PROGRESS):
        tip = chunk_model.data(chunk_model.index(2, column), Role.ToolTipRole)
        assert "CUDA out of memory" in tip
        assert "Chunk 3" in tip
    assert chunk_model.data(chunk_model.index(2, COL_PROGRESS), PROGRESS_ROLE) is None
    assert chunk_model.data(chunk_model.index(2, COL_STATE)) == "failed"
    queued_tip = chunk_model.data(chunk_model.index(0, COL_STATE), Role.ToolTipRole)
    assert "slot" in queued_tip


def test_chunk_list_growth_resets(chunk_model: ChunkTableModel, qtbot) -> None:  # type: ignore[no-untyped-def]
    job = make_job(chunks=1)
    chunk_model.set_job(copy.deepcopy(job))
    job.chunks.append(Chunk(index=1, start_ms=45_000, end_ms=60_000))
    with qtbot.waitSignal(chunk_model.modelReset, timeout=1000):
        chunk_model.update_chunk(copy.deepcopy(job), 1)
    assert chunk_model.rowCount() == 2
    with qtbot.waitSignal(chunk_model.modelReset, timeout=1000):
        chunk_model.update_chunk(make_job("other", chunks=4), 0)
    assert chunk_model.rowCount() == 4
    chunk_model.set_job(None)
    assert chunk_model.rowCount() == 0


def test_live_timer_runs_only_while_chunks_are_out(clock: FakeClock, qtbot) -> None:  # type: ignore[no-untyped-def]
    model = ChunkTableModel(clock=clock, tick_ms=20)
    check = model_tester(model)
    job = make_job(chunks=1)
    model.set_job(copy.deepcopy(job))
    timer = model.findChild(QtCore.QTimer)
    assert timer is not None and not timer.isActive()
    job.chunks[0].state = JobState.IN_PROGRESS
    job.chunks[0].attempt = 1
    job.chunks[0].runpod_id = "r"
    model.update_chunk(copy.deepcopy(job), 0)
    assert timer.isActive()
    clock.now += DEFAULT_EXEC_S / 4
    with qtbot.waitSignal(model.dataChanged, timeout=2000) as blocker:
        pass
    top, bottom = blocker.args[0], blocker.args[1]
    assert (top.row(), top.column(), bottom.column()) == (0, COL_PROGRESS, COL_PROGRESS)
    assert model.data(model.index(0, COL_PROGRESS)) == "25 %"
    job.chunks[0].state = JobState.COMPLETED
    model.update_chunk(copy.deepcopy(job), 0)
    assert not timer.isActive()
    del check


def test_progress_delegate_paints_a_bar(chunk_model: ChunkTableModel, qtbot) -> None:  # type: ignore[no-untyped-def]
    job = make_job(chunks=2)
    job.chunks[0].state = JobState.COMPLETED
    job.chunks[1].state = JobState.FAILED
    chunk_model.set_job(job)
    view = QtWidgets.QTableView()
    qtbot.addWidget(view)
    view.setModel(chunk_model)
    delegate = ProgressBarDelegate(view)
    view.setItemDelegateForColumn(COL_PROGRESS, delegate)
    view.resize(900, 200)
    view.show()
    qtbot.waitExposed(view)
    image = view.viewport().grab().toImage()
    rect = view.visualRect(chunk_model.index(0, COL_PROGRESS))
    colours = {
        image.pixelColor(x, rect.center().y()).name()
        for x in range(rect.left() + 4, rect.right() - 4)
    }
    assert len(colours) > 1  # a bar with a filled part, not a blank cell
    hint = delegate.sizeHint(QtWidgets.QStyleOptionViewItem(), chunk_model.index(0, COL_PROGRESS))
    assert hint.width() >= 90


class CountingChunkModel(ChunkTableModel):
    """Records which rows the view asked ``data()`` for."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__(clock=clock)
        self.rows_read: set[int] = set()

    def data(self, index: QtCore.QModelIndex, role: int = Role.DisplayRole) -> object:  # type: ignore[override]
        self.rows_read.add(index.row())
        return super().data(index, role)


def test_a_chunk_update_reads_only_its_own_row(clock: FakeClock, qtbot) -> None:  # type: ignore[no-untyped-def]
    # Columns sized to content (ResizeToContents) re-measure every row on each dataChanged:
    # thousands of data() calls through Python per update on a long job, on the GUI thread.
    model = CountingChunkModel(clock)
    view = QtWidgets.QTableView()
    qtbot.addWidget(view)
    view.setModel(model)
    view.setItemDelegateForColumn(COL_PROGRESS, ProgressBarDelegate(view))
    fit_chunk_columns(view, model)
    header = view.horizontalHeader()
    header.setSectionResizeMode(COL_PROGRESS, QtWidgets.QHeaderView.ResizeMode.Stretch)
    assert all(
        header.sectionResizeMode(c) != QtWidgets.QHeaderView.ResizeMode.ResizeToContents
        for c in range(CHUNK_COLUMNS)
    )
    job = make_job(chunks=40, chunk_ms=45_000)
    model.set_job(job)
    view.resize(1000, 1400)  # every row visible
    view.show()
    qtbot.waitExposed(view)
    QtWidgets.QApplication.processEvents()

    updated = copy.deepcopy(job)
    updated.chunks[7].state = JobState.IN_PROGRESS
    updated.chunks[7].runpod_id = "rp-7"
    updated.chunks[7].attempt = 1
    model.rows_read.clear()
    model.update_chunk(updated, 7)
    QtWidgets.QApplication.processEvents()  # paints what the update made dirty
    assert 7 in model.rows_read <= {6, 7, 8}  # the row, and a neighbour the dirty edge touches

    # The fixed widths hold the widest text of a usual job in every column.
    for column in range(CHUNK_COLUMNS):
        if column != COL_PROGRESS:
            assert header.sectionSize(column) >= view.sizeHintForColumn(column), column


def test_history_columns_fit_their_widest_text(store: JobStore, qtbot) -> None:  # type: ignore[no-untyped-def]
    long_job = make_job("ccc333", chunks=120)
    long_job.state = JobState.CANCELLED
    store.create(long_job)
    model = JobHistoryModel(store)
    model.refresh()
    view = QtWidgets.QTableView()
    qtbot.addWidget(view)
    view.setModel(model)
    fit_history_columns(view, model)
    assert [job.id for job in model.jobs] == ["ccc333"]  # the samples are gone again
    header = view.horizontalHeader()
    assert header.sectionResizeMode(HIST_STATE) != QtWidgets.QHeaderView.ResizeMode.ResizeToContents
    assert model.data(model.index(0, HIST_STATE)) == "cancelled (0/120)"
    assert header.sectionSize(HIST_STATE) >= view.sizeHintForColumn(HIST_STATE)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[JobStore]:
    with JobStore(tmp_path / "jobs.sqlite3") as job_store:
        yield job_store


def test_history_model(store: JobStore, qtbot) -> None:  # type: ignore[no-untyped-def]
    first = make_job("aaa111", chunks=2)
    first.state = JobState.IN_QUEUE
    store.create(first)
    second = make_job("bbb222", chunks=0)
    second.state = JobState.IN_QUEUE
    second.output_path = "/out/second.mp4"
    store.create(second)

    model = JobHistoryModel(store)
    check = model_tester(model)
    assert model.rowCount() == 0
    model.refresh()
    assert model.rowCount() == 2
    assert model.columnCount() == HISTORY_COLUMNS == 5
    newest = model.job_at(0)
    assert newest is not None and newest.id == "bbb222"  # newest first
    assert model.data(model.index(0, HIST_OUTPUT)) == "second.mp4"
    assert model.data(model.index(0, HIST_OUTPUT), Role.ToolTipRole) == "/out/second.mp4"
    assert model.data(model.index(1, HIST_PORTRAIT)) == "face.png"
    assert model.data(model.index(1, HIST_STATE)) == "queued (0/2)"
    assert model.data(model.index(1, 0), JOB_ROLE).id == "aaa111"
    assert model.job_at(5) is None

    # A job the controller reports: updated in place, one row's cells only.
    changed = store.get("aaa111")
    changed.state = JobState.FAILED
    changed.error = "Chunk 2 failed after 4 attempts: out of memory"
    with qtbot.waitSignal(model.dataChanged, timeout=1000) as blocker:
        model.update_job(changed)
    assert blocker.args[0].row() == 1 and blocker.args[1].row() == 1
    assert model.data(model.index(1, HIST_STATE)).startswith("failed")
    assert "out of memory" in model.data(model.index(1, HIST_STATE), Role.ToolTipRole)

    # A new job appears on top; deleting from the store shows after refresh.
    third = make_job("ccc333", chunks=0)
    third.state = JobState.IN_QUEUE
    with qtbot.waitSignal(model.rowsInserted, timeout=1000):
        model.update_job(third)
    assert model.row_of("ccc333") == 0
    store.delete("aaa111")
    model.refresh()
    assert [model.job_at(r).id for r in range(model.rowCount())] == ["bbb222"]  # type: ignore[union-attr]
    del check
