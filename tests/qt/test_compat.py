"""compat.py: the one Qt import point, and its repair of PySide6's signal refcount bug."""

from __future__ import annotations

import sys

from infinitetalk_gui.qt import compat
from infinitetalk_gui.qt.compat import QtCore, Signal


class Emitter(QtCore.QObject):
    happened = Signal(object)


def test_many_signals_keep_bool_refcounts(qtbot) -> None:  # type: ignore[no-untyped-def]
    # Unrepaired, PySide6 6.12 on Python 3.11 drops a reference to True per emit/disconnect
    # and CPython aborts after a few hundred signals.
    emitter = Emitter()
    received: list[object] = []
    emitter.happened.connect(received.append)
    before = sys.getrefcount(True)
    for n in range(3000):
        emitter.happened.emit(n)
        emitter.happened.connect(print)
        emitter.happened.disconnect(print)
    with qtbot.waitSignal(emitter.happened, timeout=1000):
        emitter.happened.emit("last")
    assert abs(sys.getrefcount(True) - before) < 50
    assert received == [*range(3000), "last"]
    assert set(compat.SIGNAL_REFCOUNT_FIX) <= {"emit", "disconnect"}


def test_optional_modules_load_on_demand() -> None:
    ok, reason = compat.multimedia_status()
    assert ok, reason
    assert compat.QtMultimedia.QMediaPlayer is not None
    assert compat.QtMultimediaWidgets.QVideoWidget is not None
    assert compat.QT_VERSION.startswith("6.")
