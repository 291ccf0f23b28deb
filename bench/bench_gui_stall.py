"""Benchmark: how long the GUI thread stalls during a full demo render.

    python bench/bench_gui_stall.py [--seconds 75] [--size 256x256] [--chunk-seconds 20]
                                    [--latency 1.0] [--json]

A 10 ms QTimer on the GUI thread records when it really fires; a late tick is a stall: the
time the window could not repaint or react. Runs of the same render (speech-like audio made
with tests/mediagen.py, a few chunks, the built-in demo endpoint, which really encodes every
chunk video with ffmpeg on this machine), each process prepared as the app prepares itself
(``app.prepare_process``):

- idle: the timer alone for as long, to show the machine's own scheduling noise;
- controller: the app's core path alone. RenderController runs the job on its QThreadPool and
  feeds a visible chunk table (ChunkTableModel + progress delegate) and a log view through
  queued, coalesced signals;
- main window: the whole app, as a user sees it: the real window (chunk table, progress,
  history, status line), from pressing Render until the preview shows the video's first
  frame (QtMultimedia loading it included);
- controller, demo in-process (old): the demo endpoint inside the app's process, as the app
  ran it before it got a process of its own: its JSON, base64 and bookkeeping then compete
  with the window for the GIL;
- baseline: what a naive app does: ``create_job`` + ``run_job`` called from a slot on the
  GUI thread. Its stall is the whole render.

Prints the max and p99 gap between ticks (goal for the app: max < 50 ms) next to the
baseline, and splits the worst gap into the GUI thread's own CPU time, its time waiting for
a free core (Linux, from /proc) and the rest (waiting for the GIL or a lock). Runs offscreen
with its own temporary config/data/cache folders. On a shared machine, run it when it is
quiet (the idle row shows the noise) or take the best of ``--repeat N``.
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


_SCHEDSTAT = Path("/proc/thread-self/schedstat")


def _runqueue_ms() -> float:
    """Linux: how long this thread has waited, runnable, for a CPU (0 elsewhere)."""
    try:
        return int(_SCHEDSTAT.read_text().split()[1]) / 1e6
    except (OSError, IndexError, ValueError):
        return 0.0


class TickProbe:
    """A 10 ms precise timer on the GUI thread; records the gaps between its ticks."""

    def __init__(self) -> None:
        from infinitetalk_gui.qt.compat import QtCore

        self.stamps: list[float] = []
        self.cpu: list[float] = []  # the GUI thread's own CPU time at each tick
        self.runq: list[float] = []  # its time spent waiting for a CPU, at each tick
        self.timer = QtCore.QTimer()
        self.timer.setTimerType(QtCore.Qt.TimerType.PreciseTimer)
        self.timer.setInterval(TICK_MS)
        self.timer.timeout.connect(self._tick)

    def _tick(self) -> None:
        self.stamps.append(time.perf_counter())
        self.cpu.append(time.thread_time())
        self.runq.append(_runqueue_ms())

    def start(self) -> None:
        self.stamps = [time.perf_counter()]
        self.cpu = [time.thread_time()]
        self.runq = [_runqueue_ms()]
        self.timer.start()

    def stop(self) -> None:
        self.timer.stop()

    def gaps_ms(self) -> list[float]:
        return [(b - a) * 1000 for a, b in itertools.pairwise(self.stamps)]

    def busy_ms(self) -> list[float]:
        """CPU time the GUI thread itself spent between ticks (waiting for a CPU or the GIL
        is not in it): the part of a stall that is work done on the GUI thread."""
        return [(b - a) * 1000 for a, b in itertools.pairwise(self.cpu)]

    def worst(self) -> dict[str, float]:
        """The longest gap, split into GUI-thread CPU, waiting for a CPU (Linux) and the rest:
        waiting for the GIL, a lock or the kernel."""
        gaps = self.gaps_ms()
        if not gaps:
            return {}
        i = max(range(len(gaps)), key=gaps.__getitem__)
        cpu = (self.cpu[i + 1] - self.cpu[i]) * 1000
        runq = self.runq[i + 1] - self.runq[i]
        return {
            "gap": round(gaps[i], 1),
            "cpu": round(cpu, 1),
            "runq": round(runq, 1),
            "rest": round(max(0.0, gaps[i] - cpu - runq), 1),
            "at_s": round(self.stamps[i] - self.stamps[0], 2),
        }


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
        "worst": probe.worst(),
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

    ``endpoint_url`` None renders on the controller's own demo endpoint (the app's "Demo
    (local)", a process of its own); a URL renders on that endpoint instead.
    """
    from infinitetalk_gui.core.store import JobStore
    from infinitetalk_gui.qt.compat import QtCore, QtWidgets
    from infinitetalk_gui.qt.controller import RenderController
    from infinitetalk_gui.qt.models import COL_PROGRESS, ChunkTableModel, ProgressBarDelegate

    tag = "inprocess" if endpoint_url else "demo"
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
    # any window, not of rendering). And prepare the process as the app does at start-up.
    from infinitetalk_gui.app import prepare_process

    prepare_process()
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
        "mode": "controller (the app's way)" if demo else "controller, demo in-process (old)",
        "state": str(job.state),
        "chunks": len(job.chunks),
        "render_s": round(wall, 2),
        "shutdown_ms": round(shutdown_ms, 1),
        **counts,
        **_stats(probe),
    }


def run_window(
    args: argparse.Namespace, work: Path, image: Path, voice: Path, run: int = 0
) -> dict[str, Any]:
    """The whole app: the real main window, from pressing Render to the preview's first frame.

    Everything a user's window does during a demo render runs here too: the chunk table,
    progress and cost labels, the history list, the log line, and at the end the preview
    player loading the video (QtMultimedia) and showing its poster frame.
    """
    from infinitetalk_gui.app import prepare_process
    from infinitetalk_gui.core.settings import Settings
    from infinitetalk_gui.core.store import JobStore
    from infinitetalk_gui.qt.compat import QtCore, QtWidgets
    from infinitetalk_gui.qt.controller import RenderController
    from infinitetalk_gui.ui.main_window import MainWindow
    from infinitetalk_gui.ui.state import UiState

    width, height = args.size.split("x")
    store = JobStore(work / f"window-{run}.sqlite3")
    settings = Settings(
        output_dir=str(work / f"window-{run}"),
        chunk_seconds=args.chunk_seconds,
        concurrency=3,
        size=f"{width}x{height}",
    )
    controller = RenderController(store, demo_latency_s=args.latency)
    prepare_process()  # what run_app does before the window shows
    window = MainWindow(
        controller, store, settings=settings, state=UiState(work / f"window-{run}.ini")
    )
    window.resize(1100, 720)
    window.show()
    window.portrait_zone.choose(image)
    window.voice_zone.choose(voice)
    app = QtWidgets.QApplication.instance()
    assert app is not None
    deadline = time.monotonic() + 60
    while window.portrait_zone.path is None or window.voice_zone.path is None:
        if time.monotonic() > deadline:
            raise SystemExit(
                f"the window did not accept the inputs: {window.portrait_zone.error_text} "
                f"{window.voice_zone.error_text}"
            )
        app.processEvents()
        time.sleep(0.01)
    window.grab()  # the first full paint (fonts, styles) before measuring
    app.processEvents()

    loop = QtCore.QEventLoop()
    preview = window.preview

    def poster_shown() -> None:
        if preview.source is not None and preview.current_frame() is not None:
            loop.quit()

    preview.video_widget.videoSink().videoFrameChanged.connect(
        poster_shown, QtCore.Qt.ConnectionType.QueuedConnection
    )
    controller.errorOccurred.connect(lambda *_: loop.quit())

    def finished(job: Any) -> None:
        if str(job.state) != "COMPLETED":
            loop.quit()

    controller.jobFinished.connect(finished)
    watchdog = QtCore.QTimer()
    watchdog.setSingleShot(True)
    watchdog.timeout.connect(loop.quit)
    watchdog.start(round(args.seconds * 4000) + 60_000)
    probe = TickProbe()
    probe.start()
    started = time.perf_counter()
    window.start_render()
    loop.exec()
    wall = time.perf_counter() - started
    probe.stop()
    job = controller.current_job
    got_frame = preview.current_frame() is not None
    window.shutdown(cancel_running=True)
    window.close()
    store.close()
    if job is None or str(job.state) != "COMPLETED" or not got_frame:
        state = "no job" if job is None else f"{job.state} {job.error or ''}"
        raise SystemExit(f"the window's demo render did not reach the preview: {state}")
    return {
        "mode": "main window, render to preview",
        "state": str(job.state),
        "chunks": len(job.chunks),
        "render_s": round(wall, 2),
        **_stats(probe),
    }


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
        "--skip-inprocess",
        action="store_true",
        help="no run with the demo endpoint inside the app's process (the old way)",
    )
    parser.add_argument(
        "--skip-window", action="store_true", help="no run of the whole main window"
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
        if not args.skip_window:
            runs.extend(run_window(args, work, image, voice, n) for n in range(args.repeat))
        if not args.skip_inprocess:
            from infinitetalk_gui.core.demo_endpoint import DemoEndpoint

            with DemoEndpoint(latency_s=args.latency) as inside:
                for n in range(args.repeat):
                    runs.append(run_controller(args, work, image, voice, n, inside.url))
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
    header = f"{'mode':35} {'chunks':>6} {'render s':>8} {'ticks':>5} "
    header += f"{'median ms':>9} {'p99 ms':>7} {'max ms':>7} {'>50 ms':>6}"
    header += f" {'GUI CPU p99/max':>15}  worst gap = GUI CPU + CPU wait + rest (at s)"
    print(header)
    for run in runs:
        worst = run.get("worst") or {}
        split = (
            f"{worst['gap']} = {worst['cpu']} + {worst['runq']} + {worst['rest']} ({worst['at_s']})"
            if worst
            else "-"
        )
        print(
            f"{run['mode'][:35]:35} {run['chunks']:>6} {run['render_s']:>8} "
            f"{run['ticks']:>5} {run['median_ms']:>9} {run['p99_ms']:>7} {run['max_ms']:>7} "
            f"{run['over_50ms']:>6} {run['gui_cpu_p99_ms']:>7}/{run['gui_cpu_max_ms']:<7}  {split}"
        )
    idle = runs[0]
    print(
        "GUI CPU: the GUI thread's own work; CPU wait: runnable but no core free (Linux); rest:"
        " waiting for the GIL or a lock."
    )
    for app_run in (r for r in runs if r["mode"].startswith(("controller", "main window"))):
        print(f"{app_run['mode']}:", end=" ")
        if "events" in app_run:
            print(
                f"{app_run['events']} pipeline events -> {app_run['jobChanged']} "
                f"jobChanged and {app_run['chunkChanged']} chunkChanged signals; shutdown "
                f"{app_run['shutdown_ms']} ms;",
                end=" ",
            )
        print(
            f"goal max < 50 ms: {'met' if app_run['max_ms'] < 50 else 'NOT met'} (idle max on "
            f"this machine now: {idle['max_ms']} ms)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
