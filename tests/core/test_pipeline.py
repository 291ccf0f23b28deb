"""The whole pipeline against the local RunPod stand-in: durations, seams, faults, resume."""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from infinitetalk_gui.core import media
from infinitetalk_gui.core.cancel import CancelToken
from infinitetalk_gui.core.demo_endpoint import DemoEndpoint, DemoFaults
from infinitetalk_gui.core.errors import InputError
from infinitetalk_gui.core.models import JobState, RenderSettings
from infinitetalk_gui.core.pipeline import (
    JobEvent,
    create_job,
    estimate,
    run_job,
)
from infinitetalk_gui.core.store import JobStore
from tests import mediagen

FRAME_S = 0.040


@pytest.fixture
def demo() -> Iterator[DemoEndpoint]:
    endpoint = DemoEndpoint(latency_s=0.05, faults=DemoFaults())
    endpoint.start()
    yield endpoint
    endpoint.stop()


def settings_for(demo: DemoEndpoint, **changes: object) -> RenderSettings:
    base = RenderSettings(endpoint_url=demo.url, width=256, height=256, demo=True)
    for key, value in changes.items():
        setattr(base, key, value)
    return base


def render(
    tmp_path: Path,
    store: JobStore,
    portrait: Path,
    audio: Path,
    settings: RenderSettings,
    *,
    api_key: str | None = None,
    events: list[JobEvent] | None = None,
    cancel: CancelToken | None = None,
) -> tuple[str, Path]:
    output = tmp_path / "out" / f"{audio.stem}.mp4"
    output.parent.mkdir(exist_ok=True)
    job = create_job(portrait, audio, output, settings, store=store)
    final = run_job(
        job.id,
        store=store,
        api_key=api_key,
        listener=None if events is None else events.append,
        cancel=cancel,
    )
    return final.id, output


def assert_duration_matches(output: Path, seconds: float) -> None:
    video_s, audio_s = media.media_duration(output)
    assert abs(video_s - seconds) <= FRAME_S + 1e-6, (video_s, seconds)
    assert abs(audio_s - seconds) <= FRAME_S + 1e-6, (audio_s, seconds)


@pytest.mark.parametrize(
    ("name", "segments", "chunk_seconds"),
    [
        ("2s", [("voice", 2.0)], 45.0),
        ("50s-pauses", mediagen.alternating(50.0), 45.0),
        ("50s-no-pause", [("voice", 50.0)], 45.0),
        ("3min-pauses", mediagen.alternating(180.0), 45.0),
        ("3min-no-pause", [("voice", 180.0)], 45.0),
    ],
)
def test_output_is_exactly_as_long_as_the_audio(
    tmp_path: Path,
    demo: DemoEndpoint,
    store: JobStore,
    portrait: Path,
    name: str,
    segments: list[tuple[str, float]],
    chunk_seconds: float,
) -> None:
    audio = mediagen.speechlike_wav(tmp_path / f"{name}.wav", segments)
    total = sum(seconds for _, seconds in segments)
    job_id, output = render(
        tmp_path, store, portrait, audio, settings_for(demo, chunk_seconds=chunk_seconds)
    )
    job = store.get(job_id)
    assert job.state is JobState.COMPLETED, job.error
    assert_duration_matches(output, total)
    assert all(c.state is JobState.COMPLETED and c.attempt == 1 for c in job.chunks)
    assert job.chunks[0].start_ms == 0 and job.chunks[-1].end_ms == job.audio_duration_ms
    # The work folder in the cache is gone once the job has ended.
    assert not list((tmp_path / "home" / "cache").rglob("chunk_*"))


@pytest.mark.slow
@pytest.mark.parametrize("pauses", [True, False], ids=["pauses", "no-pause"])
def test_ten_minutes(
    tmp_path: Path, demo: DemoEndpoint, store: JobStore, portrait: Path, pauses: bool
) -> None:
    segments = mediagen.alternating(600.0, 9.0, 0.7) if pauses else [("voice", 600.0)]
    audio = mediagen.speechlike_wav(tmp_path / "long.wav", segments)
    job_id, output = render(tmp_path, store, portrait, audio, settings_for(demo))
    job = store.get(job_id)
    assert job.state is JobState.COMPLETED, job.error
    assert len(job.chunks) >= 11
    assert_duration_matches(output, 600.0)


def _frame_colours(video: Path) -> np.ndarray:
    """Mean RGB of each frame (decoded small with the bundled ffmpeg)."""
    raw = subprocess.run(
        [
            mediagen.FFMPEG,
            "-v",
            "error",
            "-i",
            str(video),
            "-vf",
            "scale=16:16",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "rgb24",
            "-",
        ],
        check=True,
        capture_output=True,
    ).stdout
    frames = np.frombuffer(raw, np.uint8).reshape(-1, 16 * 16, 3)
    return frames.mean(axis=1)


def test_every_seam_stays_in_sync_when_chunk_videos_come_back_too_long(
    tmp_path: Path, demo: DemoEndpoint, store: JobStore, portrait: Path
) -> None:
    # Each chunk video is 0.3 s longer than its audio and painted its own colour: a naive
    # concat would push every later seam 0.3 s further off.
    demo.faults.update(extra_video_s=0.3, tint_chunks=True)
    audio = mediagen.speechlike_wav(tmp_path / "seams.wav", mediagen.alternating(42.0, 6.0, 0.8))
    job_id, output = render(
        tmp_path, store, portrait, audio, settings_for(demo, chunk_seconds=10.0)
    )
    job = store.get(job_id)
    assert job.state is JobState.COMPLETED, job.error
    assert len(job.chunks) >= 3
    colours = _frame_colours(output)
    jumps = np.linalg.norm(np.diff(colours, axis=0), axis=1)
    found = sorted(int(i) + 1 for i in np.flatnonzero(jumps > 40))
    expected = [c.start_ms // 40 for c in job.chunks[1:]]
    assert len(found) == len(expected), (found, expected)
    for seen, want in zip(found, expected, strict=True):
        assert abs(seen - want) <= 1, (found, expected)
    assert_duration_matches(output, 42.0)


def test_transport_faults_are_retried_without_using_chunk_attempts(
    tmp_path: Path, demo: DemoEndpoint, store: JobStore, portrait: Path
) -> None:
    demo.faults.update(run_429=2, status_5xx=3, drop={"status": 2})
    audio = mediagen.speechlike_wav(tmp_path / "a.wav", mediagen.alternating(24.0))
    job_id, output = render(
        tmp_path, store, portrait, audio, settings_for(demo, chunk_seconds=10.0)
    )
    job = store.get(job_id)
    assert job.state is JobState.COMPLETED, job.error
    assert [c.attempt for c in job.chunks] == [1] * len(job.chunks)
    assert output.is_file()


@pytest.mark.parametrize("outcome", ["failed_json", "failed_text", "timed_out", "no_output"])
def test_a_failed_chunk_is_retried_alone(
    tmp_path: Path, demo: DemoEndpoint, store: JobStore, portrait: Path, outcome: str
) -> None:
    demo.faults.update(outcomes={1: outcome})
    audio = mediagen.speechlike_wav(tmp_path / "a.wav", mediagen.alternating(24.0))
    job_id, output = render(
        tmp_path, store, portrait, audio, settings_for(demo, chunk_seconds=10.0)
    )
    job = store.get(job_id)
    assert job.state is JobState.COMPLETED, job.error
    attempts = sorted(c.attempt for c in job.chunks)
    assert attempts == [1] * (len(job.chunks) - 1) + [2]
    assert demo.run_calls == len(job.chunks) + 1
    assert_duration_matches(output, 24.0)


def test_an_expired_result_is_resubmitted(
    tmp_path: Path, demo: DemoEndpoint, store: JobStore, portrait: Path
) -> None:
    demo.faults.update(expire_on_complete={0})
    audio = mediagen.speechlike_wav(tmp_path / "a.wav", [("voice", 5.0)])
    job_id, _ = render(tmp_path, store, portrait, audio, settings_for(demo))
    job = store.get(job_id)
    assert job.state is JobState.COMPLETED, job.error
    assert job.chunks[0].attempt == 2
    assert demo.run_calls == 2


def test_a_chunk_failing_every_attempt_fails_the_job_with_the_workers_message_then_resumes(
    tmp_path: Path, demo: DemoEndpoint, store: JobStore, portrait: Path
) -> None:
    audio = mediagen.speechlike_wav(tmp_path / "a.wav", mediagen.alternating(24.0))
    # Chunks are submitted in order with one slot: chunk 0 is /run 0; chunk 1 is /run 1 and 2.
    demo.faults.update(outcomes={1: "failed_json", 2: "failed_json"})
    settings = settings_for(demo, chunk_seconds=10.0, attempts=2, concurrency=1)
    job_id, output = render(tmp_path, store, portrait, audio, settings)
    job = store.get(job_id)
    assert job.state is JobState.FAILED
    assert job.error is not None and "Chunk 2 failed after 2 attempts" in job.error
    assert "Traceback" not in job.error
    assert job.chunks[0].state is JobState.COMPLETED
    assert not output.exists()
    assert [p.name for p in output.parent.iterdir()] == []
    runs_before = demo.run_calls

    final = run_job(job_id, store=store, api_key=None)
    assert final.state is JobState.COMPLETED, final.error
    # Only what was missing was rendered again: chunk 0 was kept.
    assert demo.run_calls - runs_before == len(job.chunks) - 1
    assert_duration_matches(output, 24.0)


def test_a_rejected_key_stops_the_job_plainly(
    tmp_path: Path, store: JobStore, portrait: Path
) -> None:
    with DemoEndpoint(latency_s=0.05, api_key="the-right-key") as endpoint:
        audio = mediagen.speechlike_wav(tmp_path / "a.wav", [("voice", 4.0)])
        job_id, output = render(
            tmp_path, store, portrait, audio, settings_for(endpoint), api_key="sk-wrong-key-123"
        )
        job = store.get(job_id)
        assert job.state is JobState.FAILED
        assert job.error is not None and "rejected" in job.error
        assert "sk-wrong-key-123" not in job.error
        assert endpoint.run_calls == 0
        assert not output.exists()


def test_cancel_mid_job_cancels_remote_chunks_and_writes_nothing(
    tmp_path: Path, store: JobStore, portrait: Path
) -> None:
    with DemoEndpoint(latency_s=3.0) as endpoint:
        audio = mediagen.speechlike_wav(tmp_path / "a.wav", mediagen.alternating(30.0))
        token = CancelToken()
        events: list[JobEvent] = []

        def cancel_when_rendering(event: JobEvent) -> None:
            events.append(event)
            if event.chunk is not None and event.chunk.runpod_id:
                token.cancel()

        output = tmp_path / "out" / "cancelled.mp4"
        output.parent.mkdir()
        job = create_job(
            portrait, audio, output, settings_for(endpoint, chunk_seconds=10.0), store=store
        )
        started = time.monotonic()
        final = run_job(
            job.id, store=store, api_key=None, listener=cancel_when_rendering, cancel=token
        )
        assert time.monotonic() - started < 10
        assert final.state is JobState.CANCELLED
        assert endpoint.cancelled_ids, "the endpoint saw no /cancel"
        assert list(output.parent.iterdir()) == []
        assert store.get(job.id).state is JobState.CANCELLED


def test_the_job_time_limit_ends_it_timed_out(
    tmp_path: Path, store: JobStore, portrait: Path
) -> None:
    with DemoEndpoint(latency_s=5.0) as endpoint:
        audio = mediagen.speechlike_wav(tmp_path / "a.wav", [("voice", 4.0)])
        job_id, output = render(
            tmp_path, store, portrait, audio, settings_for(endpoint, timeout_s=1.0)
        )
        job = store.get(job_id)
        assert job.state is JobState.TIMED_OUT
        assert job.error is not None and "time limit" in job.error
        assert endpoint.cancelled_ids
        assert not output.exists()


def test_events_report_every_state_change_in_order(
    tmp_path: Path, demo: DemoEndpoint, store: JobStore, portrait: Path
) -> None:
    audio = mediagen.speechlike_wav(tmp_path / "a.wav", mediagen.alternating(24.0))
    events: list[JobEvent] = []
    job_id, _ = render(
        tmp_path, store, portrait, audio, settings_for(demo, chunk_seconds=10.0), events=events
    )
    stages = [e.job.stage for e in events if e.kind == "job"]
    assert stages[0] == "preparing" and stages[-1] == "done"
    assert stages.index("splitting") < stages.index("rendering") < stages.index("joining")
    for index in range(len(store.get(job_id).chunks)):
        states = [e.chunk.state for e in events if e.chunk and e.chunk.index == index]
        assert states[-1] is JobState.COMPLETED
    payload = events[-1].to_json()
    assert payload["state"] == "COMPLETED" and payload["output"].endswith("a.mp4")


def test_the_first_chunk_is_submitted_before_the_audio_is_fully_split(
    tmp_path: Path, demo: DemoEndpoint, store: JobStore, portrait: Path
) -> None:
    audio = mediagen.speechlike_wav(tmp_path / "a.wav", mediagen.alternating(240.0))
    events: list[JobEvent] = []
    render(tmp_path, store, portrait, audio, settings_for(demo), events=events)
    first_submit = next(i for i, e in enumerate(events) if e.chunk and e.chunk.runpod_id)
    split_done = next(
        i for i, e in enumerate(events) if e.kind == "job" and e.job.audio_duration_ms
    )
    assert first_submit < split_done


def test_bad_inputs_are_refused_before_anything_is_stored(
    tmp_path: Path, demo: DemoEndpoint, store: JobStore, portrait: Path
) -> None:
    audio = mediagen.speechlike_wav(tmp_path / "a.wav", [("voice", 4.0)])
    text = tmp_path / "notes.mp3"
    text.write_text("not audio at all")
    with pytest.raises(InputError, match=r"notes\.mp3"):
        create_job(portrait, text, tmp_path / "o.mp4", settings_for(demo), store=store)
    existing = tmp_path / "exists.mp4"
    existing.write_bytes(b"keep me")
    with pytest.raises(InputError, match="already exists"):
        create_job(portrait, audio, existing, settings_for(demo), store=store)
    assert existing.read_bytes() == b"keep me"
    with pytest.raises(InputError, match="does not exist"):
        create_job(portrait, audio, tmp_path / "nowhere" / "o.mp4", settings_for(demo), store=store)
    assert store.list() == []
    assert demo.run_calls == 0


def test_estimate_counts_chunks_and_cost() -> None:
    settings = RenderSettings(endpoint_url="http://x", gpu_price_per_second=0.001)
    assert estimate(20_000, settings).chunks == 1
    assert estimate(58_000, settings).chunks == 1
    long = estimate(600_000, settings)
    assert long.chunks == 13
    assert long.cost_usd == pytest.approx(long.gpu_seconds * 0.001)


def test_two_drivers_never_run_the_same_job(
    tmp_path: Path, demo: DemoEndpoint, store: JobStore, portrait: Path
) -> None:
    from infinitetalk_gui.core.errors import JobLocked

    demo.latency_s = 1.0
    audio = mediagen.speechlike_wav(tmp_path / "a.wav", [("voice", 5.0)])
    output = tmp_path / "o.mp4"
    job = create_job(portrait, audio, output, settings_for(demo), store=store)
    thread = threading.Thread(
        target=run_job, args=(job.id,), kwargs={"store": store, "api_key": None}
    )
    thread.start()
    time.sleep(0.3)
    with pytest.raises(JobLocked):
        run_job(job.id, store=store, api_key=None)
    thread.join(timeout=30)
    assert store.get(job.id).state is JobState.COMPLETED


def test_detach_leaves_the_job_resumable_without_cancelling_remote_chunks(
    tmp_path: Path, store: JobStore, portrait: Path
) -> None:
    with DemoEndpoint(latency_s=2.0) as endpoint:
        audio = mediagen.speechlike_wav(tmp_path / "a.wav", mediagen.alternating(24.0))
        detach = CancelToken()

        def detach_when_submitted(event: JobEvent) -> None:
            if event.chunk is not None and event.chunk.runpod_id:
                detach.cancel()

        output = tmp_path / "o.mp4"
        job = create_job(
            portrait, audio, output, settings_for(endpoint, chunk_seconds=10.0), store=store
        )
        paused = run_job(
            job.id, store=store, api_key=None, listener=detach_when_submitted, detach=detach
        )
        assert not paused.state.terminal and paused.stage == "interrupted"
        assert endpoint.cancelled_ids == []
        assert store.lease_holder(job.id) is None
        assert store.interrupted()[0].id == job.id

        final = run_job(job.id, store=store, api_key=None)
        assert final.state is JobState.COMPLETED, final.error
        # The chunk in flight was re-attached by its id, not submitted again.
        assert endpoint.run_calls == len(final.chunks)
        assert_duration_matches(output, 24.0)
