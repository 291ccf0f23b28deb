"""The demo endpoint: a RunPod stand-in that really renders, and misbehaves on request."""

from __future__ import annotations

import base64
import json
import math
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests
from PIL import Image, ImageOps

from infinitetalk_gui.core.demo_endpoint import (
    CHILD_NICENESS,
    MAX_RUN_BODY_BYTES,
    TINT_COLOURS,
    DemoEndpoint,
    DemoEndpointProcess,
    DemoFaults,
    serve_forever,
)
from infinitetalk_gui.core.ffmpeg import probe
from tests.mediagen import FFMPEG, portrait, speechlike_wav

TERMINAL = {"COMPLETED", "FAILED", "CANCELLED", "TIMED_OUT"}
SIZE = 256
VOICE_S, SILENCE_S = 1.5, 1.5  # the main clip: voice, silence, voice


@dataclass(frozen=True)
class Media:
    portrait: Path
    image_b64: str
    voice_b64: str  # 4.5 s: voice 0-1.5 s, silence 1.5-3.0 s, voice 3.0-4.5 s
    quick_b64: str  # 3.6 s of voice: just over the model's minimum, fast to render
    short_b64: str  # 3.0 s: under the model's minimum
    long_b64: str  # 60 s: a render that takes a while


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode("ascii")


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Media:
    root = tmp_path_factory.mktemp("demo-media")
    image = portrait(root / "portrait.png", 400, 600)
    voice = speechlike_wav(
        root / "voice.wav", [("voice", VOICE_S), ("silence", SILENCE_S), ("voice", VOICE_S)]
    )
    quick = speechlike_wav(root / "quick.wav", [("voice", 3.6)])
    short = speechlike_wav(root / "short.wav", [("voice", 3.0)])
    long = speechlike_wav(root / "long.wav", [("voice", 60.0)])
    return Media(image, _b64(image), _b64(voice), _b64(quick), _b64(short), _b64(long))


def worker_input(media: Media, wav_b64: str | None = None, size: int = SIZE) -> dict[str, Any]:
    return {
        "input_type": "image",
        "person_count": "single",
        "image_base64": media.image_b64,
        "wav_base64": wav_b64 if wav_b64 is not None else media.voice_b64,
        "prompt": "A person talking naturally",
        "width": size,
        "height": size,
    }


def submit(url: str, job_input: dict[str, Any], **extra: Any) -> str:
    answer = requests.post(f"{url}/run", json={"input": job_input, **extra}, timeout=10)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["status"] == "IN_QUEUE"
    return str(body["id"])


def wait_for(
    url: str,
    job_id: str,
    seen: list[str] | None = None,
    until: set[str] = TERMINAL,
    timeout: float = 30,
) -> dict[str, Any]:
    """Poll /status like a client until the status is in ``until``; return that answer."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answer = requests.get(f"{url}/status/{job_id}", timeout=10)
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        if seen is not None and (not seen or seen[-1] != body["status"]):
            seen.append(body["status"])
        if body["status"] in until:
            return body
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not reach {until} in {timeout} s")


def save_video(output: dict[str, Any], path: Path) -> Path:
    path.write_bytes(base64.b64decode(output["video"], validate=True))
    return path


def decode_frames(path: Path, width: int = SIZE, height: int = SIZE) -> np.ndarray:
    raw = subprocess.run(
        [FFMPEG, "-v", "error", "-i", str(path), "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
        check=True,
        capture_output=True,
    ).stdout
    return np.frombuffer(raw, np.uint8).reshape(-1, height, width, 3)


def audio_seconds(path: Path) -> float:
    raw = subprocess.run(
        [FFMPEG, "-v", "error", "-i", str(path), "-vn", "-ac", "1", "-ar", "16000", "-f", "s16le",
         "-"],
        check=True,
        capture_output=True,
    ).stdout  # fmt: skip
    return len(raw) / 2 / 16000


def ffmpeg_pids_using(folder: Path) -> list[int]:
    """ffmpeg processes whose command line mentions ``folder`` (Linux /proc; [] elsewhere)."""
    pids: list[int] = []
    proc = Path("/proc")
    if not (proc / "self" / "cmdline").exists():
        return pids
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().decode("utf-8", "replace")
        except OSError:
            continue
        if "ffmpeg" in cmdline and str(folder) in cmdline:
            pids.append(int(entry.name))
    return pids


@pytest.fixture
def demo() -> Iterator[DemoEndpoint]:
    with DemoEndpoint(latency_s=0.2) as endpoint:
        yield endpoint


# -- the happy path ----------------------------------------------------------------------------


def test_full_lifecycle_renders_a_video_that_follows_the_voice(
    media: Media, tmp_path: Path
) -> None:
    with DemoEndpoint(latency_s=0.6, work_dir=tmp_path / "work") as demo:
        assert demo.url.startswith("http://127.0.0.1:")
        work = demo.work_dir
        assert work is not None and work.is_dir() and work.parent == tmp_path / "work"

        answer = requests.post(
            f"{demo.url}/run",
            json={"input": worker_input(media), "policy": {"executionTimeout": 120_000}},
            timeout=10,
        )
        assert answer.status_code == 200
        assert set(answer.json()) == {"id", "status"}
        job_id = answer.json()["id"]
        seen: list[str] = []
        final = wait_for(demo.url, job_id, seen)

        assert seen[-2:] == ["IN_PROGRESS", "COMPLETED"]
        assert set(seen) <= {"IN_QUEUE", "IN_PROGRESS", "COMPLETED"}
        assert final["executionTime"] >= 600  # IN_PROGRESS for at least latency_s
        assert final["delayTime"] >= 0
        assert final["workerId"].startswith("demo-worker-")
        health = requests.get(f"{demo.url}/health", timeout=10).json()
        assert health["jobs"] == {
            "completed": 1, "failed": 0, "inProgress": 0, "inQueue": 0, "retried": 0
        }  # fmt: skip
        assert health["workers"]["idle"] == 3 and health["workers"]["running"] == 0
        sent = demo.run_inputs[0]
        assert sent["input"]["width"] == SIZE and sent["input"]["image_base64"].endswith("chars>")
        assert sent["policy"] == {"executionTimeout": 120_000}

    assert not work.exists()  # stop() removed the videos and requests
    video = save_video(final["output"], tmp_path / "chunk.mp4")
    info = probe(video)
    assert (info.video_codec, info.audio_codec) == ("h264", "aac")
    assert (info.width, info.height) == (SIZE, SIZE)
    assert info.duration_s == pytest.approx(4.5, abs=0.1)
    frames = decode_frames(video)
    assert abs(len(frames) - math.ceil(4.5 * 25)) <= 1  # 25 fps
    assert audio_seconds(video) == pytest.approx(4.5, abs=0.05)

    # The portrait is centre-cropped like the worker does (scale to cover, cut the centre).
    with Image.open(media.portrait) as image:
        expected = np.asarray(ImageOps.fit(image.convert("RGB"), (SIZE, SIZE)), np.float32)
    upper = slice(0, SIZE - 60)  # above the level meter's strip
    assert np.abs(frames[0][upper].astype(np.float32) - expected[upper]).mean() < 6

    # The meter at the bottom follows the voice: bright while talking, dark in the pause.
    def strip_green(t: float) -> float:
        middle = slice(SIZE // 2 - 30, SIZE // 2 + 30)
        return float(frames[round(t * 25)][-40:-10, middle, 1].mean())

    loud = [strip_green(t) for t in (0.5, 1.0, 3.5, 4.0)]
    quiet = [strip_green(t) for t in (1.9, 2.25, 2.6)]
    assert min(loud) > max(quiet) + 100, (loud, quiet)


def test_concurrent_jobs_share_a_pool_of_workers(media: Media) -> None:
    latency = 1.5
    with DemoEndpoint(latency_s=latency, workers=2) as demo:
        first_sent = time.monotonic()
        ids = [submit(demo.url, worker_input(media, media.quick_b64)) for _ in range(3)]
        spread = time.monotonic() - first_sent
        deadline = time.monotonic() + 5
        while True:
            health = requests.get(f"{demo.url}/health", timeout=10).json()
            if health["workers"]["running"] == 2 or time.monotonic() > deadline:
                break
            time.sleep(0.02)
        # Two jobs run for at least `latency` seconds; the third waits for a free worker.
        assert health["workers"] == {
            "idle": 0, "initializing": 0, "ready": 0, "running": 2, "throttled": 0, "unhealthy": 0
        }  # fmt: skip
        assert health["jobs"]["inProgress"] == 2 and health["jobs"]["inQueue"] == 1
        assert demo.job_status(ids[2]) == "IN_QUEUE"

        finals = [wait_for(demo.url, job_id) for job_id in ids]
        assert [final["status"] for final in finals] == ["COMPLETED"] * 3
        assert finals[0]["workerId"] != finals[1]["workerId"]
        assert finals[2]["delayTime"] >= (latency - spread) * 1000 - 50
        assert demo.run_calls == 3 and demo.submitted_ids == ids


# -- what the worker refuses ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("image_data_uri", "image_base64"),
        ("audio_data_uri", "wav_base64"),
        ("short_audio", "3.24"),
        ("missing_audio", "Missing required input: wav_base64"),
        ("missing_image", "Missing required input: image_base64"),
        ("missing_width", "Missing required input: width"),
        ("missing_input_type", "Missing required input: input_type"),
        ("size_not_multiple_of_16", "multiple of 16"),
        ("not_an_image", "image_base64 is not a readable image"),
    ],
)
def test_worker_fails_bad_input_like_the_real_worker(
    demo: DemoEndpoint, media: Media, case: str, expected: str
) -> None:
    job_input = worker_input(media)
    if case == "image_data_uri":
        job_input["image_base64"] = "data:image/png;base64," + media.image_b64
    elif case == "audio_data_uri":
        job_input["wav_base64"] = "data:audio/wav;base64," + media.voice_b64
    elif case == "short_audio":
        job_input["wav_base64"] = media.short_b64
    elif case == "missing_audio":
        del job_input["wav_base64"]
    elif case == "missing_image":
        del job_input["image_base64"]
    elif case == "missing_width":
        del job_input["width"]
    elif case == "missing_input_type":
        del job_input["input_type"]
    elif case == "size_not_multiple_of_16":
        job_input["width"] = 250
    elif case == "not_an_image":
        job_input["image_base64"] = base64.b64encode(b"hello, not a picture").decode()

    final = wait_for(demo.url, submit(demo.url, job_input))

    assert final["status"] == "FAILED"
    assert "output" not in final
    error = json.loads(final["error"])
    assert set(error) >= {"error_type", "error_message", "error_traceback"}
    assert expected in error["error_message"]
    assert "Traceback" in error["error_traceback"]
    assert requests.get(f"{demo.url}/health", timeout=10).json()["jobs"]["failed"] == 1


def test_run_refuses_oversized_and_malformed_bodies(demo: DemoEndpoint) -> None:
    too_big = b'{"input": {"wav_base64": "' + b"A" * MAX_RUN_BODY_BYTES + b'"}}'
    answer = requests.post(
        f"{demo.url}/run",
        data=too_big,
        headers={"Content-Type": "application/json"},
        timeout=30,
    )
    assert answer.status_code == 413
    assert "limit" in answer.json()["error"]

    assert requests.post(f"{demo.url}/run", data=b"{not json", timeout=10).status_code == 400
    assert requests.post(f"{demo.url}/run", json={"nope": 1}, timeout=10).status_code == 400
    bad_policy = {"input": {}, "policy": {"executionTimeout": -5}}
    assert requests.post(f"{demo.url}/run", json=bad_policy, timeout=10).status_code == 400
    assert demo.run_calls == 0
    assert [call.status for call in demo.calls_to("run")] == [413, 400, 400, 400]


# -- the API's edges ---------------------------------------------------------------------------


def test_api_key_is_required_when_set(media: Media) -> None:
    key = "demo-secret-key"
    good = {"Authorization": f"Bearer {key}"}
    with DemoEndpoint(latency_s=0.1, api_key=key) as demo:
        url = demo.url
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": key}):
            assert requests.get(f"{url}/health", headers=headers, timeout=10).status_code == 401
            answer = requests.post(
                f"{url}/run", json={"input": worker_input(media)}, headers=headers, timeout=10
            )
            assert answer.status_code == 401 and key not in answer.text
            assert requests.get(f"{url}/status/x", headers=headers, timeout=10).status_code == 401
        assert demo.run_calls == 0
        assert requests.get(f"{url}/health", headers=good, timeout=10).status_code == 200
        assert requests.get(f"{url}/status/x", headers=good, timeout=10).status_code == 404


def test_a_default_endpoint_accepts_any_key(demo: DemoEndpoint) -> None:
    for headers in ({}, {"Authorization": "Bearer anything"}):
        assert requests.get(f"{demo.url}/health", headers=headers, timeout=10).status_code == 200


def test_unknown_jobs_and_routes_are_404(demo: DemoEndpoint) -> None:
    url = demo.url
    assert requests.get(f"{url}/status/nope", timeout=10).status_code == 404
    assert requests.post(f"{url}/status/nope", timeout=10).status_code == 404
    assert requests.post(f"{url}/cancel/nope", timeout=10).status_code == 404
    assert requests.post(f"{url}/retry/nope", timeout=10).status_code == 404
    assert requests.get(f"{url}/files/nope.mp4", timeout=10).status_code == 404
    assert requests.get(f"{url}/runsync", timeout=10).status_code == 404
    # RunPod's own path form works too: https://api.runpod.ai/v2/{endpoint_id}/health
    assert requests.get(f"{url}/v2/demo/health", timeout=10).status_code == 200


def test_endpoint_listens_on_loopback_only() -> None:
    with pytest.raises(ValueError, match="loopback"):
        DemoEndpoint(host="0.0.0.0")


# -- fault injection ---------------------------------------------------------------------------


def test_run_rate_limited_with_retry_after(demo: DemoEndpoint, media: Media) -> None:
    demo.faults.update(run_429=2)
    body = {"input": worker_input(media, media.quick_b64)}
    answers = [requests.post(f"{demo.url}/run", json=body, timeout=10) for _ in range(3)]
    assert [a.status_code for a in answers] == [429, 429, 200]
    assert answers[0].headers["Retry-After"] == "1"
    assert demo.run_calls == 1
    assert [call.status for call in demo.calls_to("run")] == [429, 429, 200]


def test_status_answers_5xx(demo: DemoEndpoint, media: Media) -> None:
    job_id = submit(demo.url, worker_input(media, media.short_b64))
    demo.faults.update(status_5xx=2, status_5xx_code=500)
    codes = [requests.get(f"{demo.url}/status/{job_id}", timeout=10).status_code for _ in range(3)]
    assert codes == [500, 500, 200]
    demo.faults.update(status_5xx=1, status_5xx_code=503)
    codes = [requests.get(f"{demo.url}/status/{job_id}", timeout=10).status_code for _ in range(2)]
    assert codes == [503, 200]
    assert demo.status_calls == 5


def test_dropped_connections(demo: DemoEndpoint, media: Media) -> None:
    demo.faults.update(drop={"run": 1, "status": 1, "health": 1})
    body = {"input": worker_input(media, media.short_b64)}
    with pytest.raises(requests.ConnectionError):
        requests.post(f"{demo.url}/run", json=body, timeout=10)
    assert demo.run_calls == 0  # a dropped /run created no job
    job_id = submit(demo.url, body["input"])
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{demo.url}/status/{job_id}", timeout=10)
    assert requests.get(f"{demo.url}/status/{job_id}", timeout=10).status_code == 200
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{demo.url}/health", timeout=10)
    assert requests.get(f"{demo.url}/health", timeout=10).status_code == 200
    dropped = [call.route for call in demo.calls if call.status is None]
    assert dropped == ["run", "status", "health"]


def test_injected_outcomes_and_retry(media: Media, tmp_path: Path) -> None:
    faults = DemoFaults(
        outcomes={0: "failed_json", 1: "failed_text", 2: "timed_out", 3: "no_output"}
    )
    with DemoEndpoint(latency_s=0.2, workers=4, faults=faults) as demo:
        ids = [submit(demo.url, worker_input(media, media.quick_b64)) for _ in range(4)]
        failed_json, failed_text, timed_out, no_output = (wait_for(demo.url, i) for i in ids)

        assert failed_json["status"] == "FAILED"
        error = json.loads(failed_json["error"])
        assert "CUDA out of memory" in error["error_message"]
        assert failed_text["status"] == "FAILED"
        with pytest.raises(json.JSONDecodeError):
            json.loads(failed_text["error"])
        assert "worker exited" in failed_text["error"]
        assert timed_out["status"] == "TIMED_OUT" and "output" not in timed_out
        assert no_output["status"] == "COMPLETED" and "output" not in no_output
        assert "executionTime" in no_output

        # /retry re-queues a failed job under the same id; the fault hit its first attempt only.
        answer = requests.post(f"{demo.url}/retry/{ids[0]}", timeout=10)
        assert answer.json() == {"id": ids[0], "status": "IN_QUEUE"}
        retried = wait_for(demo.url, ids[0])
        assert retried["status"] == "COMPLETED" and "error" not in retried
        assert probe(save_video(retried["output"], tmp_path / "retried.mp4")).has_video
        assert requests.post(f"{demo.url}/retry/{ids[2]}", timeout=10).status_code == 200
        assert wait_for(demo.url, ids[2])["status"] == "COMPLETED"
        # Only FAILED or TIMED_OUT jobs can be retried.
        assert requests.post(f"{demo.url}/retry/{ids[3]}", timeout=10).status_code == 400

        jobs = requests.get(f"{demo.url}/health", timeout=10).json()["jobs"]
        assert jobs["retried"] == 2 and jobs["failed"] == 3 and jobs["completed"] == 3
        assert demo.retried_ids == [ids[0], ids[2]]
        assert demo.run_calls == 4


def test_execution_timeout_from_the_policy(demo: DemoEndpoint, media: Media) -> None:
    demo.latency_s = 5.0  # settable while running
    job_id = submit(
        demo.url, worker_input(media, media.quick_b64), policy={"executionTimeout": 300}
    )
    started = time.monotonic()
    final = wait_for(demo.url, job_id)
    assert final["status"] == "TIMED_OUT" and "output" not in final
    assert time.monotonic() - started < 4.5  # not the 5 s latency


def when_gone(url: str, job_id: str, timeout: float = 10) -> float:
    """Poll /status until it answers 404; return that moment (time.monotonic)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        code = requests.get(f"{url}/status/{job_id}", timeout=10).status_code
        if code == 404:
            return time.monotonic()
        assert code == 200
        time.sleep(0.03)
    raise AssertionError(f"job {job_id} never expired")


def test_results_expire_after_the_ttl(media: Media) -> None:
    faults = DemoFaults(outcomes={0: "failed_text", 1: "failed_text"})
    with DemoEndpoint(latency_s=0.05, result_ttl_s=2.5, faults=faults) as demo:
        started = time.monotonic()
        job_id = submit(demo.url, worker_input(media, media.quick_b64))
        # policy.ttl (ms from submission) can end a job's life sooner.
        short_id = submit(demo.url, worker_input(media, media.quick_b64), policy={"ttl": 1000})
        assert wait_for(demo.url, job_id)["status"] == "FAILED"
        assert wait_for(demo.url, short_id)["status"] == "FAILED"

        assert 1.0 <= when_gone(demo.url, short_id) - started < 2.4
        assert when_gone(demo.url, job_id) - started >= 2.5
        assert demo.job_status(job_id) is None
        assert requests.post(f"{demo.url}/cancel/{job_id}", timeout=10).status_code == 404
        assert requests.post(f"{demo.url}/retry/{job_id}", timeout=10).status_code == 404
        assert demo.work_dir is not None and not list(demo.work_dir.iterdir())


def test_result_expired_right_after_completion(media: Media) -> None:
    faults = DemoFaults(expire_on_complete={0})
    with DemoEndpoint(latency_s=0.1, faults=faults) as demo:
        job_id = submit(demo.url, worker_input(media, media.quick_b64))
        seen = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            answer = requests.get(f"{demo.url}/status/{job_id}", timeout=10)
            if answer.status_code == 404:
                break
            seen.append(answer.json()["status"])
            time.sleep(0.03)
        assert answer.status_code == 404
        assert "COMPLETED" not in seen and seen[-1] == "IN_PROGRESS"
        assert demo.work_dir is not None and not list(demo.work_dir.glob("*.mp4"))
        # A new /run of the same chunk (submission 1) is not affected.
        assert (
            wait_for(demo.url, submit(demo.url, worker_input(media, media.quick_b64)))["status"]
            == "COMPLETED"
        )


def test_chunk_videos_longer_or_shorter_than_their_audio(media: Media, tmp_path: Path) -> None:
    with DemoEndpoint(latency_s=0.1) as demo:
        # Render faults are taken at submission: change them between /run calls.
        demo.faults.update(extra_video_s=0.3)
        longer = submit(demo.url, worker_input(media))
        demo.faults.update(extra_video_s=-0.3)
        shorter = submit(demo.url, worker_input(media))
        long_video = save_video(wait_for(demo.url, longer)["output"], tmp_path / "long.mp4")
        short_video = save_video(wait_for(demo.url, shorter)["output"], tmp_path / "short.mp4")
    assert abs(len(decode_frames(long_video)) - math.ceil(4.8 * 25)) <= 1
    assert abs(len(decode_frames(short_video)) - math.ceil(4.2 * 25)) <= 1
    for video in (long_video, short_video):
        assert audio_seconds(video) == pytest.approx(4.5, abs=0.05)


def test_tinted_chunks_are_solid_distinct_colours(media: Media, tmp_path: Path) -> None:
    with DemoEndpoint(latency_s=0.1, faults=DemoFaults(tint_chunks=True)) as demo:
        ids = [submit(demo.url, worker_input(media, media.quick_b64)) for _ in range(3)]
        finals = [wait_for(demo.url, job_id) for job_id in ids]
    colours = []
    for n, final in enumerate(finals):
        video = save_video(final["output"], tmp_path / f"tint{n}.mp4")
        assert probe(video).has_audio
        frames = decode_frames(video).astype(np.float32)
        middle = frames[len(frames) // 2]
        assert middle.std(axis=(0, 1)).max() < 3  # one solid colour
        assert np.abs(frames.mean(axis=(1, 2)) - middle.mean(axis=(0, 1))).max() < 3
        colour = middle.mean(axis=(0, 1))
        assert np.abs(colour - np.array(TINT_COLOURS[n])).max() < 25
        colours.append(colour)
    for a in range(3):
        for b in range(a + 1, 3):
            assert np.linalg.norm(colours[a] - colours[b]) > 150


def test_output_key_variants(media: Media) -> None:
    key = "k"
    auth = {"Authorization": f"Bearer {key}"}
    with DemoEndpoint(latency_s=0.1, api_key=key) as demo:
        ids = {}
        for output_key in ("video_base64", "data_uri", "video_url"):
            demo.faults.update(output_key=output_key)
            answer = requests.post(
                f"{demo.url}/run",
                json={"input": worker_input(media, media.quick_b64)},
                headers=auth,
                timeout=10,
            )
            ids[output_key] = answer.json()["id"]
        outputs = {}
        for output_key, job_id in ids.items():
            while True:
                status = requests.get(f"{demo.url}/status/{job_id}", headers=auth, timeout=10)
                if status.json()["status"] == "COMPLETED":
                    outputs[output_key] = status.json()["output"]
                    break
                time.sleep(0.05)

        assert set(outputs["video_base64"]) == {"video_base64"}
        plain = base64.b64decode(outputs["video_base64"]["video_base64"], validate=True)
        assert set(outputs["data_uri"]) == {"video_base64"}
        prefix, _, data = outputs["data_uri"]["video_base64"].partition(",")
        assert prefix == "data:video/mp4;base64"
        prefixed = base64.b64decode(data, validate=True)
        url = outputs["video_url"]["video_url"]
        assert url == f"{demo.url}/files/{ids['video_url']}.mp4"
        download = requests.get(url, timeout=10)  # like a presigned URL: no key needed
        assert download.status_code == 200
        assert download.headers["Content-Type"] == "video/mp4"
        for video in (plain, prefixed, download.content):
            assert video[4:8] == b"ftyp"


# -- cancel and stop ---------------------------------------------------------------------------


def test_cancel_mid_render_and_in_queue(media: Media) -> None:
    with DemoEndpoint(latency_s=30, workers=1) as demo:
        work = demo.work_dir
        assert work is not None
        # 60 s at 1024x1024 renders for many seconds: cancel it while ffmpeg is at work.
        rendering = submit(demo.url, worker_input(media, media.long_b64, size=1024))
        waiting = submit(demo.url, worker_input(media, media.quick_b64))
        deadline = time.monotonic() + 20
        while not list(work.glob("*.part.mp4")) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert list(work.glob("*.part.mp4")), "the render never started"
        assert demo.job_status(rendering) == "IN_PROGRESS"
        assert demo.job_status(waiting) == "IN_QUEUE"

        cancelled = requests.post(f"{demo.url}/cancel/{waiting}", timeout=10)
        assert cancelled.json() == {"id": waiting, "status": "CANCELLED"}
        started = time.monotonic()
        cancelled = requests.post(f"{demo.url}/cancel/{rendering}", timeout=10)
        assert cancelled.json() == {"id": rendering, "status": "CANCELLED"}
        # The render returns (and removes its partial file) only once its ffmpeg has exited.
        while list(work.glob("*.part.mp4")) and time.monotonic() - started < 5:
            time.sleep(0.05)
        assert not list(work.glob("*.part.mp4"))
        assert not ffmpeg_pids_using(work)
        while requests.get(f"{demo.url}/health", timeout=10).json()["workers"]["running"]:
            assert time.monotonic() - started < 5
            time.sleep(0.05)

        # The queued job never ran; both stay CANCELLED, and a second cancel changes nothing.
        assert wait_for(demo.url, waiting)["status"] == "CANCELLED"
        assert "workerId" not in wait_for(demo.url, waiting)
        assert wait_for(demo.url, rendering)["status"] == "CANCELLED"
        again = requests.post(f"{demo.url}/cancel/{rendering}", timeout=10)
        assert again.json()["status"] == "CANCELLED"
        assert demo.cancelled_ids == [waiting, rendering, rendering]
        assert not list(work.glob("*.mp4"))
        assert requests.post(f"{demo.url}/retry/{rendering}", timeout=10).status_code == 400


def test_stop_is_quick_mid_render(media: Media, tmp_path: Path) -> None:
    demo = DemoEndpoint(latency_s=30, work_dir=tmp_path)
    demo.start()
    url, work = demo.url, demo.work_dir
    assert work is not None
    with requests.Session() as session:  # an idle keep-alive connection must not hold stop()
        job_id = session.post(
            f"{url}/run", json={"input": worker_input(media, media.long_b64, size=512)}, timeout=10
        ).json()["id"]
        wait_for(url, job_id, until={"IN_PROGRESS"})
        session.get(f"{url}/health", timeout=10)

        started = time.monotonic()
        demo.stop()
        assert time.monotonic() - started < 3
    assert not work.exists()
    assert not ffmpeg_pids_using(work)
    assert not [t for t in threading.enumerate() if t.name.startswith("demo-endpoint")]
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{url}/health", timeout=2)
    with pytest.raises(RuntimeError):
        _ = demo.url
    demo.stop()  # a second stop is harmless


def test_serve_forever_until_stopped() -> None:
    urls: list[str] = []
    stop = threading.Event()
    thread = threading.Thread(
        target=serve_forever,
        kwargs={"port": 0, "latency": 0.1, "on_ready": urls.append, "stop": stop},
    )
    thread.start()
    try:
        deadline = time.monotonic() + 5
        while not urls and time.monotonic() < deadline:
            time.sleep(0.01)
        assert urls and urls[0].startswith("http://127.0.0.1:")
        health = requests.get(f"{urls[0]}/health", timeout=10).json()
        assert health["workers"]["idle"] == 3
    finally:
        stop.set()
        thread.join(timeout=5)
    assert not thread.is_alive()


def test_faults_update_rejects_unknown_fields() -> None:
    faults = DemoFaults()
    with pytest.raises(AttributeError):
        faults.update(run_492=1)
    faults.update(run_429=1)
    assert faults.take("run_429") and not faults.take("run_429")


def test_a_taken_port_raises_and_leaves_nothing(tmp_path: Path) -> None:
    work = tmp_path / "work"
    with DemoEndpoint(work_dir=work) as first:
        assert first.work_dir is not None
        second = DemoEndpoint(port=first.port, work_dir=work)
        with pytest.raises(OSError):
            second.start()
        assert [p.name for p in work.iterdir()] == [first.work_dir.name]


def test_the_app_runs_the_demo_endpoint_in_a_nicer_process_of_its_own() -> None:
    import os

    from infinitetalk_gui.core.runpod import RunPodClient, check_endpoint

    endpoint = DemoEndpointProcess(latency_s=0.1).start()
    try:
        pid = endpoint.pid
        assert pid is not None and pid != os.getpid()
        if hasattr(os, "getpriority"):
            mine = os.getpriority(os.PRIO_PROCESS, 0)
            assert os.getpriority(os.PRIO_PROCESS, pid) == min(19, mine + CHILD_NICENESS)
        url = endpoint.url
        result = check_endpoint(RunPodClient(url, None))
        assert result.ok and result.warm_workers == 3, result.message
    finally:
        endpoint.stop()
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{url}/health", timeout=2)
    with pytest.raises(RuntimeError):
        _ = endpoint.url


def test_the_demo_endpoint_process_ends_with_the_app() -> None:
    # The app killed: the child's end of the pipe closes, and it stops on its own.
    script = (
        "import sys\n"
        "from infinitetalk_gui.core.demo_endpoint import DemoEndpointProcess\n"
        "endpoint = DemoEndpointProcess(latency_s=0.1).start()\n"
        "print(endpoint.pid, flush=True)\n"
        "sys.stdin.read()\n"
    )
    with subprocess.Popen(
        [sys.executable, "-c", script],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    ) as app:
        assert app.stdout is not None
        child = int(app.stdout.readline())
        app.kill()
        app.wait(10)
    deadline = time.monotonic() + 20
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(child)


def _alive(pid: int) -> bool:
    import os

    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by init) counts as gone.
    status = Path(f"/proc/{pid}/status")
    return not (status.exists() and "State:\tZ" in status.read_text())
