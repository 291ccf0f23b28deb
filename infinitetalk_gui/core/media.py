"""Portraits in (validate, normalise, frame) and chunk videos out (trim, join, original audio).

The worker centre-crops whatever it gets, so the portrait is letterboxed to the exact output
size here first. At the other end every chunk video is cut or extended to its own exact frame
count before the join, so the seams cannot drift, and the user's original audio replaces the
worker's 16 kHz copy.
"""

from __future__ import annotations

import base64
import io
import itertools
import logging
import math
import os
import re
import shutil
import struct
import tempfile
import time
import warnings
import zlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from PIL import (
    ExifTags,
    Image,
    ImageCms,
    ImageColor,
    ImageEnhance,
    ImageFilter,
    ImageOps,
    UnidentifiedImageError,
)

from infinitetalk_gui.core import paths
from infinitetalk_gui.core.cancel import CancelToken
from infinitetalk_gui.core.errors import FFmpegError, InputError
from infinitetalk_gui.core.ffmpeg import run_ffmpeg
from infinitetalk_gui.core.models import FPS, FRAME_MS

log = logging.getLogger(__name__)

# ---------------------------------------------------------------------------------------------
# Portraits
# ---------------------------------------------------------------------------------------------

# Pillow's format name -> the name users know. MPO is how Pillow labels many camera JPEGs.
ACCEPTED_FORMATS = {"PNG": "PNG", "JPEG": "JPEG", "MPO": "JPEG", "WEBP": "WebP"}
ACCEPTED_TEXT = "PNG, JPEG or WebP"
MIN_FACE_PX = 64
# Well under Pillow's own bomb limit (~89 MP): a 50 MP RGB image is already 150 MB in memory.
MAX_PIXELS = 50_000_000
# Above this the framed portrait is written as JPEG: the whole /run body must stay under 10 MB.
MAX_PNG_BYTES = 3 * 1024 * 1024
JPEG_QUALITIES = (95, 90, 85, 80)
BLUR_PAD = "blur"

# What Pillow's decoders raise on malformed data besides OSError (they are not uniform).
_DECODE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    IndexError,
    KeyError,
    TypeError,
    struct.error,
    zlib.error,
)

Colour = tuple[int, int, int]


@dataclass(frozen=True)
class ImageInfo:
    """A portrait that passed validation: size as displayed (EXIF orientation applied)."""

    path: Path
    width: int
    height: int
    format: str


def _image_error(path: Path, reason: str) -> InputError:
    return InputError(f'Cannot use the image "{path}": {reason}.')


def _existing_file(path: str | os.PathLike[str], what: str = "image") -> Path:
    p = Path(path).expanduser()
    if not p.exists():
        raise InputError(f'The {what} "{p}" does not exist.')
    if p.is_dir():
        raise InputError(f'The {what} "{p}" is a folder, not a file.')
    if not p.is_file():
        raise InputError(f'The {what} "{p}" is not a regular file.')
    return p


def _looks_like_text(head: bytes) -> bool:
    if not head or b"\x00" in head:
        return False
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        # A multi-byte character cut at the end of the sample is still text.
        try:
            text = head[:-3].decode("utf-8")
        except UnicodeDecodeError:
            return False
    printable = sum(ch.isprintable() or ch in "\r\n\t" for ch in text)
    return printable >= 0.95 * max(1, len(text))


_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"\xff\xd8\xff", "JPEG"),
    (b"RIFF", "WebP"),  # followed by a size and "WEBP"; checked below
)


def _not_an_image(path: Path) -> InputError:
    try:
        with path.open("rb") as handle:
            head = handle.read(2048)
    except OSError:
        head = b""
    for magic, name in _SIGNATURES:
        if head.startswith(magic) and (name != "WebP" or head[8:12] == b"WEBP"):
            return _image_error(
                path, f"it starts like a {name} file but its data is damaged or incomplete"
            )
    if _looks_like_text(head):
        return _image_error(
            path, f"it is not an image, it looks like text; use a {ACCEPTED_TEXT} image"
        )
    return _image_error(
        path, f"it is not an image in a known format, or it is damaged; use a {ACCEPTED_TEXT} image"
    )


def _too_large(path: Path, width: int, height: int) -> InputError:
    megapixels = width * height / 1e6
    return _image_error(
        path,
        f"it is {width}x{height} pixels ({megapixels:.0f} megapixels), too large to process "
        f"safely; use an image under {MAX_PIXELS // 1_000_000} megapixels",
    )


def _parse_colour(value: str | Colour, *, what: str = "pad colour") -> Colour:
    if isinstance(value, tuple):
        return (int(value[0]), int(value[1]), int(value[2]))
    try:
        rgb = ImageColor.getrgb(value.strip())
    except ValueError:
        blur = f", or {BLUR_PAD}" if what == "pad colour" else ""
        raise InputError(
            f'"{value}" is not a {what}: use a colour name (black, white, grey...) '
            f"or #rrggbb{blur}."
        ) from None
    return (rgb[0], rgb[1], rgb[2])


def _to_8bit(image: Image.Image) -> Image.Image:
    """16/32-bit greyscale to 8-bit L by scaling (Pillow's own convert clips at 255)."""
    if image.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        import numpy as np  # only this rare case needs it: keep it out of start-up

        data = np.asarray(image).astype(np.float64)
        peak = 65535.0 if image.mode.startswith("I;16") or data.max(initial=0) > 255 else 255.0
        scaled = np.clip(np.rint(data * (255.0 / peak)), 0, 255).astype(np.uint8)
        return Image.fromarray(scaled, "L")
    if image.mode == "F":
        return image.convert("L")
    if image.mode == "1":
        return image.convert("L")
    return image


def _to_srgb(image: Image.Image, icc: bytes | None) -> Image.Image:
    """Apply the embedded colour profile (phone photos are often Display P3, CMYK has its own)."""
    if not icc or image.mode not in ("RGB", "RGBA", "CMYK"):
        return image
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        target = ImageCms.createProfile("sRGB")
        out_mode = "RGBA" if image.mode == "RGBA" else "RGB"
        converted = ImageCms.profileToProfile(image, source, target, outputMode=out_mode)
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError) as exc:
        # A broken or exotic profile should not stop an otherwise good picture.
        log.info("ignoring unusable colour profile: %s", exc)
        return image
    return converted if converted is not None else image


def _flatten(image: Image.Image, background: Colour) -> Image.Image:
    """Any mode to 8-bit RGB; transparency composited onto ``background``."""
    icc = image.info.get("icc_profile")
    image = _to_8bit(image)
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    elif image.mode in ("LA", "La", "PA", "RGBa") or (
        image.mode in ("L", "RGB") and "transparency" in image.info
    ):
        image = image.convert("RGBA")
    image = _to_srgb(image, icc if isinstance(icc, bytes) else None)
    if image.mode == "RGBA":
        base = Image.new("RGB", image.size, background)
        base.paste(image, mask=image.getchannel("A"))
        return base
    return image.convert("RGB") if image.mode != "RGB" else image


def _orientation(image: Image.Image) -> int:
    try:
        value = image.getexif().get(ExifTags.Base.Orientation, 1)
    except _DECODE_ERRORS:
        return 1
    return value if isinstance(value, int) else 1


def _read_image(
    path: str | os.PathLike[str],
    *,
    background: Colour,
    draft: tuple[int, int] | None = None,
) -> tuple[Image.Image, ImageInfo]:
    """Open, check and decode a portrait; return it as 8-bit RGB, upright, and its info.

    ``draft`` lets JPEG decode at a reduced scale (never below that size): framing a 48 MP
    photo to 512x512 then needs a fraction of the memory and time.
    """
    p = _existing_file(path)
    try:
        if p.stat().st_size == 0:
            raise _image_error(p, "the file is empty")
        with p.open("rb"):
            pass
    except PermissionError:
        raise _image_error(p, "the file cannot be read (permission denied)") from None
    except OSError as exc:
        raise _image_error(p, f"the file cannot be read ({exc.strerror or exc})") from None

    # Pillow reports a decompression bomb as a warning; here it must become a clean error.
    # Other decoder warnings (odd EXIF and the like) are logged, not raised.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            with Image.open(p) as opened:
                if any(issubclass(w.category, Image.DecompressionBombWarning) for w in caught):
                    raise _too_large(p, *opened.size)
                fmt = opened.format or "unknown"
                if fmt not in ACCEPTED_FORMATS:
                    raise _image_error(
                        p, f"it is a {fmt} image; only PNG, JPEG and WebP images are accepted"
                    )
                width, height = opened.size
                if min(width, height) < MIN_FACE_PX:
                    raise _image_error(
                        p,
                        f"it is only {width}x{height} pixels, too small to hold a face; "
                        f"use an image at least {MIN_FACE_PX} pixels on each side",
                    )
                if width * height > MAX_PIXELS:
                    raise _too_large(p, width, height)
                if draft is not None and fmt in ("JPEG", "MPO"):
                    opened.draft(None, draft)
                opened.load()
                orientation = _orientation(opened)
                try:
                    upright = ImageOps.exif_transpose(opened)
                except _DECODE_ERRORS as exc:
                    log.info("ignoring unreadable EXIF orientation in %s: %s", p, exc)
                    upright = opened.copy()
                upright.info.setdefault("icc_profile", opened.info.get("icc_profile"))
                image = _flatten(upright, background)
        except InputError:
            raise
        except Image.DecompressionBombError as exc:
            raise _bomb_error(p, exc) from None
        except UnidentifiedImageError:
            raise _not_an_image(p) from None
        except PermissionError:
            raise _image_error(p, "the file cannot be read (permission denied)") from None
        except MemoryError:
            raise _image_error(p, "there is not enough memory to decode it") from None
        except _DECODE_ERRORS as exc:
            raise _image_error(p, _damage_reason(exc)) from None
    for warning in caught:
        log.info("image %s: %s", p, warning.message)
    if orientation in (5, 6, 7, 8):
        width, height = height, width
    return image, ImageInfo(p, width, height, ACCEPTED_FORMATS[fmt])


def _bomb_error(path: Path, exc: Image.DecompressionBombError) -> InputError:
    """Pillow refused to open it at all; its message carries the pixel count."""
    match = re.search(r"\((\d+) pixels\)", str(exc))
    size = f"{int(match.group(1)) / 1e6:.0f} megapixels, " if match else ""
    return _image_error(
        path,
        f"it is far too large ({size}possibly a decompression bomb); use an image under "
        f"{MAX_PIXELS // 1_000_000} megapixels",
    )


def _damage_reason(exc: BaseException) -> str:
    text = str(exc).strip()
    if "truncated" in text.lower() or isinstance(exc, EOFError):
        return "the image data is incomplete (the file was cut short)"
    detail = f" ({text})" if text else ""
    return f"the image data is damaged{detail}"


def load_portrait(
    path: str | os.PathLike[str], *, background: str | Colour = "black"
) -> Image.Image:
    """The portrait as upright 8-bit RGB; transparency flattened onto ``background``.

    Raises InputError naming the file and what is wrong with it.
    """
    image, _info = _read_image(path, background=_parse_colour(background, what="colour"))
    return image


def validate_image(path: str | os.PathLike[str]) -> ImageInfo:
    """Quick check for the drop zone and the CLI: the file decodes and is usable as a portrait."""
    # A small draft keeps a big JPEG cheap to check; the whole stream is still decoded.
    _image, info = _read_image(path, background=(0, 0, 0), draft=(256, 256))
    return info


def _fit_size(width: int, height: int, box_w: int, box_h: int) -> tuple[int, int]:
    scale = min(box_w / width, box_h / height)
    return (
        min(box_w, max(1, round(width * scale))),
        min(box_h, max(1, round(height * scale))),
    )


def _blurred_cover(image: Image.Image, width: int, height: int) -> Image.Image:
    """A darkened, blurred copy scaled to cover the frame: the pad that looks like a backdrop."""
    # Blurring at 1/8 scale then scaling up is far cheaper than a big-radius blur, and smoother.
    small = (max(1, width // 8), max(1, height // 8))
    cover = ImageOps.fit(image, small, Image.Resampling.BILINEAR)
    cover = cover.filter(ImageFilter.GaussianBlur(radius=3))
    cover = cover.resize((width, height), Image.Resampling.BICUBIC)
    return ImageEnhance.Brightness(cover).enhance(0.6)


def _check_box(width: int, height: int) -> None:
    if width < 1 or height < 1:
        raise ValueError(f"frame size must be positive, got {width}x{height}")


def _frame(image: Image.Image, width: int, height: int, fill: Colour | None) -> Image.Image:
    fit_w, fit_h = _fit_size(image.width, image.height, width, height)
    if (fit_w, fit_h) != image.size:
        # reducing_gap: a box reduction first for big downscales, then Lanczos.
        resized = image.resize((fit_w, fit_h), Image.Resampling.LANCZOS, reducing_gap=3.0)
    else:
        resized = image
    canvas = (
        _blurred_cover(image, width, height)
        if fill is None
        else Image.new("RGB", (width, height), fill)
    )
    canvas.paste(resized, ((width - fit_w) // 2, (height - fit_h) // 2))
    return canvas


def _pad_fill(pad: str) -> Colour | None:
    """None means the blurred backdrop."""
    if pad.strip().lower() == BLUR_PAD:
        return None
    return _parse_colour(pad)


def framed_preview(
    src: str | os.PathLike[str], width: int, height: int, pad: str = "black"
) -> Image.Image:
    """The portrait fitted inside ``width x height`` and padded: exactly what gets sent."""
    _check_box(width, height)
    fill = _pad_fill(pad)
    side = max(width, height)
    # Transparent areas take the pad colour so they blend with the letterbox.
    image, _info = _read_image(src, background=fill or (0, 0, 0), draft=(side, side))
    return _frame(image, width, height, fill)


def _write_atomically(dest: Path, data: bytes) -> None:
    twin = dest.with_name(f".{dest.name}.partial")
    try:
        twin.write_bytes(data)
        os.replace(twin, dest)
    except BaseException:
        twin.unlink(missing_ok=True)
        raise


def frame_portrait(
    src: str | os.PathLike[str],
    width: int,
    height: int,
    dest: str | os.PathLike[str],
    *,
    pad: str = "black",
) -> Path:
    """Write the framed portrait; return the path written.

    PNG normally; a high-quality JPEG when the PNG would exceed ~3 MB (the /run body limit is
    10 MB for image and audio together). The suffix of the returned path matches the format.
    """
    framed = framed_preview(src, width, height, pad)
    buffer = io.BytesIO()
    framed.save(buffer, "PNG")
    suffix = ".png"
    if buffer.tell() > MAX_PNG_BYTES:
        suffix = ".jpg"
        # Photos fit at quality 95; only noise-like images need the lower steps.
        for quality in JPEG_QUALITIES:
            buffer = io.BytesIO()
            framed.save(buffer, "JPEG", quality=quality, subsampling=0 if quality >= 90 else 2)
            if buffer.tell() <= MAX_PNG_BYTES:
                break
    target = Path(dest).with_suffix(suffix)
    _write_atomically(target, buffer.getvalue())
    return target


def preload_image_plugins() -> None:
    """Register Pillow's format plugins now instead of on the first image opened.

    Pillow imports them lazily (about 80 ms of imports, holding the GIL): on a worker thread
    mid-render or mid-drop that is a visible stall of the GUI. The desktop app calls this once
    at start-up, before its window shows.
    """
    Image.init()


# Bytes base64-encoded per call (a multiple of 3, so the pieces join into one valid text):
# about 1 ms each, so a chunk's megabytes never hold the GIL from the app's window for long.
B64_SLICE_BYTES = 3 * 64 * 1024


def encode_file_b64(path: str | os.PathLike[str]) -> str:
    """Raw base64 of a file (no ``data:`` prefix: the worker treats a prefix as file data)."""
    data = Path(path).read_bytes()
    return "".join(
        base64.b64encode(data[start : start + B64_SLICE_BYTES]).decode("ascii")
        for start in range(0, len(data), B64_SLICE_BYTES)
    )


# ---------------------------------------------------------------------------------------------
# Joining chunk videos
# ---------------------------------------------------------------------------------------------

AUDIO_BITRATE = "192k"
# Used whenever a chunk must be re-encoded; every re-encoded chunk gets the same settings,
# so their H.264 headers match and they can still be joined by stream copy. A worker (or the
# demo endpoint) encoding 25 fps yuv420p with these settings lets untouched chunks be copied.
X264_ARGS = ("-c:v", "libx264", "-preset", "veryfast", "-crf", "18", "-profile:v", "high")
_TIMESCALE = str(FPS * 512)  # 12800: what ffmpeg itself picks for 25 fps MP4
_NOPTS = -(2**63)


@dataclass(frozen=True)
class ChunkVideo:
    """A rendered chunk and the number of frames it must have in the output."""

    path: Path
    frames: int


@dataclass(frozen=True)
class _StreamKey:
    """What must be equal across files for ``-c copy`` concatenation to be valid."""

    codec: str
    width: int
    height: int
    time_base: Fraction
    pix_fmt: str
    extradata: str


@dataclass
class _VideoStream:
    """A chunk's first video stream as framecrc lists it: headers, then packets in decode order."""

    key: _StreamKey
    pts: list[int]

    @property
    def count(self) -> int:
        return len(self.pts)

    @property
    def constant_25fps(self) -> bool:
        ticks = 1 / (FPS * self.key.time_base)
        if not self.pts or _NOPTS in self.pts:
            return False
        ordered = sorted(self.pts)
        return all(abs((b - a) - ticks) <= 1 for a, b in itertools.pairwise(ordered))

    def copy_cut_ok(self, frames: int) -> bool:
        """Does keeping the first ``frames`` packets keep exactly the first ``frames`` pictures?

        With B-frames the decode order differs from display order; a packet cut is only
        clean where the two line up (e.g. every 4th frame with x264's defaults).
        """
        if frames > self.count:
            return False
        kept = sorted(self.pts[:frames])
        return kept == sorted(self.pts)[:frames]


_HEADER = re.compile(r"^#(\w+) (\d+): (.*)$")
_PIX_FMT = re.compile(r"Stream #0:\d+[^:]*: Video: [^,]*, ([a-z0-9_]+)")


def _parse_framecrc(text: str, stderr: str, source: Path) -> _VideoStream:
    headers: dict[str, str] = {}
    pts: list[int] = []
    for line in text.splitlines():
        if line.startswith("#"):
            match = _HEADER.match(line)
            if match and match.group(2) == "0":
                headers[match.group(1)] = match.group(3).strip()
            continue
        fields = [f.strip() for f in line.split(",")]
        if len(fields) >= 5 and fields[0] == "0":
            pts.append(int(fields[2]))
    if headers.get("media_type") != "video" or not pts:
        raise FFmpegError(f'The chunk video "{source}" has no video frames.')
    num, _, den = headers.get("tb", "1/25").partition("/")
    dims = headers.get("dimensions", "0x0").split("x")
    pix = _PIX_FMT.search(stderr)
    key = _StreamKey(
        codec=headers.get("codec_id", "unknown"),
        width=int(dims[0]),
        height=int(dims[1]),
        time_base=Fraction(int(num), int(den or 1)),
        pix_fmt=pix.group(1) if pix else "unknown",
        extradata=headers.get("extradata", ""),
    )
    return _VideoStream(key, pts)


class _Deadline:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        remaining = self.end - time.monotonic()
        if remaining <= 0:
            raise FFmpegError(f"Joining the video took longer than {self.seconds:.0f} s.")
        return remaining


def _probe_and_cut(
    source: Path,
    frames: int,
    crc_file: Path,
    cut_file: Path | None,
    cancel: CancelToken | None,
    deadline: _Deadline,
) -> _VideoStream:
    """List the first video stream's packets (no decoding) and, in the same run, stream-copy
    its first ``frames`` packets to ``cut_file``; whether that cut is usable is decided after.
    """
    args = ["-y", "-i", str(source), "-map", "0:v:0", "-c", "copy", "-f", "framecrc", str(crc_file)]
    if cut_file is not None:
        args += ["-map", "0:v:0", "-c:v", "copy", "-frames:v", str(frames), "-f", "mp4",
                 str(cut_file)]  # fmt: skip
    try:
        stderr = run_ffmpeg(args, timeout=deadline.left(), cancel=cancel)
    except FFmpegError as exc:
        raise FFmpegError(f'The chunk video "{source}" could not be read. {exc}') from None
    return _parse_framecrc(crc_file.read_text("utf-8", "replace"), stderr, source)


def _encode_exact(
    source: Path,
    frames: int,
    size: tuple[int, int],
    out: Path,
    cancel: CancelToken | None,
    deadline: _Deadline,
) -> None:
    """Re-encode to exactly ``frames`` frames at 25 fps and ``size``, cloning the last frame."""
    width, height = size
    chain = ",".join(
        [
            "setpts=PTS-STARTPTS",
            f"fps={FPS}",
            f"scale={width}:{height}:force_original_aspect_ratio=decrease:flags=lanczos",
            f"pad={width}:{height}:(ow-iw)/2:(oh-ih)/2:color=black",
            "setsar=1",
            "format=yuv420p",
            # Endless clones of the last frame; -frames:v stops at the exact count.
            "tpad=stop_mode=clone:stop=-1",
        ]
    )
    args = ["-y", "-i", str(source), "-map", "0:v:0", "-vf", chain, "-frames:v", str(frames),
            *X264_ARGS, "-r", str(FPS), "-video_track_timescale", _TIMESCALE,
            "-f", "mp4", str(out)]  # fmt: skip
    try:
        run_ffmpeg(args, timeout=deadline.left(), cancel=cancel)
    except FFmpegError as exc:
        raise FFmpegError(f'The chunk video "{source}" could not be re-encoded. {exc}') from None


def _output_twin(dest: Path) -> Path:
    return dest.with_name(f".{dest.stem}.partial{dest.suffix or '.mp4'}")


def _check_output(dest: Path, overwrite: bool) -> None:
    folder = dest.parent
    if not folder.is_dir():
        raise InputError(f'The output folder "{folder}" does not exist.')
    if not os.access(folder, os.W_OK | os.X_OK):
        raise InputError(f'The output folder "{folder}" is not writable.')
    if dest.is_dir():
        raise InputError(f'The output "{dest}" is a folder; give a file name ending in .mp4.')
    if dest.exists() and not overwrite:
        raise InputError(
            f'The output "{dest}" already exists; choose another name or allow overwriting '
            "(--overwrite)."
        )


def join_chunks(
    chunks: Sequence[ChunkVideo],
    audio_src: str | os.PathLike[str],
    duration_ms: int,
    dest: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    cancel: CancelToken | None = None,
    timeout: float | None = None,
    work_dir: str | os.PathLike[str] | None = None,
) -> Path:
    """Join the chunk videos into ``dest`` with the original audio underneath.

    Each chunk is cut or extended to exactly ``frames`` frames first, so the picture stays
    within one frame of the audio at every seam. The joined stream is copied when the chunks
    share one encoding, else every chunk is re-encoded alike (libx264). The user's audio is
    encoded once to AAC. ``dest`` appears only when complete (written to a hidden twin beside
    it, then renamed); an existing ``dest`` is kept unless ``overwrite``. ``timeout`` bounds
    the whole join (default: generous, scaled by the duration). Intermediate files live in
    ``work_dir`` (default: the cache folder) and are removed afterwards.
    """
    if not chunks:
        raise ValueError("join_chunks needs at least one chunk video")
    if any(chunk.frames < 1 for chunk in chunks):
        raise ValueError("every chunk must have at least one frame")
    total_ms = sum(chunk.frames for chunk in chunks) * FRAME_MS
    if abs(total_ms - duration_ms) > FRAME_MS:
        raise ValueError(
            f"the chunks add up to {total_ms} ms of video but the audio is {duration_ms} ms"
        )
    target = Path(dest).expanduser().absolute()
    audio = _existing_file(audio_src, "audio file")
    _check_output(target, overwrite)
    deadline = _Deadline(timeout if timeout is not None else 600 + 4 * duration_ms / 1000)
    base = Path(work_dir) if work_dir is not None else paths.cache_dir()
    base.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="join-", dir=base))
    twin = _output_twin(target)
    try:
        concat_list = _prepare_chunks(chunks, scratch, cancel, deadline)
        if cancel is not None:
            cancel.raise_if_cancelled()
        # -t before the audio input: never more audio than the job's own duration.
        args = ["-y", "-f", "concat", "-safe", "0", "-i", str(concat_list),
                "-t", f"{duration_ms / 1000:.3f}", "-i", str(audio),
                "-map", "0:v:0", "-map", "1:a:0", "-c:v", "copy",
                "-c:a", "aac", "-b:a", AUDIO_BITRATE,
                "-movflags", "+faststart", "-f", "mp4", str(twin)]  # fmt: skip
        run_ffmpeg(args, timeout=deadline.left(), cancel=cancel)
        if cancel is not None:
            cancel.raise_if_cancelled()
        if target.exists() and not overwrite:
            raise InputError(f'The output "{target}" appeared while joining; it was kept.')
        os.replace(twin, target)
    finally:
        twin.unlink(missing_ok=True)
        shutil.rmtree(scratch, ignore_errors=True)
    return target


def _prepare_chunks(
    chunks: Sequence[ChunkVideo],
    scratch: Path,
    cancel: CancelToken | None,
    deadline: _Deadline,
) -> Path:
    """Make one video-only file per chunk with its exact frame count; return the concat list."""
    outputs = [scratch / f"chunk_{index:04d}.mp4" for index in range(len(chunks))]
    streams: list[_VideoStream] = []
    for index, chunk in enumerate(chunks):
        if cancel is not None:
            cancel.raise_if_cancelled()
        source = _existing_file(chunk.path, "chunk video")
        crc = scratch / f"chunk_{index:04d}.txt"
        streams.append(_probe_and_cut(source, chunk.frames, crc, outputs[index], cancel, deadline))

    size = Counter((s.key.width, s.key.height) for s in streams).most_common(1)[0][0]
    copyable = [
        s.constant_25fps and s.copy_cut_ok(c.frames) for s, c in zip(streams, chunks, strict=True)
    ]
    keys = {s.key for s, ok in zip(streams, copyable, strict=True) if ok}
    # The copied chunks must share one encoding; if they don't, nothing is copied.
    encode = [not ok or len(keys) > 1 for ok in copyable]

    def reencode(index: int) -> None:
        if cancel is not None:
            cancel.raise_if_cancelled()
        chunk = chunks[index]
        _encode_exact(Path(chunk.path), chunk.frames, size, outputs[index], cancel, deadline)
        encode[index] = True

    first = next((i for i, flag in enumerate(encode) if flag), None)
    if first is not None:
        reencode(first)
        ours = _probe_and_cut(
            outputs[first], 1, scratch / "encoded.txt", None, cancel, deadline
        ).key
        for index in range(len(chunks)):
            # Chunks already encoded the way we encode can still be copied.
            if index != first and (encode[index] or keys != {ours}):
                reencode(index)
    log.info(
        "join: %d chunks, %d copied, %d re-encoded",
        len(chunks),
        encode.count(False),
        encode.count(True),
    )

    # The duration line fixes where the next file starts, whatever the container says.
    lines = ["ffconcat version 1.0"]
    for output, chunk in zip(outputs, chunks, strict=True):
        lines.append(f"file {output.name}")
        lines.append(f"duration {chunk.frames * FRAME_MS / 1000:.3f}")
    concat_list = scratch / "chunks.ffconcat"
    concat_list.write_text("\n".join(lines) + "\n", "utf-8")
    return concat_list


# ---------------------------------------------------------------------------------------------
# Measuring
# ---------------------------------------------------------------------------------------------


def media_duration(
    path: str | os.PathLike[str],
    *,
    cancel: CancelToken | None = None,
    timeout: float | None = 600,
) -> tuple[float | None, float | None]:
    """(video seconds, audio seconds) from decoding every frame and sample; None if no stream.

    Container durations can lie (edit lists, a last frame's length); decoding cannot.
    """
    source = _existing_file(path, "media file")
    with tempfile.TemporaryDirectory(prefix="measure-", dir=paths.cache_dir()) as tmp:
        crc = Path(tmp) / "frames.txt"
        # wrapped_avframe: frames are decoded but not copied around again.
        args = ["-y", "-i", str(source), "-map", "0:v:0?", "-map", "0:a:0?",
                "-c:v", "wrapped_avframe", "-c:a", "pcm_s16le", "-fps_mode", "passthrough",
                "-f", "framecrc", str(crc)]  # fmt: skip
        run_ffmpeg(args, timeout=timeout, cancel=cancel)
        return _durations_from_framecrc(crc)


def _durations_from_framecrc(crc: Path) -> tuple[float | None, float | None]:
    kinds: dict[str, str] = {}
    bases: dict[str, Fraction] = {}
    first: dict[str, int] = {}
    end: dict[str, int] = {}
    with crc.open(encoding="utf-8", errors="replace") as handle:
        for line in handle:
            if line.startswith("#"):
                match = _HEADER.match(line.rstrip("\n"))
                if match and match.group(1) == "media_type":
                    kinds[match.group(2)] = match.group(3).strip()
                elif match and match.group(1) == "tb":
                    num, _, den = match.group(3).partition("/")
                    bases[match.group(2)] = Fraction(int(num), int(den))
                continue
            fields = line.split(",", 4)
            if len(fields) < 5:
                continue
            stream, pts, duration = fields[0].strip(), int(fields[2]), int(fields[3])
            first[stream] = min(first.get(stream, pts), pts)
            end[stream] = max(end.get(stream, pts + duration), pts + duration)
    result: dict[str, float] = {}
    for stream, kind in kinds.items():
        if stream in first:
            span = (end[stream] - first[stream]) * bases.get(stream, Fraction(1))
            result[kind] = float(span)
    return result.get("video"), result.get("audio")


def frames_for_ms(duration_ms: int) -> int:
    """Frames a chunk of ``duration_ms`` needs: ceil(duration / 40 ms)."""
    return math.ceil(duration_ms / FRAME_MS)
