"""The render pipeline: portrait + audio in, one lip-synced MP4 out, through a RunPod endpoint.

One job runs as: frame the portrait, decode and split the audio (streaming: the first chunk is
submitted as soon as its cut is final), render up to ``concurrency`` chunks at once (each chunk
retried alone), join the chunk videos under the original audio, and write the output atomically.
Every state change is stored, so a job survives a crash and resumes without re-rendering
finished chunks. The same code serves the CLI, the desktop app and the REST service.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infinitetalk_gui.core import audio, media, paths, runpod
from infinitetalk_gui.core.cancel import CancelToken
from infinitetalk_gui.core.errors import (
    AuthError,
    Cancelled,
    ChunkFailed,
    ConfigError,
    InfiniteTalkError,
    InputError,
    JobLocked,
    PayloadTooLarge,
)
from infinitetalk_gui.core.models import (
    Chunk,
    Job,
    JobState,
    RenderSettings,
)
from infinitetalk_gui.core.settings import Settings
from infinitetalk_gui.core.store import JobStore, Lease

log = logging.getLogger(__name__)

MIN_RENDER_MS = 3500  # the model rejects 3.24 s and less: shorter audio is padded to this
# A rough figure for the estimate before a job runs: GPU seconds per second of audio at 512x512.
GPU_SECONDS_PER_AUDIO_SECOND = 6.0


@dataclass(frozen=True)
class JobEvent:
    """What happened to a job; ``job`` is a snapshot that is safe to keep on another thread."""

    kind: str  # "job" | "chunk" | "chunks" | "log"
    job: Job
    chunk: Chunk | None = None
    message: str = ""

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "event": self.kind,
            "job_id": self.job.id,
            "state": str(self.job.state),
            "stage": self.job.stage,
            "chunks_done": self.job.chunks_done,
            "chunks_total": self.job.chunks_total,
            "message": self.message,
        }
        if self.chunk is not None:
            data["chunk"] = {
                "index": self.chunk.index,
                "start_s": self.chunk.start_ms / 1000,
                "end_s": self.chunk.end_ms / 1000,
                "state": str(self.chunk.state),
                "attempt": self.chunk.attempt,
                "queue_ms": self.chunk.queue_ms,
                "exec_ms": self.chunk.exec_ms,
                "cost_usd": round(chunk_cost(self.chunk, self.job.settings), 6),
                "error": self.chunk.error,
            }
        if self.job.state.terminal:
            data["output"] = self.job.output_path
            data["error"] = self.job.error
            data["cost_usd"] = round(self.job.cost_usd, 4)
        return data


Listener = Callable[[JobEvent], None]


def chunk_cost(chunk: Chunk, settings: RenderSettings) -> float:
    """Estimated GPU cost of one chunk in USD: its execution time at the set price."""
    return (chunk.exec_ms or 0) / 1000 * settings.gpu_price_per_second


@dataclass(frozen=True)
class Estimate:
    chunks: int
    gpu_seconds: float
    cost_usd: float


def estimate(duration_ms: int, settings: RenderSettings) -> Estimate:
    """Chunks, GPU time and cost before a job runs (a rough guide, shown before Render)."""
    target_ms = settings.chunk_seconds * 1000
    single = duration_ms <= target_ms * 1.3
    chunks = 1 if single else max(1, round(duration_ms / target_ms))
    pixels = settings.width * settings.height / (512 * 512)
    gpu_seconds = max(duration_ms, MIN_RENDER_MS) / 1000 * GPU_SECONDS_PER_AUDIO_SECOND * pixels
    return Estimate(chunks, gpu_seconds, gpu_seconds * settings.gpu_price_per_second)


def resolve_endpoint(
    *, endpoint_id: str | None, endpoint_url: str | None, settings: Settings
) -> str | None:
    """Flag > environment (RUNPOD_ENDPOINT_URL wins over RUNPOD_ENDPOINT_ID) > saved setting."""
    if endpoint_url:
        return endpoint_url.rstrip("/")
    if endpoint_id:
        return runpod.endpoint_url_for(endpoint_id)
    env_url = os.environ.get("RUNPOD_ENDPOINT_URL", "").strip()
    if env_url:
        return env_url.rstrip("/")
    env_id = os.environ.get("RUNPOD_ENDPOINT_ID", "").strip()
    if env_id:
        return runpod.endpoint_url_for(env_id)
    if settings.endpoint_url:
        return settings.endpoint_url.rstrip("/")
    if settings.endpoint_id:
        return runpod.endpoint_url_for(settings.endpoint_id)
    return None


def check_output_path(output: Path, *, overwrite: bool) -> None:
    """The folder exists and is writable; the file is not there (unless overwrite)."""
    folder = output.parent
    if output.is_dir():
        raise InputError(f"The output {output} is a folder: give a file name ending in .mp4.")
    if not folder.is_dir():
        raise InputError(f"The output folder {folder} does not exist.")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise InputError(f"The output folder {folder} is not writable.")
    if output.exists() and not overwrite:
        raise InputError(
            f"{output} already exists. Choose another name, or add --overwrite to replace it."
        )


def create_job(
    image: Path, audio_path: Path, output: Path, settings: RenderSettings, *, store: JobStore
) -> Job:
    """Validate everything a render needs, then store a new IN_QUEUE job.

    Raises InputError (naming the file and what is wrong) before anything is stored or sent.
    """
    image, audio_path, output = (
        Path(p).expanduser().absolute() for p in (image, audio_path, output)
    )
    media.validate_image(image)
    audio.validate_audio(audio_path)
    if output.suffix.lower() != ".mp4":
        raise InputError(f"The output {output.name} must end in .mp4.")
    check_output_path(output, overwrite=settings.overwrite)
    if not settings.endpoint_url:
        raise ConfigError(
            "No RunPod endpoint is set. Give --endpoint-id ID (or --endpoint-url URL), set "
            "RUNPOD_ENDPOINT_ID, or save one with 'infinitetalk-gui config set endpoint_id ID'. "
            "To try the app without an account, add --demo."
        )
    now = time.time()
    job = Job(
        id=os.urandom(6).hex(),
        image_path=str(image),
        audio_path=str(audio_path),
        output_path=str(output),
        settings=settings,
        created_at=now,
        updated_at=now,
    )
    store.create(job)
    return job


def cancel_file(job_id: str) -> Path:
    """A cancel request from another process (``cancel JOB_ID``) is a file the driver notices."""
    return paths.job_work_dir(job_id) / "CANCEL"


def run_job(
    job_id: str,
    *,
    store: JobStore,
    api_key: str | None,
    listener: Listener | None = None,
    cancel: CancelToken | None = None,
    detach: CancelToken | None = None,
) -> Job:
    """Drive a job to a terminal state and return its final snapshot (see module docstring).

    Job-level failures end the job FAILED / CANCELLED / TIMED_OUT with ``job.error`` set; this
    raises only JobLocked (another live process drives the job). ``detach`` stops driving
    without cancelling: remote chunks go on rendering, the job stays unfinished (stage
    "interrupted") and a later ``run_job`` re-attaches to them by their RunPod ids.
    """
    with store.lease(job_id) as lease:
        job = store.get(job_id)
        if job.state is JobState.COMPLETED:
            return job.snapshot()
        _check_still_runnable(job)
        runner = _JobRunner(
            job, store, api_key, listener, cancel or CancelToken(), lease, detach or CancelToken()
        )
        return runner.run()


def _check_still_runnable(job: Job) -> None:
    """Before a (re)start touches anything: the inputs are there, the output is not."""
    for what, name in (("portrait", job.image_path), ("audio", job.audio_path)):
        if not Path(name).is_file():
            raise InputError(f"The {what} {name} is gone: put it back to finish job {job.id}.")
    output = Path(job.output_path)
    if output.exists() and not job.settings.overwrite:
        raise InputError(
            f"{output} already exists now. Move or delete it, then resume job {job.id}."
        )
    if not output.parent.is_dir():
        raise InputError(f"The output folder {output.parent} is gone: job {job.id} cannot finish.")


def repoint_demo_job(job_id: str, *, store: JobStore, endpoint_url: str) -> None:
    """A demo job from an earlier run: its demo endpoint is gone, so render the rest on a new
    one. Remote ids of unfinished chunks meant nothing to the old endpoint's successor."""
    with store.lease(job_id):
        job = store.get(job_id)
        if job.state is JobState.COMPLETED or job.settings.endpoint_url == endpoint_url:
            return
        job.settings.endpoint_url = endpoint_url
        for chunk in job.chunks:
            if not chunk.state.terminal:
                chunk.runpod_id = None
        store.save_job(job)
        store.save_chunks(job.id, job.chunks)


def cancel_remote(job_id: str, *, store: JobStore, api_key: str | None) -> Job:
    """Cancel a job from outside: its driver (if alive) stops; remote chunks get /cancel."""
    job = store.resolve(job_id)
    if job.state.terminal:
        return job
    holder = store.lease_holder(job.id)
    if holder is not None:
        # A live process drives it: ask it to stop; it cancels its own remote chunks.
        cancel_file(job.id).touch()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not store.get(job.id).state.terminal:
            time.sleep(0.2)
        return store.get(job.id)
    with store.lease(job.id):
        job = store.get(job.id)
        in_flight = [c for c in job.chunks if c.runpod_id and not c.state.terminal]
        not_stopped: set[int] = set()
        # A demo job's endpoint died with the process that started it: nothing runs there.
        if in_flight and job.settings.endpoint_url and not job.settings.demo:
            client = runpod.RunPodClient(job.settings.endpoint_url, api_key)
            try:
                for chunk in in_flight:
                    assert chunk.runpod_id is not None
                    if not client.cancel(chunk.runpod_id):
                        not_stopped.add(chunk.index)
            finally:
                client.close()
        for chunk in job.chunks:
            # A chunk whose /cancel did not get through keeps its id: a resume re-attaches.
            if not chunk.state.terminal and chunk.index not in not_stopped:
                chunk.set_state(JobState.CANCELLED)
        job.set_state(JobState.CANCELLED)
        job.stage = "done"
        job.error = "Cancelled."
        if not_stopped:
            job.error = (
                f"Cancelled here, but the endpoint did not confirm stopping "
                f"{len(not_stopped)} chunk(s) still rendering there: they may finish and be billed."
            )
        job.finished_at = time.time()
        store.save_chunks(job.id, job.chunks)
        store.save_job(job)
    return store.get(job.id)


WORKER_GRACE_S = 5.0  # after a halt, how long a chunk worker may take to notice it


class _Stop(Exception):
    """Internal: the job stops (a chunk failed for good, the key was rejected...)."""

    def __init__(self, state: JobState | None, message: str, *, lost: bool = False) -> None:
        super().__init__(message)
        self.state = state  # None: detach, leave the job unfinished and resumable
        self.message = message
        self.lost = lost  # another process drives the job now: write nothing, cancel nothing


def _lost() -> _Stop:
    return _Stop(None, "Another process took this job over; stopped here.", lost=True)


@dataclass
class _Shared:
    """State shared by the chunk workers of one job."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    stop: _Stop | None = None
    exec_per_audio_s: list[float] = field(default_factory=list)


class _JobRunner:
    def __init__(
        self,
        job: Job,
        store: JobStore,
        api_key: str | None,
        listener: Listener | None,
        cancel: CancelToken,
        lease: Lease,
        detach: CancelToken,
    ) -> None:
        self.job = job
        self.lease = lease
        self.detach = detach
        self.store = store
        self.api_key = api_key
        self.listener = listener
        self.user_cancel = cancel
        # Stops every step of this job: set on user cancel, failure or timeout.
        self.halt = CancelToken()
        self.shared = _Shared()
        self.lock = threading.RLock()
        self.work_dir = paths.job_work_dir(job.id)
        self.settings = job.settings
        self.client: runpod.RunPodClient | None = None
        self.image_b64 = ""
        self.closed = False  # set by _finish: a late worker writes nothing after it

    # ----------------------------------------------------------------- events and state

    def emit(self, kind: str, message: str = "", chunk: Chunk | None = None) -> None:
        if message:
            log.info("job %s: %s", self.job.id, message)
        if self.listener is None:
            return
        with self.lock:
            event = JobEvent(
                kind,
                self.job.snapshot(),
                None if chunk is None else Chunk(**vars(chunk)),
                message,
            )
        try:
            self.listener(event)
        except Exception:  # a listener's bug must not kill the render
            log.exception("listener failed on %s event", kind)

    def set_job(
        self, state: JobState | None = None, stage: str | None = None, **fields: Any
    ) -> None:
        with self.lock:
            self._check_writable()
            if state is not None:
                self.job.set_state(state)
            if stage is not None:
                self.job.stage = stage
            for key, value in fields.items():
                setattr(self.job, key, value)
            self.job.updated_at = time.time()
            self.store.save_job(self.job)
        label = self.job.stage if state is None else f"{self.job.state} ({self.job.stage})"
        self.emit("job", f"job {label}")

    def set_chunk(self, chunk: Chunk, state: JobState | None = None, **fields: Any) -> None:
        with self.lock:
            self._check_writable()
            old = chunk.state
            if state is not None:
                chunk.set_state(state)
            for key, value in fields.items():
                setattr(chunk, key, value)
            chunk.updated_at = time.time()
            self.store.save_chunk(self.job.id, chunk)
        changed = state is not None and state is not old
        message = f"chunk {self._chunk_label(chunk)} {chunk.state}"
        if chunk.attempt > 1:
            message += f" (attempt {chunk.attempt})"
        if chunk.state is JobState.FAILED and chunk.error:
            message += f": {chunk.error}"
        if chunk.state is JobState.COMPLETED and chunk.exec_ms is not None:
            message += (
                f" (queue {(chunk.queue_ms or 0) / 1000:.1f} s, GPU {chunk.exec_ms / 1000:.1f} s,"
                f" ${chunk_cost(chunk, self.settings):.4f})"
            )
        self.emit("chunk", message if changed else "", chunk)

    def _check_writable(self) -> None:
        """Called under self.lock before every store write."""
        if self.closed:
            raise Cancelled("The job has ended.")
        if self.lease.lost:
            raise _lost()

    def _chunk_label(self, chunk: Chunk) -> str:
        # The total is known once the split is done; until then it is still growing.
        total = len(self.job.chunks) if self.job.audio_duration_ms is not None else "?"
        return f"{chunk.index + 1}/{total}"

    # ----------------------------------------------------------------- the job

    def run(self) -> Job:
        stop_watch = self._watch_stop_conditions()
        try:
            self._prepare_resume()
            self.set_job(JobState.IN_PROGRESS, "preparing", error=None, finished_at=None)
            self._render_and_join()
        except JobLocked:
            self._finish(None, _lost().message, lost=True)
        except _Stop as stop:
            self._finish(stop.state, stop.message, lost=stop.lost)
        except Cancelled:
            state, message, lost = self._why_halted()
            self._finish(state, message, lost=lost)
        except InfiniteTalkError as error:
            self._finish(JobState.FAILED, str(error))
        except Exception as error:  # an unexpected bug: stored, logged, job left resumable
            log.exception("job %s failed unexpectedly", self.job.id)
            self._finish(JobState.FAILED, f"Unexpected error: {error}. Details are in the log.")
        finally:
            stop_watch()
            if self.client is not None:
                self.client.close()
        return self.job.snapshot()

    def _why_halted(self) -> tuple[JobState | None, str, bool]:
        if self.shared.stop is not None:
            return self.shared.stop.state, self.shared.stop.message, self.shared.stop.lost
        return JobState.CANCELLED, "Cancelled.", False

    def _halt(self, stop: _Stop) -> None:
        with self.shared.lock:
            if self.shared.stop is None:
                self.shared.stop = stop
        self.halt.cancel()

    def _watch_stop_conditions(self) -> Callable[[], None]:
        """User cancel, a cancel file from another process, and the job's time limit."""
        unregister_cancel = self.user_cancel.on_cancel(
            lambda: self._halt(_Stop(JobState.CANCELLED, "Cancelled."))
        )
        unregister_detach = self.detach.on_cancel(
            lambda: self._halt(_Stop(None, "Stopped here; resume it to finish."))
        )
        done = threading.Event()
        timeout = self.settings.timeout_s
        deadline = None if not timeout else time.monotonic() + timeout
        marker = cancel_file(self.job.id)
        with contextlib.suppress(FileNotFoundError):
            marker.unlink()

        def watch() -> None:
            while not done.wait(0.2):
                if marker.exists():
                    self._halt(_Stop(JobState.CANCELLED, "Cancelled."))
                    return
                if self.lease.lost:
                    self._halt(_lost())
                    return
                if deadline is not None and time.monotonic() > deadline:
                    self._halt(
                        _Stop(
                            JobState.TIMED_OUT,
                            f"The job ran past its time limit of {timeout:.0f} s.",
                        )
                    )
                    return

        watcher = threading.Thread(target=watch, name=f"watch-{self.job.id}", daemon=True)
        watcher.start()

        def stop_watching() -> None:
            done.set()
            unregister_cancel()
            unregister_detach()
            watcher.join(timeout=1)

        return stop_watching

    def _prepare_resume(self) -> None:
        """A FAILED/CANCELLED/TIMED_OUT job restarts: failed chunks get fresh attempts."""
        if self.job.state.terminal:
            self.set_job(JobState.IN_QUEUE, "queued")
        for chunk in self.job.chunks:
            if chunk.state is JobState.COMPLETED and not (
                chunk.result_path and Path(chunk.result_path).is_file()
            ):
                # Its video went missing from the cache: render it again.
                self._reset_chunk_record(chunk)
            elif chunk.state in (JobState.FAILED, JobState.CANCELLED, JobState.TIMED_OUT):
                self.set_chunk(chunk, JobState.IN_QUEUE, attempt=0, runpod_id=None, error=None)

    def _reset_chunk_record(self, chunk: Chunk) -> None:
        # COMPLETED is final in the state machine: a lost result becomes a new record.
        with self.lock:
            fresh = Chunk(index=chunk.index, start_ms=chunk.start_ms, end_ms=chunk.end_ms)
            self.job.chunks[chunk.index] = fresh
            self.store.replace_chunks(self.job.id, self.job.chunks)

    def _render_and_join(self) -> None:
        self.halt.raise_if_cancelled()
        if self.settings.endpoint_url is None:
            raise ConfigError("This job has no endpoint URL.")
        # A short read timeout: a stalled /status must not hold up a cancel for a minute.
        self.client = runpod.RunPodClient(
            self.settings.endpoint_url, self.api_key, cancel=self.halt, read_timeout_s=20.0
        )
        framed = media.frame_portrait(
            Path(self.job.image_path),
            self.settings.width,
            self.settings.height,
            self.work_dir / "portrait.png",
            pad=self.settings.pad_color,
        )
        self.image_b64 = media.encode_file_b64(framed)
        self.halt.raise_if_cancelled()

        todo: queue.Queue[Chunk | None] = queue.Queue()
        workers = [
            threading.Thread(
                target=self._chunk_worker,
                args=(todo,),
                name=f"chunk-{self.job.id}-{n}",
                daemon=True,
            )
            for n in range(max(1, self.settings.concurrency))
        ]
        for worker in workers:
            worker.start()
        try:
            self.set_job(stage="splitting")
            for chunk in self._chunks_to_render():
                todo.put(chunk)
            if self.job.stage == "splitting":
                self.set_job(stage="rendering")
        except BaseException:
            self.halt.cancel()  # stop the chunk workers now; run() reports why
            raise
        finally:
            for _ in workers:
                todo.put(None)
            self._join_workers(workers)
        if self.shared.stop is not None:
            raise self.shared.stop
        self.halt.raise_if_cancelled()
        self._join()

    def _join_workers(self, workers: list[threading.Thread]) -> None:
        """Wait for the chunk workers; once halted, give them a short grace, not forever.

        A worker stuck in a slow HTTP call notices the halt only when the call returns; it is
        a daemon thread, and the write guard keeps it from touching the job after _finish.
        """
        grace_ends: float | None = None
        for worker in workers:
            while worker.is_alive():
                worker.join(timeout=0.2)
                if self.halt.cancelled:
                    grace_ends = grace_ends or time.monotonic() + WORKER_GRACE_S
                    if time.monotonic() > grace_ends:
                        log.warning("job %s: a chunk worker is still busy; going on", self.job.id)
                        return

    def _chunks_to_render(self) -> Iterator[Chunk]:
        """Chunks in order, each as soon as its audio is cut (streaming on a first run)."""
        params = audio.SplitParams(
            chunk_seconds=self.settings.chunk_seconds,
            silence_db=self.settings.silence_db,
            min_silence_ms=self.settings.min_silence_ms,
        )
        src = Path(self.job.audio_path)
        if self.job.audio_duration_ms is not None:
            # Planned before (a resume): the stored ranges are the plan.
            pcm = audio.ensure_pcm(
                src, self.work_dir, expected_ms=self.job.audio_duration_ms, cancel=self.halt
            )
            self.set_job(stage="rendering")
            for chunk in self.job.chunks:
                if chunk.state is not JobState.COMPLETED:
                    self._write_chunk_audio(pcm, chunk)
                    yield chunk
            return
        stream = audio.stream_chunks(src, self.work_dir, params, cancel=self.halt)
        planned = 0
        for index, (start_ms, end_ms) in enumerate(stream):
            planned = index + 1
            with self.lock:
                if index < len(self.job.chunks):
                    chunk = self.job.chunks[index]
                    if (chunk.start_ms, chunk.end_ms) != (start_ms, end_ms):
                        # The audio changed since a crash mid-split: plan afresh from here.
                        self._cancel_remote_chunks(self.job.chunks[index:])
                        del self.job.chunks[index:]
                        chunk = Chunk(index=index, start_ms=start_ms, end_ms=end_ms)
                        self.job.chunks.append(chunk)
                        self.store.replace_chunks(self.job.id, self.job.chunks)
                else:
                    chunk = Chunk(index=index, start_ms=start_ms, end_ms=end_ms)
                    self.job.chunks.append(chunk)
                    self.store.save_chunk(self.job.id, chunk)
            self.emit(
                "chunks", f"chunk {index + 1} planned: {start_ms / 1000:.2f}-{end_ms / 1000:.2f} s"
            )
            if chunk.state is not JobState.COMPLETED:
                self._write_chunk_audio(stream.pcm_path, chunk)
                yield chunk
        analysis = stream.analysis
        assert analysis is not None
        with self.lock:
            if len(self.job.chunks) > planned:  # a stale longer plan from before a crash
                self._cancel_remote_chunks(self.job.chunks[planned:])
                del self.job.chunks[planned:]
                self.store.replace_chunks(self.job.id, self.job.chunks)
        self.set_job(stage="rendering", audio_duration_ms=analysis.duration_ms)

    def _write_chunk_audio(self, pcm: Path, chunk: Chunk) -> None:
        audio.write_chunk_wav(
            pcm, chunk.start_ms, chunk.end_ms, self._chunk_wav(chunk), min_ms=MIN_RENDER_MS
        )

    def _chunk_wav(self, chunk: Chunk) -> Path:
        return self.work_dir / f"chunk_{chunk.index:04d}.wav"

    def _chunk_video(self, chunk: Chunk) -> Path:
        return self.work_dir / f"chunk_{chunk.index:04d}.mp4"

    # ----------------------------------------------------------------- one chunk

    def _chunk_worker(self, todo: queue.Queue[Chunk | None]) -> None:
        while True:
            chunk = todo.get()
            if chunk is None:
                return
            if self.halt.cancelled:
                continue
            try:
                self._render_chunk(chunk)
            except Cancelled:
                continue
            except _Stop as stop:
                self._halt(stop)
            except AuthError as error:
                self._halt(_Stop(JobState.FAILED, str(error)))
            except InfiniteTalkError as error:
                self._halt(_Stop(JobState.FAILED, f"Chunk {chunk.index + 1}: {error}"))
            except Exception as error:
                log.exception("chunk %s of job %s failed unexpectedly", chunk.index, self.job.id)
                self._halt(
                    _Stop(JobState.FAILED, f"Unexpected error on chunk {chunk.index + 1}: {error}")
                )

    def _render_chunk(self, chunk: Chunk) -> None:
        assert self.client is not None
        while True:
            self.halt.raise_if_cancelled()
            if chunk.runpod_id is None:
                if chunk.attempt >= self.settings.attempts:
                    raise _Stop(
                        JobState.FAILED,
                        f"Chunk {chunk.index + 1} failed after {chunk.attempt} attempts: "
                        f"{chunk.error or 'no reason given'}",
                    )
                self._submit(chunk)
            try:
                self._poll_until_done(chunk)
                return
            except ChunkFailed as failure:
                self.halt.raise_if_cancelled()
                log.warning("chunk %s attempt %s: %s", chunk.index, chunk.attempt, failure)
                self.set_chunk(chunk, JobState.FAILED, error=str(failure), runpod_id=None)
                if chunk.attempt < self.settings.attempts:
                    self.set_chunk(chunk, JobState.IN_QUEUE)

    def _submit(self, chunk: Chunk) -> None:
        assert self.client is not None
        wav_b64 = media.encode_file_b64(self._chunk_wav(chunk))
        worker_input = runpod.build_worker_input(
            self.image_b64,
            wav_b64,
            prompt=self.settings.prompt,
            width=self.settings.width,
            height=self.settings.height,
        )
        del wav_b64
        try:
            remote_id = self.client.submit(
                worker_input, execution_timeout_ms=self.settings.execution_timeout_ms
            )
        except PayloadTooLarge as error:
            raise _Stop(JobState.FAILED, f"Chunk {chunk.index + 1}: {error}") from None
        self.set_chunk(
            chunk,
            JobState.IN_QUEUE,
            attempt=chunk.attempt + 1,
            runpod_id=remote_id,
            submitted_at=time.time(),
            error=None,
            queue_ms=None,
            exec_ms=None,
        )
        attempt = f" (attempt {chunk.attempt})" if chunk.attempt > 1 else ""
        self.emit("chunk", f"chunk {self._chunk_label(chunk)} submitted{attempt}", chunk)

    def _expected_exec_s(self, chunk: Chunk) -> float | None:
        with self.shared.lock:
            ratios = list(self.shared.exec_per_audio_s)
        if not ratios:
            return None
        return sum(ratios) / len(ratios) * chunk.duration_ms / 1000

    def _poll_until_done(self, chunk: Chunk) -> None:
        assert self.client is not None and chunk.runpod_id is not None
        started = time.monotonic()
        while True:
            self.halt.raise_if_cancelled()
            status = self.client.status(chunk.runpod_id)  # 404 raises JobExpired (ChunkFailed)
            updates: dict[str, Any] = {}
            if status.delay_ms is not None:
                updates["queue_ms"] = status.delay_ms
            if status.execution_ms is not None:
                updates["exec_ms"] = status.execution_ms
            state = status.state
            if state is JobState.COMPLETED:
                self._save_result(chunk, status, updates)
                return
            if state is JobState.CANCELLED:
                # We did not cancel it: someone else did (the RunPod console, `cancel`).
                by_user = cancel_file(self.job.id).exists() or self.user_cancel.cancelled
                why = "Cancelled." if by_user else "Cancelled on the endpoint."
                self._halt(_Stop(JobState.CANCELLED, why))
                raise Cancelled("Cancelled.")
            if state in (JobState.FAILED, JobState.TIMED_OUT):
                reason = status.error_message or (
                    "the worker timed out" if state is JobState.TIMED_OUT else "the worker failed"
                )
                with self.lock:
                    chunk.queue_ms = updates.get("queue_ms", chunk.queue_ms)
                    chunk.exec_ms = updates.get("exec_ms", chunk.exec_ms)
                raise ChunkFailed(reason)
            if state is not chunk.state:
                self.set_chunk(chunk, state, **updates)
                started = time.monotonic()  # the poll cadence counts time in this state
            delay = runpod.next_poll_delay(
                state, time.monotonic() - started, self._expected_exec_s(chunk)
            )
            if self.halt.wait(delay):
                raise Cancelled("Cancelled.")

    def _save_result(
        self, chunk: Chunk, status: runpod.RemoteStatus, updates: dict[str, Any]
    ) -> None:
        assert self.client is not None
        dest = self._chunk_video(chunk)
        self.client.save_video(status.output, dest)  # raises ChunkFailed without a usable video
        exec_ms = updates.get("exec_ms")
        if exec_ms:
            with self.shared.lock:
                self.shared.exec_per_audio_s.append(exec_ms / max(chunk.duration_ms, 1))
        if chunk.state is JobState.IN_QUEUE:
            self.set_chunk(chunk, JobState.IN_PROGRESS)
        self.set_chunk(chunk, JobState.COMPLETED, result_path=str(dest), error=None, **updates)
        with contextlib.suppress(OSError):
            self._chunk_wav(chunk).unlink()
        self.emit("job", f"{self.job.chunks_done}/{len(self.job.chunks)} chunks done")

    # ----------------------------------------------------------------- join and finish

    def _join(self) -> None:
        self.set_job(stage="joining")
        duration_ms = self.job.audio_duration_ms
        assert duration_ms is not None
        chunks = [media.ChunkVideo(Path(c.result_path or ""), c.frames) for c in self.job.chunks]
        media.join_chunks(
            chunks,
            Path(self.job.audio_path),
            duration_ms,
            Path(self.job.output_path),
            overwrite=self.settings.overwrite,
            cancel=self.halt,
            work_dir=self.work_dir,
        )
        self._finish(JobState.COMPLETED, None)

    def _finish(self, state: JobState | None, message: str | None, *, lost: bool = False) -> None:
        """End this run. Never raises: the store keeps the job resumable whatever happened."""
        if lost:
            # Another process drives the job now: touching its chunks or files would break it.
            log.warning("job %s: %s", self.job.id, message)
            with self.lock:
                self.closed = True
            return
        try:
            self._end(state, message)
        except Exception:
            log.exception("job %s: could not record the end of the run", self.job.id)
        finally:
            with self.lock:
                self.closed = True

    def _end(self, state: JobState | None, message: str | None) -> None:
        if state is None:
            # Detached: remote chunks keep rendering; a resume re-attaches by their ids.
            self.set_job(stage="interrupted", error=None)
            return
        if self.job.state.terminal:
            # Failed while restarting (before IN_QUEUE): go back through the queue state.
            self.set_job(JobState.IN_QUEUE)
        if state is not JobState.COMPLETED:
            stopped = self._cancel_remote_chunks(self.job.chunks)
            with self.lock:
                for chunk in self.job.chunks:
                    if chunk.index in stopped:
                        chunk.set_state(JobState.CANCELLED)
                        self.store.save_chunk(self.job.id, chunk)
        self.set_job(state, "done", error=message, finished_at=time.time())
        self._clean_work_dir(completed=state is JobState.COMPLETED)

    def _cancel_remote_chunks(self, chunks: list[Chunk]) -> set[int]:
        """/cancel each chunk still running remotely; the indexes the endpoint confirmed.

        A chunk whose /cancel did not get through keeps its state and id: a resume
        re-attaches to it instead of paying for it twice.
        """
        stopped: set[int] = set()
        for chunk in list(chunks):
            if not chunk.runpod_id or chunk.state.terminal:
                continue
            if self.client is not None and self.client.cancel(chunk.runpod_id):
                stopped.add(chunk.index)
            else:
                log.warning("job %s: remote job %s may still run", self.job.id, chunk.runpod_id)
        return stopped

    def _clean_work_dir(self, *, completed: bool) -> None:
        """Completed: remove everything. Otherwise keep finished chunk videos for a resume."""
        if completed:
            shutil.rmtree(self.work_dir, ignore_errors=True)
            return
        keep = {Path(c.result_path).name for c in self.job.chunks if c.result_path}
        for item in self.work_dir.iterdir() if self.work_dir.is_dir() else []:
            if item.name not in keep:
                if item.is_dir():
                    shutil.rmtree(item, ignore_errors=True)
                else:
                    with contextlib.suppress(OSError):
                        item.unlink()
