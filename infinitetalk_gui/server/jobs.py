"""The service's jobs: the shared job store, render threads, cancel, shutdown and resume, delivery.

Each job started over HTTP gets a folder under ``TEMP_DIR/jobs/`` holding its uploads, its
output MP4 and ``job.json`` (what the store does not keep: push_to_s3, webhook_url and the
delivery state). The job itself lives in the same SQLite store the desktop app and the CLI
use, so it shows in their history. ``MAX_CONCURRENT_JOBS`` threads drive jobs with the core's
``run_job``, each with its own CancelToken.

Shutdown parks running jobs rather than ending them: their token is cancelled (the pipeline
cancels their remote chunks and keeps finished chunk videos), then they are put back to
IN_QUEUE in the store, and the next start resumes them. A job whose process died (kill -9)
is resumed too, once the store says its lease is stale.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import queue
import shutil
import threading
import time
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from infinitetalk_gui import __version__
from infinitetalk_gui.core import audio, paths, runpod
from infinitetalk_gui.core.cancel import CancelToken
from infinitetalk_gui.core.demo_endpoint import DemoEndpoint
from infinitetalk_gui.core.errors import ConfigError, InputError, JobLocked
from infinitetalk_gui.core.models import Chunk, Job, JobState, check_size
from infinitetalk_gui.core.pipeline import (
    JobEvent,
    cancel_remote,
    create_job,
    estimate,
    repoint_demo_job,
    run_job,
)
from infinitetalk_gui.core.settings import atomic_write_text
from infinitetalk_gui.core.store import JobStore
from infinitetalk_gui.server import webhook
from infinitetalk_gui.server.config import ServerConfig
from infinitetalk_gui.server.errors import ApiError
from infinitetalk_gui.server.events import EventBroker
from infinitetalk_gui.server.metrics import Metrics, instrument_runpod
from infinitetalk_gui.server.s3 import S3Error, S3Uploader

log = logging.getLogger(__name__)

META_NAME = "job.json"
OUTPUT_NAME = "output.mp4"
ORPHAN_AGE_S = 3600.0  # a folder with no job.json this old is an upload that never became a job
SWEEP_EVERY_S = 3600.0
LOCKED_RETRY_S = 5.0  # a job another process still holds: look again this often
CANCEL_WAIT_S = 10.0


@dataclass(frozen=True)
class JobOptions:
    """What a POST asked for beyond the two files. Labels name the inputs in error messages."""

    width: int | None = None
    height: int | None = None
    prompt: str | None = None
    push_to_s3: bool = False
    webhook_url: str | None = None
    image_label: str = "image"
    audio_label: str = "audio"


_SAVED_FIELDS = (
    "job_id",
    "created_at",
    "push_to_s3",
    "webhook_url",
    "audio_duration_ms",
    "ended",
    "result_ready",
    "s3_key",
    "s3_error",
    "webhook",
    "webhook_result",
)


@dataclass(eq=False)
class JobMeta:
    """One HTTP job: saved fields (job.json) and run-time state (this process only)."""

    job_id: str
    folder: Path
    created_at: float
    push_to_s3: bool = False
    webhook_url: str | None = None
    audio_duration_ms: int | None = None
    ended: bool = False  # the end was handled: inputs removed, delivery started
    result_ready: bool = False  # a pushed video is uploaded (or the upload failed for good)
    s3_key: str | None = None
    s3_error: str | None = None
    webhook: str = "none"  # none | pending | delivered | failed
    webhook_result: str | None = None
    # run-time only
    state: str = str(JobState.IN_QUEUE)
    demo: bool = False
    in_flight: int = 0
    progress: int = 0
    token: CancelToken = field(default_factory=CancelToken)
    # Set at shutdown: stop driving without /cancel, so in-flight chunks finish remotely.
    detach: CancelToken = field(default_factory=CancelToken)
    started: bool = False
    suspended: bool = False
    user_cancelled: bool = False
    idle: threading.Event = field(default_factory=threading.Event)  # not being driven
    observed: set[tuple[int, int]] = field(default_factory=set)  # chunks in the histogram

    def __post_init__(self) -> None:
        self.idle.set()

    @property
    def output(self) -> Path:
        return self.folder / OUTPUT_NAME

    def to_json(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in _SAVED_FIELDS}

    @classmethod
    def load(cls, folder: Path) -> JobMeta | None:
        try:
            data = json.loads((folder / META_NAME).read_text(encoding="utf-8"))
            known = {k: data[k] for k in _SAVED_FIELDS if k in data}
            return cls(folder=folder, **known)
        except (OSError, ValueError, TypeError, KeyError):
            return None


class JobService:
    """Everything the routes do to jobs; thread-safe. ``start()`` / ``stop()`` bracket its life."""

    def __init__(self, config: ServerConfig, metrics: Metrics) -> None:
        self.config = config
        self.metrics = metrics
        self.broker = EventBroker()
        self.jobs_dir = config.temp_dir / "jobs"
        self.endpoint_url = config.endpoint_url
        self.demo: DemoEndpoint | None = None
        self._store: JobStore | None = None
        self.s3: S3Uploader | None = None
        self.s3_problem: str | None = None if config.s3_bucket else "S3_BUCKET is not set"
        self._lock = threading.RLock()
        self._jobs: dict[str, JobMeta] = {}
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._retry_at: dict[str, float] = {}
        self._drivers: list[threading.Thread] = []
        self._helpers: set[threading.Thread] = set()
        self._stopping = threading.Event()
        self._undo_instrument: Any = None
        self._last_sweep = 0.0
        metrics.watch_jobs(self._counts)

    # ------------------------------------------------------------------ lifetime

    @property
    def store(self) -> JobStore:
        if self._store is None:
            raise RuntimeError("the job service is not started")
        return self._store

    @property
    def accepting(self) -> bool:
        return self._store is not None and not self._stopping.is_set()

    def start(self) -> None:
        self.jobs_dir.mkdir(parents=True, exist_ok=True)
        if self.config.s3_bucket:
            try:
                self.s3 = S3Uploader(
                    self.config.s3_bucket,
                    region=self.config.s3_region,
                    endpoint_url=self.config.s3_endpoint_url,
                    prefix=self.config.s3_prefix,
                    public_url=self.config.s3_public_url,
                    expires_s=self.config.s3_url_expires_s,
                )
            except ConfigError as error:
                self.s3_problem = str(error)
                log.warning("%s", error)
        self._store = JobStore()
        if self.config.demo:
            self.demo = DemoEndpoint(latency_s=self.config.demo_latency_s).start()
            self.endpoint_url = self.demo.url
        self._undo_instrument = instrument_runpod(self.metrics)
        self._sweep(startup=True)
        for n in range(self.config.max_concurrent_jobs):
            self._spawn(self._driver_loop, f"job-driver-{n + 1}", driver=True)
        self._spawn(self._supervise, "job-supervisor", driver=True)
        self._resume_all()

    def begin_shutdown(self) -> None:
        """Stop taking jobs and end the event streams (so the HTTP server can drain)."""
        self._stopping.set()
        self.broker.close_all()

    def stop(self) -> None:
        """Park running jobs (resumable, remote chunks left running), stop threads, close."""
        if self._store is None:
            return
        self.begin_shutdown()
        with self._lock:
            for meta in self._jobs.values():
                if meta.started and not meta.user_cancelled:
                    meta.suspended = True
                    meta.detach.cancel()
        for _ in range(self.config.max_concurrent_jobs):
            self._queue.put(None)
        deadline = time.monotonic() + self.config.shutdown_grace_s
        with self._lock:
            threads = [*self._drivers, *self._helpers]
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        late = [t.name for t in threads if t.is_alive()]
        if self._undo_instrument is not None:
            self._undo_instrument()
        if self.demo is not None:
            self.demo.stop()
        if late:
            # Their leases go stale when this process ends; the next start resumes them.
            log.warning("stopped without waiting for %s", ", ".join(late))
            return
        self._store.close()
        self._store = None

    def _spawn(self, target: Any, name: str, *args: Any, driver: bool = False) -> None:
        def run() -> None:
            try:
                target(*args)
            except Exception:  # a bug here must not end the service
                log.exception("%s failed", name)
            finally:
                with self._lock:
                    self._helpers.discard(threading.current_thread())

        thread = threading.Thread(target=run, name=name, daemon=True)
        with self._lock:
            (self._drivers.append if driver else self._helpers.add)(thread)
        thread.start()

    # ------------------------------------------------------------------ the API's operations

    def new_folder(self) -> Path:
        folder = self.jobs_dir / uuid.uuid4().hex[:16]
        folder.mkdir(parents=True)
        return folder

    def create(self, image: Path, audio_path: Path, folder: Path, options: JobOptions) -> Job:
        """Validate the saved uploads and store a new IN_QUEUE job; it starts when a slot frees."""
        if not self.accepting:
            raise shutting_down()
        render = self.config.render
        width = options.width if options.width is not None else render.width
        height = options.height if options.height is not None else render.height
        try:
            check_size(width, height)
        except ValueError as error:
            raise ApiError(400, "unsupported_size", f"{str(error).capitalize()}.") from None
        if options.push_to_s3 and self.s3 is None:
            raise ApiError(
                400, "s3_not_configured", f"push_to_s3 is not available: {self.s3_problem}."
            )
        labels = {str(image): options.image_label, str(audio_path): options.audio_label}
        try:
            info = audio.validate_audio(audio_path)
            settings = replace(
                render,
                endpoint_url=self.endpoint_url or "",
                width=width,
                height=height,
                prompt=options.prompt if options.prompt else render.prompt,
                demo=self.config.demo,
            )
            job = create_job(image, audio_path, folder / OUTPUT_NAME, settings, store=self.store)
        except InputError as error:
            message = str(error)
            for path, label in labels.items():
                message = message.replace(path, label)
            raise ApiError(400, "invalid_media", message) from None
        meta = JobMeta(
            job_id=job.id,
            folder=folder,
            created_at=job.created_at,
            push_to_s3=options.push_to_s3,
            webhook_url=options.webhook_url,
            audio_duration_ms=info.duration_ms,
            webhook="pending" if options.webhook_url else "none",
            demo=settings.demo,
        )
        self._save(meta)
        with self._lock:
            self._jobs[job.id] = meta
        self._queue.put(job.id)
        log.info("job %s queued (%s, %dx%d)", job.id, folder.name, width, height)
        return job

    def get(self, job_id: str) -> tuple[Job, JobMeta]:
        with self._lock:
            meta = self._jobs.get(job_id)
        if meta is None:
            raise not_found(job_id)
        try:
            return self.store.get(job_id), meta
        except InputError:
            raise not_found(job_id) from None

    def list(self, limit: int) -> list[tuple[Job, JobMeta]]:
        with self._lock:
            metas = sorted(self._jobs.values(), key=lambda m: m.created_at, reverse=True)
        found: list[tuple[Job, JobMeta]] = []
        for meta in metas:
            if len(found) >= limit:
                break
            with contextlib.suppress(InputError):
                found.append((self.store.get(meta.job_id), meta))
        return found

    def cancel(self, job_id: str) -> Job:
        """Cancel a job (its remote chunks too); 409 when it has already ended."""
        job, meta = self.get(job_id)
        if job.state.terminal:
            raise ApiError(409, "job_ended", f"Job {job_id} has already ended ({job.state}).")
        with self._lock:
            meta.user_cancelled = True
            meta.token.cancel()
            started = meta.started
            self._retry_at.pop(job_id, None)
        if started:
            meta.idle.wait(CANCEL_WAIT_S)
        else:
            # Never started here (waiting for a slot, or parked): end it in the store directly;
            # if another process drives it, cancel_remote asks that process to stop.
            final = cancel_remote(job_id, store=self.store, api_key=self.config.api_key)
            if final.state.terminal:
                self._ended(final, meta)
        return self.store.get(job_id)

    def video(self, job_id: str) -> Path | str:
        """The finished MP4's path, or the URL of its S3 copy when the local one is gone."""
        job, meta = self.get(job_id)
        if job.state is not JobState.COMPLETED or self._delivering(job, meta):
            raise ApiError(
                409, "not_ready", f"Job {job_id} is {self._status(job, meta)}: no video yet."
            )
        if meta.output.is_file():
            return meta.output
        if meta.s3_key and self.s3 is not None:
            return self.s3.url_for(meta.s3_key)
        raise ApiError(404, "video_gone", f"The video of job {job_id} is no longer kept here.")

    def is_final(self, job: Job, meta: JobMeta) -> bool:
        return job.state.terminal and not self._delivering(job, meta)

    def health(self, deep: bool) -> dict[str, Any]:
        with self._lock:
            metas = list(self._jobs.values())
        running = sum(1 for m in metas if m.started)
        queued = sum(1 for m in metas if not m.started and not JobState(m.state).terminal)
        doc: dict[str, Any] = {
            "status": "ok",
            "version": __version__,
            "demo": self.config.demo,
            "accepting_jobs": self.accepting,
            "jobs_running": running,
            "jobs_queued": queued,
        }
        if deep:
            client = runpod.RunPodClient(self.endpoint_url or "", self.config.api_key)
            try:
                result = runpod.check_endpoint(client)
            finally:
                client.close()
            health = result.health
            doc["runpod"] = {
                "ok": result.ok,
                "message": result.message,
                "warm_workers": result.warm_workers,
                "jobs": dict(health.jobs) if health else {},
                "workers": dict(health.workers) if health else {},
            }
            if not result.ok:
                doc["status"] = "degraded"
        return doc

    # ------------------------------------------------------------------ the job document

    def doc(self, job: Job, meta: JobMeta, *, inline: bool, root: str = "") -> dict[str, Any]:
        """The job as the API shows it (GET /jobs/{id}, events, webhooks)."""
        status = self._status(job, meta)
        data: dict[str, Any] = {
            "id": job.id,
            "status": str(status),
            "progress": self._progress(job, meta, status),
            "chunks_done": job.chunks_done,
            "chunks_total": job.chunks_total,
            "chunks": [chunk_json(c) for c in job.chunks],
        }
        error = job.error
        if status is JobState.COMPLETED:
            if meta.s3_key and self.s3 is not None and not meta.s3_error:
                data["video_url"] = self.s3.url_for(meta.s3_key)
            else:
                try:
                    size = meta.output.stat().st_size
                    inline_ok = not meta.push_to_s3 and size <= self.config.inline_video_max_bytes
                    data["video_url"] = f"{root}/jobs/{job.id}/video"
                    if inline and inline_ok:
                        data["video_base64"] = base64.b64encode(meta.output.read_bytes()).decode()
                except OSError:  # removed after RESULT_TTL_HOURS (maybe just now)
                    data.pop("video_url", None)
                    error = "The video is no longer kept on this server."
                else:
                    if meta.s3_error:
                        error = f"The video is here but could not be pushed to S3: {meta.s3_error}"
        if error:
            data["error"] = error
        if job.exec_ms:
            data["cost_estimate_usd"] = round(job.cost_usd, 4)
        elif meta.audio_duration_ms:
            data["cost_estimate_usd"] = round(
                estimate(meta.audio_duration_ms, job.settings).cost_usd, 4
            )
        return data

    def _delivering(self, job: Job, meta: JobMeta) -> bool:
        return job.state is JobState.COMPLETED and meta.push_to_s3 and not meta.result_ready

    def _status(self, job: Job, meta: JobMeta) -> JobState:
        # A pushed video is not there until it is uploaded: the job is not done until then.
        return JobState.IN_PROGRESS if self._delivering(job, meta) else job.state

    def _progress(self, job: Job, meta: JobMeta, status: JobState) -> int:
        if status is JobState.COMPLETED:
            return 100
        if self._delivering(job, meta):
            return 99
        total = job.chunks_total
        if job.stage == "splitting" and meta.audio_duration_ms:
            total = max(total, estimate(meta.audio_duration_ms, job.settings).chunks)
        value = 95 if job.stage == "joining" else (90 * job.chunks_done // total if total else 0)
        if not status.terminal:
            value = max(value, meta.progress)  # never backwards while it runs
            meta.progress = value
        return min(value, 99)

    # ------------------------------------------------------------------ driving jobs

    def _driver_loop(self) -> None:
        while True:
            job_id = self._queue.get()
            if job_id is None:
                return
            self._drive(job_id)

    def _drive(self, job_id: str) -> None:
        with self._lock:
            meta = self._jobs.get(job_id)
            if meta is None or meta.started or meta.token.cancelled or self._stopping.is_set():
                return
            meta.started = True
            meta.idle.clear()
        final: Job | None = None
        try:
            job = self.store.get(job_id)
            if job.state.terminal:
                final = job  # ended elsewhere (the CLI's cancel, the desktop app) while queued
            elif job.settings.demo != self.config.demo:
                mode = "with" if job.settings.demo else "without"
                log.warning("job %s was started %s --demo: it resumes when served so", job_id, mode)
            else:
                if job.settings.demo:
                    repoint_demo_job(job.id, store=self.store, endpoint_url=self.endpoint_url or "")
                final = run_job(
                    job_id,
                    store=self.store,
                    api_key=self.config.api_key,
                    listener=lambda event: self._on_event(meta, event),
                    cancel=meta.token,
                    detach=meta.detach,
                )
        except JobLocked:
            # Its previous driver (a process that died) still looks alive: try again later.
            with self._lock:
                self._retry_at[job_id] = time.monotonic() + LOCKED_RETRY_S
        except InputError:
            log.warning("job %s is no longer in the job store", job_id)
            with self._lock:
                self._jobs.pop(job_id, None)
        except Exception:
            log.exception("job %s: unexpected error while driving it", job_id)
        try:
            if final is not None:
                self._after_run(meta, final)
        finally:
            with self._lock:
                meta.started = False
            meta.idle.set()

    def _after_run(self, meta: JobMeta, final: Job) -> None:
        if meta.suspended and not meta.user_cancelled and final.state is not JobState.COMPLETED:
            self._park(final, meta)
            return
        if final.state.terminal:
            self._ended(final, meta)

    def _park(self, job: Job, meta: JobMeta) -> None:
        """Put a job stopped by shutdown back in the queue, to resume on the next start.

        Its chunks in flight were not cancelled: the next start re-attaches to them.
        """
        if job.state is not JobState.IN_QUEUE:
            job.set_state(JobState.IN_QUEUE)
        job.stage = "queued"
        job.error = None
        job.finished_at = None
        self.store.save_job(job)
        meta.state = str(JobState.IN_QUEUE)
        meta.in_flight = 0
        log.info("job %s parked by the shutdown: it resumes on the next start", job.id)

    def _resume_all(self) -> None:
        with self._lock:
            metas = sorted(self._jobs.values(), key=lambda m: m.created_at)
        for meta in metas:
            if not JobState(meta.state).terminal:
                self._queue.put(meta.job_id)
            elif not meta.ended:
                with contextlib.suppress(InputError):
                    self._ended(self.store.get(meta.job_id), meta, count=False)
            else:
                self._deliver_if_needed(meta)

    def _supervise(self) -> None:
        while not self._stopping.wait(1.0):
            now = time.monotonic()
            with self._lock:
                due = [job_id for job_id, at in self._retry_at.items() if at <= now]
                for job_id in due:
                    del self._retry_at[job_id]
            for job_id in due:
                self._queue.put(job_id)
            if now - self._last_sweep >= SWEEP_EVERY_S:
                self._sweep(startup=False)

    # ------------------------------------------------------------------ events and metrics

    def _on_event(self, meta: JobMeta, event: JobEvent) -> None:
        job = event.job
        meta.state = str(job.state)
        meta.in_flight = sum(1 for c in job.chunks if c.runpod_id and not c.state.terminal)
        chunk = event.chunk
        if chunk is not None and chunk.state is JobState.COMPLETED:
            key = (chunk.index, chunk.attempt)
            if key not in meta.observed:
                meta.observed.add(key)
                if chunk.queue_ms is not None:
                    self.metrics.chunk_seconds.labels("queue").observe(chunk.queue_ms / 1000)
                if chunk.exec_ms is not None:
                    self.metrics.chunk_seconds.labels("exec").observe(chunk.exec_ms / 1000)
        if not self.broker.watched(job.id):
            return
        if event.kind == "chunk" and chunk is not None:
            data: dict[str, Any] = {"job_id": job.id, "chunk": chunk_json(chunk)}
            kind = "chunk"
        elif event.kind in ("job", "chunks"):
            data, kind = self.doc(job, meta, inline=False), "status"
        else:
            return
        if event.message:
            data["message"] = event.message
        self.broker.publish(job.id, (kind, data))

    def _counts(self) -> tuple[dict[str, int], int]:
        with self._lock:
            metas = list(self._jobs.values())
        by_state: dict[str, int] = {}
        for meta in metas:
            by_state[meta.state] = by_state.get(meta.state, 0) + 1
        return by_state, sum(m.in_flight for m in metas)

    # ------------------------------------------------------------------ the end of a job

    def _ended(self, job: Job, meta: JobMeta, *, count: bool = True) -> None:
        """Once per job: remove its temporary files, then deliver (S3, webhook)."""
        with self._lock:
            if meta.ended:
                return
            meta.ended = True
            meta.state = str(job.state)
            meta.in_flight = 0
            if not (job.state is JobState.COMPLETED and meta.push_to_s3):
                meta.result_ready = True
        if count:
            self.metrics.jobs_ended.labels(str(job.state)).inc()
        self._remove_temp_files(job, meta)
        self._save(meta)
        log.info("job %s ended %s", job.id, job.state)
        if meta.result_ready:
            self._publish_end(job.id, meta)
        self._deliver_if_needed(meta)

    def _remove_temp_files(self, job: Job, meta: JobMeta) -> None:
        for item in meta.folder.iterdir() if meta.folder.is_dir() else []:
            if item.name not in (META_NAME, OUTPUT_NAME):
                if item.is_dir():
                    shutil.rmtree(item, ignore_errors=True)
                else:
                    with contextlib.suppress(OSError):
                        item.unlink()
        # The pipeline keeps finished chunk videos of a failed job for a resume; the inputs
        # are gone now, so that resume cannot happen.
        shutil.rmtree(paths.job_work_dir(job.id), ignore_errors=True)

    def _publish_end(self, job_id: str, meta: JobMeta) -> None:
        if self.broker.watched(job_id):
            with contextlib.suppress(InputError):
                self.broker.publish(
                    job_id, ("end", self.doc(self.store.get(job_id), meta, inline=False))
                )

    def _deliver_if_needed(self, meta: JobMeta) -> None:
        if self._stopping.is_set():
            return  # left pending in job.json: the next start delivers
        if not meta.result_ready or meta.webhook == "pending":
            self._spawn(self._deliver, f"deliver-{meta.job_id}", meta)

    def _deliver(self, meta: JobMeta) -> None:
        job = self.store.get(meta.job_id)
        if not meta.result_ready:
            if self.s3 is None:
                meta.s3_error = self.s3_problem
            else:
                key = self.s3.key_for(job.id)
                try:
                    self.s3.upload(meta.output, key)
                except Exception as error:  # S3Error, or a bug: either way the job must end
                    if not isinstance(error, S3Error):
                        log.exception("job %s: unexpected error pushing to S3", job.id)
                    log.warning("job %s: %s", job.id, error)
                    meta.s3_error = str(error)
                    self.metrics.s3_uploads.labels("failed").inc()
                else:
                    meta.s3_key, meta.s3_error = key, None
                    self.metrics.s3_uploads.labels("done").inc()
            meta.result_ready = True
            self._save(meta)
            self._publish_end(job.id, meta)
        if meta.webhook == "pending" and meta.webhook_url:
            delivered, outcome = webhook.deliver(
                meta.webhook_url,
                self.doc(job, meta, inline=False),
                attempts=self.config.webhook_retries,
                backoff_s=self.config.webhook_backoff_s,
                secret=self.config.webhook_secret,
                stop=self._stopping,
            )
            if not delivered and self._stopping.is_set():
                return  # still pending: retried on the next start
            meta.webhook = "delivered" if delivered else "failed"
            meta.webhook_result = outcome
            self.metrics.webhooks.labels(meta.webhook).inc()
            self._save(meta)

    def _save(self, meta: JobMeta) -> None:
        with self._lock:
            text = json.dumps(meta.to_json(), indent=1)
            if meta.folder.is_dir():
                atomic_write_text(meta.folder / META_NAME, text)

    # ------------------------------------------------------------------ clean-up

    def _sweep(self, *, startup: bool) -> None:
        """Load the jobs (at start) and remove folders of jobs long gone: ended more than
        RESULT_TTL_HOURS ago, deleted from the history, or uploads that never became jobs."""
        self._last_sweep = time.monotonic()
        now = time.time()
        with self._lock:
            by_folder = {m.folder: m for m in self._jobs.values()}
        for folder in sorted(self.jobs_dir.iterdir()):
            if not folder.is_dir():
                continue
            meta = by_folder.get(folder) or (JobMeta.load(folder) if startup else None)
            if meta is None:
                with contextlib.suppress(OSError):
                    if now - folder.stat().st_mtime > ORPHAN_AGE_S:
                        shutil.rmtree(folder, ignore_errors=True)
                continue
            try:
                job = self.store.get(meta.job_id)
            except InputError:
                job = None
            expired = (
                job is not None
                and job.state.terminal
                and meta.ended
                and meta.result_ready
                and meta.webhook != "pending"
                and now - (job.finished_at or job.updated_at) > self.config.result_ttl_s
            )
            if job is None or expired:
                with self._lock:
                    self._jobs.pop(meta.job_id, None)
                shutil.rmtree(folder, ignore_errors=True)
                continue
            meta.state = str(job.state)
            meta.demo = job.settings.demo
            with self._lock:
                self._jobs.setdefault(meta.job_id, meta)


def chunk_json(chunk: Chunk) -> dict[str, Any]:
    return {
        "index": chunk.index,
        "start_s": chunk.start_ms / 1000,
        "end_s": chunk.end_ms / 1000,
        "status": str(chunk.state),
        "attempt": chunk.attempt,
        "queue_ms": chunk.queue_ms,
        "exec_ms": chunk.exec_ms,
    }


def not_found(job_id: str) -> ApiError:
    return ApiError(404, "not_found", f"No job with id '{job_id}'.")


def shutting_down() -> ApiError:
    return ApiError(503, "shutting_down", "The service is shutting down: try again shortly.")
