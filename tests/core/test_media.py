"""Portrait loading and framing; joining chunk videos with exact seams and the original audio."""

from __future__ import annotations

import base64
import logging
import os
import re
import subprocess
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageCms

from infinitetalk_gui.core import ffmpeg as ffmpeg_module
from infinitetalk_gui.core import media
from infinitetalk_gui.core.cancel import CancelToken
from infinitetalk_gui.core.errors import Cancelled, FFmpegError, InputError
from infinitetalk_gui.core.media import (
    B64_SLICE_BYTES,
    ChunkVideo,
    encode_file_b64,
    frame_portrait,
    framed_preview,
    join_chunks,
    load_portrait,
    media_duration,
    validate_image,
)
from infinitetalk_gui.core.models import SIZE_PRESETS
from tests.mediagen import FFMPEG

RED = (255, 0, 0)
GREY = (128, 128, 128)

# ------------------------------------------------------------------------------------------
# Portraits
# ------------------------------------------------------------------------------------------


def bordered(path: Path, width: int, height: int, fmt: str | None = None) -> Path:
    """Grey inside, a 1-px red border: framing must keep all four edges."""
    image = Image.new("RGB", (width, height), RED)
    image.paste(Image.new("RGB", (width - 2, height - 2), GREY), (1, 1))
    image.save(path, fmt)
    return path


def content_box(pixels: np.ndarray) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) of the non-black area, right/bottom exclusive."""
    mask = pixels.max(axis=2) > 10
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


SOURCES = {"portrait": (300, 500), "landscape": (500, 300), "square": (400, 400)}


@pytest.mark.parametrize("preset", SIZE_PRESETS, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("shape", sorted(SOURCES))
def test_frame_fits_pads_and_never_crops(
    tmp_path: Path, shape: str, preset: tuple[int, int]
) -> None:
    src_w, src_h = SOURCES[shape]
    width, height = preset
    src = bordered(tmp_path / "src.png", src_w, src_h)

    out = frame_portrait(src, width, height, tmp_path / "framed.png")

    assert out == tmp_path / "framed.png"
    with Image.open(out) as framed:
        assert framed.format == "PNG"
        assert framed.size == (width, height)
        pixels = np.asarray(framed.convert("RGB")).astype(int)
    left, top, right, bottom = content_box(pixels)
    box_w, box_h = right - left, bottom - top
    # Fits exactly on one axis, aspect ratio kept within a pixel, centred.
    assert box_w == width or box_h == height
    assert abs(box_w * src_h - box_h * src_w) <= max(src_w, src_h)
    assert abs(left - (width - right)) <= 1
    assert abs(top - (height - bottom)) <= 1
    # The padding is pure black, everywhere outside the box.
    outside = np.ones((height, width), bool)
    outside[top:bottom, left:right] = False
    assert (pixels[outside] == 0).all()
    # Nothing cropped: the red border is still there on all four sides.
    box = pixels[top:bottom, left:right]
    for edge in (box[0], box[-1], box[:, 0], box[:, -1]):
        assert edge[:, 0].mean() - edge[:, 1].mean() > 25
    middle = box[box_h // 2, box_w // 2]
    assert abs(int(middle[0]) - int(middle[1])) < 5


def test_big_jpeg_is_scaled_down_without_cropping(tmp_path: Path) -> None:
    src = bordered(tmp_path / "big.jpg", 3000, 1800, "JPEG")
    framed = framed_preview(src, 480, 832, "black")
    pixels = np.asarray(framed).astype(int)
    left, top, right, bottom = content_box(pixels)
    assert (right - left, bottom - top) == (480, 288)
    assert (left, top) == (0, 272)
    box = pixels[top:bottom, left:right]
    for edge in (box[0], box[-1], box[:, 0], box[:, -1]):
        assert edge[:, 0].mean() - edge[:, 1].mean() > 10


def test_small_portrait_is_scaled_up(tmp_path: Path) -> None:
    src = bordered(tmp_path / "small.png", 100, 160)
    framed = framed_preview(src, 720, 1280, "black")
    left, top, right, bottom = content_box(np.asarray(framed).astype(int))
    assert (right - left, bottom - top) == (720, 1152)
    assert (left, top) == (0, 64)


@pytest.mark.parametrize(
    ("pad", "colour"), [("white", (255, 255, 255)), ("#336699", (0x33, 0x66, 0x99))]
)
def test_pad_colour(tmp_path: Path, pad: str, colour: tuple[int, int, int]) -> None:
    src = bordered(tmp_path / "src.png", 300, 500)
    framed = framed_preview(src, 512, 512, pad)
    assert framed.getpixel((0, 0)) == colour
    assert framed.getpixel((511, 511)) == colour
    assert framed.getpixel((256, 256)) == GREY


def test_blur_pad_fills_with_the_picture_and_keeps_it_intact(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    noise = rng.integers(0, 256, (500, 300, 3), dtype=np.uint8)
    src = tmp_path / "colourful.png"
    Image.fromarray(noise, "RGB").save(src)

    blurred = np.asarray(framed_preview(src, 832, 480, "blur")).astype(int)
    plain = np.asarray(framed_preview(src, 832, 480, "black")).astype(int)

    left, _top, right, _bottom = content_box(plain)
    assert (left, right) == (272, 560)
    # The picture itself is identical; only the padding differs.
    assert (blurred[:, left:right] == plain[:, left:right]).all()
    side = blurred[:, :left]
    assert side.mean() > 20  # not black: a backdrop made from the picture
    assert side.std() < noise.std()  # and blurred
    out = frame_portrait(src, 832, 480, tmp_path / "blur.png", pad="blur")
    with Image.open(out) as written:
        assert written.size == (832, 480)


def test_bad_pad_colour(tmp_path: Path) -> None:
    src = bordered(tmp_path / "src.png", 300, 500)
    with pytest.raises(InputError, match="not a pad colour"):
        framed_preview(src, 512, 512, "purplish")


def test_exif_rotated_jpeg_is_upright(tmp_path: Path) -> None:
    # Stored landscape: left half red, right half blue. Orientation 6 = rotate 90° clockwise,
    # so it displays as a portrait with red on top.
    stored = Image.new("RGB", (200, 100), RED)
    stored.paste(Image.new("RGB", (100, 100), (0, 0, 255)), (100, 0))
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "phone.jpg"
    stored.save(path, "JPEG", exif=exif, quality=95)

    info = validate_image(path)
    assert (info.width, info.height, info.format) == (100, 200, "JPEG")
    image = load_portrait(path)
    assert image.size == (100, 200)
    top, bottom = image.getpixel((50, 20)), image.getpixel((50, 180))
    assert isinstance(top, tuple) and isinstance(bottom, tuple)
    assert top[0] > 200 and top[2] < 60
    assert bottom[2] > 200 and bottom[0] < 60

    framed = np.asarray(framed_preview(path, 512, 512)).astype(int)
    assert content_box(framed) == (128, 0, 384, 512)


def test_rgba_png_is_flattened_onto_the_background(tmp_path: Path) -> None:
    image = Image.new("RGBA", (100, 100), (255, 0, 0, 255))
    image.paste(Image.new("RGBA", (50, 100), (0, 0, 0, 0)), (50, 0))
    path = tmp_path / "cutout.png"
    image.save(path)

    loaded = load_portrait(path, background="white")
    assert loaded.mode == "RGB"
    assert loaded.getpixel((10, 50)) == RED
    assert loaded.getpixel((90, 50)) == (255, 255, 255)
    # When framing, transparency takes the pad colour so it blends with the letterbox.
    framed = framed_preview(path, 512, 256, "#00ff00")
    assert framed.getpixel((300, 128)) == (0, 255, 0)
    assert framed.getpixel((200, 128)) == RED


def test_cmyk_jpeg(tmp_path: Path) -> None:
    path = tmp_path / "print.jpg"
    Image.new("CMYK", (120, 120), (0, 255, 255, 0)).save(path, "JPEG", quality=95)
    with Image.open(path) as raw:
        assert raw.mode == "CMYK"
    loaded = load_portrait(path)
    assert loaded.mode == "RGB"
    pixel = loaded.getpixel((60, 60))
    assert isinstance(pixel, tuple)
    assert pixel[0] > 240 and pixel[1] < 15 and pixel[2] < 15


def test_16bit_greyscale_png_is_scaled_not_clipped(tmp_path: Path) -> None:
    values = np.linspace(0, 65535, 128 * 128).reshape(128, 128).astype(np.uint16)
    path = tmp_path / "scan16.png"
    Image.fromarray(values).save(path)
    with Image.open(path) as raw:
        assert raw.mode.startswith("I")

    loaded = np.asarray(load_portrait(path)).astype(int)
    assert loaded.shape == (128, 128, 3)
    assert loaded[0, 0].tolist() == [0, 0, 0]
    assert loaded[-1, -1].tolist() == [255, 255, 255]
    middle = loaded[64, 0, 0]
    assert abs(middle - 128) <= 2  # Pillow's plain convert would give 255 here


def test_palette_png_with_and_without_transparency(tmp_path: Path) -> None:
    rgb = Image.new("RGB", (100, 100), (0, 128, 255))
    rgb.paste(Image.new("RGB", (50, 100), (255, 255, 0)), (50, 0))
    opaque = tmp_path / "palette.png"
    rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=4).save(opaque)
    with Image.open(opaque) as raw:
        assert raw.mode == "P"
    loaded = load_portrait(opaque)
    assert loaded.getpixel((10, 10)) == (0, 128, 255)
    assert loaded.getpixel((90, 10)) == (255, 255, 0)

    palette = rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=4)
    index = palette.getpixel((90, 10))
    see_through = tmp_path / "palette_alpha.png"
    palette.save(see_through, transparency=index)
    loaded = load_portrait(see_through, background="#ff00ff")
    assert loaded.getpixel((90, 10)) == (255, 0, 255)
    assert loaded.getpixel((10, 10)) == (0, 128, 255)


def test_webp(tmp_path: Path) -> None:
    path = tmp_path / "portrait.webp"
    Image.new("RGB", (160, 240), (10, 200, 30)).save(path, "WEBP", lossless=True)
    info = validate_image(path)
    assert (info.width, info.height, info.format) == (160, 240, "WebP")
    assert load_portrait(path).getpixel((80, 120)) == (10, 200, 30)


def test_format_is_decided_by_content_not_extension(tmp_path: Path) -> None:
    png_named_jpg = tmp_path / "really_png.jpg"
    Image.new("RGB", (100, 100), GREY).save(png_named_jpg, "PNG")
    jpeg_named_png = tmp_path / "really_jpeg.png"
    Image.new("RGB", (100, 100), GREY).save(jpeg_named_png, "JPEG")
    assert validate_image(png_named_jpg).format == "PNG"
    assert validate_image(jpeg_named_png).format == "JPEG"
    assert load_portrait(jpeg_named_png).size == (100, 100)


def test_embedded_colour_profile_is_applied(tmp_path: Path) -> None:
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    path = tmp_path / "profiled.png"
    Image.new("RGB", (100, 100), (200, 100, 50)).save(path, icc_profile=srgb)
    pixel = load_portrait(path).getpixel((50, 50))
    assert isinstance(pixel, tuple)
    assert all(abs(a - b) <= 2 for a, b in zip(pixel, (200, 100, 50), strict=True))


def test_big_noisy_frame_is_written_as_jpeg_under_the_limit(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    src = tmp_path / "noise.png"
    Image.fromarray(rng.integers(0, 256, (1280, 1280, 3), dtype=np.uint8), "RGB").save(src)
    out = frame_portrait(src, 1280, 1280, tmp_path / "framed.png")
    assert out == tmp_path / "framed.jpg"
    assert not (tmp_path / "framed.png").exists()
    assert out.stat().st_size <= media.MAX_PNG_BYTES
    with Image.open(out) as written:
        assert (written.format, written.size) == ("JPEG", (1280, 1280))
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_encode_file_b64_is_raw(tmp_path: Path) -> None:
    path = tmp_path / "blob.bin"
    data = bytes(range(256)) * 3
    path.write_bytes(data)
    encoded = encode_file_b64(path)
    assert not encoded.startswith("data:")
    assert base64.b64decode(encoded, validate=True) == data
    # Encoded piece by piece: still one valid text, whatever the length.
    for size in (B64_SLICE_BYTES - 1, B64_SLICE_BYTES, 2 * B64_SLICE_BYTES + 2):
        blob = bytes(range(256)) * (size // 256) + bytes(size % 256)
        path.write_bytes(blob)
        assert encode_file_b64(path) == base64.b64encode(blob).decode("ascii")


# ------------------------------------------------------------------------------------------
# Joining
# ------------------------------------------------------------------------------------------

COLOURS = {"red": 0, "lime": 1, "blue": 2}
AUDIO_HZ = 300  # the user's audio; the chunk videos carry a 440 Hz stand-in at 16 kHz


def ffmpeg(*args: str) -> None:
    subprocess.run([FFMPEG, "-hide_banner", "-loglevel", "error", "-y", *args], check=True)


def chunk_video(
    path: Path,
    colour: str,
    seconds: float,
    *,
    size: str = "256x256",
    codec: Sequence[str] = ("-c:v", "libx264"),
) -> Path:
    """A solid-colour 25 fps clip with 16 kHz audio, like the worker returns."""
    ffmpeg(
        "-f", "lavfi", "-i", f"color=c={colour}:s={size}:r=25:d={seconds}",
        "-f", "lavfi", "-i", f"sine=f=440:d={seconds}:sample_rate=16000",
        *codec, "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", str(path),
    )  # fmt: skip
    return path


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("clips")
    no_b = ("-c:v", "libx264", "-bf", "0")
    ours = ("-c:v", "libx264", "-preset", "veryfast", "-crf", "18", "-profile:v", "high")
    made = {
        # x264 defaults (B-frames): 0.3 s too long, 0.2 s too short, a little long.
        "red_long": chunk_video(folder / "red_long.mp4", "red", 2.3),
        "lime_short": chunk_video(folder / "lime_short.mp4", "lime", 2.8),
        "blue_last": chunk_video(folder / "blue_last.mp4", "blue", 2.6),
        # No B-frames: every cut is a clean stream-copy cut.
        "red_nob": chunk_video(folder / "red_nob.mp4", "red", 2.3, codec=no_b),
        "lime_nob": chunk_video(folder / "lime_nob.mp4", "lime", 3.0, codec=no_b),
        "blue_nob": chunk_video(folder / "blue_nob.mp4", "blue", 2.6, codec=no_b),
        # Encoded the way join_chunks re-encodes.
        "red_ours": chunk_video(folder / "red_ours.mp4", "red", 2.0, codec=ours),
        "lime_ours": chunk_video(folder / "lime_ours.mp4", "lime", 2.8, codec=ours),
        "blue_ours": chunk_video(folder / "blue_ours.mp4", "blue", 2.52, codec=ours),
        # Odd ones out.
        "lime_320": chunk_video(folder / "lime_320.mp4", "lime", 3.3, size="320x240"),
        "lime_mpeg4": chunk_video(
            folder / "lime_mpeg4.mp4", "lime", 3.0, codec=("-c:v", "mpeg4", "-q:v", "3")
        ),
        "padded": chunk_video(folder / "padded.mp4", "red", 3.5),
    }
    audio = folder / "voice.wav"
    ffmpeg(
        "-f", "lavfi", "-i", f"sine=f={AUDIO_HZ}:d=7.51:sample_rate=44100", "-ac", "2", str(audio)
    )
    made["audio"] = audio
    short = folder / "short.wav"
    ffmpeg("-f", "lavfi", "-i", f"sine=f={AUDIO_HZ}:d=2.0:sample_rate=44100", str(short))
    made["short_audio"] = short
    return made


# The user's audio is 7.51 s: chunks of 2.0 s, 3.0 s and 2.51 s (the last one off the grid).
FRAMES = (50, 75, 63)
DURATION_MS = 7510


def three(clips: dict[str, Path], *names: str) -> list[ChunkVideo]:
    return [ChunkVideo(clips[n], f) for n, f in zip(names, FRAMES, strict=True)]


def frame_colours(path: Path) -> list[int]:
    """The dominant channel of every decoded frame (0 red, 1 green, 2 blue), none dropped/duped."""
    raw = subprocess.run(
        [FFMPEG, "-v", "error", "-i", str(path), "-vf", "scale=4:4", "-fps_mode", "passthrough",
         "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
        capture_output=True, check=True,
    ).stdout  # fmt: skip
    frames = np.frombuffer(raw, np.uint8).reshape(-1, 16, 3).mean(axis=1)
    return [int(c) for c in frames.argmax(axis=1)]


def original_audio(path: Path) -> tuple[float, str]:
    """(dominant frequency of the audio, ffmpeg's description of the audio stream)."""
    result = subprocess.run(
        [FFMPEG, "-hide_banner", "-i", str(path), "-map", "0:a:0", "-ac", "1", "-f", "s16le",
         "-"],
        capture_output=True, check=True,
    )  # fmt: skip
    line = re.search(r"Audio: .*", result.stderr.decode())
    assert line, result.stderr
    rate = int(re.search(r"(\d+) Hz", line.group(0)).group(1))  # type: ignore[union-attr]
    samples = np.frombuffer(result.stdout, "<i2").astype(float)
    spectrum = np.abs(np.fft.rfft(samples))
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[spectrum.argmax()]), line.group(0)


def assert_joined(
    out: Path, expected: Sequence[str], frames: Sequence[int], duration_ms: int
) -> None:
    video_s, audio_s = media_duration(out)
    assert video_s is not None and audio_s is not None
    assert abs(video_s - duration_ms / 1000) <= 0.040, video_s
    assert abs(audio_s - duration_ms / 1000) <= 0.040, audio_s
    colours = frame_colours(out)
    assert len(colours) == sum(frames)
    seams = [i for i in range(1, len(colours)) if colours[i] != colours[i - 1]]
    assert len(seams) == len(frames) - 1, seams
    expected_seams = np.cumsum(frames)[:-1].tolist()
    for found, wanted in zip(seams, expected_seams, strict=True):
        assert abs(found - wanted) <= 1, (seams, expected_seams)
    assert colours[0] == COLOURS[expected[0]] and colours[-1] == COLOURS[expected[-1]]
    # The original audio, not the worker's 16 kHz copy, at full quality.
    hz, line = original_audio(out)
    assert abs(hz - AUDIO_HZ) < 2
    assert "aac" in line and "44100 Hz" in line and "stereo" in line


def join_log(caplog: pytest.LogCaptureFixture) -> str:
    return " ".join(r.getMessage() for r in caplog.records if r.getMessage().startswith("join:"))


def test_join_trims_and_extends_every_chunk_to_its_frames(
    tmp_path: Path, clips: dict[str, Path], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="infinitetalk_gui.core.media")
    out = tmp_path / "out" / "talk.mp4"
    out.parent.mkdir()
    work = tmp_path / "work"

    result = join_chunks(
        three(clips, "red_long", "lime_short", "blue_last"),
        clips["audio"],
        DURATION_MS,
        out,
        work_dir=work,
    )

    assert result == out
    assert_joined(out, ["red", "lime", "blue"], FRAMES, DURATION_MS)
    assert sorted(p.name for p in out.parent.iterdir()) == ["talk.mp4"]
    assert list(work.iterdir()) == []  # intermediate files cleaned up
    assert "re-encoded" in join_log(caplog)


def video_packet_crcs(path: Path) -> list[str]:
    text = subprocess.run(
        [FFMPEG, "-v", "error", "-i", str(path), "-map", "0:v:0", "-c", "copy", "-f", "framecrc",
         "-"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return [line.split(",")[5].strip() for line in text.splitlines() if line.startswith("0,")]


def test_join_stream_copies_when_chunks_allow_it(
    tmp_path: Path, clips: dict[str, Path], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="infinitetalk_gui.core.media")
    out = tmp_path / "copied.mp4"
    chunks = three(clips, "red_nob", "lime_nob", "blue_nob")

    join_chunks(chunks, clips["audio"], DURATION_MS, out, work_dir=tmp_path / "work")

    assert_joined(out, ["red", "lime", "blue"], FRAMES, DURATION_MS)
    assert "3 copied, 0 re-encoded" in join_log(caplog)
    # Bit-exact: the output's packets are the first N packets of each chunk. (The concat
    # demuxer puts the parameter sets in-band at each chunk's first packet: skip those.)
    expected = [video_packet_crcs(c.path)[1 : c.frames] for c in chunks]
    got = video_packet_crcs(out)
    starts = [0, *np.cumsum(FRAMES)[:-1].tolist()]
    assert [got[s + 1 : s + f] for s, f in zip(starts, FRAMES, strict=True)] == expected


def test_join_reencodes_only_the_odd_chunk_when_encodings_match(
    tmp_path: Path, clips: dict[str, Path], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="infinitetalk_gui.core.media")
    out = tmp_path / "mixed.mp4"
    join_chunks(
        three(clips, "red_ours", "lime_ours", "blue_ours"),
        clips["audio"],
        DURATION_MS,
        out,
        work_dir=tmp_path / "work",
    )
    assert_joined(out, ["red", "lime", "blue"], FRAMES, DURATION_MS)
    assert "2 copied, 1 re-encoded" in join_log(caplog)


@pytest.mark.parametrize("odd", ["lime_320", "lime_mpeg4"])
def test_mismatched_chunk_falls_back_to_reencoding(
    tmp_path: Path, clips: dict[str, Path], caplog: pytest.LogCaptureFixture, odd: str
) -> None:
    caplog.set_level(logging.INFO, logger="infinitetalk_gui.core.media")
    out = tmp_path / "fallback.mp4"
    join_chunks(
        three(clips, "red_nob", odd, "blue_nob"),
        clips["audio"],
        DURATION_MS,
        out,
        work_dir=tmp_path / "work",
    )
    assert_joined(out, ["red", "lime", "blue"], FRAMES, DURATION_MS)
    assert "0 copied, 3 re-encoded" in join_log(caplog)
    text = subprocess.run(
        [FFMPEG, "-hide_banner", "-i", str(out)], capture_output=True, text=True, check=False
    ).stderr
    assert re.search(r"Video: h264 .*256x256", text), text


def test_short_audio_trims_the_padded_render(tmp_path: Path, clips: dict[str, Path]) -> None:
    # The worker got 3.5 s (padded); the user's audio is 2.0 s = 50 frames.
    out = tmp_path / "short.mp4"
    join_chunks([ChunkVideo(clips["padded"], 50)], clips["short_audio"], 2000, out)
    video_s, audio_s = media_duration(out)
    assert video_s is not None and abs(video_s - 2.0) <= 0.040
    assert audio_s is not None and abs(audio_s - 2.0) <= 0.040
    assert len(frame_colours(out)) == 50


def folder_state(folder: Path) -> dict[str, tuple[int, int]]:
    return {p.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.iterdir()}


def test_existing_output_is_kept_unless_overwrite(tmp_path: Path, clips: dict[str, Path]) -> None:
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    out = out_dir / "talk.mp4"
    out.write_bytes(b"precious")
    chunks = three(clips, "red_nob", "lime_nob", "blue_nob")
    with pytest.raises(InputError, match=r"talk\.mp4") as error:
        join_chunks(chunks, clips["audio"], DURATION_MS, out)
    assert "already exists" in str(error.value)
    assert out.read_bytes() == b"precious"
    assert sorted(p.name for p in out_dir.iterdir()) == ["talk.mp4"]

    join_chunks(chunks, clips["audio"], DURATION_MS, out, overwrite=True)
    assert out.read_bytes() != b"precious"
    assert media_duration(out)[0] == pytest.approx(7.52, abs=0.001)


def test_bad_output_folder(tmp_path: Path, clips: dict[str, Path]) -> None:
    chunks = three(clips, "red_nob", "lime_nob", "blue_nob")
    with pytest.raises(InputError, match="does not exist"):
        join_chunks(chunks, clips["audio"], DURATION_MS, tmp_path / "nowhere" / "talk.mp4")


def test_frames_must_match_the_audio(tmp_path: Path, clips: dict[str, Path]) -> None:
    chunks = [ChunkVideo(clips["red_nob"], 50), ChunkVideo(clips["lime_nob"], 75)]
    with pytest.raises(ValueError, match="5000 ms of video"):
        join_chunks(chunks, clips["audio"], DURATION_MS, tmp_path / "talk.mp4")


def test_cancel_during_the_final_write_leaves_the_folder_as_it_was(
    tmp_path: Path, clips: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    (out_dir / "other.txt").write_text("unrelated")
    before = folder_state(out_dir)
    work = tmp_path / "work"
    token = CancelToken()
    twin = out_dir / ".talk.partial.mp4"
    seen_twin = threading.Event()
    real_run = ffmpeg_module.run_ffmpeg

    def slow_final_run(args: Sequence[str], **kwargs: Any) -> str:
        if "+faststart" not in args:
            return real_run(args, **kwargs)

        # Read the chunks at playback speed so the write is surely under way when cancelled.
        def cancel_when_writing() -> None:
            for _ in range(500):
                if twin.exists():
                    seen_twin.set()
                    token.cancel()
                    return
                token.wait(0.01)

        threading.Thread(target=cancel_when_writing, daemon=True).start()
        return real_run(["-re", *args], **kwargs)

    monkeypatch.setattr(media, "run_ffmpeg", slow_final_run)
    with pytest.raises(Cancelled):
        join_chunks(
            three(clips, "red_nob", "lime_nob", "blue_nob"),
            clips["audio"],
            DURATION_MS,
            out_dir / "talk.mp4",
            cancel=token,
            work_dir=work,
        )
    assert seen_twin.is_set()
    assert folder_state(out_dir) == before
    assert list(work.iterdir()) == []


def test_cancel_before_start(tmp_path: Path, clips: dict[str, Path]) -> None:
    token = CancelToken()
    token.cancel()
    work = tmp_path / "work"
    with pytest.raises(Cancelled):
        join_chunks(
            three(clips, "red_nob", "lime_nob", "blue_nob"),
            clips["audio"],
            DURATION_MS,
            tmp_path / "talk.mp4",
            cancel=token,
            work_dir=work,
        )
    assert not (tmp_path / "talk.mp4").exists()
    assert not (tmp_path / ".talk.partial.mp4").exists()
    assert list(work.iterdir()) == []


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda good: os.urandom(4000), r"Invalid data|could not find|moov atom"),
        (lambda good: good[: len(good) // 2], r"moov atom not found|Invalid data"),
    ],
    ids=["garbage", "truncated"],
)
def test_corrupt_chunk_raises_ffmpeg_error_with_stderr(
    tmp_path: Path,
    clips: dict[str, Path],
    make: Callable[[bytes], bytes],
    expected: str,
) -> None:
    broken = tmp_path / "chunk_0002.mp4"
    broken.write_bytes(make(clips["lime_nob"].read_bytes()))
    chunks = [
        ChunkVideo(clips["red_nob"], 50),
        ChunkVideo(broken, 75),
        ChunkVideo(clips["blue_nob"], 63),
    ]
    out = tmp_path / "talk.mp4"
    with pytest.raises(FFmpegError) as error:
        join_chunks(chunks, clips["audio"], DURATION_MS, out, work_dir=tmp_path / "work")
    message = str(error.value)
    assert "chunk_0002.mp4" in message
    assert re.search(expected, message), message
    assert not out.exists() and not (tmp_path / ".talk.partial.mp4").exists()


def test_media_duration_counts_each_stream(tmp_path: Path) -> None:
    clip = tmp_path / "clip.mp4"
    ffmpeg(
        "-f", "lavfi", "-i", "testsrc=s=128x128:r=25:d=2",
        "-f", "lavfi", "-i", "sine=d=1.5:sample_rate=48000",
        "-c:v", "libx264", "-c:a", "aac", str(clip),
    )  # fmt: skip
    video_s, audio_s = media_duration(clip)
    assert video_s == pytest.approx(2.0, abs=0.001)
    assert audio_s == pytest.approx(1.5, abs=0.001)

    wav = tmp_path / "tone.wav"
    ffmpeg("-f", "lavfi", "-i", "sine=d=1.234:sample_rate=16000", str(wav))
    video_s, audio_s = media_duration(wav)
    assert video_s is None
    assert audio_s == pytest.approx(1.234, abs=0.0001)
