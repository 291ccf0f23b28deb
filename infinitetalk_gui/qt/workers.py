"""Off-GUI-thread work: a QRunnable around a plain callable, and the bridge back to the GUI.

A worker owns no signals (STYLE.md): it calls plain callbacks that the controller gives it. The
controller's callbacks post to a :class:`MainThreadBridge`, a QObject living on the GUI thread,
whose queued connection runs the posted callable on the GUI thread. So results, errors and core
events always reach widgets on the GUI thread, whatever thread produced them.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from infinitetalk_gui.qt.compat import QtCore, Signal, Slot

log = logging.getLogger(__name__)

T = TypeVar("T")


class Worker(QtCore.QRunnable, Generic[T]):
    """Run ``task()`` on a pool thread, then ``on_result(value)`` or ``on_error(exception)``.

    Both callbacks run on the pool thread: pass callbacks that post to the GUI thread (see
    :meth:`MainThreadBridge.post`). Every exception from the task is caught and handed to
    ``on_error`` (or logged when there is none): an exception escaping ``run`` would be lost
    silently by QThreadPool. ``autoDelete`` stays on: the pool deletes the runnable when done.
    """

    def __init__(
        self,
        task: Callable[[], T],
        on_result: Callable[[T], None] | None = None,
        on_error: Callable[[BaseException], None] | None = None,
        *,
        name: str = "worker",
    ) -> None:
        super().__init__()
        self.setAutoDelete(True)
        self._task = task
        self._on_result = on_result
        self._on_error = on_error
        self.name = name

    def run(self) -> None:
        threading.current_thread().name = f"qt-{self.name}"
        try:
            value = self._task()
        except BaseException as error:  # reported, never lost: the pool would swallow it
            if self._on_error is None:
                log.exception("%s failed", self.name)
            else:
                self._report(self._on_error, error)
            return
        if self._on_result is not None:
            self._report(self._on_result, value)

    def _report(self, callback: Callable[[Any], None], value: Any) -> None:
        try:
            callback(value)
        except Exception:  # a broken callback must not kill the pool thread
            log.exception("%s: result callback failed", self.name)


class MainThreadBridge(QtCore.QObject):
    """Runs callables on the thread this object lives on (the GUI thread), from any thread.

    ``post`` emits a signal connected with an explicit QueuedConnection to a slot of this
    object, so the callable runs later in this object's event loop, never in the caller's
    thread, even when the caller is the GUI thread itself.
    """

    _posted = Signal(object)

    def __init__(self, parent: QtCore.QObject | None = None) -> None:
        super().__init__(parent)
        self._closed = False
        self._posted.connect(self._run, QtCore.Qt.ConnectionType.QueuedConnection)

    def post(self, call: Callable[[], None]) -> None:
        """Queue ``call`` to run on this object's thread. Safe from any thread."""
        if not self._closed:
            self._posted.emit(call)

    def close(self) -> None:
        """Drop posts from now on (after shutdown nobody listens any more)."""
        self._closed = True

    @Slot(object)
    def _run(self, call: Callable[[], None]) -> None:
        if self._closed:
            return
        try:
            call()
        except Exception:  # a failing GUI callback must not take the event loop down
            log.exception("GUI-thread callback failed")


def start_worker(
    pool: QtCore.QThreadPool,
    task: Callable[[], T],
    on_result: Callable[[T], None] | None = None,
    on_error: Callable[[BaseException], None] | None = None,
    *,
    name: str = "worker",
) -> None:
    """Convenience: wrap ``task`` in a :class:`Worker` and start it on ``pool``."""
    pool.start(Worker(task, on_result, on_error, name=name))
