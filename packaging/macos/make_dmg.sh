#!/usr/bin/env bash
# Turn the PyInstaller .app into a drag-to-Applications .dmg; optionally sign and notarize.
#
#   packaging/macos/make_dmg.sh "dist/InfiniteTalk GUI.app" OUT_DIR VERSION
#
# Writes OUT_DIR/infinitetalk-gui-VERSION-macos-ARCH.dmg and prints its path.
#
# Signing is optional and driven by the environment (nothing set: the ad-hoc signature
# PyInstaller gives every arm64 build stays, and Gatekeeper treats the app as from an
# unidentified developer; see docs/PACKAGING.md):
#   MACOS_SIGN_IDENTITY     "Developer ID Application: NAME (TEAMID)", a certificate in the
#                           keychain. Signs every binary inside, then the app, with the
#                           hardened runtime and a secure timestamp, then the .dmg.
#   MACOS_KEYCHAIN          keychain holding that certificate (optional; CI imports it into
#                           a temporary keychain).
# Notarization (needs MACOS_SIGN_IDENTITY), either
#   MACOS_NOTARY_PROFILE    a profile stored with `xcrun notarytool store-credentials`, or
#   MACOS_NOTARY_APPLE_ID, MACOS_NOTARY_TEAM_ID, MACOS_NOTARY_PASSWORD (an app-specific
#                           password). The .dmg is submitted, waited for, and stapled.
set -euo pipefail

[ $# -eq 3 ] || { echo "usage: $0 APP_BUNDLE OUT_DIR VERSION" >&2; exit 2; }
APP="${1%/}"
OUT_DIR="$2"
VERSION="$3"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VOLUME="InfiniteTalk GUI"
ARCH="$(uname -m)"

[ -d "$APP/Contents/MacOS" ] || { echo "$APP: not an .app bundle (build it first)" >&2; exit 1; }
mkdir -p "$OUT_DIR"
DMG="$(cd "$OUT_DIR" && pwd)/infinitetalk-gui-$VERSION-macos-$ARCH.dmg"

sign() {
    local args=(--force --timestamp --options runtime --entitlements "$HERE/entitlements.plist"
        --sign "$MACOS_SIGN_IDENTITY")
    [ -n "${MACOS_KEYCHAIN:-}" ] && args+=(--keychain "$MACOS_KEYCHAIN")
    codesign "${args[@]}" "$@"
}

if [ -n "${MACOS_SIGN_IDENTITY:-}" ]; then
    echo "signing $APP as $MACOS_SIGN_IDENTITY" >&2
    # Inside out: every Mach-O file first (Qt frameworks' binaries, plugins, Python
    # extensions, the ffmpeg executable), then the frameworks, then the app. --deep would
    # skip the files PyInstaller keeps outside the standard bundle locations.
    while IFS= read -r -d '' file; do
        if file -b "$file" | grep -q "Mach-O"; then
            sign "$file"
        fi
    done < <(find "$APP/Contents" -type f ! -path "$APP/Contents/MacOS/*" -print0)
    while IFS= read -r -d '' framework; do
        sign "$framework"
    done < <(find "$APP/Contents" -type d -name "*.framework" -print0 | sort -rz)
    sign "$APP"
    codesign --verify --strict --verbose=2 "$APP"
else
    echo "MACOS_SIGN_IDENTITY is not set: the app keeps its ad-hoc signature (not notarized)" >&2
fi

# The volume: the app and a link to /Applications to drag it onto.
stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
ditto "$APP" "$stage/$(basename "$APP")"
ln -s /Applications "$stage/Applications"
rm -f "$DMG"
hdiutil create -volname "$VOLUME" -srcfolder "$stage" -fs HFS+ -format UDZO \
    -imagekey zlib-level=9 -ov "$DMG" >&2

if [ -n "${MACOS_SIGN_IDENTITY:-}" ]; then
    codesign --force --timestamp --sign "$MACOS_SIGN_IDENTITY" \
        ${MACOS_KEYCHAIN:+--keychain "$MACOS_KEYCHAIN"} "$DMG"
    notary=()
    if [ -n "${MACOS_NOTARY_PROFILE:-}" ]; then
        notary=(--keychain-profile "$MACOS_NOTARY_PROFILE")
    elif [ -n "${MACOS_NOTARY_APPLE_ID:-}" ]; then
        notary=(--apple-id "$MACOS_NOTARY_APPLE_ID" --team-id "${MACOS_NOTARY_TEAM_ID:?}"
            --password "${MACOS_NOTARY_PASSWORD:?}")
    fi
    if [ ${#notary[@]} -gt 0 ]; then
        echo "notarizing $DMG (this waits for Apple's answer)" >&2
        xcrun notarytool submit "$DMG" "${notary[@]}" --wait
        xcrun stapler staple "$DMG"
        spctl --assess --type open --context context:primary-signature --verbose "$DMG" || true
    else
        echo "no MACOS_NOTARY_* credentials: signed but not notarized" >&2
    fi
fi
echo "$DMG"
