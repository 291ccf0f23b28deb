"""The one place that imports Qt: ui/, app.py and qt/ take every Qt name from here.

Keeping the binding behind one module means a binding or version change touches one file, and
``core/`` can be proven Qt-free (tests/qt/test_no_qt_in_core.py).

QtMultimedia, QtMultimediaWidgets and QtTest are loaded on first use, not at import: QtMultimedia
links libpulse/libEGL, which a bare Linux box may lack, and the headless parts of the app must
still start there (``--smoke`` reports the missing library instead of crashing at import).
"""

from __future__ import annotations

import ctypes
import functools
import importlib
import sys
from collections.abc import Callable
from types import ModuleType
from typing import TYPE_CHECKING, Any

try:
    import PySide6
    from PySide6 import QtCore, QtGui, QtWidgets
except ImportError as error:  # pragma: no cover - depends on the install
    raise ImportError(
        "PySide6 is not installed or cannot be loaded "
        f"({error}). Install it with: pip install PySide6-Essentials PySide6-Addons"
    ) from error

if TYPE_CHECKING:
    from PySide6 import QtMultimedia, QtMultimediaWidgets, QtTest

MIN_QT = (6, 7)

Signal = QtCore.Signal
Slot = QtCore.Slot
Property = QtCore.Property
Qt = QtCore.Qt

PYSIDE_VERSION: str = PySide6.__version__
QT_VERSION: str = QtCore.qVersion()


def _version_tuple(text: str) -> tuple[int, ...]:
    parts = []
    for part in text.split(".")[:3]:
        digits = "".join(ch for ch in part if ch.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)


if _version_tuple(QT_VERSION)[:2] < MIN_QT:  # pragma: no cover - depends on the install
    raise ImportError(
        f"Qt {QT_VERSION} is too old: this app needs Qt {MIN_QT[0]}.{MIN_QT[1]} or newer"
    )


# -- PySide6 6.12 + Python 3.11: SignalInstance.emit() and .disconnect() return True without
# owning a reference to it. Each call drops True's refcount by one; after a few hundred
# signals CPython aborts ("Fatal Python error: bool_dealloc"). Python 3.12+ has immortal
# bools and never notices. We measure the leak once, here, and only when it is there give
# the returned bool the reference it lacks; everything that imports Qt through this module
# (the whole app, and pytest-qt once this is imported) is then safe.

_PROBE_CALLS = 16


class _Probe(QtCore.QObject):
    fired = Signal()


def _incref(obj: object) -> None:
    ctypes.pythonapi.Py_IncRef(ctypes.py_object(obj))


def _owning_result(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def call(self: Any, *args: Any, **kwargs: Any) -> Any:
        result = method(self, *args, **kwargs)
        if result is True or result is False:
            _incref(result)  # the reference PySide forgot to give us
        return result

    return call


def _repair_signal_refcounts() -> list[str]:
    """Patch the leaking SignalInstance methods; returns the names patched (for --smoke)."""
    ctypes.pythonapi.Py_IncRef.argtypes = [ctypes.py_object]
    ctypes.pythonapi.Py_IncRef.restype = None
    probe = _Probe()
    instance_type = type(probe.fired)
    patched = []

    def noop() -> None:
        pass

    def emit() -> None:
        probe.fired.emit()

    def disconnect() -> None:
        probe.fired.connect(noop)
        probe.fired.disconnect(noop)

    for name, call in (("emit", emit), ("disconnect", disconnect)):
        before = sys.getrefcount(True)
        for _ in range(_PROBE_CALLS):
            call()
        lost = before - sys.getrefcount(True)
        if lost >= _PROBE_CALLS:
            for _ in range(lost):
                _incref(True)  # give back what the probe itself took
            setattr(instance_type, name, _owning_result(getattr(instance_type, name)))
            patched.append(name)
    return patched


SIGNAL_REFCOUNT_FIX: list[str] = _repair_signal_refcounts()

_LAZY = ("QtMultimedia", "QtMultimediaWidgets", "QtTest")


def __getattr__(name: str) -> ModuleType:
    """Load the optional Qt modules on first use (``from ...compat import QtMultimedia``)."""
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    try:
        module = importlib.import_module(f"PySide6.{name}")
    except ImportError as error:
        raise ImportError(
            f"Qt's {name} module cannot be loaded ({error}). On Linux it needs the system "
            "libraries libpulse0 and libegl1."
        ) from error
    globals()[name] = module
    return module


def multimedia_status() -> tuple[bool, str]:
    """(True, "") if QtMultimedia and its widgets load, else (False, a plain reason)."""
    try:
        __getattr__("QtMultimedia")
        __getattr__("QtMultimediaWidgets")
    except ImportError as error:
        return False, str(error)
    return True, ""


__all__ = [
    "MIN_QT",
    "PYSIDE_VERSION",
    "QT_VERSION",
    "SIGNAL_REFCOUNT_FIX",
    "Property",
    "Qt",
    "QtCore",
    "QtGui",
    "QtMultimedia",
    "QtMultimediaWidgets",
    "QtTest",
    "QtWidgets",
    "Signal",
    "Slot",
    "multimedia_status",
]
