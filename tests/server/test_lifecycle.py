"""Start, stop and start again: parked jobs resume; SIGTERM; clean-up; refusing to start."""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from infinitetalk_gui import cli
from infinitetalk_gui.core import paths
from infinitetalk_gui.core.errors import ConfigError
from infinitetalk_gui.core.models import JobState
from infinitetalk_gui.core.store import JobStore
from infinitetalk_gui.server import jobs as jobs_module
from infinitetalk_gui.server import serve
from tests.server.conftest import Media, RunningServer, server_config

ROOT = Path(__file__).resolve().parents[2]


def long_job(server: RunningServer, media_dir: Path) -> str:
    media = Media(media_dir / "face.png", media_dir / "long.wav")
    answer = server.client.post("/jobs", json=media.json_body())
    assert answer.status_code == 202, answer.text
    return str(answer.json()["id"])


def test_stop_mid_job_then_resume_on_next_start(
    make_server: Callable[..., RunningServer], media_dir: Path
) -> None:
    # One chunk at a time, so the stop finds one chunk finished and one rendering.
    config = server_config(demo_latency_s=0.8)
    config = config.with_changes(render=config.render.__class__(
        **{**config.render.to_dict(), "concurrency": 1, "chunk_seconds": 10}))  # fmt: skip
    first = make_server(config)
    job_id = long_job(first, media_dir)
    first.wait(job_id, until=lambda d: d["chunks_done"] >= 1)
    took = first.stop()
    assert took < 10

    with JobStore() as store:
        parked = store.get(job_id)
    assert parked.state is JobState.IN_QUEUE and parked.error is None
    done_before = parked.chunks_done
    assert 1 <= done_before < parked.chunks_total

    second = make_server(config)
    final = second.wait(job_id)
    assert final["status"] == "COMPLETED" and final["chunks_done"] == final["chunks_total"]
    assert second.service.demo is not None
    # Finished chunks were kept: only the missing ones were rendered again.
    assert second.service.demo.run_calls == parked.chunks_total - done_before
    video = second.client.get(f"/jobs/{job_id}/video")
    assert video.status_code == 200 and video.content[4:8] == b"ftyp"


def test_sigterm_parks_the_job_and_the_next_start_finishes_it(
    make_server: Callable[..., RunningServer], media_dir: Path
) -> None:
    env = {
        **os.environ,
        "DEMO_LATENCY_SEC": "1.5",
        "CHUNK_TARGET_SEC": "10",
        "LOG_FORMAT": "json",
        "PYTHONPATH": str(ROOT),
    }
    started = time.monotonic()
    lines: queue.Queue[str] = queue.Queue()
    with subprocess.Popen(
        [sys.executable, "-m", "infinitetalk_gui.cli", "serve", "--demo", "--port", "0"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    ) as process:
        stderr = process.stderr
        assert stderr is not None

        def read_log() -> None:
            for line in stderr:
                lines.put(line)

        reader = threading.Thread(target=read_log, daemon=True)
        reader.start()
        try:
            url = None
            while url is None:
                line = lines.get(timeout=20)
                match = re.search(r"REST service on (http://\S+) against the built-in demo", line)
                url = match.group(1) if match else None
            with httpx.Client(base_url=url, timeout=10) as client:
                assert client.get("/health").json()["status"] == "ok"
                # Mostly Python imports (about 2 s here); generous for a loaded CI machine.
                ready_s = time.monotonic() - started
                assert ready_s < 30, f"/health answered {ready_s:.1f} s after start"
                job_id = long_job_via(client, media_dir)
                deadline = time.monotonic() + 20
                while client.get(f"/jobs/{job_id}").json()["status"] != "IN_PROGRESS":
                    assert time.monotonic() < deadline
                    time.sleep(0.05)
            stop_started = time.monotonic()
            process.send_signal(signal.SIGTERM)
            code = process.wait(timeout=10)
            stop_s = time.monotonic() - stop_started
        finally:
            if process.poll() is None:
                process.kill()
        reader.join(5)
    assert code == 0 and stop_s < 10, (code, stop_s)
    logged = []
    while not lines.empty():
        logged.append(lines.get())
    records = [json.loads(line) for line in logged if line.startswith("{")]
    assert any(r.get("msg", "").endswith("it resumes on the next start") for r in records), logged
    requests = [r for r in records if r.get("logger") == "infinitetalk_gui.server.access"]
    assert {"method", "path", "status", "duration_ms"} <= set(requests[0])
    print(f"ready in {ready_s:.2f} s, stopped in {stop_s:.2f} s")

    with JobStore() as store:
        assert store.get(job_id).state is JobState.IN_QUEUE
    second = make_server(server_config(demo_latency_s=0.05))
    assert second.wait(job_id)["status"] == "COMPLETED"


def test_a_job_held_elsewhere_is_resumed_when_released(
    make_server: Callable[..., RunningServer], media: Media, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(jobs_module, "LOCKED_RETRY_S", 0.2)
    first = make_server(demo_latency_s=30.0)
    job_id = first.client.post("/jobs", json=media.json_body()).json()["id"]
    first.wait(job_id, until=lambda d: d["status"] == "IN_PROGRESS")
    first.stop()
    # Another process (here: this test) drives the job when the service starts again.
    with JobStore() as store:
        lease = store.lease(job_id)
        second = make_server()
        time.sleep(1.0)
        assert second.client.get(f"/jobs/{job_id}").json()["status"] == "IN_QUEUE"
        lease.release()
        assert second.wait(job_id, timeout=20)["status"] == "COMPLETED"


def long_job_via(client: httpx.Client, media_dir: Path) -> str:
    media = Media(media_dir / "face.png", media_dir / "long.wav")
    return str(client.post("/jobs", json=media.json_body()).json()["id"])


def test_start_up_removes_jobs_long_gone(
    make_server: Callable[..., RunningServer], media: Media
) -> None:
    first = make_server(result_ttl_s=0.5)
    job_id = first.client.post("/jobs", json=media.json_body()).json()["id"]
    assert first.wait(job_id)["status"] == "COMPLETED"
    first.stop()
    jobs_dir = paths.cache_dir() / "server" / "jobs"
    orphan = jobs_dir / "deadbeef"  # an upload whose process died before the job was stored
    orphan.mkdir()
    (orphan / "image").write_bytes(b"x")
    os.utime(orphan, (time.time() - 7200, time.time() - 7200))
    fresh = jobs_dir / "cafe"  # one being uploaded right now
    fresh.mkdir()
    time.sleep(0.6)

    second = make_server(result_ttl_s=0.5)
    assert sorted(p.name for p in jobs_dir.iterdir()) == ["cafe"]
    assert second.client.get(f"/jobs/{job_id}").status_code == 404
    with JobStore() as store:  # the desktop history keeps it
        assert store.get(job_id).state is JobState.COMPLETED


def test_refuses_to_start_open_to_the_network_without_a_token(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(ConfigError, match="API_TOKEN"):
        serve(host="0.0.0.0", port=0, demo=True)
    assert cli.main(["serve", "--host", "0.0.0.0", "--port", "0", "--demo"]) == cli.EXIT_USAGE
    assert "needs a token" in capsys.readouterr().err


def test_refuses_to_start_without_an_endpoint_or_key() -> None:
    with pytest.raises(ConfigError, match="No RunPod endpoint"):
        serve(port=0)
    with pytest.raises(ConfigError, match="API key"):
        server_config(demo=False, endpoint_url="http://127.0.0.1:9").check()
