"""Delivery when a job ends: webhooks to a local receiver, S3 pushes to moto's S3 server."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from tests.server.conftest import Media, RunningServer


class Receiver:
    """A webhook receiver on loopback that fails the first ``fail_first`` calls with 503."""

    def __init__(self, fail_first: int = 0) -> None:
        self.fail_first = fail_first
        self.calls: list[tuple[dict[str, str], bytes]] = []
        self.got = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.calls.append((dict(self.headers), body))
                failing = len(receiver.calls) <= receiver.fail_first
                self.send_response(503 if failing else 204)
                self.send_header("Content-Length", "0")
                self.end_headers()
                if not failing:
                    receiver.got.set()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook?token=abc"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    hook = Receiver(fail_first=2)
    yield hook
    hook.close()


def test_webhook_is_retried_until_delivered(
    make_server: Callable[..., RunningServer], media: Media, receiver: Receiver
) -> None:
    server = make_server(webhook_secret="shh")
    job_id = server.client.post("/jobs", json=media.json_body(webhook_url=receiver.url)).json()[
        "id"
    ]
    assert server.wait(job_id)["status"] == "COMPLETED"
    assert receiver.got.wait(10), "the webhook never arrived"
    assert len(receiver.calls) == 3  # two 503s, then delivered
    headers, body = receiver.calls[-1]
    payload = json.loads(body)
    assert payload["id"] == job_id and payload["status"] == "COMPLETED"
    assert payload["video_url"] == f"/jobs/{job_id}/video" and "video_base64" not in payload
    assert headers["X-InfiniteTalk-Event"] == "job.finished"
    expected = "sha256=" + hmac.new(b"shh", body, hashlib.sha256).hexdigest()
    assert headers["X-InfiniteTalk-Signature"] == expected
    # The receiver has the request before the sender has read the answer and counted it.
    delivered = 'infinitetalk_webhook_deliveries_total{outcome="delivered"} 1.0'
    deadline = time.monotonic() + 10
    while delivered not in server.client.get("/metrics").text and time.monotonic() < deadline:
        time.sleep(0.05)
    assert delivered in server.client.get("/metrics").text


def test_webhook_for_a_cancelled_job(
    make_server: Callable[..., RunningServer], media: Media, receiver: Receiver
) -> None:
    receiver.fail_first = 0
    server = make_server(max_concurrent_jobs=1)
    assert server.service.demo is not None
    server.service.demo.latency_s = 30
    first = server.client.post("/jobs", json=media.json_body()).json()["id"]
    waiting = server.client.post("/jobs", json=media.json_body(webhook_url=receiver.url)).json()[
        "id"
    ]
    assert server.client.delete(f"/jobs/{waiting}").json()["status"] == "CANCELLED"
    assert receiver.got.wait(10)
    assert json.loads(receiver.calls[0][1])["status"] == "CANCELLED"
    server.client.delete(f"/jobs/{first}")


@pytest.fixture
def s3_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    moto_server = pytest.importorskip("moto.server")
    for name, value in (
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_DEFAULT_REGION", "us-east-1"),
    ):
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def test_push_to_s3_gives_a_presigned_url(
    make_server: Callable[..., RunningServer], media: Media, s3_server: str, receiver: Receiver
) -> None:
    import boto3

    boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1").create_bucket(
        Bucket="videos"
    )
    receiver.fail_first = 0
    server = make_server(s3_bucket="videos", s3_region="us-east-1", s3_endpoint_url=s3_server)
    body = media.json_body(push_to_s3=True, webhook_url=receiver.url)
    job_id = server.client.post("/jobs", json=body).json()["id"]
    doc = server.wait(job_id)
    assert doc["status"] == "COMPLETED" and doc["progress"] == 100, doc
    full = server.client.get(f"/jobs/{job_id}").json()
    assert "video_base64" not in full  # pushed videos are never inline
    url = full["video_url"]
    assert url.startswith(f"{s3_server}/videos/infinitetalk/{job_id}.mp4?") and "Signature" in url
    pushed = httpx.get(url).content
    assert pushed[4:8] == b"ftyp"
    assert pushed == server.client.get(f"/jobs/{job_id}/video").content
    # The webhook came after the upload, with the S3 URL in it.
    assert receiver.got.wait(10)
    assert json.loads(receiver.calls[0][1])["video_url"].startswith(f"{s3_server}/videos/")


def test_failed_push_keeps_the_video_here(
    make_server: Callable[..., RunningServer], media: Media, s3_server: str
) -> None:
    server = make_server(
        s3_bucket="no-such-bucket", s3_region="us-east-1", s3_endpoint_url=s3_server
    )
    job_id = server.client.post("/jobs", json=media.json_body(push_to_s3=True)).json()["id"]
    doc = server.wait(job_id)
    assert doc["status"] == "COMPLETED"
    assert doc["video_url"] == f"/jobs/{job_id}/video"
    assert "could not be pushed to S3" in doc["error"] and "NoSuchBucket" in doc["error"]
    assert server.client.get(doc["video_url"]).status_code == 200
