"""Whole renders driven through the window: demo render and preview, cancel, retry, save, quit."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from infinitetalk_gui.core.demo_endpoint import DemoEndpoint
from infinitetalk_gui.core.models import Job, JobState
from infinitetalk_gui.qt.compat import QtCore, QtMultimedia, QtWidgets
from infinitetalk_gui.qt.models import COL_STATE
from infinitetalk_gui.ui.keys import ApiKeys
from infinitetalk_gui.ui.main_window import TAB_PREVIEW, MainWindow
from infinitetalk_gui.ui.state import ENDPOINT_DEMO, ENDPOINT_RUNPOD
from tests.ui.conftest import WindowFactory, load_inputs, small_settings

LEFT = QtCore.Qt.MouseButton.LeftButton
API_KEY = "test-key-123"


def render(qtbot: Any, window: MainWindow, timeout: int = 120000) -> Job:
    """Click Render and wait for the job to end; its final snapshot."""
    with qtbot.waitSignal(window.controller.jobFinished, timeout=timeout) as finished:
        qtbot.mouseClick(window.render_button, LEFT)
    job = finished.args[0]
    assert isinstance(job, Job)
    return job


def runpod_window(make_window: WindowFactory, demo: DemoEndpoint, **settings: Any) -> MainWindow:
    """A window rendering on a local RunPod stand-in, with the key in the (memory) keyring."""
    keys = ApiKeys()
    keys.save(API_KEY, session_only=False)
    window = make_window(
        small_settings(make_window.output_dir, endpoint_url=demo.url, **settings), keys=keys
    )
    assert window.endpoint_choice() == ENDPOINT_RUNPOD
    return window


def test_demo_render_plays_in_the_preview(
    qtbot: Any,
    window: MainWindow,
    portrait: Path,
    voice: Path,
    output_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    load_inputs(qtbot, window, portrait, voice)
    assert window.endpoint_choice() == ENDPOINT_DEMO
    assert "free" in window.estimate_label.text()
    frames: list[bool] = []
    window.preview.player.videoSink().videoFrameChanged.connect(
        lambda frame: frames.append(frame.isValid())
    )
    locked: list[tuple[bool, bool, bool, bool]] = []
    window.controller.busyChanged.connect(
        lambda busy: locked.append(
            (
                busy,
                window.portrait_zone.acceptDrops(),
                window.settings_box.isEnabled(),
                window.cancel_button.isEnabled(),
            )
        )
    )

    job = render(qtbot, window)

    assert job.state is JobState.COMPLETED, job.error
    assert locked[0] == (True, False, False, True)  # inputs and settings locked while it ran
    assert locked[-1] == (False, True, True, False)
    output = Path(job.output_path)
    assert output.parent == output_dir and output.is_file()
    assert output.name == "voice-talking.mp4"
    assert window.chunk_model.rowCount() == 2
    assert window.overall_bar.value() == 1000
    assert window.tabs.currentIndex() == TAB_PREVIEW
    assert window.history.model.row_of(job.id) is not None

    # The preview has the video, its duration is the audio's, and frames reach the sink.
    player = window.preview.player
    assert window.preview.source == output
    qtbot.waitUntil(lambda: player.duration() > 0, timeout=20000)
    assert abs(player.duration() - 16000) <= 100
    qtbot.waitUntil(lambda: any(frames), timeout=20000)
    assert window.preview.current_frame() is not None
    qtbot.mouseClick(window.preview.play_button, LEFT)
    qtbot.waitUntil(lambda: player.position() > 200, timeout=20000)
    qtbot.mouseClick(window.preview.play_button, LEFT)
    qtbot.waitUntil(
        lambda: player.playbackState() == QtMultimedia.QMediaPlayer.PlaybackState.PausedState,
        timeout=5000,
    )

    # Save as: the native dialog is asked (it confirms replacing), the copy is atomic.
    asked: list[tuple[Any, ...]] = []
    target = tmp_path / "saved" / "final.mp4"
    target.parent.mkdir()

    def fake_dialog(*args: Any, **kwargs: Any) -> tuple[str, str]:
        asked.append((args, kwargs))
        return (str(target) if len(asked) == 1 else "", "")

    monkeypatch.setattr(QtWidgets.QFileDialog, "getSaveFileName", fake_dialog)
    with qtbot.waitSignal(window.preview.saved, timeout=20000):
        window.save_action.trigger()
    assert target.read_bytes() == output.read_bytes()
    assert sorted(p.name for p in target.parent.iterdir()) == ["final.mp4"]  # no temp twin left
    args, kwargs = asked[0]
    assert len(args) == 4 and not kwargs  # no DontConfirmOverwrite: the dialog asks first
    window.preview.save_as()  # the folder is remembered for the next save
    assert asked[1][0][2].startswith(str(target.parent))


def test_save_as_never_replaces_a_file_silently(
    qtbot: Any,
    window: MainWindow,
    tiny_video: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    video = tiny_video
    existing = tmp_path / "keep.mp4"
    existing.write_bytes(b"precious")
    window.preview.load(video)
    qtbot.waitUntil(lambda: window.preview.player.duration() > 0, timeout=20000)
    # A name typed without .mp4 gets it added: the dialog did not confirm that name, so we ask.
    monkeypatch.setattr(
        QtWidgets.QFileDialog, "getSaveFileName", lambda *a, **k: (str(tmp_path / "keep"), "")
    )
    questions: list[str] = []

    def answer_no(_parent: Any, _title: str, text: str, *_a: Any) -> Any:
        questions.append(text)
        return QtWidgets.QMessageBox.StandardButton.No

    monkeypatch.setattr(QtWidgets.QMessageBox, "question", answer_no)
    window.preview.save_as()
    assert questions and "keep.mp4 already exists" in questions[0]
    assert existing.read_bytes() == b"precious"

    from infinitetalk_gui.ui.preview import copy_atomic

    with pytest.raises(FileExistsError):
        copy_atomic(video, existing, overwrite=False)
    assert existing.read_bytes() == b"precious"
    copy_atomic(video, existing, overwrite=True)
    assert existing.read_bytes() == video.read_bytes()
    window.preview.unload()


@pytest.mark.timeout(120)
def test_closing_right_after_the_first_frame_lets_go_of_the_video(
    qtbot: Any, make_window: WindowFactory, tiny_video: Path
) -> None:
    # The moment a stop once hung in (QtMultimedia's threads and the GIL waiting on each
    # other, about one stop in 75): the poster frame has just arrived. A hang fails on the
    # timeout; each pass must end with the player idle and the file let go.
    for _ in range(15):
        window = make_window()
        preview = window.preview
        preview.load(tiny_video)
        qtbot.waitUntil(lambda p=preview: p.current_frame() is not None, timeout=20000)
        assert preview.shutdown()
        assert not preview.player.source().isValid()
        assert preview.player.mediaStatus() == QtMultimedia.QMediaPlayer.MediaStatus.NoMedia
        window.shutdown(cancel_running=True)
        window.close()


def test_cancel_mid_job_keeps_the_output_folder_untouched(
    qtbot: Any, make_window: WindowFactory, portrait: Path, voice: Path, output_dir: Path
) -> None:
    with DemoEndpoint(latency_s=30.0, api_key=API_KEY) as demo:
        window = runpod_window(make_window, demo)
        load_inputs(qtbot, window, portrait, voice)
        assert "$" in window.estimate_label.text()  # a real endpoint shows a cost
        qtbot.mouseClick(window.render_button, LEFT)

        def rendering() -> bool:
            job = window.controller.current_job
            return job is not None and any(c.state is JobState.IN_PROGRESS for c in job.chunks)

        qtbot.waitUntil(rendering, timeout=60000)
        assert not window.render_button.isEnabled()
        with qtbot.waitSignal(window.controller.jobFinished, timeout=30000) as finished:
            qtbot.mouseClick(window.cancel_button, LEFT)
        job = finished.args[0]
        assert job.state is JobState.CANCELLED
        assert demo.cancelled_ids  # the remote chunks were cancelled too
    assert list(output_dir.iterdir()) == []
    assert window.retry_button.isVisible() and window.retry_button.isEnabled()
    assert window.render_button.isEnabled() and window.portrait_zone.acceptDrops()
    assert window.banner.isVisible() and "Retry failed" in window.banner.text()


def test_a_failed_chunk_is_retried_from_the_window(
    qtbot: Any, make_window: WindowFactory, portrait: Path, voice: Path
) -> None:
    with DemoEndpoint(latency_s=0.2, api_key=API_KEY) as demo:
        demo.faults.update(outcomes={0: "failed_json"})  # the first chunk sent fails once
        window = runpod_window(make_window, demo, attempts=1)
        load_inputs(qtbot, window, portrait, voice)

        job = render(qtbot, window)

        assert job.state is JobState.FAILED
        assert "CUDA out of memory" in window.banner.text()
        failed_rows = [
            row
            for row in range(window.chunk_model.rowCount())
            if window.chunk_model.chunk_at(row).state is JobState.FAILED  # type: ignore[union-attr]
        ]
        assert failed_rows
        tooltip = window.chunk_model.index(failed_rows[0], COL_STATE).data(
            QtCore.Qt.ItemDataRole.ToolTipRole
        )
        assert "CUDA out of memory" in tooltip
        assert window.retry_button.isEnabled()
        runs_before = demo.run_calls

        with qtbot.waitSignal(window.controller.jobFinished, timeout=120000) as finished:
            qtbot.mouseClick(window.retry_button, LEFT)
        retried = finished.args[0]
        assert retried.id == job.id
        assert retried.state is JobState.COMPLETED, retried.error
        # Only the missing chunks were sent again.
        missing = sum(1 for c in job.chunks if c.state is not JobState.COMPLETED)
        assert demo.run_calls - runs_before == missing
    assert window.preview.source == Path(retried.output_path)
    assert not window.retry_button.isVisible()


def test_runpod_without_a_key_asks_for_setup(
    qtbot: Any,
    make_window: WindowFactory,
    portrait: Path,
    voice: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    window = make_window(small_settings(make_window.output_dir, endpoint_id="abc123def456"))
    assert window.endpoint_choice() == ENDPOINT_RUNPOD
    load_inputs(qtbot, window, portrait, voice)
    shown: list[str] = []

    def fake_exec(box: QtWidgets.QMessageBox) -> int:
        shown.append(box.text())
        return 0

    monkeypatch.setattr(QtWidgets.QMessageBox, "exec", fake_exec)
    qtbot.mouseClick(window.render_button, LEFT)
    assert shown == ["No RunPod API key is set."]
    assert not window.busy


def test_render_without_inputs_says_what_is_missing(qtbot: Any, window: MainWindow) -> None:
    qtbot.mouseClick(window.render_button, LEFT)
    assert "Add a portrait first" in window.portrait_zone.error_text
    assert "Add a voice recording first" in window.voice_zone.error_text
    assert not window.busy


def test_quit_during_a_job_leaves_it_resumable_and_offers_it_next_time(
    qtbot: Any,
    make_window: WindowFactory,
    portrait: Path,
    voice: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    window = make_window(demo_latency_s=30.0)
    load_inputs(qtbot, window, portrait, voice)
    qtbot.mouseClick(window.render_button, LEFT)
    qtbot.waitUntil(
        lambda: (
            window.controller.current_job is not None
            and window.controller.current_job.chunks_total > 0
        ),
        timeout=60000,
    )
    job_id = window.controller.current_job.id
    monkeypatch.setattr(window, "ask_quit", lambda: False)  # "Quit, finish later"
    window.close()
    assert window.isHidden()
    stored = make_window.store.get(job_id)
    assert stored.state is not JobState.COMPLETED

    offered: list[list[Job]] = []

    def fake_offer(_parent: Any, jobs: list[Job]) -> Job | None:
        offered.append(jobs)
        return jobs[0]

    monkeypatch.setattr("infinitetalk_gui.ui.main_window.offer_resume", fake_offer)
    again = make_window(demo_latency_s=0.2)
    with qtbot.waitSignal(again.controller.jobFinished, timeout=120000) as finished:
        again.offer_interrupted()
    assert [j.id for j in offered[0]] == [job_id]
    assert finished.args[0].id == job_id
    assert finished.args[0].state is JobState.COMPLETED, finished.args[0].error
    # Offered once: the next start has nothing to offer.
    offered.clear()
    again.offer_interrupted()
    assert offered == []


def test_window_opens_at_a_comfortable_size_and_remembers_it(
    make_window: WindowFactory,
) -> None:
    from infinitetalk_gui.ui.main_window import comfortable_size

    size = QtCore.QSize
    assert comfortable_size(size(1100, 720), size(1920, 1080)) == size(1100, 720)
    assert comfortable_size(size(900, 600), size(1920, 1080)) == size(1024, 680)
    assert comfortable_size(size(1100, 720), size(1000, 700)) == size(1000, 700)
    first = make_window()
    room = first.screen().availableGeometry()  # 800x800 on Qt's offscreen platform
    assert first.width() <= room.width() and first.height() <= room.height()
    first.resize(room.width() - 20, room.height() - 40)
    first.close()
    second = make_window()
    assert (second.width(), second.height()) == (room.width() - 20, room.height() - 40)


def test_keyboard_shortcuts(qtbot: Any, window: MainWindow) -> None:
    shortcuts = {
        action.text(): [s.toString() for s in action.shortcuts()]
        for action in (
            window.open_portrait_action,
            window.open_voice_action,
            window.render_action,
            window.cancel_action,
            window.save_action,
            window.retry_action,
        )
    }
    assert "Ctrl+O" in shortcuts["Open &portrait…"]
    assert "Ctrl+Shift+O" in shortcuts["Open &voice…"]
    assert "Ctrl+R" in shortcuts["&Render"]
    assert "Ctrl+." in shortcuts["&Cancel render"]
    assert "Ctrl+S" in shortcuts["&Save video as…"]
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow, timeout=5000)
    qtbot.keyClick(window, QtCore.Qt.Key.Key_R, QtCore.Qt.KeyboardModifier.ControlModifier)
    assert "Add a portrait first" in window.portrait_zone.error_text  # Render was triggered


def test_a_long_job_ends_with_a_desktop_notification(
    qtbot: Any, window: MainWindow, monkeypatch: pytest.MonkeyPatch
) -> None:
    tray = QtWidgets.QSystemTrayIcon
    monkeypatch.setattr(tray, "isSystemTrayAvailable", staticmethod(lambda: True))
    monkeypatch.setattr(tray, "supportsMessages", staticmethod(lambda: True))
    messages: list[tuple[str, str]] = []
    monkeypatch.setattr(tray, "show", lambda self: None)
    monkeypatch.setattr(
        tray, "showMessage", lambda self, title, text, *args: messages.append((title, text))
    )
    window._notify("Your video is ready", "voice-talking.mp4 is finished.", took_s=120.0)
    assert messages == [("Your video is ready", "voice-talking.mp4 is finished.")]
    # Where there is no system tray, the window asks for attention instead.
    monkeypatch.setattr(tray, "isSystemTrayAvailable", staticmethod(lambda: False))
    alerts: list[Any] = []
    monkeypatch.setattr(QtWidgets.QApplication, "alert", staticmethod(lambda *a: alerts.append(a)))
    window._notify("Render failed", "no GPU", took_s=120.0)
    assert len(alerts) == 1 and len(messages) == 1


def test_closing_during_a_job_asks_first(
    qtbot: Any, make_window: WindowFactory, portrait: Path, voice: Path
) -> None:
    window = make_window(demo_latency_s=30.0)
    load_inputs(qtbot, window, portrait, voice)
    qtbot.mouseClick(window.render_button, LEFT)
    # The title shows the progress, for the taskbar.
    qtbot.waitUntil(lambda: "% · InfiniteTalk" in window.windowTitle(), timeout=30000)
    asked: list[str] = []

    def keep_running() -> None:
        box = QtWidgets.QApplication.activeModalWidget()
        assert isinstance(box, QtWidgets.QMessageBox)
        asked.append(box.text())
        next(b for b in box.buttons() if b.text() == "Keep running").click()

    QtCore.QTimer.singleShot(100, keep_running)
    window.close()
    assert asked == ["A render is still running. Quit anyway?"]
    assert window.isVisible() and window.busy
    with qtbot.waitSignal(window.controller.jobFinished, timeout=30000):
        window.cancel_render()


def test_the_status_line_speaks_the_table_s_words(window: MainWindow) -> None:
    window._log_line("chunk 2/3 IN_PROGRESS (attempt 2)")
    assert window.status_label.text() == "Chunk 2/3 rendering (attempt 2)"
    window._log_line("chunk 1/3 COMPLETED (queue 0.4 s, GPU 3.0 s, $0.0010)")
    assert window.status_label.text() == "Chunk 1/3 done (queue 0.4 s, GPU 3.0 s, $0.0010)"
    window._log_line("chunk 3/3 FAILED: out of memory")
    assert window.status_label.text() == "Chunk 3/3 failed: out of memory"
    window._log_line("Done: /tmp/out/voice-talking.mp4")  # not a state: as it is
    assert window.status_label.text() == "Done: /tmp/out/voice-talking.mp4"
