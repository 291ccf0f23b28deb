"""The pipeline when things go wrong around it: gone inputs, stalled endpoints, lost leases."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from infinitetalk_gui.core import pipeline, runpod
from infinitetalk_gui.core.cancel import CancelToken
from infinitetalk_gui.core.demo_endpoint import DemoEndpoint
from infinitetalk_gui.core.errors import InputError
from infinitetalk_gui.core.models import JobState, RenderSettings
from infinitetalk_gui.core.pipeline import cancel_remote, create_job, run_job
from infinitetalk_gui.core.store import JobStore
from tests import mediagen
from tests.fake_runpod import FakeRunPod, Fault


def settings(url: str, **changes: Any) -> RenderSettings:
    base = RenderSettings(endpoint_url=url, width=256, height=256)
    for key, value in changes.items():
        setattr(base, key, value)
    return base


def test_resume_with_a_missing_input_is_refused_and_leaves_the_job_alone(
    tmp_path: Path, store: JobStore, portrait: Path
) -> None:
    audio = mediagen.speechlike_wav(tmp_path / "a.wav", [("voice", 4.0)])
    with DemoEndpoint(latency_s=5.0) as demo:
        job = create_job(
            portrait, audio, tmp_path / "o.mp4", settings(demo.url, timeout_s=0.5), store=store
        )
        assert run_job(job.id, store=store, api_key=None).state is JobState.TIMED_OUT
        portrait.unlink()
        with pytest.raises(InputError, match=r"face\.png is gone"):
            run_job(job.id, store=store, api_key=None)
    assert store.get(job.id).state is JobState.TIMED_OUT


def test_resume_refuses_to_replace_an_output_that_appeared_meanwhile(
    tmp_path: Path, store: JobStore, portrait: Path
) -> None:
    audio = mediagen.speechlike_wav(tmp_path / "a.wav", [("voice", 4.0)])
    output = tmp_path / "o.mp4"
    with DemoEndpoint(latency_s=0.05) as demo:
        job = create_job(portrait, audio, output, settings(demo.url), store=store)
        cancel_remote(job.id, store=store, api_key=None)
        output.write_bytes(b"someone else's video")
        with pytest.raises(InputError, match="Move or delete it"):
            run_job(job.id, store=store, api_key=None)
        assert demo.run_calls == 0
    assert output.read_bytes() == b"someone else's video"
    assert store.get(job.id).state is JobState.CANCELLED


def test_a_stalled_status_call_does_not_hold_up_a_cancel(
    tmp_path: Path, store: JobStore, portrait: Path
) -> None:
    audio = mediagen.speechlike_wav(tmp_path / "a.wav", [("voice", 4.0)])
    with FakeRunPod(run_s=30) as fake:
        fake.inject("status", Fault(kind="delay", delay_s=60))
        job = create_job(portrait, audio, tmp_path / "o.mp4", settings(fake.url), store=store)
        token = CancelToken()
        threading.Timer(1.5, token.cancel).start()
        started = time.monotonic()
        final = run_job(job.id, store=store, api_key="test-key", cancel=token)
        assert time.monotonic() - started < 1.5 + pipeline.WORKER_GRACE_S + 3
    assert final.state is JobState.CANCELLED
    assert not (tmp_path / "o.mp4").exists()


def test_a_failing_split_stops_the_chunk_workers_at_once(
    tmp_path: Path, store: JobStore, portrait: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    audio = mediagen.speechlike_wav(tmp_path / "a.wav", mediagen.alternating(70.0))
    real_write = pipeline.audio.write_chunk_wav
    calls = {"n": 0}

    def failing_write(*args: Any, **kwargs: Any) -> Path:
        calls["n"] += 1
        if calls["n"] == 3:
            raise InputError("the disk is full (injected)")
        return real_write(*args, **kwargs)

    monkeypatch.setattr(pipeline.audio, "write_chunk_wav", failing_write)
    with DemoEndpoint(latency_s=3.0) as demo:
        job = create_job(
            portrait, audio, tmp_path / "o.mp4", settings(demo.url, chunk_seconds=10.0), store=store
        )
        started = time.monotonic()
        final = run_job(job.id, store=store, api_key=None)
        assert time.monotonic() - started < 10
        assert final.state is JobState.FAILED
        assert final.error is not None and "disk is full" in final.error
        assert demo.run_calls <= 2
        assert len(demo.cancelled_ids) == demo.run_calls


def test_a_cancel_the_endpoint_refuses_keeps_the_chunk_for_a_resume(
    tmp_path: Path, store: JobStore, portrait: Path
) -> None:
    audio = mediagen.speechlike_wav(tmp_path / "a.wav", [("voice", 4.0)])
    with DemoEndpoint(latency_s=30.0, api_key="sk-right") as demo:
        job = create_job(portrait, audio, tmp_path / "o.mp4", settings(demo.url), store=store)
        # A driver died after submitting the chunk: the store holds its RunPod id.
        with runpod.RunPodClient(demo.url, "sk-right") as client:
            worker_input = runpod.build_worker_input(
                "aW1n", "d2F2", prompt="p", width=256, height=256
            )
            remote_id = client.submit(worker_input)
        job = store.get(job.id)
        job.chunks = [
            pipeline.Chunk(index=0, start_ms=0, end_ms=4000, attempt=1, runpod_id=remote_id)
        ]
        store.save_chunks(job.id, job.chunks)

        final = cancel_remote(job.id, store=store, api_key="sk-wrong")
        assert final.state is JobState.CANCELLED
        assert final.error is not None and "did not confirm" in final.error
        chunk = store.get(job.id).chunks[0]
        assert chunk.runpod_id == remote_id and not chunk.state.terminal
        assert demo.job_status(remote_id) not in ("CANCELLED", None)


def test_a_driver_that_lost_its_lease_leaves_the_new_driver_alone(
    tmp_path: Path, portrait: Path
) -> None:
    audio = mediagen.speechlike_wav(tmp_path / "a.wav", mediagen.alternating(40.0))
    first = JobStore(heartbeat_s=0.2, stale_after_s=1.0)
    second = JobStore(heartbeat_s=0.2, stale_after_s=1.0)
    stalled = threading.Event()
    real_renew = first._renew_lease  # type: ignore[attr-defined]
    first._renew_lease = lambda *a: True if stalled.is_set() else real_renew(*a)  # type: ignore[attr-defined]
    results: dict[str, Any] = {}
    try:
        with DemoEndpoint(latency_s=3.0) as demo:
            job = create_job(
                portrait,
                audio,
                tmp_path / "o.mp4",
                settings(demo.url, chunk_seconds=10.0, demo=True),
                store=first,
            )

            def drive(name: str, job_store: JobStore) -> None:
                try:
                    results[name] = run_job(job.id, store=job_store, api_key=None)
                except Exception as error:  # recorded for the assertion below
                    results[name] = error

            a = threading.Thread(target=drive, args=("first", first))
            a.start()
            time.sleep(1.5)
            stalled.set()  # the first driver freezes (a laptop lid closed)
            time.sleep(1.5)
            b = threading.Thread(target=drive, args=("second", second))
            b.start()
            time.sleep(0.5)
            stalled.clear()  # ...and wakes up to find the job taken over
            a.join(60)
            b.join(90)
            assert demo.cancelled_ids == []
        assert getattr(results["second"], "state", results["second"]) is JobState.COMPLETED
        assert not getattr(results["first"], "state", JobState.COMPLETED).terminal
        assert second.get(job.id).state is JobState.COMPLETED
    finally:
        first.close()
        second.close()
