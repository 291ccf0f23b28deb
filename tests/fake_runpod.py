"""A small loopback stand-in for RunPod serverless, with fault injection, for client tests.

Speaks CONTRACT.md: ``/v2/{endpoint_id}/run``, ``/status/{id}``, ``/cancel/{id}``, ``/health``
with Bearer auth, the 10 MB body limit, IN_QUEUE -> IN_PROGRESS -> outcome by elapsed time,
404 for unknown (or expired) jobs and unknown endpoints. Faults are queued per route:
an HTTP status (with headers, e.g. ``Retry-After``), a dropped connection (the socket is
closed without an answer) or a delay (to trip read timeouts). ``/files/{name}`` serves
bytes without auth, for ``video_url`` outputs, and records the headers it got.
"""

from __future__ import annotations

import base64
import json
import socket
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

MAX_BODY = 10 * 1024 * 1024


def fake_mp4(size: int = 4096, seed: int = 1) -> bytes:
    """Bytes that start like an MP4 (an ``ftyp`` box) followed by an ``mdat`` of noise."""
    ftyp = b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00isomiso2avc1mp41"
    payload = bytes((i * 131 + seed * 17) % 256 for i in range(max(0, size - 40)))
    mdat = (len(payload) + 8).to_bytes(4, "big") + b"mdat" + payload
    return ftyp + mdat


_DEFAULT = object()


@dataclass
class Fault:
    """``kind``: "status" (answer ``code``), "drop" (close without answering), "delay"."""

    kind: str = "status"
    code: int = 503
    headers: dict[str, str] = field(default_factory=dict)
    body: str = '{"error": "service unavailable"}'
    delay_s: float = 0.0


@dataclass
class Outcome:
    """How a submitted job ends. ``output`` defaults to ``{"video": <base64 MP4>}``."""

    status: str = "COMPLETED"
    output: Any = _DEFAULT
    error: Any = None
    execution_ms: int = 1234


@dataclass
class Recorded:
    method: str
    path: str
    route: str
    headers: dict[str, str]
    body: bytes


@dataclass
class _Job:
    id: str
    created: float
    outcome: Outcome
    input: Any
    cancelled: bool = False


class FakeRunPod:
    def __init__(
        self,
        api_key: str = "test-key",
        endpoint_id: str = "fake-endpoint",
        *,
        queue_s: float = 0.0,
        run_s: float = 0.05,
        running_word: str = "IN_PROGRESS",
    ) -> None:
        self.api_key = api_key
        self.endpoint_id = endpoint_id
        self.queue_s = queue_s
        self.run_s = run_s
        self.running_word = running_word
        self.video = fake_mp4()
        self.outcomes: deque[Outcome] = deque()
        self.faults: dict[str, deque[Fault]] = {}
        self.files: dict[str, bytes] = {}
        self.jobs: dict[str, _Job] = {}
        self.requests: list[Recorded] = []
        self.health_answer: dict[str, Any] = {
            "jobs": {"completed": 3, "failed": 0, "inProgress": 1, "inQueue": 2, "retried": 0},
            "workers": {"idle": 1, "running": 1, "initializing": 0},
        }
        self._lock = threading.Lock()
        self._server = _Server(("127.0.0.1", 0), _make_handler(self))
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def url(self) -> str:
        return f"{self.origin}/v2/{self.endpoint_id}"

    def start(self) -> FakeRunPod:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def __enter__(self) -> FakeRunPod:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- test controls -----------------------------------------------------------------------

    def inject(self, route: str, *faults: Fault) -> None:
        """Queue faults for the next requests of a route: run, status, cancel, health, files."""
        with self._lock:
            self.faults.setdefault(route, deque()).extend(faults)

    def expire(self, job_id: str) -> None:
        with self._lock:
            self.jobs.pop(job_id, None)

    def seen(self, route: str) -> list[Recorded]:
        with self._lock:
            return [r for r in self.requests if r.route == route]

    # -- behaviour ---------------------------------------------------------------------------

    def _next_fault(self, route: str) -> Fault | None:
        with self._lock:
            queue = self.faults.get(route)
            return queue.popleft() if queue else None

    def _status_of(self, job: _Job) -> dict[str, Any]:
        elapsed = time.monotonic() - job.created
        answer: dict[str, Any] = {"id": job.id}
        if job.cancelled:
            answer["status"] = "CANCELLED"
        elif elapsed < self.queue_s:
            answer["status"] = "IN_QUEUE"
        elif elapsed < self.queue_s + self.run_s:
            answer.update(status=self.running_word, delayTime=int(self.queue_s * 1000))
            answer["workerId"] = "worker-1"
        else:
            outcome = job.outcome
            answer.update(
                status=outcome.status,
                delayTime=int(self.queue_s * 1000),
                executionTime=outcome.execution_ms,
                workerId="worker-1",
            )
            if outcome.output is _DEFAULT:
                answer["output"] = {"video": base64.b64encode(self.video).decode("ascii")}
            elif outcome.output is not None:
                answer["output"] = outcome.output
            if outcome.error is not None:
                answer["error"] = outcome.error
        return answer

    def handle(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        if path.startswith("/files/"):
            data = self.files.get(urlsplit(path).path.removeprefix("/files/"))
            if data is None:
                return _json(404, {"error": "no such file"})
            return 200, {"Content-Type": "video/mp4"}, data
        prefix = f"/v2/{self.endpoint_id}/"
        if not path.startswith(prefix):
            return _json(404, {"error": "endpoint not found"})
        if headers.get("authorization") != f"Bearer {self.api_key}":
            return _json(401, {"error": "Unauthorized"})
        rest = path.removeprefix(prefix)
        if method == "POST" and rest == "run":
            if len(body) > MAX_BODY:
                return _json(413, {"error": "request entity too large"})
            try:
                request = json.loads(body)
            except ValueError:
                return _json(400, {"error": "body is not JSON"})
            if not isinstance(request, dict) or not isinstance(request.get("input"), dict):
                return _json(400, {"error": "input is required"})
            job_id = f"job-{uuid.uuid4().hex[:12]}"
            with self._lock:
                outcome = self.outcomes.popleft() if self.outcomes else Outcome()
                self.jobs[job_id] = _Job(job_id, time.monotonic(), outcome, request["input"])
            return _json(200, {"id": job_id, "status": "IN_QUEUE"})
        if method == "GET" and rest.startswith("status/"):
            with self._lock:
                job = self.jobs.get(rest.removeprefix("status/"))
            if job is None:
                return _json(404, {"error": "job not found"})
            return _json(200, self._status_of(job))
        if method == "POST" and rest.startswith("cancel/"):
            with self._lock:
                job = self.jobs.get(rest.removeprefix("cancel/"))
                if job is not None:
                    job.cancelled = True
            if job is None:
                return _json(404, {"error": "job not found"})
            return _json(200, {"id": job.id, "status": "CANCELLED"})
        if method == "GET" and rest == "health":
            return _json(200, self.health_answer)
        return _json(404, {"error": "not found"})


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # keep-alive handler threads must not hold up stop()

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that hung up (read-timeout tests) is expected, not news


def _route(path: str) -> str:
    if path.startswith("/files/"):
        return "files"
    parts = path.strip("/").split("/")
    return parts[2] if len(parts) >= 3 else "unknown"


def _json(code: int, data: Any) -> tuple[int, dict[str, str], bytes]:
    return code, {"Content-Type": "application/json"}, json.dumps(data).encode()


def _make_handler(fake: FakeRunPod) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, like the real service

        def log_message(self, format: str, *args: Any) -> None:
            pass  # quiet tests

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            route = _route(self.path)
            headers = {k.lower(): v for k, v in self.headers.items()}
            with fake._lock:
                fake.requests.append(Recorded(self.command, self.path, route, headers, body))
            fault = fake._next_fault(route)
            if fault is not None and fault.kind == "drop":
                self.close_connection = True  # close the socket without a word
                return
            if fault is not None and fault.kind == "delay":
                time.sleep(fault.delay_s)
                fault = None
            if fault is not None:
                code, extra, payload = fault.code, fault.headers, fault.body.encode()
            else:
                code, extra, payload = fake.handle(self.command, self.path, headers, body)
            try:
                self.send_response(code)
                for key, value in extra.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            except OSError:
                self.close_connection = True  # the client gave up (read timeout)

        do_GET = _serve
        do_POST = _serve

    return Handler


def closed_port_url() -> str:
    """A loopback URL where nothing listens: connections are refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v2/nothing-here"


__all__ = ["MAX_BODY", "FakeRunPod", "Fault", "Outcome", "closed_port_url", "fake_mp4"]
