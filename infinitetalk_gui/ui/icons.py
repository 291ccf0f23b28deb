"""Icons and colours: the app icon from resources/icons, Qt's standard icons, a few drawn glyphs.

Glyphs are painted as vectors at paint time, so they stay sharp at any device pixel ratio.
"""

from __future__ import annotations

from pathlib import Path

from infinitetalk_gui.core import paths
from infinitetalk_gui.qt.compat import QtCore, QtGui, QtWidgets

# The brand colours of the app icon (indigo to pink); used sparingly for accents.
ACCENT = "#5b50e6"
ACCENT_2 = "#d9467e"
ERROR = "#c62828"
WARNING = "#b26a00"
SUCCESS = "#2e7d32"

_ICON_SIZES = (16, 24, 32, 48, 64, 128, 256, 512)


def icons_dir() -> Path | None:
    """resources/icons, or None where the resources are not installed (a bare source tree)."""
    try:
        return paths.resources_dir() / "icons"
    except ImportError:
        return None


def app_icon() -> QtGui.QIcon:
    """The packaged app icon in every size shipped; a drawn stand-in if none is installed."""
    icon = QtGui.QIcon()
    folder = icons_dir()
    if folder is not None:
        for size in _ICON_SIZES:
            candidate = folder / f"infinitetalk-gui-{size}.png"
            if candidate.is_file():
                icon.addFile(str(candidate), QtCore.QSize(size, size))
    if icon.isNull():
        for size in (16, 32, 64, 256):
            icon.addPixmap(_drawn_app_pixmap(size))
    return icon


def _drawn_app_pixmap(size: int) -> QtGui.QPixmap:
    pixmap = QtGui.QPixmap(size, size)
    pixmap.fill(QtCore.Qt.GlobalColor.transparent)
    painter = QtGui.QPainter(pixmap)
    painter.setRenderHint(QtGui.QPainter.RenderHint.Antialiasing)
    gradient = QtGui.QLinearGradient(0, 0, size, size)
    gradient.setColorAt(0, QtGui.QColor(ACCENT))
    gradient.setColorAt(1, QtGui.QColor("#3b2fc0"))
    painter.setBrush(gradient)
    painter.setPen(QtCore.Qt.PenStyle.NoPen)
    painter.drawRoundedRect(QtCore.QRectF(0, 0, size, size), size * 0.22, size * 0.22)
    painter.setBrush(QtGui.QColor("white"))
    painter.drawRoundedRect(
        QtCore.QRectF(size * 0.18, size * 0.22, size * 0.64, size * 0.46), size * 0.1, size * 0.1
    )
    pen = QtGui.QPen(QtGui.QColor(ACCENT_2), max(1.0, size * 0.07))
    painter.setPen(pen)
    painter.setBrush(QtCore.Qt.BrushStyle.NoBrush)
    painter.drawEllipse(QtCore.QRectF(size * 0.3, size * 0.35, size * 0.2, size * 0.2))
    painter.drawEllipse(QtCore.QRectF(size * 0.5, size * 0.35, size * 0.2, size * 0.2))
    painter.end()
    return pixmap


def standard_icon(widget: QtWidgets.QWidget, name: str) -> QtGui.QIcon:
    """A QStyle standard icon by its enum name, e.g. ``"SP_MediaPlay"``."""
    pixmap = getattr(QtWidgets.QStyle.StandardPixmap, name)
    return widget.style().standardIcon(pixmap)


def draw_portrait_glyph(painter: QtGui.QPainter, rect: QtCore.QRectF, color: QtGui.QColor) -> None:
    """A head-and-shoulders outline: the empty state of the portrait zone."""
    painter.save()
    painter.setRenderHint(QtGui.QPainter.RenderHint.Antialiasing)
    pen = QtGui.QPen(color, max(1.5, rect.width() / 22))
    pen.setCapStyle(QtCore.Qt.PenCapStyle.RoundCap)
    painter.setPen(pen)
    painter.setBrush(QtCore.Qt.BrushStyle.NoBrush)
    w, h = rect.width(), rect.height()
    head = QtCore.QRectF(rect.left() + w * 0.32, rect.top() + h * 0.08, w * 0.36, h * 0.4)
    painter.drawEllipse(head)
    shoulders = QtGui.QPainterPath()
    shoulders.moveTo(rect.left() + w * 0.1, rect.bottom() - h * 0.04)
    shoulders.cubicTo(
        rect.left() + w * 0.12,
        rect.top() + h * 0.55,
        rect.right() - w * 0.12,
        rect.top() + h * 0.55,
        rect.right() - w * 0.1,
        rect.bottom() - h * 0.04,
    )
    painter.drawPath(shoulders)
    painter.restore()


def draw_voice_glyph(painter: QtGui.QPainter, rect: QtCore.QRectF, color: QtGui.QColor) -> None:
    """A few rounded level bars: the empty state of the voice zone."""
    painter.save()
    painter.setRenderHint(QtGui.QPainter.RenderHint.Antialiasing)
    heights = (0.3, 0.6, 0.95, 0.7, 0.45, 0.8, 0.35)
    bar_w = rect.width() / (len(heights) * 1.8)
    pen = QtGui.QPen(color, bar_w)
    pen.setCapStyle(QtCore.Qt.PenCapStyle.RoundCap)
    painter.setPen(pen)
    mid = rect.center().y()
    for i, level in enumerate(heights):
        x = rect.left() + bar_w * 0.9 + i * bar_w * 1.8
        half = rect.height() * level / 2 - bar_w / 2
        painter.drawLine(QtCore.QPointF(x, mid - half), QtCore.QPointF(x, mid + half))
    painter.restore()


def state_color(state: str) -> QtGui.QColor:
    """One colour per job state, readable on light and dark backgrounds."""
    return QtGui.QColor(
        {
            "IN_QUEUE": "#7a7f8c",
            "IN_PROGRESS": ACCENT,
            "COMPLETED": SUCCESS,
            "FAILED": ERROR,
            "CANCELLED": WARNING,
            "TIMED_OUT": ERROR,
        }.get(state, "#7a7f8c")
    )
