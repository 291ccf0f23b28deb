"""History: open, re-run, remove; an interrupted job is offered for resume at start."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from infinitetalk_gui.core.models import Job, JobState, RenderSettings
from infinitetalk_gui.core.pipeline import create_job
from infinitetalk_gui.qt.compat import QtCore, QtWidgets
from infinitetalk_gui.ui.history import offer_resume
from infinitetalk_gui.ui.main_window import TAB_PREVIEW
from tests.ui.conftest import WindowFactory, load_inputs
from tests.ui.test_render import render


def test_history_opens_reruns_and_removes_jobs(
    qtbot: Any, make_window: WindowFactory, portrait: Path, voice: Path
) -> None:
    window = make_window()
    history = window.history
    assert history.stack.currentIndex() == 0  # the empty state
    load_inputs(qtbot, window, portrait, voice)
    job = render(qtbot, window)
    assert job.state is JobState.COMPLETED, job.error
    output = Path(job.output_path)
    assert history.stack.currentIndex() == 1

    # Unloading while the player still opens the file makes Qt warn: let it finish first.
    qtbot.waitUntil(lambda: window.preview.player.duration() > 0, timeout=20000)
    window.preview.unload()
    window.tabs.setCurrentIndex(0)
    history.select_job(job.id)
    assert history.open_button.isEnabled() and not history.resume_button.isEnabled()
    history.open_button.click()
    assert window.preview.source == output
    assert window.tabs.currentIndex() == TAB_PREVIEW

    # Re-run in a fresh window: the job's inputs and settings come back into the form.
    other = make_window()
    other.select_size(512, 512)
    other.chunk_spin.setValue(30)
    other.history.refresh()
    other.history.select_job(job.id)
    other.history.rerun_button.click()
    qtbot.waitUntil(
        lambda: other.portrait_zone.path == portrait and other.voice_zone.path == voice,
        timeout=30000,
    )
    assert other.current_size() == (256, 256)
    assert other.chunk_spin.value() == 10
    assert other.endpoint_choice() == "demo"

    # Remove forgets the job, never the video.
    history.select_job(job.id)
    history.remove_button.click()
    assert history.model.row_of(job.id) is None
    assert "files are untouched" in history.message.text()
    assert output.is_file()
    assert history.stack.currentIndex() == 0


def _interrupted_job(store: Any, portrait: Path, voice: Path, output_dir: Path) -> Job:
    """A demo job stored but never driven to the end (as after a crash)."""
    settings = RenderSettings(
        endpoint_url="http://127.0.0.1:9",  # the demo endpoint of a process that is gone
        width=256,
        height=256,
        chunk_seconds=10.0,
        concurrency=2,
        demo=True,
    )
    return create_job(portrait, voice, output_dir / "resumed.mp4", settings, store=store)


def test_an_interrupted_job_is_offered_at_start_and_resumed(
    qtbot: Any, make_window: WindowFactory, portrait: Path, voice: Path, output_dir: Path
) -> None:
    job = _interrupted_job(make_window.store, portrait, voice, output_dir)
    window = make_window()
    seen: list[str] = []

    def answer() -> None:
        box = QtWidgets.QApplication.activeModalWidget()
        assert isinstance(box, QtWidgets.QMessageBox)
        seen.append(box.informativeText())
        resume = next(b for b in box.buttons() if b.text() == "Resume")
        resume.click()

    QtCore.QTimer.singleShot(100, answer)
    with qtbot.waitSignal(window.controller.jobFinished, timeout=120000) as finished:
        window.offer_interrupted()
    assert "voice.wav with face.png → resumed.mp4" in seen[0]
    done = finished.args[0]
    assert done.id == job.id and done.state is JobState.COMPLETED, done.error
    assert (output_dir / "resumed.mp4").is_file()


def test_the_resume_offer_can_be_declined(
    qtbot: Any, make_window: WindowFactory, portrait: Path, voice: Path, output_dir: Path
) -> None:
    job = _interrupted_job(make_window.store, portrait, voice, output_dir)
    window = make_window()

    def decline() -> None:
        box = QtWidgets.QApplication.activeModalWidget()
        assert isinstance(box, QtWidgets.QMessageBox)
        next(b for b in box.buttons() if b.text() == "Not now").click()

    QtCore.QTimer.singleShot(100, decline)
    assert offer_resume(window, [job]) is None
    assert not window.busy
    # Still there to resume from the History tab.
    window.history.refresh()
    window.history.select_job(job.id)
    assert window.history.resume_button.isEnabled()
