"""A local stand-in for a RunPod serverless endpoint running the InfiniteTalk worker.

It speaks RunPod's API (``/run``, ``/status``, ``/cancel``, ``/retry``, ``/health``, Bearer
auth, IN_QUEUE -> IN_PROGRESS -> COMPLETED) and really renders an MP4 the way the worker
answers: H.264 + AAC at 25 fps, the portrait centre-cropped to ``width x height``, the chunk's
audio, and a level meter over the bottom of the picture that follows the voice. The demo, the
GUI's demo mode and the tests use it; ``DemoFaults`` makes it misbehave the ways the live
service does (429, 5xx, dropped connections, failed / timed-out / empty / expired jobs,
chunk videos a little too long or short, other output keys).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import io
import json
import logging
import os
import queue
import shutil
import socket
import tempfile
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Literal, cast
from urllib.parse import urlsplit

from infinitetalk_gui.core.cancel import CancelToken
from infinitetalk_gui.core.errors import Cancelled, ConfigError, FFmpegError
from infinitetalk_gui.core.ffmpeg import probe, run_ffmpeg
from infinitetalk_gui.core.models import FPS

log = logging.getLogger(__name__)

DEFAULT_PORT = 8765
# RunPod's /run limit. Decimal megabytes: the stricter reading, so a client that checks
# against 10 MiB is caught here instead of by the live service.
MAX_RUN_BODY_BYTES = 10_000_000
# The model works in 81-frame windows at 25 fps: it rejects audio of one window or less.
MIN_AUDIO_S = 3.24
DEFAULT_EXECUTION_TIMEOUT_MS = 600_000
_MAX_DRAIN_BYTES = 64_000_000  # past this an oversized body is not read, the socket is closed
_LOOPBACK_HOSTS = ("127.0.0.1", "localhost")
_ROUTES = ("run", "status", "cancel", "retry", "health", "files")

Outcome = Literal["failed_json", "failed_text", "timed_out", "no_output"]
OutputKey = Literal["video", "video_base64", "data_uri", "video_url"]
OUTCOMES: tuple[Outcome, ...] = ("failed_json", "failed_text", "timed_out", "no_output")
OUTPUT_KEYS: tuple[OutputKey, ...] = ("video", "video_base64", "data_uri", "video_url")

# Far apart in RGB and in YUV, so a test finds each chunk's seam by colour alone.
TINT_COLOURS: tuple[tuple[int, int, int], ...] = (
    (230, 30, 30),
    (30, 200, 40),
    (40, 60, 230),
    (240, 220, 20),
    (220, 40, 220),
    (20, 210, 220),
    (250, 250, 250),
    (20, 20, 20),
)

IN_QUEUE, IN_PROGRESS, COMPLETED = "IN_QUEUE", "IN_PROGRESS", "COMPLETED"
FAILED, CANCELLED, TIMED_OUT = "FAILED", "CANCELLED", "TIMED_OUT"
_TERMINAL = frozenset({COMPLETED, FAILED, CANCELLED, TIMED_OUT})


@dataclass
class DemoFaults:
    """Ways to make the endpoint misbehave; safe to change from any thread while it runs.

    Counters count down as calls consume them. ``outcomes`` and ``expire_on_complete`` are
    keyed by submission order (0-based index of accepted ``/run`` calls) and apply to a job's
    first attempt only, so ``/retry`` or a new ``/run`` of the same chunk can succeed.
    ``extra_video_s``, ``output_key`` and ``tint_chunks`` are taken when a job is submitted.
    """

    run_429: int = 0  # the next N /run answer 429 with Retry-After: 1
    status_5xx: int = 0  # the next N /status answer status_5xx_code
    status_5xx_code: int = 503
    drop: dict[str, int] = field(default_factory=dict)  # route -> next N calls get no answer
    outcomes: dict[int, Outcome] = field(default_factory=dict)
    expire_on_complete: set[int] = field(default_factory=set)  # 404 right after COMPLETED
    extra_video_s: float = 0.0  # video stream longer (+) or shorter (-) than the audio
    output_key: OutputKey = "video"
    tint_chunks: bool = False  # each chunk a solid colour, by submission order
    _lock: threading.RLock = field(
        default_factory=threading.RLock, init=False, repr=False, compare=False
    )

    def update(self, **changes: Any) -> None:
        """Change several fields at once, atomically with respect to the server."""
        with self._lock:
            for name, value in changes.items():
                if name.startswith("_") or not hasattr(self, name):
                    raise AttributeError(f"DemoFaults has no field {name!r}")
                setattr(self, name, value)

    def take(self, counter: Literal["run_429", "status_5xx"]) -> bool:
        """Consume one unit of a countdown; True if the fault fires for this call."""
        with self._lock:
            left = int(getattr(self, counter))
            if left <= 0:
                return False
            setattr(self, counter, left - 1)
            return True

    def take_drop(self, route: str) -> bool:
        with self._lock:
            left = self.drop.get(route, 0)
            if left <= 0:
                return False
            self.drop[route] = left - 1
            return True

    def outcome_for(self, index: int) -> Outcome | None:
        with self._lock:
            return self.outcomes.get(index)

    def expires_on_complete(self, index: int) -> bool:
        with self._lock:
            return index in self.expire_on_complete

    def render_options(self) -> tuple[float, OutputKey, bool]:
        with self._lock:
            return self.extra_video_s, self.output_key, self.tint_chunks


@dataclass(frozen=True)
class CallRecord:
    """One HTTP call the endpoint saw, recorded before it answered (status None: dropped)."""

    method: str
    path: str
    route: str
    job_id: str | None
    time: float
    status: int | None


@dataclass
class _Job:
    id: str
    index: int
    request_path: Path
    execution_timeout_s: float
    ttl_s: float | None
    submitted_at: float
    status: str = IN_QUEUE
    attempt: int = 0
    queued_at: float = 0.0
    started_at: float | None = None
    finished_at: float | None = None
    expires_at: float | None = None
    worker_id: str | None = None
    error: str | None = None
    video_path: Path | None = None
    # Render faults as they were when the job was submitted.
    extra_video_s: float = 0.0
    output_key: OutputKey = "video"
    tint: tuple[int, int, int] | None = None
    token: CancelToken = field(default_factory=CancelToken)


def _worker_error_json(error: BaseException, worker_id: str) -> str:
    """The JSON string the runpod SDK puts in ``error`` when a handler raises (bad input
    raises ValueError here, as a worker handler would)."""
    return json.dumps(
        {
            "error_type": str(type(error)),
            "error_message": str(error),
            "error_traceback": "".join(
                traceback.format_exception(type(error), error, error.__traceback__)
            ),
            "hostname": socket.gethostname(),
            "worker_id": worker_id,
            "runpod_version": "demo",
        }
    )


def _decode_base64(value: Any, key: str) -> bytes:
    if not isinstance(value, str) or not value:
        raise ValueError(f"Missing required input: {key}")
    try:
        # Lenient like the worker: non-alphabet characters are skipped, so a "data:...;base64,"
        # prefix is not refused here; it shifts the bytes and the file comes out corrupt.
        return base64.b64decode(value)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"{key} is not valid base64: {exc}") from exc


def _required_size(job_input: dict[str, Any], key: str) -> int:
    value = job_input.get(key)
    if value is None:
        raise ValueError(f"Missing required input: {key}")
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{key} must be a whole number of pixels, got {value!r}")
    if not 64 <= value <= 2048 or value % 16:
        raise ValueError(f"{key} must be a multiple of 16 between 64 and 2048, got {value}")
    return value


class DemoEndpoint:
    """A RunPod-compatible endpoint on loopback that renders real (demo) videos."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        latency_s: float = 1.0,
        workers: int = 3,
        api_key: str | None = None,
        faults: DemoFaults | None = None,
        work_dir: str | Path | None = None,
        result_ttl_s: float = 1800.0,
    ) -> None:
        if host not in _LOOPBACK_HOSTS:
            raise ValueError(f"the demo endpoint only listens on loopback, not on {host!r}")
        if workers < 1:
            raise ValueError("the demo endpoint needs at least one worker")
        self.host = "127.0.0.1"
        self.port = port
        self.latency_s = latency_s  # read per job: may be changed while running
        self.result_ttl_s = result_ttl_s
        self.workers = workers
        self.api_key = api_key
        self.faults = faults if faults is not None else DemoFaults()
        self._parent_dir = Path(work_dir) if work_dir is not None else None
        self._work: Path | None = None
        self._lock = threading.RLock()
        self._jobs: dict[str, _Job] = {}
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._submitted = 0
        self._counts = {"completed": 0, "failed": 0, "retried": 0}
        self._running = 0
        self._calls: list[CallRecord] = []
        self._run_inputs: list[dict[str, Any]] = []
        self._server: _Server | None = None
        self._threads: list[threading.Thread] = []
        self._stopping = False

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> DemoEndpoint:
        if self._server is not None:
            return self
        if self._parent_dir is not None:
            self._parent_dir.mkdir(parents=True, exist_ok=True)
        self._work = Path(tempfile.mkdtemp(prefix="demo-endpoint-", dir=self._parent_dir))
        self._stopping = False
        try:
            server = _Server((self.host, self.port), _Handler, self)
        except OSError:
            shutil.rmtree(self._work, ignore_errors=True)  # e.g. the port is taken
            self._work = None
            raise
        self._server = server
        self.port = server.server_address[1]
        serve = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="demo-endpoint-http",
            daemon=True,
        )
        self._threads = [serve]
        for n in range(self.workers):
            self._threads.append(
                threading.Thread(
                    target=self._worker_loop,
                    args=(f"demo-worker-{n + 1}",),
                    name=f"demo-endpoint-worker-{n + 1}",
                    daemon=True,
                )
            )
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        """Stop promptly: renders cancelled, connections closed, threads joined, files removed."""
        server = self._server
        if server is None:
            return
        with self._lock:
            self._stopping = True
            for job in self._jobs.values():
                if job.status == IN_PROGRESS:
                    job.token.cancel()
        for _ in range(self.workers):
            self._queue.put(None)
        server.shutdown()
        server.close_connections()
        server.server_close()
        for thread in self._threads:
            thread.join(timeout=10)
        server.join_handlers(timeout=2)
        self._server = None
        self._threads = []
        with self._lock:
            self._jobs.clear()
        self._queue = queue.Queue()
        if self._work is not None:
            shutil.rmtree(self._work, ignore_errors=True)
            self._work = None

    def __enter__(self) -> DemoEndpoint:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """The base URL to give a client: requests go to ``{url}/run``, ``{url}/status/ID``..."""
        if self._server is None:
            raise RuntimeError("the demo endpoint is not running")
        return f"http://{self.host}:{self.port}"

    @property
    def work_dir(self) -> Path | None:
        """The folder holding this run's requests and videos (removed by ``stop``)."""
        return self._work

    # -- observability ---------------------------------------------------------------------

    @property
    def calls(self) -> list[CallRecord]:
        with self._lock:
            return list(self._calls)

    def calls_to(self, route: str) -> list[CallRecord]:
        return [call for call in self.calls if call.route == route]

    @property
    def run_calls(self) -> int:
        """Accepted ``/run`` calls (jobs created), not counting refused or dropped ones."""
        with self._lock:
            return self._submitted

    @property
    def submitted_ids(self) -> list[str]:
        """Job ids in submission order."""
        return [c.job_id for c in self.calls_to("run") if c.status == 200 and c.job_id]

    @property
    def status_calls(self) -> int:
        return len(self.calls_to("status"))

    @property
    def cancelled_ids(self) -> list[str]:
        """Job ids ``/cancel`` was answered for (whatever their state was)."""
        return [c.job_id for c in self.calls_to("cancel") if c.status == 200 and c.job_id]

    @property
    def retried_ids(self) -> list[str]:
        return [c.job_id for c in self.calls_to("retry") if c.status == 200 and c.job_id]

    @property
    def run_inputs(self) -> list[dict[str, Any]]:
        """Each accepted ``input`` (base64 fields replaced by their length) plus its policy."""
        with self._lock:
            return [dict(item) for item in self._run_inputs]

    def job_status(self, job_id: str) -> str | None:
        """The job's status as the endpoint sees it, None if unknown or expired."""
        with self._lock:
            self._sweep_expired()
            job = self._jobs.get(job_id)
            return job.status if job else None

    # -- the API ---------------------------------------------------------------------------

    def _record(self, call: CallRecord) -> None:
        with self._lock:
            self._calls.append(call)

    def _submit(self, body: bytes) -> tuple[int, dict[str, Any]]:
        try:
            request = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError):
            return 400, {"error": "request body is not valid JSON"}
        if not isinstance(request, dict) or not isinstance(request.get("input"), dict):
            return 400, {"error": "request body must be a JSON object with an 'input' object"}
        policy = request.get("policy") if isinstance(request.get("policy"), dict) else {}
        assert isinstance(policy, dict)
        timeout_ms = policy.get("executionTimeout", DEFAULT_EXECUTION_TIMEOUT_MS)
        ttl_ms = policy.get("ttl")
        if not isinstance(timeout_ms, int | float) or timeout_ms <= 0:
            return 400, {"error": "policy.executionTimeout must be a positive number of ms"}
        if ttl_ms is not None and (not isinstance(ttl_ms, int | float) or ttl_ms <= 0):
            return 400, {"error": "policy.ttl must be a positive number of ms"}
        summary = {
            key: (
                f"<{len(value)} chars>"
                if key.endswith("_base64") and isinstance(value, str)
                else value
            )
            for key, value in request["input"].items()
        }
        job_id = f"{uuid.uuid4()}-demo"
        assert self._work is not None
        request_path = self._work / f"{job_id}.request.json"
        # The request (portrait and audio) waits on disk, not in memory, until a worker runs it.
        request_path.write_bytes(body)
        extra_video_s, output_key, tint = self.faults.render_options()
        now = time.monotonic()
        with self._lock:
            index = self._submitted
            job = _Job(
                id=job_id,
                index=index,
                request_path=request_path,
                execution_timeout_s=float(timeout_ms) / 1000,
                ttl_s=None if ttl_ms is None else float(ttl_ms) / 1000,
                submitted_at=now,
                queued_at=now,
                extra_video_s=extra_video_s,
                output_key=output_key,
                tint=TINT_COLOURS[index % len(TINT_COLOURS)] if tint else None,
            )
            self._submitted += 1
            self._jobs[job_id] = job
            self._run_inputs.append({"id": job_id, "input": summary, "policy": dict(policy)})
        self._queue.put(job_id)
        return 200, {"id": job_id, "status": IN_QUEUE}

    def _status(self, job_id: str) -> tuple[int, dict[str, Any]]:
        with self._lock:
            self._sweep_expired()
            job = self._jobs.get(job_id)
            if job is None:
                return 404, {"error": "request does not exist"}
            answer: dict[str, Any] = {"id": job.id, "status": job.status}
            if job.started_at is not None:
                answer["delayTime"] = round((job.started_at - job.queued_at) * 1000)
                answer["workerId"] = job.worker_id
            if job.finished_at is not None and job.started_at is not None:
                answer["executionTime"] = round((job.finished_at - job.started_at) * 1000)
            if job.error is not None:
                answer["error"] = job.error
            video_path, output_key = job.video_path, job.output_key
        if answer["status"] == COMPLETED and video_path is not None:
            # Encoded per request from the file: finished videos are not kept in memory.
            try:
                data = video_path.read_bytes()
            except OSError:
                return 404, {"error": "request does not exist"}
            answer["output"] = self._output(job_id, data, output_key)
        return 200, answer

    def _output(self, job_id: str, data: bytes, key: OutputKey) -> dict[str, str]:
        if key == "video_url":
            return {"video_url": f"{self.url}/files/{job_id}.mp4"}
        encoded = base64.b64encode(data).decode("ascii")
        if key == "data_uri":
            return {"video_base64": "data:video/mp4;base64," + encoded}
        return {key: encoded}

    def _cancel(self, job_id: str) -> tuple[int, dict[str, Any]]:
        with self._lock:
            self._sweep_expired()
            job = self._jobs.get(job_id)
            if job is None:
                return 404, {"error": "request does not exist"}
            if job.status in (IN_QUEUE, IN_PROGRESS):
                job.status = CANCELLED
                job.finished_at = time.monotonic()
                job.expires_at = job.finished_at + self.result_ttl_s
                job.token.cancel()  # stops its ffmpeg, if one is running
            return 200, {"id": job.id, "status": job.status}

    def _retry(self, job_id: str) -> tuple[int, dict[str, Any]]:
        with self._lock:
            self._sweep_expired()
            job = self._jobs.get(job_id)
            if job is None:
                return 404, {"error": "request does not exist"}
            if job.status not in (FAILED, TIMED_OUT):
                return 400, {
                    "error": f"job {job_id} is {job.status}: only FAILED or "
                    "TIMED_OUT jobs can be retried"
                }
            job.status = IN_QUEUE
            job.attempt += 1
            job.queued_at = time.monotonic()
            job.started_at = job.finished_at = job.expires_at = None
            job.worker_id = job.error = None
            job.token = CancelToken()
            self._counts["retried"] += 1
        self._queue.put(job_id)
        return 200, {"id": job_id, "status": IN_QUEUE}

    def _health(self) -> dict[str, Any]:
        with self._lock:
            self._sweep_expired()
            in_queue = sum(1 for job in self._jobs.values() if job.status == IN_QUEUE)
            in_progress = sum(1 for job in self._jobs.values() if job.status == IN_PROGRESS)
            running = self._running
            return {
                "jobs": {
                    "completed": self._counts["completed"],
                    "failed": self._counts["failed"],
                    "inProgress": in_progress,
                    "inQueue": in_queue,
                    "retried": self._counts["retried"],
                },
                "workers": {
                    "idle": self.workers - running,
                    "initializing": 0,
                    "ready": self.workers - running,
                    "running": running,
                    "throttled": 0,
                    "unhealthy": 0,
                },
            }

    def _video_file(self, job_id: str) -> Path | None:
        with self._lock:
            self._sweep_expired()
            job = self._jobs.get(job_id)
            if job is None or job.status != COMPLETED:
                return None
            return job.video_path

    def _sweep_expired(self) -> None:
        """Forget finished jobs past their time to live (the caller holds the lock)."""
        now = time.monotonic()
        for job in list(self._jobs.values()):
            if job.status not in _TERMINAL:
                continue
            expired = job.expires_at is not None and now >= job.expires_at
            if job.ttl_s is not None and now >= job.submitted_at + job.ttl_s:
                expired = True
            if expired:
                del self._jobs[job.id]
                self._remove_files(job)

    @staticmethod
    def _remove_files(job: _Job) -> None:
        for path in (job.request_path, job.video_path):
            if path is not None:
                with contextlib.suppress(OSError):
                    path.unlink()

    # -- the workers -----------------------------------------------------------------------

    def _worker_loop(self, worker_id: str) -> None:
        while True:
            job_id = self._queue.get()
            if job_id is None:
                return
            with self._lock:
                if self._stopping:
                    return
                job = self._jobs.get(job_id)
                if job is None or job.status != IN_QUEUE:
                    continue  # cancelled or expired while it waited
                job.status = IN_PROGRESS
                job.started_at = time.monotonic()
                job.worker_id = worker_id
                token = job.token
                self._running += 1
            try:
                self._execute(job, token, worker_id)
            except Exception:  # a demo bug must not kill the worker thread
                log.exception("demo worker %s crashed on job %s", worker_id, job.id)
                self._finish(job, token, FAILED, error="demo worker crashed")
            finally:
                with self._lock:
                    self._running -= 1

    def _execute(self, job: _Job, token: CancelToken, worker_id: str) -> None:
        assert job.started_at is not None
        deadline = job.started_at + job.execution_timeout_s
        min_end = job.started_at + self.latency_s
        outcome = self.faults.outcome_for(job.index) if job.attempt == 0 else None
        if outcome in ("failed_json", "failed_text", "timed_out"):
            if outcome == "timed_out":
                self._wait_until(token, deadline, min_end)
                self._finish(job, token, TIMED_OUT)
                return
            if token.wait(max(0.0, min(min_end, deadline) - time.monotonic())):
                return
            if outcome == "failed_json":
                try:
                    raise RuntimeError(
                        "CUDA out of memory. Tried to allocate 2.00 GiB "
                        "(failure injected by the demo endpoint)"
                    )
                except RuntimeError as exc:
                    error = _worker_error_json(exc, worker_id)
            else:
                error = "worker exited unexpectedly (failure injected by the demo endpoint)"
            self._finish(job, token, FAILED, error=error)
            return

        assert self._work is not None
        video_path = self._work / f"{job.id}.mp4"
        try:
            job_input = self._load_input(job)
            _render(
                job_input,
                video_path,
                scratch=self._work / f"{job.id}.scratch",
                extra_video_s=job.extra_video_s,
                tint=job.tint,
                cancel=token,
                timeout=max(1.0, deadline - time.monotonic()),
            )
        except Cancelled:
            return
        except Exception as exc:
            if token.cancelled:
                return
            if time.monotonic() >= deadline:
                self._finish(job, token, TIMED_OUT)
                return
            self._finish(job, token, FAILED, error=_worker_error_json(exc, worker_id))
            return
        if self._wait_until(token, deadline, min_end):
            return
        if time.monotonic() >= deadline:
            self._finish(job, token, TIMED_OUT, video=video_path)
            return
        if outcome == "no_output":
            self._finish(job, token, COMPLETED, video=video_path, keep_video=False)
            return
        self._finish(
            job,
            token,
            COMPLETED,
            video=video_path,
            keep_video=True,
            expire_now=self.faults.expires_on_complete(job.index) and job.attempt == 0,
        )

    @staticmethod
    def _wait_until(token: CancelToken, deadline: float, min_end: float) -> bool:
        """Stay IN_PROGRESS until ``min_end`` (or the deadline); True if cancelled."""
        return token.wait(max(0.0, min(min_end, deadline) - time.monotonic()))

    def _load_input(self, job: _Job) -> dict[str, Any]:
        request = json.loads(job.request_path.read_bytes())
        return cast(dict[str, Any], request["input"])

    def _finish(
        self,
        job: _Job,
        token: CancelToken,
        status: str,
        *,
        error: str | None = None,
        video: Path | None = None,
        keep_video: bool = False,
        expire_now: bool = False,
    ) -> None:
        with self._lock:
            current = self._jobs.get(job.id) is job and job.token is token
            if not current or job.status != IN_PROGRESS:
                # Cancelled or expired meanwhile: its video is not wanted.
                if video is not None:
                    with contextlib.suppress(OSError):
                        video.unlink()
                return
            now = time.monotonic()
            job.status = status
            job.finished_at = now
            job.error = error
            job.expires_at = now if expire_now else now + self.result_ttl_s
            if keep_video:
                job.video_path = video
            elif video is not None:
                with contextlib.suppress(OSError):
                    video.unlink()
            if status == COMPLETED:
                self._counts["completed"] += 1
            elif status in (FAILED, TIMED_OUT):
                self._counts["failed"] += 1


def _render(
    job_input: dict[str, Any],
    out: Path,
    *,
    scratch: Path,
    extra_video_s: float,
    tint: tuple[int, int, int] | None,
    cancel: CancelToken,
    timeout: float,
) -> None:
    """What the worker does with its input, with a level meter standing in for the model."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    input_type = job_input.get("input_type")
    if input_type is None:
        raise ValueError("Missing required input: input_type")
    if input_type != "image":
        raise ValueError(f"input_type {input_type!r} is not supported: send 'image'")
    person_count = job_input.get("person_count")
    if person_count is None:
        raise ValueError("Missing required input: person_count")
    if person_count != "single":
        raise ValueError(f"person_count {person_count!r} needs a second audio: send 'single'")
    image_bytes = _decode_base64(job_input.get("image_base64"), "image_base64")
    audio_bytes = _decode_base64(job_input.get("wav_base64"), "wav_base64")
    width = _required_size(job_input, "width")
    height = _required_size(job_input, "height")

    scratch.mkdir(parents=True, exist_ok=True)
    try:
        try:
            with Image.open(io.BytesIO(image_bytes)) as opened:
                image = opened.convert("RGB")
        except (UnidentifiedImageError, OSError, ValueError) as exc:
            raise ValueError(f"image_base64 is not a readable image: {type(exc).__name__}") from exc
        # The worker's crop: scale to cover width x height, cut the centre.
        framed = scratch / "frame.png"
        ImageOps.fit(image, (width, height), Image.Resampling.LANCZOS).save(framed)

        audio = scratch / "audio.wav"
        audio.write_bytes(audio_bytes)
        try:
            info = probe(audio, cancel=cancel)
        except FFmpegError as exc:
            raise ValueError(f"wav_base64 is not a readable audio file: {exc}") from exc
        if not info.has_audio or info.duration_s is None:
            raise ValueError("wav_base64 holds no audio stream")
        if info.duration_s <= MIN_AUDIO_S:
            raise ValueError(
                f"Audio is too short ({info.duration_s:.2f} s): InfiniteTalk needs more than "
                f"{MIN_AUDIO_S} s (81 frames at {FPS} fps)"
            )

        video_s = max(1 / FPS, info.duration_s + extra_video_s)
        if tint is not None:
            colour = "0x{:02x}{:02x}{:02x}".format(*tint)
            source = ["-f", "lavfi", "-i", f"color=c={colour}:s={width}x{height}:r={FPS}"]
            graph = f"[0:v]trim=duration={video_s:.3f},setsar=1,format=yuv420p[v]"
        else:
            band = max(16, height // 5 // 2 * 2)
            bar_h = max(8, band * 7 // 10 // 2 * 2)
            half_w = max(80, width * 3 // 8)  # showvolume draws at least 80 px
            source = ["-framerate", str(FPS), "-i", str(framed)]
            # A darkened strip at the bottom with a level meter that opens from the centre
            # like a mouth: wide while the voice is loud, gone in the pauses. The square root
            # of the level lets quiet syllables show too; showvolume's colour is 0xAABBGGRR.
            graph = (
                f"[1:a]aformat=channel_layouts=mono,aeval=sqrt(abs(val(0))),"
                f"showvolume=r={FPS}:w={half_w}:h={bar_h}:b=0:f=0.5:t=0:v=0:m=p:ds=lin"
                f":c=0xFF00FC7C:p=0,format=rgba,split[right][left];"
                f"[left]hflip[mirrored];[mirrored][right]hstack[meter];"
                # Decoded and darkened once, then repeated: -loop 1 would decode every frame.
                f"[0:v]drawbox=x=0:y=ih-{band}:w=iw:h={band}:color=black@0.45:t=fill,"
                f"format=yuv420p,loop=loop=-1:size=1,settb=1/{FPS},setpts=N[bg];"
                f"[bg][meter]overlay=x=(W-w)/2:y=H-{band}+{(band - bar_h) // 2}:eof_action=pass,"
                f"trim=duration={video_s:.3f},setsar=1,format=yuv420p[v]"
            )
        partial = out.with_suffix(".part.mp4")
        run_ffmpeg(
            [
                "-loglevel", "error", "-y",
                *source,
                "-i", str(audio),
                "-filter_complex", graph,
                "-map", "[v]", "-map", "1:a:0",
                "-c:v", "libx264", "-preset", "ultrafast", "-crf", "28", "-pix_fmt", "yuv420p",
                "-r", str(FPS),
                "-c:a", "aac", "-b:a", "96k",
                "-movflags", "+faststart",
                str(partial),
            ],
            timeout=timeout,
            cancel=cancel,
        )  # fmt: skip
        partial.replace(out)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        with contextlib.suppress(OSError):
            out.with_suffix(".part.mp4").unlink()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        endpoint: DemoEndpoint,
    ) -> None:
        self.endpoint = endpoint
        self._connections: set[socket.socket] = set()
        self._handler_threads: set[threading.Thread] = set()
        self._conn_lock = threading.Lock()
        super().__init__(address, handler)

    def track(self, connection: socket.socket, alive: bool) -> None:
        with self._conn_lock:
            if alive:
                self._connections.add(connection)
                self._handler_threads.add(threading.current_thread())
            else:
                self._connections.discard(connection)
                self._handler_threads.discard(threading.current_thread())

    def close_connections(self) -> None:
        """Unblock handler threads waiting on idle keep-alive connections."""
        with self._conn_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def join_handlers(self, timeout: float) -> None:
        with self._conn_lock:
            threads = list(self._handler_threads)
        deadline = time.monotonic() + timeout
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def handle_error(self, request: Any, client_address: Any) -> None:
        # The default prints a traceback to stderr; the demo prints nothing.
        log.debug("demo endpoint: error handling a request", exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like the live service
    server_version = "InfiniteTalkDemo/1"

    @property
    def endpoint(self) -> DemoEndpoint:
        return cast(_Server, self.server).endpoint

    def setup(self) -> None:
        super().setup()
        cast(_Server, self.server).track(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            cast(_Server, self.server).track(self.connection, False)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the demo prints nothing

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def _dispatch(self, method: str) -> None:
        path = urlsplit(self.path).path.rstrip("/")
        parts = [part for part in path.split("/") if part]
        if len(parts) >= 3 and parts[0] == "v2":
            parts = parts[2:]  # also accept RunPod's /v2/{endpoint_id}/... form
        route = parts[0] if parts and parts[0] in _ROUTES else "unknown"
        job_id = parts[1] if len(parts) == 2 else None
        if route == "files" and job_id is not None:
            job_id = job_id.removesuffix(".mp4")
        self._route, self._job_id = route, job_id

        length = int(self.headers.get("Content-Length") or 0)
        if route == "run" and length > MAX_RUN_BODY_BYTES:
            self._drain(length)
            self._send(
                413,
                {
                    "error": f"request body is {length} bytes; the limit for /run is "
                    f"{MAX_RUN_BODY_BYTES} bytes (10 MB)"
                },
            )
            return
        if length > MAX_RUN_BODY_BYTES:
            self._drain(length)
            self._send(400, {"error": "request body too large"})
            return
        body = self.rfile.read(length) if length > 0 else b""

        endpoint = self.endpoint
        if endpoint.faults.take_drop(route):
            self._record(None)
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        if route == "files":
            self._send_file(method, job_id)
            return
        if endpoint.api_key is not None:
            expected = f"Bearer {endpoint.api_key}"
            if self.headers.get("Authorization", "") != expected:
                self._send(401, {"error": "Unauthorized: the API key is missing or wrong"})
                return
        if route == "run" and method == "POST" and job_id is None:
            if endpoint.faults.take("run_429"):
                self._send(429, {"error": "Too many requests"}, {"Retry-After": "1"})
                return
            code, answer = endpoint._submit(body)
            self._job_id = answer.get("id")
            self._send(code, answer)
        elif route == "status" and job_id is not None:
            if endpoint.faults.take("status_5xx"):
                code = endpoint.faults.status_5xx_code
                self._send(code, {"error": "Service temporarily unavailable"})
                return
            self._send(*endpoint._status(job_id))
        elif route == "cancel" and method == "POST" and job_id is not None:
            self._send(*endpoint._cancel(job_id))
        elif route == "retry" and method == "POST" and job_id is not None:
            self._send(*endpoint._retry(job_id))
        elif route == "health" and method == "GET" and job_id is None:
            self._send(200, endpoint._health())
        else:
            self._send(404, {"error": f"no such route: {method} {self.path}"})

    def _drain(self, length: int) -> None:
        """Read an oversized body so the client gets our answer, not a connection reset."""
        if length > _MAX_DRAIN_BYTES:
            self.close_connection = True
            return
        left = length
        while left > 0:
            piece = self.rfile.read(min(left, 1 << 16))
            if not piece:
                break
            left -= len(piece)

    def _record(self, status: int | None) -> None:
        self.endpoint._record(
            CallRecord(
                method=self.command,
                path=self.path,
                route=self._route,
                job_id=self._job_id,
                time=time.time(),
                status=status,
            )
        )

    def _send(
        self, code: int, answer: dict[str, Any], headers: dict[str, str] | None = None
    ) -> None:
        # Recorded before answering, so a client that got the answer can rely on the record.
        self._record(code)
        data = json.dumps(answer).encode("utf-8")
        try:
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
        except OSError:
            self.close_connection = True  # the client went away

    def _send_file(self, method: str, job_id: str | None) -> None:
        path = self.endpoint._video_file(job_id) if job_id and method == "GET" else None
        try:
            handle = path.open("rb") if path is not None else None
        except OSError:
            handle = None
        if handle is None:
            self._send(404, {"error": "no such file"})
            return
        with handle:
            size = Path(handle.name).stat().st_size
            self._record(200)
            try:
                self.send_response(200)
                self.send_header("Content-Type", "video/mp4")
                self.send_header("Content-Length", str(size))
                self.end_headers()
                shutil.copyfileobj(handle, self.wfile, 1 << 16)
            except OSError:
                self.close_connection = True


def serve_forever(
    port: int = DEFAULT_PORT,
    latency: float = 1.0,
    *,
    workers: int = 3,
    api_key: str | None = None,
    on_ready: Callable[[str], None] | None = None,
    stop: threading.Event | None = None,
) -> None:
    """Run the demo endpoint until ``stop`` is set or Ctrl-C. Prints nothing itself:
    ``on_ready`` gets the base URL once it listens (the CLI prints it)."""
    stop_event = stop if stop is not None else threading.Event()
    with DemoEndpoint(port=port, latency_s=latency, workers=workers, api_key=api_key) as demo:
        if on_ready is not None:
            on_ready(demo.url)
        # Short waits keep the main thread responsive to Ctrl-C.
        while not stop_event.wait(0.5):
            pass


# How much lower the CPU priority of a separate demo endpoint process is (POSIX nice steps).
CHILD_NICENESS = 10


class DemoEndpointProcess:
    """The demo endpoint in a process of its own, at a lower CPU priority: the desktop app's.

    Inside the app's process, the endpoint's work (the JSON and base64 of every request and
    answer, the portrait decode, its ffmpeg bookkeeping) competes with the window for the GIL
    and shows up as stalls a real render does not have: like RunPod, it belongs elsewhere.
    Same face as ``DemoEndpoint`` for a client: ``start()``, ``url``, ``stop()``. The child
    stops when told to, or by itself when this process goes away (its pipe closes).
    """

    def __init__(self, *, latency_s: float = 1.0, start_timeout_s: float = 60.0) -> None:
        self.latency_s = latency_s
        self._start_timeout_s = start_timeout_s
        self._process: Any = None
        self._conn: Any = None
        self._url: str | None = None

    def start(self) -> DemoEndpointProcess:
        if self._process is not None:
            return self
        import multiprocessing

        # spawn everywhere: forking a process that runs Qt and threads is not safe.
        context = multiprocessing.get_context("spawn")
        ours, theirs = context.Pipe()
        process = context.Process(
            target=_serve_in_child,
            args=(theirs, self.latency_s),
            name="infinitetalk-demo-endpoint",
            daemon=True,
        )
        process.start()
        theirs.close()  # only the child holds that end now: its death closes the pipe
        try:
            if not ours.poll(self._start_timeout_s):
                raise ConfigError(
                    f"The built-in demo endpoint did not start within "
                    f"{self._start_timeout_s:.0f} s."
                )
            kind, value = ours.recv()
        except (EOFError, OSError):
            kind, value = "error", f"it exited with code {process.exitcode}"
        except ConfigError:
            process.kill()
            process.join(5)
            ours.close()
            raise
        if kind != "url":
            process.join(5)
            ours.close()
            raise ConfigError(f"The built-in demo endpoint could not start: {value}")
        self._process, self._conn, self._url = process, ours, str(value)
        log.info("demo endpoint process %s listening at %s", process.pid, self._url)
        return self

    @property
    def url(self) -> str:
        if self._url is None:
            raise RuntimeError("the demo endpoint is not running")
        return self._url

    @property
    def pid(self) -> int | None:
        return None if self._process is None else int(self._process.pid)

    def stop(self, timeout_s: float = 10.0) -> None:
        """Ask the child to stop (renders cancelled, files removed), then make sure it has."""
        process, conn = self._process, self._conn
        if process is None:
            return
        self._process = self._conn = self._url = None
        with contextlib.suppress(OSError, ValueError):
            conn.send("stop")
        process.join(timeout_s)
        if process.is_alive():
            log.warning("the demo endpoint process did not stop in %.0f s: killed", timeout_s)
            process.kill()
            process.join(5)
        conn.close()

    def __enter__(self) -> DemoEndpointProcess:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _serve_in_child(conn: Any, latency_s: float) -> None:
    """The demo endpoint process: serve until told to stop or until the app is gone."""
    if hasattr(os, "nice"):
        with contextlib.suppress(OSError):
            os.nice(CHILD_NICENESS)  # its ffmpeg children inherit it
    try:
        endpoint = DemoEndpoint(latency_s=latency_s).start()
    except Exception as error:  # reported to the parent, which says it in words
        conn.send(("error", f"{type(error).__name__}: {error}"))
        return
    try:
        conn.send(("url", endpoint.url))
        conn.recv()  # "stop", or EOFError: the app's end of the pipe closed (it exited)
    except (EOFError, OSError):
        pass
    finally:
        endpoint.stop()
        conn.close()
