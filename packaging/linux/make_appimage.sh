#!/usr/bin/env bash
# AppImage recipe: lay out an AppDir around the one-folder build, then run appimagetool.
#
#   packaging/linux/make_appimage.sh APP_DIR OUT_DIR WORK_DIR VERSION [REPORT_JSON]
#
# AppDir layout (the AppImage spec's): AppRun, the .desktop file and the icon at the top,
# .DirIcon, the app in usr/lib/infinitetalk-gui/, the menu entry and hicolor icons under
# usr/share/. The AppDir is always built (build_linux.sh runs its AppRun --smoke); the
# .AppImage is made when appimagetool is found (APPIMAGETOOL=path, or on PATH). appimagetool
# ships only as a download from the AppImage project, not from Debian or PyPI: where it is
# missing the step is skipped, said so on stderr and in the report. It is itself an AppImage:
# with no FUSE (containers, CI) set APPIMAGE_EXTRACT_AND_RUN=1.
set -euo pipefail

[ $# -ge 4 ] || { echo "usage: $0 APP_DIR OUT_DIR WORK_DIR VERSION [REPORT_JSON]" >&2; exit 2; }
APP_DIR="$(cd "$1" && pwd)"
OUT_DIR="$(mkdir -p "$2" && cd "$2" && pwd)"
WORK_DIR="$3"
VERSION="$4"
REPORT="${5:-}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
NAME=infinitetalk-gui
ICONS="$ROOT/resources/icons"
ARCH="$(uname -m)"

APPDIR="$WORK_DIR/AppDir"
rm -rf "$APPDIR"
mkdir -p "$APPDIR/usr/lib" "$APPDIR/usr/share/applications" \
    "$APPDIR/usr/share/icons/hicolor/scalable/apps"
cp -al "$APP_DIR" "$APPDIR/usr/lib/$NAME" 2>/dev/null || cp -a "$APP_DIR" "$APPDIR/usr/lib/$NAME"
install -m 755 "$HERE/AppRun" "$APPDIR/AppRun"
install -m 644 "$HERE/$NAME.desktop" "$APPDIR/$NAME.desktop"
install -m 644 "$HERE/$NAME.desktop" "$APPDIR/usr/share/applications/$NAME.desktop"
install -m 644 "$ICONS/$NAME-256.png" "$APPDIR/$NAME.png"
ln -sf "$NAME.png" "$APPDIR/.DirIcon"
install -m 644 "$ICONS/$NAME.svg" "$APPDIR/usr/share/icons/hicolor/scalable/apps/$NAME.svg"
for size in 16 24 32 48 64 128 256 512; do
    install -D -m 644 "$ICONS/$NAME-$size.png" \
        "$APPDIR/usr/share/icons/hicolor/${size}x${size}/apps/$NAME.png"
done
if command -v desktop-file-validate >/dev/null 2>&1; then
    desktop-file-validate "$APPDIR/$NAME.desktop"
fi

TOOL="${APPIMAGETOOL:-$(command -v appimagetool || true)}"
OUT="$OUT_DIR/$NAME-$VERSION-$ARCH.AppImage"
appimage=""
skipped=""
if [ -n "$TOOL" ] && [ -x "$TOOL" ]; then
    # --no-appstream: no AppStream metainfo is shipped, so skip its (networked) validation.
    ARCH="$ARCH" "$TOOL" --no-appstream "$APPDIR" "$OUT"
    appimage="$OUT"
    echo "AppImage: $OUT" >&2
else
    skipped="appimagetool not found (set APPIMAGETOOL or put it on PATH)"
    echo "AppImage: skipped: $skipped; the AppDir is at $APPDIR" >&2
fi
if [ -n "$REPORT" ]; then
    printf '{"appdir": "%s", "appimage": %s, "skipped": %s}\n' "$APPDIR" \
        "$([ -n "$appimage" ] && printf '"%s"' "$appimage" || printf null)" \
        "$([ -n "$skipped" ] && printf '"%s"' "$skipped" || printf null)" > "$REPORT"
fi
