"""The main window: inputs and render settings on the left; progress, preview, history on the right.

The window holds no job logic: it asks the RenderController (qt/controller.py) to analyse inputs,
start, cancel, retry and resume, and shows what the controller reports. Everything the user can
get wrong is said in plain words, inline where it happened or in a dialog.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from infinitetalk_gui.core import paths
from infinitetalk_gui.core import settings as core_settings
from infinitetalk_gui.core.audio import SplitParams
from infinitetalk_gui.core.errors import ConfigError, InfiniteTalkError
from infinitetalk_gui.core.models import DEFAULT_PROMPT, SIZE_PRESETS, Job, JobState, RenderSettings
from infinitetalk_gui.core.pipeline import estimate, resolve_endpoint
from infinitetalk_gui.core.settings import Settings
from infinitetalk_gui.core.store import JobStore
from infinitetalk_gui.qt.compat import QtCore, QtGui, QtWidgets
from infinitetalk_gui.qt.models import (
    COL_PROGRESS,
    STATE_LABELS,
    ChunkTableModel,
    ProgressBarDelegate,
    fit_chunk_columns,
)
from infinitetalk_gui.ui import icons
from infinitetalk_gui.ui.about import AboutDialog
from infinitetalk_gui.ui.drop_zone import PortraitZone, VoiceZone
from infinitetalk_gui.ui.history import HistoryPanel, describe_job, offer_resume
from infinitetalk_gui.ui.keys import ApiKeys
from infinitetalk_gui.ui.log_viewer import LogViewer
from infinitetalk_gui.ui.preview import PreviewPanel, open_folder
from infinitetalk_gui.ui.settings_dialog import SettingsDialog, default_output_dir
from infinitetalk_gui.ui.state import ENDPOINT_DEMO, ENDPOINT_RUNPOD, UiState
from infinitetalk_gui.ui.text import money, plain_status, plural, rough_time

log = logging.getLogger(__name__)

DEFAULT_SIZE = QtCore.QSize(1100, 720)
MIN_COMFORTABLE = QtCore.QSize(1024, 680)
NOTIFY_AFTER_S = 20.0  # a job that took longer than this earns a desktop notification

SIZE_NAMES = {
    (512, 512): "square",
    (480, 832): "portrait",
    (832, 480): "landscape",
    (720, 1280): "portrait HD",
    (1280, 720): "landscape HD",
}
STAGE_TEXT = {
    "queued": "Starting…",
    "preparing": "Preparing the portrait…",
    "splitting": "Splitting the voice into chunks…",
    "joining": "Joining the chunks into one video…",
}
TAB_PROGRESS, TAB_PREVIEW, TAB_HISTORY = 0, 1, 2


def comfortable_size(size: QtCore.QSize, room: QtCore.QSize) -> QtCore.QSize:
    """At least 1024x680 where the screen has room for it; never larger than the screen."""
    width, height = size.width(), size.height()
    if room.width() >= MIN_COMFORTABLE.width():
        width = max(width, MIN_COMFORTABLE.width())
    if room.height() >= MIN_COMFORTABLE.height():
        height = max(height, MIN_COMFORTABLE.height())
    return QtCore.QSize(min(width, room.width()), min(height, room.height()))


def is_demo_job(job: Job) -> bool:
    """Rendered on the built-in demo endpoint (free; resumed on a new demo endpoint)."""
    return bool(job.settings.demo)


def unique_output(folder: Path, stem: str) -> Path:
    """``folder/stem.mp4``, or ``stem-2.mp4``, ``stem-3.mp4``... whichever does not exist yet."""
    candidate = folder / f"{stem}.mp4"
    number = 2
    while candidate.exists():
        candidate = folder / f"{stem}-{number}.mp4"
        number += 1
    return candidate


class MainWindow(QtWidgets.QMainWindow):
    def __init__(
        self,
        controller: Any,
        store: JobStore,
        *,
        settings: Settings | None = None,
        keys: ApiKeys | None = None,
        state: UiState | None = None,
        parent: QtWidgets.QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.controller = controller
        self.store = store
        self.settings = settings if settings is not None else core_settings.load()
        self.keys = keys or ApiKeys()
        self.state = state or UiState()
        self._job: Job | None = None
        self._run_started: float | None = None
        self._quitting = False
        self._tray: QtWidgets.QSystemTrayIcon | None = None
        self._cuts: list[tuple[int, int]] = []
        self._last_endpoint = ENDPOINT_DEMO  # the choice to restore when "Set up..." is picked

        self.setWindowTitle("InfiniteTalk")
        self.setWindowIcon(icons.app_icon())
        self.setAcceptDrops(False)
        self._build_inputs()
        self._build_settings()
        self._build_progress()
        self.preview = PreviewPanel(self.state, parent=self)
        self.history = HistoryPanel(store, self)
        self.tabs = QtWidgets.QTabWidget()
        self.tabs.setDocumentMode(True)
        self.tabs.addTab(self.progress_page, "Progress")
        self.tabs.addTab(self.preview, "Preview")
        self.tabs.addTab(self.history, "History")

        left = QtWidgets.QWidget()
        left_layout = QtWidgets.QVBoxLayout(left)
        left_layout.setContentsMargins(12, 12, 6, 12)
        left_layout.setSpacing(10)
        left_layout.addWidget(self.portrait_zone, 5)
        left_layout.addWidget(self.voice_zone, 3)
        left_layout.addWidget(self.settings_box)
        left_layout.addWidget(self.estimate_label)
        left_layout.addLayout(self._button_row)
        left.setMinimumWidth(360)
        right = QtWidgets.QWidget()
        right_layout = QtWidgets.QVBoxLayout(right)
        right_layout.setContentsMargins(6, 8, 12, 12)
        right_layout.addWidget(self.tabs)
        self.splitter = QtWidgets.QSplitter()
        self.splitter.addWidget(left)
        self.splitter.addWidget(right)
        self.splitter.setStretchFactor(0, 0)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setChildrenCollapsible(False)
        self.splitter.setSizes([410, 690])
        self.setCentralWidget(self.splitter)

        self._build_actions()
        self.status_label = QtWidgets.QLabel()
        self.statusBar().addWidget(self.status_label, 1)
        self.statusBar().setSizeGripEnabled(True)

        self._tick = QtCore.QTimer(self)
        self._tick.setInterval(500)
        self._tick.timeout.connect(self._update_stats)

        self._connect_controller()
        self.portrait_zone.fileChosen.connect(self._portrait_chosen)
        self.voice_zone.fileChosen.connect(self._voice_chosen)
        self.history.openRequested.connect(self._open_job)
        self.history.rerunRequested.connect(self.load_job_inputs)
        self.history.resumeRequested.connect(self.resume_job)
        self.preview.saved.connect(lambda p: self.status_label.setText(f"Saved a copy as {p}"))
        self._restore()
        self._update_checklist()
        self._update_estimate()
        self._update_actions()

    # -- building ------------------------------------------------------------------------------

    def _build_inputs(self) -> None:
        self.portrait_zone = PortraitZone(self.state)
        self.voice_zone = VoiceZone(self.state)
        self.portrait_zone.setMinimumHeight(190)
        self.voice_zone.setMinimumHeight(140)

    def _build_settings(self) -> None:
        self.endpoint_combo = QtWidgets.QComboBox()
        self.endpoint_combo.setAccessibleName("Endpoint")
        self.size_combo = QtWidgets.QComboBox()
        for width, height in SIZE_PRESETS:
            self.size_combo.addItem(
                f"{width} × {height}  ({SIZE_NAMES.get((width, height), '')})", f"{width}x{height}"
            )
        self.prompt_edit = QtWidgets.QLineEdit()
        self.prompt_edit.setPlaceholderText(DEFAULT_PROMPT)
        self.prompt_edit.setToolTip("A short description of how the person should look and move.")
        self.chunk_spin = QtWidgets.QSpinBox()
        self.chunk_spin.setRange(10, 120)
        self.chunk_spin.setSingleStep(5)
        self.chunk_spin.setSuffix(" s")
        self.chunk_spin.setToolTip(
            "The voice is cut into chunks of about this length, inside pauses; "
            "each chunk is rendered on its own."
        )
        self.concurrency_spin = QtWidgets.QSpinBox()
        self.concurrency_spin.setRange(1, 32)
        self.concurrency_spin.setSuffix(" at once")
        self.concurrency_spin.setToolTip("How many chunks are rendered at the same time.")
        chunk_row = QtWidgets.QHBoxLayout()
        chunk_row.setContentsMargins(0, 0, 0, 0)
        chunk_row.addWidget(self.chunk_spin, 1)
        chunk_row.addWidget(QtWidgets.QLabel("Parallel"))
        chunk_row.addWidget(self.concurrency_spin, 1)

        self.settings_box = QtWidgets.QGroupBox("Render settings")
        form = QtWidgets.QFormLayout(self.settings_box)
        form.setFieldGrowthPolicy(QtWidgets.QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        form.setVerticalSpacing(6)
        form.addRow("Endpoint", self.endpoint_combo)
        form.addRow("Size", self.size_combo)
        form.addRow("Prompt", self.prompt_edit)
        form.addRow("Chunk length", chunk_row)

        self.estimate_label = QtWidgets.QLabel()
        self.estimate_label.setWordWrap(True)
        self.estimate_label.setTextFormat(QtCore.Qt.TextFormat.RichText)

        self.render_button = QtWidgets.QPushButton("Render")
        self.render_button.setIcon(icons.standard_icon(self, "SP_MediaPlay"))
        self.render_button.setDefault(True)
        self.render_button.setMinimumHeight(34)
        font = self.render_button.font()
        font.setBold(True)
        self.render_button.setFont(font)
        self.render_button.setStyleSheet(
            f"QPushButton {{ background: {icons.ACCENT}; color: white; border-radius: 5px;"
            " padding: 4px 18px; }"
            " QPushButton:disabled { background: palette(mid); color: palette(window); }"
        )
        self.cancel_button = QtWidgets.QPushButton("Cancel")
        self.cancel_button.setIcon(icons.standard_icon(self, "SP_MediaStop"))
        self.retry_button = QtWidgets.QPushButton("Retry failed")
        self.retry_button.setIcon(icons.standard_icon(self, "SP_BrowserReload"))
        self.retry_button.setToolTip("Render only the chunks that are missing")
        self._button_row = QtWidgets.QHBoxLayout()
        self._button_row.addWidget(self.retry_button)
        self._button_row.addWidget(self.cancel_button)
        self._button_row.addStretch(1)
        self._button_row.addWidget(self.render_button)

        self.render_button.clicked.connect(self.start_render)
        self.cancel_button.clicked.connect(self.cancel_render)
        self.retry_button.clicked.connect(self.retry_failed)
        self.size_combo.currentIndexChanged.connect(self._size_changed)
        self.chunk_spin.valueChanged.connect(self._split_changed)
        self.concurrency_spin.valueChanged.connect(lambda _v: self._update_estimate())
        self.endpoint_combo.activated.connect(self._endpoint_activated)

    def _build_progress(self) -> None:
        self.stage_label = QtWidgets.QLabel()
        font = self.stage_label.font()
        font.setPointSizeF(font.pointSizeF() * 1.25)
        font.setBold(True)
        self.stage_label.setFont(font)
        self.stage_label.setWordWrap(True)
        self.overall_bar = QtWidgets.QProgressBar()
        self.overall_bar.setRange(0, 1000)
        self.overall_bar.setTextVisible(True)
        self.overall_bar.setAccessibleName("Overall progress")
        self.stats_label = QtWidgets.QLabel()
        self.stats_label.setTextInteractionFlags(
            QtCore.Qt.TextInteractionFlag.TextSelectableByMouse
        )
        self.banner = QtWidgets.QLabel()
        self.banner.setWordWrap(True)
        self.banner.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
        self.banner.hide()
        self.output_label = QtWidgets.QLabel()
        self.output_label.setTextFormat(QtCore.Qt.TextFormat.RichText)
        self.output_label.linkActivated.connect(self._output_link)

        self.chunk_model = ChunkTableModel(self)
        self.chunk_view = QtWidgets.QTableView()
        self.chunk_view.setModel(self.chunk_model)
        self.chunk_view.setItemDelegateForColumn(COL_PROGRESS, ProgressBarDelegate(self.chunk_view))
        self.chunk_view.setSelectionBehavior(
            QtWidgets.QAbstractItemView.SelectionBehavior.SelectRows
        )
        self.chunk_view.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        self.chunk_view.setAlternatingRowColors(True)
        self.chunk_view.setShowGrid(False)
        self.chunk_view.verticalHeader().hide()
        self.chunk_view.setWordWrap(False)
        header = self.chunk_view.horizontalHeader()
        header.setHighlightSections(False)
        fit_chunk_columns(self.chunk_view, self.chunk_model)
        header.setSectionResizeMode(COL_PROGRESS, QtWidgets.QHeaderView.ResizeMode.Stretch)

        job_page = QtWidgets.QWidget()
        job_layout = QtWidgets.QVBoxLayout(job_page)
        job_layout.setContentsMargins(4, 8, 4, 4)
        job_layout.setSpacing(8)
        job_layout.addWidget(self.stage_label)
        job_layout.addWidget(self.overall_bar)
        job_layout.addWidget(self.stats_label)
        job_layout.addWidget(self.banner)
        job_layout.addWidget(self.chunk_view, 1)
        job_layout.addWidget(self.output_label)

        self.checklist = QtWidgets.QLabel()
        self.checklist.setTextFormat(QtCore.Qt.TextFormat.RichText)
        self.checklist.setAlignment(QtCore.Qt.AlignmentFlag.AlignLeft)
        empty_page = QtWidgets.QWidget()
        empty_layout = QtWidgets.QVBoxLayout(empty_page)
        empty_layout.addStretch(1)
        empty_layout.addWidget(self.checklist, 0, QtCore.Qt.AlignmentFlag.AlignHCenter)
        empty_layout.addStretch(2)

        self.progress_stack = QtWidgets.QStackedWidget()
        self.progress_stack.addWidget(empty_page)
        self.progress_stack.addWidget(job_page)
        self.progress_page = self.progress_stack

    def _build_actions(self) -> None:
        def action(
            text: str,
            slot: Any,
            shortcuts: list[QtGui.QKeySequence | str] | None = None,
            icon: str | None = None,
        ) -> QtGui.QAction:
            act = QtGui.QAction(text, self)
            if shortcuts:
                act.setShortcuts([QtGui.QKeySequence(s) for s in shortcuts])
            if icon:
                act.setIcon(icons.standard_icon(self, icon))
            act.triggered.connect(slot)
            self.addAction(act)
            return act

        keys = QtGui.QKeySequence.StandardKey
        self.open_portrait_action = action(
            "Open &portrait…", self.portrait_zone.browse, [QtGui.QKeySequence(keys.Open)]
        )
        self.open_voice_action = action("Open &voice…", self.voice_zone.browse, ["Ctrl+Shift+O"])
        self.save_action = action(
            "&Save video as…",
            self.preview.save_as,
            [QtGui.QKeySequence(keys.Save)],
            "SP_DialogSaveButton",
        )
        self.open_folder_action = action("Open output &folder", self._open_output_folder)
        self.settings_action = action(
            "&Settings…", self.open_settings, [QtGui.QKeySequence(keys.Preferences), "Ctrl+,"]
        )
        self.quit_action = action("&Quit", self.close, [QtGui.QKeySequence(keys.Quit), "Ctrl+Q"])
        self.render_action = action(
            "&Render", self.start_render, ["Ctrl+R", "Ctrl+Return"], "SP_MediaPlay"
        )
        self.cancel_action = action(
            "&Cancel render", self.cancel_render, ["Ctrl+."], "SP_MediaStop"
        )
        self.retry_action = action(
            "Retry &failed chunks", self.retry_failed, ["Ctrl+Shift+R"], "SP_BrowserReload"
        )
        self.log_action = action("Show &log", self.show_log, ["Ctrl+L"])
        self.about_action = action("&About InfiniteTalk", self.show_about)
        tab_actions = [
            action(
                f"Show {name}",
                lambda _c=False, i=i: self.tabs.setCurrentIndex(i),
                [f"Ctrl+{i + 1}"],
            )
            for i, name in enumerate(("progress", "preview", "history"))
        ]
        self.render_button.setToolTip("Start rendering (Ctrl+R)")
        self.cancel_button.setToolTip("Stop the render; finished chunks are kept (Ctrl+.)")

        menus = self.menuBar()
        file_menu = menus.addMenu("&File")
        for act in (self.open_portrait_action, self.open_voice_action):
            file_menu.addAction(act)
        file_menu.addSeparator()
        file_menu.addAction(self.save_action)
        file_menu.addAction(self.open_folder_action)
        file_menu.addSeparator()
        file_menu.addAction(self.settings_action)
        file_menu.addSeparator()
        file_menu.addAction(self.quit_action)
        render_menu = menus.addMenu("&Render")
        for act in (self.render_action, self.cancel_action, self.retry_action):
            render_menu.addAction(act)
        view_menu = menus.addMenu("&View")
        for act in tab_actions:
            view_menu.addAction(act)
        view_menu.addSeparator()
        view_menu.addAction(self.log_action)
        help_menu = menus.addMenu("&Help")
        help_menu.addAction(self.about_action)

    def _connect_controller(self) -> None:
        c = self.controller
        c.jobChanged.connect(self._job_changed)
        c.chunksReset.connect(self._chunks_reset)
        c.chunkChanged.connect(self._chunk_changed)
        c.jobFinished.connect(self._job_finished)
        c.busyChanged.connect(self._busy_changed)
        c.logLine.connect(self._log_line)
        c.errorOccurred.connect(self._error)
        c.audioAnalysed.connect(self._audio_analysed)
        c.audioRejected.connect(self._audio_rejected)
        c.imageAnalysed.connect(self._image_analysed)
        c.imageRejected.connect(self._image_rejected)

    # -- persisted state -----------------------------------------------------------------------

    def _restore(self) -> None:
        s = self.settings
        try:
            width, height = (int(v) for v in s.size.lower().split("x"))
        except ValueError:
            width, height = SIZE_PRESETS[0]
        self.select_size(width, height)
        self.prompt_edit.setText(s.prompt if s.prompt != DEFAULT_PROMPT else "")
        self.chunk_spin.blockSignals(True)
        self.chunk_spin.setValue(round(s.chunk_seconds))
        self.chunk_spin.blockSignals(False)
        self.concurrency_spin.setValue(s.concurrency)
        self._fill_endpoints(self.state.endpoint_choice())
        geometry = self.state.geometry()
        if geometry is None or not self.restoreGeometry(geometry):
            self.resize(DEFAULT_SIZE)
        self._fit_to_screen()
        splitter = self.state.splitter()
        if splitter is not None:
            self.splitter.restoreState(splitter)

    def _fit_to_screen(self) -> None:
        screen = self.screen() or QtGui.QGuiApplication.primaryScreen()
        if screen is not None:
            self.resize(comfortable_size(self.size(), screen.availableGeometry().size()))

    def select_size(self, width: int, height: int) -> None:
        index = self.size_combo.findData(f"{width}x{height}")
        if index < 0:
            self.size_combo.addItem(f"{width} × {height}  (custom)", f"{width}x{height}")
            index = self.size_combo.count() - 1
        self.size_combo.blockSignals(True)
        self.size_combo.setCurrentIndex(index)
        self.size_combo.blockSignals(False)

    def _save_state(self) -> None:
        self.state.set_geometry(self.saveGeometry())
        self.state.set_splitter(self.splitter.saveState())
        self.state.set_endpoint_choice(self.endpoint_choice())
        self.state.sync()
        self._save_render_settings()

    def _save_render_settings(self) -> None:
        width, height = self.current_size()
        self.settings.size = f"{width}x{height}"
        self.settings.prompt = self.prompt_edit.text().strip() or DEFAULT_PROMPT
        self.settings.chunk_seconds = float(self.chunk_spin.value())
        self.settings.concurrency = int(self.concurrency_spin.value())
        try:
            core_settings.save(self.settings)
        except OSError as error:
            log.warning("settings not saved: %s", error)
            self.status_label.setText(
                f"Your settings could not be saved: {error.strerror or error}"
            )

    # -- endpoint ------------------------------------------------------------------------------

    def _fill_endpoints(self, choice: str | None = None) -> None:
        current = self.endpoint_combo.currentData()
        choice = choice or (current if current in (ENDPOINT_DEMO, ENDPOINT_RUNPOD) else "")
        url = self.runpod_url()
        self.endpoint_combo.blockSignals(True)
        self.endpoint_combo.clear()
        self.endpoint_combo.addItem("Demo (local): free, no account needed", ENDPOINT_DEMO)
        if url:
            label = self.settings.endpoint_id or url
            self.endpoint_combo.addItem(f"RunPod: {label}", ENDPOINT_RUNPOD)
        self.endpoint_combo.addItem("Set up a RunPod endpoint…", "setup")
        want = choice if choice in (ENDPOINT_DEMO, ENDPOINT_RUNPOD) else ""
        if not want:
            want = ENDPOINT_RUNPOD if url else ENDPOINT_DEMO
        index = self.endpoint_combo.findData(want)
        self.endpoint_combo.setCurrentIndex(index if index >= 0 else 0)
        self.endpoint_combo.blockSignals(False)
        self._last_endpoint = self.endpoint_choice()

    def endpoint_choice(self) -> str:
        data = self.endpoint_combo.currentData()
        return data if data in (ENDPOINT_DEMO, ENDPOINT_RUNPOD) else ENDPOINT_DEMO

    def set_endpoint_choice(self, choice: str) -> None:
        index = self.endpoint_combo.findData(choice)
        if index >= 0:
            self.endpoint_combo.setCurrentIndex(index)
            self._last_endpoint = choice
            self._update_estimate()

    def runpod_url(self) -> str | None:
        """The RunPod endpoint from the environment or the settings; None if none (or invalid)."""
        try:
            return resolve_endpoint(endpoint_id=None, endpoint_url=None, settings=self.settings)
        except ConfigError as error:
            log.warning("the saved endpoint is not usable: %s", error)
            return None

    def _endpoint_activated(self, index: int) -> None:
        if self.endpoint_combo.itemData(index) == "setup":
            # Put the previous choice back, then open the settings on the endpoint fields.
            self.set_endpoint_choice(self._last_endpoint)
            if self.open_settings() and self.runpod_url():
                self.set_endpoint_choice(ENDPOINT_RUNPOD)
            return
        self._last_endpoint = self.endpoint_choice()
        self._update_estimate()

    # -- inputs --------------------------------------------------------------------------------

    def current_size(self) -> tuple[int, int]:
        width, height = str(self.size_combo.currentData()).split("x")
        return int(width), int(height)

    def split_params(self) -> SplitParams:
        return SplitParams(
            chunk_seconds=float(self.chunk_spin.value()),
            silence_db=float(self.settings.silence_db),
            min_silence_ms=int(self.settings.min_silence_ms),
        )

    def render_settings(self, endpoint_url: str) -> RenderSettings:
        width, height = self.current_size()
        s = self.settings
        return RenderSettings(
            endpoint_url=endpoint_url,
            width=width,
            height=height,
            prompt=self.prompt_edit.text().strip() or DEFAULT_PROMPT,
            concurrency=int(self.concurrency_spin.value()),
            chunk_seconds=float(self.chunk_spin.value()),
            silence_db=float(s.silence_db),
            min_silence_ms=int(s.min_silence_ms),
            attempts=int(s.attempts),
            execution_timeout_ms=int(s.execution_timeout_s) * 1000,
            pad_color=s.pad_color,
            gpu_price_per_second=float(s.gpu_price_per_second),
        )

    def _portrait_chosen(self, path: Path) -> None:
        width, height = self.current_size()
        self.controller.analyse_image(path, width, height, self.settings.pad_color)

    def _voice_chosen(self, path: Path) -> None:
        self.controller.analyse_audio(path, self.split_params())

    def _image_analysed(self, path: str, preview: Any) -> None:
        path_obj = Path(path)
        info = preview.info
        width, height = self.current_size()
        caption = f"{path_obj.name} · {info.width} × {info.height} · framed to {width} × {height}"
        if path_obj == self.portrait_zone.path and self.portrait_zone.pending is None:
            self.portrait_zone.reframe(preview.framed)  # the size changed: same file, new frame
            self.portrait_zone.accept_file(path_obj, caption)
        else:
            self.portrait_zone.set_portrait(path_obj, preview.framed, caption)
        self._update_checklist()

    def _image_rejected(self, path: str, message: str) -> None:
        self.portrait_zone.reject_file(Path(path), message)

    def _audio_analysed(self, path: str, preview: Any) -> None:
        path_obj = Path(path)
        self._cuts = [tuple(c) for c in preview.cuts]
        if path_obj == self.voice_zone.path and self.voice_zone.pending is None:
            self.voice_zone.set_cuts(self._cuts)  # re-planned with new chunk settings
        else:
            self.voice_zone.set_voice(path_obj, preview.envelope, self._cuts, preview.duration_ms)
        self._update_checklist()
        self._update_estimate()

    def _audio_rejected(self, path: str, message: str) -> None:
        self.voice_zone.reject_file(Path(path), message)

    def _size_changed(self, _index: int) -> None:
        if self.portrait_zone.path is not None and self.portrait_zone.pending is None:
            self._portrait_chosen(self.portrait_zone.path)
        self._update_estimate()

    def _split_changed(self, *_args: Any) -> None:
        if self.voice_zone.path is not None:
            try:
                self.controller.replan_cuts(self.split_params())
            except InfiniteTalkError as error:
                self.voice_zone.show_error(str(error))
        self._update_estimate()

    # -- estimate and checklist ----------------------------------------------------------------

    def _update_estimate(self) -> None:
        duration = self.voice_zone.duration_ms
        if not duration:
            self.estimate_label.setText(
                "<span style='color:gray'>Add a voice to see the chunks, GPU time and cost.</span>"
            )
            return
        guess = estimate(duration, self.render_settings(""))
        chunks = len(self._cuts) or guess.chunks
        parts = [plural(chunks, "chunk"), f"about {rough_time(guess.gpu_seconds)} of GPU time"]
        if self.endpoint_choice() == ENDPOINT_DEMO:
            parts.append("<b>free</b> (demo)")
        else:
            parts.append(f"≈ <b>{money(guess.cost_usd)}</b>")
        self.estimate_label.setText("Estimate: " + " · ".join(parts))

    def _update_checklist(self) -> None:
        """The empty state: three steps, ticked off as the inputs arrive."""

        def step(number: int, done: bool, text: str) -> str:
            badge = (
                f"<span style='color:{icons.SUCCESS}; font-size:13pt'>✔</span>"
                if done
                else f"<span style='color:{icons.ACCENT}; font-size:13pt'><b>{number}</b></span>"
            )
            return (
                f"<tr><td width='34' align='center' valign='middle'>{badge}</td>"
                f"<td valign='middle'>{text}</td></tr>"
            )

        portrait, voice = self.portrait_zone.path, self.voice_zone.path
        html = (
            "<p style='font-size:15pt'><b>Make a talking video</b></p>"
            "<table cellspacing='0' cellpadding='5'>"
            + step(
                1,
                portrait is not None,
                f"Portrait: <b>{portrait.name}</b>"
                if portrait
                else "Drop a portrait (a photo of a face) on the left",
            )
            + step(
                2,
                voice is not None,
                f"Voice: <b>{voice.name}</b>" if voice else "Drop a voice recording below it",
            )
            + step(3, False, "Press <b>Render</b> (Ctrl+R) and watch the chunks come in")
            + "</table><p style='color:gray'>No RunPod account yet? Keep the endpoint on "
            "<i>Demo (local)</i>:<br>the whole flow runs on this computer, for free.</p>"
        )
        self.checklist.setText(html)

    # -- render control ------------------------------------------------------------------------

    @property
    def busy(self) -> bool:
        return bool(self.controller.busy)

    def start_render(self) -> None:
        if self.busy:
            return
        missing = False
        for zone, what in (
            (self.portrait_zone, "a portrait"),
            (self.voice_zone, "a voice recording"),
        ):
            if zone.pending is not None:
                zone.show_error(f"Still checking {zone.pending.name}: try again in a moment.")
                missing = True
            elif zone.path is None:
                zone.show_error(f"Add {what} first: drop a file here or click to browse.")
                missing = True
        if missing:
            return
        demo = self.endpoint_choice() == ENDPOINT_DEMO
        url = ""
        api_key = None
        if not demo:
            url = self.runpod_url() or ""
            api_key = self.keys.get()
            if not url or not api_key:
                self._ask_for_setup(
                    "No RunPod endpoint is set." if not url else "No RunPod API key is set."
                )
                return
        try:
            output = self.next_output_path()
        except OSError as error:
            self._error(
                "Cannot write the video",
                f"The output folder cannot be used: {error.strerror or error}. "
                "Choose another one in Settings.",
            )
            return
        self._save_render_settings()
        self.preview.unload()
        self.banner.hide()
        self.output_label.clear()
        self._run_started = time.monotonic()
        self.tabs.setCurrentIndex(TAB_PROGRESS)
        assert self.portrait_zone.path is not None and self.voice_zone.path is not None
        self.controller.start_render(
            self.portrait_zone.path,
            self.voice_zone.path,
            output,
            self.render_settings(url),
            api_key,
            demo,
        )

    def next_output_path(self) -> Path:
        folder = (
            Path(self.settings.output_dir) if self.settings.output_dir else default_output_dir()
        )
        folder.mkdir(parents=True, exist_ok=True)
        assert self.voice_zone.path is not None
        return unique_output(folder, f"{self.voice_zone.path.stem}-talking")

    def _ask_for_setup(self, problem: str) -> None:
        box = QtWidgets.QMessageBox(self)
        box.setIcon(QtWidgets.QMessageBox.Icon.Information)
        box.setWindowTitle("RunPod is not set up")
        box.setText(problem)
        box.setInformativeText(
            "Enter your RunPod endpoint ID and API key in Settings, or switch the endpoint "
            "to Demo (local) to try the app on this computer."
        )
        settings_button = box.addButton(
            "Open Settings", QtWidgets.QMessageBox.ButtonRole.AcceptRole
        )
        demo_button = box.addButton("Use Demo", QtWidgets.QMessageBox.ButtonRole.ActionRole)
        box.addButton(QtWidgets.QMessageBox.StandardButton.Cancel)
        box.exec()
        if box.clickedButton() is settings_button:
            self.open_settings()
        elif box.clickedButton() is demo_button:
            self.set_endpoint_choice(ENDPOINT_DEMO)

    def cancel_render(self) -> None:
        if self.busy:
            self.stage_label.setText("Cancelling…")
            self.cancel_button.setEnabled(False)
            self.controller.cancel()

    def retry_failed(self) -> None:
        job = self._job
        if (
            self.busy
            or job is None
            or job.state
            not in (
                JobState.FAILED,
                JobState.CANCELLED,
                JobState.TIMED_OUT,
            )
        ):
            return
        self.banner.hide()
        self._run_started = time.monotonic()
        self.tabs.setCurrentIndex(TAB_PROGRESS)
        self.controller.retry_failed()

    def resume_job(self, job: Job) -> None:
        if self.busy:
            return
        api_key = None
        if not is_demo_job(job):
            api_key = self.keys.get()
            if not api_key:
                self._ask_for_setup("This job renders on RunPod, and no API key is set.")
                return
        self._job = job
        self.banner.hide()
        self.chunk_model.set_job(job)
        self._show_job(job)
        self._run_started = time.monotonic()
        self.tabs.setCurrentIndex(TAB_PROGRESS)
        self.controller.resume(job.id, api_key)

    def offer_interrupted(self) -> None:
        """At start: offer to finish a job nobody is driving: its process died, or the user
        quit with "finish later" (the core then leaves it unfinished, remote chunks running)."""
        jobs: list[Job] = []
        try:
            jobs = self.store.interrupted()
        except InfiniteTalkError as error:
            log.info("no job to offer for resume: %s", error)
        job = offer_resume(self, jobs) if jobs else None
        if job is not None:
            self.resume_job(job)

    def load_job_inputs(self, job: Job) -> None:
        """Re-run: the job's portrait, voice and settings go into the form (Render starts it)."""
        if self.busy:
            return
        s = job.settings
        self.select_size(s.width, s.height)
        self.prompt_edit.setText(s.prompt if s.prompt != DEFAULT_PROMPT else "")
        self.concurrency_spin.setValue(s.concurrency)
        self.chunk_spin.blockSignals(True)
        self.chunk_spin.setValue(round(s.chunk_seconds))
        self.chunk_spin.blockSignals(False)
        if is_demo_job(job):
            self.set_endpoint_choice(ENDPOINT_DEMO)
        elif self.runpod_url():
            self.set_endpoint_choice(ENDPOINT_RUNPOD)
        self.portrait_zone.choose(Path(job.image_path))
        self.voice_zone.choose(Path(job.audio_path))
        self.status_label.setText("Loaded the job's inputs and settings: press Render to start.")

    # -- controller signals --------------------------------------------------------------------

    def _busy_changed(self, busy: bool) -> None:
        for widget in (self.portrait_zone, self.voice_zone):
            widget.set_locked(busy)
        self.settings_box.setEnabled(not busy)
        self.history.set_busy(busy)
        if busy:
            self._tick.start()
            self.progress_stack.setCurrentIndex(1)
        else:
            self._tick.stop()
        self._update_actions()
        self._update_stats()

    def _job_changed(self, job: Job) -> None:
        self._job = job
        self._show_job(job)
        self.history.update_job(job)

    def _chunks_reset(self, job: Job) -> None:
        self._job = job
        self.chunk_model.set_job(job)
        self._show_job(job)

    def _chunk_changed(self, job: Job, index: int) -> None:
        self._job = job
        self.chunk_model.update_chunk(job, index)
        self._update_stats()

    def _job_finished(self, job: Job) -> None:
        self._job = job
        self.chunk_model.set_job(job)
        self._show_job(job)
        self.history.update_job(job)
        took = time.monotonic() - self._run_started if self._run_started else 0.0
        output = Path(job.output_path)
        if job.state is JobState.COMPLETED:
            self.preview.load(output)
            self.tabs.setCurrentIndex(TAB_PREVIEW)
            self._notify("Your video is ready", f"{output.name} is finished.", took)
        elif job.state is JobState.CANCELLED:
            self._notify("Render cancelled", "Finished chunks are kept.", took, always=False)
        else:
            self._notify("Render failed", job.error or "The render did not finish.", took)
        self._update_actions()

    def _log_line(self, line: str) -> None:
        self.status_label.setText(plain_status(line, STATE_LABELS))

    def _error(self, title: str, message: str) -> None:
        QtWidgets.QMessageBox.warning(self, title, message)

    # -- showing a job -------------------------------------------------------------------------

    def _show_job(self, job: Job) -> None:
        self.progress_stack.setCurrentIndex(1)
        self.stage_label.setText(self._stage_text(job))
        self.stage_label.setStyleSheet(
            f"color: {icons.ERROR};" if job.state in (JobState.FAILED, JobState.TIMED_OUT) else ""
        )
        if job.state in (JobState.FAILED, JobState.TIMED_OUT, JobState.CANCELLED):
            kept = (
                f" {plural(job.chunks_done, 'finished chunk is', 'finished chunks are')} kept: "
                "Retry failed renders only the rest."
                if job.chunks_done
                else " Retry failed starts it again."
            )
            reason = (job.error or "The render did not finish.").rstrip()
            if not reason.endswith((".", "!", "?")):
                reason += "."
            text = reason + kept
            color = icons.WARNING if job.state is JobState.CANCELLED else icons.ERROR
            self.banner.setStyleSheet(
                f"QLabel {{ color: {color}; border: 1px solid {color}; border-radius: 4px;"
                " padding: 6px; }"
            )
            self.banner.setText(text)
            self.banner.show()
        else:
            self.banner.hide()
        if job.state is JobState.COMPLETED:
            output = Path(job.output_path)
            self.output_label.setText(
                f"Saved to <a href='file'>{output}</a> · <a href='folder'>Open folder</a>"
            )
        else:
            self.output_label.clear()
        self._update_stats()
        self._update_actions()

    def _stage_text(self, job: Job) -> str:
        if job.state is JobState.COMPLETED:
            return "Finished: your video is ready"
        if job.state is JobState.CANCELLED:
            return "Cancelled"
        if job.state is JobState.FAILED:
            return "The render failed"
        if job.state is JobState.TIMED_OUT:
            return "The render ran out of time"
        if job.stage == "rendering" or (job.chunks and job.stage not in STAGE_TEXT):
            return f"Rendering: {job.chunks_done} of {plural(job.chunks_total, 'chunk')} done"
        return STAGE_TEXT.get(job.stage, "Working…")

    def _update_stats(self) -> None:
        job = self._job
        if job is None:
            self.overall_bar.setValue(0)
            self.stats_label.clear()
            self.setWindowTitle("InfiniteTalk")
            return
        fraction = 1.0 if job.state is JobState.COMPLETED else self.chunk_model.overall_progress()
        self.overall_bar.setValue(round(fraction * 1000))
        self.overall_bar.setFormat(f"{fraction * 100:.0f} %")
        # The taskbar shows the title: progress is visible with the window in the background.
        self.setWindowTitle(
            f"{fraction * 100:.0f} % · InfiniteTalk" if self.busy else "InfiniteTalk"
        )
        parts = []
        if self._run_started is not None:
            if self.busy:
                parts.append(f"Elapsed {rough_time(time.monotonic() - self._run_started)}")
            elif job.state.terminal and job.finished_at and job.created_at:
                parts.append(f"Took {rough_time(time.monotonic() - self._run_started)}")
        if self.busy and job.chunks:
            eta = self.chunk_model.eta_seconds()
            if eta is not None and job.chunks_done < job.chunks_total:
                parts.append(f"about {rough_time(eta)} left")
        parts.append(f"GPU time {rough_time(job.exec_ms / 1000) if job.exec_ms else '0 s'}")
        demo = is_demo_job(job)
        parts.append("cost: free (demo)" if demo else f"cost so far {money(job.cost_usd)}")
        self.stats_label.setText(" · ".join(parts))
        if self.busy:
            self.stage_label.setText(self._stage_text(job))

    def _update_actions(self) -> None:
        busy = self.busy
        job = self._job
        retryable = job is not None and job.state in (
            JobState.FAILED,
            JobState.CANCELLED,
            JobState.TIMED_OUT,
        )
        self.render_button.setEnabled(not busy)
        self.render_action.setEnabled(not busy)
        self.cancel_button.setEnabled(busy)
        self.cancel_action.setEnabled(busy)
        self.retry_button.setEnabled(not busy and retryable)
        self.retry_action.setEnabled(not busy and retryable)
        self.retry_button.setVisible(retryable)
        self.settings_action.setEnabled(not busy)
        self.open_portrait_action.setEnabled(not busy)
        self.open_voice_action.setEnabled(not busy)
        self.save_action.setEnabled(self.preview.source is not None)
        self.open_folder_action.setEnabled(True)

    def _output_link(self, link: str) -> None:
        if self._job is None:
            return
        output = Path(self._job.output_path)
        if link == "folder":
            open_folder(output)
        else:
            QtGui.QDesktopServices.openUrl(QtCore.QUrl.fromLocalFile(str(output)))

    def _open_output_folder(self) -> None:
        if self.preview.source is not None:
            open_folder(self.preview.source)
            return
        folder = (
            Path(self.settings.output_dir) if self.settings.output_dir else default_output_dir()
        )
        if not folder.is_dir():
            self.status_label.setText(
                f"{folder} does not exist yet: it is made by the first render."
            )
            return
        open_folder(folder)

    def _open_job(self, job: Job) -> None:
        self.preview.load(Path(job.output_path))
        self.tabs.setCurrentIndex(TAB_PREVIEW)
        self._update_actions()

    # -- dialogs -------------------------------------------------------------------------------

    def open_settings(self) -> bool:
        """Show Settings; True if the user saved."""
        if self.busy:
            return False
        old_split = (self.settings.silence_db, self.settings.min_silence_ms)
        dialog = SettingsDialog(self.settings, self.keys, self.controller, self)
        if dialog.exec() != QtWidgets.QDialog.DialogCode.Accepted:
            return False
        # Keep the size/prompt/chunk fields the form holds; take the dialog's fields.
        self.settings = dialog.settings
        self._fill_endpoints()
        if (self.settings.silence_db, self.settings.min_silence_ms) != old_split:
            self._split_changed()
        self._update_estimate()
        self.status_label.setText("Settings saved.")
        return True

    def show_log(self) -> None:
        LogViewer(paths.log_file(), self).exec()

    def show_about(self) -> None:
        AboutDialog(self).exec()

    # -- notifications -------------------------------------------------------------------------

    def _notify(self, title: str, message: str, took_s: float, *, always: bool = True) -> None:
        """A desktop notification for long jobs, or when the window is not in front."""
        if not always or (took_s < NOTIFY_AFTER_S and self.isActiveWindow()):
            return
        if (
            QtWidgets.QSystemTrayIcon.isSystemTrayAvailable()
            and QtWidgets.QSystemTrayIcon.supportsMessages()
        ):
            if self._tray is None:
                self._tray = QtWidgets.QSystemTrayIcon(self.windowIcon(), self)
                self._tray.setToolTip("InfiniteTalk")
                self._tray.messageClicked.connect(self._bring_to_front)
            self._tray.show()
            self._tray.showMessage(title, message, self.windowIcon(), 8000)
        else:
            QtWidgets.QApplication.alert(self)

    def _bring_to_front(self) -> None:
        self.showNormal()
        self.raise_()
        self.activateWindow()

    # -- quitting ------------------------------------------------------------------------------

    def job_note(self) -> str | None:
        """For the crash dialog: what happens to the running job."""
        job = self._job
        if job is None or job.state.terminal:
            return None
        return (
            f"The render {describe_job(job)} is saved: it can be resumed from the History tab "
            "(finished chunks are kept)."
        )

    def ask_quit(self) -> bool | None:
        """While a job runs: None to stay, else whether to cancel it (False leaves it resumable)."""
        box = QtWidgets.QMessageBox(self)
        box.setIcon(QtWidgets.QMessageBox.Icon.Question)
        box.setWindowTitle("A render is running")
        box.setText("A render is still running. Quit anyway?")
        box.setInformativeText(
            "Finish later keeps it: the next time you open the app it offers to resume, and "
            "only the missing chunks are rendered. Cancel stops the remote chunks now."
        )
        later = box.addButton("Quit, finish later", QtWidgets.QMessageBox.ButtonRole.AcceptRole)
        cancel = box.addButton(
            "Cancel render and quit", QtWidgets.QMessageBox.ButtonRole.DestructiveRole
        )
        stay = box.addButton("Keep running", QtWidgets.QMessageBox.ButtonRole.RejectRole)
        box.setDefaultButton(stay)
        box.exec()
        clicked = box.clickedButton()
        if clicked is later:
            return False
        if clicked is cancel:
            return True
        return None

    def shutdown(self, *, cancel_running: bool) -> None:
        """Save state, stop the player, let the controller cancel or leave the job and drain."""
        if self._quitting:
            return
        self._quitting = True
        self._tick.stop()
        self._save_state()
        self.preview.shutdown()
        if self._tray is not None:
            self._tray.hide()
        self.controller.shutdown(cancel_running)

    def closeEvent(self, event: QtGui.QCloseEvent) -> None:
        if self._quitting:
            event.accept()
            return
        cancel_running = False
        if self.busy:
            answer = self.ask_quit()
            if answer is None:
                event.ignore()
                return
            cancel_running = answer
        self.shutdown(cancel_running=cancel_running)
        event.accept()
