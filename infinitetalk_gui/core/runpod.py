"""RunPod serverless client: submit a chunk, poll it, cancel it, check the endpoint, save its video.

Coded to the project's CONTRACT.md (the live API), not to the original plan's guesses.

Threading: one ``RunPodClient`` is shared by the pipeline's polling threads. Each thread gets
its own ``requests.Session`` (``threading.local``), because a Session is not documented as
thread-safe; the list of sessions is guarded by a lock so ``close()`` can close them all.

Retries: transport trouble (429, 408, 5xx, refused or dropped connections, timeouts, an
unreadable answer) is retried here, on the same request, with exponential backoff and
jitter, honouring ``Retry-After``. urllib3's ``Retry`` is not used because its sleeps cannot
be interrupted by a ``CancelToken``. These retries never count as chunk attempts; a 404 on
``/status`` (:class:`JobExpired`), FAILED, TIMED_OUT or COMPLETED without a video are chunk
failures that the pipeline resubmits.

Secrets: the API key goes only into the ``Authorization`` header of requests to the endpoint's
own origin. It is never logged, never put in an exception message, never sent to a foreign
``video_url`` host. Base64 payloads and signed URL query strings are never logged either.
"""

from __future__ import annotations

import base64
import binascii
import email.utils
import json
import logging
import math
import os
import random
import re
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, TypeVar
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter

from infinitetalk_gui import __version__
from infinitetalk_gui.core import logs
from infinitetalk_gui.core.cancel import CancelToken
from infinitetalk_gui.core.errors import (
    AuthError,
    Cancelled,
    ChunkFailed,
    ConfigError,
    InputError,
    PayloadTooLarge,
    RemoteError,
)
from infinitetalk_gui.core.models import DEFAULT_PROMPT, RUNPOD_BASE_URL, JobState, check_size
from infinitetalk_gui.core.secrets import ENV_VAR, HOW_TO_PROVIDE

log = logging.getLogger(__name__)

T = TypeVar("T")

MAX_RUN_BODY_BYTES = 10 * 1024 * 1024  # RunPod's limit for a /run request body
DEFAULT_EXECUTION_TIMEOUT_MS = 20 * 60 * 1000
NO_VIDEO = "the worker reported success but returned no video"
_MIB = 1024 * 1024
# Base64 is decoded in blocks of this many characters (a multiple of 4): ~768 KiB of video.
_B64_BLOCK_CHARS = 1024 * 1024
_DOWNLOAD_BLOCK_BYTES = 256 * 1024
_MESSAGE_LIMIT = 500  # server texts are cut to this before reaching a message or a log
_ENDPOINT_ID = re.compile(r"[A-Za-z0-9_-]+")
# Whitespace is dropped and URL-safe characters mapped to the standard alphabet.
_B64_CLEAN = str.maketrans({" ": None, "\t": None, "\r": None, "\n": None, "-": "+", "_": "/"})
_RETRYABLE_HTTP = frozenset({408, 429})


class JobExpired(ChunkFailed):
    """``/status`` answered 404 for a job we submitted: expired or unknown, resubmit the chunk."""


class EndpointUnreachable(RemoteError):
    """Transport errors (429, 5xx, dropped connections) went on past the retry budget."""


# --------------------------------------------------------------------------------------------
# Plain helpers


def endpoint_url_for(endpoint_id: str) -> str:
    """The base URL of a RunPod serverless endpoint, from its id."""
    endpoint_id = endpoint_id.strip()
    if not _ENDPOINT_ID.fullmatch(endpoint_id):
        raise ConfigError(
            f"'{endpoint_id[:60]}' is not a RunPod endpoint id: it is the short code shown on "
            "the endpoint's page (letters, digits, '-' and '_'), e.g. abc123xyz"
        )
    return f"{RUNPOD_BASE_URL}/{endpoint_id}"


def build_worker_input(
    image_b64: str, wav_b64: str, *, prompt: str, width: int, height: int
) -> dict[str, Any]:
    """The InfiniteTalk worker's ``input`` object (CONTRACT.md): raw base64, no ``data:`` prefix."""
    try:
        check_size(width, height)
    except ValueError as error:
        raise InputError(str(error)) from None
    image = _strip_data_prefix(image_b64)
    audio = _strip_data_prefix(wav_b64)
    if not image:
        raise InputError("the portrait is empty: nothing to send")
    if not audio:
        raise InputError("the audio chunk is empty: nothing to send")
    return {
        "input_type": "image",
        "person_count": "single",
        "image_base64": image,
        "wav_base64": audio,
        "prompt": prompt.strip() or DEFAULT_PROMPT,
        "width": width,
        "height": height,
        "force_offload": False,
        "network_volume": False,
    }


# Strings at least this long that hold only base64 characters are copied into a JSON body as
# they are: base64 needs no escaping, and json.dumps would scan megabytes in one call that
# holds the GIL (about 10 ms for a 45 s chunk's audio), stalling the desktop app's window.
SPLICE_MIN_CHARS = 64 * 1024
_B64_CHARS = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="


def encode_json_body(body: Mapping[str, Any]) -> bytes:
    """``json.dumps(body)`` as ASCII bytes; long base64 strings are spliced in unscanned."""
    spliced: dict[str, bytes] = {}

    def set_aside(value: Any) -> Any:
        if isinstance(value, Mapping):
            return {key: set_aside(item) for key, item in value.items()}
        if isinstance(value, str) and len(value) >= SPLICE_MIN_CHARS and value.isascii():
            raw = value.encode("ascii")
            if not raw.translate(None, _B64_CHARS):  # nothing but base64 characters
                marker = f"splice-{uuid.uuid4().hex}"
                spliced[marker] = raw
                return marker
        return value

    text = json.dumps(set_aside(body), separators=(",", ":")).encode("ascii")
    parts: list[bytes] = []
    for marker, raw in spliced.items():  # in the order json.dumps wrote them
        before, text = text.split(f'"{marker}"'.encode("ascii"), 1)
        parts += (before, b'"', raw, b'"')
    parts.append(text)
    return b"".join(parts)


def _strip_data_prefix(text: str) -> str:
    # The worker decodes the text as is: a "data:...;base64," prefix would corrupt the file.
    if text.startswith("data:"):
        comma = text.find(",", 0, 256)
        if comma >= 0:
            return text[comma + 1 :]
    return text


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """Parse a ``Retry-After`` header: delay seconds or an HTTP date. None if absent or bad."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # HTTP dates are GMT
        when = when.replace(tzinfo=UTC)
    now = now or datetime.now(UTC)
    return max(0.0, (when - now).total_seconds())


def parse_error(value: Any) -> str | None:
    """The worker's error as a user reads it: JSON's ``error_message`` first, else the text."""
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        if text.startswith("{"):
            try:
                decoded = json.loads(text)
            except ValueError:
                decoded = None
            if isinstance(decoded, dict):
                return parse_error(decoded)
        return _shorten(text)
    if isinstance(value, Mapping):
        for key in ("error_message", "message", "error", "detail", "error_type"):
            inner = value.get(key)
            if isinstance(inner, str) and inner.strip():
                return parse_error(inner)
            if isinstance(inner, Mapping):
                return parse_error(inner)
        return _shorten(json.dumps(value, default=str)) if value else None
    return _shorten(str(value))


def _shorten(text: str, limit: int = _MESSAGE_LIMIT) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _safe_url(url: str) -> str:
    """A URL fit for a log or a message: no query string (signed URLs carry tokens there)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    default = {"http": 80, "https": 443}.get(parts.scheme.lower())
    return (parts.scheme.lower(), (parts.hostname or "").lower(), parts.port or default)


# --------------------------------------------------------------------------------------------
# What the endpoint tells us


@dataclass(frozen=True, repr=False)
class RemoteStatus:
    """One ``/status`` answer. ``output`` may hold megabytes of base64: it never enters a repr."""

    id: str
    state: JobState
    output: Any = None
    error_message: str | None = None
    delay_ms: int | None = None
    execution_ms: int | None = None
    worker_id: str | None = None

    def __repr__(self) -> str:
        return (
            f"RemoteStatus(id={self.id!r}, state={self.state.value}, "
            f"output={describe_output(self.output)}, error_message={self.error_message!r}, "
            f"delay_ms={self.delay_ms}, execution_ms={self.execution_ms}, "
            f"worker_id={self.worker_id!r})"
        )

    __str__ = __repr__

    @property
    def failure_message(self) -> str | None:
        """Why this job did not succeed, in plain words; None unless FAILED/TIMED_OUT/CANCELLED."""
        if self.state is JobState.FAILED:
            return self.error_message or "the worker failed without giving a reason"
        if self.state is JobState.TIMED_OUT:
            return self.error_message or "the worker ran past its execution timeout"
        if self.state is JobState.CANCELLED:
            return self.error_message or "the job was cancelled on the endpoint"
        return None

    def cost_usd(self, price_per_second: float) -> float:
        """Estimated GPU cost of this job: execution seconds times the price per second."""
        return (self.execution_ms or 0) / 1000 * price_per_second


def describe_output(output: Any) -> str:
    """A short description of a worker output for logs: its keys and size, never its content."""
    if output is None:
        return "None"
    if isinstance(output, str):
        return f"<str {len(output)} chars>"
    if isinstance(output, Mapping):
        parts = []
        for key, value in list(output.items())[:8]:
            size = f"{len(value)} chars" if isinstance(value, str) else type(value).__name__
            parts.append(f"{str(key)[:40]}: {size}")
        return "{" + ", ".join(parts) + "}"
    return f"<{type(output).__name__}>"


@dataclass(frozen=True)
class Health:
    """``GET /health``: job counts and worker counts as RunPod reports them."""

    jobs: dict[str, int] = field(default_factory=dict)
    workers: dict[str, int] = field(default_factory=dict)

    @property
    def warm_workers(self) -> int:
        """Workers that can take a job without a cold start (idle + running)."""
        return self.workers.get("idle", 0) + self.workers.get("running", 0)

    @property
    def jobs_waiting(self) -> int:
        return self.jobs.get("inQueue", 0)

    @property
    def jobs_running(self) -> int:
        return self.jobs.get("inProgress", 0)

    def summary(self) -> str:
        idle, running = self.workers.get("idle", 0), self.workers.get("running", 0)
        if self.warm_workers:
            text = f"{_plural(self.warm_workers, 'worker')} warm ({idle} idle, {running} running)"
        else:
            text = "no worker is running: the first chunk may wait for a cold start"
        extras = [
            f"{count} {label}"
            for key, label in (
                ("initializing", "starting"),
                ("throttled", "throttled"),
                ("unhealthy", "unhealthy"),
            )
            if (count := self.workers.get(key, 0))
        ]
        if extras:
            text += f"; workers also {', '.join(extras)}"
        return f"{text}. Jobs: {self.jobs_waiting} waiting, {self.jobs_running} in progress."


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


@dataclass(frozen=True)
class CheckResult:
    """The answer to "Test connection" / ``infinitetalk-gui check``."""

    ok: bool
    message: str
    reachable: bool
    key_accepted: bool | None
    warm_workers: int = 0
    health: Health | None = None


# --------------------------------------------------------------------------------------------
# Polling cadence

POLL_MIN_S = 0.2
POLL_MAX_QUEUE_S = 2.5
POLL_MAX_RUN_S = 1.0


def next_poll_delay(state: JobState, elapsed_s: float, expected_exec_s: float | None) -> float:
    """Seconds to wait before the next ``/status`` of one job.

    ``elapsed_s`` is how long the job has been in ``state`` as we saw it (for IN_PROGRESS:
    since we first saw it running). ``expected_exec_s`` is the predicted execution time of this
    chunk (earlier chunks' ``executionTime`` scaled to this chunk's audio length), or None.
    Never below 0.2 s: 3 chunks make at most 150 calls per 10 s (RunPod allows 2000). Near the
    predicted end it stays at 0.2 s so a finished chunk is seen within ~0.25 s.
    """
    if state.terminal:
        return 0.0
    elapsed_s = max(0.0, elapsed_s)
    if state is JobState.IN_QUEUE:
        # A warm worker picks a job up at once; long waits are cold starts: back off.
        delay = POLL_MIN_S + 0.1 * max(0.0, elapsed_s - 2.0)
        ceiling = POLL_MAX_QUEUE_S
        if expected_exec_s is not None:
            # A short job may run and finish between two polls: don't sleep through it.
            ceiling = min(ceiling, max(POLL_MIN_S, expected_exec_s / 2))
        return min(delay, ceiling)
    if expected_exec_s is None:
        delay = POLL_MIN_S + 0.02 * max(0.0, elapsed_s - 3.0)
        return min(delay, POLL_MAX_RUN_S)
    remaining = expected_exec_s - elapsed_s
    if remaining > 0.8:
        # Far from the end: wake up a few times on the way, closer as the end approaches.
        return min(POLL_MAX_RUN_S, max(POLL_MIN_S, remaining / 4))
    overdue = -remaining - 0.25 * expected_exec_s - 1.0
    if overdue <= 0:
        return POLL_MIN_S  # around the predicted end: notice completion quickly
    # Well past the prediction: it was wrong; back off slowly.
    return min(POLL_MAX_RUN_S, POLL_MIN_S + 0.05 * overdue)


# --------------------------------------------------------------------------------------------
# The client


class _Retryable(Exception):
    """One try failed in a way worth trying again (transport trouble, not a refusal)."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


class RunPodClient:
    """A RunPod serverless endpoint: ``{endpoint_url}/run``, ``/status/{id}``, ``/cancel/{id}``,
    ``/health``. Shareable between threads (one Session per thread).

    ``cancel`` is the default token for every call's backoff waits (a call's own ``cancel=``
    wins); :meth:`cancel` ignores it. ``api_key`` may be None only for a keyless local
    endpoint (the demo): then no Authorization header is sent.
    """

    def __init__(
        self,
        endpoint_url: str,
        api_key: str | None,
        *,
        cancel: CancelToken | None = None,
        max_tries: int = 8,
        backoff_base_s: float = 1.0,
        backoff_max_s: float = 30.0,
        retry_budget_s: float = 300.0,
        connect_timeout_s: float = 10.0,
        read_timeout_s: float = 60.0,
    ) -> None:
        url = endpoint_url.strip().rstrip("/")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(
                f"'{endpoint_url[:200]}' is not an endpoint URL: it should look like "
                f"{RUNPOD_BASE_URL}/ENDPOINT_ID"
            )
        self._api_key = (api_key or "").strip()
        logs.register_secret(self._api_key)
        self._cancel = cancel
        self._url = url
        self._origin = _origin(url)
        if parts.scheme == "http" and parts.hostname not in ("127.0.0.1", "localhost", "::1"):
            log.warning("the endpoint %s is plain http: the API key travels unencrypted", url)
        self.max_tries = max(1, max_tries)
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self.retry_budget_s = retry_budget_s
        self.timeout = (connect_timeout_s, read_timeout_s)
        self._random = random.Random()
        self._local = threading.local()
        self._lock = threading.Lock()
        self._sessions: list[requests.Session] = []
        self._closed = False

    @property
    def endpoint_url(self) -> str:
        return self._url

    def __repr__(self) -> str:  # never the key
        return f"RunPodClient({self._url!r})"

    # -- lifecycle ----------------------------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            self._closed = True
            sessions, self._sessions = self._sessions, []
        for session in sessions:
            session.close()

    def __enter__(self) -> RunPodClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _session(self) -> requests.Session:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is not None:
            return session
        session = requests.Session()
        # No hidden retries below us: every retry happens in _with_retries, cancellable.
        adapter = HTTPAdapter(max_retries=0, pool_connections=2, pool_maxsize=4)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        session.headers["User-Agent"] = f"infinitetalk-gui/{__version__}"
        with self._lock:
            if self._closed:
                session.close()
                raise RemoteError("the RunPod client was already closed")
            self._sessions.append(session)
        self._local.session = session
        return session

    # -- the API ------------------------------------------------------------------------------

    def submit(
        self,
        worker_input: Mapping[str, Any],
        *,
        execution_timeout_ms: int = DEFAULT_EXECUTION_TIMEOUT_MS,
        cancel: CancelToken | None = None,
    ) -> str:
        """``POST /run``; returns the RunPod job id. Over 10 MB is refused before sending."""
        body = {"input": worker_input, "policy": {"executionTimeout": int(execution_timeout_ms)}}
        payload = encode_json_body(body)
        if len(payload) > MAX_RUN_BODY_BYTES:
            raise PayloadTooLarge(_too_large_message(len(payload), worker_input))
        # If the connection drops after the server read the body, the retry may create a second
        # remote job (RunPod has no idempotency key). Accepted: the lost one runs at most once
        # more and we never hear of it; failing the chunk instead would cost a whole attempt.
        data = self._api("POST", "/run", body=payload, cancel=cancel, on_404=self._no_endpoint)
        job_id = data.get("id") if isinstance(data, dict) else None
        if not isinstance(job_id, str) or not job_id:
            raise RemoteError(
                f"the endpoint at {self._url} accepted the job but returned no job id"
            )
        log.info("submitted RunPod job %s (%.2f MB)", job_id, len(payload) / _MIB)
        return job_id

    def status(self, job_id: str, *, cancel: CancelToken | None = None) -> RemoteStatus:
        """``GET /status/{id}``. A 404 raises :class:`JobExpired` (resubmit the chunk)."""

        def expired() -> JobExpired:
            return JobExpired(
                f"RunPod no longer knows job {job_id} (results expire 30 minutes after they "
                "finish, or the job was lost): the chunk has to be submitted again"
            )

        data = self._api("GET", f"/status/{job_id}", cancel=cancel, on_404=expired)
        return _parse_status(job_id, data)

    def cancel(self, job_id: str) -> bool:
        """``POST /cancel/{id}``, best effort: True if the endpoint took it, errors only logged.

        Takes no cancel token: it usually runs *because* the user cancelled, and it must still
        reach the endpoint to stop the billing. Its retry budget is short for the same reason.
        """
        try:
            self._api(
                "POST",
                f"/cancel/{job_id}",
                cancel=CancelToken(),  # never set: the client's own token must not stop this
                on_404=_NotFound,
                max_tries=min(3, self.max_tries),
            )
        except _NotFound:
            log.info("cancel %s: the endpoint no longer knows this job", job_id)
            return False
        except (RemoteError, ConfigError, AuthError, PayloadTooLarge) as error:
            log.warning("could not cancel RunPod job %s: %s", job_id, error)
            return False
        log.info("cancelled RunPod job %s", job_id)
        return True

    def health(self, *, cancel: CancelToken | None = None, max_tries: int | None = None) -> Health:
        """``GET /health``: job and worker counts."""
        data = self._api(
            "GET", "/health", cancel=cancel, on_404=self._no_endpoint, max_tries=max_tries
        )
        if not isinstance(data, dict):
            raise RemoteError(f"the endpoint at {self._url} gave an unreadable /health answer")
        return Health(jobs=_counts(data.get("jobs")), workers=_counts(data.get("workers")))

    def save_video(self, output: Any, dest: Path, *, cancel: CancelToken | None = None) -> Path:
        """Write the worker's video to ``dest`` atomically; return ``dest``.

        Accepts ``{"video": b64}``, ``{"video_base64": b64}`` (with or without a ``data:``
        prefix), ``{"video_url": url}`` or a bare base64 string / URL. Base64 is decoded block
        by block, so no second full copy is held. Raises :class:`ChunkFailed` (retryable) when
        there is no video or it is not an MP4.
        """
        kind, value = _video_source(output)
        dest = Path(dest)
        cancel = cancel if cancel is not None else self._cancel
        if kind == "url":
            self._download(value, dest, cancel)
        else:
            with _atomic_file(dest) as out:
                size = _decode_base64_to(value, out, cancel)
            log.info("saved chunk video %s (%.2f MB from base64)", dest.name, size / _MIB)
        return dest

    # -- internals ----------------------------------------------------------------------------

    def _no_endpoint(self) -> ConfigError:
        return ConfigError(
            f"there is no RunPod endpoint at {self._url} (HTTP 404): check the endpoint id or URL"
        )

    def _auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}

    def _api(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        cancel: CancelToken | None = None,
        on_404: Callable[[], Exception],
        max_tries: int | None = None,
    ) -> Any:
        """One endpoint call with transport retries; returns the decoded JSON answer."""
        what = f"{method} {path}"
        url = self._url + path
        headers = self._auth_headers()
        if body is not None:
            headers["Content-Type"] = "application/json"

        def once() -> Any:
            response = self._send(method, url, headers=headers, data=body)
            with response:
                code = response.status_code
                if 200 <= code < 300:
                    try:
                        return response.json()
                    except ValueError:
                        # A cut or garbled answer (a proxy's page, a truncated body): try again.
                        raise _Retryable(f"an unreadable answer (HTTP {code})") from None
                if code == 404:
                    raise on_404()
                raise self._refusal(what, response)

        return self._with_retries(what, once, cancel, max_tries)

    def _send(
        self,
        method: str,
        url: str,
        *,
        headers: dict[str, str],
        data: bytes | None = None,
        stream: bool = False,
    ) -> requests.Response:
        """One HTTP request; transport trouble and retryable statuses become ``_Retryable``."""
        try:
            response = self._session().request(
                method, url, headers=headers, data=data, timeout=self.timeout, stream=stream
            )
        except requests.exceptions.SSLError:
            raise RemoteError(
                f"the secure connection to {_safe_url(url)} failed (TLS certificate problem)"
            ) from None
        except (
            requests.exceptions.ConnectionError,
            requests.exceptions.Timeout,
            requests.exceptions.ChunkedEncodingError,
            requests.exceptions.ContentDecodingError,
        ) as error:
            raise _Retryable(_describe_transport_error(error)) from None
        code = response.status_code
        if code in _RETRYABLE_HTTP or code >= 500:
            retry_after = retry_after_seconds(response.headers.get("Retry-After"))
            reason = f"HTTP {code}" + (f" {response.reason}" if response.reason else "")
            if code == 429:
                reason = "rate limited (HTTP 429)"
            response.close()
            raise _Retryable(reason, retry_after)
        return response

    def _refusal(self, what: str, response: requests.Response) -> Exception:
        """The error for a non-retryable, non-404 HTTP status."""
        code = response.status_code
        if code in (401, 403) and not self._api_key:
            return AuthError(
                f"the endpoint requires an API key (HTTP {code}) and none was given. "
                + HOW_TO_PROVIDE
            )
        if code in (401, 403):
            return AuthError(
                f"the API key was rejected by the endpoint (HTTP {code}). Check the key "
                f"('infinitetalk-gui key set' or {ENV_VAR}) and that it may use this endpoint."
            )
        detail = _server_message(response)
        if code == 413:
            return PayloadTooLarge(
                f"the endpoint refused the request as too large (HTTP 413){detail}. Use a "
                "shorter chunk length or a smaller portrait image."
            )
        if code == 400:
            return RemoteError(f"the endpoint refused the request as invalid (HTTP 400){detail}")
        return RemoteError(f"the endpoint answered {what} with HTTP {code}{detail}")

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        # Exponential backoff with "equal jitter": half fixed, half random, so clients spread.
        ceiling = min(self.backoff_max_s, self.backoff_base_s * 2.0 ** (attempt - 1))
        delay = ceiling / 2 + self._random.uniform(0, ceiling / 2)
        if retry_after is not None:
            delay = max(delay, retry_after)
        return delay

    def _with_retries(
        self,
        what: str,
        once: Callable[[], T],
        cancel: CancelToken | None,
        max_tries: int | None = None,
    ) -> T:
        tries = max(1, max_tries or self.max_tries)
        cancel = cancel if cancel is not None else self._cancel
        started = time.monotonic()
        attempt = 0
        while True:
            if cancel is not None:
                cancel.raise_if_cancelled()
            attempt += 1
            try:
                return once()
            except _Retryable as trouble:
                delay = self._backoff(attempt, trouble.retry_after)
                elapsed = time.monotonic() - started
                if attempt >= tries or elapsed + delay > self.retry_budget_s:
                    asked = ""
                    if trouble.retry_after is not None and trouble.retry_after > delay / 2:
                        asked = f" (it asked to wait {trouble.retry_after:.0f} s)"
                    raise EndpointUnreachable(
                        f"the RunPod endpoint at {self._url} did not answer {what}: "
                        f"{trouble.reason}{asked}; gave up after {attempt} "
                        f"{'try' if attempt == 1 else 'tries'} in {elapsed:.1f} s. Check the "
                        "internet connection, or try again later."
                    ) from None
                log.warning(
                    "%s: %s; retry %d of %d in %.2f s",
                    what,
                    trouble.reason,
                    attempt,
                    tries - 1,
                    delay,
                )
                if cancel is None:
                    time.sleep(delay)
                elif cancel.wait(delay):
                    raise Cancelled("Cancelled.") from None

    def _download(self, url: str, dest: Path, cancel: CancelToken | None) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ChunkFailed(f"the worker returned a video URL that is not http(s): {url[:80]}")
        # The key is for the endpoint only: a storage bucket on another host never sees it.
        # (requests also drops it on a redirect to another host.)
        headers = self._auth_headers() if _origin(url) == self._origin else {}
        shown = _safe_url(url)
        what = f"GET {shown}"

        with _atomic_file(dest) as out:

            def once() -> int:
                out.seek(0)
                out.truncate()
                response = self._send("GET", url, headers=headers, stream=True)
                with response:
                    code = response.status_code
                    if code != 200:
                        raise ChunkFailed(
                            f"the worker's video could not be downloaded from {shown} "
                            f"(HTTP {code}){_server_message(response)}"
                        )
                    checker = _Mp4Check()
                    size = 0
                    try:
                        for block in response.iter_content(_DOWNLOAD_BLOCK_BYTES):
                            if cancel is not None:
                                cancel.raise_if_cancelled()
                            checker.feed(block)
                            out.write(block)
                            size += len(block)
                    except (
                        requests.exceptions.ConnectionError,
                        requests.exceptions.Timeout,
                        requests.exceptions.ChunkedEncodingError,
                    ) as error:
                        raise _Retryable(_describe_transport_error(error)) from None
                    checker.finish()
                    return size

            size = self._with_retries(what, once, cancel)
        log.info("saved chunk video %s (%.2f MB from %s)", dest.name, size / _MIB, shown)


class _NotFound(Exception):
    """Internal: a 404 the caller handles quietly."""


def _counts(value: Any) -> dict[str, int]:
    if not isinstance(value, Mapping):
        return {}
    counts: dict[str, int] = {}
    for key, number in value.items():
        if isinstance(number, bool):
            continue
        if isinstance(number, int | float) and math.isfinite(number):
            counts[str(key)] = int(number)
    return counts


def _optional_int(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return int(value)


def _parse_status(job_id: str, data: Any) -> RemoteStatus:
    if not isinstance(data, dict):
        raise RemoteError(f"the endpoint gave an unreadable status for job {job_id}")
    raw = data.get("status")
    try:
        state = JobState.from_remote(raw if isinstance(raw, str) else "")
    except ValueError:
        raise RemoteError(
            f"the endpoint reported an unknown status {str(raw)[:40]!r} for job {job_id}"
        ) from None
    worker = data.get("workerId")
    return RemoteStatus(
        id=str(data.get("id") or job_id),
        state=state,
        output=data.get("output"),
        error_message=parse_error(data.get("error")),
        delay_ms=_optional_int(data.get("delayTime")),
        execution_ms=_optional_int(data.get("executionTime")),
        worker_id=str(worker)[:100] if worker else None,
    )


def _server_message(response: requests.Response) -> str:
    """': <what the server said>', shortened; empty when it said nothing useful."""
    try:
        text = response.text
    except (requests.exceptions.RequestException, UnicodeDecodeError):
        return ""
    message = parse_error(text[: _MESSAGE_LIMIT * 8])
    return f": {message}" if message else ""


def _describe_transport_error(error: requests.exceptions.RequestException) -> str:
    if isinstance(error, requests.exceptions.ConnectTimeout):
        return "the connection timed out"
    if isinstance(error, requests.exceptions.ReadTimeout | requests.exceptions.Timeout):
        return "no answer in time (read timeout)"
    text = str(error)
    if "refused" in text.lower():
        return "connection refused"
    if isinstance(error, requests.exceptions.ChunkedEncodingError):
        return "the answer was cut off"
    if "Name or service not known" in text or "getaddrinfo" in text or "resolve" in text:
        return "the host name could not be resolved"
    if "Remote end closed" in text or "reset" in text.lower() or "aborted" in text.lower():
        return "the connection was dropped"
    return "a network error"


def _too_large_message(size: int, worker_input: Mapping[str, Any]) -> str:
    def mib(key: str) -> str:
        value = worker_input.get(key)
        return f"{len(value) / _MIB:.1f} MB" if isinstance(value, str) else "?"

    return (
        f"this chunk's request is {size / _MIB:.1f} MB, over RunPod's "
        f"{MAX_RUN_BODY_BYTES // _MIB} MB limit for /run (audio {mib('wav_base64')}, "
        f"portrait {mib('image_base64')} as base64); nothing was sent. Use a shorter chunk "
        "length (--chunk-seconds) or a smaller portrait image."
    )


# --------------------------------------------------------------------------------------------
# Saving the video


def _video_source(output: Any) -> tuple[str, str]:
    """("b64", text) or ("url", url) from any of the output shapes workers use."""
    if isinstance(output, str):
        if output.startswith(("http://", "https://")):
            return "url", output.strip()
        if output.strip():
            return "b64", output
    elif isinstance(output, Mapping):
        for key in ("video", "video_base64"):
            value = output.get(key)
            if isinstance(value, str) and value.strip():
                if value.startswith(("http://", "https://")):
                    return "url", value.strip()
                return "b64", value
        url = output.get("video_url")
        if isinstance(url, str) and url.strip():
            return "url", url.strip()
        if output:
            keys = ", ".join(str(key)[:30] for key in list(output)[:6])
            raise ChunkFailed(f"{NO_VIDEO} (its output had only: {keys})")
    raise ChunkFailed(NO_VIDEO)


class _Mp4Check:
    """Checks the first bytes of a stream for an MP4 ``ftyp`` box."""

    _NEED = 12

    def __init__(self) -> None:
        self._head = b""
        self.ok = False

    def feed(self, data: bytes) -> None:
        if self.ok:
            return
        self._head += data[: self._NEED - len(self._head)]
        if len(self._head) >= self._NEED:
            if self._head[4:8] != b"ftyp":
                raise ChunkFailed(
                    "the worker returned data that is not an MP4 video (no 'ftyp' header)"
                )
            self.ok = True

    def finish(self) -> None:
        if not self.ok:
            raise ChunkFailed("the worker returned an empty or truncated video")


def _decode_base64_to(text: str, out: IO[bytes], cancel: CancelToken | None) -> int:
    """Decode ``text`` (optionally ``data:...;base64,``-prefixed) into ``out`` block by block."""
    start = 0
    if text.startswith("data:"):
        comma = text.find(",", 0, 256)
        if comma < 0 or ";base64" not in text[:comma]:
            raise ChunkFailed("the worker returned a data: URL that is not base64")
        start = comma + 1
    checker = _Mp4Check()
    carry = ""
    size = 0
    for position in range(start, len(text), _B64_BLOCK_CHARS):
        if cancel is not None:
            cancel.raise_if_cancelled()
        piece = carry + text[position : position + _B64_BLOCK_CHARS].translate(_B64_CLEAN)
        usable = len(piece) - len(piece) % 4
        carry = piece[usable:]
        if usable:
            size += _write_decoded(piece[:usable], out, checker)
    if carry:
        if len(carry) % 4 == 1:
            raise ChunkFailed("the worker's video is not valid base64 (it is cut short)")
        size += _write_decoded(carry + "=" * (-len(carry) % 4), out, checker)
    checker.finish()
    return size


def _write_decoded(chunk: str, out: IO[bytes], checker: _Mp4Check) -> int:
    try:
        data = base64.b64decode(chunk, validate=True)
    except (binascii.Error, ValueError):
        raise ChunkFailed("the worker's video is not valid base64") from None
    checker.feed(data)
    out.write(data)
    return len(data)


@contextmanager
def _atomic_file(dest: Path) -> Iterator[IO[bytes]]:
    """A temporary file beside ``dest``, renamed over it only if the block succeeds."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed and renamed below
        dir=dest.parent, prefix=f".{dest.name}.", suffix=".part", delete=False
    )
    temp = Path(handle.name)
    try:
        with handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, dest)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


# --------------------------------------------------------------------------------------------
# "Test connection" / `check`


def check_endpoint(client: RunPodClient, *, cancel: CancelToken | None = None) -> CheckResult:
    """Is the endpoint reachable, the key accepted, any worker warm? Never raises (but Cancelled).

    Uses a short retry budget: a person is waiting for the answer.
    """
    where = client.endpoint_url
    try:
        health = client.health(cancel=cancel, max_tries=3)
    except AuthError as error:
        return CheckResult(False, f"The endpoint at {where} answered, but {error}", True, False)
    except ConfigError as error:
        return CheckResult(False, _capital(str(error)), False, None)
    except EndpointUnreachable as error:
        return CheckResult(False, _capital(str(error)), False, None)
    except RemoteError as error:
        return CheckResult(False, f"The endpoint at {where} answered, but {error}", True, None)
    return CheckResult(
        True,
        f"Endpoint {where} is reachable and accepted the API key. {_capital(health.summary())}",
        True,
        True,
        health.warm_workers,
        health,
    )


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]
