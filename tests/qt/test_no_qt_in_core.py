"""The core and the CLI never load Qt: they must start fast and run headless (STYLE.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Runs in a fresh interpreter: this test process has long since imported PySide6.
PROBE = r"""
import importlib, json, pkgutil, sys
import infinitetalk_gui.core as core
imported = ["infinitetalk_gui.core"]
failed = []
for module in pkgutil.walk_packages(core.__path__, prefix="infinitetalk_gui.core."):
    try:
        importlib.import_module(module.name)
        imported.append(module.name)
    except Exception as error:
        failed.append(f"{module.name}: {error!r}")
import infinitetalk_gui.cli
imported.append("infinitetalk_gui.cli")
qt = sorted(
    name for name in sys.modules
    if name.split(".")[0] in ("PySide6", "shiboken6", "PyQt5", "PyQt6", "PySide2")
)
print(json.dumps({"imported": imported, "failed": failed, "qt": qt}))
"""


def test_core_and_cli_import_without_qt() -> None:
    result = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["failed"] == []
    assert report["qt"] == [], f"Qt was imported by the core or the CLI: {report['qt']}"
    # The walk really covered the core (not an empty package by mistake).
    for name in ("pipeline", "store", "models", "audio", "runpod"):
        assert f"infinitetalk_gui.core.{name}" in report["imported"]
    assert "infinitetalk_gui.cli" in report["imported"]
