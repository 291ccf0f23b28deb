"""ASGI middleware: request log + crash recovery, per-client rate limit, token, body limit.

Plain ASGI classes (not BaseHTTPMiddleware) so streamed answers (SSE, video) pass straight
through. Order, outermost first: request log, CORS, rate limit, token, body limit.
"""

from __future__ import annotations

import hmac
import logging
import math
import time
from typing import Any

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from infinitetalk_gui.server.errors import ApiError, error_body
from infinitetalk_gui.server.metrics import Metrics

log = logging.getLogger(__name__)
access_log = logging.getLogger("infinitetalk_gui.server.access")

# Open without a token and never rate limited: probes, scrapers and the API description.
PUBLIC_PATHS = frozenset({"/health", "/metrics", "/openapi.json", "/docs", "/redoc"})
UNLIMITED_PATHS = frozenset({"/health", "/metrics"})


async def send_error(
    send: Send, status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> None:
    body = error_body(message, code)
    raw = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


class RequestLogMiddleware:
    """One log line and metrics per request; any crash becomes a JSON 500 (never a traceback
    to the client). Logs method, path, status, duration, client and job id: never a header,
    a query string or a body, so neither the token nor media can reach the log."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        first_byte: float | None = None
        status = 500

        async def send_logged(message: Message) -> None:
            nonlocal status, first_byte
            if message["type"] == "http.response.start":
                status = int(message["status"])
                first_byte = time.perf_counter()
            await send(message)

        try:
            await self.app(scope, receive, send_logged)
        except Exception:
            log.exception("unexpected error on %s %s", scope["method"], scope["path"])
            status = 500
            if first_byte is None:
                first_byte = time.perf_counter()
                await send_error(
                    send,
                    500,
                    "internal_error",
                    "Unexpected error in the service; it is in the service's log.",
                )
        finally:
            self._record(scope, status, started, first_byte)

    def _record(self, scope: Scope, status: int, started: float, first_byte: float | None) -> None:
        now = time.perf_counter()
        route = getattr(scope.get("route"), "path", None) or "unmatched"
        method = scope["method"]
        self.metrics.http_requests.labels(method, route, str(status)).inc()
        self.metrics.http_seconds.labels(method, route).observe((first_byte or now) - started)
        state = scope.get("state") or {}
        job_id = state.get("job_id") or (scope.get("path_params") or {}).get("job_id")
        client = scope.get("client")
        fields: dict[str, Any] = {
            "method": method,
            "path": scope["path"],
            "status": status,
            "duration_ms": round((now - started) * 1000, 1),
            "client": client[0] if client else None,
        }
        if job_id:
            fields["job_id"] = job_id
        access_log.info(
            "%s %s %d %.1f ms", method, scope["path"], status, fields["duration_ms"],
            extra={"fields": fields},
        )  # fmt: skip


class RateLimiter:
    """A token bucket per client: ``rate`` requests a second, bursts up to ``burst``."""

    MAX_CLIENTS = 10_000

    def __init__(self, rate: float, burst: float | None = None) -> None:
        self.rate = rate
        self.burst = burst if burst is not None else max(1.0, rate)
        self._buckets: dict[str, tuple[float, float]] = {}  # client -> (tokens, at)

    def take(self, client: str, now: float) -> float | None:
        """None when allowed; else the seconds to wait. Runs on the event loop: no lock."""
        tokens, at = self._buckets.get(client, (self.burst, now))
        tokens = min(self.burst, tokens + (now - at) * self.rate)
        if tokens >= 1.0:
            self._buckets[client] = (tokens - 1.0, now)
            if len(self._buckets) > self.MAX_CLIENTS:
                self._forget_idle(now)
            return None
        self._buckets[client] = (tokens, now)
        return (1.0 - tokens) / self.rate

    def _forget_idle(self, now: float) -> None:
        refill_s = self.burst / self.rate
        for client, (_tokens, at) in list(self._buckets.items()):
            if now - at > refill_s:  # its bucket is full again: same as unknown
                del self._buckets[client]


class RateLimitMiddleware:
    def __init__(self, app: ASGIApp, per_second: float) -> None:
        self.app = app
        self.limiter = RateLimiter(per_second) if per_second > 0 else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.limiter is None or scope["type"] != "http" or scope["path"] in UNLIMITED_PATHS:
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        wait = self.limiter.take(client[0] if client else "?", time.monotonic())
        if wait is None:
            await self.app(scope, receive, send)
            return
        await send_error(
            send,
            429,
            "rate_limited",
            f"Too many requests: at most {self.limiter.rate:g} a second per client.",
            {"Retry-After": str(max(1, math.ceil(wait)))},
        )


class TokenMiddleware:
    """``Authorization: Bearer <token>`` on everything but the public paths."""

    def __init__(self, app: ASGIApp, token: str | None) -> None:
        self.app = app
        self.expected = f"Bearer {token}".encode() if token else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.expected is None or scope["type"] != "http" or scope["path"] in PUBLIC_PATHS:
            await self.app(scope, receive, send)
            return
        given = Headers(scope=scope).get("authorization", "").encode()
        if hmac.compare_digest(given, self.expected):
            await self.app(scope, receive, send)
            return
        message = "A token is required: send 'Authorization: Bearer <token>'."
        if given:
            message = "The token is wrong."
        await send_error(send, 401, "unauthorized", message, {"WWW-Authenticate": "Bearer"})


class BodyLimitMiddleware:
    """413 at once when Content-Length says too much; a body sent without a length is counted
    as it arrives and stopped at the limit. Both answers are the usual JSON error."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = Headers(scope=scope).get("content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            await send_error(send, 413, "body_too_large", too_large_message(self.max_bytes))
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    # Raised inside the route's read: the API error handler answers it.
                    raise ApiError(413, "body_too_large", too_large_message(self.max_bytes))
            return message

        await self.app(scope, counted, send)


def too_large_message(max_bytes: int) -> str:
    return (
        f"The request body is larger than this service's limit of {max_bytes / 1e6:g} MB "
        "(MAX_BODY_MB). Post large media as multipart/form-data files, or shorten them."
    )
