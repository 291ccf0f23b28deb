"""Benchmarks of whole jobs against the local demo endpoint, baseline and ours side by side.

    python bench/bench_pipeline.py [--only first-run|wall|rss] [--cache DIR]

1. first-run: from launching ``infinitetalk-gui render`` on 10 minutes of speech-like
   44.1 kHz stereo audio to the first ``/run`` reaching the endpoint, against pydub's
   ``split_on_silence`` alone on the same audio (the original script's first step; it
   submitted nothing before that finished). Goal: >= 15x faster.
2. wall: a 12-chunk job, demo latency fixed at 5 s, concurrency 3. Ideal = 4 waves x 5 s
   + the measured split and join. Goal: within 5 % of ideal.
3. rss: peak RSS of every process of a 60-minute job with an MP3 input (the CLI and each
   ffmpeg child it starts), sampled from /proc every 20 ms. Goal: each under 300 MB.
The demo endpoint runs in this process, so its own renders are not counted in 3.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench_split import make_recording  # noqa: E402

from infinitetalk_gui.core.demo_endpoint import DemoEndpoint  # noqa: E402
from infinitetalk_gui.core.ffmpeg import find_ffmpeg  # noqa: E402

PORTRAIT = ROOT / "resources" / "demo_portrait.png"


def _env(home: Path) -> dict[str, str]:
    env = dict(os.environ)
    for var in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME", "XDG_STATE_HOME"):
        env[var] = str(home / var.lower())
    env["RUNPOD_API_KEY"] = "bench-key"
    return env


def _cli(*args: str | Path) -> list[str]:
    return [sys.executable, "-m", "infinitetalk_gui", *map(str, args)]


def bench_first_run(cache: Path) -> None:
    audio = make_recording(cache / "speech_10min.wav", 600)
    with tempfile.TemporaryDirectory() as tmp, DemoEndpoint(latency_s=30) as demo:
        home = Path(tmp)
        started = time.time()
        proc = subprocess.Popen(
            _cli("render", PORTRAIT, audio, "-o", home / "o.mp4", "--endpoint-url", demo.url),
            env=_env(home),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        while not demo.calls_to("run"):
            time.sleep(0.005)
        ours = demo.calls_to("run")[0].time - started
        proc.terminate()
        proc.wait()

    code = (
        "import time, warnings, sys\n"
        "warnings.simplefilter('ignore')\n"
        "from pydub import AudioSegment\n"
        "from pydub.silence import split_on_silence\n"
        f"AudioSegment.converter = {find_ffmpeg()!r}\n"
        "t = time.perf_counter()\n"
        f"seg = AudioSegment.from_wav({str(audio)!r})\n"
        "split_on_silence(seg, min_silence_len=500, silence_thresh=-40)\n"
        "print(time.perf_counter() - t)\n"
    )
    baseline = float(
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout.strip()
    )
    print("## first /run after launching render, 10 min 44.1 kHz stereo")
    print(f"baseline  pydub split_on_silence alone : {baseline:8.2f} s")
    print(f"ours      launch -> first /run         : {ours:8.2f} s")
    print(f"speed-up                                : {baseline / ours:8.1f}x (goal >= 15x)")


def bench_wall(cache: Path) -> None:
    from infinitetalk_gui.core import audio as audio_mod
    from infinitetalk_gui.core.models import RenderSettings
    from infinitetalk_gui.core.pipeline import JobEvent, create_job, run_job
    from infinitetalk_gui.core.store import JobStore

    latency = 5.0
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        for var, value in _env(home).items():
            if var.startswith("XDG_"):
                os.environ[var] = value
        # 12 chunks of ~10 s: speech with a pause every 10 s.
        src = cache / "speech_110s.wav"
        make_recording(src, 110)  # plans 12 chunks of ~10 s
        params = audio_mod.SplitParams(chunk_seconds=10.0)
        t = time.perf_counter()
        analysis = audio_mod.analyse_audio(src, home / "split", params)
        cuts = audio_mod.plan_cuts(
            analysis.duration_ms, analysis.silences, analysis.energy_db, params
        )
        split_s = time.perf_counter() - t
        with DemoEndpoint(latency_s=latency) as demo:
            store = JobStore()
            settings = RenderSettings(
                endpoint_url=demo.url, width=256, height=256, chunk_seconds=10.0, concurrency=3
            )
            job = create_job(PORTRAIT, src, home / "o.mp4", settings, store=store)
            stamps: dict[str, float] = {}

            def listen(event: JobEvent) -> None:
                stamps.setdefault(event.job.stage, time.perf_counter())

            t = time.perf_counter()
            final = run_job(job.id, store=store, api_key=None, listener=listen)
            wall = time.perf_counter() - t
            store.close()
        join_s = stamps["done"] - stamps["joining"]
    waves = -(-len(final.chunks) // 3)
    ideal = waves * latency + split_s + join_s
    print(
        f"## {len(final.chunks)}-chunk job (planned {len(cuts)}), demo latency {latency:.0f} s, "
        "concurrency 3"
    )
    print(
        f"ideal     {waves} x {latency:.0f} s + split {split_s:.2f} s + join {join_s:.2f} s : "
        f"{ideal:8.2f} s"
    )
    print(f"ours      wall time                             : {wall:8.2f} s")
    print(
        f"overhead                                        : {100 * (wall / ideal - 1):8.1f} % "
        "(goal <= 5 %)"
    )
    print(
        f"baseline  one chunk at a time (the original)    : {len(final.chunks) * latency:8.2f} s"
        " + split + join"
    )


def _rss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as handle:
            return [int(p) for p in handle.read().split()]
    except OSError:
        return []


def bench_rss(cache: Path) -> None:
    wav = make_recording(cache / "speech_60min.wav", 3600)
    mp3 = cache / "speech_60min.mp3"
    if not mp3.exists():
        subprocess.run(
            [find_ffmpeg(), "-v", "error", "-y", "-i", str(wav), "-b:a", "128k", str(mp3)],
            check=True,
        )
    with tempfile.TemporaryDirectory() as tmp, DemoEndpoint(latency_s=0.05, workers=3) as demo:
        home = Path(tmp)
        started = time.perf_counter()
        proc = subprocess.Popen(
            _cli(
                "render",
                PORTRAIT,
                mp3,
                "-o",
                home / "o.mp4",
                "--endpoint-url",
                demo.url,
                "--size",
                "256x256",
            ),
            env=_env(home),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        peaks: dict[int, tuple[str, int]] = {}
        stop = threading.Event()

        def sample() -> None:
            while not stop.is_set():
                for pid in [proc.pid, *_children(proc.pid)]:
                    rss = _rss_kb(pid)
                    name = "cli" if pid == proc.pid else "ffmpeg"
                    if rss > peaks.get(pid, (name, 0))[1]:
                        peaks[pid] = (name, rss)
                time.sleep(0.02)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        _, err = proc.communicate()
        stop.set()
        sampler.join()
        elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        print(err.decode()[-2000:])
        raise SystemExit("the 60-minute job failed")
    cli_peak = max((rss for name, rss in peaks.values() if name == "cli"), default=0)
    ff_peak = max((rss for name, rss in peaks.values() if name == "ffmpeg"), default=0)
    print(f"## peak RSS, 60-minute MP3 job ({elapsed:.0f} s, {len(peaks) - 1} ffmpeg runs seen)")
    print(
        "baseline  the original script loads the whole decoded hour with pydub: "
        f"{3600 * 44100 * 2 * 2 / 1e6:.0f} MB of PCM alone"
    )
    print(f"ours      CLI process peak    : {cli_peak / 1024:7.1f} MB (goal < 300 MB)")
    print(f"ours      largest ffmpeg child: {ff_peak / 1024:7.1f} MB (goal < 300 MB)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=("first-run", "wall", "rss"))
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "itg-bench")
    args = parser.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)
    for name, bench in (("first-run", bench_first_run), ("wall", bench_wall), ("rss", bench_rss)):
        if args.only in (None, name):
            bench(args.cache)
            print()


if __name__ == "__main__":
    main()
