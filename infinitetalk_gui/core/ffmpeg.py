"""The one place that finds and runs ffmpeg: timeouts, cancellation, stderr in errors."""

from __future__ import annotations

import collections
import contextlib
import os
import re
import subprocess
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from infinitetalk_gui.core.cancel import CancelToken
from infinitetalk_gui.core.errors import Cancelled, ConfigError, FFmpegError

STDERR_TAIL_LINES = 15
PROBE_TIMEOUT_S = 60
_NO_WINDOW = getattr(subprocess, "CREATE_NO_WINDOW", 0)
# How much less CPU priority ffmpeg children get in background mode (POSIX nice steps).
BACKGROUND_NICENESS = 10
_background = False


def run_in_background(enabled: bool = True) -> None:
    """Give every ffmpeg started from now on a lower CPU priority than this process.

    For the desktop app: decoding, the demo endpoint's encoding and joining then yield the
    CPU to the window when both want it, instead of making it wait its turn (see the GUI
    stall figures in docs/BENCHMARKS.md). ffmpeg is as fast as before on an idle machine;
    the CLI and the REST service keep normal priority.
    """
    global _background
    _background = enabled


def _creation_flags() -> int:
    flags = _NO_WINDOW
    if _background:
        flags |= getattr(subprocess, "BELOW_NORMAL_PRIORITY_CLASS", 0)  # Windows only
    return flags


def _lower_priority(pid: int) -> None:
    """POSIX: nice the child (it may already have exited: then there is nothing to do)."""
    if not _background or not hasattr(os, "setpriority"):
        return
    with contextlib.suppress(OSError):
        current = os.getpriority(os.PRIO_PROCESS, 0)
        os.setpriority(os.PRIO_PROCESS, pid, min(19, current + BACKGROUND_NICENESS))


def find_ffmpeg(user_path: str | None = None) -> str:
    """The bundled imageio-ffmpeg binary first, then a path the user set. Never guesses PATH."""
    try:
        import imageio_ffmpeg

        exe = imageio_ffmpeg.get_ffmpeg_exe()
        if exe and Path(exe).is_file():
            return str(exe)
    except (ImportError, RuntimeError):
        pass
    if user_path and Path(user_path).is_file() and os.access(user_path, os.X_OK):
        return user_path
    raise ConfigError(
        "ffmpeg was not found: the bundled copy is missing. Reinstall the app, "
        "or set the path of an ffmpeg binary with: infinitetalk-gui config set ffmpeg_path PATH"
    )


def _tail(lines: Sequence[str]) -> str:
    return "\n".join(line.rstrip() for line in lines if line.strip())


class FFmpegProcess:
    """A running ffmpeg: stderr collected in the background, stopped in stages on cancel."""

    def __init__(
        self,
        args: Sequence[str],
        *,
        cancel: CancelToken | None = None,
        stdout: int | None = subprocess.DEVNULL,
        stdin: int | None = subprocess.DEVNULL,
        ffmpeg: str | None = None,
    ) -> None:
        exe = ffmpeg or find_ffmpeg()
        # -nostdin unless we feed it: ffmpeg must never wait on the user's terminal.
        no_stdin = ["-nostdin"] if stdin == subprocess.DEVNULL else []
        self.args = [exe, "-hide_banner", *no_stdin, *args]
        self.stderr_lines: collections.deque[str] = collections.deque(maxlen=400)
        self._cancel = cancel
        self.proc = subprocess.Popen(
            self.args,
            stdin=stdin,
            stdout=stdout,
            stderr=subprocess.PIPE,
            creationflags=_creation_flags(),
        )
        _lower_priority(self.proc.pid)
        self._reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._reader.start()
        self._unregister = cancel.on_cancel(self._stop_soon) if cancel else (lambda: None)

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for raw in self.proc.stderr:
            self.stderr_lines.append(raw.decode("utf-8", "replace"))

    def _stop_soon(self) -> None:
        """On cancel: ask now, kill later, without blocking the thread that cancelled."""
        if self.proc.poll() is not None:
            return
        with contextlib.suppress(OSError):
            self.proc.terminate()
        # ffmpeg blocked on a full pipe ignores SIGTERM: the waiting thread must not hang.
        killer = threading.Timer(3.0, self._kill_if_alive)
        killer.daemon = True
        killer.start()

    def _kill_if_alive(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(OSError):
                self.proc.kill()

    def stop(self) -> None:
        """Ask, wait, kill: ffmpeg gets a moment to exit cleanly."""
        if self.proc.poll() is not None:
            return
        with contextlib.suppress(OSError):
            self.proc.terminate()
        try:
            self.proc.wait(timeout=3)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(OSError):
                self.proc.kill()
            self.proc.wait()

    def wait(self, timeout: float | None = None) -> str:
        """Wait for exit; return stderr. Raise Cancelled, or FFmpegError with stderr's tail."""
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            while True:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    self.stop()
                    raise FFmpegError(
                        f"ffmpeg took longer than {timeout:.0f} s and was stopped.\n"
                        + _tail(list(self.stderr_lines)[-STDERR_TAIL_LINES:])
                    )
                try:
                    self.proc.wait(timeout=0.1 if remaining is None else min(0.1, remaining))
                    break
                except subprocess.TimeoutExpired:
                    continue
            self._reader.join(timeout=5)
        finally:
            self._unregister()
        if self._cancel is not None and self._cancel.cancelled:
            raise Cancelled("Cancelled.")
        if self.proc.returncode != 0:
            raise FFmpegError(
                f"ffmpeg failed (exit code {self.proc.returncode}):\n"
                + _tail(list(self.stderr_lines)[-STDERR_TAIL_LINES:])
            )
        return "".join(self.stderr_lines)

    def close(self) -> None:
        self.stop()
        self._unregister()
        for stream in (self.proc.stdout, self.proc.stderr, self.proc.stdin):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()


def run_ffmpeg(
    args: Sequence[str],
    *,
    timeout: float | None = 600,
    cancel: CancelToken | None = None,
) -> str:
    """Run ffmpeg to completion; return its stderr (where it prints what it found)."""
    if cancel is not None:
        cancel.raise_if_cancelled()
    process = FFmpegProcess(args, cancel=cancel)
    try:
        return process.wait(timeout)
    finally:
        process.close()


@contextlib.contextmanager
def ffmpeg_pipe(
    args: Sequence[str], *, cancel: CancelToken | None = None
) -> Iterator[FFmpegProcess]:
    """ffmpeg writing to a pipe (``args`` should end with ``-f FORMAT pipe:1``)."""
    if cancel is not None:
        cancel.raise_if_cancelled()
    process = FFmpegProcess(args, cancel=cancel, stdout=subprocess.PIPE)
    try:
        yield process
    finally:
        process.close()


@dataclass(frozen=True)
class MediaInfo:
    duration_s: float | None
    has_audio: bool
    has_video: bool
    audio_codec: str | None = None
    video_codec: str | None = None
    width: int | None = None
    height: int | None = None


_DURATION = re.compile(r"Duration:\s*(\d+):(\d+):(\d+(?:\.\d+)?)")
_STREAM = re.compile(r"Stream #\d+:\d+.*?: (Audio|Video): (\w+)(.*)")
_DIMS = re.compile(r"\b(\d{2,5})x(\d{2,5})\b")


def probe(path: str | Path, *, cancel: CancelToken | None = None) -> MediaInfo:
    """What ffmpeg says about a file (imageio-ffmpeg ships no ffprobe).

    Raises FFmpegError when ffmpeg cannot open it at all.
    """
    if cancel is not None:
        cancel.raise_if_cancelled()
    exe = find_ffmpeg()
    with subprocess.Popen(
        [exe, "-hide_banner", "-nostdin", "-i", str(path)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        creationflags=_creation_flags(),
    ) as child:
        _lower_priority(child.pid)
        try:
            _, stderr = child.communicate(timeout=PROBE_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            child.kill()
            child.communicate()
            raise FFmpegError(
                f"ffmpeg took longer than {PROBE_TIMEOUT_S} s to read {Path(path).name}"
            ) from None
    text = stderr.decode("utf-8", "replace")
    if "Stream #" not in text:
        lines = [ln for ln in text.splitlines() if ln.strip()]
        raise FFmpegError(_tail(lines[-3:]) or "ffmpeg could not read the file")
    duration = None
    match = _DURATION.search(text)
    if match:
        hours, minutes, seconds = match.groups()
        duration = int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    audio_codec = video_codec = None
    width = height = None
    for kind, codec, rest in _STREAM.findall(text):
        if kind == "Audio" and audio_codec is None:
            audio_codec = codec
        elif kind == "Video" and video_codec is None:
            video_codec = codec
            dims = _DIMS.search(rest)
            if dims:
                width, height = int(dims.group(1)), int(dims.group(2))
    return MediaInfo(
        duration_s=duration,
        has_audio=audio_codec is not None,
        has_video=video_codec is not None,
        audio_codec=audio_codec,
        video_codec=video_codec,
        width=width,
        height=height,
    )
