"""Replaces PyInstaller's own QtGui hook (build.spec's hookspath wins over it): the same
collection, minus Qt plugins a desktop app never loads.

Dropping them here, before PyInstaller follows shared-library dependencies, also keeps out
the libraries only they link:
- platformthemes/qgtk3: would pull GTK, Pango, Cairo and GDK-Pixbuf from the build machine,
  and load the user's GTK modules against the bundle's older GLib (a classic crash). Qt
  falls back to its XDG desktop portal theme, which still gives native file dialogs.
- imageformats/qpdf: pulls libQt6Pdf for PDF "images" the app never opens.
- platforminputcontexts/qtvirtualkeyboard, platforms eglfs/linuxfb/vnc/minimal/vkkhrdisplay,
  egldeviceintegrations: on-screen keyboards and framebuffer output for embedded devices.
"""

import re

from PyInstaller.utils.hooks.qt import add_qt6_dependencies

hiddenimports, binaries, datas = add_qt6_dependencies(__file__)

_UNUSED = re.compile(
    r"/plugins/("
    r"platformthemes/[^/]*qgtk3"
    r"|imageformats/[^/]*qpdf"
    r"|platforminputcontexts/[^/]*virtualkeyboard"
    r"|platforms/[^/]*(eglfs|linuxfb|minimal|vnc|vkkhrdisplay)"
    r"|egldeviceintegrations/"
    r")",
    re.IGNORECASE,
)
binaries = [(src, dest) for src, dest in binaries if not _UNUSED.search(src.replace("\\", "/"))]
