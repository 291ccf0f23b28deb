"""Malformed audio inputs: each is refused with InputError naming the file and the problem.

Nothing is yielded from the stream for any of them, so bad input never costs a remote call.
"""

from __future__ import annotations

import os
import re
import struct
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from infinitetalk_gui.core.audio import stream_chunks, validate_audio
from infinitetalk_gui.core.errors import InputError
from tests import mediagen


def _tone(tmp: Path, name: str, seconds: float = 3.0, *args: str) -> Path:
    """A real encoded clip to damage."""
    src = mediagen.speechlike_wav(tmp / "source.wav", [("voice", seconds)])
    return mediagen.convert(src, tmp / name, *args)


def _text(name: str, content: str) -> Callable[[Path], Path]:
    def make(tmp: Path) -> Path:
        path = tmp / name
        path.write_text(content, encoding="utf-8")
        return path

    return make


def _bytes(name: str, content: bytes) -> Callable[[Path], Path]:
    def make(tmp: Path) -> Path:
        path = tmp / name
        path.write_bytes(content)
        return path

    return make


def missing(tmp: Path) -> Path:
    return tmp / "nowhere" / "voice.mp3"


def directory(tmp: Path) -> Path:
    path = tmp / "voice.wav"
    path.mkdir()
    return path


def picture(tmp: Path, name: str, fmt: str) -> Path:
    image = mediagen.portrait(tmp / f"face.{fmt}", 64, 64)
    return image.rename(tmp / name)


def png_as_wav(tmp: Path) -> Path:
    return picture(tmp, "photo.wav", "png")


def jpeg_as_mp3(tmp: Path) -> Path:
    return picture(tmp, "photo.mp3", "jpg")


def video_without_audio(tmp: Path) -> Path:
    path = tmp / "silent-film.mp4"
    subprocess.run(
        [
            *(mediagen.FFMPEG, "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi"),
            *("-i", "testsrc=d=1:s=64x64:r=25", "-c:v", "libx264", str(path)),
        ],
        check=True,
    )
    return path


def header_only_wav(tmp: Path) -> Path:
    return mediagen.write_wav(tmp / "empty-samples.wav", mediagen.speechlike_pcm([]))


def wav_claiming_data_it_lacks(tmp: Path) -> Path:
    header = mediagen.write_wav(tmp / "x.wav", mediagen.speechlike_pcm([])).read_bytes()
    # data chunk says 1 MB follows; nothing does.
    path = tmp / "liar.wav"
    path.write_bytes(header[:40] + struct.pack("<I", 1_000_000))
    return path


def wav_header_cut(tmp: Path) -> Path:
    wav = mediagen.speechlike_wav(tmp / "full.wav", [("voice", 1.0)])
    path = tmp / "cut-header.wav"
    path.write_bytes(wav.read_bytes()[:10])
    return path


def mp3_first_300_bytes(tmp: Path) -> Path:
    mp3 = _tone(tmp, "full.mp3")
    path = tmp / "stub.mp3"
    path.write_bytes(mp3.read_bytes()[:300])
    return path


def mp3_cut_short(tmp: Path) -> Path:
    """The first tenth of a 20 s MP3: its header still promises 20 s."""
    mp3 = _tone(tmp, "full.mp3", 20.0)
    data = mp3.read_bytes()
    path = tmp / "download-interrupted.mp3"
    path.write_bytes(data[: len(data) // 10])
    return path


def mp3_header_then_garbage(tmp: Path) -> Path:
    mp3 = _tone(tmp, "full.mp3")
    path = tmp / "garbled.mp3"
    path.write_bytes(mp3.read_bytes()[:100] + os.urandom(30_000))
    return path


def m4a_without_index(tmp: Path) -> Path:
    """An M4A whose index (moov atom, at the end) was lost."""
    m4a = _tone(tmp, "full.m4a", 3.0, "-c:a", "aac")
    data = m4a.read_bytes()
    path = tmp / "no-index.m4a"
    path.write_bytes(data[: data.find(b"moov") - 4] if b"moov" in data else data[:500])
    return path


def flac_cut_in_header(tmp: Path) -> Path:
    flac = _tone(tmp, "full.flac")
    path = tmp / "broken.flac"
    path.write_bytes(flac.read_bytes()[:30])
    return path


CASES: list[tuple[str, Callable[[Path], Path], str]] = [
    ("missing file", missing, "does not exist"),
    ("a folder", directory, "is a folder"),
    ("zero-byte mp3", _bytes("empty.mp3", b""), "is empty (0 bytes)"),
    ("zero-byte wav", _bytes("empty.wav", b""), "is empty (0 bytes)"),
    ("text renamed .mp3", _text("notes.mp3", "Remember to buy milk.\n" * 20), "text file"),
    ("HTML error page as .m4a", _text("song.m4a", "<html><body>404</body></html>"), "text file"),
    ("JSON renamed .ogg", _text("data.ogg", '{"audio": "voice.ogg"}'), "text file"),
    ("PNG renamed .wav", png_as_wav, "picture"),
    ("JPEG renamed .mp3", jpeg_as_mp3, "picture"),
    ("PDF renamed .mp3", _bytes("paper.mp3", b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n" + bytes(300)), "PDF"),
    ("ZIP renamed .m4a", _bytes("archive.m4a", b"PK\x03\x04" + os.urandom(400)), "ZIP"),
    ("random bytes .mp3", _bytes("noise.mp3", os.urandom(20_000)), "damaged"),
    ("video without audio", video_without_audio, "no audio track"),
    ("header-only WAV, zero samples", header_only_wav, "zero length"),
    ("WAV promising data it lacks", wav_claiming_data_it_lacks, "zero length"),
    ("WAV header cut at 10 bytes", wav_header_cut, "not an audio file"),
    ("MP3 cut to 300 bytes", mp3_first_300_bytes, "not an audio file"),
    ("MP3 download cut short", mp3_cut_short, "truncated or damaged"),
    ("MP3 header then garbage", mp3_header_then_garbage, "damaged"),
    ("M4A without its index", m4a_without_index, "not an audio file"),
    ("FLAC cut inside its header", flac_cut_in_header, "not an audio file"),
]


@pytest.mark.parametrize(("make", "problem"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_malformed_audio_is_refused_clearly(
    tmp_path: Path, make: Callable[[Path], Path], problem: str
) -> None:
    path = make(tmp_path)
    with pytest.raises(InputError) as caught:
        validate_audio(path)
    message = str(caught.value)
    assert path.name in message
    assert problem in message
    assert "Traceback" not in message and "\n" not in message
    # The decode path refuses it the same way, before any chunk.
    stream = stream_chunks(path, tmp_path / "work")
    with pytest.raises(InputError, match=re.escape(problem)):
        next(iter(stream))
