"""The Linux installer, built for real: packaging/build_linux.sh into a temporary folder.

The script builds the PyInstaller one-folder app, runs its ``--smoke`` and a headless
``render --demo`` with no ffmpeg on PATH (packaging/check_bundle.py), packs the .tar.gz and
the AppImage's AppDir, and reports in DIST/build-linux.json. One build (a minute or two)
serves every test here; each test then checks one promise of the installer.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from infinitetalk_gui import __version__

ROOT = Path(__file__).resolve().parent.parent
BUILD_SCRIPT = ROOT / "packaging" / "build_linux.sh"
APP = "infinitetalk-gui"
# WebEngine alone would add ~200 MB: a bundle past this has pulled in something unwanted.
MAX_BUNDLE_BYTES = 600 * 1024 * 1024

pytestmark = [
    pytest.mark.packaging,
    pytest.mark.skipif(sys.platform != "linux", reason="build_linux.sh builds the Linux bundle"),
]


@pytest.fixture(scope="module")
def build(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    pytest.importorskip("PyInstaller", reason="needs PyInstaller: pip install -e '.[build]'")
    base = tmp_path_factory.mktemp("packaging")
    dist, work = base / "dist", base / "work"
    env = dict(os.environ, PYTHON=sys.executable)
    env.setdefault("GZIP_LEVEL", "1")  # the fastest gzip: the test checks contents, not size
    proc = subprocess.run(
        ["bash", str(BUILD_SCRIPT), str(dist), str(work)],
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )
    assert proc.returncode == 0, f"build_linux.sh failed:\n{proc.stderr[-6000:]}"
    report: dict[str, Any] = json.loads((dist / "build-linux.json").read_text())
    report["dist"] = dist
    report["work"] = work
    yield report
    # About 1 GB (bundle, work files, tarball): pytest would keep it for three runs.
    shutil.rmtree(base, ignore_errors=True)


def app_dir(build: dict[str, Any]) -> Path:
    return Path(build["app_dir"])


def test_bundle_smoke_passes_offline_with_its_own_ffmpeg(build: dict[str, Any]) -> None:
    check = build["check"]
    assert check["ok"] is True
    smoke = check["smoke"]["output"]
    assert smoke["ok"] is True
    assert smoke["multimedia"] is True
    assert smoke["version"] == __version__
    assert smoke["qt"]
    ffmpeg = Path(smoke["ffmpeg"])
    assert ffmpeg.is_relative_to(app_dir(build)), f"{ffmpeg} is not the bundled ffmpeg"
    assert os.access(ffmpeg, os.X_OK)
    # The runs saw a PATH with nothing on it, so no system ffmpeg could have been used.
    assert shutil.which("ffmpeg", path=check["env_path"]) is None


def test_bundle_renders_the_demo_to_the_length_of_the_voice(build: dict[str, Any]) -> None:
    from infinitetalk_gui.core.ffmpeg import probe

    render = build["check"]["render"]
    output = Path(render["output"])
    assert output.is_file()
    assert abs(render["video_duration_s"] - render["audio_duration_s"]) <= 0.25
    # Read again here, with the venv's ffmpeg rather than the bundle's.
    video = probe(output)
    voice = probe(build["check"]["layout"]["demo_voice"])
    assert video.has_video and video.has_audio
    assert video.video_codec == "h264"
    assert video.duration_s is not None and voice.duration_s is not None
    assert abs(video.duration_s - voice.duration_s) <= 0.25


def test_bundled_window_renders_the_demo_with_its_endpoint_process(
    build: dict[str, Any],
) -> None:
    # The window's demo endpoint runs in a child process: a frozen app starts it by running
    # its own executable again (multiprocessing's freeze support).
    window = build["check"]["window_demo"]
    shot = Path(window["screenshot"])
    assert shot.read_bytes().startswith(b"\x89PNG")
    assert window["bytes"] > 10_000


def test_bundle_carries_keyring_metadata_multimedia_and_resources(build: dict[str, Any]) -> None:
    internal = app_dir(build) / "_internal"
    entry_points = next(internal.glob("keyring-*.dist-info")) / "entry_points.txt"
    assert "keyring.backends.SecretService" in entry_points.read_text()
    assert (internal / "PySide6/Qt/plugins/multimedia/libffmpegmediaplugin.so").is_file()
    assert list((internal / "imageio_ffmpeg" / "binaries").glob("ffmpeg-*"))
    resources = internal / "resources"
    for name in ("demo_portrait.png", "demo_voice.wav", "icons/infinitetalk-gui.svg"):
        assert (resources / name).is_file(), name
    assert (resources / "icons" / "infinitetalk-gui-256.png").is_file()


def test_bundle_leaves_out_what_the_app_does_not_use(build: dict[str, Any]) -> None:
    internal = app_dir(build) / "_internal"
    qt = internal / "PySide6" / "Qt"
    names = {p.name for p in internal.rglob("*")}
    for unwanted in ("QtWebEngineCore", "Qt3DCore", "QtQuick3D", "QtCharts", "QtPdf"):
        assert not any(unwanted in name for name in names), unwanted
    assert not (qt / "qml").exists()
    # The optional REST service and its dependencies, and dev tools, stay out.
    top_level = {p.name for p in internal.iterdir()}
    for unwanted in ("fastapi", "uvicorn", "boto3", "botocore", "pytest", "mypy", "yaml"):
        assert unwanted not in top_level, unwanted
    plugins = {p.name for p in (qt / "plugins").rglob("*.so")}
    assert "libqgtk3.so" not in plugins
    assert "libqpdf.so" not in plugins
    assert not any("virtualkeyboard" in name for name in plugins)
    assert {"libqxcb.so", "libqwayland.so", "libqoffscreen.so"} <= plugins
    assert build["bundle_bytes"] < MAX_BUNDLE_BYTES


def test_bundled_cli_explains_that_serve_needs_the_extra(
    build: dict[str, Any], tmp_path: Path
) -> None:
    # The REST service is left out of the bundle: asking for it must not end in a traceback.
    env = {"HOME": str(tmp_path), "PATH": "/nonexistent", "XDG_CONFIG_HOME": str(tmp_path)}
    proc = subprocess.run(
        [str(app_dir(build) / APP), "serve"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert "server" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_tarball_holds_the_app_and_its_menu_entry(build: dict[str, Any]) -> None:
    tarball = Path(build["tarball"])
    assert tarball.name == f"{APP}-{__version__}-linux-{platform.machine()}.tar.gz"
    with tarfile.open(tarball, "r:gz") as archive:
        members = {member.name: member for member in archive.getmembers()}
    exe = members[f"{APP}/{APP}"]
    assert exe.isfile() and exe.mode & 0o111
    assert exe.uid == 0 and exe.gid == 0
    for name in (
        f"{APP}.desktop",
        "install-desktop-entry.sh",
        "_internal/resources/demo_voice.wav",
    ):
        assert f"{APP}/{name}" in members, name
    assert members[f"{APP}/install-desktop-entry.sh"].mode & 0o111
    assert all(name.startswith(f"{APP}/") or name == APP for name in members)


def test_desktop_entry_installs_and_removes(build: dict[str, Any], tmp_path: Path) -> None:
    # The unpacked tarball's layout: the app folder plus the two desktop files.
    unpacked = tmp_path / "Apps" / "Infinite Talk"
    unpacked.mkdir(parents=True)
    (unpacked / APP).symlink_to(app_dir(build) / APP)
    (unpacked / "_internal").symlink_to(app_dir(build) / "_internal")
    for name in (f"{APP}.desktop", "install-desktop-entry.sh"):
        shutil.copy2(ROOT / "packaging" / "linux" / name, unpacked / name)
    data = tmp_path / "share"
    env = dict(os.environ, XDG_DATA_HOME=str(data), HOME=str(tmp_path))
    script = str(unpacked / "install-desktop-entry.sh")
    subprocess.run(["sh", script], env=env, check=True, capture_output=True)

    entry = data / "applications" / f"{APP}.desktop"
    assert f'Exec="{unpacked}/{APP}"' in entry.read_text()
    assert (data / "icons/hicolor/256x256/apps" / f"{APP}.png").is_file()
    assert (data / "icons/hicolor/scalable/apps" / f"{APP}.svg").is_file()
    if shutil.which("desktop-file-validate"):
        subprocess.run(["desktop-file-validate", str(entry)], check=True)

    subprocess.run(["sh", script, "--remove"], env=env, check=True, capture_output=True)
    assert not entry.exists()
    assert not (data / "icons/hicolor/256x256/apps" / f"{APP}.png").exists()


def test_appimage_recipe(build: dict[str, Any]) -> None:
    appdir = Path(build["appimage"]["appdir"])
    assert os.access(appdir / "AppRun", os.X_OK)
    assert (appdir / f"{APP}.desktop").is_file()
    assert (appdir / ".DirIcon").resolve() == (appdir / f"{APP}.png").resolve()
    assert (appdir / "usr" / "lib" / APP / APP).is_file()
    assert (appdir / "usr/share/icons/hicolor/scalable/apps" / f"{APP}.svg").is_file()
    # Its AppRun started the app and passed --smoke, with nothing on PATH.
    assert build["appdir_check"]["ok"] is True
    assert build["appdir_check"]["smoke"]["output"]["ok"] is True
    if build["appimage"]["appimage"]:
        assert Path(build["appimage"]["appimage"]).is_file()
    else:
        assert "appimagetool" in build["appimage"]["skipped"]


def test_frozen_keyring_finds_the_secret_service(build: dict[str, Any], tmp_path: Path) -> None:
    """Without keyring's metadata in the bundle this silently reports no backend."""
    if not (shutil.which("dbus-run-session") and shutil.which("gnome-keyring-daemon")):
        pytest.skip("needs dbus-run-session and gnome-keyring-daemon (apt: dbus gnome-keyring)")
    exe = app_dir(build) / APP
    script = (
        "echo -n test | gnome-keyring-daemon --unlock --components=secrets >/dev/null 2>&1; "
        f'"{exe}" --smoke'
    )
    env = {
        "HOME": str(tmp_path),
        "PATH": os.environ["PATH"],
        "QT_QPA_PLATFORM": "offscreen",
        "XDG_RUNTIME_DIR": str(tmp_path),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "XDG_DATA_HOME": str(tmp_path / "data"),
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
        "XDG_STATE_HOME": str(tmp_path / "state"),
    }
    proc = subprocess.run(
        ["dbus-run-session", "--", "sh", "-c", script],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    smoke = json.loads(proc.stdout.strip().splitlines()[-1])
    assert smoke["keyring_backend"] == "keyring.backends.SecretService.Keyring"


def test_restore_library_path_gives_children_the_users_value() -> None:
    from infinitetalk_gui._frozen import restore_library_path

    env = {"LD_LIBRARY_PATH": "/opt/app/_internal", "LD_LIBRARY_PATH_ORIG": "/usr/local/lib"}
    restore_library_path(env)
    assert env == {"LD_LIBRARY_PATH": "/usr/local/lib"}
    env = {"LD_LIBRARY_PATH": "/opt/app/_internal", "HOME": "/home/u"}
    restore_library_path(env)
    assert env == {"HOME": "/home/u"}
