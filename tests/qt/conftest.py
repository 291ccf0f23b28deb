"""Qt warnings fail the tests of tests/qt, during the test and during its fixtures' teardown.

pytest-qt's own capture stops before teardown (where the controller shuts down), so these tests
opt out of it (``no_qt_log``) and a message handler of ours watches the whole test instead.
Known harmless messages are filtered by category *and* text, nothing broader.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from infinitetalk_gui.qt.compat import QtCore, QtWidgets

HERE = Path(__file__).parent

# (category, a piece of the message): precisely the known harmless ones.
HARMLESS_QT_MESSAGES: tuple[tuple[str, str], ...] = (
    # QtMultimedia's ffmpeg backend on a machine without a hardware decoder (ENVIRONMENT.md).
    ("qt.multimedia.playbackengine.codec", "No HW decoder found"),
    # QtMultimedia probes for PipeWire and falls back when the box has none.
    ("qt.multimedia.symbolsresolver", "Couldn't load pipewire-0.3 library"),
    ("qt.multimedia.symbolsresolver", "Couldn't resolve pipewire-0.3 symbols"),
)

_WARNING_TYPES = frozenset(
    {QtCore.QtMsgType.QtWarningMsg, QtCore.QtMsgType.QtCriticalMsg, QtCore.QtMsgType.QtFatalMsg}
)


def is_harmless(category: str | None, message: str) -> bool:
    return any(category == cat and part in message for cat, part in HARMLESS_QT_MESSAGES)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.is_relative_to(HERE):
            item.add_marker(pytest.mark.no_qt_log)


@pytest.fixture(autouse=True)
def fail_on_qt_warnings(qapp: QtWidgets.QApplication) -> Iterator[list[str]]:
    """Collect Qt warnings from any thread; fail the test if one is not known to be harmless."""
    seen: list[str] = []
    lock = threading.Lock()

    def handler(kind: QtCore.QtMsgType, context: QtCore.QMessageLogContext, message: str) -> None:
        category = context.category if context is not None else None
        line = f"{kind.name} [{category}] {message}"
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
