"""Small widgets the panels share."""

from __future__ import annotations

from infinitetalk_gui.qt.compat import QtCore, QtWidgets


def empty_state_label(title: str, body: str) -> QtWidgets.QLabel:
    """The centred, greyed text a panel shows before it has anything (``body`` is rich text)."""
    label = QtWidgets.QLabel(f"<p style='font-size:12pt'><b>{title}</b></p><p>{body}</p>")
    label.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
    label.setEnabled(False)
    return label
