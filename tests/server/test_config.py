"""Configuration: flags > environment > .env > saved settings; bad values are named."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from infinitetalk_gui.core import settings as settings_mod
from infinitetalk_gui.core.errors import ConfigError
from infinitetalk_gui.server.config import is_loopback, load_config

ROOT = Path(__file__).resolve().parents[2]


def test_precedence(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text(
        "PORT=9000\nRUNPOD_ENDPOINT_ID=from-file\nRUNPOD_API_KEY=file-key\n"
        "CHUNK_TARGET_SEC=30\nS3_BUCKET=b\nLOG_FORMAT=text\n# a comment\n"
    )
    saved = settings_mod.Settings(endpoint_id="saved", concurrency=5, size="480x832")
    config = load_config(environ={"PORT": "9100"}, env_file=env_file, saved=saved)
    assert config.port == 9100  # the environment wins over .env
    assert config.endpoint_url == "https://api.runpod.ai/v2/from-file"  # .env wins over saved
    assert config.api_key == "file-key" and "file-key" not in repr(config)
    assert config.render.chunk_seconds == 30 and config.render.concurrency == 5
    assert (config.render.width, config.render.height) == (480, 832)
    assert config.s3_bucket == "b" and config.log_format == "text"
    assert (
        load_config(port=8081, environ={"PORT": "9100"}, env_file=env_file, saved=saved).port
        == 8081
    )

    only_saved = load_config(environ={}, env_file=tmp_path / "none", saved=saved)
    assert only_saved.endpoint_url == "https://api.runpod.ai/v2/saved" and only_saved.port == 8080
    url_wins = load_config(
        environ={"RUNPOD_ENDPOINT_URL": "http://127.0.0.1:9/", "RUNPOD_ENDPOINT_ID": "x"},
        env_file=env_file,
        saved=saved,
    )
    assert url_wins.endpoint_url == "http://127.0.0.1:9"


def test_service_settings(tmp_path: Path) -> None:
    config = load_config(
        environ={
            "API_TOKEN": "t",
            "CORS_ORIGINS": "https://a.test, https://b.test",
            "RATE_LIMIT_PER_SEC": "0",
            "MAX_BODY_MB": "1.5",
            "INLINE_VIDEO_MAX_MB": "0",
            "MAX_CONCURRENT_JOBS": "4",
            "MAX_CONCURRENT_CHUNKS": "2",
            "TEMP_DIR": str(tmp_path / "t"),
            "HOST": "0.0.0.0",
            "JOB_TIMEOUT_SEC": "600",
        },
        env_file=tmp_path / "none",
        demo=True,
    )
    assert config.cors_origins == ("https://a.test", "https://b.test")
    assert config.rate_limit_per_s == 0 and config.max_body_bytes == 1_500_000
    assert config.inline_video_max_bytes == 0 and config.max_concurrent_jobs == 4
    assert config.render.concurrency == 2 and config.render.timeout_s == 600
    assert config.temp_dir == tmp_path / "t" and config.host == "0.0.0.0"
    assert config.demo and config.render.demo and config.endpoint_url is None
    config.check()  # a token, so listening on every interface is allowed


@pytest.mark.parametrize(
    ("name", "value", "words"),
    [
        ("PORT", "abc", "PORT='abc' is not a whole number"),
        ("PORT", "70000", "PORT=70000 is out of range"),
        ("CHUNK_TARGET_SEC", "5", "CHUNK_TARGET_SEC=5 is out of range"),
        ("MAX_CONCURRENT_CHUNKS", "0", "MAX_CONCURRENT_CHUNKS=0 is out of range"),
        ("RATE_LIMIT_PER_SEC", "fast", "is not a number"),
        ("LOG_FORMAT", "xml", "LOG_FORMAT='xml' is not allowed"),
    ],
)
def test_bad_values_are_named(tmp_path: Path, name: str, value: str, words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        load_config(environ={name: value}, env_file=tmp_path / "none", demo=True)


def test_api_key_from_the_keyring(tmp_path: Path) -> None:
    from infinitetalk_gui.core import secrets

    secrets.set_key("ring-key")
    config = load_config(
        environ={"RUNPOD_ENDPOINT_ID": "e"},
        env_file=tmp_path / "none",
        saved=settings_mod.Settings(),
    )
    assert config.api_key == "ring-key"
    config.check()


def test_loopback() -> None:
    assert all(is_loopback(h) for h in ("127.0.0.1", "localhost", "::1", "[::1]", "127.8.0.1"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "::", "192.168.1.2", "example.org", ""))


def test_server_never_imports_qt() -> None:
    code = "import sys, infinitetalk_gui.server; sys.exit('PySide6' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT).returncode == 0


def test_every_variable_is_documented() -> None:
    from infinitetalk_gui.server.config import ENV_VARS

    guide = (ROOT / "docs" / "SERVER.md").read_text(encoding="utf-8")
    missing = [name for name in ENV_VARS if f"| `{name}` |" not in guide]
    assert not missing, f"docs/SERVER.md does not describe {missing}"
