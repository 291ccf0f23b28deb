"""The finished video: play it in the window, save a copy, open its folder."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
from pathlib import Path

from infinitetalk_gui.qt.compat import (
    QtCore,
    QtGui,
    QtMultimedia,
    QtMultimediaWidgets,
    QtWidgets,
    Signal,
)
from infinitetalk_gui.qt.workers import MainThreadBridge, start_worker
from infinitetalk_gui.ui import icons
from infinitetalk_gui.ui.state import UiState
from infinitetalk_gui.ui.text import clock
from infinitetalk_gui.ui.widgets import empty_state_label

log = logging.getLogger(__name__)

VIDEO_FILTER = "MP4 video (*.mp4)"
# How long closing the window waits for the player to let go of its file and threads.
RELEASE_TIMEOUT_MS = 3000


def copy_atomic(src: Path, dst: Path, *, overwrite: bool) -> Path:
    """Copy ``src`` to ``dst`` through a temporary twin and a rename: never half a file.

    Refuses to replace an existing ``dst`` unless ``overwrite`` (the user said yes).
    """
    if dst.exists() and not overwrite:
        raise FileExistsError(f"{dst} already exists")
    fd, tmp = tempfile.mkstemp(prefix=f".{dst.name}.", suffix=".part", dir=dst.parent)
    os.close(fd)
    try:
        shutil.copyfile(src, tmp)
        os.replace(tmp, dst)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return dst


def open_folder(path: Path) -> bool:
    """Show the folder holding ``path`` in the system file manager."""
    folder = path if path.is_dir() else path.parent
    return QtGui.QDesktopServices.openUrl(QtCore.QUrl.fromLocalFile(str(folder)))


class PreviewPanel(QtWidgets.QWidget):
    """QMediaPlayer + QVideoWidget with play/pause, seek, time, volume, Save as and Open folder."""

    saved = Signal(object)  # Path of the copy written by Save as
    saveFailed = Signal(str)  # a plain-words message

    def __init__(
        self,
        state: UiState | None = None,
        pool: QtCore.QThreadPool | None = None,
        parent: QtWidgets.QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self._state = state
        self._pool = pool or QtCore.QThreadPool.globalInstance()
        self._bridge = MainThreadBridge(self)
        self._source: Path | None = None
        self._want_poster = False
        self._last_frame: QtMultimedia.QVideoFrame | None = None
        self._saving = False

        self.player = QtMultimedia.QMediaPlayer(self)
        self.audio_output = QtMultimedia.QAudioOutput(self)
        self.player.setAudioOutput(self.audio_output)
        self.video_widget = QtMultimediaWidgets.QVideoWidget()
        self.video_widget.setMinimumSize(240, 180)
        self.video_widget.setSizePolicy(
            QtWidgets.QSizePolicy.Policy.Expanding, QtWidgets.QSizePolicy.Policy.Expanding
        )
        self.player.setVideoOutput(self.video_widget)

        self.play_button = QtWidgets.QToolButton()
        self.play_button.setIcon(icons.standard_icon(self, "SP_MediaPlay"))
        self.play_button.setToolTip("Play (Space)")
        self.play_button.setAccessibleName("Play")
        self.position_slider = QtWidgets.QSlider(QtCore.Qt.Orientation.Horizontal)
        self.position_slider.setRange(0, 0)
        self.position_slider.setAccessibleName("Position")
        self.time_label = QtWidgets.QLabel("0:00 / 0:00")
        self.time_label.setMinimumWidth(
            self.time_label.fontMetrics().horizontalAdvance("00:00 / 00:00")
        )
        self.mute_button = QtWidgets.QToolButton()
        self.mute_button.setIcon(icons.standard_icon(self, "SP_MediaVolume"))
        self.mute_button.setCheckable(True)
        self.mute_button.setToolTip("Mute")
        self.volume_slider = QtWidgets.QSlider(QtCore.Qt.Orientation.Horizontal)
        self.volume_slider.setRange(0, 100)
        self.volume_slider.setValue(80)
        self.volume_slider.setFixedWidth(90)
        self.volume_slider.setAccessibleName("Volume")
        self.audio_output.setVolume(0.8)

        self.file_label = QtWidgets.QLabel()
        self.file_label.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
        self.save_button = QtWidgets.QPushButton("Save as…")
        self.save_button.setIcon(icons.standard_icon(self, "SP_DialogSaveButton"))
        self.save_button.setToolTip("Save a copy of the video (Ctrl+S)")
        self.folder_button = QtWidgets.QPushButton("Open folder")
        self.folder_button.setIcon(icons.standard_icon(self, "SP_DirOpenIcon"))
        self.message_label = QtWidgets.QLabel()
        self.message_label.setWordWrap(True)
        self.message_label.hide()

        controls = QtWidgets.QHBoxLayout()
        controls.setSpacing(6)
        controls.addWidget(self.play_button)
        controls.addWidget(self.position_slider, 1)
        controls.addWidget(self.time_label)
        controls.addSpacing(8)
        controls.addWidget(self.mute_button)
        controls.addWidget(self.volume_slider)
        actions = QtWidgets.QHBoxLayout()
        actions.addWidget(self.file_label, 1)
        actions.addWidget(self.folder_button)
        actions.addWidget(self.save_button)

        player_page = QtWidgets.QWidget()
        player_layout = QtWidgets.QVBoxLayout(player_page)
        player_layout.setContentsMargins(0, 0, 0, 0)
        player_layout.addWidget(self.video_widget, 1)
        player_layout.addLayout(controls)
        player_layout.addLayout(actions)
        player_layout.addWidget(self.message_label)

        self.empty_label = empty_state_label(
            "No video yet",
            "When a render finishes, the video plays here.<br>"
            "Finished renders are also in the History tab.",
        )

        self.stack = QtWidgets.QStackedWidget()
        self.stack.addWidget(self.empty_label)
        self.stack.addWidget(player_page)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.stack)

        self.play_button.clicked.connect(self.toggle_play)
        self.position_slider.sliderMoved.connect(self.seek)
        self.position_slider.actionTriggered.connect(self._slider_action)
        self.volume_slider.valueChanged.connect(lambda v: self.audio_output.setVolume(v / 100))
        self.mute_button.toggled.connect(self._set_muted)
        self.save_button.clicked.connect(self.save_as)
        self.folder_button.clicked.connect(self.open_folder)
        self.player.durationChanged.connect(self._duration_changed)
        self.player.positionChanged.connect(self._position_changed)
        self.player.playbackStateChanged.connect(self._state_changed)
        self.player.mediaStatusChanged.connect(self._status_changed)
        self.player.errorOccurred.connect(self._player_error)
        # Frames arrive from the decoder's thread: queue them, so that thread never waits on
        # Python (and so on the GUI thread) while the player holds its own locks.
        self.video_widget.videoSink().videoFrameChanged.connect(
            self._frame_arrived, QtCore.Qt.ConnectionType.QueuedConnection
        )
        QtGui.QShortcut(
            QtGui.QKeySequence(QtCore.Qt.Key.Key_Space),
            player_page,
            self.toggle_play,
            context=QtCore.Qt.ShortcutContext.WidgetWithChildrenShortcut,
        )

    # -- loading -------------------------------------------------------------------------------

    @property
    def source(self) -> Path | None:
        return self._source

    def load(self, path: Path) -> None:
        """Show ``path`` paused on its first frame."""
        self._command("stop")
        self._source = path
        self._last_frame = None
        self._want_poster = True
        self.message_label.hide()
        self.file_label.setText(path.name)
        self.file_label.setToolTip(str(path))
        self.stack.setCurrentIndex(1)
        self._command("setSource", QtCore.Q_ARG(QtCore.QUrl, QtCore.QUrl.fromLocalFile(str(path))))

    def unload(self) -> None:
        """Let go of the file (a new render may replace it) and show the empty state."""
        self._release()
        self._source = None
        self._last_frame = None
        self.position_slider.setRange(0, 0)
        self.time_label.setText("0:00 / 0:00")
        self.stack.setCurrentIndex(0)

    def current_frame(self) -> QtGui.QImage | None:
        """The frame on screen, as an image (for screenshots: QVideoWidget.grab() can be blank)."""
        if self._last_frame is None or not self._last_frame.isValid():
            return None
        image = self._last_frame.toImage()
        return None if image.isNull() else image

    # -- playback ------------------------------------------------------------------------------

    def _command(self, slot: str, *args: QtCore.QGenericArgumentHolder) -> None:
        """Have the event loop call one of the player's slots, rather than calling it here.

        QtMultimedia's FFmpeg backend deletes its objects on its own threads, and a deleted
        object tells the player (a Python-made object) that a connection went away: that
        call takes the GIL while holding Qt's connection lock. A stop or seek called from
        Python holds the GIL and can wait for that same lock: both threads wait forever (about
        one stop in 75 right after the first frame, measured). Called from the event loop,
        the slot runs in C++ with the GIL free.
        """
        QtCore.QMetaObject.invokeMethod(
            self.player, slot, QtCore.Qt.ConnectionType.QueuedConnection, *args
        )

    def _release(self) -> None:
        """Stop, and let go of the file: the backend closes it and ends its threads."""
        self._command("stop")
        self._command("setSource", QtCore.Q_ARG(QtCore.QUrl, QtCore.QUrl()))

    def seek(self, position_ms: int) -> None:
        self._command("setPosition", QtCore.Q_ARG("qint64", int(position_ms)))

    def toggle_play(self) -> None:
        if self._source is None:
            return
        if self.player.playbackState() == QtMultimedia.QMediaPlayer.PlaybackState.PlayingState:
            self._command("pause")
        else:
            if self.player.mediaStatus() == QtMultimedia.QMediaPlayer.MediaStatus.EndOfMedia:
                self.seek(0)
            self._command("play")

    def _set_muted(self, muted: bool) -> None:
        self.audio_output.setMuted(muted)
        self.mute_button.setIcon(
            icons.standard_icon(self, "SP_MediaVolumeMuted" if muted else "SP_MediaVolume")
        )
        self.mute_button.setToolTip("Unmute" if muted else "Mute")

    def _slider_action(self, action: int) -> None:
        # Clicks on the groove and keyboard steps move the slider without sliderMoved.
        if action != QtWidgets.QAbstractSlider.SliderAction.SliderMove.value:
            self.seek(self.position_slider.sliderPosition())

    def _duration_changed(self, duration: int) -> None:
        self.position_slider.setRange(0, max(0, duration))
        self.position_slider.setPageStep(max(1000, duration // 10))
        self.position_slider.setSingleStep(1000)
        self._update_time(self.player.position())

    def _position_changed(self, position: int) -> None:
        if not self.position_slider.isSliderDown():
            self.position_slider.setValue(position)
        self._update_time(position)

    def _update_time(self, position: int) -> None:
        self.time_label.setText(f"{clock(position)} / {clock(self.player.duration())}")

    def _state_changed(self, state: QtMultimedia.QMediaPlayer.PlaybackState) -> None:
        playing = state == QtMultimedia.QMediaPlayer.PlaybackState.PlayingState
        self.play_button.setIcon(
            icons.standard_icon(self, "SP_MediaPause" if playing else "SP_MediaPlay")
        )
        self.play_button.setToolTip("Pause (Space)" if playing else "Play (Space)")
        self.play_button.setAccessibleName("Pause" if playing else "Play")

    def _status_changed(self, status: QtMultimedia.QMediaPlayer.MediaStatus) -> None:
        if status == QtMultimedia.QMediaPlayer.MediaStatus.LoadedMedia and self._want_poster:
            # Pausing a freshly loaded file decodes its first frame: a poster, not a black box.
            self._want_poster = False
            self._command("pause")
        elif status == QtMultimedia.QMediaPlayer.MediaStatus.InvalidMedia:
            self._show_message(
                "This video cannot be played here, but the file itself may be fine: "
                "use Open folder to play it in another player.",
                error=True,
            )

    def _player_error(self, error: QtMultimedia.QMediaPlayer.Error, text: str) -> None:
        if error != QtMultimedia.QMediaPlayer.Error.NoError:
            log.warning("preview player error %s: %s", error, text)
            self._show_message(
                f"The preview cannot play this video ({text or 'unknown player error'}). "
                "The file is still there: use Open folder to play it in another player.",
                error=True,
            )

    def _frame_arrived(self, frame: QtMultimedia.QVideoFrame) -> None:
        self._last_frame = frame

    def _show_message(self, text: str, *, error: bool = False) -> None:
        self.message_label.setStyleSheet(f"color: {icons.ERROR};" if error else "")
        self.message_label.setText(text)
        self.message_label.show()

    # -- files ---------------------------------------------------------------------------------

    def save_as(self) -> None:
        """Ask where to save a copy (the dialog confirms replacing a file); copy atomically."""
        if self._source is None or self._saving:
            return
        if not self._source.is_file():
            self._show_message(
                f"{self._source} is no longer there: it was moved or deleted.", error=True
            )
            return
        folder = self._state.last_dir("save") if self._state else str(self._source.parent)
        suggestion = str(Path(folder) / self._source.name)
        name, _ = QtWidgets.QFileDialog.getSaveFileName(
            self, "Save video as", suggestion, VIDEO_FILTER
        )
        if not name:
            return
        target = Path(name)
        if target.suffix.lower() != ".mp4":
            target = target.with_name(target.name + ".mp4")
            # The dialog confirmed the name typed, not this one: ask ourselves.
            if target.exists() and not self._confirm_replace(target):
                return
        if self._state:
            self._state.set_last_dir("save", target.parent)
        if target.exists() and target.resolve() == self._source.resolve():
            self._show_message(f"Saved as {target}.")
            self.saved.emit(target)
            return
        self._start_copy(self._source, target)

    def _confirm_replace(self, target: Path) -> bool:
        answer = QtWidgets.QMessageBox.question(
            self,
            "Replace file?",
            f"{target.name} already exists in {target.parent}. Replace it?",
            QtWidgets.QMessageBox.StandardButton.Yes | QtWidgets.QMessageBox.StandardButton.No,
            QtWidgets.QMessageBox.StandardButton.No,
        )
        return answer == QtWidgets.QMessageBox.StandardButton.Yes

    def _start_copy(self, src: Path, dst: Path) -> None:
        # Copying a long video takes longer than a GUI frame: do it on the pool.
        self._saving = True
        self.save_button.setEnabled(False)
        self._show_message(f"Saving {dst.name}…")

        def done(path: Path) -> None:
            self._bridge.post(lambda: self._copy_done(path))

        def failed(error: BaseException) -> None:
            self._bridge.post(lambda: self._copy_failed(dst, error))

        start_worker(
            self._pool, lambda: copy_atomic(src, dst, overwrite=True), done, failed, name="save-as"
        )

    def _copy_done(self, path: Path) -> None:
        self._saving = False
        self.save_button.setEnabled(True)
        self._show_message(f"Saved as {path}.")
        self.saved.emit(path)

    def _copy_failed(self, dst: Path, error: BaseException) -> None:
        self._saving = False
        self.save_button.setEnabled(True)
        reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
        message = f"The video could not be saved to {dst}: {reason}."
        self._show_message(message, error=True)
        self.saveFailed.emit(message)

    def open_folder(self) -> None:
        if self._source is not None:
            open_folder(self._source)

    def shutdown(self, timeout_ms: int = RELEASE_TIMEOUT_MS) -> bool:
        """Stop and let go of the video before the window goes: True once the player is idle.

        Waits (handling events, but no user input) for the backend to close the file, so that
        destroying the player afterwards finds no playback thread still running.
        """
        self._bridge.close()
        self._release()

        def idle() -> bool:
            status = self.player.mediaStatus()
            return status == QtMultimedia.QMediaPlayer.MediaStatus.NoMedia and (
                not self.player.source().isValid()
            )

        elapsed = QtCore.QElapsedTimer()
        elapsed.start()
        loop = QtCore.QEventLoop()
        guard = QtCore.QTimer()
        guard.setSingleShot(True)
        guard.timeout.connect(loop.quit)
        self.player.mediaStatusChanged.connect(loop.quit)
        try:
            while not idle() and (left := timeout_ms - elapsed.elapsed()) > 0:
                guard.start(left)
                loop.exec(QtCore.QEventLoop.ProcessEventsFlag.ExcludeUserInputEvents)
        finally:
            self.player.mediaStatusChanged.disconnect(loop.quit)
        if not idle():
            log.warning("the preview player did not let go within %d ms", timeout_ms)
            return False
        return True
