"""Load test of the REST service on loopback: many concurrent status polls while jobs render.

    python bench/bench_server_load.py [--jobs 4] [--pollers 50] [--polls 40] [--latency 3]

Starts ``infinitetalk-gui serve --demo`` in its own process on 127.0.0.1 (a random port), with
its own temporary data folders (your job history is not touched), submits
``--jobs`` renders of a 12 s voice at 256x256, then runs ``--pollers`` threads, each with its
own connection, doing ``--polls`` ``GET /jobs/{id}?inline=0`` back to back while the jobs
render. Prints requests, errors, latency percentiles and throughput; ``--json`` prints them as
JSON. The per-client rate limit is off here: 50 pollers from one address are exactly what it
is meant to refuse. Needs the ``server`` extra.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import wave
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TERMINAL = {"COMPLETED", "FAILED", "CANCELLED", "TIMED_OUT"}
XDG_VARS = ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME", "XDG_STATE_HOME")


@dataclass
class LoadResult:
    requests: int
    errors: int
    seconds: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    requests_per_s: float
    polls_while_rendering: int  # answers that said IN_QUEUE or IN_PROGRESS

    def summary(self) -> str:
        return (
            f"{self.requests} polls, {self.errors} errors in {self.seconds:.2f} s "
            f"({self.requests_per_s:.0f} req/s); latency p50 {self.p50_ms:.1f} ms, "
            f"p95 {self.p95_ms:.1f} ms, p99 {self.p99_ms:.1f} ms, max {self.max_ms:.1f} ms; "
            f"{self.polls_while_rendering} answered while the jobs were rendering"
        )


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return 0.0
    index = min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))
    return ordered[index]


def poll_load(url: str, job_ids: list[str], pollers: int, polls: int) -> LoadResult:
    """``pollers`` threads, one connection each, ``polls`` status requests each."""
    import httpx

    latencies: list[float] = []
    errors: list[str] = []
    rendering = 0
    lock = threading.Lock()
    start = threading.Barrier(pollers + 1)

    def poller(n: int) -> None:
        nonlocal rendering
        mine: list[float] = []
        busy = 0
        with httpx.Client(base_url=url, timeout=30) as client:
            start.wait()
            for i in range(polls):
                job_id = job_ids[(n + i) % len(job_ids)]
                began = time.perf_counter()
                try:
                    answer = client.get(f"/jobs/{job_id}", params={"inline": 0})
                    took = time.perf_counter() - began
                    if answer.status_code != 200:
                        with lock:
                            errors.append(f"HTTP {answer.status_code}: {answer.text[:100]}")
                        continue
                    if answer.json()["status"] not in TERMINAL:
                        busy += 1
                except httpx.HTTPError as error:
                    with lock:
                        errors.append(f"{type(error).__name__}: {error}")
                    continue
                mine.append(took)
        with lock:
            latencies.extend(mine)
            rendering += busy

    threads = [threading.Thread(target=poller, args=(n,), daemon=True) for n in range(pollers)]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - began
    ms = [value * 1000 for value in latencies]
    if errors:
        print(f"first errors: {errors[:3]}", file=sys.stderr)
    return LoadResult(
        requests=len(latencies) + len(errors),
        errors=len(errors),
        seconds=seconds,
        p50_ms=statistics.median(ms) if ms else 0.0,
        p95_ms=percentile(ms, 0.95),
        p99_ms=percentile(ms, 0.99),
        max_ms=max(ms, default=0.0),
        requests_per_s=(len(latencies) + len(errors)) / seconds if seconds else 0.0,
        polls_while_rendering=rendering,
    )


def make_media(folder: Path, seconds: float = 12.0) -> tuple[str, str]:
    """A portrait and a speech-like voice (syllables and pauses), as base64."""
    import numpy as np
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (300, 420), (40, 90, 160))
    ImageDraw.Draw(image).ellipse((75, 84, 225, 315), fill=(230, 190, 160))
    image.save(folder / "face.png")
    rate = 16000
    t = np.arange(round(seconds * rate)) / rate
    voice = 0.12 * np.sin(2 * np.pi * 180 * t) * (0.55 + 0.45 * np.abs(np.sin(2 * np.pi * 3 * t)))
    voice[(t % 4.0) > 3.4] = 0.0  # a pause every 4 s
    with wave.open(str(folder / "voice.wav"), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes((voice * 32767).astype("<i2").tobytes())
    return tuple(  # type: ignore[return-value]
        base64.b64encode((folder / name).read_bytes()).decode()
        for name in ("face.png", "voice.wav")
    )


def start_service(env: dict[str, str]) -> tuple[subprocess.Popen[str], str]:
    """``infinitetalk-gui serve --demo`` in its own process (so the pollers here do not share
    its interpreter); returns it and its URL once it listens."""
    process = subprocess.Popen(
        [sys.executable, "-m", "infinitetalk_gui.cli", "serve", "--demo", "--port", "0"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    for line in process.stderr:
        match = re.search(r"REST service on (http://\S+)", line)
        if match:
            # Keep draining its log so the pipe never fills.
            threading.Thread(target=process.stderr.read, daemon=True).start()
            return process, match.group(1)
    process.wait()
    raise RuntimeError("the service did not start")


def run(jobs: int, pollers: int, polls: int, latency: float, home: Path) -> dict[str, Any]:
    import httpx

    env = {
        **os.environ,
        **{var: str(home / var.lower()) for var in XDG_VARS},
        "PYTHONPATH": str(ROOT),
        "DEMO_LATENCY_SEC": str(latency),
        "MAX_CONCURRENT_JOBS": str(jobs),
        "CHUNK_TARGET_SEC": "10",
        "RATE_LIMIT_PER_SEC": "0",
        "LOG_LEVEL": "warning",
    }
    process, url = start_service(env)
    try:
        image_b64, audio_b64 = make_media(home)
        with httpx.Client(base_url=url, timeout=60) as client:
            body = {
                "image_base64": image_b64,
                "audio_base64": audio_b64,
                "width": 256,
                "height": 256,
            }
            job_ids = [client.post("/jobs", json=body).json()["id"] for _ in range(jobs)]
            result = poll_load(url, job_ids, pollers, polls)
            deadline = time.monotonic() + 300
            states = []
            while time.monotonic() < deadline:
                states = [client.get(f"/jobs/{j}", params={"inline": 0}).json() for j in job_ids]
                if all(doc["status"] in TERMINAL for doc in states):
                    break
                time.sleep(0.2)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)
    return {
        "jobs": jobs,
        "pollers": pollers,
        "polls_each": polls,
        "demo_latency_s": latency,
        "jobs_completed": sum(doc["status"] == "COMPLETED" for doc in states),
        **asdict(result),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=4)
    parser.add_argument("--pollers", type=int, default=50)
    parser.add_argument("--polls", type=int, default=40)
    parser.add_argument("--latency", type=float, default=3.0, help="demo seconds per chunk")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-server-") as home:
        figures = run(args.jobs, args.pollers, args.polls, args.latency, Path(home))
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        result = LoadResult(**{k: figures[k] for k in LoadResult.__dataclass_fields__})
        print(
            f"{figures['jobs']} jobs rendering ({figures['jobs_completed']} completed), "
            f"{figures['pollers']} concurrent pollers x {figures['polls_each']} polls: "
            + result.summary()
        )
    return 0 if figures["errors"] == 0 and figures["jobs_completed"] == figures["jobs"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
