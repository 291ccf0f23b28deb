"""The two input zones: drop a file from the file manager or click to browse.

A zone only checks what it can see at once (one local file, not a folder); the content is
validated by the core off the GUI thread (the window asks the controller and calls
:meth:`DropZone.accept_file` or :meth:`DropZone.reject_file` with the answer). A rejected file
never replaces the previous one: the zone keeps it and says why, in words.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from infinitetalk_gui.qt.compat import QtCore, QtGui, QtWidgets, Signal
from infinitetalk_gui.ui import icons
from infinitetalk_gui.ui.state import UiState
from infinitetalk_gui.ui.text import clock, plural

IMAGE_FILTER = "Images (*.png *.jpg *.jpeg *.webp);;All files (*)"
AUDIO_FILTER = (
    "Audio (*.wav *.mp3 *.m4a *.aac *.ogg *.oga *.opus *.flac *.mp4 *.mov *.mkv *.webm);;"
    "All files (*)"
)


def _muted(widget: QtWidgets.QWidget) -> QtGui.QColor:
    return widget.palette().color(
        QtGui.QPalette.ColorGroup.Disabled, QtGui.QPalette.ColorRole.WindowText
    )


class ZoneBody(QtWidgets.QWidget):
    """The painted part of a zone: an empty state until a file is loaded, then its preview."""

    def __init__(self, empty_title: str, empty_hint: str, parent: QtWidgets.QWidget | None = None):
        super().__init__(parent)
        self.empty_title = empty_title
        self.empty_hint = empty_hint
        self.busy_text = ""
        self.setSizePolicy(
            QtWidgets.QSizePolicy.Policy.Expanding, QtWidgets.QSizePolicy.Policy.Expanding
        )

    def has_content(self) -> bool:
        raise NotImplementedError

    def draw_glyph(self, painter: QtGui.QPainter, rect: QtCore.QRectF) -> None:
        raise NotImplementedError

    def draw_content(self, painter: QtGui.QPainter, rect: QtCore.QRectF) -> None:
        raise NotImplementedError

    def set_busy(self, text: str) -> None:
        self.busy_text = text
        self.update()

    def paintEvent(self, event: QtGui.QPaintEvent) -> None:
        painter = QtGui.QPainter(self)
        painter.setRenderHint(QtGui.QPainter.RenderHint.Antialiasing)
        rect = QtCore.QRectF(self.rect())
        if self.has_content():
            self.draw_content(painter, rect)
        else:
            self._draw_empty(painter, rect)
        if self.busy_text:
            veil = self.palette().color(QtGui.QPalette.ColorRole.Window)
            veil.setAlpha(200)
            painter.fillRect(rect, veil)
            painter.setPen(self.palette().color(QtGui.QPalette.ColorRole.WindowText))
            painter.drawText(rect, QtCore.Qt.AlignmentFlag.AlignCenter, self.busy_text)
        painter.end()

    def _draw_empty(self, painter: QtGui.QPainter, rect: QtCore.QRectF) -> None:
        muted = _muted(self)
        text_color = self.palette().color(QtGui.QPalette.ColorRole.WindowText)
        metrics = self.fontMetrics()
        line = metrics.height()
        side = max(18.0, min(rect.height() - 3.2 * line - 8, 56.0))
        block = side + 6 + 2.2 * line
        top = rect.top() + max(0.0, (rect.height() - block) / 2)
        glyph = QtCore.QRectF(rect.center().x() - side / 2, top, side, side)
        self.draw_glyph(painter, glyph)
        title_font = QtGui.QFont(self.font())
        title_font.setBold(True)
        painter.setFont(title_font)
        painter.setPen(text_color)
        title_rect = QtCore.QRectF(rect.left(), glyph.bottom() + 6, rect.width(), line * 1.2)
        painter.drawText(title_rect, QtCore.Qt.AlignmentFlag.AlignCenter, self.empty_title)
        painter.setFont(self.font())
        painter.setPen(muted)
        hint_rect = QtCore.QRectF(rect.left(), title_rect.bottom(), rect.width(), line * 1.2)
        painter.drawText(hint_rect, QtCore.Qt.AlignmentFlag.AlignCenter, self.empty_hint)


class PortraitView(ZoneBody):
    """The portrait framed exactly as it will be sent: scaled to fit the size, padded."""

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__("Drop a portrait here", "or click to browse · PNG, JPEG, WebP", parent)
        self._image: QtGui.QImage | None = None

    def set_image(self, image: QtGui.QImage | None) -> None:
        self._image = image if image is not None and not image.isNull() else None
        self.update()

    def image(self) -> QtGui.QImage | None:
        return self._image

    def has_content(self) -> bool:
        return self._image is not None

    def draw_glyph(self, painter: QtGui.QPainter, rect: QtCore.QRectF) -> None:
        icons.draw_portrait_glyph(painter, rect, _muted(self))

    def draw_content(self, painter: QtGui.QPainter, rect: QtCore.QRectF) -> None:
        assert self._image is not None
        size = QtCore.QSizeF(self._image.size())
        size.scale(rect.size() - QtCore.QSizeF(8, 8), QtCore.Qt.AspectRatioMode.KeepAspectRatio)
        target = QtCore.QRectF(QtCore.QPointF(0, 0), size)
        target.moveCenter(rect.center())
        painter.setRenderHint(QtGui.QPainter.RenderHint.SmoothPixmapTransform)
        painter.drawImage(target, self._image)
        # A thin outline shows where the frame (and so the padding) ends.
        painter.setPen(QtGui.QPen(_muted(self), 1))
        painter.setBrush(QtCore.Qt.BrushStyle.NoBrush)
        painter.drawRect(target.adjusted(-0.5, -0.5, 0.5, 0.5))


def normalise_envelope(envelope: Any) -> np.ndarray:
    """Peak levels 0..1 from what the core gives: amplitudes, (min, max) pairs or dBFS values."""
    data = np.asarray(envelope, dtype=np.float64)
    if data.size == 0:
        return np.zeros(0)
    if data.ndim == 2:
        data = np.abs(data).max(axis=1)
    data = np.nan_to_num(data.ravel(), nan=0.0, neginf=-120.0, posinf=0.0)
    if data.max() <= 0 and data.min() < 0:  # dBFS
        data = np.power(10.0, np.clip(data, -120.0, 0.0) / 20.0)
    data = np.abs(data)
    peak = float(data.max())
    return data / peak if peak > 0 else data


class WaveformView(ZoneBody):
    """The voice's waveform with the planned chunk cuts drawn on it."""

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(
            "Drop a voice recording here", "or click to browse · WAV, MP3, M4A, OGG, FLAC", parent
        )
        self._levels = np.zeros(0)
        self._cuts: list[tuple[int, int]] = []
        self._duration_ms = 0
        self.setMouseTracking(True)

    def set_waveform(self, envelope: Any, duration_ms: int) -> None:
        self._levels = normalise_envelope(envelope)
        self._duration_ms = int(duration_ms)
        self.update()

    def set_cuts(self, cuts: Sequence[tuple[int, int]]) -> None:
        self._cuts = [(int(a), int(b)) for a, b in cuts]
        self.setToolTip("")
        self.update()

    def clear(self) -> None:
        self._levels = np.zeros(0)
        self._cuts = []
        self._duration_ms = 0
        self.update()

    def cuts(self) -> list[tuple[int, int]]:
        return list(self._cuts)

    def has_content(self) -> bool:
        return self._duration_ms > 0

    def draw_glyph(self, painter: QtGui.QPainter, rect: QtCore.QRectF) -> None:
        icons.draw_voice_glyph(painter, rect, _muted(self))

    def _x(self, ms: float, rect: QtCore.QRectF) -> float:
        return rect.left() + rect.width() * ms / max(1, self._duration_ms)

    def draw_content(self, painter: QtGui.QPainter, rect: QtCore.QRectF) -> None:
        metrics = self.fontMetrics()
        axis_h = metrics.height() + 2
        plot = rect.adjusted(4, 4, -4, -axis_h)
        base = self.palette().color(QtGui.QPalette.ColorRole.Base)
        painter.fillRect(plot, base)
        accent, accent2 = QtGui.QColor(icons.ACCENT), QtGui.QColor(icons.ACCENT_2)
        # Alternate a faint tint per chunk so each chunk reads as one block.
        band = QtGui.QColor(icons.ACCENT)
        band.setAlpha(22)
        for i, (start, end) in enumerate(self._cuts):
            if i % 2 == 1:
                painter.fillRect(
                    QtCore.QRectF(
                        self._x(start, plot),
                        plot.top(),
                        self._x(end, plot) - self._x(start, plot),
                        plot.height(),
                    ),
                    band,
                )
        self._draw_wave(painter, plot, accent)
        # The cuts: a dashed line at each boundary between two chunks, numbered chunks.
        pen = QtGui.QPen(accent2, 1.5, QtCore.Qt.PenStyle.DashLine)
        for _start, end in self._cuts[:-1]:
            x = self._x(end, plot)
            painter.setPen(pen)
            painter.drawLine(QtCore.QPointF(x, plot.top()), QtCore.QPointF(x, plot.bottom()))
        small = QtGui.QFont(self.font())
        small.setPointSizeF(max(6.5, self.font().pointSizeF() * 0.85))
        painter.setFont(small)
        small_metrics = QtGui.QFontMetricsF(small)
        for i, (start, end) in enumerate(self._cuts):
            label = str(i + 1)
            width = self._x(end, plot) - self._x(start, plot)
            if width < small_metrics.horizontalAdvance(label) + 10 or len(self._cuts) < 2:
                continue
            badge = QtCore.QRectF(
                self._x(start, plot) + 3,
                plot.top() + 3,
                small_metrics.horizontalAdvance(label) + 8,
                small_metrics.height() + 2,
            )
            painter.setPen(QtCore.Qt.PenStyle.NoPen)
            painter.setBrush(accent2)
            painter.drawRoundedRect(badge, 3, 3)
            painter.setPen(QtGui.QColor("white"))
            painter.drawText(badge, QtCore.Qt.AlignmentFlag.AlignCenter, label)
        # Time axis: start, end and a few ticks in between.
        painter.setFont(self.font())
        painter.setPen(_muted(self))
        axis = QtCore.QRectF(plot.left(), plot.bottom() + 1, plot.width(), axis_h)
        painter.drawText(
            axis, int(QtCore.Qt.AlignmentFlag.AlignLeft | QtCore.Qt.AlignmentFlag.AlignTop), "0:00"
        )
        painter.drawText(
            axis,
            int(QtCore.Qt.AlignmentFlag.AlignRight | QtCore.Qt.AlignmentFlag.AlignTop),
            clock(self._duration_ms),
        )

    def _draw_wave(self, painter: QtGui.QPainter, plot: QtCore.QRectF, color: QtGui.QColor) -> None:
        if self._levels.size == 0 or plot.width() < 2:
            return
        columns = max(2, int(plot.width() / 2))
        # Resample the envelope to one peak per column (max keeps short bursts visible).
        edges = np.linspace(0, self._levels.size, columns + 1).astype(int)
        peaks = np.array(
            [
                self._levels[a:b].max() if b > a else self._levels[min(a, self._levels.size - 1)]
                for a, b in itertools.pairwise(edges)
            ]
        )
        mid = plot.center().y()
        half = plot.height() / 2 - 2
        xs = np.linspace(plot.left(), plot.right(), columns)
        top = [QtCore.QPointF(x, mid - max(0.5, p * half)) for x, p in zip(xs, peaks, strict=True)]
        bottom = [
            QtCore.QPointF(x, mid + max(0.5, p * half)) for x, p in zip(xs, peaks, strict=True)
        ]
        polygon = QtGui.QPolygonF(top + bottom[::-1])
        fill = QtGui.QColor(color)
        fill.setAlpha(190)
        painter.setPen(QtCore.Qt.PenStyle.NoPen)
        painter.setBrush(fill)
        painter.drawPolygon(polygon)

    def mouseMoveEvent(self, event: QtGui.QMouseEvent) -> None:
        if self.has_content():
            plot = QtCore.QRectF(self.rect()).adjusted(4, 4, -4, -(self.fontMetrics().height() + 2))
            ms = (event.position().x() - plot.left()) / max(1.0, plot.width()) * self._duration_ms
            ms = min(max(ms, 0.0), float(self._duration_ms))
            tip = clock(ms)
            for i, (start, end) in enumerate(self._cuts):
                if start <= ms <= end:
                    tip += f" · chunk {i + 1} of {len(self._cuts)} ({clock(start)}–{clock(end)})"
                    break
            self.setToolTip(tip)
        super().mouseMoveEvent(event)


class DropZone(QtWidgets.QFrame):
    """A titled drop target with a painted body, a caption and an inline error line."""

    fileChosen = Signal(object)  # Path: dropped or picked, not yet validated

    def __init__(
        self,
        kind: str,
        title: str,
        body: ZoneBody,
        dialog_filter: str,
        state: UiState | None = None,
        parent: QtWidgets.QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.kind = kind
        self.body = body
        self._filter = dialog_filter
        self._state = state
        self._path: Path | None = None
        self._pending: Path | None = None
        self._hover = False
        self._locked = False
        self.setObjectName(f"{kind}Zone")
        self.setAcceptDrops(True)
        self.setFocusPolicy(QtCore.Qt.FocusPolicy.StrongFocus)
        self.setCursor(QtCore.Qt.CursorShape.PointingHandCursor)
        self.setAccessibleName(f"{title} drop zone")

        self.title_label = QtWidgets.QLabel(title)
        font = self.title_label.font()
        font.setBold(True)
        self.title_label.setFont(font)
        self.browse_button = QtWidgets.QToolButton()
        self.browse_button.setText("Browse…")
        self.browse_button.setAutoRaise(True)
        self.browse_button.setCursor(QtCore.Qt.CursorShape.ArrowCursor)
        self.browse_button.clicked.connect(self.browse)
        self.caption = QtWidgets.QLabel()
        self.caption.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.NoTextInteraction)
        self.caption.setMinimumWidth(10)
        self.error_label = QtWidgets.QLabel()
        self.error_label.setWordWrap(True)
        self.error_label.setStyleSheet(f"color: {icons.ERROR};")
        self.error_label.hide()

        header = QtWidgets.QHBoxLayout()
        header.setContentsMargins(0, 0, 0, 0)
        header.addWidget(self.title_label)
        header.addStretch(1)
        header.addWidget(self.browse_button)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(10, 6, 10, 8)
        layout.setSpacing(4)
        layout.addLayout(header)
        layout.addWidget(body, 1)
        layout.addWidget(self.caption)
        layout.addWidget(self.error_label)

    # -- state ---------------------------------------------------------------------------------

    @property
    def path(self) -> Path | None:
        """The accepted file (the one a render will use), or None."""
        return self._path

    @property
    def pending(self) -> Path | None:
        """A file being checked right now."""
        return self._pending

    @property
    def error_text(self) -> str:
        return self.error_label.text() if not self.error_label.isHidden() else ""

    def set_locked(self, locked: bool) -> None:
        """While a job runs the inputs cannot change."""
        self._locked = locked
        self.setAcceptDrops(not locked)
        self.browse_button.setEnabled(not locked)
        self.setCursor(
            QtCore.Qt.CursorShape.ArrowCursor
            if locked
            else QtCore.Qt.CursorShape.PointingHandCursor
        )
        self.update()

    def choose(self, path: Path) -> None:
        """Take a file the user picked (drop, dialog or re-run): check it, then hand it on."""
        if self._locked:
            return
        problem = self._quick_check(path)
        if problem:
            self.show_error(problem)
            return
        self._pending = path
        self.clear_error()
        self.body.set_busy(f"Checking {path.name}…")
        self.fileChosen.emit(path)

    def accept_file(self, path: Path, caption: str) -> None:
        """The core accepted ``path``: it becomes the zone's file."""
        if self._pending is not None and path != self._pending:
            return  # an answer for a file the user has since replaced
        self._pending = None
        self._path = path
        self.body.set_busy("")
        self.caption.setText(caption)
        self.caption.setToolTip(str(path))
        self.clear_error()
        self.update()

    def reject_file(self, path: Path, message: str) -> None:
        """The core refused ``path``: say why, keep the previous file."""
        if self._pending is not None and path != self._pending:
            return
        self._pending = None
        self.body.set_busy("")
        self.show_error(message)

    def show_error(self, message: str) -> None:
        self.error_label.setText(message)
        self.error_label.show()

    def clear_error(self) -> None:
        self.error_label.clear()
        self.error_label.hide()

    def _quick_check(self, path: Path) -> str:
        if path.is_dir():
            return f"{path.name} is a folder: choose a single file."
        if not path.exists():
            return f"{path.name} does not exist (was it moved or deleted?)."
        return ""

    # -- browsing ------------------------------------------------------------------------------

    def browse(self) -> None:
        if self._locked:
            return
        start = self._state.last_dir(self.kind) if self._state else str(Path.home())
        name, _ = QtWidgets.QFileDialog.getOpenFileName(
            self, f"Choose a {self.kind} file", start, self._filter
        )
        if name:
            path = Path(name)
            if self._state:
                self._state.set_last_dir(self.kind, path.parent)
            self.choose(path)

    def mouseReleaseEvent(self, event: QtGui.QMouseEvent) -> None:
        if event.button() == QtCore.Qt.MouseButton.LeftButton and self.rect().contains(
            event.position().toPoint()
        ):
            self.browse()
            return
        super().mouseReleaseEvent(event)

    def keyPressEvent(self, event: QtGui.QKeyEvent) -> None:
        if event.key() in (
            QtCore.Qt.Key.Key_Space,
            QtCore.Qt.Key.Key_Return,
            QtCore.Qt.Key.Key_Enter,
        ):
            self.browse()
            return
        super().keyPressEvent(event)

    # -- drag and drop -------------------------------------------------------------------------

    def dragEnterEvent(self, event: QtGui.QDragEnterEvent) -> None:
        if not self._locked and event.mimeData().hasUrls():
            event.acceptProposedAction()
            self._hover = True
            self.update()
        else:
            event.ignore()

    def dragMoveEvent(self, event: QtGui.QDragMoveEvent) -> None:
        if not self._locked and event.mimeData().hasUrls():
            event.acceptProposedAction()
        else:
            event.ignore()

    def dragLeaveEvent(self, event: QtGui.QDragLeaveEvent) -> None:
        self._hover = False
        self.update()
        super().dragLeaveEvent(event)

    def dropEvent(self, event: QtGui.QDropEvent) -> None:
        self._hover = False
        self.update()
        if self._locked:
            event.ignore()
            return
        event.acceptProposedAction()
        self.take_urls(event.mimeData().urls())

    def take_urls(self, urls: Sequence[QtCore.QUrl]) -> None:
        """What a drop does: exactly one local file, else say why and keep the current file."""
        if len(urls) != 1:
            self.show_error(
                f"{len(urls)} items were dropped: drop one {self.kind} file at a time."
                if urls
                else "Nothing usable was dropped: drop a file from your file manager."
            )
            return
        url = urls[0]
        if not url.isLocalFile():
            self.show_error(
                f"{url.fileName() or url.toString()} is not a file on this computer: "
                "download it first, then drop the file."
            )
            return
        self.choose(Path(url.toLocalFile()))

    # -- look ----------------------------------------------------------------------------------

    def paintEvent(self, event: QtGui.QPaintEvent) -> None:
        painter = QtGui.QPainter(self)
        painter.setRenderHint(QtGui.QPainter.RenderHint.Antialiasing)
        rect = QtCore.QRectF(self.rect()).adjusted(1, 1, -1, -1)
        palette = self.palette()
        if self._hover:
            fill = QtGui.QColor(icons.ACCENT)
            fill.setAlpha(30)
            border = QtGui.QPen(QtGui.QColor(icons.ACCENT), 2)
        else:
            fill = palette.color(QtGui.QPalette.ColorRole.Base)
            fill.setAlpha(120)
            border_color = palette.color(QtGui.QPalette.ColorRole.Mid)
            if self.hasFocus():
                border_color = QtGui.QColor(icons.ACCENT)
            border = QtGui.QPen(border_color, 1.5)
            if self._path is None:
                border.setStyle(QtCore.Qt.PenStyle.DashLine)
        painter.setPen(border)
        painter.setBrush(fill)
        painter.drawRoundedRect(rect, 8, 8)
        painter.end()


class PortraitZone(DropZone):
    def __init__(self, state: UiState | None = None, parent: QtWidgets.QWidget | None = None):
        super().__init__("portrait", "Portrait", PortraitView(), IMAGE_FILTER, state, parent)
        self.view: PortraitView = self.body  # type: ignore[assignment]

    def set_portrait(self, path: Path, framed: QtGui.QImage, caption: str) -> None:
        self.view.set_image(framed)
        self.accept_file(path, caption)

    def reframe(self, framed: QtGui.QImage) -> None:
        """The same portrait framed for another size."""
        self.view.set_image(framed)


class VoiceZone(DropZone):
    def __init__(self, state: UiState | None = None, parent: QtWidgets.QWidget | None = None):
        super().__init__("voice", "Voice", WaveformView(), AUDIO_FILTER, state, parent)
        self.view: WaveformView = self.body  # type: ignore[assignment]
        self._duration_ms = 0

    @property
    def duration_ms(self) -> int:
        return self._duration_ms if self.path is not None else 0

    def set_voice(
        self, path: Path, envelope: Any, cuts: Sequence[tuple[int, int]], duration_ms: int
    ) -> None:
        if self._pending is not None and path != self._pending:
            return
        self._duration_ms = int(duration_ms)
        self.view.set_waveform(envelope, duration_ms)
        self.view.set_cuts(cuts)
        self.accept_file(path, self._caption(path, cuts))

    def set_cuts(self, cuts: Sequence[tuple[int, int]]) -> None:
        """New planned cuts (chunk length or silence settings changed)."""
        self.view.set_cuts(cuts)
        if self.path is not None:
            self.caption.setText(self._caption(self.path, cuts))

    def _caption(self, path: Path, cuts: Sequence[tuple[int, int]]) -> str:
        return f"{path.name} · {clock(self._duration_ms)} · {plural(len(cuts), 'chunk')}"
