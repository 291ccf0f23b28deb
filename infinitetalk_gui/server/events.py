"""Job events from the pipeline's threads to Server-Sent Event streams on the event loop."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from dataclasses import dataclass, field
from typing import Any

# A stream that falls this far behind loses its oldest events: the next "status" event
# carries the whole job again, so a slow reader still ends up with the truth.
QUEUE_SIZE = 256

Item = tuple[str, dict[str, Any]] | None  # (event name, data); None closes the stream


@dataclass(eq=False)
class Subscription:
    job_id: str
    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue[Item] = field(default_factory=lambda: asyncio.Queue(QUEUE_SIZE))

    def offer(self, item: Item) -> None:
        """Runs on the loop's thread (via call_soon_threadsafe)."""
        if self.queue.full():
            with contextlib.suppress(asyncio.QueueEmpty):
                self.queue.get_nowait()
        self.queue.put_nowait(item)


class EventBroker:
    """Fan-out of job events to the streams watching that job; safe to publish from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subs: dict[str, set[Subscription]] = {}
        self._closed = False

    def subscribe(self, job_id: str) -> Subscription:
        """Called on the event loop; subscribe before reading the job so nothing is missed."""
        sub = Subscription(job_id, asyncio.get_running_loop())
        with self._lock:
            if self._closed:
                sub.offer(None)
            else:
                self._subs.setdefault(job_id, set()).add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            subs = self._subs.get(sub.job_id)
            if subs is not None:
                subs.discard(sub)
                if not subs:
                    del self._subs[sub.job_id]

    def watched(self, job_id: str) -> bool:
        with self._lock:
            return bool(self._subs.get(job_id))

    def publish(self, job_id: str, item: Item) -> None:
        with self._lock:
            subs = list(self._subs.get(job_id, ()))
        for sub in subs:
            with contextlib.suppress(RuntimeError):  # the loop is closed: the stream is gone
                sub.loop.call_soon_threadsafe(sub.offer, item)

    def close_all(self) -> None:
        """End every stream (shutdown): new subscriptions end at once too."""
        with self._lock:
            self._closed = True
            subs = [sub for group in self._subs.values() for sub in group]
            self._subs.clear()
        for sub in subs:
            with contextlib.suppress(RuntimeError):
                sub.loop.call_soon_threadsafe(sub.offer, None)
