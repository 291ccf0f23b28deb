#!/bin/sh
# Add InfiniteTalk GUI to this user's application menu (no root needed), or remove it.
#
#   ./install-desktop-entry.sh            install (run it from the unpacked folder)
#   ./install-desktop-entry.sh --remove   remove the menu entry and icons again
#
# The app itself stays where it was unpacked; move the folder first, then run this.
set -eu

HERE="$(cd "$(dirname "$0")" && pwd)"
DATA="${XDG_DATA_HOME:-$HOME/.local/share}"
NAME=infinitetalk-gui
ICONS="$HERE/_internal/resources/icons"

if [ "${1:-}" = "--remove" ]; then
    rm -f "$DATA/applications/$NAME.desktop" "$DATA/icons/hicolor/scalable/apps/$NAME.svg"
    for size in 16 24 32 48 64 128 256 512; do
        rm -f "$DATA/icons/hicolor/${size}x${size}/apps/$NAME.png"
    done
    echo "Removed the InfiniteTalk GUI menu entry."
    exit 0
fi

[ -x "$HERE/$NAME" ] || { echo "$HERE/$NAME is missing: run this from the unpacked folder." >&2; exit 1; }
mkdir -p "$DATA/applications" "$DATA/icons/hicolor/scalable/apps"
for size in 16 24 32 48 64 128 256 512; do
    mkdir -p "$DATA/icons/hicolor/${size}x${size}/apps"
    cp "$ICONS/$NAME-$size.png" "$DATA/icons/hicolor/${size}x${size}/apps/$NAME.png"
done
cp "$ICONS/$NAME.svg" "$DATA/icons/hicolor/scalable/apps/$NAME.svg"
# Exec must name this folder's executable: the menu has no PATH entry for it. Quoted, as
# the Desktop Entry spec asks, in case the folder's path has spaces.
here_escaped="$(printf '%s' "$HERE" | sed 's/[\\|&]/\\&/g')"
sed "s|^Exec=.*|Exec=\"$here_escaped/$NAME\"|" "$HERE/$NAME.desktop" > "$DATA/applications/$NAME.desktop"
# Refresh the menu and icon caches where the desktop keeps them; harmless where it doesn't.
if command -v update-desktop-database >/dev/null 2>&1; then
    update-desktop-database "$DATA/applications" 2>/dev/null || true
fi
if command -v gtk-update-icon-cache >/dev/null 2>&1; then
    gtk-update-icon-cache -q "$DATA/icons/hicolor" 2>/dev/null || true
fi
echo "InfiniteTalk GUI is in your application menu (remove with: $0 --remove)."
