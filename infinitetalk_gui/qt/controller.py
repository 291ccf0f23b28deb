"""The render controller: the one QObject the widgets talk to about jobs, previews and the endpoint.

It lives on the GUI thread and owns every signal. Work runs on a QThreadPool as
:class:`~infinitetalk_gui.qt.workers.Worker` runnables; their results and the pipeline's events
(called on worker threads) come back through a :class:`MainThreadBridge`, so every signal below
is emitted on the GUI thread. Pipeline events are coalesced: a burst of chunk events becomes at
most one batch of signals per ``flush_interval_ms``, carrying the latest snapshot.

Cancellation is the core's CancelToken, set on a pool thread (setting it stops ffmpeg
processes, which may take a moment); no thread is ever terminated.
"""

from __future__ import annotations

import dataclasses
import logging
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

import numpy as np
import numpy.typing as npt

from infinitetalk_gui.core import audio as audio_core
from infinitetalk_gui.core import media, paths, pipeline, runpod
from infinitetalk_gui.core.cancel import CancelToken
from infinitetalk_gui.core.demo_endpoint import DemoEndpoint, DemoEndpointProcess
from infinitetalk_gui.core.errors import InfiniteTalkError
from infinitetalk_gui.core.models import Job, JobState, RenderSettings
from infinitetalk_gui.core.store import JobStore
from infinitetalk_gui.qt.compat import QtCore, QtGui, Signal
from infinitetalk_gui.qt.workers import MainThreadBridge, Worker

log = logging.getLogger(__name__)

T = TypeVar("T")

ENVELOPE_POINTS = 2000  # waveform resolution: one point per pixel of a wide window
FLUSH_INTERVAL_MS = 50  # at most ~20 batches of job signals per second
MAX_LOG_LINES_PER_FLUSH = 200  # past this a burst is summarised; the full text is in the log
DEFAULT_SHUTDOWN_TIMEOUT_MS = 60_000


@dataclass(frozen=True)
class AudioPreview:
    """What the voice drop zone shows: duration, waveform and the planned chunk cuts."""

    info: audio_core.AudioInfo
    envelope: npt.NDArray[np.float32]  # peak level 0..1, ENVELOPE_POINTS slices of the audio
    cuts: list[tuple[int, int]]  # (start_ms, end_ms) of each planned chunk
    duration_ms: int
    silences: list[tuple[int, int]] = field(default_factory=list)
    params: audio_core.SplitParams = field(default_factory=audio_core.SplitParams)


@dataclass(frozen=True)
class ImagePreview:
    """What the portrait drop zone shows: the portrait framed exactly as it will be sent."""

    info: media.ImageInfo
    framed: QtGui.QImage
    width: int
    height: int
    pad: str


# What an audio analysis hands back, and what replan_cuts keeps of the last one.
_AudioResult = tuple[audio_core.AudioInfo, audio_core.AudioAnalysis, AudioPreview]
_LastAudio = tuple[Path, audio_core.AudioInfo, audio_core.AudioAnalysis, audio_core.SplitParams]
# The previews: each kind has its own analysed/rejected signals and request generation.
_PreviewKind = Literal["audio", "image"]


def _audio_preview(
    info: audio_core.AudioInfo,
    analysis: audio_core.AudioAnalysis,
    params: audio_core.SplitParams,
    points: int,
) -> AudioPreview:
    """What the voice zone draws: the waveform and the cuts planned for these settings."""
    return AudioPreview(
        info=info,
        envelope=audio_core.waveform_envelope(analysis, points),
        cuts=audio_core.plan_cuts(
            analysis.duration_ms, analysis.silences, analysis.energy_db, params
        ),
        duration_ms=analysis.duration_ms,
        silences=list(analysis.silences),
        params=params,
    )


def pil_to_qimage(image: Any) -> QtGui.QImage:
    """A PIL image as a QImage that owns its pixels (safe to build off the GUI thread)."""
    rgba = image.convert("RGBA")
    data = rgba.tobytes("raw", "RGBA")
    qimage = QtGui.QImage(
        data, rgba.width, rgba.height, rgba.width * 4, QtGui.QImage.Format.Format_RGBA8888
    )
    return qimage.copy()  # detach from ``data``, which Python frees


def human_error(error: BaseException) -> str:
    """A message for a dialog: the core's own words, or a plain line for a bug (never a trace)."""
    if isinstance(error, InfiniteTalkError):
        return str(error)
    if isinstance(error, OSError):
        where = f" ({error.filename})" if error.filename else ""
        return f"{error.strerror or error}{where}"
    return f"Unexpected error: {error}. Details are in the log: {paths.log_file()}"


class _PendingEvents:
    """Pipeline events waiting for the GUI thread; filled from any thread."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.job: Job | None = None
        self.reset = False
        self.chunks: dict[int, None] = {}  # an ordered set of changed chunk indexes
        self.lines: list[str] = []
        self.wake_posted = False

    def take(self) -> tuple[Job | None, bool, list[int], list[str]]:
        with self.lock:
            taken = (self.job, self.reset, list(self.chunks), self.lines)
            self.job, self.reset, self.chunks, self.lines = None, False, {}, []
            self.wake_posted = False
        return taken


class RenderController(QtCore.QObject):
    """Starts, watches, cancels and resumes renders; analyses dropped files off the GUI thread."""

    jobChanged = Signal(object)  # Job snapshot: state/stage/error/progress changed
    chunksReset = Signal(object)  # Job snapshot: the chunk list was (re)planned or grew
    chunkChanged = Signal(object, int)  # Job snapshot, chunk index
    logLine = Signal(str)  # one human line per state change
    jobFinished = Signal(object)  # Job snapshot in a terminal state
    busyChanged = Signal(bool)
    errorOccurred = Signal(str, str)  # title, human message (never a traceback)
    audioAnalysed = Signal(str, object)  # path, AudioPreview
    audioRejected = Signal(str, str)  # path, human message
    imageAnalysed = Signal(str, object)  # path, ImagePreview
    imageRejected = Signal(str, str)  # path, human message
    connectionChecked = Signal(bool, str)  # ok, human message

    def __init__(
        self,
        store: JobStore,
        pool: QtCore.QThreadPool | None = None,
        parent: QtCore.QObject | None = None,
        *,
        demo_latency_s: float = 1.0,
        flush_interval_ms: int = FLUSH_INTERVAL_MS,
    ) -> None:
        super().__init__(parent)
        self._store = store
        if pool is None:
            pool = QtCore.QThreadPool(self)
            # A render holds one thread for its whole run; previews and cancels need others
            # even on a two-core machine.
            pool.setMaxThreadCount(max(4, QtCore.QThread.idealThreadCount()))
        self._pool = pool
        self._bridge = MainThreadBridge(self)
        self._pending = _PendingEvents()
        self._flush_interval_ms = flush_interval_ms
        self._flush_timer = QtCore.QTimer(self)
        self._flush_timer.setSingleShot(True)
        self._flush_timer.timeout.connect(self._flush)
        self._last_flush = 0.0
        self._emitted_chunk_count = -1

        self._job: Job | None = None
        self._busy = False
        self._token: CancelToken | None = None
        self._detach = CancelToken()  # set once, at quit: leave the running job resumable
        self._api_key: str | None = None
        self._closed = False

        self._demo_latency_s = demo_latency_s
        self._demo: DemoEndpointProcess | DemoEndpoint | None = None
        self._demo_lock = threading.Lock()

        # Bumped by each preview request: only the newest answer of a kind is signalled.
        self._generations: dict[_PreviewKind, int] = {"audio": 0, "image": 0}
        # The last analysed voice file, kept for replan_cuts: path, info, analysis, params.
        self._last_audio: (
            tuple[Path, audio_core.AudioInfo, audio_core.AudioAnalysis, audio_core.SplitParams]
            | None
        ) = None

    # -- state ------------------------------------------------------------------------------

    @property
    def busy(self) -> bool:
        """True while a render (start, retry or resume) is being driven."""
        return self._busy

    @property
    def current_job(self) -> Job | None:
        """The latest snapshot of the job this window shows."""
        return self._job

    @property
    def pool(self) -> QtCore.QThreadPool:
        return self._pool

    @property
    def store(self) -> JobStore:
        return self._store

    @property
    def demo_url(self) -> str | None:
        """The running demo endpoint's URL, or None when none was needed yet."""
        with self._demo_lock:
            return self._demo.url if self._demo is not None else None

    def _set_busy(self, busy: bool) -> None:
        if busy != self._busy:
            self._busy = busy
            self.busyChanged.emit(busy)

    # -- renders ----------------------------------------------------------------------------

    def start_render(
        self,
        image: Path,
        audio: Path,
        output: Path,
        settings: RenderSettings,
        api_key: str | None,
        demo: bool,
    ) -> None:
        """Validate, store and drive a new job off the GUI thread.

        Input problems come back as ``errorOccurred`` before any job exists; after that,
        the job's progress comes as job/chunk signals and ends with ``jobFinished``.
        ``demo`` renders on a built-in endpoint (started once, on first use) with no key.
        """
        if not self._can_start("Cannot start the render"):
            return
        key = None if demo else api_key
        token = self._begin(api_key=key)

        def create_and_run() -> Job:
            render_settings = settings
            if demo:
                render_settings = dataclasses.replace(
                    settings, endpoint_url=self._ensure_demo(), demo=True
                )
            job = pipeline.create_job(
                Path(image), Path(audio), Path(output), render_settings, store=self._store
            )
            self._bridge.post(lambda: self._adopt(job, f"Job {job.id} created."))
            return self._run(job.id, token, key)

        self._start_job_worker(create_and_run, "Cannot start the render", "render")

    def retry_failed(self) -> None:
        """Run the current FAILED/CANCELLED/TIMED_OUT job again: only missing chunks render."""
        job = self._job
        if job is None or job.state not in (
            JobState.FAILED,
            JobState.CANCELLED,
            JobState.TIMED_OUT,
        ):
            self.errorOccurred.emit(
                "Nothing to retry", "Only a failed, cancelled or timed-out job can be retried."
            )
            return
        self._resume_job(job.id, self._api_key, "Cannot retry the job")

    def resume(self, job_id: str, api_key: str | None) -> None:
        """Finish an interrupted (or failed/cancelled) job from the history."""
        self._resume_job(job_id, api_key, "Cannot resume the job")

    def cancel(self) -> None:
        """Cancel the running job: remote chunks get /cancel, the job ends CANCELLED."""
        token = self._token
        if not self._busy or token is None or token.cancelled:
            return
        self.logLine.emit("Cancelling: stopping the remote chunks...")
        # token.cancel() runs the core's cancel callbacks (stopping ffmpeg waits for it to
        # exit), so it runs on the pool, not here.
        self._pool.start(Worker(token.cancel, None, self._log_error, name="cancel"))

    def _resume_job(self, job_id: str, api_key: str | None, title: str) -> None:
        if not self._can_start(title):
            return
        token = self._begin(api_key=api_key)

        def prepare_and_run() -> Job:
            job = self._store.get(job_id)
            key = api_key
            if job.settings.demo:
                pipeline.repoint_demo_job(
                    job.id, store=self._store, endpoint_url=self._ensure_demo()
                )
                job = self._store.get(job.id)
                key = None
            self._bridge.post(lambda: self._adopt(job, f"Job {job.id}: rendering what is missing."))
            return self._run(job.id, token, key)

        self._start_job_worker(prepare_and_run, title, "resume")

    def _can_start(self, title: str) -> bool:
        if self._closed:
            return False
        if self._busy:
            self.errorOccurred.emit(title, "A render is already running: wait or cancel it first.")
            return False
        return True

    def _begin(self, *, api_key: str | None) -> CancelToken:
        token = CancelToken()
        self._token = token
        self._api_key = api_key
        self._set_busy(True)
        return token

    def _run(self, job_id: str, token: CancelToken, api_key: str | None) -> Job:
        """On a pool thread: drive the job; events are queued to the GUI thread as they come."""
        return pipeline.run_job(
            job_id,
            store=self._store,
            api_key=api_key,
            listener=self._on_event,
            cancel=token,
            detach=self._detach,
        )

    def _start_job_worker(self, task: Callable[[], Job], title: str, name: str) -> None:
        def done(job: Job) -> None:
            self._bridge.post(lambda: self._finished(job))

        def failed(error: BaseException) -> None:
            if not isinstance(error, InfiniteTalkError):
                log.error("%s failed unexpectedly", name, exc_info=error)
            message = human_error(error)
            self._bridge.post(lambda: self._failed_to_run(title, message))

        self._pool.start(Worker(task, done, failed, name=name))

    def _ensure_demo(self) -> str:
        """Start the built-in demo endpoint once (any thread); return its URL.

        It runs in a process of its own, as RunPod would: its request handling then never
        competes with the window for the GIL (``bench/bench_gui_stall.py`` shows the
        difference).
        """
        with self._demo_lock:
            if self._demo is None:
                try:
                    self._demo = DemoEndpointProcess(latency_s=self._demo_latency_s).start()
                except (InfiniteTalkError, OSError) as error:
                    # A demo that works beats a smoother one: serve it from this process.
                    log.warning("demo endpoint process unavailable (%s): running it here", error)
                    self._demo = DemoEndpoint(latency_s=self._demo_latency_s).start()
            return self._demo.url

    # -- GUI-thread side of a render ---------------------------------------------------------

    def _adopt(self, job: Job, line: str) -> None:
        self._job = job
        self._emitted_chunk_count = len(job.chunks)
        self.chunksReset.emit(job)
        self.jobChanged.emit(job)
        self.logLine.emit(line)

    def _finished(self, job: Job) -> None:
        self._flush()  # every event of the run reaches the widgets before the end does
        self._job = job
        self._token = None
        if len(job.chunks) != self._emitted_chunk_count:
            self._emitted_chunk_count = len(job.chunks)
            self.chunksReset.emit(job)
        self.jobChanged.emit(job)
        self._set_busy(False)
        if job.state is JobState.COMPLETED:
            self.logLine.emit(f"Done: {job.output_path}")
        else:
            self.logLine.emit(f"Job {job.state.value.lower()}: {job.error or 'no reason given'}")
        self.jobFinished.emit(job)

    def _failed_to_run(self, title: str, message: str) -> None:
        self._flush()
        self._token = None
        if self._job is not None:
            # The job may have moved before the failure (e.g. a lease lost mid-run).
            try:
                self._job = self._store.get(self._job.id)
                self.jobChanged.emit(self._job)
            except InfiniteTalkError:
                pass
        self._set_busy(False)
        self.logLine.emit(message)
        self.errorOccurred.emit(title, message)

    # -- pipeline events: any thread in, coalesced batches out on the GUI thread -------------

    def _on_event(self, event: pipeline.JobEvent) -> None:
        """The pipeline's Listener; runs on worker threads, so it only queues."""
        pending = self._pending
        with pending.lock:
            pending.job = event.job
            if event.kind == "chunks":
                pending.reset = True
            elif event.kind == "chunk" and event.chunk is not None:
                pending.chunks[event.chunk.index] = None
            if event.message:
                pending.lines.append(event.message)
            wake = not pending.wake_posted
            pending.wake_posted = True
        if wake:
            self._bridge.post(self._schedule_flush)

    def _schedule_flush(self) -> None:
        waited_ms = (time.monotonic() - self._last_flush) * 1000
        if waited_ms >= self._flush_interval_ms:
            self._flush()
        elif not self._flush_timer.isActive():
            self._flush_timer.start(max(1, int(self._flush_interval_ms - waited_ms)))

    def _flush(self) -> None:
        self._flush_timer.stop()
        self._last_flush = time.monotonic()
        job, reset, chunks, lines = self._pending.take()
        if job is not None:
            self._job = job
            if reset or len(job.chunks) != self._emitted_chunk_count:
                self._emitted_chunk_count = len(job.chunks)
                self.chunksReset.emit(job)
            else:
                for index in chunks:
                    if index < len(job.chunks):
                        self.chunkChanged.emit(job, index)
            self.jobChanged.emit(job)
        if len(lines) > MAX_LOG_LINES_PER_FLUSH:
            skipped = len(lines) - MAX_LOG_LINES_PER_FLUSH
            lines = [
                *lines[: MAX_LOG_LINES_PER_FLUSH // 2],
                f"... {skipped} more lines in the log file ...",
                *lines[-MAX_LOG_LINES_PER_FLUSH // 2 :],
            ]
        for line in lines:
            self.logLine.emit(line)

    # -- previews ---------------------------------------------------------------------------

    def analyse_audio(
        self, path: Path, params: audio_core.SplitParams, points: int = ENVELOPE_POINTS
    ) -> None:
        """Validate and analyse a voice file off-thread: audioAnalysed or audioRejected.

        A newer request (another file, or ``replan_cuts``) supersedes an older one still
        running: only the newest answer is signalled.
        """
        if self._closed:
            return
        path = Path(path)

        def keep(result: _AudioResult) -> AudioPreview:
            info, analysis, preview = result
            self._last_audio = (path, info, analysis, params)
            return preview

        self._start_preview(
            "audio",
            path,
            lambda: self._analyse_audio_file(path, params, points),
            keep,
            name="analyse-audio",
        )

    def replan_cuts(self, params: audio_core.SplitParams, points: int = ENVELOPE_POINTS) -> None:
        """Re-plan the cuts of the last analysed audio for new split settings.

        A new chunk length only re-plans (cheap); a new silence level or length re-reads the
        file, since silences are measured at decode time. Answers with audioAnalysed.
        """
        last = self._last_audio
        if last is None or self._closed:
            return
        path, info, analysis, analysed = last
        if (analysed.silence_db, analysed.min_silence_ms) != (
            params.silence_db,
            params.min_silence_ms,
        ):
            self.analyse_audio(path, params, points)
            return

        def task() -> AudioPreview:
            return _audio_preview(info, analysis, params, points)

        def keep(preview: AudioPreview) -> AudioPreview:
            self._last_audio = (path, info, analysis, params)
            return preview

        self._start_preview("audio", path, task, keep, name="replan")

    def _analyse_audio_file(
        self, path: Path, params: audio_core.SplitParams, points: int
    ) -> _AudioResult:
        """On a pool thread. The decoded PCM is only needed while measuring: a temp dir."""
        info = audio_core.validate_audio(path)
        with tempfile.TemporaryDirectory(prefix="preview-", dir=paths.cache_dir()) as work:
            analysis = audio_core.analyse_audio(path, work, params)
        return info, analysis, _audio_preview(info, analysis, params, points)

    def analyse_image(self, path: Path, width: int, height: int, pad: str) -> None:
        """Validate a portrait and frame it as it will be sent: imageAnalysed or imageRejected."""
        if self._closed:
            return
        path = Path(path)

        def task() -> ImagePreview:
            info = media.validate_image(path)
            framed = media.framed_preview(path, width, height, pad)
            return ImagePreview(info, pil_to_qimage(framed), width, height, pad)

        self._start_preview("image", path, task, lambda preview: preview, name="analyse-image")

    def _start_preview(
        self,
        kind: _PreviewKind,
        path: Path,
        task: Callable[[], T],
        accept: Callable[[T], AudioPreview | ImagePreview],
        *,
        name: str,
    ) -> None:
        """Run a preview ``task`` on the pool; signal it unless a newer request superseded it.

        Each call supersedes the previous request of the same kind: on the GUI thread, a result
        still the newest goes through ``accept`` (which keeps what it needs and returns the
        preview) to ``<kind>Analysed``; an error goes to ``<kind>Rejected`` as a plain message.
        Anything older is dropped.
        """
        self._generations[kind] += 1
        generation = self._generations[kind]
        if kind == "audio":
            analysed, rejected = self.audioAnalysed, self.audioRejected
        else:
            analysed, rejected = self.imageAnalysed, self.imageRejected

        def done(value: T) -> None:
            def deliver() -> None:
                if generation == self._generations[kind]:
                    analysed.emit(str(path), accept(value))

            self._bridge.post(deliver)

        def failed(error: BaseException) -> None:
            message = self._preview_error(error, path, kind)

            def deliver() -> None:
                if generation == self._generations[kind]:
                    rejected.emit(str(path), message)

            self._bridge.post(deliver)

        self._pool.start(Worker(task, done, failed, name=name))

    @staticmethod
    def _preview_error(error: BaseException, path: Path, what: str) -> str:
        if isinstance(error, InfiniteTalkError | ValueError):
            return str(error)
        log.error("checking the %s %s failed unexpectedly", what, path, exc_info=error)
        return f"'{path}' could not be checked: {human_error(error)}"

    # -- endpoint ---------------------------------------------------------------------------

    def check_connection(self, endpoint_url: str, api_key: str | None, demo: bool = False) -> None:
        """Ask the endpoint's /health off-thread; answer with connectionChecked(ok, message).

        ``demo`` checks the built-in demo endpoint (starting it if needed) instead.
        """
        if self._closed:
            return

        def task() -> tuple[bool, str]:
            url, key = (self._ensure_demo(), None) if demo else (endpoint_url, api_key)
            if not demo and not (api_key or "").strip():
                return False, "No RunPod API key is set: enter your key first, then test again."
            try:
                client = runpod.RunPodClient(url, key)
            except InfiniteTalkError as error:
                return False, str(error)
            try:
                result = runpod.check_endpoint(client)
            finally:
                client.close()
            return result.ok, result.message

        def done(result: tuple[bool, str]) -> None:
            self._bridge.post(lambda: self.connectionChecked.emit(*result))

        def failed(error: BaseException) -> None:
            message = human_error(error)
            self._bridge.post(lambda: self.connectionChecked.emit(False, message))

        self._pool.start(Worker(task, done, failed, name="check-connection"))

    # -- shutdown ---------------------------------------------------------------------------

    def shutdown(self, cancel_running: bool, timeout_ms: int = DEFAULT_SHUTDOWN_TIMEOUT_MS) -> bool:
        """Stop before the app exits: end the running job, drain the pool, stop the demo.

        ``cancel_running`` True cancels the job (remote chunks too, state CANCELLED). False
        leaves it resumable: the core stops driving it without /cancel, the chunks in
        flight finish remotely, and the next start offers the job for resume.
        Returns False if the pool did not drain within ``timeout_ms``. Blocks the GUI
        thread while it drains: call it once, when the window has closed.
        """
        if self._closed:
            return True
        self._closed = True
        token = self._token
        if self._busy and token is not None:
            if cancel_running:
                self._pool.start(Worker(token.cancel, None, self._log_error, name="cancel"))
            else:
                # Stop driving without /cancel: remote chunks go on, resume re-attaches.
                log.info("quitting during a job: leaving it resumable")
                self._detach.cancel()
        drained = bool(self._pool.waitForDone(timeout_ms))
        if not drained:
            log.warning("shutdown: workers still running after %d ms", timeout_ms)
        self._flush_timer.stop()
        self._bridge.close()
        with self._demo_lock:
            demo, self._demo = self._demo, None
        if demo is not None:
            demo.stop()
        return drained

    @staticmethod
    def _log_error(error: BaseException) -> None:
        log.error("background task failed", exc_info=error)
