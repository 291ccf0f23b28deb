"""``infinitetalk-gui``: the desktop app with no arguments, a headless CLI with a subcommand.

The subcommands never import Qt, so they start fast and run on machines with no display.
Exit codes: 0 success, 1 the job failed or was cancelled, 2 bad input or usage.
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, TextIO

from infinitetalk_gui import __version__

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
GUI_FLAGS = ("--smoke", "--screenshot", "--with-demo-job", "--while-running")


class UsageError(Exception):
    """Bad input or usage: exit 2 with the message."""


# ----------------------------------------------------------------------------- parser


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"'{text}' must be 1 or more")
    return value


def _size(text: str) -> tuple[int, int]:
    from infinitetalk_gui.core.models import parse_size

    try:
        return parse_size(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number of seconds") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"'{text}' must be more than 0 seconds")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="infinitetalk-gui",
        description=(
            "Lip-synced talking-head video from a portrait and a voice clip, rendered on your "
            "RunPod InfiniteTalk endpoint. With no command, opens the desktop app."
        ),
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    render = sub.add_parser("render", help="render PORTRAIT + AUDIO to an MP4")
    render.add_argument("portrait", type=Path, help="PNG, JPEG or WebP portrait")
    render.add_argument("audio", type=Path, help="voice clip (WAV, MP3, M4A, OGG, FLAC, video)")
    render.add_argument("-o", "--output", type=Path, required=True, help="output .mp4 file")
    where = render.add_mutually_exclusive_group()
    where.add_argument("--endpoint-id", help="RunPod endpoint id")
    where.add_argument("--endpoint-url", help="endpoint base URL (requests go to URL/run ...)")
    where.add_argument(
        "--demo", action="store_true", help="render on the built-in local demo endpoint (no key)"
    )
    render.add_argument("--size", type=_size, help="WIDTHxHEIGHT, multiples of 16 (512x512)")
    render.add_argument("--prompt", help="text prompt for the model")
    render.add_argument("--concurrency", type=_positive_int, help="chunks in flight (3)")
    render.add_argument("--chunk-seconds", type=_seconds, help="target chunk length (45)")
    render.add_argument("--silence-db", type=float, help="silence threshold in dBFS (-40)")
    render.add_argument("--min-silence-ms", type=_positive_int, help="shortest silence (500)")
    render.add_argument("--attempts", type=_positive_int, help="tries per chunk (4)")
    render.add_argument("--timeout", type=_seconds, help="time limit for the whole job, seconds")
    render.add_argument("--pad", help="pad colour (name or #rrggbb) or 'blur' (black)")
    render.add_argument("--overwrite", action="store_true", help="replace an existing output")
    render.add_argument("--json", action="store_true", help="JSON events on stdout, one a line")

    jobs = sub.add_parser("jobs", help="recent jobs")
    jobs.add_argument("--json", action="store_true", help="print a JSON list")
    jobs.add_argument("--limit", type=_positive_int, default=20)

    resume = sub.add_parser("resume", help="finish an interrupted, failed or cancelled job")
    resume.add_argument("job_id")
    resume.add_argument("--json", action="store_true", help="JSON events on stdout")

    cancel = sub.add_parser("cancel", help="cancel a job, remote chunks included")
    cancel.add_argument("job_id")

    key = sub.add_parser("key", help="the RunPod API key in the system keyring")
    key.add_argument("action", choices=("set", "clear", "status"))

    check = sub.add_parser(
        "check", help="is the endpoint reachable, the key accepted, a worker warm?"
    )
    check_where = check.add_mutually_exclusive_group()
    check_where.add_argument("--endpoint-id")
    check_where.add_argument("--endpoint-url")
    check_where.add_argument("--demo", action="store_true")

    config = sub.add_parser("config", help="saved settings")
    config.add_argument("action", choices=("get", "set"))
    config.add_argument("key", nargs="?")
    config.add_argument("value", nargs="?")

    demo = sub.add_parser("demo-endpoint", help="run the local demo endpoint on its own")
    demo.add_argument("--port", type=int, default=8000)
    demo.add_argument("--latency", type=float, default=1.0, help="seconds per chunk (1.0)")

    serve = sub.add_parser("serve", help="the local REST service (needs the [server] extra)")
    serve.add_argument("--host", help="interface to listen on (HOST, else 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (PORT, else 8080)")
    serve.add_argument("--demo", action="store_true")
    return parser


# ----------------------------------------------------------------------------- output


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _fmt_seconds(seconds: float) -> str:
    seconds = max(0, round(seconds))
    minutes, secs = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class ProgressPrinter:
    """Human progress on stderr: one line per chunk state change, and a progress bar."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self.started = time.monotonic()
        self.bar_shown = False

    def __call__(self, event: Any) -> None:
        job = event.job
        if event.message and event.kind in ("chunk", "job", "chunks"):
            self._clear_bar()
            stamp = _fmt_seconds(time.monotonic() - self.started)
            print(f"[{stamp}] {event.message}", file=self.stream, flush=True)
        self._bar(job)

    def _clear_bar(self) -> None:
        if self.tty and self.bar_shown:
            self.stream.write("\r\033[K")
            self.bar_shown = False

    def _bar(self, job: Any) -> None:
        if not self.tty or job.state.terminal or not job.chunks_total:
            return
        done, total = job.chunks_done, job.chunks_total
        width = 30
        filled = int(width * done / total)
        elapsed = time.monotonic() - self.started
        eta = "--:--"
        if done:
            eta = _fmt_seconds(elapsed / done * (total - done))
        line = (
            f"[{'#' * filled}{'.' * (width - filled)}] {done}/{total} chunks"
            f"  elapsed {_fmt_seconds(elapsed)}  ETA {eta}  ${job.cost_usd:.3f}"
        )
        self.stream.write("\r\033[K" + line)
        self.stream.flush()
        self.bar_shown = True

    def close(self) -> None:
        self._clear_bar()


def _json_listener(event: Any) -> None:
    print(json.dumps(event.to_json()), flush=True)


# ----------------------------------------------------------------------------- helpers


def _open_store() -> Any:
    from infinitetalk_gui.core.store import JobStore

    return JobStore()


@contextlib.contextmanager
def _demo_endpoint(latency: float = 1.0) -> Iterator[str]:
    from infinitetalk_gui.core.demo_endpoint import DemoEndpoint

    endpoint = DemoEndpoint(latency_s=latency)
    endpoint.start()
    try:
        yield endpoint.url
    finally:
        endpoint.stop()


@contextlib.contextmanager
def _sigint_cancels(token: Any) -> Iterator[None]:
    """First Ctrl-C cancels the job cleanly (remote chunks too); a second one aborts."""

    def handler(signum: int, frame: Any) -> None:
        if token.cancelled:
            raise KeyboardInterrupt
        # Cancel on a helper thread: the main thread may hold a lock token.cancel() needs.
        threading.Thread(target=token.cancel, name="sigint-cancel", daemon=True).start()
        os.write(2, b"\nCancelling: stopping remote chunks... (Ctrl-C again to abort at once)\n")

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _api_key(demo: bool) -> str | None:
    from infinitetalk_gui.core import logs, secrets

    if demo:
        return None
    key = secrets.get_key()
    if not key:
        raise UsageError(secrets.MISSING_KEY)
    logs.register_secret(key)
    return key


def _drive(job_id: str, *, store: Any, api_key: str | None, as_json: bool) -> int:
    from infinitetalk_gui.core.cancel import CancelToken
    from infinitetalk_gui.core.models import JobState
    from infinitetalk_gui.core.pipeline import run_job

    token = CancelToken()
    printer = None if as_json else ProgressPrinter(sys.stderr)
    listener = _json_listener if as_json else printer
    try:
        with _sigint_cancels(token):
            job = run_job(job_id, store=store, api_key=api_key, listener=listener, cancel=token)
    finally:
        if printer is not None:
            printer.close()
    if job.state is JobState.COMPLETED:
        if not as_json:
            _say(
                f"Done: {job.output_path} ({job.chunks_total} chunks, GPU "
                f"{job.exec_ms / 1000:.1f} s, queue {job.queue_ms / 1000:.1f} s, "
                f"about ${job.cost_usd:.3f})"
            )
        return EXIT_OK
    if not as_json:
        _say(f"Job {job.id} {job.state}: {job.error or 'no reason given'}")
        if job.chunks_total and job.chunks_done == job.chunks_total:
            _say(
                f"Every chunk is rendered and kept: 'infinitetalk-gui resume {job.id}' joins them."
            )
        elif job.chunks_done:
            _say(
                f"{job.chunks_done} of {job.chunks_total} chunks are done and kept: "
                f"'infinitetalk-gui resume {job.id}' renders the rest."
            )
        else:
            _say(f"To try again: infinitetalk-gui resume {job.id}")
    return EXIT_FAILED


# ----------------------------------------------------------------------------- commands


def cmd_render(args: argparse.Namespace) -> int:
    from infinitetalk_gui.core import settings as settings_mod
    from infinitetalk_gui.core.models import RenderSettings, parse_size
    from infinitetalk_gui.core.pipeline import create_job, resolve_endpoint

    saved = settings_mod.load()
    width, height = args.size or parse_size(saved.size)
    api_key = _api_key(args.demo)
    store = _open_store()
    stack = contextlib.ExitStack()
    with stack:
        if args.demo:
            endpoint_url: str | None = stack.enter_context(_demo_endpoint())
        else:
            endpoint_url = resolve_endpoint(
                endpoint_id=args.endpoint_id, endpoint_url=args.endpoint_url, settings=saved
            )
        render_settings = RenderSettings(
            endpoint_url=endpoint_url or "",
            width=width,
            height=height,
            prompt=args.prompt if args.prompt is not None else saved.prompt,
            concurrency=args.concurrency or saved.concurrency,
            chunk_seconds=args.chunk_seconds or saved.chunk_seconds,
            silence_db=args.silence_db if args.silence_db is not None else saved.silence_db,
            min_silence_ms=args.min_silence_ms or saved.min_silence_ms,
            attempts=args.attempts or saved.attempts,
            timeout_s=args.timeout,
            execution_timeout_ms=saved.execution_timeout_s * 1000,
            pad_color=args.pad or saved.pad_color,
            gpu_price_per_second=saved.gpu_price_per_second,
            overwrite=args.overwrite,
            demo=args.demo,
        )
        if not 10 <= render_settings.chunk_seconds <= 120:
            raise UsageError("--chunk-seconds must be between 10 and 120")
        if render_settings.concurrency > 32:
            raise UsageError("--concurrency must be 32 or less")
        job = create_job(args.portrait, args.audio, args.output, render_settings, store=store)
        if not args.json:
            _say(
                f"Job {job.id}: {Path(job.image_path).name} + {Path(job.audio_path).name} "
                f"-> {job.output_path}"
            )
        return _drive(job.id, store=store, api_key=api_key, as_json=args.json)
    return EXIT_FAILED  # pragma: no cover (the with block always returns)


def cmd_resume(args: argparse.Namespace) -> int:
    from infinitetalk_gui.core.pipeline import repoint_demo_job

    store = _open_store()
    job = store.resolve(args.job_id)
    stack = contextlib.ExitStack()
    with stack:
        if job.settings.demo:
            # The demo endpoint that rendered it is gone: start a new one for the rest.
            url = stack.enter_context(_demo_endpoint())
            repoint_demo_job(job.id, store=store, endpoint_url=url)
            api_key = None
        else:
            api_key = _api_key(False)
        if not args.json:
            _say(f"Resuming job {job.id} ({job.chunks_done}/{job.chunks_total} chunks done)")
        return _drive(job.id, store=store, api_key=api_key, as_json=args.json)
    return EXIT_FAILED  # pragma: no cover


def cmd_cancel(args: argparse.Namespace) -> int:
    from infinitetalk_gui.core import secrets
    from infinitetalk_gui.core.pipeline import cancel_remote

    store = _open_store()
    job = store.resolve(args.job_id)
    if job.state.terminal:
        _say(f"Job {job.id} has already ended ({job.state}).")
        return EXIT_OK
    key = None if job.settings.demo else secrets.get_key()
    driven = store.lease_holder(job.id) is not None
    remote = [c for c in job.chunks if c.runpod_id and not c.state.terminal]
    if remote and not driven and not job.settings.demo and not key:
        # Nobody else can stop its chunks on RunPod: without the key they would run on.
        raise UsageError(secrets.MISSING_KEY)
    job = cancel_remote(job.id, store=store, api_key=key)
    if not job.state.terminal:
        _say(
            f"Cancel requested: job {job.id} has not stopped yet ({job.state}). "
            f"Check again with 'infinitetalk-gui jobs'."
        )
        return EXIT_FAILED
    _say(f"Job {job.id}: {job.state}" + (f". {job.error}" if job.error != "Cancelled." else ""))
    return EXIT_OK


def cmd_jobs(args: argparse.Namespace) -> int:
    store = _open_store()
    jobs = store.list(limit=args.limit)
    if args.json:
        print(json.dumps([job.summary() for job in jobs], indent=2))
        return EXIT_OK
    if not jobs:
        _say("No jobs yet. Try: infinitetalk-gui render PORTRAIT AUDIO -o out.mp4 --demo")
        return EXIT_OK
    print(f"{'ID':<12}  {'STATE':<11}  {'CHUNKS':>7}  {'CREATED':<16}  OUTPUT")
    for job in jobs:
        created = time.strftime("%Y-%m-%d %H:%M", time.localtime(job.created_at))
        chunks = f"{job.chunks_done}/{job.chunks_total}"
        print(f"{job.id:<12}  {job.state!s:<11}  {chunks:>7}  {created:<16}  {job.output_path}")
    return EXIT_OK


def cmd_key(args: argparse.Namespace) -> int:
    from infinitetalk_gui.core import secrets

    if args.action == "status":
        source = secrets.key_source()
        backend = secrets.backend_name()
        keyring_text = backend or "none (no secure keyring on this system)"
        if source == "environment":
            _say(
                f"A key is set by {secrets.ENV_VAR} (it wins over the keyring). "
                f"Keyring: {keyring_text}"
            )
        elif source == "keyring":
            _say(f"A key is stored in the system keyring ({backend}).")
        else:
            _say(f"No key is set. Keyring: {keyring_text}. " + secrets.HOW_TO_PROVIDE)
        return EXIT_OK
    if args.action == "clear":
        removed = secrets.clear_key()
        _say("The key was removed from the keyring." if removed else "No key was stored.")
        return EXIT_OK
    if secrets.backend() is None:
        raise UsageError(
            "No secure keyring is available on this system, so the key cannot be saved. "
            f"Set the {secrets.ENV_VAR} environment variable instead."
        )
    key = (
        getpass.getpass("RunPod API key (input hidden): ")
        if sys.stdin.isatty()
        else (sys.stdin.readline())
    )
    secrets.set_key(key)
    _say(f"The key is stored in the system keyring ({secrets.backend_name()}).")
    return EXIT_OK


def cmd_check(args: argparse.Namespace) -> int:
    from infinitetalk_gui.core import runpod, secrets
    from infinitetalk_gui.core import settings as settings_mod
    from infinitetalk_gui.core.pipeline import resolve_endpoint

    with contextlib.ExitStack() as stack:
        if args.demo:
            url: str | None = stack.enter_context(_demo_endpoint())
            key = None
        else:
            url = resolve_endpoint(
                endpoint_id=args.endpoint_id,
                endpoint_url=args.endpoint_url,
                settings=settings_mod.load(),
            )
            key = secrets.get_key()
        if not url:
            raise UsageError(
                "No endpoint is set: give --endpoint-id ID, set RUNPOD_ENDPOINT_ID, or save one "
                "with 'infinitetalk-gui config set endpoint_id ID'."
            )
        if not key and not args.demo:
            raise UsageError(secrets.MISSING_KEY)
        client = runpod.RunPodClient(url, key)
        try:
            result = runpod.check_endpoint(client)
        finally:
            client.close()
    _say(result.message)
    return EXIT_OK if result.ok else EXIT_FAILED


def cmd_config(args: argparse.Namespace) -> int:
    from infinitetalk_gui.core import settings as settings_mod

    saved = settings_mod.load()
    if args.action == "get":
        if args.key:
            value = saved.get(args.key)
            print("" if value is None else value)
        else:
            for name, value in saved.to_dict().items():
                print(f"{name} = {'' if value is None else value}")
        return EXIT_OK
    if not args.key:
        raise UsageError("usage: infinitetalk-gui config set KEY VALUE")
    saved.set(args.key, args.value)
    settings_mod.save(saved)
    _say(f"{args.key} = {'' if saved.get(args.key) is None else saved.get(args.key)}")
    return EXIT_OK


def cmd_demo_endpoint(args: argparse.Namespace) -> int:
    from infinitetalk_gui.core.demo_endpoint import DemoEndpoint

    endpoint = DemoEndpoint(port=args.port, latency_s=args.latency)
    endpoint.start()
    _say(f"Demo endpoint listening on {endpoint.url} (Ctrl-C to stop)")
    _say(f"Render against it with: infinitetalk-gui render ... --endpoint-url {endpoint.url}")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        endpoint.stop()
    return EXIT_OK


def cmd_serve(args: argparse.Namespace) -> int:
    try:
        from infinitetalk_gui.server import serve
    except ImportError as error:
        raise UsageError(
            f"The REST service needs the optional server extra ({error.name} is missing). "
            "Install it with: pip install 'infinitetalk-gui[server]'"
        ) from None
    result: int = serve(host=args.host, port=args.port, demo=args.demo)
    return result


COMMANDS = {
    "render": cmd_render,
    "resume": cmd_resume,
    "cancel": cmd_cancel,
    "jobs": cmd_jobs,
    "key": cmd_key,
    "check": cmd_check,
    "config": cmd_config,
    "demo-endpoint": cmd_demo_endpoint,
    "serve": cmd_serve,
}


def _wants_gui(args: Sequence[str]) -> bool:
    """No command, a window flag, or files to open ('Open with', a drop on the app icon)."""
    if not args:
        return True
    first = args[0]
    if first in COMMANDS or first in ("-h", "--help", "--version"):
        return False
    return any(arg.split("=")[0] in GUI_FLAGS for arg in args) or Path(first).is_file()


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if _wants_gui(args_list):
        from infinitetalk_gui.app import run_gui

        return run_gui(args_list)
    parser = build_parser()
    args = parser.parse_args(args_list)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE

    from infinitetalk_gui.core.errors import ConfigError, InfiniteTalkError, InputError, JobLocked
    from infinitetalk_gui.core.logs import setup_logging

    setup_logging()
    try:
        return COMMANDS[args.command](args)
    except UsageError as error:
        _say(f"error: {error}")
        return EXIT_USAGE
    except (InputError, JobLocked) as error:
        _say(f"error: {error}")
        return EXIT_USAGE
    except InfiniteTalkError as error:
        # Config problems (no endpoint, no key, bad setting) are usage errors too.
        _say(f"error: {error}")
        return EXIT_USAGE if isinstance(error, ConfigError) else EXIT_FAILED
    except KeyboardInterrupt:
        _say("Aborted.")
        return EXIT_FAILED


if __name__ == "__main__":
    raise SystemExit(main())
