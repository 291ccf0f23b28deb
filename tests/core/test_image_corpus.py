"""Malformed portraits: each one is refused with the file's name and a plain reason."""

from __future__ import annotations

import io
import os
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image

from infinitetalk_gui.core.errors import InputError
from infinitetalk_gui.core.media import frame_portrait, load_portrait, validate_image


def good_png(size: tuple[int, int] = (200, 300)) -> bytes:
    buffer = io.BytesIO()
    Image.linear_gradient("L").resize(size).convert("RGB").save(buffer, "PNG")
    return buffer.getvalue()


def good_jpeg(size: tuple[int, int] = (200, 300)) -> bytes:
    buffer = io.BytesIO()
    Image.linear_gradient("L").resize(size).convert("RGB").save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def encoded(fmt: str, size: tuple[int, int] = (200, 300), mode: str = "RGB") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, 90).save(buffer, fmt)
    return buffer.getvalue()


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims a size in its header: enough for Pillow to judge it before decoding."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", idat)
        + png_chunk(b"IEND", b"")
    )


def corrupt_middle(data: bytes) -> bytes:
    middle = len(data) // 2
    return data[:middle] + bytes(b ^ 0x5A for b in data[middle : middle + 64]) + data[middle + 64 :]


def jpeg_without_scan() -> bytes:
    data = good_jpeg()
    sos = data.index(b"\xff\xda")
    return data[:sos] + b"\xff\xd9"


# (file name, how to make its bytes, words the message must contain)
CORPUS: list[tuple[str, Callable[[], bytes], str]] = [
    ("empty.png", lambda: b"", "empty"),
    ("notes.png", lambda: b"Dear diary,\nthis is not a picture.\n" * 20, "looks like text"),
    ("page.webp", lambda: b"<!doctype html><html><body>nope</body></html>\n", "looks like text"),
    (
        "drawing.png",
        lambda: b'<svg xmlns="http://www.w3.org/2000/svg" width="400" height="400"></svg>',
        "looks like text",
    ),
    ("noise.jpg", lambda: bytes(range(256)) * 40, "not an image"),
    ("voice.png", lambda: b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(200), "not an image"),
    ("half.png", lambda: good_png()[: len(good_png()) // 2], "incomplete"),
    ("half.jpg", lambda: good_jpeg()[: len(good_jpeg()) // 2], "incomplete"),
    ("scrambled.png", lambda: corrupt_middle(good_png()), "damaged"),
    ("signature_only.png", lambda: b"\x89PNG\r\n\x1a\n", "png file but its data is damaged"),
    ("header_only.jpg", lambda: b"\xff\xd8\xff\xe0\x00\x10JFIF\x00", "incomplete"),
    ("no_scan.jpg", jpeg_without_scan, "damaged"),
    ("half.webp", lambda: encoded("WEBP")[:40], "damaged"),
    ("animation.gif", lambda: encoded("GIF", mode="P"), "gif image; only png, jpeg and webp"),
    ("bitmap.bmp", lambda: encoded("BMP"), "bmp image; only png, jpeg and webp"),
    ("scan.tiff", lambda: encoded("TIFF"), "tiff image; only png, jpeg and webp"),
    ("gif_named.png", lambda: encoded("GIF", mode="P"), "gif image"),
    ("icon.png", lambda: encoded("ICO", size=(64, 64)), "ico image"),
    ("thumb.png", lambda: encoded("PNG", size=(48, 48)), "too small to hold a face"),
    ("sliver.jpg", lambda: encoded("JPEG", size=(1000, 40)), "too small to hold a face"),
    ("dot.webp", lambda: encoded("WEBP", size=(1, 1)), "too small"),
    # Over our own limit (56 MP), over Pillow's warning limit, over its hard limit.
    ("huge.png", lambda: png_header_only(8000, 7000), "too large"),
    ("bomb_warning.png", lambda: png_header_only(10000, 9500), "too large"),
    ("bomb.png", lambda: png_header_only(30000, 30000), "decompression bomb"),
    ("zero_size.png", lambda: png_header_only(0, 0), "damaged or incomplete"),
    ("ünïcødé portrait.png", lambda: b"just words, no pixels\n", "looks like text"),
]


@pytest.mark.parametrize(("name", "make", "reason"), CORPUS, ids=[c[0] for c in CORPUS])
def test_malformed_image_is_refused_clearly(
    tmp_path: Path, name: str, make: Callable[[], bytes], reason: str
) -> None:
    path = tmp_path / name
    path.write_bytes(make())
    for check in (
        validate_image,
        load_portrait,
        lambda p: frame_portrait(p, 512, 512, tmp_path / "framed.png"),
    ):
        with pytest.raises(InputError) as error:
            check(path)
        message = str(error.value)
        assert name in message
        assert reason in message.lower(), message
        assert "Traceback" not in message
    assert not (tmp_path / "framed.png").exists()


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"portrait\.png.*does not exist"):
        validate_image(tmp_path / "portrait.png")


def test_dangling_symlink(tmp_path: Path) -> None:
    link = tmp_path / "link.png"
    link.symlink_to(tmp_path / "gone.png")
    with pytest.raises(InputError, match=r"link\.png.*does not exist"):
        load_portrait(link)


def test_folder(tmp_path: Path) -> None:
    folder = tmp_path / "photos.png"
    folder.mkdir()
    with pytest.raises(InputError, match=r"photos\.png.*is a folder"):
        validate_image(folder)


def test_fifo_is_not_a_regular_file(tmp_path: Path) -> None:
    if not hasattr(os, "mkfifo"):
        pytest.skip("no named pipes here")
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    with pytest.raises(InputError, match=r"pipe\.png.*not a regular file"):
        validate_image(fifo)


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root can read any file"
)
def test_unreadable_file(tmp_path: Path) -> None:
    path = tmp_path / "locked.png"
    path.write_bytes(good_png())
    path.chmod(0)
    try:
        with pytest.raises(InputError, match=r"locked\.png.*permission denied"):
            validate_image(path)
    finally:
        path.chmod(0o600)


def test_good_images_pass(tmp_path: Path) -> None:
    png = tmp_path / "ok.png"
    png.write_bytes(good_png())
    jpeg = tmp_path / "ok.jpg"
    jpeg.write_bytes(good_jpeg())
    assert validate_image(png).format == "PNG"
    assert (validate_image(jpeg).width, validate_image(jpeg).height) == (200, 300)
