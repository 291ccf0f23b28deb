"""Saved settings: a small JSON file in the config dir, written atomically."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from infinitetalk_gui.core import paths
from infinitetalk_gui.core.errors import ConfigError
from infinitetalk_gui.core.models import DEFAULT_PROMPT, parse_size


@dataclass
class Settings:
    endpoint_id: str | None = None
    endpoint_url: str | None = None
    gpu_price_per_second: float = 0.00034
    silence_db: float = -40.0
    min_silence_ms: int = 500
    attempts: int = 4
    concurrency: int = 3
    chunk_seconds: float = 45.0
    size: str = "512x512"
    prompt: str = DEFAULT_PROMPT
    pad_color: str = "black"
    output_dir: str | None = None
    execution_timeout_s: int = 1200
    ffmpeg_path: str | None = None

    @classmethod
    def keys(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    def get(self, key: str) -> Any:
        _check_key(key)
        return getattr(self, key)

    def set(self, key: str, text: str | None) -> None:
        """Set from user text (the CLI's ``config set``); an empty value clears optional keys."""
        _check_key(key)
        setattr(self, key, _parse(key, text))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_OPTIONAL = {"endpoint_id", "endpoint_url", "output_dir", "ffmpeg_path"}
_POSITIVE_INT = {"min_silence_ms", "attempts", "concurrency", "execution_timeout_s"}


def _check_key(key: str) -> None:
    if key not in set(Settings.keys()):
        raise ConfigError(f"unknown setting '{key}'. Known settings: {', '.join(Settings.keys())}")


def _parse(key: str, text: str | None) -> Any:
    if text is None or text.strip() == "":
        if key in _OPTIONAL:
            return None
        raise ConfigError(f"'{key}' needs a value")
    text = text.strip()
    try:
        if key in _POSITIVE_INT:
            value: Any = int(text)
            if value < 1:
                raise ValueError
            if key == "concurrency" and value > 32:
                raise ConfigError("concurrency must be between 1 and 32")
            return value
        if key in {"gpu_price_per_second", "chunk_seconds", "silence_db"}:
            number = float(text)
            if key == "gpu_price_per_second" and number < 0:
                raise ValueError
            if key == "chunk_seconds" and not 10 <= number <= 120:
                raise ConfigError("chunk_seconds must be between 10 and 120")
            if key == "silence_db" and not -90 <= number < 0:
                raise ConfigError("silence_db must be between -90 and 0 (dBFS)")
            return number
    except ValueError:
        raise ConfigError(f"'{text}' is not a valid value for {key}") from None
    if key == "size":
        try:
            width, height = parse_size(text)
        except ValueError as error:
            raise ConfigError(str(error)) from None
        return f"{width}x{height}"
    if key == "endpoint_url" and not text.startswith(("http://", "https://")):
        raise ConfigError("endpoint_url must start with http:// or https://")
    return text


def load(path: Path | None = None) -> Settings:
    path = path or paths.settings_file()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return Settings()
    except (OSError, ValueError) as error:
        raise ConfigError(
            f"the settings file {path} cannot be read ({error}); fix or delete it"
        ) from None
    settings = Settings()
    if isinstance(data, dict):
        known = set(Settings.keys())
        for key, value in data.items():
            if key in known:
                setattr(settings, key, value)
    return settings


def save(settings: Settings, path: Path | None = None) -> None:
    path = path or paths.settings_file()
    atomic_write_text(path, json.dumps(settings.to_dict(), indent=2) + "\n")


def atomic_write_text(path: Path, text: str) -> None:
    """Write beside the target, then rename: a crash never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
