"""Fixtures for the window tests: Qt warnings fail a test, small media, a window with its store.

Qt warnings are watched for the whole test, fixtures' teardown included (the window shuts the
controller down there): the machinery is shared with tests/qt, see :mod:`tests.qt_support`.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from infinitetalk_gui.core.settings import Settings
from infinitetalk_gui.core.store import JobStore
from infinitetalk_gui.qt.compat import QtCore, QtGui, QtWidgets
from infinitetalk_gui.qt.controller import RenderController
from infinitetalk_gui.ui.keys import ApiKeys
from infinitetalk_gui.ui.main_window import MainWindow
from infinitetalk_gui.ui.state import UiState
from tests import mediagen
from tests.qt_support import echo_qt_messages as echo_qt_messages  # off: windows are shown
from tests.qt_support import fail_on_qt_warnings as fail_on_qt_warnings  # autouse fixture
from tests.qt_support import mark_no_qt_log

HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    mark_no_qt_log(items, HERE)


# -- media -----------------------------------------------------------------------------------


@pytest.fixture
def media_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "media"
    folder.mkdir()
    return folder


@pytest.fixture
def portrait(media_dir: Path) -> Path:
    return mediagen.portrait(media_dir / "face.png", 240, 320)


@pytest.fixture
def voice(media_dir: Path) -> Path:
    """16 s of speech with pauses every 4 s: two chunks at a 10 s chunk length."""
    return mediagen.speechlike_wav(
        media_dir / "voice.wav", mediagen.alternating(16.0, voice_s=4.0, silence_s=0.8)
    )


@pytest.fixture
def short_voice(media_dir: Path) -> Path:
    return mediagen.speechlike_wav(media_dir / "short.wav", [("voice", 4.0)])


@pytest.fixture
def tiny_video(media_dir: Path) -> Path:
    """One second of H.264 + AAC at 64x64: something the preview player can open."""
    path = media_dir / "tiny.mp4"
    subprocess.run(
        [
            mediagen.FFMPEG, "-hide_banner", "-loglevel", "error", "-y",
            "-f", "lavfi", "-i", "testsrc=size=64x64:rate=25",
            "-f", "lavfi", "-i", "sine=f=440:sample_rate=16000",
            "-t", "1", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest",
            str(path),
        ],
        check=True,
    )  # fmt: skip
    return path


@pytest.fixture
def not_media(media_dir: Path) -> Callable[[str], Path]:
    """A text file with any name: an "image" or "recording" that is not one."""

    def make(name: str) -> Path:
        path = media_dir / name
        path.write_text("this is not media, just some words\n" * 20)
        return path

    return make


@pytest.fixture
def output_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "out"
    folder.mkdir()
    return folder


# -- the window ------------------------------------------------------------------------------


def small_settings(output_dir: Path, **changes: object) -> Settings:
    """Fast renders: 10 s chunks, two at a time (the window picks 256x256 in the tests)."""
    settings = Settings(output_dir=str(output_dir), chunk_seconds=10.0, concurrency=2)
    for key, value in changes.items():
        setattr(settings, key, value)
    return settings


class WindowFactory:
    """Builds windows sharing one job store and window-state file; shuts all down at the end."""

    def __init__(self, tmp_path: Path, output_dir: Path) -> None:
        self.tmp_path = tmp_path
        self.output_dir = output_dir
        self.store = JobStore(tmp_path / "jobs.sqlite3")
        self.state_path = tmp_path / "window.ini"
        self.windows: list[MainWindow] = []

    def __call__(
        self,
        settings: Settings | None = None,
        *,
        demo_latency_s: float = 0.2,
        keys: ApiKeys | None = None,
        show: bool = True,
    ) -> MainWindow:
        controller = RenderController(self.store, demo_latency_s=demo_latency_s)
        window = MainWindow(
            controller,
            self.store,
            settings=settings or small_settings(self.output_dir),
            keys=keys or ApiKeys(),
            state=UiState(self.state_path),
        )
        window.select_size(256, 256)
        self.windows.append(window)
        if show:
            window.show()
        return window

    def close_all(self) -> None:
        for window in self.windows:
            window.shutdown(cancel_running=True)
            window.close()
            window.deleteLater()
        self.store.close()


@pytest.fixture
def make_window(
    qapp: QtWidgets.QApplication, tmp_path: Path, output_dir: Path
) -> Iterator[WindowFactory]:
    factory = WindowFactory(tmp_path, output_dir)
    yield factory
    factory.close_all()


@pytest.fixture
def window(make_window: WindowFactory) -> MainWindow:
    return make_window()


# -- helpers ---------------------------------------------------------------------------------


def drag_enter_event(point: QtCore.QPointF, mime: QtCore.QMimeData) -> QtGui.QDragEnterEvent:
    """PySide 6.12 wants a QPointF (the QPoint form is deprecated); older ones only a QPoint."""
    args = (
        QtCore.Qt.DropAction.CopyAction,
        mime,
        QtCore.Qt.MouseButton.LeftButton,
        QtCore.Qt.KeyboardModifier.NoModifier,
    )
    try:
        # The stubs of one binding version or the other reject one of the two forms.
        event: QtGui.QDragEnterEvent = QtGui.QDragEnterEvent(point, *args)  # type: ignore[call-overload, unused-ignore]
        return event
    except TypeError:
        return QtGui.QDragEnterEvent(point.toPoint(), *args)  # type: ignore[call-overload, unused-ignore]


def drop_urls(widget: QtWidgets.QWidget, urls: Sequence[Path | str]) -> bool:
    """A real drag-enter + drop with QMimeData URLs, as a file manager sends; True if accepted."""
    mime = QtCore.QMimeData()
    mime.setUrls(
        [QtCore.QUrl.fromLocalFile(str(u)) if isinstance(u, Path) else QtCore.QUrl(u) for u in urls]
    )
    point = QtCore.QPointF(widget.rect().center())
    enter = drag_enter_event(point, mime)
    QtWidgets.QApplication.sendEvent(widget, enter)
    if not enter.isAccepted():
        return False
    drop = QtGui.QDropEvent(
        point,
        QtCore.Qt.DropAction.CopyAction,
        mime,
        QtCore.Qt.MouseButton.LeftButton,
        QtCore.Qt.KeyboardModifier.NoModifier,
    )
    QtWidgets.QApplication.sendEvent(widget, drop)
    return drop.isAccepted()


def load_inputs(qtbot: object, window: MainWindow, portrait: Path, voice: Path) -> None:
    """Drop both files and wait until the core has accepted them."""
    assert drop_urls(window.portrait_zone, [portrait])
    assert drop_urls(window.voice_zone, [voice])
    qtbot.waitUntil(  # type: ignore[attr-defined]
        lambda: window.portrait_zone.path == portrait and window.voice_zone.path == voice,
        timeout=30000,
    )
