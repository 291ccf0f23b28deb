#!/usr/bin/env bash
# Build the Linux one-folder app, check it like a user's machine would, and package it.
#
#   packaging/build_linux.sh [DIST_DIR] [WORK_DIR]
#
# 1. pyinstaller build.spec            -> DIST_DIR/infinitetalk-gui/
# 2. packaging/check_bundle.py         -> --smoke (offscreen) and a headless
#    `render --demo` from the bundle, with no ffmpeg on PATH; the MP4 must exist and last
#    as long as the voice clip (both read with the bundled ffmpeg)
# 3. DIST_DIR/infinitetalk-gui-VERSION-linux-ARCH.tar.gz (app + .desktop + installer script)
# 4. the AppImage's AppDir (its AppRun --smoke checked); the .AppImage itself only when
#    appimagetool is on PATH or APPIMAGETOOL names it (it is not installable from Debian
#    or PyPI, so here it is skipped and says so)
# 5. DIST_DIR/build-linux.json: what was built, sizes, timings and the check results
#
# Environment: PYTHON (an interpreter with the app and PyInstaller installed; default: the
# first python3 on PATH), APPIMAGETOOL (path to appimagetool, optional), GZIP_LEVEL (1-9,
# default 6; the test uses 1: a third of the CPU time for a 9 % larger file).
# Needs libpulse0 and libegl1 (QtMultimedia links them) on the build machine.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DIST="$(mkdir -p "${1:-$ROOT/dist}" && cd "${1:-$ROOT/dist}" && pwd)"
WORK="$(mkdir -p "${2:-$ROOT/build/pyinstaller}" && cd "${2:-$ROOT/build/pyinstaller}" && pwd)"
PYTHON="${PYTHON:-$(command -v python3)}"
APP_NAME=infinitetalk-gui
APP_DIR="$DIST/$APP_NAME"
ARCH="$(uname -m)"
GZIP_LEVEL="${GZIP_LEVEL:-6}"

say() { printf '== %s\n' "$*" >&2; }
die() { printf 'build_linux.sh: %s\n' "$*" >&2; exit 1; }

VERSION="$(sed -n 's/^__version__ = "\(.*\)"/\1/p' "$ROOT/infinitetalk_gui/__init__.py")"
[ -n "$VERSION" ] || die "no __version__ in $ROOT/infinitetalk_gui/__init__.py"
"$PYTHON" -c "import PyInstaller" 2>/dev/null \
    || die "$PYTHON has no PyInstaller: pip install -e '.[build]'"

# --- 1. build ---------------------------------------------------------------------------
say "PyInstaller build ($VERSION) -> $APP_DIR"
started=$(date +%s)
"$PYTHON" -m PyInstaller "$ROOT/build.spec" --noconfirm --log-level WARN \
    --distpath "$DIST" --workpath "$WORK"
build_seconds=$(( $(date +%s) - started ))
started=$(date +%s)
[ -x "$APP_DIR/$APP_NAME" ] || die "the build made no $APP_DIR/$APP_NAME"

# --- 2. check the bundle ------------------------------------------------------------------
say "checking the bundle: --smoke and render --demo, no ffmpeg on PATH"
"$PYTHON" "$ROOT/packaging/check_bundle.py" --exe "$APP_DIR/$APP_NAME" --bundle "$APP_DIR" \
    --work "$WORK/check" --report "$WORK/check.json" --expect-version "$VERSION" \
    || die "the bundle failed its checks (details above; report: $WORK/check.json)"
check_seconds=$(( $(date +%s) - started ))
started=$(date +%s)

# --- 3. tar.gz ----------------------------------------------------------------------------
TARBALL="$DIST/$APP_NAME-$VERSION-linux-$ARCH.tar.gz"
say "packing $TARBALL"
stage="$WORK/tar-stage"
rm -rf "$stage" && mkdir -p "$stage"
# Hard links: the stage costs no copy of the ~390 MB bundle.
cp -al "$APP_DIR" "$stage/$APP_NAME" 2>/dev/null || cp -a "$APP_DIR" "$stage/$APP_NAME"
cp "$ROOT/packaging/linux/$APP_NAME.desktop" "$ROOT/packaging/linux/install-desktop-entry.sh" \
    "$stage/$APP_NAME/"
chmod 755 "$stage/$APP_NAME/install-desktop-entry.sh"
compressor=gzip
command -v pigz >/dev/null 2>&1 && compressor=pigz
tar -C "$stage" --owner=0 --group=0 --numeric-owner --sort=name -cf - "$APP_NAME" \
    | "$compressor" "-$GZIP_LEVEL" > "$TARBALL.part"
mv "$TARBALL.part" "$TARBALL"
rm -rf "$stage"
tar_seconds=$(( $(date +%s) - started ))

# --- 4. AppImage ----------------------------------------------------------------------------
say "AppImage"
APPIMAGE_REPORT="$WORK/appimage.json"
"$ROOT/packaging/linux/make_appimage.sh" "$APP_DIR" "$DIST" "$WORK/appimage" "$VERSION" \
    "$APPIMAGE_REPORT"
"$PYTHON" "$ROOT/packaging/check_bundle.py" --exe "$WORK/appimage/AppDir/AppRun" \
    --bundle "$WORK/appimage/AppDir" --work "$WORK/check-appdir" \
    --report "$WORK/check-appdir.json" --expect-version "$VERSION" --skip-render \
    || die "the AppImage's AppDir failed its --smoke check"

# --- 5. report ------------------------------------------------------------------------------
"$PYTHON" - "$DIST/build-linux.json" "$WORK/check.json" "$APPIMAGE_REPORT" \
    "$WORK/check-appdir.json" "$TARBALL" "$VERSION" "$APP_DIR" \
    "$build_seconds" "$check_seconds" "$tar_seconds" <<'EOF'
import json, sys
from pathlib import Path

out, check, appimage, appdir_check, tarball, version, app_dir = sys.argv[1:8]
build_s, check_s, tar_s = (int(x) for x in sys.argv[8:])
report = {
    "version": version,
    "app_dir": app_dir,
    "executable": str(Path(app_dir) / "infinitetalk-gui"),
    "build_seconds": build_s,
    "seconds": {"pyinstaller": build_s, "checks": check_s, "tar.gz": tar_s},
    "check": json.loads(Path(check).read_text()),
    "tarball": tarball,
    "tarball_bytes": Path(tarball).stat().st_size,
    "appimage": json.loads(Path(appimage).read_text()),
    "appdir_check": json.loads(Path(appdir_check).read_text()),
}
report["bundle_bytes"] = report["check"]["bundle_bytes"]
Path(out).write_text(json.dumps(report, indent=2) + "\n")
mb = 1024 * 1024
print(
    f"== built in {build_s} s, checked in {check_s} s, packed in {tar_s} s: bundle {report['bundle_bytes'] / mb:.0f} MiB, "
    f"tar.gz {report['tarball_bytes'] / mb:.0f} MiB, AppImage: "
    f"{report['appimage'].get('appimage') or 'skipped (' + report['appimage']['skipped'] + ')'}",
    file=sys.stderr,
)
EOF
say "report: $DIST/build-linux.json"
