"""Drop zones: real drops with QMimeData URLs; a bad file is refused in words, the old one kept."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from infinitetalk_gui.qt.compat import QtCore, QtWidgets
from infinitetalk_gui.ui.drop_zone import PortraitZone, normalise_envelope
from infinitetalk_gui.ui.main_window import MainWindow
from tests import mediagen
from tests.ui.conftest import drag_enter_event, drop_urls


def test_portrait_drop_is_framed_to_the_chosen_size(
    qtbot: object, window: MainWindow, portrait: Path
) -> None:
    zone = window.portrait_zone
    with qtbot.waitSignal(window.controller.imageAnalysed, timeout=20000):  # type: ignore[attr-defined]
        assert drop_urls(zone, [portrait])
    assert zone.path == portrait
    assert zone.error_text == ""
    framed = zone.view.image()
    assert framed is not None
    assert (framed.width(), framed.height()) == (256, 256)  # the chosen size, padded
    # The 240x320 portrait is fitted (not cropped): the padding at the sides is the pad colour.
    assert framed.pixelColor(2, 128).black() > 200
    assert "240 × 320" in zone.caption.text() and "256 × 256" in zone.caption.text()

    # Another size re-frames the same portrait.
    index = window.size_combo.findData("832x480")
    with qtbot.waitSignal(window.controller.imageAnalysed, timeout=20000):  # type: ignore[attr-defined]
        window.size_combo.setCurrentIndex(index)
    framed = zone.view.image()
    assert framed is not None and (framed.width(), framed.height()) == (832, 480)
    assert zone.path == portrait


def test_a_bad_image_is_refused_and_the_previous_one_kept(
    qtbot: object,
    window: MainWindow,
    portrait: Path,
    not_media: Callable[[str], Path],
) -> None:
    zone = window.portrait_zone
    with qtbot.waitSignal(window.controller.imageAnalysed, timeout=20000):  # type: ignore[attr-defined]
        drop_urls(zone, [portrait])
    fake = not_media("holiday.png")
    with qtbot.waitSignal(window.controller.imageRejected, timeout=20000):  # type: ignore[attr-defined]
        assert drop_urls(zone, [fake])
    assert "holiday.png" in zone.error_text
    assert "Traceback" not in zone.error_text
    assert zone.path == portrait  # kept
    assert zone.view.image() is not None


def test_drops_that_are_not_one_local_file_are_explained(
    qtbot: object, window: MainWindow, portrait: Path, media_dir: Path
) -> None:
    zone = window.portrait_zone
    drop_urls(zone, [portrait, portrait])
    assert "2 items" in zone.error_text and "one portrait file" in zone.error_text
    drop_urls(zone, [media_dir])
    assert "is a folder" in zone.error_text
    drop_urls(zone, ["https://example.com/face.png"])
    assert "not a file on this computer" in zone.error_text
    drop_urls(zone, [media_dir / "gone.png"])
    assert "does not exist" in zone.error_text
    assert zone.path is None and zone.pending is None


def test_text_drags_are_not_accepted(qtbot: object) -> None:
    zone = PortraitZone()
    qtbot.addWidget(zone)  # type: ignore[attr-defined]
    mime = QtCore.QMimeData()
    mime.setText("hello")
    enter = drag_enter_event(QtCore.QPointF(zone.rect().center()), mime)
    QtWidgets.QApplication.sendEvent(zone, enter)
    assert not enter.isAccepted()


def test_voice_drop_shows_duration_waveform_and_cuts(
    qtbot: object, window: MainWindow, voice: Path
) -> None:
    zone = window.voice_zone
    with qtbot.waitSignal(window.controller.audioAnalysed, timeout=30000):  # type: ignore[attr-defined]
        assert drop_urls(zone, [voice])
    assert zone.path == voice
    assert abs(zone.duration_ms - 16000) <= 40
    cuts = zone.view.cuts()
    assert len(cuts) == 2
    assert cuts[0][0] == 0 and cuts[-1][1] == zone.duration_ms
    assert cuts[0][1] == cuts[1][0] and cuts[0][1] % 40 == 0  # contiguous, on the frame grid
    # The cut lies inside a pause of the generated speech (pauses at 8.8-9.6 s).
    assert 8800 <= cuts[0][1] <= 9600
    assert "0:16" in zone.caption.text() and "2 chunks" in zone.caption.text()
    assert "2 chunks" in window.estimate_label.text()

    # A longer chunk length re-plans the cuts: one chunk.
    with qtbot.waitSignal(window.controller.audioAnalysed, timeout=30000):  # type: ignore[attr-defined]
        window.chunk_spin.setValue(45)
    assert len(zone.view.cuts()) == 1
    assert "1 chunk" in zone.caption.text()


def test_a_bad_recording_is_refused_and_the_previous_one_kept(
    qtbot: object,
    window: MainWindow,
    short_voice: Path,
    not_media: Callable[[str], Path],
    media_dir: Path,
) -> None:
    zone = window.voice_zone
    with qtbot.waitSignal(window.controller.audioAnalysed, timeout=30000):  # type: ignore[attr-defined]
        drop_urls(zone, [short_voice])
    for bad in (
        not_media("speech.mp3"),
        mediagen.write_wav(media_dir / "empty.wav", mediagen.speechlike_pcm([])),
        mediagen.portrait(media_dir / "picture.png", 80, 80),
    ):
        with qtbot.waitSignal(window.controller.audioRejected, timeout=30000):  # type: ignore[attr-defined]
            assert drop_urls(zone, [bad])
        assert bad.name in zone.error_text, zone.error_text
        assert zone.path == short_voice
    assert zone.duration_ms == 4000


def test_locked_zones_refuse_drops(qtbot: object, window: MainWindow, portrait: Path) -> None:
    window.portrait_zone.set_locked(True)
    assert not drop_urls(window.portrait_zone, [portrait])
    assert window.portrait_zone.pending is None and window.portrait_zone.path is None


def test_envelope_is_normalised_from_levels_pairs_or_decibels() -> None:
    assert normalise_envelope([0.0, 0.25, 0.5]).tolist() == [0.0, 0.5, 1.0]
    assert normalise_envelope([[-0.5, 0.25], [-0.1, 1.0]]).tolist() == [0.5, 1.0]
    decibels = normalise_envelope([-6.0, 0.0, -120.0])
    assert decibels[1] == 1.0 and 0.49 < decibels[0] < 0.51 and decibels[2] < 1e-5
    assert normalise_envelope([]).size == 0


def test_files_given_on_the_command_line_go_to_their_zones(
    qtbot: object, window: MainWindow, portrait: Path, voice: Path
) -> None:
    from infinitetalk_gui.app import open_files

    with (
        qtbot.waitSignal(window.controller.imageAnalysed, timeout=20000),  # type: ignore[attr-defined]
        qtbot.waitSignal(window.controller.audioAnalysed, timeout=20000),  # type: ignore[attr-defined]
    ):
        open_files(window, [voice, portrait])
    assert window.portrait_zone.path == portrait.absolute()
    assert window.voice_zone.path == voice.absolute()


def test_the_cli_sends_files_and_window_flags_to_the_app() -> None:
    from infinitetalk_gui.cli import _wants_gui

    assert _wants_gui([])
    assert _wants_gui(["--screenshot", "x.png", "--with-demo-job"])
    assert _wants_gui(["--with-demo-job", "--screenshot", "x.png"])
    assert _wants_gui([__file__])
    assert not _wants_gui(["render", "a.png", "b.wav", "-o", "o.mp4"])
    assert not _wants_gui(["--help"])
    assert not _wants_gui(["no-such-command"])
