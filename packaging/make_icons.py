"""Render the app icon SVG into every raster icon the installers need.

Run from the repo root after editing resources/icons/infinitetalk-gui.svg:

    QT_QPA_PLATFORM=offscreen python packaging/make_icons.py

Writes resources/icons/infinitetalk-gui-<N>.png (N = 16..1024), infinitetalk-gui.ico
(Windows: 16..256) and infinitetalk-gui.icns (macOS: 16..1024). Each size is rendered from
the SVG itself (QtSvg, already a dependency) rather than scaled down from one big PNG, so
small sizes stay sharp; Pillow packs them into .ico and .icns.
"""

from __future__ import annotations

import sys
from pathlib import Path

from PIL import Image
from PySide6.QtCore import QRectF
from PySide6.QtGui import QGuiApplication, QImage, QPainter
from PySide6.QtSvg import QSvgRenderer

ICON_DIR = Path(__file__).resolve().parent.parent / "resources" / "icons"
SVG = ICON_DIR / "infinitetalk-gui.svg"
PNG_SIZES = (16, 24, 32, 48, 64, 128, 256, 512, 1024)
ICO_SIZES = (16, 24, 32, 48, 64, 128, 256)
ICNS_SIZES = (16, 32, 64, 128, 256, 512, 1024)


def render(renderer: QSvgRenderer, size: int) -> Image.Image:
    image = QImage(size, size, QImage.Format.Format_RGBA8888)
    image.fill(0)
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
    renderer.render(painter, QRectF(0, 0, size, size))
    painter.end()
    # Format_RGBA8888 is byte-for-byte Pillow's "RGBA": hand the pixels over as they are.
    pixels = bytes(image.constBits())
    return Image.frombuffer("RGBA", (size, size), pixels, "raw", "RGBA", image.bytesPerLine(), 1)


def main() -> int:
    app = QGuiApplication.instance() or QGuiApplication(sys.argv[:1])
    renderer = QSvgRenderer(str(SVG))
    if not renderer.isValid():
        print(f"{SVG}: Qt could not read this SVG.", file=sys.stderr)
        return 1
    images = {size: render(renderer, size) for size in PNG_SIZES}
    for size, image in images.items():
        image.save(ICON_DIR / f"infinitetalk-gui-{size}.png", optimize=True)
    largest_ico = images[max(ICO_SIZES)]
    largest_ico.save(
        ICON_DIR / "infinitetalk-gui.ico",
        sizes=[(s, s) for s in ICO_SIZES],
        append_images=[images[s] for s in ICO_SIZES if s != max(ICO_SIZES)],
    )
    images[max(ICNS_SIZES)].save(
        ICON_DIR / "infinitetalk-gui.icns",
        append_images=[images[s] for s in ICNS_SIZES if s != max(ICNS_SIZES)],
    )
    del app
    print(f"wrote {len(images)} PNGs, .ico and .icns in {ICON_DIR}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
