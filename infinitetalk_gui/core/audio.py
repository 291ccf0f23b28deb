"""Decode the user's audio once, find its silences, and cut it into chunks for the worker.

One ffmpeg run turns any input into 16 kHz mono s16le on a pipe. We stream it in blocks: the
raw PCM goes to a work file, and numpy measures the energy of every 10 ms on the fly. Cuts go
inside silences, near the target chunk length, on the 40 ms video frame grid; each chunk is
handed out as soon as its cut can no longer change, so the first one can be rendered while the
rest of the file is still being decoded. Chunk WAVs are sample-exact slices of the PCM file.
"""

from __future__ import annotations

import bisect
import contextlib
import json
import math
import os
import wave
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np
import numpy.typing as npt

from infinitetalk_gui.core.cancel import CancelToken
from infinitetalk_gui.core.errors import FFmpegError, InputError
from infinitetalk_gui.core.ffmpeg import FFmpegProcess, ffmpeg_pipe, probe
from infinitetalk_gui.core.models import FRAME_MS

SAMPLE_RATE = 16000
FRAME_LEN_MS = 10  # energy is measured per 10 ms
MIN_CHUNK_MS = 3500  # the worker rejects audio of 3.24 s and less; no chunk is 3.5 s or shorter
MAX_WINDOW_MS = 15000  # cuts are looked for within target +/- 15 s
SINGLE_CHUNK_FACTOR = 1.3  # audio up to about 1.3x the target stays one chunk
QUIET_SPAN_MS = 100  # without a silence, cut in the middle of the quietest 100 ms
FLOOR_DB = -120.0  # digital silence, so log10 never sees zero
PCM_NAME = "audio-16k.pcm"
_META_SUFFIX = ".json"
_BLOCK_BYTES = 1 << 17  # 4 s of 16 kHz s16 per read: small memory, few Python round trips
_SAMPLES_PER_FRAME = SAMPLE_RATE * FRAME_LEN_MS // 1000
_FULL_SCALE_POWER = 32768.0**2

FloatArray = npt.NDArray[np.float32]


# ---------------------------------------------------------------------------------------------
# Parameters and results


@dataclass(frozen=True)
class SplitParams:
    """How to split: target chunk length and what counts as a silence."""

    chunk_seconds: float = 45.0
    silence_db: float = -40.0
    min_silence_ms: int = 500

    def __post_init__(self) -> None:
        if not 10 <= self.chunk_seconds <= 120:
            raise InputError(
                f"chunk length {self.chunk_seconds:g} s is not allowed: "
                "use between 10 and 120 seconds"
            )
        if not -90 <= self.silence_db < 0:
            raise InputError(
                f"silence level {self.silence_db:g} dBFS is not allowed: use between -90 and 0"
            )
        if not FRAME_LEN_MS <= self.min_silence_ms <= 60000:
            raise InputError(
                f"minimum silence {self.min_silence_ms} ms is not allowed: "
                "use between 10 and 60000 ms"
            )

    @property
    def target_ms(self) -> int:
        return round(self.chunk_seconds * 1000)

    @property
    def window_ms(self) -> int:
        # +/- 15 s around 45 s; smaller targets get a proportionally smaller window.
        return min(MAX_WINDOW_MS, self.target_ms // 3)

    @property
    def max_chunk_ms(self) -> int:
        return self.target_ms + self.window_ms

    @property
    def single_chunk_ms(self) -> int:
        """Audio (or a remaining tail) up to this long is one chunk; never above the maximum."""
        return min(round(self.target_ms * SINGLE_CHUNK_FACTOR), self.max_chunk_ms)


@dataclass(frozen=True)
class AudioInfo:
    """Quick validation result for the drop zone and the CLI (``duration_ms`` from the header)."""

    path: Path
    duration_ms: int | None
    codec: str | None
    has_video: bool = False


@dataclass
class AudioAnalysis:
    """The decoded audio: PCM on disk, per-10 ms energy and peaks, silences in ms."""

    pcm_path: Path
    sample_rate: int
    samples: int
    duration_ms: int  # ceil(samples / 16): the last chunk ends here and holds the last sample
    energy_db: FloatArray  # RMS dBFS per 10 ms frame (the last one may be partial)
    peak: FloatArray  # peak |sample| per 10 ms frame, 0..1
    silences: list[tuple[int, int]] = field(default_factory=list)  # (start_ms, end_ms)


Chunk = tuple[int, int]


# ---------------------------------------------------------------------------------------------
# Validation


def _sniff(path: Path) -> str | None:
    """What a file that ffmpeg refuses really is, in words a user knows."""
    try:
        with path.open("rb") as handle:
            head = handle.read(512)
    except OSError:
        return None
    if head.startswith(b"\x89PNG") or head.startswith(b"\xff\xd8\xff") or head[:4] == b"GIF8":
        return "it is a picture"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "it is a picture"
    if head.startswith(b"%PDF"):
        return "it is a PDF document"
    if head.startswith(b"PK\x03\x04"):
        return "it is a ZIP archive or office document"
    if head and b"\x00" not in head:
        try:
            head.decode("utf-8")
        except UnicodeDecodeError:
            return None
        return "it is a text file"
    return None


def _ffmpeg_reason(lines: list[str]) -> str:
    """ffmpeg's last meaningful complaint, without its '[in#0 @ 0x...]' prefixes."""
    for line in reversed(lines):
        text = line.strip()
        if not text or text.startswith(("size=", "video:", "[out#")):
            continue
        if text.startswith("[") and "] " in text:
            text = text.split("] ", 1)[1]
        if text.startswith("Error") and ": " in text:
            text = text.rsplit(": ", 1)[1]  # 'Error opening input files: <the reason>'
        return text.rstrip(".")
    return "unknown error"


def _check_file(path: Path) -> None:
    if not path.exists():
        raise InputError(f"audio file '{path}' does not exist")
    if path.is_dir():
        raise InputError(f"'{path}' is a folder, not an audio file")
    if not os.access(path, os.R_OK):
        raise InputError(f"audio file '{path}' cannot be read (permission denied)")
    if path.stat().st_size == 0:
        raise InputError(f"audio file '{path}' is empty (0 bytes)")


def _decode_sample(path: Path, start_s: float) -> tuple[int, bool, str | None]:
    """Decode up to 0.5 s from ``start_s``.

    Returns (bytes of PCM, the header's duration was only estimated, ffmpeg's error or None).
    """
    args = ["-ss", f"{start_s:.3f}", "-i", str(path), "-map", "0:a:0", "-t", "0.5"]
    args += ["-ac", "1", "-ar", str(SAMPLE_RATE), "-f", "s16le", "pipe:1"]
    error = None
    with ffmpeg_pipe(args) as process:
        assert process.proc.stdout is not None
        size = len(process.proc.stdout.read())
        try:
            process.wait(30)
        except FFmpegError:
            error = _ffmpeg_reason(list(process.stderr_lines))
        estimated = any("Estimating duration from bitrate" in ln for ln in process.stderr_lines)
    return size, estimated, error


def validate_audio(path: str | Path) -> AudioInfo:
    """Fast check that ffmpeg can decode audio from ``path``; raise InputError saying why not.

    Reads the header (``ffmpeg -i``) and decodes half a second near the end the header
    promises, which catches empty WAVs and files cut short, without decoding everything.
    """
    path = Path(path)
    _check_file(path)
    absolute = path.absolute()  # never let ffmpeg read 'a:b.mp3' as a protocol
    try:
        info = probe(absolute)
    except FFmpegError as error:
        what = _sniff(path)
        if what:
            raise InputError(f"'{path}' is not an audio file ({what})") from None
        raise InputError(
            f"'{path}' is not an audio file that can be read: it is damaged or in an unknown "
            f"format (ffmpeg says: {_ffmpeg_reason(str(error).splitlines())})"
        ) from None
    if not info.has_audio:
        what = _sniff(path)
        if what:  # ffmpeg reads a picture as a one-frame video
            raise InputError(f"'{path}' is not an audio file ({what})")
        what = "it only holds video" if info.has_video else "no audio stream was found"
        raise InputError(f"'{path}' has no audio track ({what})")
    declared_ms = round(info.duration_s * 1000) if info.duration_s is not None else None
    # Near the end the header promises, with a 10 % margin for imprecise seeking. Not in a
    # video, whose sound may well stop before its picture does.
    start_s = 0.0
    if declared_ms and not info.has_video:
        start_s = max(0.0, declared_ms * 0.9 / 1000 - 0.5)
    size, estimated, failure = _decode_sample(absolute, start_s)
    if size == 0:
        if failure is not None:
            raise InputError(f"'{path}' cannot be decoded (ffmpeg says: {failure})")
        if start_s == 0.0 or estimated:
            raise InputError(f"'{path}' contains no sound (zero length)")
        raise InputError(
            f"'{path}' seems truncated or damaged: its header says "
            f"{(declared_ms or 0) / 1000:.1f} s, but the audio stops well before that"
        )
    return AudioInfo(
        path=path, duration_ms=declared_ms, codec=info.audio_codec, has_video=info.has_video
    )


# ---------------------------------------------------------------------------------------------
# Decoding: PCM file + energy + silences, block by block


class _Growing:
    """A float32 array that grows by appending blocks (amortised doubling)."""

    def __init__(self) -> None:
        self._data = np.empty(1 << 14, dtype=np.float32)
        self.size = 0

    def append(self, values: FloatArray) -> None:
        need = self.size + len(values)
        if need > len(self._data):
            bigger = np.empty(max(need, 2 * len(self._data)), dtype=np.float32)
            bigger[: self.size] = self._data[: self.size]
            self._data = bigger
        self._data[self.size : need] = values
        self.size = need

    def view(self) -> FloatArray:
        return self._data[: self.size]

    def copy(self) -> FloatArray:
        return self._data[: self.size].copy()


class _Decoder:
    """Consumes raw s16le bytes: writes them to the PCM file, tracks energy and silences."""

    def __init__(self, pcm: BinaryIO, params: SplitParams) -> None:
        self._pcm = pcm
        self._threshold = _FULL_SCALE_POWER * 10 ** (params.silence_db / 10)
        self._min_silence_ms = params.min_silence_ms
        self._carry = b""  # an odd byte or an incomplete 10 ms frame, waiting for more
        self._bytes = 0
        self.energy = _Growing()
        self.peak = _Growing()
        self.silences: list[Chunk] = []
        self.open_run: int | None = None  # first frame of a quiet run still going on
        self.eof = False

    @property
    def frames(self) -> int:
        """Complete 10 ms frames measured so far."""
        return self.energy.size

    @property
    def known_ms(self) -> int:
        return self.frames * FRAME_LEN_MS

    @property
    def samples(self) -> int:
        return self._bytes // 2

    @property
    def duration_ms(self) -> int:
        return -(-self.samples // (SAMPLE_RATE // 1000))

    def feed(self, data: bytes) -> None:
        self._pcm.write(data)
        self._bytes += len(data)
        data = self._carry + data
        whole = len(data) // (2 * _SAMPLES_PER_FRAME) * (2 * _SAMPLES_PER_FRAME)
        self._carry = data[whole:]
        if whole:
            frames = np.frombuffer(data[:whole], dtype="<i2").reshape(-1, _SAMPLES_PER_FRAME)
            self._measure(frames)

    def finish(self) -> None:
        """End of stream: measure the last partial frame and close an open silence."""
        tail = self._carry[: len(self._carry) // 2 * 2]
        if tail:
            self._measure(np.frombuffer(tail, dtype="<i2").reshape(1, -1))
        self._carry = b""
        if self.open_run is not None:
            self._close_run(self.open_run * FRAME_LEN_MS, self.duration_ms)
            self.open_run = None
        self.eof = True

    def _measure(self, frames: npt.NDArray[np.int16]) -> None:
        as_float = frames.astype(np.float32)
        # einsum and int16 max/min are several times faster here than (x * x).sum / abs().max.
        power = np.einsum("ij,ij->i", as_float, as_float) / frames.shape[1]
        peak = np.maximum(
            frames.max(axis=1).astype(np.float32), -frames.min(axis=1).astype(np.float32)
        )
        db = 10 * np.log10(np.maximum(power / _FULL_SCALE_POWER, 10 ** (FLOOR_DB / 10)))
        first = self.frames
        self.energy.append(db.astype(np.float32))
        self.peak.append(peak / 32768.0)
        self._track_silences(power < self._threshold, first)

    def _track_silences(self, quiet: npt.NDArray[np.bool_], first: int) -> None:
        edges = np.diff(np.concatenate(([0], quiet.astype(np.int8), [0])))
        starts = np.flatnonzero(edges == 1)
        ends = np.flatnonzero(edges == -1)
        if self.open_run is not None and (len(starts) == 0 or starts[0] != 0):
            # The run that was open at the end of the last block ended right at its start.
            self._close_run(self.open_run * FRAME_LEN_MS, first * FRAME_LEN_MS)
            self.open_run = None
        # Short runs inside the block can never count: skip them without a Python loop.
        keep = ((ends - starts) * FRAME_LEN_MS >= self._min_silence_ms) | (starts == 0)
        keep |= ends == len(quiet)
        for start, end in zip(starts[keep].tolist(), ends[keep].tolist(), strict=True):
            begin = self.open_run if (start == 0 and self.open_run is not None) else first + start
            self.open_run = None
            if end == len(quiet):
                self.open_run = begin  # may go on in the next block
            else:
                self._close_run(begin * FRAME_LEN_MS, (first + end) * FRAME_LEN_MS)

    def _close_run(self, start_ms: int, end_ms: int) -> None:
        if end_ms - start_ms >= self._min_silence_ms:
            self.silences.append((start_ms, end_ms))

    def silences_so_far(self) -> list[Chunk]:
        """Closed silences plus the open run, if it is already long enough to count."""
        if self.open_run is None:
            return self.silences
        start = self.open_run * FRAME_LEN_MS
        if self.known_ms - start >= self._min_silence_ms:
            return [*self.silences, (start, self.known_ms)]
        return self.silences


def _meta_path(pcm_path: Path) -> Path:
    return pcm_path.with_name(pcm_path.name + _META_SUFFIX)


def _is_wav(path: Path) -> bool:
    with contextlib.suppress(OSError), path.open("rb") as handle:
        head = handle.read(12)
        return head[:4] == b"RIFF" and head[8:12] == b"WAVE"
    return False


def _decode_args(src: Path) -> list[str]:
    # The WAV demuxer reads 4 KB packets by default: an hour of CD audio is 150 000 of them,
    # each passed between ffmpeg's threads. 64 KB packets cut its system time by 4x.
    packets = ["-max_size", "65536"] if _is_wav(src) else []
    # The first audio track only, downmixed and resampled by ffmpeg in the same pass.
    return [
        *("-nostats", "-loglevel", "error", *packets, "-i", str(src.absolute()), "-map", "0:a:0"),
        *("-vn", "-sn", "-dn", "-ac", "1", "-ar", str(SAMPLE_RATE)),
        *("-c:a", "pcm_s16le", "-f", "s16le", "pipe:1"),
    ]


def _decode(
    src: Path,
    work_dir: Path,
    params: SplitParams,
    info: AudioInfo,
    cancel: CancelToken | None,
) -> Generator[_Decoder, None, None]:
    """Run the one decode; yield the decoder after every block, and once more at the end."""
    work_dir.mkdir(parents=True, exist_ok=True)
    pcm_path = work_dir / PCM_NAME
    meta = _meta_path(pcm_path)
    meta.unlink(missing_ok=True)  # the PCM counts as complete only once the meta is back
    running: list[FFmpegProcess] = []
    # Registered before ffmpeg_pipe's own stop(), so it runs first: a decode to a pipe has
    # nothing to finish cleanly, and SIGKILL works even when ffmpeg is blocked on a full pipe
    # (where SIGTERM waits, and so would the thread that cancelled).
    unregister = cancel.on_cancel(lambda: _kill(running)) if cancel else (lambda: None)
    try:
        with (
            pcm_path.open("wb") as pcm,
            ffmpeg_pipe(_decode_args(src), cancel=cancel) as process,
        ):
            running.append(process)
            decoder = _Decoder(pcm, params)
            stdout = process.proc.stdout
            assert stdout is not None
            try:
                while True:
                    if cancel is not None:
                        cancel.raise_if_cancelled()
                    data = stdout.read(_BLOCK_BYTES)
                    if not data:
                        break
                    decoder.feed(data)
                    pcm.flush()  # a reader of the PCM file (a chunk WAV) sees what was decoded
                    yield decoder
            except BaseException:
                # Stopped early (cancel, error, the consumer went away): ffmpeg may be blocked
                # on a full pipe; closing our end lets it exit at once.
                stdout.close()
                raise
            _finish_process(process, src)
            decoder.finish()
    finally:
        unregister()
    _check_decoded(decoder, info)
    _write_meta(meta, src, decoder.samples)
    yield decoder


def _kill(running: list[FFmpegProcess]) -> None:
    for process in running:
        with contextlib.suppress(OSError):
            process.proc.kill()


def _finish_process(process: FFmpegProcess, src: Path) -> None:
    try:
        process.wait(60)
    except FFmpegError:
        raise InputError(
            f"'{src}' could not be decoded (ffmpeg says: "
            f"{_ffmpeg_reason(list(process.stderr_lines))})"
        ) from None


def _check_decoded(decoder: _Decoder, info: AudioInfo) -> None:
    if decoder.samples == 0:
        raise InputError(f"'{info.path}' contains no sound (zero length)")
    declared = info.duration_ms
    if declared and not info.has_video and decoder.duration_ms < 0.5 * declared - 1000:
        # validate_audio catches most of these up front; this is the backstop.
        raise InputError(
            f"'{info.path}' seems truncated or damaged: its header says {declared / 1000:.1f} s, "
            f"but only {decoder.duration_ms / 1000:.1f} s of audio could be decoded"
        )


def _write_meta(meta: Path, src: Path, samples: int) -> None:
    data = {"source": str(src.absolute()), "samples": samples, "sample_rate": SAMPLE_RATE}
    tmp = meta.with_name(meta.name + ".tmp")
    tmp.write_text(json.dumps(data), encoding="utf-8")
    os.replace(tmp, meta)


def _decode_all(
    src: Path, work_dir: Path, params: SplitParams, info: AudioInfo, cancel: CancelToken | None
) -> _Decoder:
    last = None
    for last in _decode(src, work_dir, params, info, cancel):  # noqa: B007 (we want the last)
        pass
    assert last is not None and last.eof
    return last


def _analysis(decoder: _Decoder, pcm_path: Path) -> AudioAnalysis:
    return AudioAnalysis(
        pcm_path=pcm_path,
        sample_rate=SAMPLE_RATE,
        samples=decoder.samples,
        duration_ms=decoder.duration_ms,
        energy_db=decoder.energy.copy(),
        peak=decoder.peak.copy(),
        silences=list(decoder.silences),
    )


def analyse_audio(
    src: str | Path,
    work_dir: str | Path,
    params: SplitParams | None = None,
    *,
    cancel: CancelToken | None = None,
) -> AudioAnalysis:
    """Decode the whole file once; return its PCM file, energy and silences."""
    src, work_dir = Path(src), Path(work_dir)
    params = params or SplitParams()
    decoder = _decode_all(src, work_dir, params, validate_audio(src), cancel)
    return _analysis(decoder, work_dir / PCM_NAME)


# ---------------------------------------------------------------------------------------------
# Cut planning (pure)


def _floor_grid(ms: float) -> int:
    return math.floor(ms / FRAME_MS) * FRAME_MS


def _ceil_grid(ms: float) -> int:
    return math.ceil(ms / FRAME_MS) * FRAME_MS


def _silence_cut(silences: list[Chunk], lo: int, hi: int, target: int) -> int | None:
    """The midpoint of the silence (its part inside [lo, hi]) nearest the target, on the grid."""
    best: tuple[int, int, int] | None = None
    first = bisect.bisect_left(silences, lo, key=lambda silence: silence[1])
    for start, end in silences[first:]:
        if start > hi:
            break
        left, right = max(start, lo), min(end, hi)
        grid_left, grid_right = _ceil_grid(left), _floor_grid(right)
        if grid_left > grid_right:
            continue
        cut = min(max(_floor_grid((left + right) / 2 + FRAME_MS / 2), grid_left), grid_right)
        # Nearest the target; on a tie the longer pause, then the earlier cut.
        key = (abs(cut - target), -(right - left), cut)
        if best is None or key < best:
            best = key
    return None if best is None else best[2]


def _quietest_cut(energy_db: FloatArray, lo: int, hi: int, target: int) -> int:
    """The grid point in [lo, hi] at the centre of the quietest 100 ms (nearest target on ties)."""
    cuts = np.arange(lo, hi + 1, FRAME_MS)
    half = QUIET_SPAN_MS // 2
    span = QUIET_SPAN_MS // FRAME_LEN_MS
    first_frame = (cuts - half) // FRAME_LEN_MS
    usable = (first_frame >= 0) & (first_frame + span <= len(energy_db))
    if not usable.any():
        return int(cuts[np.argmin(np.abs(cuts - target))])
    cuts, first_frame = cuts[usable], first_frame[usable]
    begin, stop = int(first_frame[0]), int(first_frame[-1]) + span
    power = 10.0 ** (energy_db[begin:stop].astype(np.float64) / 10)
    step = FRAME_MS // FRAME_LEN_MS
    windows = np.lib.stride_tricks.sliding_window_view(power, span)[::step]
    score = windows.sum(axis=1)
    quietest = score <= score.min() * (1 + 1e-9)
    candidates = cuts[quietest]
    return int(candidates[np.argmin(np.abs(candidates - target))])


def _next_cut(
    prev: int,
    duration_ms: int | None,
    silences: list[Chunk],
    energy_db: FloatArray,
    params: SplitParams,
) -> int | None:
    """Where the chunk starting at ``prev`` ends, or None if it runs to the end of the audio.

    ``duration_ms`` is None while decoding: the caller then guarantees that decoding has
    passed ``_horizon(prev)``, far enough that nothing decoded later can change this answer.
    """
    if duration_ms is not None and duration_ms - prev <= params.single_chunk_ms:
        return None
    target = prev + params.target_ms
    lo = max(target - params.window_ms, prev + MIN_CHUNK_MS + 1)
    hi = prev + params.max_chunk_ms
    if duration_ms is not None:
        hi = min(hi, duration_ms - MIN_CHUNK_MS - 1)  # the tail stays longer than 3.5 s
    grid_lo, grid_hi = _ceil_grid(lo), _floor_grid(hi)
    if grid_lo > grid_hi:  # unreachable with SplitParams' limits: keep the min rule
        return None
    cut = _silence_cut(silences, grid_lo, grid_hi, target)
    if cut is None:
        cut = _quietest_cut(energy_db, grid_lo, grid_hi, target)
    return cut


def _horizon(prev: int, params: SplitParams) -> int:
    """Decoded ms after which the cut following ``prev`` is final.

    Past ``prev + max chunk + 3.5 s`` the tail rule cannot pull the window in, any quiet run
    reaching into the window is already known to be long enough, and the energy around every
    candidate (+/- 50 ms) is measured.
    """
    settle = max(MIN_CHUNK_MS + 1, params.min_silence_ms)
    return prev + params.max_chunk_ms + settle + QUIET_SPAN_MS


def plan_cuts(
    duration_ms: int,
    silences: list[Chunk],
    energy_db: FloatArray,
    params: SplitParams | None = None,
) -> list[Chunk]:
    """Contiguous (start_ms, end_ms) chunks covering [0, duration_ms]; cuts on the 40 ms grid.

    ``silences`` are sorted, non-overlapping (start_ms, end_ms); ``energy_db`` is per 10 ms.
    """
    if duration_ms <= 0:
        raise ValueError("duration_ms must be positive")
    return list(_plan_from(0, duration_ms, silences, energy_db, params or SplitParams()))


def _plan_from(
    prev: int,
    duration_ms: int,
    silences: list[Chunk],
    energy_db: FloatArray,
    params: SplitParams,
) -> Iterator[Chunk]:
    while True:
        cut = _next_cut(prev, duration_ms, silences, energy_db, params)
        if cut is None:
            yield prev, duration_ms
            return
        yield prev, cut
        prev = cut


# ---------------------------------------------------------------------------------------------
# Streaming


class ChunkStream:
    """Iterate to decode once and get each (start_ms, end_ms) chunk the moment it is final.

    A chunk's audio is in ``pcm_path`` when it is yielded, so ``write_chunk_wav`` can slice it
    while decoding goes on. After the last chunk, ``analysis`` holds the whole analysis. The
    plan is the same as ``plan_cuts`` on the finished analysis. Iterate once.
    """

    def __init__(
        self,
        src: str | Path,
        work_dir: str | Path,
        params: SplitParams | None = None,
        *,
        cancel: CancelToken | None = None,
    ) -> None:
        self.src = Path(src)
        self.work_dir = Path(work_dir)
        self.params = params or SplitParams()
        self.pcm_path = self.work_dir / PCM_NAME
        self._cancel = cancel
        self._decoder: _Decoder | None = None
        self._analysis: AudioAnalysis | None = None
        self._started = False
        self.info: AudioInfo | None = None

    @property
    def decoded_ms(self) -> int:
        """How far decoding has got (for progress displays)."""
        return 0 if self._decoder is None else self._decoder.samples * 1000 // SAMPLE_RATE

    @property
    def analysis(self) -> AudioAnalysis:
        if self._analysis is None:
            raise RuntimeError("the audio has not been decoded to the end yet")
        return self._analysis

    def __iter__(self) -> Iterator[Chunk]:
        if self._started:
            raise RuntimeError("a ChunkStream can be iterated only once")
        self._started = True
        self.info = validate_audio(self.src)
        prev = 0
        blocks = _decode(self.src, self.work_dir, self.params, self.info, self._cancel)
        with contextlib.closing(blocks):  # a consumer that stops early stops ffmpeg at once
            for decoder in blocks:
                self._decoder = decoder
                if decoder.eof:
                    self._analysis = _analysis(decoder, self.pcm_path)
                    energy = decoder.energy.view()
                    yield from _plan_from(
                        prev, decoder.duration_ms, decoder.silences, energy, self.params
                    )
                    return
                while decoder.known_ms >= _horizon(prev, self.params):
                    cut = _next_cut(
                        prev, None, decoder.silences_so_far(), decoder.energy.view(), self.params
                    )
                    assert cut is not None  # duration unknown: never the last chunk
                    yield prev, cut
                    prev = cut


def stream_chunks(
    src: str | Path,
    work_dir: str | Path,
    params: SplitParams | None = None,
    *,
    cancel: CancelToken | None = None,
) -> ChunkStream:
    """Decode ``src`` once into ``work_dir``, yielding chunks as soon as they are final."""
    return ChunkStream(src, work_dir, params, cancel=cancel)


# ---------------------------------------------------------------------------------------------
# Chunk WAVs and resume


def write_chunk_wav(
    pcm_path: str | Path,
    start_ms: int,
    end_ms: int,
    dest: str | Path,
    *,
    min_ms: int = MIN_CHUNK_MS,
    sample_rate: int = SAMPLE_RATE,
) -> Path:
    """Write samples [start_ms, end_ms) of the PCM file as a 16-bit mono WAV.

    Sample-exact: consecutive chunks share no sample and skip none. ``end_ms`` may reach the
    (rounded up) duration: the slice stops at the last sample. Shorter than ``min_ms``, the
    chunk is padded with silence at the end (the worker rejects very short audio).
    """
    pcm_path, dest = Path(pcm_path), Path(dest)
    if start_ms < 0 or end_ms <= start_ms:
        raise ValueError(f"bad chunk range {start_ms}..{end_ms} ms")
    per_ms = sample_rate / 1000
    total = pcm_path.stat().st_size // 2
    first, last = round(start_ms * per_ms), round(end_ms * per_ms)
    if last > total:
        if last - total >= per_ms or first >= total:
            raise InputError(
                f"the decoded audio '{pcm_path}' ends at {total / per_ms / 1000:.2f} s, before "
                f"the chunk {start_ms / 1000:.2f}-{end_ms / 1000:.2f} s; "
                "delete it and it will be decoded again"
            )
        last = total  # the last chunk ends at ceil(duration): the slack is under one ms
    pad = max(0, round(min_ms * per_ms) - (last - first))
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".part")
    try:
        with pcm_path.open("rb") as pcm, wave.open(str(tmp), "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(sample_rate)
            pcm.seek(first * 2)
            left = (last - first) * 2
            while left:
                data = pcm.read(min(left, 1 << 20))
                if not data:
                    raise InputError(f"the decoded audio '{pcm_path}' was cut short while reading")
                out.writeframes(data)
                left -= len(data)
            if pad:
                out.writeframes(bytes(2 * pad))
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return dest


def _stored_samples(pcm_path: Path) -> int | None:
    """The sample count the meta file recorded at the end of the last complete decode."""
    try:
        meta = json.loads(_meta_path(pcm_path).read_text(encoding="utf-8"))
        return int(meta["samples"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def pcm_is_complete(work_dir: str | Path) -> bool:
    """True if the work dir holds a fully decoded PCM file (its meta written at the end)."""
    pcm_path = Path(work_dir) / PCM_NAME
    samples = _stored_samples(pcm_path)
    try:
        return samples is not None and pcm_path.stat().st_size == 2 * samples
    except OSError:
        return False


def ensure_pcm(
    src: str | Path,
    work_dir: str | Path,
    *,
    expected_ms: int | None = None,
    cancel: CancelToken | None = None,
) -> Path:
    """The job's decoded PCM for resuming: reused when complete, else decoded again from ``src``.

    A re-decoded file of another length than before (``expected_ms``, the duration the job
    planned with, or the sample count the last decode recorded) means the source changed
    since the job started: InputError, since the stored chunk ranges would no longer fit.
    """
    src, work_dir = Path(src), Path(work_dir)
    pcm_path = work_dir / PCM_NAME
    if pcm_is_complete(work_dir):
        return pcm_path
    before = _stored_samples(pcm_path)
    decoder = _decode_all(src, work_dir, SplitParams(), validate_audio(src), cancel)
    if expected_ms is None and before is not None:
        expected_ms = -(-before // (SAMPLE_RATE // 1000))
    if expected_ms is not None and decoder.duration_ms != expected_ms:
        pcm_path.unlink(missing_ok=True)  # not the audio this job was planned on
        _meta_path(pcm_path).unlink(missing_ok=True)
        raise InputError(
            f"'{src}' has changed since the job started: it was {expected_ms / 1000:.2f} s "
            f"long and is now {decoder.duration_ms / 1000:.2f} s; start a new render"
        )
    return pcm_path


def waveform_envelope(analysis: AudioAnalysis, points: int) -> FloatArray:
    """Peak level (0..1) in ``points`` equal slices of the audio, for drawing a waveform."""
    if points <= 0:
        raise ValueError("points must be positive")
    peak = analysis.peak
    count = len(peak)
    if count == 0:
        return np.zeros(points, dtype=np.float32)
    if points >= count:
        return peak[(np.arange(points) * count) // points].astype(np.float32)
    edges = (np.arange(points) * count) // points
    return np.maximum.reduceat(peak, edges).astype(np.float32)


__all__ = [
    "MIN_CHUNK_MS",
    "PCM_NAME",
    "SAMPLE_RATE",
    "AudioAnalysis",
    "AudioInfo",
    "ChunkStream",
    "SplitParams",
    "analyse_audio",
    "ensure_pcm",
    "pcm_is_complete",
    "plan_cuts",
    "stream_chunks",
    "validate_audio",
    "waveform_envelope",
    "write_chunk_wav",
]
