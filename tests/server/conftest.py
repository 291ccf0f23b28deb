"""The REST service on loopback: a real uvicorn in a thread, the demo endpoint, short media."""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi", reason="the server extra is not installed")

import httpx
import uvicorn

from infinitetalk_gui.core.models import JobState, RenderSettings
from infinitetalk_gui.server import ServerConfig, create_app
from infinitetalk_gui.server.jobs import JobService
from tests import mediagen

TERMINAL = {str(s) for s in JobState if s.terminal}


@dataclass
class Media:
    portrait: Path
    voice: Path

    @property
    def image_b64(self) -> str:
        return base64.b64encode(self.portrait.read_bytes()).decode()

    @property
    def audio_b64(self) -> str:
        return base64.b64encode(self.voice.read_bytes()).decode()

    def json_body(self, **extra: Any) -> dict[str, Any]:
        return {"image_base64": self.image_b64, "audio_base64": self.audio_b64, **extra}


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("server-media")
    mediagen.portrait(folder / "face.png", 300, 420)
    mediagen.speechlike_wav(
        folder / "voice.wav", [("voice", 2.0), ("silence", 0.5), ("voice", 1.5)]
    )
    mediagen.speechlike_wav(folder / "long.wav", mediagen.alternating(22.0, 4.0, 0.6))
    return folder


@pytest.fixture
def media(media_dir: Path) -> Media:
    return Media(media_dir / "face.png", media_dir / "voice.wav")


def server_config(**changes: Any) -> ServerConfig:
    """Demo endpoint with 0.05 s latency, 256x256, no rate limit unless asked."""
    base = ServerConfig(
        demo=True,
        demo_latency_s=0.05,
        render=RenderSettings(endpoint_url="", width=256, height=256, chunk_seconds=10),
        rate_limit_per_s=0,
        webhook_backoff_s=0.05,
        shutdown_grace_s=5.0,
    )
    return base.with_changes(**changes)


@dataclass
class RunningServer:
    app: Any
    server: uvicorn.Server
    thread: threading.Thread
    url: str
    client: httpx.Client
    stopped: bool = field(default=False)

    @property
    def service(self) -> JobService:
        service: JobService = self.app.state.service
        return service

    def stop(self) -> float:
        """Stop like SIGTERM does; returns how long it took."""
        if self.stopped:
            return 0.0
        self.stopped = True
        started = time.monotonic()
        self.service.begin_shutdown()
        self.server.should_exit = True
        self.thread.join(20)
        self.client.close()
        assert not self.thread.is_alive(), "the server did not stop"
        return time.monotonic() - started

    def wait(
        self,
        job_id: str,
        *,
        until: Callable[[dict[str, Any]], bool] | None = None,
        timeout: float = 30.0,
    ) -> dict[str, Any]:
        """Poll GET /jobs/{id}?inline=0 until the job ends (or ``until`` holds)."""
        check = until or (lambda doc: doc["status"] in TERMINAL)
        deadline = time.monotonic() + timeout
        while True:
            doc: dict[str, Any] = self.client.get(f"/jobs/{job_id}", params={"inline": 0}).json()
            if check(doc):
                return doc
            if doc["status"] in TERMINAL:
                raise AssertionError(f"job {job_id} ended before getting there: {doc}")
            if time.monotonic() > deadline:
                raise AssertionError(f"job {job_id} did not get there in {timeout} s: {doc}")
            time.sleep(0.05)


def start_server(config: ServerConfig) -> RunningServer:
    app = create_app(config)
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=0,
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=2,
            lifespan="on",
        )
    )
    thread = threading.Thread(target=server.run, name="test-uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    client = httpx.Client(base_url=url, timeout=30)
    return RunningServer(app, server, thread, url, client)


@pytest.fixture
def make_server() -> Iterator[Callable[..., RunningServer]]:
    servers: list[RunningServer] = []

    def make(config: ServerConfig | None = None, **changes: Any) -> RunningServer:
        running = start_server(config or server_config(**changes))
        servers.append(running)
        return running

    yield make
    for running in servers:
        running.stop()


@pytest.fixture
def server(make_server: Callable[..., RunningServer]) -> RunningServer:
    return make_server()
