"""The one place that knows where files live (platformdirs, so XDG_* variables move them)."""

from __future__ import annotations

import sys
from pathlib import Path

from platformdirs import PlatformDirs

from infinitetalk_gui import APP_NAME


def _dirs() -> PlatformDirs:
    # Built on each call: tests and users move the folders with XDG_* at run time.
    return PlatformDirs(APP_NAME, appauthor=False)


def _ensure(path: str) -> Path:
    result = Path(path)
    result.mkdir(parents=True, exist_ok=True)
    return result


def config_dir() -> Path:
    return _ensure(_dirs().user_config_dir)


def data_dir() -> Path:
    return _ensure(_dirs().user_data_dir)


def cache_dir() -> Path:
    return _ensure(_dirs().user_cache_dir)


def log_dir() -> Path:
    return _ensure(_dirs().user_log_dir)


def settings_file() -> Path:
    return config_dir() / "settings.json"


def jobs_db() -> Path:
    return data_dir() / "jobs.sqlite3"


def job_work_dir(job_id: str) -> Path:
    """Chunk audio and chunk videos of one job; removed when the job ends."""
    return _ensure(str(cache_dir() / "jobs" / job_id))


def log_file() -> Path:
    return log_dir() / "infinitetalk-gui.log"


def resources_dir() -> Path:
    """Icons and demo media: in a frozen build beside the bundle, else shipped in the package."""
    frozen_root = getattr(sys, "_MEIPASS", None)
    if frozen_root:
        return Path(frozen_root) / "resources"
    import infinitetalk_gui.resources as resources

    return Path(next(iter(resources.__path__)))


def demo_portrait() -> Path:
    return resources_dir() / "demo_portrait.png"


def demo_voice() -> Path:
    return resources_dir() / "demo_voice.wav"
