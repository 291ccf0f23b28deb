"""RunPodClient against a loopback fake of RunPod (tests/fake_runpod.py)."""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest

from infinitetalk_gui.core import runpod
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
from infinitetalk_gui.core.models import JobState
from infinitetalk_gui.core.runpod import (
    NO_VIDEO,
    SPLICE_MIN_CHARS,
    EndpointUnreachable,
    Health,
    JobExpired,
    RemoteStatus,
    RunPodClient,
    build_worker_input,
    check_endpoint,
    encode_json_body,
    endpoint_url_for,
    next_poll_delay,
    parse_error,
    retry_after_seconds,
)
from tests.fake_runpod import FakeRunPod, Fault, Outcome, closed_port_url, fake_mp4

KEY = "rpa_SECRETKEY_0123456789abcdef"
FAST: dict[str, Any] = {"backoff_base_s": 0.01, "backoff_max_s": 0.05, "retry_budget_s": 10.0}


@pytest.fixture
def fake() -> Iterator[FakeRunPod]:
    with FakeRunPod(api_key=KEY) as server:
        yield server


@pytest.fixture
def client(fake: FakeRunPod) -> Iterator[RunPodClient]:
    with RunPodClient(fake.url, KEY, **FAST) as c:
        yield c


def worker_input(size: int = 1000) -> dict[str, Any]:
    return build_worker_input(
        base64.b64encode(b"\x89PNG" + b"i" * size).decode(),
        base64.b64encode(b"RIFF" + b"a" * size).decode(),
        prompt="A person talking naturally",
        width=512,
        height=512,
    )


def wait_terminal(client: RunPodClient, job_id: str, timeout: float = 5.0) -> list[RemoteStatus]:
    """Poll like the pipeline does (next_poll_delay) until a terminal state."""
    seen: list[RemoteStatus] = []
    deadline = time.monotonic() + timeout
    since = time.monotonic()
    while time.monotonic() < deadline:
        status = client.status(job_id)
        if not seen or seen[-1].state is not status.state:
            since = time.monotonic()
        seen.append(status)
        if status.state.terminal:
            return seen
        time.sleep(next_poll_delay(status.state, time.monotonic() - since, None))
    raise AssertionError(f"job {job_id} never finished: {seen[-1]!r}")


# -- helpers -----------------------------------------------------------------------------------


def test_endpoint_url_for() -> None:
    assert endpoint_url_for(" abc123-x_y ") == "https://api.runpod.ai/v2/abc123-x_y"
    with pytest.raises(ConfigError, match="not a RunPod endpoint id"):
        endpoint_url_for("abc/../x")


def test_client_rejects_a_bad_url() -> None:
    with pytest.raises(ConfigError, match="not an endpoint URL"):
        RunPodClient("api.runpod.ai/v2/x", KEY)


def test_keyless_client_sends_no_authorization(fake: FakeRunPod) -> None:
    with (
        RunPodClient(fake.url, None, **FAST) as client,
        pytest.raises(AuthError, match=r"requires an API key.*none was given"),
    ):
        client.health()
    assert "authorization" not in fake.requests[0].headers


def test_build_worker_input_matches_contract() -> None:
    got = build_worker_input(
        "data:image/png;base64,SU1H", "UklGRg==", prompt="  ", width=480, height=832
    )
    assert got == {
        "input_type": "image",
        "person_count": "single",
        "image_base64": "SU1H",  # the data: prefix would corrupt the file on the worker
        "wav_base64": "UklGRg==",
        "prompt": "A person talking naturally",
        "width": 480,
        "height": 832,
        "force_offload": False,
        "network_volume": False,
    }
    with pytest.raises(InputError, match="multiple of 16"):
        build_worker_input("SU1H", "UklGRg==", prompt="p", width=500, height=512)


def test_retry_after_parses_seconds_and_http_dates() -> None:
    now = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert retry_after_seconds("7", now) == 7.0
    assert retry_after_seconds(format_datetime(now + timedelta(seconds=12), usegmt=True), now) == 12
    assert retry_after_seconds(format_datetime(now - timedelta(seconds=5), usegmt=True), now) == 0
    assert retry_after_seconds("soon", now) is None
    assert retry_after_seconds(None, now) is None


def test_parse_error_prefers_json_error_message() -> None:
    structured = {"error_type": "RuntimeError", "error_message": "CUDA OOM", "error_traceback": "…"}
    assert parse_error(json.dumps(structured)) == "CUDA OOM"
    assert parse_error(structured) == "CUDA OOM"
    assert parse_error("worker exploded") == "worker exploded"
    assert parse_error("{not json") == "{not json"
    assert parse_error({"error_type": "ValueError"}) == "ValueError"
    assert parse_error("") is None
    assert len(parse_error("x" * 100_000) or "") <= 500


# -- the happy path ----------------------------------------------------------------------------


def test_happy_path_submit_poll_save(
    fake: FakeRunPod, client: RunPodClient, tmp_path: Path
) -> None:
    fake.queue_s, fake.run_s = 0.15, 0.15
    job_input = worker_input()
    job_id = client.submit(job_input, execution_timeout_ms=1_200_000)

    statuses = wait_terminal(client, job_id)
    states = [s.state for s in statuses]
    assert states[0] is JobState.IN_QUEUE
    assert JobState.IN_PROGRESS in states
    final = statuses[-1]
    assert final.state is JobState.COMPLETED
    assert (final.delay_ms, final.execution_ms, final.worker_id) == (150, 1234, "worker-1")
    assert final.cost_usd(0.001) == pytest.approx(0.001234)

    dest = client.save_video(final.output, tmp_path / "chunk.mp4")
    assert dest.read_bytes() == fake.video

    run = fake.seen("run")
    assert len(run) == 1
    body = json.loads(run[0].body)
    assert body == {"input": job_input, "policy": {"executionTimeout": 1_200_000}}
    assert all(r.headers.get("authorization") == f"Bearer {KEY}" for r in fake.requests)


def test_running_is_in_progress(fake: FakeRunPod, client: RunPodClient) -> None:
    fake.run_s, fake.running_word = 5.0, "RUNNING"
    job_id = client.submit(worker_input())
    assert client.status(job_id).state is JobState.IN_PROGRESS


def test_remote_status_repr_hides_payload(fake: FakeRunPod, client: RunPodClient) -> None:
    fake.video = fake_mp4(300_000)
    fake.run_s = 0
    job_id = client.submit(worker_input())
    status = wait_terminal(client, job_id)[-1]
    text = repr(status)
    assert len(text) < 400 and "video: 400" in text


def test_shared_by_three_polling_threads(fake: FakeRunPod, client: RunPodClient) -> None:
    fake.run_s = 0.1
    results: list[JobState] = []
    errors: list[BaseException] = []

    def one() -> None:
        try:
            results.append(wait_terminal(client, client.submit(worker_input()))[-1].state)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=one) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert not errors
    assert results == [JobState.COMPLETED] * 3
    assert len(client._sessions) == 3  # one Session per thread


# -- transport retries -------------------------------------------------------------------------


def test_429_retry_after_is_honoured(fake: FakeRunPod, client: RunPodClient) -> None:
    job_id = client.submit(worker_input())
    fake.inject("status", Fault(code=429, headers={"Retry-After": "1"}, body="{}"))
    started = time.monotonic()
    status = client.status(job_id)
    waited = time.monotonic() - started
    assert status.id == job_id
    assert 0.95 <= waited < 3.0  # the tiny test backoff alone would be ~0.01 s
    assert len(fake.seen("status")) == 2


def test_5xx_then_success(fake: FakeRunPod, client: RunPodClient) -> None:
    fake.inject("run", Fault(code=503), Fault(code=502, body="<html>bad gateway</html>"))
    job_id = client.submit(worker_input())
    assert job_id.startswith("job-")
    assert len(fake.seen("run")) == 3
    assert len(fake.jobs) == 1


def test_dropped_connection_then_success(fake: FakeRunPod, client: RunPodClient) -> None:
    fake.inject("run", Fault(kind="drop"))
    job_id = client.submit(worker_input())
    assert job_id in fake.jobs
    assert len(fake.seen("run")) == 2  # the same /run, sent again

    fake.inject("status", Fault(kind="drop"), Fault(kind="drop"))
    assert client.status(job_id).id == job_id


def test_read_timeout_then_success(fake: FakeRunPod) -> None:
    with RunPodClient(fake.url, KEY, read_timeout_s=0.3, **FAST) as client:
        fake.inject("health", Fault(kind="delay", delay_s=0.8))
        assert client.health().warm_workers == 2
    assert len(fake.seen("health")) == 2


def test_connection_refused_gives_up_after_max_tries() -> None:
    with RunPodClient(closed_port_url(), KEY, max_tries=3, **FAST) as client:
        started = time.monotonic()
        with pytest.raises(EndpointUnreachable, match=r"connection refused.*3 tries"):
            client.submit(worker_input())
        assert time.monotonic() - started < 2


def test_retries_stop_within_budget(fake: FakeRunPod) -> None:
    fake.inject("health", *[Fault(code=500)] * 20)
    with (
        RunPodClient(fake.url, KEY, max_tries=4, **FAST) as client,
        pytest.raises(EndpointUnreachable, match=r"HTTP 500.*4 tries"),
    ):
        client.health()
    assert len(fake.seen("health")) == 4


@pytest.mark.parametrize("where", ["call", "client"])
def test_cancel_token_interrupts_backoff(fake: FakeRunPod, where: str) -> None:
    fake.inject("health", *[Fault(code=503, headers={"Retry-After": "30"})] * 5)
    token = CancelToken()
    client_token = token if where == "client" else None
    call_token = token if where == "call" else None
    timer = threading.Timer(0.2, token.cancel)
    started = time.monotonic()
    timer.start()
    with (
        RunPodClient(fake.url, KEY, cancel=client_token, retry_budget_s=120) as client,
        pytest.raises(Cancelled),
    ):
        client.health(cancel=call_token)
    assert time.monotonic() - started < 1.0
    assert len(fake.seen("health")) == 1
    timer.join()


# -- refusals: no retries ----------------------------------------------------------------------


def test_401_is_auth_error_without_retry(fake: FakeRunPod) -> None:
    with (
        RunPodClient(fake.url, "wrong-key", **FAST) as client,
        pytest.raises(AuthError, match="the API key was rejected by the endpoint"),
    ):
        client.submit(worker_input())
    assert len(fake.seen("run")) == 1


def test_403_is_auth_error(fake: FakeRunPod, client: RunPodClient) -> None:
    fake.inject("health", Fault(code=403, body='{"error": "forbidden"}'))
    with pytest.raises(AuthError, match="HTTP 403"):
        client.health()


def test_400_carries_the_server_message(fake: FakeRunPod, client: RunPodClient) -> None:
    fake.inject("run", Fault(code=400, body='{"error": "input.width must be an integer"}'))
    with pytest.raises(RemoteError, match=r"input\.width must be an integer") as caught:
        client.submit(worker_input())
    assert not isinstance(caught.value, ChunkFailed)
    assert len(fake.seen("run")) == 1


def test_404_on_status_is_job_expired(fake: FakeRunPod, client: RunPodClient) -> None:
    job_id = client.submit(worker_input())
    fake.expire(job_id)
    with pytest.raises(JobExpired, match="submitted again") as caught:
        client.status(job_id)
    assert isinstance(caught.value, ChunkFailed)


def test_404_on_run_or_health_is_config_error(fake: FakeRunPod) -> None:
    with RunPodClient(f"{fake.origin}/v2/wrong-id", KEY, **FAST) as client:
        with pytest.raises(ConfigError, match=r"no RunPod endpoint at .*wrong-id"):
            client.submit(worker_input())
        with pytest.raises(ConfigError, match="check the endpoint id or URL"):
            client.health()
    assert fake.requests and all(r.route in ("run", "health") for r in fake.requests)
    assert len(fake.requests) == 2


def test_body_over_10_mb_is_refused_before_sending(fake: FakeRunPod, client: RunPodClient) -> None:
    big = build_worker_input("SU1H", "A" * (10 * 1024 * 1024), prompt="p", width=512, height=512)
    with pytest.raises(PayloadTooLarge, match=r"10\.0 MB.*10 MB limit.*shorter chunk length"):
        client.submit(big)
    assert fake.requests == []


# -- outcomes ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (
            json.dumps(
                {
                    "error_type": "<class 'RuntimeError'>",
                    "error_message": "CUDA out of memory",
                    "error_traceback": "Traceback ...",
                }
            ),
            "CUDA out of memory",
        ),
        ("ffmpeg could not read the audio", "ffmpeg could not read the audio"),
    ],
)
def test_failed_job_error_message(
    fake: FakeRunPod, client: RunPodClient, error: str, expected: str
) -> None:
    fake.run_s = 0
    fake.outcomes.append(Outcome(status="FAILED", output=None, error=error))
    status = wait_terminal(client, client.submit(worker_input()))[-1]
    assert status.state is JobState.FAILED
    assert status.error_message == expected
    assert status.failure_message == expected


def test_timed_out_has_a_failure_message(fake: FakeRunPod, client: RunPodClient) -> None:
    fake.run_s = 0
    fake.outcomes.append(Outcome(status="TIMED_OUT", output=None))
    status = wait_terminal(client, client.submit(worker_input()))[-1]
    assert status.state is JobState.TIMED_OUT
    assert "execution timeout" in (status.failure_message or "")


@pytest.mark.parametrize("output", [None, {}, {"video": ""}, {"status": "done"}])
def test_completed_without_output_is_a_chunk_failure(
    fake: FakeRunPod, client: RunPodClient, tmp_path: Path, output: Any
) -> None:
    fake.run_s = 0
    fake.outcomes.append(Outcome(status="COMPLETED", output=output))
    status = wait_terminal(client, client.submit(worker_input()))[-1]
    assert status.state is JobState.COMPLETED  # decided by status, not by output
    with pytest.raises(ChunkFailed, match=NO_VIDEO):
        client.save_video(status.output, tmp_path / "out" / "c.mp4")
    assert list((tmp_path / "out").glob("*")) == []


# -- save_video --------------------------------------------------------------------------------


MP4 = fake_mp4(5000, seed=3)
B64 = base64.b64encode(MP4).decode()


@pytest.mark.parametrize(
    "output",
    [
        {"video": B64},
        {"video_base64": B64},
        {"video_base64": "data:video/mp4;base64," + B64},
        {"video": "data:video/mp4;base64," + B64},
        B64,
        "data:video/mp4;base64," + B64,
    ],
    ids=["video", "video_base64", "video_base64-data", "video-data", "bare", "bare-data"],
)
def test_save_video_base64_forms(client: RunPodClient, tmp_path: Path, output: Any) -> None:
    dest = client.save_video(output, tmp_path / "out" / "chunk.mp4")
    assert dest.read_bytes() == MP4
    assert [p.name for p in dest.parent.iterdir()] == ["chunk.mp4"]  # no temp file left


def test_save_video_decodes_in_blocks(
    client: RunPodClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Tiny, unaligned blocks and wrapped lines exercise the carry between blocks.
    monkeypatch.setattr(runpod, "_B64_BLOCK_CHARS", 10)
    wrapped = "\n".join(B64[i : i + 76] for i in range(0, len(B64), 76))
    dest = client.save_video({"video": wrapped}, tmp_path / "c.mp4")
    assert dest.read_bytes() == MP4


def test_save_video_rejects_non_mp4_and_keeps_old_file(
    client: RunPodClient, tmp_path: Path
) -> None:
    dest = tmp_path / "out" / "c.mp4"
    dest.parent.mkdir()
    dest.write_bytes(b"previous")
    with pytest.raises(ChunkFailed, match="not an MP4"):
        client.save_video({"video": base64.b64encode(b"<html>oops</html>" * 10).decode()}, dest)
    with pytest.raises(ChunkFailed, match="not valid base64"):
        client.save_video({"video": "@@@@" + B64}, dest)
    assert dest.read_bytes() == b"previous"
    assert [p.name for p in dest.parent.iterdir()] == ["c.mp4"]


def test_save_video_url_on_a_foreign_host_gets_no_key(fake: FakeRunPod, tmp_path: Path) -> None:
    with FakeRunPod(api_key="other") as storage, RunPodClient(fake.url, KEY, **FAST) as client:
        storage.files["v.mp4"] = MP4
        url = f"{storage.origin}/files/v.mp4?X-Amz-Signature=s3cr3t"
        storage.inject("files", Fault(code=503))  # retried like any transport error
        dest = client.save_video({"video_url": url}, tmp_path / "c.mp4")
        assert dest.read_bytes() == MP4
        got = storage.seen("files")
        assert len(got) == 2
        assert all("authorization" not in r.headers for r in got)


def test_save_video_url_on_the_endpoint_host_gets_the_key(
    fake: FakeRunPod, client: RunPodClient, tmp_path: Path
) -> None:
    fake.files["v.mp4"] = MP4
    dest = client.save_video(f"{fake.origin}/files/v.mp4", tmp_path / "c.mp4")
    assert dest.read_bytes() == MP4
    assert fake.seen("files")[0].headers["authorization"] == f"Bearer {KEY}"


def test_save_video_url_missing_is_a_chunk_failure(
    fake: FakeRunPod, client: RunPodClient, tmp_path: Path
) -> None:
    with pytest.raises(ChunkFailed, match=r"could not be downloaded.*HTTP 404"):
        client.save_video({"video_url": f"{fake.origin}/files/gone.mp4"}, tmp_path / "o" / "c.mp4")
    assert list((tmp_path / "o").iterdir()) == []


# -- cancel, health, check ---------------------------------------------------------------------


def test_cancel_reaches_the_endpoint(fake: FakeRunPod, client: RunPodClient) -> None:
    fake.run_s = 10
    job_id = client.submit(worker_input())
    assert client.cancel(job_id) is True
    assert [r.path for r in fake.seen("cancel")] == [f"/v2/{fake.endpoint_id}/cancel/{job_id}"]
    assert client.status(job_id).state is JobState.CANCELLED


def test_cancel_is_best_effort(
    fake: FakeRunPod, client: RunPodClient, caplog: pytest.LogCaptureFixture
) -> None:
    assert client.cancel("job-unknown") is False  # 404: already gone, fine
    fake.inject("cancel", *[Fault(code=500)] * 3)
    with caplog.at_level(logging.WARNING, logger="infinitetalk_gui"):
        assert client.cancel("job-x") is False
    assert any("could not cancel RunPod job job-x" in r.getMessage() for r in caplog.records)


def test_cancel_works_after_the_user_cancelled(fake: FakeRunPod, tmp_path: Path) -> None:
    fake.run_s = 10
    token = CancelToken()
    with RunPodClient(fake.url, KEY, cancel=token, **FAST) as client:
        job_id = client.submit(worker_input())
        token.cancel()
        with pytest.raises(Cancelled):
            client.status(job_id)  # the client's own token applies to every call
        with pytest.raises(Cancelled):
            client.save_video({"video": B64}, tmp_path / "out" / "c.mp4")
        assert client.cancel(job_id) is True  # stopping the billing must still go through
    assert fake.jobs[job_id].cancelled
    assert not (tmp_path / "out" / "c.mp4").exists()


def test_health(fake: FakeRunPod, client: RunPodClient) -> None:
    health = client.health()
    assert health.workers == {"idle": 1, "running": 1, "initializing": 0}
    assert health.jobs["inQueue"] == 2
    assert health.warm_workers == 2
    assert health.summary() == "2 workers warm (1 idle, 1 running). Jobs: 2 waiting, 1 in progress."
    cold = Health(jobs={}, workers={"idle": 0, "running": 0, "initializing": 1})
    assert cold.warm_workers == 0
    assert "cold start" in cold.summary() and "1 starting" in cold.summary()


def test_check_endpoint(fake: FakeRunPod, client: RunPodClient) -> None:
    result = check_endpoint(client)
    assert (result.ok, result.reachable, result.key_accepted, result.warm_workers) == (
        True,
        True,
        True,
        2,
    )
    assert "accepted the API key" in result.message and "2 workers warm" in result.message

    with RunPodClient(fake.url, "bad", **FAST) as bad_key:
        result = check_endpoint(bad_key)
    assert (result.ok, result.reachable, result.key_accepted) == (False, True, False)
    assert "API key was rejected" in result.message

    with RunPodClient(f"{fake.origin}/v2/nope", KEY, **FAST) as wrong:
        result = check_endpoint(wrong)
    assert (result.ok, result.reachable) == (False, False)
    assert "no RunPod endpoint" in result.message

    with RunPodClient(closed_port_url(), KEY, **FAST) as down:
        result = check_endpoint(down)
    assert (result.ok, result.reachable, result.key_accepted) == (False, False, None)
    assert "connection refused" in result.message


# -- the key never leaks -----------------------------------------------------------------------


def test_api_key_never_in_errors_or_logs(
    fake: FakeRunPod, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    messages: list[str] = []
    caplog.set_level(logging.DEBUG)  # urllib3 and requests included
    with RunPodClient(fake.url, KEY, max_tries=3, **FAST) as client:
        messages.append(repr(client))
        fake.inject("run", Fault(kind="drop"), Fault(code=429, headers={"Retry-After": "0"}))
        job_id = client.submit(worker_input())
        fake.inject("status", *[Fault(code=500)] * 2)
        fake.inject("health", Fault(code=400, body=json.dumps({"error": "bad"})))
        fake.expire(job_id)
        fake.inject("cancel", *[Fault(code=503)] * 2)
        attempts: list[Callable[[], object]] = [
            lambda: client.status(job_id),
            lambda: client.health(),
            lambda: client.status(job_id),
            lambda: client.save_video({"video": "nope"}, tmp_path / "x.mp4"),
            lambda: client.submit(
                build_worker_input("A", "A" * 11_000_000, prompt="p", width=512, height=512)
            ),
        ]
        for attempt in attempts:
            with pytest.raises(Exception) as caught:  # any error: we read its text
                attempt()
            messages.append(str(caught.value))
            messages.append(repr(caught.value))
        client.cancel(job_id)
    with RunPodClient(fake.url, "wrong-" + KEY, **FAST) as bad:
        with pytest.raises(AuthError) as caught:
            bad.health()
        messages.append(str(caught.value))
    with RunPodClient(closed_port_url(), KEY, max_tries=2, **FAST) as down:
        with pytest.raises(EndpointUnreachable) as caught:
            down.health()
        messages.append(str(caught.value))
    messages.extend(r.getMessage() for r in caplog.records)
    assert len(messages) > 10
    assert caplog.records, "the retries should have been logged"
    assert not [m for m in messages if KEY in m]


# -- polling cadence ---------------------------------------------------------------------------


def test_poll_delay_is_fast_near_the_expected_end() -> None:
    for elapsed in (29.3, 30.0, 31.0, 35.0):
        assert next_poll_delay(JobState.IN_PROGRESS, elapsed, 30.0) <= 0.25
    assert next_poll_delay(JobState.IN_PROGRESS, 2.0, 30.0) == 1.0  # far from it: relaxed
    assert next_poll_delay(JobState.IN_PROGRESS, 600.0, 30.0) == 1.0  # prediction was wrong
    assert next_poll_delay(JobState.IN_PROGRESS, 1.0, None) <= 0.25  # short (demo) jobs
    assert next_poll_delay(JobState.IN_QUEUE, 0.5, None) <= 0.25
    assert next_poll_delay(JobState.COMPLETED, 3.0, 30.0) == 0.0


def test_poll_delay_backs_off_in_long_queues() -> None:
    delays = [next_poll_delay(JobState.IN_QUEUE, t, None) for t in (0, 5, 10, 30, 300)]
    assert delays == sorted(delays)
    assert 2.0 <= delays[-1] <= 3.0
    # A short job must not finish unseen between two queue polls.
    assert next_poll_delay(JobState.IN_QUEUE, 300, 1.0) <= 0.5


def test_three_chunks_stay_far_under_the_status_rate_limit() -> None:
    # Simulate 3 chunks polled through queue and run; count calls in the worst 10 s window.
    calls: list[float] = []
    for expected in (None, 40.0, 3.0):
        t = 0.0
        while t < 90.0:
            calls.append(t)
            state = JobState.IN_QUEUE if t < 20 else JobState.IN_PROGRESS
            elapsed = t if state is JobState.IN_QUEUE else t - 20
            delay = next_poll_delay(state, elapsed, expected)
            assert delay >= 0.2
            t += delay
    calls.sort()
    worst = max(sum(1 for c in calls if start <= c < start + 10) for start in calls)
    assert worst <= 150  # RunPod allows 2000 per 10 s


def test_run_body_is_json_with_the_base64_copied_in_as_is() -> None:
    audio = base64.b64encode(bytes(range(256)) * 1000).decode("ascii")  # spliced
    tricky = 'a "quoted" \\ line\nand more ' * 5000  # long, but needs escaping: encoded
    body = {
        "input": {
            "image_base64": "iVBORw0KGgo=",  # short: encoded as usual
            "wav_base64": audio,
            "notes": tricky,
            "prompt": "Une personne qui parle, très calme",
            "nested": {"also": audio[: SPLICE_MIN_CHARS + 4]},
            "width": 512,
        },
        "policy": {"executionTimeout": 1000},
    }
    payload = encode_json_body(body)
    assert json.loads(payload) == body
    assert payload.isascii()
    assert f'"wav_base64":"{audio}"'.encode() in payload  # verbatim, not re-encoded
    assert json.loads(encode_json_body({"x": 1})) == {"x": 1}
