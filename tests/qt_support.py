"""Qt warnings fail the Qt tests (tests/qt, tests/ui), during the test and its fixtures' teardown.

pytest-qt's own capture stops before teardown (where the controller and windows shut down), so
these tests opt out of it (``no_qt_log``, see :func:`mark_no_qt_log`) and a message handler of
ours watches the whole test instead (:func:`fail_on_qt_warnings`; :func:`echo_qt_messages`
says whether it also prints every message). Known harmless messages are filtered by category
*and* text, nothing broader.

Imports Qt: only the conftests of the Qt test folders use it, never tests/conftest.py (the core
tests run without Qt). A conftest imports the fixtures, which then work as if defined there.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from infinitetalk_gui.qt.compat import QtCore, QtWidgets

# (category, a piece of the message): precisely the known harmless ones.
HARMLESS_QT_MESSAGES: tuple[tuple[str, str], ...] = (
    # QtMultimedia's ffmpeg backend on a machine without a hardware decoder (ENVIRONMENT.md).
    ("qt.multimedia.playbackengine.codec", "No HW decoder found"),
    # QtMultimedia probes optional system libraries (PipeWire, VA-API) and falls back when
    # they are missing.
    ("qt.multimedia.symbolsresolver", "Couldn't load pipewire-0.3 library"),
    ("qt.multimedia.symbolsresolver", "Couldn't resolve pipewire-0.3 symbols"),
    ("qt.multimedia.symbolsresolver", "Couldn't load va"),
    ("qt.multimedia.symbolsresolver", "Couldn't resolve va"),
    # No sound server and no audio device on a CI box: the player plays without sound.
    ("default", "PulseAudioService: pa_context_connect() failed"),
    ("default", "No audio device detected"),
    # Offscreen there is no GPU: video frames are converted on the CPU.
    ("default", "No RHI backend. Using CPU conversion."),
    # The offscreen platform cannot pass window size hints on: meaningless without a screen.
    ("qt.qpa.offscreen", "This plugin does not support propagateSizeHints()"),
    ("default", "This plugin does not support propagateSizeHints()"),
    # Nor can it stack windows: showing the video widget again asks for a raise().
    ("default", "This plugin does not support raise()"),
)

_WARNING_TYPES = frozenset(
    {QtCore.QtMsgType.QtWarningMsg, QtCore.QtMsgType.QtCriticalMsg, QtCore.QtMsgType.QtFatalMsg}
)


def is_harmless(category: str | None, message: str) -> bool:
    return any(category == cat and part in message for cat, part in HARMLESS_QT_MESSAGES)


def mark_no_qt_log(items: list[pytest.Item], folder: Path) -> None:
    """Opt the tests under ``folder`` out of pytest-qt's capture (our handler replaces it).

    A conftest's ``pytest_collection_modifyitems`` sees every collected item, not only its
    folder's: hence the folder check.
    """
    for item in items:
        if item.path.is_relative_to(folder):
            item.add_marker(pytest.mark.no_qt_log)


@pytest.fixture
def echo_qt_messages() -> bool:
    """Also print every Qt message to stderr (shown with a failing test's captured output).

    Off by default: pytest-qt processes events between a test's phases, outside pytest's
    capture, so with windows on screen the echo would reach the terminal. A conftest overrides
    this fixture to turn it on.
    """
    return False


@pytest.fixture(autouse=True)
def fail_on_qt_warnings(
    qapp: QtWidgets.QApplication, echo_qt_messages: bool
) -> Iterator[list[str]]:
    """Collect Qt warnings from any thread; fail the test if one is not known to be harmless."""
    seen: list[str] = []
    lock = threading.Lock()

    def handler(kind: QtCore.QtMsgType, context: QtCore.QMessageLogContext, message: str) -> None:
        category = context.category if context is not None else None
        line = f"{kind.name} [{category}] {message}"
        if echo_qt_messages:
            print(f"Qt: {line}", file=sys.stderr)
        if kind in _WARNING_TYPES and not is_harmless(category, message):
            with lock:
                seen.append(line)

    previous = QtCore.qInstallMessageHandler(handler)
    try:
        yield seen
        # Let queued events (deferred deletes, queued signals) run while we still listen.
        QtCore.QCoreApplication.sendPostedEvents(None, QtCore.QEvent.Type.DeferredDelete)
        QtCore.QCoreApplication.processEvents()
    finally:
        QtCore.qInstallMessageHandler(previous)
    if seen:
        pytest.fail("Qt warnings:\n" + "\n".join(seen), pytrace=False)
