"""Benchmark: split a 60-minute speech-like recording, ours vs pydub's split_on_silence.

    python bench/bench_split.py [--minutes 60] [--pydub-minutes 10] [--cache DIR]

Makes (once, cached under /tmp) a speech-like 44.1 kHz stereo WAV: syllable-shaped voice with
pauses of 0.2-1.4 s and a few long stretches without any pause. Times, each in a fresh
process so memory figures are clean:
- ours: ``stream_chunks`` (decode once with the bundled ffmpeg to 16 kHz mono, per-10 ms
  energy, silences, cut plan), the time to the first chunk, and then writing every chunk WAV;
  peak RSS of our process and of its ffmpeg children (``getrusage``);
- pydub: ``AudioSegment.from_wav`` + ``split_on_silence(min_silence_len=500,
  silence_thresh=-40)``, the original script's parameters. pydub takes minutes on an hour of
  audio, so by default it runs on the first ``--pydub-minutes`` and is scaled linearly (its
  silence scan is linear in the length; the output says so). ``--pydub-minutes 60`` runs it
  on the whole hour.
Needs pydub (``pip install pydub``, the ``bench`` extra); it is not a dependency of the app.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import wave
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
RATE = 44100
SEED = 2024


def make_recording(path: Path, seconds: float, seed: int = SEED) -> Path:
    """Speech-like stereo audio written block by block (never the whole hour in memory).

    The same seed gives the same signal, so a shorter file is a prefix of a longer one.
    """
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    total = round(seconds * RATE)
    done = 0
    tmp = path.with_name(path.name + ".part")
    with wave.open(str(tmp), "wb") as out:
        out.setnchannels(2)
        out.setsampwidth(2)
        out.setframerate(RATE)
        while done < total:
            # One voiced phrase (now and then a long one with no pause), then one pause.
            voice_s = rng.uniform(1.5, 9.0) if rng.random() > 0.03 else rng.uniform(40, 80)
            pause_s = rng.uniform(0.2, 1.4)
            for kind, length_s in (("voice", voice_s), ("pause", pause_s)):
                n = min(round(length_s * RATE), total - done)
                if n <= 0:
                    break
                if kind == "voice":
                    t = np.arange(n) / RATE
                    syllables = 0.55 + 0.45 * np.abs(np.sin(2 * np.pi * rng.uniform(2.5, 4) * t))
                    pitch = rng.uniform(110, 220)
                    carrier = np.sin(2 * np.pi * pitch * t) + 0.5 * rng.standard_normal(n)
                    mono = 0.12 * syllables * carrier
                else:
                    mono = 0.0004 * rng.standard_normal(n)
                left = (mono * 32767).astype("<i2")
                right = (mono * 0.9 * 32767).astype("<i2")
                out.writeframes(np.column_stack((left, right)).tobytes())
                done += n
    os.replace(tmp, path)
    return path


def rusage_peaks_mb() -> tuple[float, float]:
    """Peak RSS of this process and of its largest finished child (ffmpeg), in MB.

    Linux carries a parent's peak across fork + exec into the child's ru_maxrss, so for this
    process /proc's VmHWM (the peak of its own memory) is used when it exists.
    """
    scale = 1 / 1024 if sys.platform != "darwin" else 1 / (1024 * 1024)
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                own = int(line.split()[1]) / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * scale
    return own, children


def cpu_seconds() -> tuple[float, float]:
    """CPU time (user + system) of this process and of its finished children."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime, children.ru_utime + children.ru_stime


def run_ours(src: Path) -> dict[str, float]:
    sys.path.insert(0, str(ROOT))
    from infinitetalk_gui.core.audio import SplitParams, stream_chunks, write_chunk_wav

    with tempfile.TemporaryDirectory(prefix="bench-split-") as work:
        cpu_before = cpu_seconds()
        start = time.perf_counter()
        stream = stream_chunks(src, work, SplitParams())
        chunks = []
        first = None
        for chunk in stream:
            if first is None:
                first = time.perf_counter() - start
            chunks.append(chunk)
        split = time.perf_counter() - start
        cpu_after = cpu_seconds()
        for index, (begin, end) in enumerate(chunks):
            write_chunk_wav(stream.pcm_path, begin, end, Path(work) / f"chunk-{index:04d}.wav")
        with_wavs = time.perf_counter() - start
        lengths = [end - begin for begin, end in chunks]
        own, children = rusage_peaks_mb()
        return {
            "seconds": split,
            "first_chunk_s": first or split,
            "with_wavs_s": with_wavs,
            "chunks": len(chunks),
            "shortest_s": min(lengths) / 1000,
            "longest_s": max(lengths) / 1000,
            "covered_s": sum(lengths) / 1000,
            "rss_self_mb": own,
            "rss_children_mb": children,
            "cpu_self_s": cpu_after[0] - cpu_before[0],
            "cpu_ffmpeg_s": cpu_after[1] - cpu_before[1],
        }


def run_pydub(src: Path) -> dict[str, float]:
    import warnings

    import imageio_ffmpeg

    with warnings.catch_warnings():
        # pydub warns at import when no ffmpeg is on PATH (we point it at the bundled one)
        # and imports the deprecated audioop.
        warnings.filterwarnings("ignore", message="Couldn't find ffmpeg", category=RuntimeWarning)
        warnings.filterwarnings("ignore", message="'audioop' is deprecated")
        from pydub import AudioSegment
        from pydub.silence import split_on_silence

    AudioSegment.converter = imageio_ffmpeg.get_ffmpeg_exe()
    start = time.perf_counter()
    segment = AudioSegment.from_wav(str(src))
    parts = split_on_silence(segment, min_silence_len=500, silence_thresh=-40)
    seconds = time.perf_counter() - start
    own, _children = rusage_peaks_mb()
    return {
        "seconds": seconds,
        "chunks": len(parts),
        "audio_s": len(segment) / 1000,
        "kept_s": sum(len(part) for part in parts) / 1000,
        "rss_self_mb": own,
    }


def made(path: Path, seconds: float) -> Path:
    """The recording, generated in a child process so this one stays small."""
    if not path.exists():
        command = [sys.executable, __file__, "--make", str(path), "--seconds", str(seconds)]
        subprocess.run(command, check=True)
    return path


def in_child(mode: str, src: Path) -> dict[str, float]:
    """Run one side in a fresh interpreter so neither sees the other's memory or caches."""
    result = subprocess.run(
        [sys.executable, __file__, f"--{mode}", str(src)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        sys.exit(f"{mode} failed:\n{result.stderr}")
    data: dict[str, float] = json.loads(result.stdout.strip().splitlines()[-1])
    return data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=60)
    parser.add_argument("--pydub-minutes", type=float, default=10)
    parser.add_argument("--cache", type=Path, default=Path("/tmp/infinitetalk-bench"))
    parser.add_argument("--repeat", type=int, default=3, help="runs of ours (median reported)")
    parser.add_argument("--ours", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--pydub", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--make", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.ours:
        print(json.dumps(run_ours(args.ours)))
        return
    if args.pydub:
        print(json.dumps(run_pydub(args.pydub)))
        return
    if args.make:
        make_recording(args.make, args.seconds)
        return

    minutes, pydub_minutes = args.minutes, min(args.pydub_minutes, args.minutes)
    print(f"making {minutes:g} min of speech-like 44.1 kHz stereo (cached in {args.cache}) ...")
    long_file = made(args.cache / f"speech-{minutes:g}min-44k-stereo.wav", minutes * 60)
    short_file = long_file
    if pydub_minutes < minutes:
        short_file = made(
            args.cache / f"speech-{pydub_minutes:g}min-44k-stereo.wav", pydub_minutes * 60
        )
    # Warm the page cache so both sides read from memory, not from a cold disk.
    for path in {long_file, short_file}:
        with path.open("rb") as handle:
            while handle.read(1 << 24):
                pass

    load_before = os.getloadavg()[0]
    # The machine is shared: run ours a few times, report the median (and the best).
    runs = sorted((in_child("ours", long_file) for _ in range(args.repeat)), key=seconds_of)
    ours = runs[len(runs) // 2]
    ours_short = in_child("ours", short_file) if short_file != long_file else ours
    print(f"running pydub split_on_silence on {pydub_minutes:g} min ...", flush=True)
    pydub = in_child("pydub", short_file)
    load_after = os.getloadavg()[0]
    scale = minutes / pydub_minutes
    pydub_long = pydub["seconds"] * scale

    def row(label: str, mine: str, theirs: str = "", note: str = "") -> None:
        print(f"  {label:36}{mine:>14}{theirs:>14}  {note}".rstrip())

    print()
    print(f"Split of {minutes:g} min of speech-like 44.1 kHz stereo WAV")
    row("", "ours", "pydub")
    scaled = f"pydub measured on {pydub_minutes:g} min, x {scale:g}" if scale != 1 else ""
    row(
        f"split time, {minutes:g} min",
        f"{ours['seconds']:.2f} s",
        f"{pydub_long:.1f} s",
        f"ours: median of {len(runs)}, best {runs[0]['seconds']:.2f} s; {scaled}".rstrip("; "),
    )
    if scale != 1:
        row(
            f"split time, {pydub_minutes:g} min",
            f"{ours_short['seconds']:.2f} s",
            f"{pydub['seconds']:.1f} s",
        )
    row("first chunk ready after", f"{ours['first_chunk_s']:.2f} s", "at the end")
    row("split + every chunk WAV written", f"{ours['with_wavs_s']:.2f} s")
    row(
        "chunks (shortest-longest)",
        f"{ours['chunks']:.0f} ({ours['shortest_s']:.0f}-{ours['longest_s']:.0f} s)",
        f"{pydub['chunks'] * scale:.0f}",
        "pydub: one piece per phrase" + (" (scaled)" if scale != 1 else ""),
    )
    row(
        "audio kept",
        f"{ours['covered_s'] / (minutes * 60):.1%}",
        f"{pydub['kept_s'] / pydub['audio_s']:.1%}",
        "split_on_silence drops the pauses",
    )
    row(
        "peak RSS of the process",
        f"{ours['rss_self_mb']:.0f} MB",
        f"{pydub['rss_self_mb']:.0f} MB",
        f"pydub on {pydub_minutes:g} min" if scale != 1 else "",
    )
    row("peak RSS of our ffmpeg child", f"{ours['rss_children_mb']:.0f} MB")
    row(
        "CPU time of our split",
        f"{ours['cpu_self_s'] + ours['cpu_ffmpeg_s']:.2f} s",
        "",
        f"Python {ours['cpu_self_s']:.2f} s + ffmpeg {ours['cpu_ffmpeg_s']:.2f} s",
    )
    row("load average before / after", f"{load_before:.1f}", f"{load_after:.1f}", "2 cores")
    print()
    print(
        f"speed-up: {pydub_long / ours['seconds']:.0f}x (goal >= 30x); "
        f"ours {ours['seconds']:.2f} s for {minutes:g} min (goal < 3 s)"
    )


def seconds_of(result: dict[str, float]) -> float:
    return result["seconds"]


if __name__ == "__main__":
    main()
