"""Start-up fixes for the PyInstaller build (the frozen app); no-ops when run from source."""

from __future__ import annotations

import os
import sys
from collections.abc import MutableMapping


def is_frozen() -> bool:
    return bool(getattr(sys, "frozen", False))


def restore_library_path(env: MutableMapping[str, str]) -> None:
    """Give ``LD_LIBRARY_PATH`` back its value from before the bundle's bootloader ran.

    On Linux the bootloader points it at the bundle (keeping the user's value in
    ``LD_LIBRARY_PATH_ORIG``). This process has already loaded with it, but every child
    inherits it: ``xdg-open`` started by "Open folder" would then run the file manager
    against the bundle's older GLib and fail. Only children see the change.
    """
    original = env.pop("LD_LIBRARY_PATH_ORIG", None)
    if original is not None:
        env["LD_LIBRARY_PATH"] = original
    else:
        env.pop("LD_LIBRARY_PATH", None)


def prepare_frozen_process() -> None:
    """Run first in the frozen app, before the CLI or the GUI is imported."""
    if not is_frozen():
        return
    import multiprocessing  # only the frozen app needs it

    # A frozen app re-executes itself for multiprocessing children: let them take that path.
    multiprocessing.freeze_support()
    if sys.platform.startswith("linux"):
        restore_library_path(os.environ)
    # A windowed Windows executable starts with sys.stdout/sys.stderr set to None: print()
    # quietly drops text, but sys.stderr.write, faulthandler and logging's stream handler
    # raise. The null device lets the same code run windowed, in the console twin and from
    # source.
    for name in ("stdout", "stderr"):
        if getattr(sys, name) is None:
            setattr(sys, name, open(os.devnull, "w", encoding="utf-8"))  # noqa: SIM115
