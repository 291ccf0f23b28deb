"""Test media made on the spot: speech-like audio with known silences, tones, portraits."""

from __future__ import annotations

import subprocess
import wave
from collections.abc import Sequence
from pathlib import Path

import imageio_ffmpeg
import numpy as np

FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()


def speechlike_pcm(
    segments: Sequence[tuple[str, float]], rate: int = 16000, seed: int = 7
) -> np.ndarray:
    """Float32 mono samples: 'voice' is syllable-shaped noise near -20 dBFS, 'silence' ~-70 dBFS."""
    rng = np.random.default_rng(seed)
    parts = []
    for kind, seconds in segments:
        n = round(seconds * rate)
        if kind == "voice":
            t = np.arange(n) / rate
            envelope = 0.55 + 0.45 * np.abs(np.sin(2 * np.pi * 3.0 * t))
            carrier = np.sin(2 * np.pi * 180 * t) + 0.5 * rng.standard_normal(n)
            parts.append((0.12 * envelope * carrier).astype(np.float32))
        elif kind == "silence":
            parts.append((0.0003 * rng.standard_normal(n)).astype(np.float32))
        else:
            raise ValueError(kind)
    return np.concatenate(parts) if parts else np.zeros(0, np.float32)


def write_wav(path: Path, samples: np.ndarray, rate: int = 16000, channels: int = 1) -> Path:
    pcm = np.clip(samples, -1, 1)
    data = (pcm * 32767).astype("<i2")
    if channels == 2:
        data = np.repeat(data[:, None], 2, axis=1)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(data.tobytes())
    return path


def speechlike_wav(
    path: Path,
    segments: Sequence[tuple[str, float]],
    rate: int = 16000,
    channels: int = 1,
) -> Path:
    return write_wav(path, speechlike_pcm(segments, rate), rate, channels)


def alternating(
    total_s: float, voice_s: float = 6.0, silence_s: float = 0.8
) -> list[tuple[str, float]]:
    """Speech with a pause every ``voice_s`` seconds, ``total_s`` long in all."""
    segments: list[tuple[str, float]] = []
    left = total_s
    while left > 0:
        v = min(voice_s, left)
        segments.append(("voice", v))
        left -= v
        if left > 0:
            s = min(silence_s, left)
            segments.append(("silence", s))
            left -= s
    return segments


def convert(src: Path, dst: Path, *args: str) -> Path:
    """Re-encode with the bundled ffmpeg (the extension picks the format)."""
    subprocess.run(
        [FFMPEG, "-hide_banner", "-loglevel", "error", "-y", "-i", str(src), *args, str(dst)],
        check=True,
    )
    return dst


def portrait(path: Path, width: int = 400, height: int = 600, mode: str = "RGB") -> Path:
    """A face-ish test image: a light oval on a coloured background."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (width, height), (40, 90, 160))
    draw = ImageDraw.Draw(image)
    draw.ellipse((width * 0.25, height * 0.2, width * 0.75, height * 0.75), fill=(230, 190, 160))
    draw.ellipse((width * 0.38, height * 0.38, width * 0.45, height * 0.44), fill=(30, 30, 30))
    draw.ellipse((width * 0.55, height * 0.38, width * 0.62, height * 0.44), fill=(30, 30, 30))
    image.convert(mode).save(path)
    return path
