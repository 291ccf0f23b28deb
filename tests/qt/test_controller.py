"""The render controller, driven like the window drives it, against the demo endpoint."""

from __future__ import annotations

import itertools
import re
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from infinitetalk_gui.core import audio
from infinitetalk_gui.core.demo_endpoint import DemoEndpoint, DemoFaults
from infinitetalk_gui.core.models import Chunk, Job, JobState, RenderSettings
from infinitetalk_gui.core.pipeline import JobEvent
from infinitetalk_gui.core.store import JobStore
from infinitetalk_gui.qt.compat import QtGui
from infinitetalk_gui.qt.controller import AudioPreview, ImagePreview, RenderController
from tests import mediagen

LONG = 120_000  # ms: a generous ceiling for a render on a loaded two-core machine


@pytest.fixture
def store(tmp_path: Path) -> Iterator[JobStore]:
    with JobStore(tmp_path / "jobs.sqlite3") as job_store:
        yield job_store


@pytest.fixture
def make_controller(store: JobStore) -> Iterator[Callable[..., RenderController]]:
    made: list[RenderController] = []

    def make(**kwargs: Any) -> RenderController:
        controller = RenderController(store, **kwargs)
        made.append(controller)
        return controller

    yield make
    for controller in made:
        assert controller.shutdown(cancel_running=True, timeout_ms=60_000)
        assert controller.pool.activeThreadCount() == 0


@pytest.fixture
def media(tmp_path: Path) -> dict[str, Path]:
    folder = tmp_path / "media"
    folder.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    return {
        "image": mediagen.portrait(folder / "face.png", 240, 320),
        "short": mediagen.speechlike_wav(folder / "short.wav", mediagen.alternating(6.0)),
        "long": mediagen.speechlike_wav(folder / "long.wav", mediagen.alternating(26.0)),
        "text_mp3": _text_file(folder / "notes.mp3"),
        "text_png": _text_file(folder / "notes.png"),
        "out": out / "talk.mp4",
    }


def _text_file(path: Path) -> Path:
    path.write_text("this is not media\n" * 20, encoding="utf-8")
    return path


def settings(**changes: Any) -> RenderSettings:
    base: dict[str, Any] = {
        "endpoint_url": "",
        "width": 256,
        "height": 256,
        "concurrency": 2,
        "chunk_seconds": 10.0,
        "attempts": 2,
    }
    base.update(changes)
    return RenderSettings(**base)


# -- previews -------------------------------------------------------------------------------


def test_analyse_audio_valid_and_invalid(
    make_controller: Callable[..., RenderController], media: dict[str, Path], qtbot: Any
) -> None:
    controller = make_controller()
    params = audio.SplitParams(chunk_seconds=45)
    with qtbot.waitSignal(controller.audioAnalysed, timeout=LONG) as blocker:
        controller.analyse_audio(media["long"], params)
    path, preview = blocker.args
    assert path == str(media["long"])
    assert isinstance(preview, AudioPreview)
    assert abs(preview.duration_ms - 26_000) <= 40
    assert preview.cuts == [(0, preview.duration_ms)]  # 26 s is one 45 s chunk
    assert len(preview.envelope) == 2000 and 0 < float(preview.envelope.max()) <= 1
    assert preview.silences  # the pauses every 6 s were found

    # Shorter chunks: only a re-plan; contiguous cuts covering the whole audio.
    with qtbot.waitSignal(controller.audioAnalysed, timeout=LONG) as blocker:
        controller.replan_cuts(audio.SplitParams(chunk_seconds=10))
    cuts = blocker.args[1].cuts
    assert len(cuts) >= 2
    assert cuts[0][0] == 0 and cuts[-1][1] == preview.duration_ms
    assert all(a[1] == b[0] for a, b in itertools.pairwise(cuts))

    with qtbot.waitSignal(controller.audioRejected, timeout=LONG) as blocker:
        controller.analyse_audio(media["text_mp3"], params)
    path, message = blocker.args
    assert path == str(media["text_mp3"])
    assert "notes.mp3" in message and "Traceback" not in message


def test_newest_audio_request_wins(
    make_controller: Callable[..., RenderController], media: dict[str, Path], qtbot: Any
) -> None:
    controller = make_controller()
    seen: list[str] = []
    controller.audioAnalysed.connect(lambda path, _preview: seen.append(path))
    controller.audioRejected.connect(lambda path, _message: seen.append(path))
    params = audio.SplitParams()
    controller.analyse_audio(media["text_mp3"], params)
    with qtbot.waitSignal(controller.audioAnalysed, timeout=LONG):
        controller.analyse_audio(media["short"], params)
    qtbot.waitUntil(lambda: controller.pool.activeThreadCount() == 0, timeout=LONG)
    qtbot.wait(50)  # anything queued by the superseded request has been delivered (or not)
    assert seen == [str(media["short"])]


def test_analyse_image_valid_and_invalid(
    make_controller: Callable[..., RenderController], media: dict[str, Path], qtbot: Any
) -> None:
    controller = make_controller()
    with qtbot.waitSignal(controller.imageAnalysed, timeout=LONG) as blocker:
        controller.analyse_image(media["image"], 480, 832, "black")
    path, preview = blocker.args
    assert path == str(media["image"])
    assert isinstance(preview, ImagePreview)
    assert (preview.info.width, preview.info.height) == (240, 320)
    framed = preview.framed
    assert isinstance(framed, QtGui.QImage)
    assert (framed.width(), framed.height()) == (480, 832)
    # Letterboxed, not stretched: the top rows are the black pad, the middle is the portrait.
    assert framed.pixelColor(240, 5).name() == "#000000"
    assert framed.pixelColor(240, 416).name() != "#000000"

    with qtbot.waitSignal(controller.imageRejected, timeout=LONG) as blocker:
        controller.analyse_image(media["text_png"], 512, 512, "black")
    path, message = blocker.args
    assert path == str(media["text_png"]) and "notes.png" in message


def test_demo_runs_in_its_own_process_or_here_when_that_cannot_start(
    make_controller: Callable[..., RenderController],
    qtbot: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from infinitetalk_gui.core import demo_endpoint
    from infinitetalk_gui.core.errors import ConfigError

    controller = make_controller()
    with qtbot.waitSignal(controller.connectionChecked, timeout=LONG) as blocker:
        controller.check_connection("", None, demo=True)
    assert blocker.args[0], blocker.args[1]
    assert isinstance(controller._demo, demo_endpoint.DemoEndpointProcess)

    def cannot_start(self: Any) -> Any:
        raise ConfigError("The built-in demo endpoint did not start within 60 s.")

    monkeypatch.setattr(demo_endpoint.DemoEndpointProcess, "start", cannot_start)
    fallback = make_controller()
    with qtbot.waitSignal(fallback.connectionChecked, timeout=LONG) as blocker:
        fallback.check_connection("", None, demo=True)
    ok, message = blocker.args
    assert ok, message  # still a working demo, served from the app's process
    assert isinstance(fallback._demo, demo_endpoint.DemoEndpoint)


def test_check_connection(make_controller: Callable[..., RenderController], qtbot: Any) -> None:
    controller = make_controller()
    with qtbot.waitSignal(controller.connectionChecked, timeout=LONG) as blocker:
        controller.check_connection("", None, demo=True)
    ok, message = blocker.args
    assert ok, message
    assert controller.demo_url is not None and controller.demo_url in message
    with qtbot.waitSignal(controller.connectionChecked, timeout=LONG) as blocker:
        controller.check_connection(controller.demo_url, None)
    ok, message = blocker.args
    assert not ok and "API key" in message


# -- renders --------------------------------------------------------------------------------


class Recorder:
    """Everything the controller signalled, and on which thread."""

    def __init__(self, controller: RenderController) -> None:
        self.jobs: list[Job] = []
        self.resets: list[int] = []
        self.changed: list[int] = []
        self.lines: list[str] = []
        self.busy: list[bool] = []
        self.errors: list[tuple[str, str]] = []
        self.off_thread = False
        controller.jobChanged.connect(self._job)
        controller.chunksReset.connect(self._reset)
        controller.chunkChanged.connect(self._changed)
        controller.logLine.connect(self._line)
        controller.busyChanged.connect(self._busy)
        controller.errorOccurred.connect(self._error)

    def _mark(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            self.off_thread = True

    def _job(self, job: Job) -> None:
        self._mark()
        self.jobs.append(job)

    def _reset(self, job: Job) -> None:
        self._mark()
        self.resets.append(len(job.chunks))

    def _changed(self, _job: Job, index: int) -> None:
        self._mark()
        self.changed.append(index)

    def _line(self, line: str) -> None:
        self._mark()
        self.lines.append(line)

    def _busy(self, busy: bool) -> None:
        self._mark()
        self.busy.append(busy)

    def _error(self, title: str, message: str) -> None:
        self._mark()
        self.errors.append((title, message))


def test_full_demo_render(
    make_controller: Callable[..., RenderController],
    media: dict[str, Path],
    store: JobStore,
    qtbot: Any,
) -> None:
    controller = make_controller(demo_latency_s=0.2)
    seen = Recorder(controller)
    with qtbot.waitSignal(controller.jobFinished, timeout=LONG) as blocker:
        controller.start_render(
            media["image"], media["long"], media["out"], settings(), api_key=None, demo=True
        )
        assert controller.busy
    job = blocker.args[0]
    assert job.state is JobState.COMPLETED, job.error
    assert Path(job.output_path) == media["out"].absolute()
    assert media["out"].is_file() and media["out"].stat().st_size > 0
    assert job.settings.demo and job.settings.endpoint_url == controller.demo_url
    assert len(job.chunks) >= 2 and all(c.state is JobState.COMPLETED for c in job.chunks)
    assert not controller.busy and seen.busy == [True, False]
    assert controller.current_job is job
    assert not seen.off_thread  # every signal arrived on the GUI thread
    assert seen.resets and seen.resets[-1] == len(job.chunks)
    assert seen.jobs[-1].state is JobState.COMPLETED
    assert any("COMPLETED" in line for line in seen.lines)
    assert seen.errors == []
    assert store.get(job.id).state is JobState.COMPLETED


def test_invalid_input_is_an_error_before_any_job(
    make_controller: Callable[..., RenderController],
    media: dict[str, Path],
    store: JobStore,
    qtbot: Any,
) -> None:
    controller = make_controller()
    seen = Recorder(controller)
    with qtbot.waitSignal(controller.errorOccurred, timeout=LONG) as blocker:
        controller.start_render(
            media["image"], media["text_mp3"], media["out"], settings(), api_key=None, demo=True
        )
    title, message = blocker.args
    assert title and "notes.mp3" in message and "Traceback" not in message
    assert store.list() == []
    assert controller.current_job is None
    qtbot.waitUntil(lambda: not controller.busy, timeout=5000)
    assert seen.busy == [True, False]


def test_cancel_mid_job(
    make_controller: Callable[..., RenderController],
    media: dict[str, Path],
    store: JobStore,
    qtbot: Any,
) -> None:
    # An endpoint of our own, so the test can see the remote /cancel calls.
    with DemoEndpoint(latency_s=30, api_key="test") as endpoint:
        controller = make_controller()
        submitted = threading.Event()

        def on_chunk(job: Job, index: int) -> None:
            if job.chunks[index].runpod_id is not None:
                submitted.set()

        controller.chunkChanged.connect(on_chunk)
        controller.start_render(
            media["image"],
            media["long"],
            media["out"],
            settings(endpoint_url=endpoint.url),
            api_key="test",
            demo=False,
        )
        qtbot.waitUntil(submitted.is_set, timeout=LONG)
        with qtbot.waitSignal(controller.jobFinished, timeout=LONG) as blocker:
            controller.cancel()
        job = blocker.args[0]
        assert job.state is JobState.CANCELLED
        assert not controller.busy
        assert not media["out"].exists()
        assert list(media["out"].parent.iterdir()) == []  # no temporary twin left behind
        assert store.get(job.id).state is JobState.CANCELLED
        sent = {c.runpod_id for c in store.get(job.id).chunks if c.runpod_id}
        assert sent and sent <= set(endpoint.cancelled_ids)  # the remote chunks too


def test_failed_chunk_retried(
    make_controller: Callable[..., RenderController],
    media: dict[str, Path],
    qtbot: Any,
) -> None:
    # The first submission fails on the worker; attempts=1 makes the job fail at once.
    faults = DemoFaults(outcomes={0: "failed_json"})
    with DemoEndpoint(latency_s=0.2, faults=faults, api_key="test") as endpoint:
        controller = make_controller()
        with qtbot.waitSignal(controller.jobFinished, timeout=LONG) as blocker:
            controller.start_render(
                media["image"],
                media["short"],
                media["out"],
                settings(endpoint_url=endpoint.url, attempts=1),
                api_key="test",
                demo=False,
            )
        failed = blocker.args[0]
        assert failed.state is JobState.FAILED
        assert failed.error and "Chunk 1" in failed.error
        assert failed.chunks[0].state is JobState.FAILED
        assert not media["out"].exists()

        with qtbot.waitSignal(controller.jobFinished, timeout=LONG) as blocker:
            controller.retry_failed()
        job = blocker.args[0]
        assert job.id == failed.id
        assert job.state is JobState.COMPLETED, job.error
        assert media["out"].is_file()
        assert endpoint.run_calls == 2  # the failed chunk was sent again, alone


def test_retry_needs_a_failed_job(
    make_controller: Callable[..., RenderController], qtbot: Any
) -> None:
    controller = make_controller()
    with qtbot.waitSignal(controller.errorOccurred, timeout=1000):
        controller.retry_failed()
    assert not controller.busy


def _start_slow_demo_render(
    controller: RenderController,
    media: dict[str, Path],
    qtbot: Any,
    ready: Callable[[Job], bool],
) -> str:
    """Start a long demo render; return its job id once ``ready(job)`` holds."""
    controller.start_render(
        media["image"], media["long"], media["out"], settings(), api_key=None, demo=True
    )
    qtbot.waitUntil(
        lambda: controller.current_job is not None and ready(controller.current_job),
        timeout=LONG,
    )
    assert controller.current_job is not None
    return controller.current_job.id


def test_shutdown_cancels_and_drains(
    make_controller: Callable[..., RenderController],
    media: dict[str, Path],
    store: JobStore,
    qtbot: Any,
) -> None:
    controller = make_controller(demo_latency_s=30)
    job_id = _start_slow_demo_render(controller, media, qtbot, lambda job: job.chunks != [])
    assert controller.shutdown(cancel_running=True, timeout_ms=LONG)
    assert controller.pool.activeThreadCount() == 0
    assert controller.demo_url is None  # the demo endpoint was stopped
    assert store.get(job_id).state is JobState.CANCELLED
    assert not media["out"].exists()
    controller.start_render(  # after shutdown nothing starts
        media["image"], media["long"], media["out"], settings(), api_key=None, demo=True
    )
    assert controller.pool.activeThreadCount() == 0


def test_shutdown_leaving_the_job_resumable_does_not_cancel_it(
    make_controller: Callable[..., RenderController],
    media: dict[str, Path],
    store: JobStore,
    qtbot: Any,
) -> None:
    controller = make_controller(demo_latency_s=30)
    job_id = _start_slow_demo_render(
        controller, media, qtbot, lambda job: any(c.runpod_id for c in job.chunks)
    )
    assert controller.shutdown(cancel_running=False, timeout_ms=LONG)
    assert controller.pool.activeThreadCount() == 0
    job = store.get(job_id)
    assert not job.state.terminal and job.stage == "interrupted"
    assert [j.id for j in store.interrupted()] == [job_id]  # offered for resume at next start
    assert not media["out"].exists()


def test_event_bursts_are_coalesced(
    make_controller: Callable[..., RenderController], qtbot: Any
) -> None:
    controller = make_controller(flush_interval_ms=50)
    seen = Recorder(controller)
    job = Job(
        id="burst",
        image_path="/i.png",
        audio_path="/a.wav",
        output_path="/o.mp4",
        settings=settings(endpoint_url="http://127.0.0.1:1"),
        state=JobState.IN_PROGRESS,
        chunks=[Chunk(index=i, start_ms=i * 10_000, end_ms=(i + 1) * 10_000) for i in range(4)],
    )
    controller._on_event(JobEvent("chunks", job.snapshot(), None, "planned"))
    qtbot.waitUntil(lambda: seen.resets == [4], timeout=5000)

    events = 2000

    def burst() -> None:
        for n in range(events):
            snapshot = job.snapshot()
            chunk = snapshot.chunks[n % 4]
            chunk.attempt = n
            controller._on_event(JobEvent("chunk", snapshot, chunk, f"event {n}"))

    worker = threading.Thread(target=burst)
    worker.start()
    qtbot.waitUntil(lambda: not worker.is_alive(), timeout=LONG)  # the GUI loop keeps running
    qtbot.waitUntil(lambda: f"event {events - 1}" in seen.lines, timeout=5000)
    # Far fewer signal batches than events, and nothing lost: every line is shown or counted
    # in a summary line, and the last snapshot is the one shown.
    assert len(seen.jobs) < events / 20
    shown = [line for line in seen.lines if line.startswith("event ")]
    skipped = sum(
        int(match.group(1))
        for line in seen.lines
        if (match := re.match(r"\.\.\. (\d+) more lines", line))
    )
    assert len(shown) + skipped == events
    assert seen.lines[-1] == f"event {events - 1}"
    assert seen.jobs[-1].chunks[(events - 1) % 4].attempt == events - 1
    assert set(seen.changed) <= {0, 1, 2, 3}
    assert not seen.off_thread


def test_signals_are_queued_from_worker_threads(
    make_controller: Callable[..., RenderController], qtbot: Any
) -> None:
    """The listener may be called on any thread; slots still run on the GUI thread."""
    controller = make_controller()
    threads: list[bool] = []
    controller.logLine.connect(
        lambda _line: threads.append(threading.current_thread() is threading.main_thread())
    )
    job = Job(
        id="t",
        image_path="/i.png",
        audio_path="/a.wav",
        output_path="/o.mp4",
        settings=settings(endpoint_url="http://127.0.0.1:1"),
    )
    runner = threading.Thread(
        target=lambda: controller._on_event(JobEvent("log", job.snapshot(), None, "hello"))
    )
    runner.start()
    runner.join()
    qtbot.waitUntil(lambda: threads == [True], timeout=5000)


def test_resume_a_demo_job_after_restart(
    make_controller: Callable[..., RenderController],
    media: dict[str, Path],
    store: JobStore,
    qtbot: Any,
) -> None:
    # A first app session quits mid-job; its demo endpoint dies with it.
    first = make_controller(demo_latency_s=30)
    first.start_render(
        media["image"], media["short"], media["out"], settings(), api_key=None, demo=True
    )
    qtbot.waitUntil(
        lambda: first.current_job is not None and first.current_job.chunks != [], timeout=LONG
    )
    job_id = first.current_job.id  # type: ignore[union-attr]
    old_url = first.demo_url
    assert first.shutdown(cancel_running=True, timeout_ms=LONG)

    # The next session resumes it from the history on a new demo endpoint.
    second = make_controller(demo_latency_s=0.2)
    with qtbot.waitSignal(second.jobFinished, timeout=LONG) as blocker:
        second.resume(job_id, None)
    job = blocker.args[0]
    assert job.id == job_id and job.state is JobState.COMPLETED, job.error
    assert job.settings.endpoint_url == second.demo_url != old_url
    assert media["out"].is_file()


def test_job_driven_elsewhere_is_an_error(
    make_controller: Callable[..., RenderController],
    media: dict[str, Path],
    store: JobStore,
    qtbot: Any,
) -> None:
    controller = make_controller()
    job = Job(
        id="elsewhere",
        image_path=str(media["image"]),
        audio_path=str(media["short"]),
        output_path=str(media["out"]),
        settings=settings(endpoint_url="http://127.0.0.1:9"),
    )
    store.create(job)
    with store.lease(job.id), qtbot.waitSignal(controller.errorOccurred, timeout=LONG) as blocker:
        controller.resume(job.id, "key")
    title, message = blocker.args
    assert title == "Cannot resume the job"
    assert "elsewhere" in message and "already being driven" in message
    assert not controller.busy
