"""The app entry points (--smoke, --screenshot) and the small windows: crash, log, about."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from infinitetalk_gui import __version__, app
from infinitetalk_gui.core import logs, paths
from infinitetalk_gui.qt.compat import QtGui
from infinitetalk_gui.ui.about import AboutDialog
from infinitetalk_gui.ui.crash_dialog import CrashDialog, CrashHandler
from infinitetalk_gui.ui.log_viewer import LogViewer, read_tail
from infinitetalk_gui.ui.text import ffmpeg_version_line

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def log_file() -> Iterator[Path]:
    """The app's log in this test's state dir; the handler is removed afterwards."""
    path = logs.setup_logging()
    yield path
    root = logging.getLogger("infinitetalk_gui")
    for handler in list(root.handlers):
        if getattr(handler, "baseFilename", None) == str(path.resolve()):
            root.removeHandler(handler)
            handler.close()


def test_smoke_prints_one_json_object_and_exits_0(isolated_home: Path) -> None:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    done = subprocess.run(
        [sys.executable, "-m", "infinitetalk_gui", "--smoke"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["ok"] is True
    assert report["version"] == __version__
    assert report["multimedia"] is True and report["window"] is True
    assert report["qt"] and report["ffmpeg_version"]
    assert Path(report["ffmpeg"]).is_absolute() and Path(report["ffmpeg"]).is_file()
    assert "keyring_backend" in report  # a name, or null with no keyring (not a failure)
    assert "Traceback" not in done.stderr


def test_smoke_fails_with_the_reason_when_something_is_missing(
    qtbot: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from infinitetalk_gui.core import ffmpeg
    from infinitetalk_gui.core.errors import ConfigError
    from infinitetalk_gui.qt import compat

    def no_ffmpeg(user_path: str | None = None) -> str:
        raise ConfigError("ffmpeg was not found: the bundled copy is missing.")

    monkeypatch.setattr(ffmpeg, "find_ffmpeg", no_ffmpeg)
    monkeypatch.setattr(compat, "multimedia_status", lambda: (False, "libpulse0 is missing"))
    assert app.smoke() == 1
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is False and report["multimedia"] is False
    assert "ffmpeg was not found" in report["error"] and "libpulse0" in report["error"]


def test_screenshot_of_a_finished_demo_job(
    qtbot: Any,
    tmp_path: Path,
    portrait: Path,
    short_voice: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(paths, "demo_portrait", lambda: portrait)
    monkeypatch.setattr(paths, "demo_voice", lambda: short_voice)
    target = tmp_path / "shots" / "finished.png"
    assert app.screenshot(target, with_demo_job=True) == 0
    image = QtGui.QImage(str(target))
    assert (image.width(), image.height()) == app.SCREENSHOT_SIZE
    # The video frame is painted in (QVideoWidget itself grabs blank offscreen): the preview
    # area on the right holds many colours, not one flat fill.
    colours = {image.pixel(x, y) for x in range(500, 1050, 10) for y in range(100, 600, 10)}
    assert len(colours) > 20


def test_screenshot_needs_a_file(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        app.run_gui(["--with-demo-job"])
    assert exited.value.code == 2
    assert "--screenshot" in capsys.readouterr().err


def test_crash_handler_logs_shows_where_and_quits_leaving_the_job(
    qtbot: Any, log_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shown: list[CrashDialog] = []
    quits: list[bool] = []

    def fake_exec(dialog: CrashDialog) -> int:
        shown.append(dialog)
        return CrashDialog.QUIT

    monkeypatch.setattr(CrashDialog, "exec", fake_exec)
    handler = CrashHandler(
        log_file,
        job_note=lambda: "The render voice.wav is saved: it can be resumed from the History tab.",
        on_quit=lambda: quits.append(True),
    )
    try:
        raise RuntimeError("the flux capacitor is empty")
    except RuntimeError:
        handler(*sys.exc_info())

    assert quits == [True]
    text = shown[0].message.text()
    assert "the flux capacitor is empty" in text
    assert str(log_file) in text
    assert "can be resumed" in text
    assert "Traceback" not in text  # plain words first...
    assert shown[0].details.isHidden()
    assert "Traceback" in shown[0].details.toPlainText()  # ...details for a bug report
    shown[0].details_button.click()
    assert not shown[0].details.isHidden()
    logged = log_file.read_text()
    assert "the flux capacitor is empty" in logged and "Traceback" in logged


def test_log_viewer_shows_and_follows_the_log(qtbot: Any, log_file: Path) -> None:
    logging.getLogger("infinitetalk_gui.test").warning("first line for the viewer")
    viewer = LogViewer(log_file)
    qtbot.addWidget(viewer)
    assert "first line for the viewer" in viewer.text.toPlainText()
    logging.getLogger("infinitetalk_gui.test").warning("second line, later")
    qtbot.waitUntil(lambda: "second line, later" in viewer.text.toPlainText(), timeout=10000)
    big = log_file.parent / "big.log"
    big.write_text("".join(f"line {i}\n" for i in range(100000)))
    tail = read_tail(big, 1000)
    assert tail.startswith("line ") and tail.endswith("line 99999\n")


def test_log_viewer_without_a_log_says_so(qtbot: Any, tmp_path: Path) -> None:
    viewer = LogViewer(tmp_path / "nothing.log")
    qtbot.addWidget(viewer)
    assert viewer.text.toPlainText() == "Nothing has been logged yet."


def test_about_shows_versions(qtbot: Any) -> None:
    dialog = AboutDialog()
    qtbot.addWidget(dialog)
    qtbot.waitUntil(lambda: dialog.ffmpeg_label.text() != "checking…", timeout=30000)
    assert dialog.ffmpeg_label.text() not in ("", "unknown")
    assert "ffmpeg" in dialog.ffmpeg_label.toolTip()
    dialog.reject()
    assert ffmpeg_version_line("ffmpeg version 9.0.2-static https://x\nbuilt with gcc") == (
        "9.0.2-static"
    )


def test_run_app_opens_the_window_and_restores_the_excepthook(
    qtbot: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from infinitetalk_gui.qt.compat import QtWidgets
    from infinitetalk_gui.ui.main_window import MainWindow

    seen: dict[str, Any] = {}

    def fake_exec(qapp: QtWidgets.QApplication) -> int:
        qapp.processEvents()
        windows = [w for w in qapp.topLevelWidgets() if isinstance(w, MainWindow) and w.isVisible()]
        seen["windows"] = len(windows)
        seen["hook"] = sys.excepthook
        windows[0].close()
        return 0

    monkeypatch.setattr(QtWidgets.QApplication, "exec", fake_exec)
    before = sys.excepthook
    assert app.run_app() == 0
    assert seen["windows"] == 1
    assert isinstance(seen["hook"], CrashHandler)
    assert sys.excepthook is before
    assert paths.jobs_db().is_file()  # the real store, in this test's data dir
    root = logging.getLogger("infinitetalk_gui")
    for handler in list(root.handlers):
        if getattr(handler, "baseFilename", None) == str(paths.log_file().resolve()):
            root.removeHandler(handler)
            handler.close()
