"""The whole API against the demo endpoint: happy paths, events, cancel, every error code."""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from infinitetalk_gui.core import media as core_media
from infinitetalk_gui.core import paths
from infinitetalk_gui.core.store import JobStore
from infinitetalk_gui.server.logsetup import JsonFormatter
from tests.server.conftest import Media, RunningServer

ERROR_KEYS = {"error", "code"}


def assert_error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = response.json()
    assert set(body) == ERROR_KEYS and body["code"] == code, body
    assert body["error"] and "Traceback" not in body["error"]
    return body


def sse_events(lines: Iterator[str]) -> Iterator[tuple[str, dict[str, Any]]]:
    event, data = "message", list[str]()
    for line in lines:
        if line == "":
            if data:
                yield event, json.loads("\n".join(data))
            event, data = "message", []
        elif line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].strip())


def job_folder(job_id: str) -> Path:
    for meta in (paths.cache_dir() / "server" / "jobs").glob("*/job.json"):
        if json.loads(meta.read_text())["job_id"] == job_id:
            return meta.parent
    raise AssertionError(f"no folder for job {job_id}")


# ----------------------------------------------------------------------------- happy paths


def test_json_happy_path(server: RunningServer, media: Media, tmp_path: Path) -> None:
    answer = server.client.post("/jobs", json=media.json_body(width=256, height=256))
    assert answer.status_code == 202, answer.text
    created = answer.json()
    assert set(created) == {"id", "status"} and created["status"] == "IN_QUEUE"
    assert answer.headers["location"] == f"/jobs/{created['id']}"

    done = server.wait(created["id"])
    assert done["status"] == "COMPLETED", done
    assert "video_base64" not in done  # ?inline=0
    doc = server.client.get(f"/jobs/{created['id']}").json()
    assert set(doc) == {
        "id", "status", "progress", "chunks_done", "chunks_total", "chunks",
        "video_url", "video_base64", "cost_estimate_usd",
    }  # fmt: skip
    assert doc["progress"] == 100
    assert doc["chunks_done"] == doc["chunks_total"] == len(doc["chunks"]) == 1
    chunk = doc["chunks"][0]
    assert set(chunk) == {"index", "start_s", "end_s", "status", "attempt", "queue_ms", "exec_ms"}
    assert chunk["status"] == "COMPLETED" and chunk["start_s"] == 0 and chunk["attempt"] == 1
    assert doc["video_url"] == f"/jobs/{created['id']}/video"
    video = base64.b64decode(doc["video_base64"])
    assert video[4:8] == b"ftyp"
    assert server.client.get(doc["video_url"]).content == video
    out = tmp_path / "v.mp4"
    out.write_bytes(video)
    video_s, audio_s = core_media.media_duration(out)
    assert video_s is not None and audio_s is not None
    assert abs(audio_s - 4.0) <= 0.05 and abs(video_s - 4.0) <= 0.05

    # The job is in the shared store: the desktop app and the CLI list it.
    with JobStore() as store:
        assert store.get(created["id"]).state == "COMPLETED"
    # Temporary files are gone; the output and job.json stay until RESULT_TTL_HOURS.
    folder = job_folder(created["id"])
    assert sorted(p.name for p in folder.iterdir()) == ["job.json", "output.mp4"]
    assert not (paths.cache_dir() / "jobs" / created["id"]).exists()


def test_multipart_happy_path_and_ranges(server: RunningServer, media: Media) -> None:
    with media.portrait.open("rb") as image, media.voice.open("rb") as voice:
        answer = server.client.post(
            "/jobs",
            files={
                "image": ("face.png", image, "image/png"),
                "audio": ("v.wav", voice, "audio/wav"),
            },
            data={
                "width": "256",
                "height": "256",
                "prompt": "A calm person",
                "push_to_s3": "false",
            },
        )
    assert answer.status_code == 202, answer.text
    job_id = answer.json()["id"]
    assert server.wait(job_id)["status"] == "COMPLETED"
    with JobStore() as store:
        job = store.get(job_id)
    assert job.settings.prompt == "A calm person" and (job.settings.width, job.settings.height) == (
        256,
        256,
    )

    full = server.client.get(f"/jobs/{job_id}/video")
    assert full.status_code == 200 and full.headers["content-type"] == "video/mp4"
    assert full.headers["accept-ranges"] == "bytes"
    part = server.client.get(f"/jobs/{job_id}/video", headers={"Range": "bytes=100-199"})
    assert part.status_code == 206
    assert part.headers["content-range"] == f"bytes 100-199/{len(full.content)}"
    assert part.content == full.content[100:200]


def test_events_stream(server: RunningServer, media: Media) -> None:
    assert server.service.demo is not None
    server.service.demo.latency_s = 0.6  # long enough to watch the chunk move
    job_id = server.client.post("/jobs", json=media.json_body()).json()["id"]
    with server.client.stream("GET", f"/jobs/{job_id}/events") as stream:
        assert stream.status_code == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        events = list(sse_events(stream.iter_lines()))
    kinds = [kind for kind, _ in events]
    assert kinds[0] == "status" and kinds[-1] == "end" and kinds.count("end") == 1
    chunk_states = [data["chunk"]["status"] for kind, data in events if kind == "chunk"]
    assert "IN_PROGRESS" in chunk_states and chunk_states[-1] == "COMPLETED"
    final = events[-1][1]
    assert final["status"] == "COMPLETED" and final["video_url"] == f"/jobs/{job_id}/video"
    assert "video_base64" not in final

    # A finished job's stream says so at once and closes.
    with server.client.stream("GET", f"/jobs/{job_id}/events") as stream:
        again = list(sse_events(stream.iter_lines()))
    assert [kind for kind, _ in again] == ["status", "end"]


def test_list_jobs_newest_first(server: RunningServer, media: Media) -> None:
    first = server.client.post("/jobs", json=media.json_body()).json()["id"]
    second = server.client.post("/jobs", json=media.json_body()).json()["id"]
    listed = server.client.get("/jobs").json()["jobs"]
    assert [doc["id"] for doc in listed] == [second, first]
    assert server.client.get("/jobs", params={"limit": 1}).json()["jobs"][0]["id"] == second
    for job_id in (first, second):
        server.wait(job_id)


def test_cancel_running_job(server: RunningServer, media: Media) -> None:
    demo = server.service.demo
    assert demo is not None
    demo.latency_s = 30.0
    job_id = server.client.post("/jobs", json=media.json_body()).json()["id"]
    server.wait(
        job_id, until=lambda d: bool(d["chunks"]) and d["chunks"][0]["status"] == "IN_PROGRESS"
    )
    assert_error(server.client.get(f"/jobs/{job_id}/video"), 409, "not_ready")

    answer = server.client.delete(f"/jobs/{job_id}")
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "CANCELLED"
    assert len(demo.cancelled_ids) == 1  # the remote chunk was cancelled too
    assert_error(server.client.delete(f"/jobs/{job_id}"), 409, "job_ended")
    assert sorted(p.name for p in job_folder(job_id).iterdir()) == ["job.json"]


def test_cancel_waiting_job(make_server: Callable[..., RunningServer], media: Media) -> None:
    server = make_server(max_concurrent_jobs=1)
    assert server.service.demo is not None
    server.service.demo.latency_s = 30.0
    running = server.client.post("/jobs", json=media.json_body()).json()["id"]
    waiting = server.client.post("/jobs", json=media.json_body()).json()["id"]
    server.wait(running, until=lambda d: d["status"] == "IN_PROGRESS")
    assert server.client.get(f"/jobs/{waiting}").json()["status"] == "IN_QUEUE"
    answer = server.client.delete(f"/jobs/{waiting}")
    assert answer.status_code == 200 and answer.json()["status"] == "CANCELLED"
    assert server.client.delete(f"/jobs/{running}").json()["status"] == "CANCELLED"


def test_health_and_deep_health(server: RunningServer) -> None:
    started = time.monotonic()
    doc = server.client.get("/health").json()
    assert doc["status"] == "ok" and doc["demo"] is True and doc["accepting_jobs"] is True
    assert "runpod" not in doc
    deep = server.client.get("/health", params={"deep": 1}).json()
    assert deep["runpod"]["ok"] is True and deep["runpod"]["workers"]["idle"] >= 1
    assert time.monotonic() - started < 5


def test_metrics(server: RunningServer, media: Media) -> None:
    job_id = server.client.post("/jobs", json=media.json_body()).json()["id"]
    server.wait(job_id)
    # The job reads COMPLETED as soon as the pipeline says so; the service counts its end
    # right after, on the job's own thread.
    ended = 'infinitetalk_jobs_ended_total{state="COMPLETED"} 1.0'
    deadline = time.monotonic() + 10
    while ended not in server.client.get("/metrics").text and time.monotonic() < deadline:
        time.sleep(0.05)
    text = server.client.get("/metrics").text
    assert 'infinitetalk_jobs{state="COMPLETED"} 1.0' in text
    assert "infinitetalk_chunks_in_flight 0.0" in text
    assert 'infinitetalk_chunk_duration_seconds_count{phase="exec"} 1.0' in text
    assert 'infinitetalk_runpod_request_duration_seconds_count{route="run"} 1.0' in text
    assert 'infinitetalk_runpod_request_duration_seconds_count{route="status"}' in text
    assert 'infinitetalk_jobs_ended_total{state="COMPLETED"} 1.0' in text
    assert 'infinitetalk_http_requests_total{method="POST",route="/jobs",status="202"} 1.0' in text


def test_request_log_has_no_token_or_media(
    make_server: Callable[..., RunningServer], media: Media, caplog: pytest.LogCaptureFixture
) -> None:
    token = "s3cr3t-t0ken"
    server = make_server(api_token=token)
    server.client.headers["Authorization"] = f"Bearer {token}"
    with caplog.at_level(logging.INFO, logger="infinitetalk_gui.server.access"):
        body = media.json_body()
        job_id = server.client.post("/jobs", json=body).json()["id"]
        server.client.get(f"/jobs/{job_id}", params={"inline": 0})
        deadline = time.monotonic() + 5
        # The line is written once the answer is sent: wait for it.
        while len(access_records(caplog)) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
    lines = [json.loads(JsonFormatter().format(r)) for r in access_records(caplog)]
    assert len(lines) == 2
    post, get = lines
    assert (post["method"], post["path"], post["status"], post["job_id"]) == (
        "POST",
        "/jobs",
        202,
        job_id,
    )
    assert (get["path"], get["status"], get["job_id"]) == (f"/jobs/{job_id}", 200, job_id)
    assert post["duration_ms"] > 0 and post["client"] == "127.0.0.1"
    text = "\n".join(JsonFormatter().format(r) for r in caplog.records)
    assert token not in text and body["audio_base64"][:40] not in text and "inline" not in text
    server.wait(job_id)


def access_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "infinitetalk_gui.server.access"]


# ----------------------------------------------------------------------------- errors


def test_bad_input_is_400(server: RunningServer, media: Media) -> None:
    post = server.client.post
    assert_error(
        post("/jobs", json=media.json_body(image_base64="@@@not base64@@@")), 400, "bad_base64"
    )
    garbage = base64.b64encode(b"hello, this is not a picture").decode()
    body = assert_error(
        post("/jobs", json=media.json_body(image_base64=garbage)), 400, "invalid_media"
    )
    assert "image_base64" in body["error"] and str(paths.cache_dir()) not in body["error"]
    body = assert_error(
        post("/jobs", json=media.json_body(audio_base64=garbage)), 400, "invalid_media"
    )
    assert "audio_base64" in body["error"]
    assert_error(post("/jobs", json=media.json_body(width=300)), 400, "unsupported_size")
    # Schema errors are 400 too, never the framework's 422.
    assert_error(post("/jobs", json={"image_base64": media.image_b64}), 400, "invalid_request")
    assert_error(post("/jobs", json=media.json_body(width="512")), 400, "invalid_request")
    assert_error(post("/jobs", json=media.json_body(colour="red")), 400, "invalid_request")
    assert_error(
        post("/jobs", content=b"{not json", headers={"content-type": "application/json"}),
        400,
        "bad_json",
    )
    assert_error(post("/jobs", json=media.json_body(webhook_url="ftp://x")), 400, "invalid_request")
    assert_error(post("/jobs", json=media.json_body(push_to_s3=True)), 400, "s3_not_configured")
    assert_error(server.client.get("/jobs/x", params={"inline": "maybe"}), 400, "invalid_request")
    assert_error(server.client.get("/jobs", params={"limit": 0}), 400, "invalid_request")
    # Multipart: missing file, unknown field, bad number.
    with media.portrait.open("rb") as image:
        assert_error(post("/jobs", files={"image": image}), 400, "invalid_request")
    with media.portrait.open("rb") as image, media.voice.open("rb") as voice:
        assert_error(
            post("/jobs", files={"image": image, "audio": voice}, data={"colour": "red"}),
            400,
            "invalid_request",
        )
    with media.portrait.open("rb") as image, media.voice.open("rb") as voice:
        assert_error(
            post("/jobs", files={"image": image, "audio": voice}, data={"width": "big"}),
            400,
            "invalid_request",
        )
    assert_error(
        post("/jobs", content=b"hi", headers={"content-type": "text/plain"}),
        415,
        "unsupported_media_type",
    )
    # Nothing was left behind by the refused posts.
    assert list((paths.cache_dir() / "server" / "jobs").iterdir()) == []


def test_not_found_and_conflicts(server: RunningServer) -> None:
    for method, path in (
        ("GET", "/jobs/nope"),
        ("DELETE", "/jobs/nope"),
        ("GET", "/jobs/nope/video"),
        ("GET", "/jobs/nope/events"),
        ("GET", "/nowhere"),
    ):
        assert_error(server.client.request(method, path), 404, "not_found")
    assert_error(server.client.put("/jobs"), 405, "method_not_allowed")


def test_token(make_server: Callable[..., RunningServer]) -> None:
    server = make_server(api_token="tok")
    assert_error(server.client.get("/jobs"), 401, "unauthorized")
    answer = server.client.get("/jobs", headers={"Authorization": "Bearer nope"})
    assert assert_error(answer, 401, "unauthorized")["error"] == "The token is wrong."
    assert answer.headers["www-authenticate"] == "Bearer"
    assert server.client.get("/jobs", headers={"Authorization": "Bearer tok"}).status_code == 200
    for public in ("/health", "/metrics", "/openapi.json", "/docs"):
        assert server.client.get(public).status_code == 200


def test_body_limit(make_server: Callable[..., RunningServer], media: Media) -> None:
    server = make_server(max_body_bytes=100_000)
    big = media.json_body(prompt="x" * 10)
    big["image_base64"] = base64.b64encode(b"\0" * 120_000).decode()
    assert_error(server.client.post("/jobs", json=big), 413, "body_too_large")

    def chunked() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
        yield json.dumps(big).encode()

    assert_error(
        server.client.post(
            "/jobs", content=chunked(), headers={"content-type": "application/json"}
        ),
        413,
        "body_too_large",
    )


def test_rate_limit(make_server: Callable[..., RunningServer]) -> None:
    server = make_server(rate_limit_per_s=5)
    codes = [server.client.get("/jobs").status_code for _ in range(15)]
    assert codes[:5] == [200] * 5 and 429 in codes
    limited = server.client.get("/jobs")
    assert_error(limited, 429, "rate_limited")
    assert int(limited.headers["retry-after"]) >= 1
    assert all(server.client.get("/health").status_code == 200 for _ in range(10))


def test_crash_is_json_500(server: RunningServer, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(limit: int) -> list[Any]:
        raise RuntimeError("a bug")

    monkeypatch.setattr(server.service, "list", broken)
    body = assert_error(server.client.get("/jobs"), 500, "internal_error")
    assert "a bug" not in body["error"]
    assert server.client.get("/health").status_code == 200  # still serving


def test_shutting_down_refuses_new_jobs(server: RunningServer, media: Media) -> None:
    server.service.begin_shutdown()
    assert_error(server.client.post("/jobs", json=media.json_body()), 503, "shutting_down")
    assert server.client.get("/health").json()["accepting_jobs"] is False


def test_cors(make_server: Callable[..., RunningServer]) -> None:
    closed = make_server()
    assert (
        "access-control-allow-origin"
        not in closed.client.get("/health", headers={"Origin": "http://a.test"}).headers
    )
    open_ = make_server(cors_origins=("http://a.test",), api_token="tok")
    answer = open_.client.get("/health", headers={"Origin": "http://a.test"})
    assert answer.headers["access-control-allow-origin"] == "http://a.test"
    preflight = open_.client.options(
        "/jobs",
        headers={"Origin": "http://a.test", "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "authorization,content-type"},
    )  # fmt: skip
    assert preflight.status_code == 200  # answered before the token check
