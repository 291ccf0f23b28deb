"""Settings: the RunPod endpoint and API key, GPU price, output folder, how the voice is split.

App settings are saved with core/settings.py (shared with the CLI); the key goes to the OS keyring
through core/secrets.py, or, where the system has none, is kept for this session only if the user
says so. It is never written to a file.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from infinitetalk_gui.core import runpod
from infinitetalk_gui.core import settings as core_settings
from infinitetalk_gui.core.errors import ConfigError
from infinitetalk_gui.core.models import RUNPOD_BASE_URL
from infinitetalk_gui.core.settings import Settings
from infinitetalk_gui.qt.compat import QtCore, QtWidgets
from infinitetalk_gui.ui import icons
from infinitetalk_gui.ui.keys import ApiKeys


def endpoint_url_from(endpoint_id: str, endpoint_url: str) -> str | None:
    """The base URL the fields describe: an explicit URL wins over an id."""
    if endpoint_url.strip():
        return endpoint_url.strip().rstrip("/")
    if endpoint_id.strip():
        return f"{RUNPOD_BASE_URL}/{endpoint_id.strip()}"
    return None


def default_output_dir() -> Path:
    """Where renders go unless the user picks a folder: Videos/InfiniteTalk (else home)."""
    movies = QtCore.QStandardPaths.writableLocation(
        QtCore.QStandardPaths.StandardLocation.MoviesLocation
    )
    return Path(movies or Path.home()) / "InfiniteTalk"


class SettingsDialog(QtWidgets.QDialog):
    def __init__(
        self,
        settings: Settings,
        keys: ApiKeys,
        controller: Any = None,
        parent: QtWidgets.QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Settings")
        self.setModal(True)
        self.settings = copy.deepcopy(settings)
        self._keys = keys
        self._controller = controller
        self._stored_key = keys.get() or ""
        self._source = keys.source()

        # -- RunPod ------------------------------------------------------------------------
        self.endpoint_id_edit = QtWidgets.QLineEdit(settings.endpoint_id or "")
        self.endpoint_id_edit.setPlaceholderText("the id shown on your RunPod endpoint page")
        self.endpoint_url_edit = QtWidgets.QLineEdit(settings.endpoint_url or "")
        self.endpoint_url_edit.setPlaceholderText("optional: a full URL instead of an id")
        self.key_edit = QtWidgets.QLineEdit(self._stored_key)
        self.key_edit.setEchoMode(QtWidgets.QLineEdit.EchoMode.Password)
        self.key_edit.setPlaceholderText("paste your RunPod API key")
        self.key_edit.setAccessibleName("RunPod API key")
        self._show_key = self.key_edit.addAction(
            icons.standard_icon(self, "SP_FileDialogContentsView"),
            QtWidgets.QLineEdit.ActionPosition.TrailingPosition,
        )
        self._show_key.setCheckable(True)
        self._show_key.setToolTip("Show the key")
        self._show_key.toggled.connect(self._toggle_key_visible)
        self.key_status = QtWidgets.QLabel(keys.describe())
        self.key_status.setWordWrap(True)
        self.session_only_check = QtWidgets.QCheckBox("Keep the key for this session only")
        self.session_only_check.setToolTip(
            "The key stays in memory until the app closes and is never written anywhere."
        )
        self.forget_button = QtWidgets.QPushButton("Remove saved key")
        self.forget_button.clicked.connect(self._forget_key)
        self.no_keyring_label = QtWidgets.QLabel(
            "This system has no secure keyring (such as GNOME Keyring or KWallet), so the "
            "key cannot be saved safely. It can be kept for this session only: you will "
            "enter it again next time. Or set the RUNPOD_API_KEY environment variable."
        )
        self.no_keyring_label.setWordWrap(True)
        self.no_keyring_label.setStyleSheet(f"color: {icons.WARNING};")
        keyring_ok = keys.keyring_available()
        self.no_keyring_label.setVisible(not keyring_ok)
        if not keyring_ok:
            self.session_only_check.setChecked(True)
            self.session_only_check.setEnabled(False)
        self.forget_button.setVisible(keyring_ok)
        self.forget_button.setEnabled(self._source in (ApiKeys.SOURCE_KEYRING,))
        if self._source == ApiKeys.SOURCE_ENVIRONMENT:
            self.key_edit.setEnabled(False)
            self.session_only_check.setEnabled(False)

        self.test_button = QtWidgets.QPushButton("Test connection")
        self.test_result = QtWidgets.QLabel()
        self.test_result.setWordWrap(True)
        self.test_result.setTextInteractionFlags(
            QtCore.Qt.TextInteractionFlag.TextSelectableByMouse
        )
        self.test_button.clicked.connect(self.test_connection)
        self._listening = controller is not None
        if controller is not None:
            controller.connectionChecked.connect(self._connection_checked)
        else:
            self.test_button.setEnabled(False)

        runpod_box = QtWidgets.QGroupBox("RunPod endpoint")
        runpod_form = QtWidgets.QFormLayout(runpod_box)
        runpod_form.addRow("Endpoint ID", self.endpoint_id_edit)
        runpod_form.addRow("Endpoint URL", self.endpoint_url_edit)
        runpod_form.addRow("API key", self.key_edit)
        key_row = QtWidgets.QHBoxLayout()
        key_row.addWidget(self.session_only_check)
        key_row.addStretch(1)
        key_row.addWidget(self.forget_button)
        runpod_form.addRow("", key_row)
        runpod_form.addRow("", self.key_status)
        runpod_form.addRow("", self.no_keyring_label)
        test_row = QtWidgets.QHBoxLayout()
        test_row.addWidget(self.test_button)
        test_row.addWidget(self.test_result, 1)
        runpod_form.addRow("", test_row)

        # -- cost, output, splitting -----------------------------------------------------------
        self.price_spin = QtWidgets.QDoubleSpinBox()
        self.price_spin.setDecimals(6)
        self.price_spin.setRange(0.0, 1.0)
        self.price_spin.setSingleStep(0.00001)
        self.price_spin.setPrefix("$ ")
        self.price_spin.setSuffix(" per second")
        self.price_spin.setValue(settings.gpu_price_per_second)
        self.price_spin.setToolTip(
            "What your RunPod GPU costs per second of execution; used for the cost estimates."
        )
        self.output_edit = QtWidgets.QLineEdit(settings.output_dir or "")
        self.output_edit.setPlaceholderText(str(default_output_dir()))
        output_browse = QtWidgets.QPushButton("Browse…")
        output_browse.clicked.connect(self._browse_output)
        output_row = QtWidgets.QHBoxLayout()
        output_row.addWidget(self.output_edit, 1)
        output_row.addWidget(output_browse)
        self.silence_db_spin = QtWidgets.QDoubleSpinBox()
        self.silence_db_spin.setRange(-90.0, -1.0)
        self.silence_db_spin.setDecimals(0)
        self.silence_db_spin.setSuffix(" dBFS")
        self.silence_db_spin.setValue(settings.silence_db)
        self.silence_db_spin.setToolTip("Sound quieter than this counts as a pause.")
        self.min_silence_spin = QtWidgets.QSpinBox()
        self.min_silence_spin.setRange(100, 5000)
        self.min_silence_spin.setSingleStep(50)
        self.min_silence_spin.setSuffix(" ms")
        self.min_silence_spin.setValue(settings.min_silence_ms)
        self.min_silence_spin.setToolTip("A pause must last this long to be a place to cut.")
        self.attempts_spin = QtWidgets.QSpinBox()
        self.attempts_spin.setRange(1, 10)
        self.attempts_spin.setValue(settings.attempts)
        self.attempts_spin.setToolTip(
            "How many times a failed chunk is tried before the job stops."
        )

        general_box = QtWidgets.QGroupBox("Rendering")
        general_form = QtWidgets.QFormLayout(general_box)
        general_form.addRow("GPU price", self.price_spin)
        general_form.addRow("Output folder", output_row)
        general_form.addRow("Pause threshold", self.silence_db_spin)
        general_form.addRow("Shortest pause", self.min_silence_spin)
        general_form.addRow("Tries per chunk", self.attempts_spin)

        self.error_label = QtWidgets.QLabel()
        self.error_label.setWordWrap(True)
        self.error_label.setStyleSheet(f"color: {icons.ERROR};")
        self.error_label.hide()
        self.buttons = QtWidgets.QDialogButtonBox(
            QtWidgets.QDialogButtonBox.StandardButton.Save
            | QtWidgets.QDialogButtonBox.StandardButton.Cancel
        )
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)

        layout = QtWidgets.QVBoxLayout(self)
        layout.addWidget(runpod_box)
        layout.addWidget(general_box)
        layout.addWidget(self.error_label)
        layout.addWidget(self.buttons)
        self.setMinimumWidth(560)

    # -- key -----------------------------------------------------------------------------------

    def _toggle_key_visible(self, visible: bool) -> None:
        self.key_edit.setEchoMode(
            QtWidgets.QLineEdit.EchoMode.Normal
            if visible
            else QtWidgets.QLineEdit.EchoMode.Password
        )
        self._show_key.setToolTip("Hide the key" if visible else "Show the key")

    def _forget_key(self) -> None:
        try:
            self._keys.forget()
        except ConfigError as error:
            self._show_error(str(error))
            return
        self._stored_key = ""
        self._source = self._keys.source()
        self.key_edit.clear()
        self.key_status.setText(self._keys.describe())
        self.forget_button.setEnabled(False)

    # -- test ----------------------------------------------------------------------------------

    def test_connection(self) -> None:
        url = endpoint_url_from(self.endpoint_id_edit.text(), self.endpoint_url_edit.text())
        if url is None:
            self._set_test_result(False, "Enter an endpoint ID first.")
            return
        key = self.key_edit.text().strip() or None
        if key is None:
            self._set_test_result(False, "Enter your API key first.")
            return
        self.test_button.setEnabled(False)
        self.test_result.setStyleSheet("")
        self.test_result.setText("Checking…")
        self._controller.check_connection(url, key)

    def _connection_checked(self, ok: bool, message: str) -> None:
        self.test_button.setEnabled(True)
        self._set_test_result(ok, message)

    def _set_test_result(self, ok: bool, message: str) -> None:
        self.test_result.setStyleSheet(f"color: {icons.SUCCESS if ok else icons.ERROR};")
        self.test_result.setText(message)

    # -- output --------------------------------------------------------------------------------

    def _browse_output(self) -> None:
        start = self.output_edit.text().strip() or str(Path.home())
        folder = QtWidgets.QFileDialog.getExistingDirectory(self, "Output folder", start)
        if folder:
            self.output_edit.setText(folder)

    # -- save ----------------------------------------------------------------------------------

    def _show_error(self, message: str) -> None:
        self.error_label.setText(message)
        self.error_label.show()

    def collect(self) -> Settings:
        """The settings as the fields describe them; ConfigError with a plain message if wrong."""
        result = copy.deepcopy(self.settings)
        result.set("endpoint_id", self.endpoint_id_edit.text())
        if result.endpoint_id:
            runpod.endpoint_url_for(result.endpoint_id)  # ConfigError, in words, if malformed
        result.set("endpoint_url", self.endpoint_url_edit.text())
        result.gpu_price_per_second = float(self.price_spin.value())
        output = self.output_edit.text().strip()
        if output:
            folder = Path(output).expanduser()
            if not folder.is_dir():
                raise ConfigError(f"The output folder {folder} does not exist.")
            result.output_dir = str(folder)
        else:
            result.output_dir = None
        result.silence_db = float(self.silence_db_spin.value())
        result.min_silence_ms = int(self.min_silence_spin.value())
        result.attempts = int(self.attempts_spin.value())
        return result

    def accept(self) -> None:
        try:
            new = self.collect()
            key = self.key_edit.text().strip()
            if self._source != ApiKeys.SOURCE_ENVIRONMENT and key and key != self._stored_key:
                self._keys.save(key, session_only=self.session_only_check.isChecked())
            elif (
                self._source == ApiKeys.SOURCE_KEYRING
                and key
                and self.session_only_check.isChecked()
            ):
                # The user now wants the saved key out of the keyring, kept in memory only.
                self._keys.forget()
                self._keys.save(key, session_only=True)
            core_settings.save(new)
        except ConfigError as error:
            self._show_error(str(error))
            return
        except OSError as error:
            self._show_error(f"The settings could not be saved: {error.strerror or error}.")
            return
        self.settings = new
        super().accept()

    def done(self, result: int) -> None:
        if self._listening:
            self._listening = False
            self._controller.connectionChecked.disconnect(self._connection_checked)
        super().done(result)

    def sizeHint(self) -> QtCore.QSize:
        return QtCore.QSize(600, super().sizeHint().height())
