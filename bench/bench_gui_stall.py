"""Benchmark: how long the GUI thread stalls during a full demo render.

    python bench/bench_gui_stall.py [--seconds 75] [--size 256x256] [--chunk-seconds 20]
                                    [--latency 1.0] [--json]

A 10 ms QTimer on the GUI thread records when it really fires; a late tick is a stall: the
time the window could not repaint or react. Two runs of the same render (speech-like audio
made with tests/mediagen.py, a few chunks, the built-in demo endpoint, which really encodes
every chunk video with ffmpeg on this machine):

- controller: the app's way. RenderController runs the job on its QThreadPool and feeds a
  visible chunk table (ChunkTableModel + progress delegate) and a log view through queued,
  coalesced signals.
- idle: the timer alone for as long, to show the machine's own scheduling noise;
- controller with the endpoint elsewhere: the same, with the demo endpoint in a child
  process, as RunPod is in real use: the in-process demo's JSON/base64/PIL work holds the
  GIL in long C calls and shows up as GUI stalls that a real render does not have;
- baseline: what a naive app does: ``create_job`` + ``run_job`` called from a slot on the
  GUI thread. Its stall is the whole render.

Prints the max and p99 gap between ticks (goal for the app: max < 50 ms) next to the
baseline, and the GUI thread's own CPU time between ticks ("GUI CPU"): a gap with little GUI
CPU in it was the thread waiting for a core (a loaded machine) or for the GIL, not working.
Runs offscreen with its own temporary config/data/cache folders. On a shared machine, run it
when it is quiet (the idle row shows the noise) or take the best of ``--repeat N``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TICK_MS = 10


def _isolate(home: Path) -> None:
    """Never touch the user's job store, cache or settings."""
    for var, sub in (
        ("XDG_CONFIG_HOME", "config"),
        ("XDG_DATA_HOME", "data"),
        ("XDG_CACHE_HOME", "cache"),
        ("XDG_STATE_HOME", "state"),
    ):
        (home / sub).mkdir(parents=True, exist_ok=True)
        os.environ[var] = str(home / sub)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))


class TickProbe:
    """A 10 ms precise timer on the GUI thread; records the gaps between its ticks."""

    def __init__(self) -> None:
        from infinitetalk_gui.qt.compat import QtCore

        self.stamps: list[float] = []
        self.cpu: list[float] = []  # the GUI thread's own CPU time at each tick
        self.timer = QtCore.QTimer()
        self.timer.setTimerType(QtCore.Qt.TimerType.PreciseTimer)
        self.timer.setInterval(TICK_MS)
        self.timer.timeout.connect(self._tick)

    def _tick(self) -> None:
        self.stamps.append(time.perf_counter())
        self.cpu.append(time.thread_time())

    def start(self) -> None:
        self.stamps = [time.perf_counter()]
        self.cpu = [time.thread_time()]
        self.timer.start()

    def stop(self) -> None:
        self.timer.stop()

    def gaps_ms(self) -> list[float]:
        return [(b - a) * 1000 for a, b in itertools.pairwise(self.stamps)]

    def busy_ms(self) -> list[float]:
        """CPU time the GUI thread itself spent between ticks (waiting for a CPU or the GIL
        is not in it): the part of a stall that is work done on the GUI thread."""
        return [(b - a) * 1000 for a, b in itertools.pairwise(self.cpu)]


def _percentile(ordered: list[float], fraction: float) -> float:
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def _stats(probe: TickProbe) -> dict[str, Any]:
    gaps = sorted(probe.gaps_ms())
    busy = sorted(probe.busy_ms())
    if not gaps:
        return {"ticks": 0, "max_ms": 0.0, "p99_ms": 0.0, "median_ms": 0.0, "over_50ms": 0}
    return {
        "ticks": len(gaps),
        "max_ms": round(gaps[-1], 1),
        "p99_ms": round(_percentile(gaps, 0.99), 1),
        "median_ms": round(statistics.median(gaps), 1),
        "over_50ms": sum(1 for g in gaps if g > 50),
        "gui_cpu_max_ms": round(busy[-1], 1),
        "gui_cpu_p99_ms": round(_percentile(busy, 0.99), 1),
    }


def _media(folder: Path, seconds: float) -> tuple[Path, Path]:
    from tests import mediagen

    image = mediagen.portrait(folder / "face.png", 360, 480)
    voice = mediagen.speechlike_wav(folder / "voice.wav", mediagen.alternating(seconds))
    return image, voice


def _settings(args: argparse.Namespace, endpoint_url: str, demo: bool) -> Any:
    from infinitetalk_gui.core.models import RenderSettings, parse_size

    width, height = parse_size(args.size)
    return RenderSettings(
        endpoint_url=endpoint_url,
        width=width,
        height=height,
        chunk_seconds=args.chunk_seconds,
        concurrency=3,
        demo=demo,
    )


def run_controller(
    args: argparse.Namespace,
    work: Path,
    image: Path,
    voice: Path,
    run: int = 0,
    endpoint_url: str | None = None,
) -> dict[str, Any]:
    """The app's way: controller + pool, with a real table and log view being updated.

    ``endpoint_url`` None renders on the controller's in-process demo endpoint (the app's
    "Demo (local)"); a URL renders on that endpoint like on RunPod (nothing in-process).
    """
    from infinitetalk_gui.core.store import JobStore
    from infinitetalk_gui.qt.compat import QtCore, QtWidgets
    from infinitetalk_gui.qt.controller import RenderController
    from infinitetalk_gui.qt.models import COL_PROGRESS, ChunkTableModel, ProgressBarDelegate

    tag = "external" if endpoint_url else "demo"
    store = JobStore(work / f"controller-{tag}-{run}.sqlite3")
    controller = RenderController(store, demo_latency_s=args.latency)
    model = ChunkTableModel()
    view = QtWidgets.QTableView()
    view.setModel(model)
    view.setItemDelegateForColumn(COL_PROGRESS, ProgressBarDelegate(view))
    view.resize(900, 400)
    view.show()
    log_view = QtWidgets.QPlainTextEdit()
    log_view.show()
    # Paint once before measuring: the first paint loads fonts and styles (a one-off cost of
    # any window, not of rendering). And load Pillow's plugins as the app does at start-up.
    from infinitetalk_gui.core.media import preload_image_plugins

    preload_image_plugins()
    for widget in (view, log_view):
        widget.grab()
    QtWidgets.QApplication.processEvents()
    controller.chunksReset.connect(model.set_job)
    controller.chunkChanged.connect(model.update_chunk)
    controller.logLine.connect(log_view.appendPlainText)

    counts = {"events": 0, "jobChanged": 0, "chunkChanged": 0}
    listener = controller._on_event  # count the pipeline's events before coalescing

    def counting(event: Any) -> None:
        counts["events"] += 1
        listener(event)

    controller._on_event = counting  # type: ignore[method-assign]

    def count(name: str) -> Any:
        def bump(*_args: Any) -> None:
            counts[name] += 1

        return bump

    controller.jobChanged.connect(count("jobChanged"))
    controller.chunkChanged.connect(count("chunkChanged"))

    loop = QtCore.QEventLoop()
    finished: list[Any] = []
    errors: list[str] = []

    def on_finished(job: Any) -> None:
        finished.append(job)
        loop.quit()

    def on_error(title: str, message: str) -> None:
        errors.append(f"{title}: {message}")
        loop.quit()

    controller.jobFinished.connect(on_finished)
    controller.errorOccurred.connect(on_error)

    probe = TickProbe()
    probe.start()
    started = time.perf_counter()
    demo = endpoint_url is None
    controller.start_render(
        image,
        voice,
        work / f"controller-{tag}-{run}.mp4",
        _settings(args, endpoint_url or "", demo),
        None,
        demo,
    )
    loop.exec()
    wall = time.perf_counter() - started
    probe.stop()
    shutdown_started = time.perf_counter()
    controller.shutdown(cancel_running=True)
    shutdown_ms = (time.perf_counter() - shutdown_started) * 1000
    view.close()
    log_view.close()
    store.close()
    if errors or not finished:
        raise SystemExit(f"controller render failed: {errors}")
    job = finished[0]
    return {
        "mode": "controller, endpoint in-process" if demo else "controller, endpoint elsewhere",
        "state": str(job.state),
        "chunks": len(job.chunks),
        "render_s": round(wall, 2),
        "shutdown_ms": round(shutdown_ms, 1),
        **counts,
        **_stats(probe),
    }


class ExternalEndpoint:
    """The demo endpoint in a child process: like RunPod, its work is not in the app's process
    (so its JSON and base64 work does not compete for the app's GIL)."""

    def __init__(self, latency: float) -> None:
        import subprocess

        code = (
            "import sys\n"
            "from infinitetalk_gui.core.demo_endpoint import DemoEndpoint\n"
            f"endpoint = DemoEndpoint(latency_s={latency!r}).start()\n"
            "print(endpoint.url, flush=True)\n"
            "sys.stdin.read()\n"
            "endpoint.stop()\n"
        )
        self.process = subprocess.Popen(
            [sys.executable, "-c", code],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        self.url = self.process.stdout.readline().strip()
        if not self.url.startswith("http://"):
            raise SystemExit("the external demo endpoint did not start")

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()  # its read() returns: it stops and exits
        self.process.wait(timeout=30)


def run_idle(seconds: float) -> dict[str, Any]:
    """The same timer with nothing else running: the machine's own scheduling noise."""
    from infinitetalk_gui.qt.compat import QtCore

    loop = QtCore.QEventLoop()
    probe = TickProbe()
    probe.start()
    QtCore.QTimer.singleShot(round(seconds * 1000), loop.quit)
    loop.exec()
    probe.stop()
    return {
        "mode": "idle (no render: machine noise)",
        "state": "-",
        "chunks": 0,
        "render_s": round(seconds, 2),
        **_stats(probe),
    }


def run_baseline(args: argparse.Namespace, work: Path, image: Path, voice: Path) -> dict[str, Any]:
    """A naive app: the whole render in a slot on the GUI thread."""
    from infinitetalk_gui.core.demo_endpoint import DemoEndpoint
    from infinitetalk_gui.core.pipeline import create_job, run_job
    from infinitetalk_gui.core.store import JobStore
    from infinitetalk_gui.qt.compat import QtCore

    store = JobStore(work / "baseline.sqlite3")
    result: list[Any] = []
    loop = QtCore.QEventLoop()
    probe = TickProbe()
    with DemoEndpoint(latency_s=args.latency) as endpoint:

        def render_in_slot() -> None:
            job = create_job(
                image,
                voice,
                work / "baseline.mp4",
                _settings(args, endpoint.url, True),
                store=store,
            )
            result.append(run_job(job.id, store=store, api_key=None))
            QtCore.QTimer.singleShot(5 * TICK_MS, loop.quit)  # a few ticks after it returns

        probe.start()
        started = time.perf_counter()
        QtCore.QTimer.singleShot(2 * TICK_MS, render_in_slot)
        loop.exec()
        wall = time.perf_counter() - started
        probe.stop()
    store.close()
    job = result[0]
    return {
        "mode": "baseline (render on the GUI thread)",
        "state": str(job.state),
        "chunks": len(job.chunks),
        "render_s": round(wall, 2),
        **_stats(probe),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=75.0, help="audio length (75)")
    parser.add_argument("--size", default="256x256", help="video size (256x256)")
    parser.add_argument("--chunk-seconds", type=float, default=20.0, help="chunk length (20)")
    parser.add_argument("--latency", type=float, default=1.0, help="demo seconds per chunk (1.0)")
    parser.add_argument("--repeat", type=int, default=1, help="controller runs (1)")
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument(
        "--skip-external", action="store_true", help="no run with the endpoint in a child process"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)

    load_before = round(os.getloadavg()[0], 2)
    with tempfile.TemporaryDirectory(prefix="bench-gui-stall-") as tmp:
        work = Path(tmp)
        _isolate(work / "home")
        from infinitetalk_gui.qt.compat import PYSIDE_VERSION, QtWidgets

        app = QtWidgets.QApplication.instance() or QtWidgets.QApplication([])
        image, voice = _media(work, args.seconds)
        runs = [run_controller(args, work, image, voice, n) for n in range(args.repeat)]
        runs.insert(0, run_idle(runs[0]["render_s"]))
        if not args.skip_external:
            external = ExternalEndpoint(args.latency)
            try:
                for n in range(args.repeat):
                    runs.append(run_controller(args, work, image, voice, n, external.url))
            finally:
                external.close()
        if not args.skip_baseline:
            runs.append(run_baseline(args, work, image, voice))
        del app

    report = {
        "audio_s": args.seconds,
        "size": args.size,
        "chunk_seconds": args.chunk_seconds,
        "demo_latency_s": args.latency,
        "tick_ms": TICK_MS,
        "pyside": PYSIDE_VERSION,
        "cpus": os.cpu_count(),
        "load_before": load_before,
        "runs": runs,
    }
    if args.json:
        print(json.dumps(report))
        return 0
    print(
        f"GUI stall during a demo render: {args.seconds:.0f} s audio, {args.size}, "
        f"{args.chunk_seconds:.0f} s chunks, demo latency {args.latency} s, "
        f"{os.cpu_count()} CPUs (load average {load_before} before), PySide6 {PYSIDE_VERSION}; "
        f"timer every {TICK_MS} ms"
    )
    header = f"{'mode':36} {'state':10} {'chunks':>6} {'render s':>9} {'ticks':>6} "
    header += f"{'median ms':>9} {'p99 ms':>8} {'max ms':>9} {'>50 ms':>7}"
    header += f" {'GUI CPU p99/max ms':>19}"
    print(header)
    for run in runs:
        print(
            f"{run['mode']:36} {run['state']:10} {run['chunks']:>6} {run['render_s']:>9} "
            f"{run['ticks']:>6} {run['median_ms']:>9} {run['p99_ms']:>8} {run['max_ms']:>9} "
            f"{run['over_50ms']:>7} {run['gui_cpu_p99_ms']:>9}/{run['gui_cpu_max_ms']}"
        )
    idle = runs[0]
    for app_run in (r for r in runs if r["mode"].startswith("controller")):
        print(f"{app_run['mode']}:", end=" ")
        print(
            f"{app_run['events']} pipeline events -> {app_run['jobChanged']} "
            f"jobChanged and {app_run['chunkChanged']} chunkChanged signals; shutdown "
            f"{app_run['shutdown_ms']} ms; goal max < 50 ms: "
            f"{'met' if app_run['max_ms'] < 50 else 'NOT met'} (idle max on this machine "
            f"now: {idle['max_ms']} ms; GUI-thread CPU max {app_run['gui_cpu_max_ms']} ms)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
