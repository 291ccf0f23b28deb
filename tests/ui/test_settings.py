"""Settings dialog: settings and key round-trip, the no-keyring path, Test connection."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import keyring
import keyring.backends.fail
import pytest

from infinitetalk_gui.core import secrets
from infinitetalk_gui.core import settings as core_settings
from infinitetalk_gui.core.demo_endpoint import DemoEndpoint
from infinitetalk_gui.core.settings import Settings
from infinitetalk_gui.qt.compat import QtWidgets
from infinitetalk_gui.qt.controller import RenderController
from infinitetalk_gui.ui.keys import ApiKeys
from infinitetalk_gui.ui.settings_dialog import SettingsDialog
from tests.ui.conftest import WindowFactory


def fill(dialog: SettingsDialog, **values: Any) -> None:
    for name, value in values.items():
        widget = getattr(dialog, name)
        if isinstance(widget, QtWidgets.QLineEdit):
            widget.setText(value)
        else:
            widget.setValue(value)


def test_settings_and_key_round_trip_through_the_keyring(
    qtbot: Any, memory_keyring: Any, tmp_path: Path, isolated_home: Path
) -> None:
    keys = ApiKeys()
    dialog = SettingsDialog(Settings(), keys)
    qtbot.addWidget(dialog)
    assert dialog.key_edit.echoMode() == QtWidgets.QLineEdit.EchoMode.Password
    assert dialog.no_keyring_label.isHidden()
    assert not dialog.session_only_check.isChecked()
    fill(
        dialog,
        endpoint_id_edit="abc123def456",
        key_edit="rp_secret_key_42",
        price_spin=0.00051,
        output_edit=str(tmp_path),
        silence_db_spin=-35,
        min_silence_spin=700,
        attempts_spin=2,
    )
    dialog.accept()
    assert dialog.result() == QtWidgets.QDialog.DialogCode.Accepted

    assert secrets.get_key() == "rp_secret_key_42"
    assert memory_keyring.passwords[(secrets.SERVICE, secrets.USERNAME)] == "rp_secret_key_42"
    saved = core_settings.load()
    assert saved.endpoint_id == "abc123def456"
    assert saved.gpu_price_per_second == pytest.approx(0.00051)
    assert saved.output_dir == str(tmp_path)
    assert (saved.silence_db, saved.min_silence_ms, saved.attempts) == (-35.0, 700, 2)
    # The key is in the keyring only: no file the app wrote contains it.
    for path in isolated_home.rglob("*"):
        if path.is_file():
            assert b"rp_secret_key_42" not in path.read_bytes(), path

    again = SettingsDialog(saved, keys)
    qtbot.addWidget(again)
    assert again.endpoint_id_edit.text() == "abc123def456"
    assert again.key_edit.text() == "rp_secret_key_42"  # shown masked
    assert again.key_edit.echoMode() == QtWidgets.QLineEdit.EchoMode.Password
    assert "keyring" in again.key_status.text()
    again._show_key.trigger()
    assert again.key_edit.echoMode() == QtWidgets.QLineEdit.EchoMode.Normal
    again.forget_button.click()
    assert secrets.get_key() is None
    assert again.key_edit.text() == ""


def test_without_a_keyring_the_key_is_kept_for_this_session_only(
    qtbot: Any, isolated_home: Path
) -> None:
    # The conftest puts the memory keyring back afterwards.
    keyring.set_keyring(keyring.backends.fail.Keyring())  # type: ignore[no-untyped-call]
    keys = ApiKeys()
    dialog = SettingsDialog(Settings(), keys)
    qtbot.addWidget(dialog)
    assert not dialog.no_keyring_label.isHidden()
    assert "no secure keyring" in dialog.no_keyring_label.text()
    assert dialog.session_only_check.isChecked() and not dialog.session_only_check.isEnabled()
    assert dialog.forget_button.isHidden()
    fill(dialog, endpoint_id_edit="abc123def456", key_edit="rp_session_key_7")
    dialog.accept()
    assert dialog.result() == QtWidgets.QDialog.DialogCode.Accepted

    assert keys.get() == "rp_session_key_7"
    assert keys.source() == ApiKeys.SOURCE_SESSION
    assert secrets.get_key() is None
    for path in isolated_home.rglob("*"):
        if path.is_file():
            assert b"rp_session_key_7" not in path.read_bytes(), path
    assert "this session only" in keys.describe()
    # A new app session knows nothing of it.
    assert ApiKeys().get() is None


def test_the_environment_key_wins_and_is_not_editable(
    qtbot: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(secrets.ENV_VAR, "rp_from_env")
    dialog = SettingsDialog(Settings(), ApiKeys())
    qtbot.addWidget(dialog)
    assert not dialog.key_edit.isEnabled()
    assert secrets.ENV_VAR in dialog.key_status.text()


def test_wrong_values_are_explained_and_nothing_is_saved(qtbot: Any, tmp_path: Path) -> None:
    dialog = SettingsDialog(Settings(), ApiKeys())
    qtbot.addWidget(dialog)
    fill(dialog, endpoint_id_edit="abc123def456", output_edit=str(tmp_path / "missing"))
    dialog.accept()
    assert dialog.result() != QtWidgets.QDialog.DialogCode.Accepted
    assert "does not exist" in dialog.error_label.text()
    fill(dialog, output_edit="", endpoint_url_edit="ftp://example.com")
    dialog.accept()
    assert "http" in dialog.error_label.text()
    assert not core_settings.load().endpoint_id


def test_test_connection_reports_key_and_workers(qtbot: Any, tmp_path: Path) -> None:
    from infinitetalk_gui.core.store import JobStore

    store = JobStore(tmp_path / "jobs.sqlite3")
    controller = RenderController(store)
    try:
        with DemoEndpoint(api_key="right-key") as demo:
            dialog = SettingsDialog(Settings(), ApiKeys(), controller)
            qtbot.addWidget(dialog)
            dialog.test_connection()
            assert "endpoint ID first" in dialog.test_result.text()
            fill(dialog, endpoint_url_edit=demo.url)
            dialog.test_connection()
            assert "API key first" in dialog.test_result.text()
            fill(dialog, key_edit="right-key")
            with qtbot.waitSignal(controller.connectionChecked, timeout=30000) as checked:
                dialog.test_connection()
            assert checked.args[0] is True
            assert "accepted the API key" in dialog.test_result.text()
            fill(dialog, key_edit="wrong-key")
            with qtbot.waitSignal(controller.connectionChecked, timeout=30000) as checked:
                dialog.test_connection()
            assert checked.args[0] is False
            assert "rejected" in dialog.test_result.text().lower()
            dialog.reject()
    finally:
        controller.shutdown(True)
        store.close()


def test_saving_settings_in_the_window_updates_endpoint_and_cuts(
    qtbot: Any, make_window: WindowFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    window = make_window()
    assert [window.endpoint_combo.itemData(i) for i in range(window.endpoint_combo.count())] == [
        "demo",
        "setup",
    ]

    def fake_exec(dialog: SettingsDialog) -> int:
        fill(dialog, endpoint_id_edit="abc123def456", key_edit="k")
        dialog.accept()
        return int(dialog.result())

    monkeypatch.setattr(SettingsDialog, "exec", fake_exec)
    # Choosing "Set up a RunPod endpoint..." opens Settings, then selects the new endpoint.
    window._endpoint_activated(window.endpoint_combo.findData("setup"))
    assert window.endpoint_choice() == "runpod"
    assert "abc123def456" in window.endpoint_combo.currentText()
    assert window.settings.endpoint_id == "abc123def456"


def test_a_malformed_endpoint_id_is_explained(qtbot: Any) -> None:
    dialog = SettingsDialog(Settings(), ApiKeys())
    qtbot.addWidget(dialog)
    fill(dialog, endpoint_id_edit="https://not an id")
    dialog.accept()
    assert dialog.result() != QtWidgets.QDialog.DialogCode.Accepted
    assert "is not a RunPod endpoint id" in dialog.error_label.text()
