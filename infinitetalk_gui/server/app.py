"""The app factory and ``infinitetalk-gui serve``: FastAPI on uvicorn."""

from __future__ import annotations

import logging
import socket
import sys
from collections.abc import AsyncIterator, Generator
from contextlib import asynccontextmanager, contextmanager
from types import FrameType
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware

from infinitetalk_gui import __version__
from infinitetalk_gui.server.config import ServerConfig, load_config
from infinitetalk_gui.server.errors import DEFAULT_CODES, ApiError
from infinitetalk_gui.server.errors import error_response as _err
from infinitetalk_gui.server.jobs import JobService
from infinitetalk_gui.server.logsetup import configure_logging
from infinitetalk_gui.server.metrics import Metrics
from infinitetalk_gui.server.middleware import (
    BodyLimitMiddleware,
    RateLimitMiddleware,
    RequestLogMiddleware,
    TokenMiddleware,
    too_large_message,
)
from infinitetalk_gui.server.routes import router
from infinitetalk_gui.server.schemas import ErrorOut, JobRequest

log = logging.getLogger(__name__)

GRACEFUL_HTTP_S = 2.0  # open requests get this long after SIGTERM; jobs get shutdown_grace_s

DESCRIPTION = """\
Lip-synced talking-head video from a portrait and a voice, rendered on a RunPod serverless
endpoint running InfiniteTalk. Jobs share the desktop app's job store: a job started here
shows in its history. Errors are always `{"error": "...", "code": "..."}`.
"""

MULTIPART_SCHEMA: dict[str, Any] = {
    "title": "MultipartJobRequest",
    "type": "object",
    "required": ["image", "audio"],
    "properties": {
        "image": {"type": "string", "format": "binary", "description": "The portrait file"},
        "audio": {"type": "string", "format": "binary", "description": "The voice file"},
        "width": {"type": "integer", "description": "A multiple of 16 between 256 and 1280"},
        "height": {"type": "integer", "description": "A multiple of 16 between 256 and 1280"},
        "prompt": {"type": "string", "maxLength": 2000},
        "push_to_s3": {"type": "boolean", "default": False},
        "webhook_url": {"type": "string", "maxLength": 2000},
    },
    "additionalProperties": False,
}


COMMON_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: _err("Invalid input (schema, base64, media, size)"),
    401: _err("A token is required or it is wrong"),
    429: _err("Too many requests from this client (RATE_LIMIT_PER_SEC)"),
    500: _err("Unexpected error"),
}


def create_app(config: ServerConfig) -> FastAPI:
    """The app; its job service starts and stops with the ASGI lifespan."""
    config.check()
    metrics = Metrics()
    service = JobService(config, metrics)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await run_in_threadpool(service.start)
        try:
            yield
        finally:
            await run_in_threadpool(service.stop)

    middleware = [Middleware(RequestLogMiddleware, metrics=metrics)]
    if config.cors_origins:
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=list(config.cors_origins),
                allow_methods=["GET", "POST", "DELETE"],
                allow_headers=["Authorization", "Content-Type", "Range"],
                expose_headers=["Location", "Retry-After", "Content-Range"],
            )
        )
    middleware += [
        Middleware(RateLimitMiddleware, per_second=config.rate_limit_per_s),
        Middleware(TokenMiddleware, token=config.api_token),
        Middleware(BodyLimitMiddleware, max_bytes=config.max_body_bytes),
    ]
    app = FastAPI(
        title="InfiniteTalk REST API",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        middleware=middleware,
        responses=COMMON_RESPONSES,
    )
    app.state.config = config
    app.state.service = service
    app.state.metrics = metrics
    _add_error_handlers(app, config)
    app.include_router(router)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def _add_error_handlers(app: FastAPI, config: ServerConfig) -> None:
    async def api_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiError)
        return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        code = DEFAULT_CODES.get(exc.status_code, "error")
        message = str(exc.detail)
        if exc.status_code == 413:
            message = too_large_message(config.max_body_bytes)
        elif exc.status_code == 404:
            message = f"There is no {request.url.path} here: see /docs for the API."
        elif exc.status_code == 405:
            message = f"{request.method} is not allowed on {request.url.path}."
        return JSONResponse(
            {"error": message, "code": code},
            status_code=exc.status_code,
            headers=dict(exc.headers or {}),
        )

    async def validation_error(request: Request, exc: Exception) -> JSONResponse:
        # Schema errors are plain 400s here, not the framework's 422.
        assert isinstance(exc, RequestValidationError)
        parts = []
        for problem in list(exc.errors())[:5]:
            where = ".".join(str(p) for p in problem.get("loc", ())) or "request"
            parts.append(f"{where}: {problem.get('msg', 'invalid')}")
        message = "Invalid request: " + "; ".join(parts) + "."
        return JSONResponse({"error": message, "code": "invalid_request"}, status_code=400)

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)


def _openapi(app: FastAPI) -> dict[str, Any]:
    if app.openapi_schema:
        return app.openapi_schema
    schema = FastAPI.openapi(app)
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components["JobRequest"] = JobRequest.model_json_schema(
        ref_template="#/components/schemas/{model}"
    )
    components["MultipartJobRequest"] = MULTIPART_SCHEMA
    components["ErrorOut"] = ErrorOut.model_json_schema()
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            operation.get("responses", {}).pop("422", None)
    components.pop("HTTPValidationError", None)
    components.pop("ValidationError", None)
    app.openapi_schema = schema
    return schema


class _Server(uvicorn.Server):
    """uvicorn, told when a shutdown starts (so event streams end and POSTs get 503), that
    says where it listens, and that returns normally after a signal instead of re-raising it."""

    def __init__(self, config: uvicorn.Config, service: JobService, demo: bool) -> None:
        super().__init__(config)
        self.service = service
        self.demo = demo

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self.service.begin_shutdown()
        super().handle_exit(sig, frame)

    @contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        import signal
        import threading

        if threading.current_thread() is not threading.main_thread():
            yield
            return
        handled = (signal.SIGINT, signal.SIGTERM)
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in handled}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.should_exit or not self.servers:
            return
        host, port = self.servers[0].sockets[0].getsockname()[:2]
        shown = f"[{host}]" if ":" in str(host) else str(host)
        url = f"http://{shown}:{port}"
        mode = " against the built-in demo endpoint" if self.demo else ""
        print(
            f"InfiniteTalk REST service on {url}{mode} (API docs: {url}/docs). Ctrl-C stops it.",
            file=sys.stderr,
            flush=True,
        )


def serve(host: str | None = None, port: int | None = None, demo: bool = False) -> int:
    """Run the service until SIGTERM / Ctrl-C. Flags win over HOST / PORT and .env.

    Raises ConfigError (the CLI prints it, exit 2) when it must not start: no endpoint or key
    (without --demo), or a non-loopback address without API_TOKEN."""
    config = load_config(host=host, port=port, demo=demo)
    config.check()
    undo_logging = configure_logging(
        config.log_format,
        config.log_level,
        (config.api_key, config.api_token, config.webhook_secret),
    )
    try:
        app = create_app(config)
        server = _Server(
            uvicorn.Config(
                app,
                host=config.host,
                port=config.port,
                log_config=None,
                log_level=config.log_level,
                access_log=False,  # RequestLogMiddleware logs requests, without query strings
                timeout_graceful_shutdown=int(GRACEFUL_HTTP_S),
                server_header=False,
            ),
            app.state.service,
            demo,
        )
        try:
            server.run()
        except SystemExit:  # uvicorn could not start (port taken...): it logged why
            return 1
        return 0 if server.started else 1
    finally:
        undo_logging()
