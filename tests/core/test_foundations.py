"""The small core modules: state machine, sizes, settings, the key, logs, paths, ffmpeg runner."""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from pathlib import Path

import keyring
import pytest
from keyring.backends.fail import Keyring as FailKeyring

from infinitetalk_gui.core import ffmpeg, logs, paths, secrets, settings
from infinitetalk_gui.core.cancel import CancelToken
from infinitetalk_gui.core.errors import Cancelled, ConfigError, FFmpegError
from infinitetalk_gui.core.ffmpeg import FFmpegProcess, find_ffmpeg, probe, run_ffmpeg
from infinitetalk_gui.core.models import (
    Chunk,
    InvalidTransition,
    Job,
    JobState,
    RenderSettings,
    check_transition,
    parse_size,
)
from tests import mediagen


def test_running_is_in_progress_and_terminal_states() -> None:
    assert JobState.from_remote("RUNNING") is JobState.IN_PROGRESS
    assert JobState.from_remote("in_progress") is JobState.IN_PROGRESS
    assert {s for s in JobState if s.terminal} == {
        JobState.COMPLETED,
        JobState.FAILED,
        JobState.CANCELLED,
        JobState.TIMED_OUT,
    }


@pytest.mark.parametrize(
    ("old", "new", "ok"),
    [
        (JobState.IN_QUEUE, JobState.IN_PROGRESS, True),
        (JobState.IN_PROGRESS, JobState.COMPLETED, True),
        (JobState.FAILED, JobState.IN_QUEUE, True),
        (JobState.CANCELLED, JobState.IN_QUEUE, True),
        (JobState.COMPLETED, JobState.IN_QUEUE, False),
        (JobState.COMPLETED, JobState.FAILED, False),
        (JobState.FAILED, JobState.COMPLETED, False),
        (JobState.TIMED_OUT, JobState.IN_PROGRESS, False),
    ],
)
def test_one_state_machine(old: JobState, new: JobState, ok: bool) -> None:
    if ok:
        check_transition(old, new)
    else:
        with pytest.raises(InvalidTransition):
            check_transition(old, new)


def test_sizes() -> None:
    assert parse_size("512x512") == (512, 512)
    assert parse_size(" 384 X 576 ") == (384, 576)
    for bad, reason in (("500x500", "multiple of 16"), ("2048x512", "between"), ("big", "WIDTH")):
        with pytest.raises(ValueError, match=reason):
            parse_size(bad)


def test_chunk_frames_and_job_costs() -> None:
    chunk = Chunk(index=0, start_ms=0, end_ms=10_010, exec_ms=20_000)
    assert chunk.frames == 251  # ceil(10.01 s / 40 ms)
    job = Job(
        id="j",
        image_path="i",
        audio_path="a",
        output_path="o",
        settings=RenderSettings(endpoint_url="http://x", gpu_price_per_second=0.001),
        chunks=[chunk, Chunk(index=1, start_ms=10_010, end_ms=20_000, exec_ms=10_000)],
    )
    assert job.cost_usd == pytest.approx(0.03)
    assert job.summary()["chunks_total"] == 2
    assert RenderSettings.from_dict({**job.settings.to_dict(), "unknown": 1}) == job.settings


def test_settings_round_trip_and_validation(isolated_home: Path) -> None:
    saved = settings.load()
    saved.set("silence_db", "-35")
    saved.set("size", "480x832")
    saved.set("endpoint_id", "abc")
    settings.save(saved)
    assert settings.paths.settings_file().is_relative_to(isolated_home)
    again = settings.load()
    assert (again.silence_db, again.size, again.endpoint_id) == (-35.0, "480x832", "abc")
    again.set("endpoint_id", "")
    assert again.endpoint_id is None
    for key, value in (("attempts", "0"), ("size", "10x10"), ("endpoint_url", "ftp://x")):
        with pytest.raises(ConfigError):
            again.set(key, value)
    # No temp files are left beside the settings file.
    assert [p.name for p in settings.paths.config_dir().iterdir()] == ["settings.json"]


def test_a_damaged_settings_file_gets_a_plain_message() -> None:
    paths.settings_file().write_text("{not json")
    with pytest.raises(ConfigError, match="cannot be read"):
        settings.load()


def test_key_from_environment_wins_and_keyring_round_trip(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert secrets.get_key() is None
    secrets.set_key("  sk-from-keyring  ")
    assert secrets.get_key() == "sk-from-keyring"
    assert secrets.key_source() == "keyring"
    monkeypatch.setenv("RUNPOD_API_KEY", "sk-from-env")
    assert secrets.get_key() == "sk-from-env" and secrets.key_source() == "environment"
    monkeypatch.delenv("RUNPOD_API_KEY")
    assert secrets.clear_key() is True and secrets.get_key() is None
    assert secrets.clear_key() is False


def test_no_keyring_backend_is_reported_not_raised() -> None:
    keyring.set_keyring(FailKeyring())
    assert secrets.backend() is None and secrets.backend_name() is None
    assert secrets.get_key() is None
    with pytest.raises(ConfigError, match="RUNPOD_API_KEY"):
        secrets.set_key("sk")
    with pytest.raises(ConfigError, match="key set"):
        secrets.require_key()


def test_the_key_never_reaches_the_log_file(tmp_path: Path) -> None:
    target = logs.setup_logging(log_file=tmp_path / "app.log")
    logs.register_secret("sk-super-secret-99")
    log = logging.getLogger("infinitetalk_gui.test")
    log.warning("sending with key sk-super-secret-99")
    log.warning("header Authorization: Bearer abc.def-123")
    for handler in logging.getLogger("infinitetalk_gui").handlers:
        handler.flush()
    text = target.read_text()
    assert "sk-super-secret-99" not in text and "abc.def-123" not in text
    assert text.count("***") == 2


def test_folders_follow_xdg(isolated_home: Path) -> None:
    for folder in (paths.config_dir(), paths.data_dir(), paths.cache_dir(), paths.log_dir()):
        assert folder.is_relative_to(isolated_home)
    assert paths.jobs_db().parent == paths.data_dir()
    assert paths.demo_portrait().is_file() and paths.demo_voice().is_file()


def test_ffmpeg_is_the_bundled_one_and_probe_reads_media(tmp_path: Path) -> None:
    exe = find_ffmpeg()
    assert "imageio_ffmpeg" in exe
    wav = mediagen.speechlike_wav(tmp_path / "a.wav", [("voice", 1.5)])
    info = probe(wav)
    assert info.has_audio and not info.has_video
    assert info.duration_s == pytest.approx(1.5, abs=0.01)
    text = tmp_path / "a.txt"
    text.write_text("hello")
    with pytest.raises(FFmpegError):
        probe(text)


def test_ffmpeg_failure_carries_stderr_and_cancel_stops_it(tmp_path: Path) -> None:
    with pytest.raises(FFmpegError, match="No such file"):
        run_ffmpeg(["-i", str(tmp_path / "missing.wav"), "-f", "null", "-"])
    token = CancelToken()
    threading.Timer(0.3, token.cancel).start()
    started = time.monotonic()
    with pytest.raises(Cancelled):
        run_ffmpeg(
            ["-re", "-f", "lavfi", "-i", "sine=d=30", "-f", "null", "-"],
            cancel=token,
        )
    assert time.monotonic() - started < 5
    with pytest.raises(FFmpegError, match="longer than"):
        run_ffmpeg(["-re", "-f", "lavfi", "-i", "sine=d=30", "-f", "null", "-"], timeout=0.5)


@pytest.mark.skipif(not hasattr(os, "getpriority"), reason="POSIX priorities")
def test_ffmpeg_in_background_mode_runs_at_a_lower_priority() -> None:
    args = ["-re", "-f", "lavfi", "-i", "sine=d=30", "-f", "null", "-"]
    mine = os.getpriority(os.PRIO_PROCESS, 0)

    def child_priority() -> int:
        process = FFmpegProcess(args)
        try:
            return os.getpriority(os.PRIO_PROCESS, process.proc.pid)
        finally:
            process.close()

    assert child_priority() == mine  # the CLI's way: as this process
    ffmpeg.run_in_background()
    try:
        assert child_priority() == min(19, mine + ffmpeg.BACKGROUND_NICENESS)  # the app's way
    finally:
        ffmpeg.run_in_background(False)
    assert child_priority() == mine


def test_cancel_token_callbacks() -> None:
    token = CancelToken()
    seen: list[str] = []
    unregister = token.on_cancel(lambda: seen.append("a"))
    token.on_cancel(lambda: seen.append("b"))
    unregister()
    token.cancel()
    token.cancel()
    assert seen == ["b"]
    token.on_cancel(lambda: seen.append("late"))
    assert seen == ["b", "late"]
    with pytest.raises(Cancelled):
        token.raise_if_cancelled()
    assert token.wait(5) is True


def test_job_event_json_is_serialisable() -> None:
    from infinitetalk_gui.core.pipeline import JobEvent

    job = Job(
        id="j",
        image_path="i",
        audio_path="a",
        output_path="o.mp4",
        settings=RenderSettings(endpoint_url="http://x"),
        state=JobState.COMPLETED,
        chunks=[Chunk(index=0, start_ms=0, end_ms=4000, state=JobState.COMPLETED)],
    )
    payload = JobEvent("chunk", job, job.chunks[0], "chunk 1/1 COMPLETED").to_json()
    assert json.loads(json.dumps(payload))["chunk"]["end_s"] == 4.0
    assert payload["output"] == "o.mp4"
