"""The command line as a user meets it: exit codes, messages, Ctrl-C, kill -9 and resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import keyring
import pytest
from keyring.backends.fail import Keyring as FailKeyring

from infinitetalk_gui import cli
from infinitetalk_gui.core import media
from infinitetalk_gui.core.demo_endpoint import DemoEndpoint
from infinitetalk_gui.core.models import JobState
from infinitetalk_gui.core.store import JobStore
from tests import mediagen


@pytest.fixture
def portrait(tmp_path: Path) -> Path:
    return mediagen.portrait(tmp_path / "face.png", 300, 420)


@pytest.fixture
def voice(tmp_path: Path) -> Path:
    return mediagen.speechlike_wav(tmp_path / "voice.wav", mediagen.alternating(14.0, 4.0, 0.8))


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = cli.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_demo_render_then_jobs_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], portrait: Path, voice: Path
) -> None:
    output = tmp_path / "talk.mp4"
    code, _, err = run_cli(
        capsys,
        "render",
        portrait,
        voice,
        "-o",
        output,
        "--demo",
        "--size",
        "256x256",
        "--chunk-seconds",
        "10",
    )
    assert code == 0, err
    assert "Done:" in err and str(output) in err
    assert "chunk 1/" in err  # one line per chunk state change
    assert "GPU" in err and "$" in err  # queue time, GPU time and cost per chunk and per job
    video_s, audio_s = media.media_duration(output)
    assert abs(video_s - 14.0) <= 0.04 and abs(audio_s - 14.0) <= 0.04

    code, out, _ = run_cli(capsys, "jobs", "--json")
    assert code == 0
    jobs = json.loads(out)
    assert jobs[0]["state"] == "COMPLETED" and jobs[0]["output"] == str(output)
    assert jobs[0]["chunks_done"] == jobs[0]["chunks_total"] >= 1
    assert set(jobs[0]) == {"id", "state", "chunks_done", "chunks_total", "output"}

    code, out, _ = run_cli(capsys, "jobs")
    assert jobs[0]["id"] in out and "COMPLETED" in out


def test_json_events_on_stdout(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], portrait: Path, voice: Path
) -> None:
    code, out, _ = run_cli(
        capsys,
        "render",
        portrait,
        voice,
        "-o",
        tmp_path / "o.mp4",
        "--demo",
        "--size",
        "256x256",
        "--json",
    )
    assert code == 0
    events = [json.loads(line) for line in out.splitlines()]
    assert events[-1]["state"] == "COMPLETED" and events[-1]["event"] == "job"
    assert any(e["event"] == "chunk" for e in events)


def test_an_existing_output_is_never_replaced_without_overwrite(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], portrait: Path, voice: Path
) -> None:
    output = tmp_path / "exists.mp4"
    output.write_bytes(b"precious")
    code, _, err = run_cli(capsys, "render", portrait, voice, "-o", output, "--demo")
    assert code == 2
    assert "already exists" in err and "--overwrite" in err
    assert output.read_bytes() == b"precious"


def _make_corpus(tmp: Path, portrait: Path, voice: Path) -> list[tuple[str, list[str], str]]:
    """(case name, render arguments, text the message must contain)."""
    tmp.mkdir()

    def file(name: str, data: bytes | str) -> Path:
        path = tmp / name
        if isinstance(data, str):
            path.write_text(data)
        else:
            path.write_bytes(data)
        return path

    wav_bytes = voice.read_bytes()
    png_bytes = portrait.read_bytes()
    no_audio_video = tmp / "silent_film.mp4"
    subprocess.run(
        [
            mediagen.FFMPEG,
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            "testsrc=s=64x64:d=1",
            str(no_audio_video),
        ],
        check=True,
    )
    header_only = mediagen.write_wav(tmp / "header_only.wav", mediagen.speechlike_pcm([]))
    tiny = mediagen.portrait(tmp / "tiny.png", 40, 40)
    sliver = mediagen.portrait(tmp / "sliver.png", 1000, 50)
    gif = tmp / "anim.gif"
    from PIL import Image

    Image.new("RGB", (200, 200), "red").save(gif)
    bmp = tmp / "photo.bmp"
    Image.new("RGB", (200, 200), "red").save(bmp)
    folder = tmp / "a_folder.png"
    folder.mkdir()
    audio_folder = tmp / "a_folder.wav"
    audio_folder.mkdir()

    bad_audio = {
        "text.mp3": file("text.mp3", "this is a text file, not a song\n" * 20),
        "empty.wav": file("empty.wav", b""),
        "truncated.wav": file("truncated.wav", wav_bytes[:30]),
        "noise.ogg": file("noise.ogg", os.urandom(4000)),
        "picture.wav": file("picture.wav", png_bytes),
        "silent_film.mp4": no_audio_video,
        "header_only.wav": header_only,
        "missing.wav": tmp / "missing.wav",
        "a_folder.wav": audio_folder,
        "garbage.flac": file("garbage.flac", b"fLaC" + os.urandom(300)),
        "data.m4a": file("data.m4a", json.dumps({"not": "audio"})),
        "page.aac": file("page.aac", "<html><body>404</body></html>"),
    }
    bad_images = {
        "text.png": file("text.png", "hello, I am text\n" * 10),
        "empty.jpg": file("empty.jpg", b""),
        "truncated.png": file("truncated.png", png_bytes[:60]),
        "tiny.png": tiny,
        "sliver.png": sliver,
        "anim.gif": gif,
        "photo.bmp": bmp,
        "a_folder.png": folder,
        "missing.png": tmp / "missing.png",
        "sound.png": file("sound.png", wav_bytes[:5000]),
        "noise.webp": file("noise.webp", b"RIFF" + os.urandom(200)),
        "headonly.jpg": file("headonly.jpg", b"\xff\xd8\xff\xe0" + b"\x00" * 20),
    }
    out = str(tmp / "out.mp4")
    cases: list[tuple[str, list[str], str]] = []
    for name, path in bad_audio.items():
        cases.append(
            (f"audio {name}", ["render", str(portrait), str(path), "-o", out, "--demo"], name)
        )
    for name, path in bad_images.items():
        cases.append(
            (f"image {name}", ["render", str(path), str(voice), "-o", out, "--demo"], name)
        )
    base = ["render", str(portrait), str(voice)]
    cases += [
        (
            "no output folder",
            [*base, "-o", str(tmp / "nope" / "o.mp4"), "--demo"],
            "does not exist",
        ),
        ("output is a folder", [*base, "-o", str(folder), "--demo"], "folder"),
        ("output not mp4", [*base, "-o", str(tmp / "o.avi"), "--demo"], ".mp4"),
        ("size not /16", [*base, "-o", out, "--demo", "--size", "500x500"], "multiple of 16"),
        ("size too big", [*base, "-o", out, "--demo", "--size", "2048x2048"], "between 256"),
        ("size words", [*base, "-o", out, "--demo", "--size", "big"], "WIDTHxHEIGHT"),
        ("concurrency 0", [*base, "-o", out, "--demo", "--concurrency", "0"], "1 or more"),
        ("chunk 5 s", [*base, "-o", out, "--demo", "--chunk-seconds", "5"], "between 10 and 120"),
        ("attempts words", [*base, "-o", out, "--demo", "--attempts", "many"], "whole number"),
        ("no endpoint", [*base, "-o", out], "endpoint"),
    ]
    return cases


def test_malformed_inputs_exit_2_with_a_clear_message(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    portrait: Path,
    voice: Path,
) -> None:
    monkeypatch.setenv("RUNPOD_API_KEY", "sk-test")
    cases = _make_corpus(tmp_path / "corpus", portrait, voice)
    assert len(cases) >= 30
    store = JobStore()
    for name, args, expected in cases:
        try:
            code = cli.main(args)
        except SystemExit as exit_:  # argparse usage errors
            code = int(exit_.code or 0)
        _, err = capsys.readouterr()
        assert code == 2, f"{name}: exit {code}: {err}"
        assert expected.lower() in err.lower(), f"{name}: {err}"
        assert "Traceback" not in err, name
        assert err.strip(), name
    assert store.list() == []
    assert not (tmp_path / "corpus" / "out.mp4").exists()


def test_missing_key_says_how_to_provide_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], portrait: Path, voice: Path
) -> None:
    code, _, err = run_cli(
        capsys, "render", portrait, voice, "-o", tmp_path / "o.mp4", "--endpoint-id", "abc123"
    )
    assert code == 2
    assert "key set" in err and "RUNPOD_API_KEY" in err and "--demo" in err


def test_no_keyring_is_not_a_crash(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    portrait: Path,
    voice: Path,
) -> None:
    keyring.set_keyring(FailKeyring())
    code, _, err = run_cli(capsys, "key", "status")
    assert code == 0 and "no secure keyring" in err
    monkeypatch.setattr("sys.stdin", __import__("io").StringIO("sk-secret\n"))
    code, _, err = run_cli(capsys, "key", "set")
    assert code == 2 and "RUNPOD_API_KEY" in err
    # The demo still renders with no keyring at all.
    code, _, err = run_cli(
        capsys, "render", portrait, voice, "-o", tmp_path / "o.mp4", "--demo", "--size", "256x256"
    )
    assert code == 0, err


def test_key_round_trip_never_echoes_the_key(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.stdin", __import__("io").StringIO("sk-very-secret-42\n"))
    code, out, err = run_cli(capsys, "key", "set")
    assert code == 0 and "sk-very-secret-42" not in out + err
    assert keyring.get_password("infinitetalk-gui", "runpod-api-key") == "sk-very-secret-42"
    code, out, err = run_cli(capsys, "key", "status")
    assert "stored in the system keyring" in err and "sk-very-secret-42" not in out + err
    code, _, err = run_cli(capsys, "key", "clear")
    assert code == 0 and keyring.get_password("infinitetalk-gui", "runpod-api-key") is None


def test_config_set_and_get(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(capsys, "config", "set", "gpu_price_per_second", "0.0005")[0] == 0
    assert run_cli(capsys, "config", "get", "gpu_price_per_second")[1].strip() == "0.0005"
    code, _, err = run_cli(capsys, "config", "set", "attempts", "zero")
    assert code == 2 and "attempts" in err
    code, _, err = run_cli(capsys, "config", "set", "colour", "red")
    assert code == 2 and "unknown setting" in err
    assert run_cli(capsys, "config", "set", "endpoint_id", "abc")[0] == 0
    code, out, _ = run_cli(capsys, "config", "get")
    assert "endpoint_id = abc" in out


def test_endpoint_precedence_flag_env_saved(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from infinitetalk_gui.core.pipeline import resolve_endpoint
    from infinitetalk_gui.core.settings import Settings

    saved = Settings(endpoint_id="saved")
    assert resolve_endpoint(endpoint_id=None, endpoint_url=None, settings=saved).endswith("/saved")
    monkeypatch.setenv("RUNPOD_ENDPOINT_ID", "env")
    assert resolve_endpoint(endpoint_id=None, endpoint_url=None, settings=saved).endswith("/env")
    monkeypatch.setenv("RUNPOD_ENDPOINT_URL", "http://127.0.0.1:9/x")
    assert resolve_endpoint(endpoint_id=None, endpoint_url=None, settings=saved) == (
        "http://127.0.0.1:9/x"
    )
    assert resolve_endpoint(endpoint_id="flag", endpoint_url=None, settings=saved) == (
        "https://api.runpod.ai/v2/flag"
    )


def test_check_against_the_demo_endpoint(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, "check", "--demo")
    assert code == 0, err
    assert err.strip()


# --------------------------------------------------------------------- real processes


@pytest.fixture
def endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[DemoEndpoint]:
    monkeypatch.setenv("RUNPOD_API_KEY", "sk-cli-test")
    with DemoEndpoint(latency_s=1.5, workers=3) as demo:
        yield demo


def _spawn(*args: str | Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "infinitetalk_gui", *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for(predicate: object, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError("timed out waiting")


def _only_job(store: JobStore) -> object:
    jobs = store.list()
    return jobs[0] if jobs else None


def _render_in_background(
    tmp_path: Path, endpoint: DemoEndpoint, portrait: Path, seconds: float, *extra: str
) -> tuple[subprocess.Popen[str], JobStore]:
    """Start ``render`` in another process; return once a chunk is on the endpoint."""
    audio = mediagen.speechlike_wav(tmp_path / "long.wav", mediagen.alternating(seconds))
    proc = _spawn(
        "render",
        portrait,
        audio,
        "--endpoint-url",
        endpoint.url,
        "--size",
        "256x256",
        *extra,
    )
    store = JobStore()
    _wait_for(lambda: (j := _only_job(store)) is not None and any(c.runpod_id for c in j.chunks))
    return proc, store


def test_ctrl_c_cancels_remote_chunks_and_leaves_the_folder_alone(
    tmp_path: Path, endpoint: DemoEndpoint, portrait: Path
) -> None:
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    (out_dir / "keep.txt").write_text("mine")
    proc, store = _render_in_background(
        tmp_path, endpoint, portrait, 40.0, "-o", str(out_dir / "talk.mp4"), "--chunk-seconds", "10"
    )
    proc.send_signal(signal.SIGINT)
    started = time.monotonic()
    _, err = proc.communicate(timeout=20)
    assert time.monotonic() - started < 8
    assert proc.returncode == 1, err
    assert "Traceback" not in err
    job = store.list()[0]
    assert job.state is JobState.CANCELLED
    assert endpoint.cancelled_ids
    assert sorted(p.name for p in out_dir.iterdir()) == ["keep.txt"]


def test_kill_9_then_resume_renders_only_what_is_missing(
    tmp_path: Path, endpoint: DemoEndpoint, portrait: Path
) -> None:
    audio = mediagen.speechlike_wav(tmp_path / "long.wav", mediagen.alternating(30.0, 4.0, 0.8))
    output = tmp_path / "talk.mp4"
    proc = _spawn(
        "render",
        portrait,
        audio,
        "-o",
        output,
        "--endpoint-url",
        endpoint.url,
        "--size",
        "256x256",
        "--chunk-seconds",
        "10",
        "--concurrency",
        "1",
    )
    store = JobStore()

    def first_done_second_in_flight() -> bool:
        job = _only_job(store)
        return (
            job is not None
            and len(job.chunks) >= 2
            and job.chunks[0].state is JobState.COMPLETED
            and job.chunks[1].runpod_id is not None
        )

    _wait_for(first_done_second_in_flight)
    proc.kill()
    proc.communicate()
    job = store.list()[0]
    assert not job.state.terminal
    runs_before = endpoint.run_calls
    assert runs_before == 2

    resumed = _spawn("resume", job.id[:6])
    _, err = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, err
    job = store.get(job.id)
    assert job.state is JobState.COMPLETED
    # No second /run for the finished chunk, nor for the one in flight (re-attached by id).
    assert endpoint.run_calls == len(job.chunks)
    video_s, audio_s = media.media_duration(output)
    assert abs(video_s - 30.0) <= 0.04 and abs(audio_s - 30.0) <= 0.04


def test_cancel_command_stops_a_job_driven_by_another_process(
    tmp_path: Path, endpoint: DemoEndpoint, portrait: Path
) -> None:
    proc, store = _render_in_background(
        tmp_path,
        endpoint,
        portrait,
        40.0,
        "-o",
        str(tmp_path / "talk.mp4"),
        "--chunk-seconds",
        "10",
    )
    job = store.list()[0]
    canceller = _spawn("cancel", job.id)
    _, err = canceller.communicate(timeout=30)
    assert canceller.returncode == 0, err
    assert "CANCELLED" in err
    proc.communicate(timeout=20)
    assert proc.returncode == 1
    assert store.get(job.id).state is JobState.CANCELLED
    assert endpoint.cancelled_ids


def test_subcommands_never_import_qt() -> None:
    code = (
        "import sys; from infinitetalk_gui import cli; "
        "cli.main(['config', 'get']); "
        "assert not any(m.startswith(('PySide6', 'shiboken6')) for m in sys.modules), 'Qt!'"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_cancel_without_a_key_refuses_rather_than_leave_remote_chunks_running(
    tmp_path: Path,
    endpoint: DemoEndpoint,
    portrait: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    proc, store = _render_in_background(
        tmp_path, endpoint, portrait, 30.0, "-o", str(tmp_path / "talk.mp4")
    )
    proc.kill()
    proc.communicate()
    job = store.list()[0]
    monkeypatch.delenv("RUNPOD_API_KEY")
    code, _, err = run_cli(capsys, "cancel", job.id)
    assert code == 2 and "No RunPod API key is set" in err
    assert not store.get(job.id).state.terminal
    monkeypatch.setenv("RUNPOD_API_KEY", "sk-cli-test")
    code, _, err = run_cli(capsys, "cancel", job.id)
    assert code == 0 and "CANCELLED" in err
    assert endpoint.cancelled_ids
