"""The desktop app: builds the QApplication, the job store, the controller and the window.

``run_gui(argv)`` is what ``infinitetalk-gui`` runs with no subcommand:

- no arguments: open the window;
- ``--smoke``: build the window offscreen, check ffmpeg, QtMultimedia and the keyring, print one
  JSON object and exit 0 (non-zero with the reason when something needed is missing);
- ``--screenshot FILE.png [--with-demo-job]``: render the window to a PNG, optionally after a
  finished demo render (``--while-running`` captures it mid-render instead).

Qt is imported inside the functions, so importing this module (and the CLI) stays Qt-free.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from infinitetalk_gui import __version__

if TYPE_CHECKING:
    from infinitetalk_gui.qt.compat import QtGui, QtWidgets
    from infinitetalk_gui.ui.main_window import MainWindow

log = logging.getLogger(__name__)

APP_DISPLAY_NAME = "InfiniteTalk"
SCREENSHOT_SIZE = (1100, 720)
DEMO_JOB_TIMEOUT_S = 300.0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="infinitetalk-gui",
        description="Open the InfiniteTalk desktop app.",
    )
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="check that the app can start (offscreen); print a JSON report and exit",
    )
    parser.add_argument(
        "--screenshot", metavar="FILE.png", type=Path, help="render the window to a PNG and exit"
    )
    parser.add_argument(
        "--with-demo-job",
        action="store_true",
        help="with --screenshot: first render the demo media on the built-in demo endpoint",
    )
    parser.add_argument(
        "--while-running",
        action="store_true",
        help="with --with-demo-job: capture the window while the render is running",
    )
    parser.add_argument(
        "files",
        nargs="*",
        type=Path,
        metavar="FILE",
        help="a portrait and/or a voice clip to open (what 'Open with' passes)",
    )
    return parser


def open_files(window: MainWindow, files: Sequence[Path]) -> None:
    """Hand files from the command line to the drop zones: images to Portrait, the rest to Voice."""
    image_suffixes = {".png", ".jpg", ".jpeg", ".webp"}
    for path in files:
        zone = window.portrait_zone if path.suffix.lower() in image_suffixes else window.voice_zone
        zone.choose(path.absolute())


def run_gui(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    if (args.with_demo_job or args.while_running) and args.screenshot is None:
        parser.error("--with-demo-job and --while-running go with --screenshot FILE.png")
    if args.smoke:
        return smoke()
    if args.screenshot is not None:
        _default_to_offscreen()
        return screenshot(
            args.screenshot, with_demo_job=args.with_demo_job, while_running=args.while_running
        )
    if not _has_display():
        print(
            "infinitetalk-gui: no display was found, so the window cannot open. Run it in a "
            "desktop session, or use the command line: infinitetalk-gui --help",
            file=sys.stderr,
        )
        return 1
    try:
        from infinitetalk_gui.qt.compat import multimedia_status
    except ImportError as error:
        print(f"infinitetalk-gui: the window cannot open: {error}", file=sys.stderr)
        return 1
    multimedia_ok, why = multimedia_status()
    if not multimedia_ok:
        print(f"infinitetalk-gui: the window cannot open: {why}", file=sys.stderr)
        return 1
    return run_app(args.files)


# --------------------------------------------------------------------------------------------
# Pieces shared by every mode


def _has_display() -> bool:
    if os.environ.get("QT_QPA_PLATFORM") or not sys.platform.startswith("linux"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def _default_to_offscreen() -> None:
    if not _has_display():
        os.environ["QT_QPA_PLATFORM"] = "offscreen"


def make_application() -> QtWidgets.QApplication:
    """The QApplication (or the one that exists already, e.g. under pytest-qt)."""
    from infinitetalk_gui.qt.compat import QtCore, QtGui, QtWidgets
    from infinitetalk_gui.ui import icons

    existing = QtWidgets.QApplication.instance()
    if isinstance(existing, QtWidgets.QApplication):
        return existing
    # Fractional scale factors (125 %, 150 %) are used as they are, not rounded: crisp text.
    QtGui.QGuiApplication.setHighDpiScaleFactorRoundingPolicy(
        QtCore.Qt.HighDpiScaleFactorRoundingPolicy.PassThrough
    )
    app = QtWidgets.QApplication([sys.argv[0] if sys.argv else "infinitetalk-gui"])
    app.setApplicationName("infinitetalk-gui")
    app.setApplicationDisplayName(APP_DISPLAY_NAME)
    app.setApplicationVersion(__version__)
    app.setOrganizationName("infinitetalk-gui")
    app.setDesktopFileName("infinitetalk-gui")
    app.setWindowIcon(icons.app_icon())
    return app


def load_settings_or_default(report: Callable[[str], None]) -> Any:
    """The saved settings; defaults (and a message) if the file cannot be read."""
    from infinitetalk_gui.core import settings as core_settings
    from infinitetalk_gui.core.errors import ConfigError

    try:
        return core_settings.load()
    except ConfigError as error:
        report(f"Your settings cannot be read, so the app starts with default settings: {error}")
        return core_settings.Settings()


# --------------------------------------------------------------------------------------------
# The app


def run_app(files: Sequence[Path] = ()) -> int:
    from infinitetalk_gui.core import logs
    from infinitetalk_gui.core.errors import InfiniteTalkError
    from infinitetalk_gui.core.store import JobStore
    from infinitetalk_gui.qt.compat import QtCore, QtWidgets
    from infinitetalk_gui.qt.controller import RenderController
    from infinitetalk_gui.ui.crash_dialog import CrashHandler
    from infinitetalk_gui.ui.main_window import MainWindow

    log_path = logs.setup_logging()
    log.info("starting the desktop app %s", __version__)
    app = make_application()
    try:
        store = JobStore()
    except InfiniteTalkError as error:
        QtWidgets.QMessageBox.critical(None, "InfiniteTalk cannot start", str(error))
        return 1
    problems: list[str] = []
    settings = load_settings_or_default(problems.append)
    prepare_process()
    controller = RenderController(store)
    window = MainWindow(controller, store, settings=settings)

    def quit_keep_job() -> None:
        window.shutdown(cancel_running=False)
        app.exit(1)

    previous_hook = sys.excepthook
    sys.excepthook = CrashHandler(
        log_path, parent=lambda: window, job_note=window.job_note, on_quit=quit_keep_job
    )
    try:
        window.show()
        for problem in problems:
            QtWidgets.QMessageBox.warning(window, "Settings", problem)
        QtCore.QTimer.singleShot(0, window.offer_interrupted)
        if files:
            QtCore.QTimer.singleShot(0, lambda: open_files(window, files))
        code = int(app.exec())
        window.shutdown(cancel_running=False)  # no-op when the window closed normally
        return code
    finally:
        sys.excepthook = previous_hook
        store.close()


# --------------------------------------------------------------------------------------------
# --smoke


def smoke() -> int:
    """Build the window offscreen and check what the app needs; one JSON object on stdout."""
    os.environ["QT_QPA_PLATFORM"] = "offscreen"  # never flash a window on a desktop
    report: dict[str, Any] = {
        "ok": False,
        "version": __version__,
        "python": platform.python_version(),
        "platform": sys.platform,
        "qt": None,
        "pyside": None,
        "ffmpeg": None,
        "ffmpeg_version": None,
        "keyring_backend": None,
        "multimedia": False,
        "window": False,
    }
    problems: list[str] = []
    _smoke_ffmpeg(report, problems)
    try:
        from infinitetalk_gui.core import secrets

        report["keyring_backend"] = secrets.backend_name()
    except Exception as error:  # no keyring is not a failure: the app keeps a session key
        report["keyring_backend"] = None
        report["keyring_error"] = str(error)
    try:
        from infinitetalk_gui.qt import compat
    except ImportError as error:
        problems.append(f"Qt cannot be loaded: {error}")
    else:
        report["qt"] = compat.QT_VERSION
        report["pyside"] = compat.PYSIDE_VERSION
        multimedia_ok, why = compat.multimedia_status()
        if not multimedia_ok:
            problems.append(why)
        else:
            _smoke_window(report, problems)
    report["ok"] = not problems
    if problems:
        report["error"] = "; ".join(problems)
    print(json.dumps(report), flush=True)
    return 0 if report["ok"] else 1


def _smoke_ffmpeg(report: dict[str, Any], problems: list[str]) -> None:
    from infinitetalk_gui.core.errors import ConfigError
    from infinitetalk_gui.core.ffmpeg import find_ffmpeg

    try:
        exe = find_ffmpeg()
    except ConfigError as error:
        problems.append(str(error))
        return
    report["ffmpeg"] = str(Path(exe).absolute())
    try:
        done = subprocess.run(
            [exe, "-hide_banner", "-version"], capture_output=True, timeout=60, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        problems.append(f"ffmpeg at {exe} does not run: {error}")
        return
    if done.returncode != 0:
        problems.append(f"ffmpeg at {exe} does not run (exit code {done.returncode})")
        return
    from infinitetalk_gui.ui.text import ffmpeg_version_line

    report["ffmpeg_version"] = ffmpeg_version_line(done.stdout.decode("utf-8", "replace"))


def _smoke_window(report: dict[str, Any], problems: list[str]) -> None:
    """Build the real window and a media player, with a throwaway job store and window state."""
    from infinitetalk_gui.core.settings import Settings
    from infinitetalk_gui.core.store import JobStore
    from infinitetalk_gui.qt.compat import QtMultimedia, QtWidgets
    from infinitetalk_gui.qt.controller import RenderController
    from infinitetalk_gui.ui.main_window import MainWindow
    from infinitetalk_gui.ui.state import UiState

    app = make_application()
    with tempfile.TemporaryDirectory(prefix="infinitetalk-smoke-") as tmp:
        store = JobStore(Path(tmp) / "jobs.sqlite3")
        controller = RenderController(store)
        try:
            window = MainWindow(
                controller, store, settings=Settings(), state=UiState(Path(tmp) / "window.ini")
            )
            window.show()
            app.processEvents()
            report["window"] = window.isVisible()
            # The player loads the multimedia backend plugin: proves it is bundled.
            formats = QtMultimedia.QMediaFormat().supportedFileFormats(
                QtMultimedia.QMediaFormat.ConversionMode.Decode
            )
            report["multimedia"] = QtMultimedia.QMediaFormat.FileFormat.MPEG4 in formats
            if not report["multimedia"]:
                problems.append("QtMultimedia has no backend that plays MP4 video")
            window.shutdown(cancel_running=True)
            window.close()
            window.deleteLater()
            app.processEvents()
        except Exception as error:  # reported as the smoke test's failure, with the reason
            log.exception("smoke: the window could not be built")
            problems.append(f"the main window could not be built: {error}")
            controller.shutdown(True)
        finally:
            store.close()
            QtWidgets.QApplication.processEvents()


# --------------------------------------------------------------------------------------------
# --screenshot


def grab_window(window: MainWindow) -> QtGui.QPixmap:
    """The window as a pixmap, with the video frame painted in (QVideoWidget grabs blank)."""
    from infinitetalk_gui.qt.compat import QtCore, QtGui

    pixmap = window.grab()
    preview = window.preview
    frame = preview.current_frame()
    video = preview.video_widget
    if frame is not None and video.isVisible():
        top_left = video.mapTo(window, QtCore.QPoint(0, 0))
        area = QtCore.QRectF(QtCore.QPointF(top_left), QtCore.QSizeF(video.size()))
        size = QtCore.QSizeF(frame.size())
        size.scale(area.size(), QtCore.Qt.AspectRatioMode.KeepAspectRatio)
        target = QtCore.QRectF(QtCore.QPointF(0, 0), size)
        target.moveCenter(area.center())
        painter = QtGui.QPainter(pixmap)
        painter.setRenderHint(QtGui.QPainter.RenderHint.SmoothPixmapTransform)
        painter.fillRect(area, QtGui.QColor("black"))
        painter.drawImage(target, frame)
        painter.end()
    return pixmap


def prepare_process() -> None:
    """What the desktop app does before its window shows, so that a render never stalls it.

    ffmpeg children run at a lower CPU priority than the window. One-off costs are paid now,
    when nobody waits, rather than mid-render: Pillow's format plugins (else loaded on a worker
    thread at the first drop, ~80 ms holding the GIL) and the chunk table's paint path (else
    PySide6 creates its lazy types and enums on the GUI thread as the first rows come in).
    ``bench/bench_gui_stall.py`` measures all three.
    """
    from infinitetalk_gui.core import ffmpeg
    from infinitetalk_gui.core.media import preload_image_plugins
    from infinitetalk_gui.qt.models import warm_up_chunk_table

    ffmpeg.run_in_background()
    preload_image_plugins()
    warm_up_chunk_table()


def screenshot(target: Path, *, with_demo_job: bool, while_running: bool = False) -> int:
    """Render the window to ``target``; hermetic: temporary job store, settings and output."""
    from infinitetalk_gui.core import logs

    logs.setup_logging()
    app = make_application()
    from infinitetalk_gui.core.settings import Settings
    from infinitetalk_gui.core.store import JobStore
    from infinitetalk_gui.qt.controller import RenderController
    from infinitetalk_gui.ui.main_window import MainWindow
    from infinitetalk_gui.ui.state import UiState

    with tempfile.TemporaryDirectory(prefix="infinitetalk-shot-") as tmp:
        work = Path(tmp)
        store = JobStore(work / "jobs.sqlite3")
        # Short chunks so the demo voice makes several; one at a time (and a slower demo
        # endpoint) while running, so the capture catches chunks in every state.
        settings = Settings(
            output_dir=str(work), chunk_seconds=10.0, concurrency=1 if while_running else 2
        )
        controller = RenderController(store, demo_latency_s=3.0 if while_running else 1.0)
        window = MainWindow(
            controller, store, settings=settings, state=UiState(work / "window.ini")
        )
        window.resize(*SCREENSHOT_SIZE)
        window.show()
        try:
            if with_demo_job:
                problem = _run_demo_job(app, window, while_running=while_running)
                if problem:
                    print(f"infinitetalk-gui: {problem}", file=sys.stderr)
                    return 1
            _settle(app, 0.3)
            target = target.expanduser().absolute()
            target.parent.mkdir(parents=True, exist_ok=True)
            if not grab_window(window).save(str(target), "PNG"):
                print(f"infinitetalk-gui: cannot write {target}", file=sys.stderr)
                return 1
            print(target)
            return 0
        finally:
            window.shutdown(cancel_running=True)
            window.close()
            store.close()


def _settle(app: Any, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        app.processEvents()
        time.sleep(0.01)


def _wait(app: Any, condition: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        app.processEvents()
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def _run_demo_job(app: Any, window: MainWindow, *, while_running: bool) -> str | None:
    """Load the shipped demo media, render on the demo endpoint, wait; a problem or None."""
    from infinitetalk_gui.core import paths
    from infinitetalk_gui.core.models import JobState

    try:
        portrait, voice = paths.demo_portrait(), paths.demo_voice()
    except ImportError as error:
        return f"the demo media are not installed ({error})"
    for media in (portrait, voice):
        if not media.is_file():
            return f"the demo media {media} is missing"
    window.portrait_zone.choose(portrait)
    window.voice_zone.choose(voice)
    ready = _wait(
        app,
        lambda: window.portrait_zone.path is not None and window.voice_zone.path is not None,
        60,
    )
    if not ready:
        return (
            window.portrait_zone.error_text
            or window.voice_zone.error_text
            or "the demo media were not ready in time"
        )
    window.start_render()

    def job() -> Any:
        return window.controller.current_job

    if while_running:
        # Some chunks done and some still rendering: the most telling moment.
        def mid_render() -> bool:
            current = job()
            return (
                current is not None
                and current.chunks_done >= 1
                and any(c.state is JobState.IN_PROGRESS for c in current.chunks)
            )

        if not _wait(app, mid_render, DEMO_JOB_TIMEOUT_S):
            return "the demo render did not reach the middle in time"
        _settle(app, 0.6)  # let the progress estimates tick
        return None
    finished = _wait(
        app,
        lambda: not window.busy and job() is not None and job().state.terminal,
        DEMO_JOB_TIMEOUT_S,
    )
    if not finished:
        return "the demo render did not finish in time"
    if job().state is not JobState.COMPLETED:
        return f"the demo render ended {job().state}: {job().error}"
    # Wait for the preview's poster frame, then move a little into the clip for a livelier frame.
    _wait(app, lambda: window.preview.current_frame() is not None, 20)
    window.preview.seek(1500)
    _settle(app, 1.0)
    return None
