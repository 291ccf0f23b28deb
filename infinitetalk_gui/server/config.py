"""The service's configuration: environment, then a ``.env`` file, then the saved settings.

Names follow the original plan (``PORT``, ``RUNPOD_API_KEY``, ``RUNPOD_ENDPOINT_ID``,
``TEMP_DIR``, ``MAX_CONCURRENT_CHUNKS``, ``CHUNK_TARGET_SEC``, ``S3_BUCKET``, ``S3_REGION``)
plus the CLI's ``RUNPOD_ENDPOINT_URL`` and the service's own knobs (see ``ENV_VARS``). The
process environment wins over ``.env``, which wins over the saved settings. Nothing here
touches ``os.environ``: the merged values are passed on explicitly.
"""

from __future__ import annotations

import ipaddress
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from infinitetalk_gui.core import paths, secrets
from infinitetalk_gui.core import settings as settings_mod
from infinitetalk_gui.core.errors import ConfigError
from infinitetalk_gui.core.models import RenderSettings, parse_size
from infinitetalk_gui.core.pipeline import resolve_endpoint

MB = 1_000_000
DEFAULT_PORT = 8080
DEFAULT_HOST = "127.0.0.1"

# name -> what it sets (shown by docs/SERVER.md; kept here so the two cannot drift apart)
ENV_VARS: dict[str, str] = {
    "HOST": "interface to listen on (127.0.0.1); any other than loopback needs API_TOKEN",
    "PORT": "port to listen on (8080)",
    "API_TOKEN": "clients must send 'Authorization: Bearer <token>' (required off loopback)",
    "RUNPOD_API_KEY": "the RunPod API key (else the OS keyring)",
    "RUNPOD_ENDPOINT_ID": "the RunPod endpoint id",
    "RUNPOD_ENDPOINT_URL": "the endpoint base URL (wins over RUNPOD_ENDPOINT_ID)",
    "TEMP_DIR": "uploads and finished videos (the user cache folder)",
    "MAX_CONCURRENT_CHUNKS": "chunks of one job in flight on RunPod (saved setting, 3)",
    "MAX_CONCURRENT_JOBS": "jobs rendered at once; others wait IN_QUEUE (2)",
    "CHUNK_TARGET_SEC": "target chunk length in seconds, 10-120 (saved setting, 45)",
    "JOB_TIMEOUT_SEC": "time limit for a whole job in seconds (none)",
    "S3_BUCKET": "bucket for push_to_s3",
    "S3_REGION": "its region",
    "S3_ENDPOINT_URL": "an S3-compatible endpoint (MinIO...); AWS when unset",
    "S3_PREFIX": "key prefix for pushed videos (infinitetalk/)",
    "S3_PUBLIC_URL": "public base URL of the bucket; unset: presigned URLs (private bucket)",
    "S3_URL_EXPIRES_SEC": "lifetime of a presigned URL (86400)",
    "LOG_FORMAT": "json or text (json)",
    "LOG_LEVEL": "debug, info, warning, error (info)",
    "CORS_ORIGINS": "comma-separated allowed origins, or * (none)",
    "RATE_LIMIT_PER_SEC": "requests per second per client, 0 = off (20)",
    "MAX_BODY_MB": "largest request body in MB (200)",
    "INLINE_VIDEO_MAX_MB": "largest video returned inline as video_base64, in MB (50)",
    "RESULT_TTL_HOURS": "how long finished jobs' videos are kept (24)",
    "WEBHOOK_RETRIES": "delivery attempts per webhook (5)",
    "WEBHOOK_SECRET": "signs webhook bodies (X-InfiniteTalk-Signature: sha256=HMAC)",
    "DEMO_LATENCY_SEC": "seconds per chunk on the demo endpoint, with --demo (1.0)",
    "ENV_FILE": "the .env file to read (./.env)",
}


@dataclass(frozen=True)
class ServerConfig:
    """Everything the service needs; built by :func:`load_config` or directly in tests."""

    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    demo: bool = False
    demo_latency_s: float = 1.0
    endpoint_url: str | None = None
    api_key: str | None = field(default=None, repr=False)
    api_token: str | None = field(default=None, repr=False)
    temp_dir: Path = field(default_factory=lambda: paths.cache_dir() / "server")
    # Defaults for each job's RenderSettings (endpoint_url and size are filled per job).
    render: RenderSettings = field(default_factory=lambda: RenderSettings(endpoint_url=""))
    max_concurrent_jobs: int = 2
    s3_bucket: str | None = None
    s3_region: str | None = None
    s3_endpoint_url: str | None = None
    s3_prefix: str = "infinitetalk/"
    s3_public_url: str | None = None
    s3_url_expires_s: int = 86400
    log_format: str = "json"
    log_level: str = "info"
    cors_origins: tuple[str, ...] = ()
    rate_limit_per_s: float = 20.0
    max_body_bytes: int = 200 * MB
    inline_video_max_bytes: int = 50 * MB
    result_ttl_s: float = 24 * 3600
    webhook_retries: int = 5
    webhook_backoff_s: float = 1.0
    webhook_secret: str | None = field(default=None, repr=False)
    shutdown_grace_s: float = 5.0  # with 2 s for open requests: SIGTERM ends in < 10 s

    def with_changes(self, **changes: object) -> ServerConfig:
        return replace(self, **changes)  # type: ignore[arg-type]

    @property
    def loopback(self) -> bool:
        return is_loopback(self.host)

    def check(self) -> None:
        """Refuse to start a service that cannot work or would be open to the network."""
        if not self.loopback and not self.api_token:
            raise ConfigError(
                f"Listening on {self.host} (not loopback) needs a token: set API_TOKEN, and "
                "clients send 'Authorization: Bearer <token>'. Or listen on 127.0.0.1."
            )
        if self.demo:
            return
        if not self.endpoint_url:
            raise ConfigError(
                "No RunPod endpoint is set: set RUNPOD_ENDPOINT_ID (or RUNPOD_ENDPOINT_URL), or "
                "save one with 'infinitetalk-gui config set endpoint_id ID'. To try the service "
                "without an account, add --demo."
            )
        if not self.api_key:
            raise ConfigError(secrets.MISSING_KEY)


def is_loopback(host: str) -> bool:
    """Only addresses that other machines cannot reach count; a host name other than
    localhost is treated as reachable (it may resolve to anything)."""
    host = host.strip().strip("[]")
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def read_env_file(path: Path) -> dict[str, str]:
    """``KEY=value`` lines of a .env file (python-dotenv's syntax); {} when there is none."""
    if not path.is_file():
        return {}
    from dotenv import dotenv_values

    return {k: v for k, v in dotenv_values(path).items() if v is not None}


def load_config(
    *,
    host: str | None = None,
    port: int | None = None,
    demo: bool = False,
    environ: Mapping[str, str] | None = None,
    env_file: Path | None = None,
    saved: settings_mod.Settings | None = None,
) -> ServerConfig:
    """Flags > process environment > .env file > saved settings > defaults."""
    process = dict(os.environ if environ is None else environ)
    dotenv_path = env_file or Path(process.get("ENV_FILE") or ".env")
    env = {**read_env_file(dotenv_path), **process}
    saved = saved if saved is not None else settings_mod.load()
    reader = _Reader(env)

    try:
        width, height = parse_size(saved.size)
    except ValueError as error:
        raise ConfigError(f"the saved size: {error}") from None
    chunk_s = reader.number("CHUNK_TARGET_SEC", saved.chunk_seconds, low=10, high=120)
    render = RenderSettings(
        endpoint_url="",
        width=width,
        height=height,
        prompt=saved.prompt,
        concurrency=reader.integer("MAX_CONCURRENT_CHUNKS", saved.concurrency, low=1, high=32),
        chunk_seconds=chunk_s,
        silence_db=saved.silence_db,
        min_silence_ms=saved.min_silence_ms,
        attempts=saved.attempts,
        timeout_s=reader.optional_number("JOB_TIMEOUT_SEC", low=1),
        execution_timeout_ms=saved.execution_timeout_s * 1000,
        pad_color=saved.pad_color,
        gpu_price_per_second=saved.gpu_price_per_second,
        demo=demo,
    )
    endpoint = None
    api_key = None
    if not demo:
        endpoint = resolve_endpoint(
            endpoint_id=reader.text("RUNPOD_ENDPOINT_ID"),
            endpoint_url=reader.text("RUNPOD_ENDPOINT_URL"),
            settings=saved,
        )
        api_key = reader.text(secrets.ENV_VAR) or secrets.get_key()
    log_format = (reader.text("LOG_FORMAT") or "json").lower()
    if log_format not in ("json", "text"):
        raise ConfigError(f"LOG_FORMAT='{log_format}' is not allowed: use json or text")
    log_level = (reader.text("LOG_LEVEL") or "info").lower()
    if log_level not in ("debug", "info", "warning", "error"):
        raise ConfigError(
            f"LOG_LEVEL='{log_level}' is not allowed: use debug, info, warning or error"
        )
    origins = tuple(o.strip() for o in (reader.text("CORS_ORIGINS") or "").split(",") if o.strip())
    temp_dir = reader.text("TEMP_DIR")
    return ServerConfig(
        host=host or reader.text("HOST") or DEFAULT_HOST,
        port=port if port is not None else reader.integer("PORT", DEFAULT_PORT, low=0, high=65535),
        demo=demo,
        demo_latency_s=reader.number("DEMO_LATENCY_SEC", 1.0, low=0, high=600),
        endpoint_url=endpoint,
        api_key=api_key,
        api_token=reader.text("API_TOKEN"),
        temp_dir=Path(temp_dir).expanduser().absolute()
        if temp_dir
        else paths.cache_dir() / "server",
        render=render,
        max_concurrent_jobs=reader.integer("MAX_CONCURRENT_JOBS", 2, low=1, high=64),
        s3_bucket=reader.text("S3_BUCKET"),
        s3_region=reader.text("S3_REGION"),
        s3_endpoint_url=reader.text("S3_ENDPOINT_URL"),
        s3_prefix=reader.text("S3_PREFIX") or "infinitetalk/",
        s3_public_url=reader.text("S3_PUBLIC_URL"),
        s3_url_expires_s=reader.integer("S3_URL_EXPIRES_SEC", 86400, low=1, high=604800),
        log_format=log_format,
        log_level=log_level,
        cors_origins=origins,
        rate_limit_per_s=reader.number("RATE_LIMIT_PER_SEC", 20.0, low=0, high=1e6),
        max_body_bytes=round(reader.number("MAX_BODY_MB", 200, low=0.001, high=1e5) * MB),
        inline_video_max_bytes=round(
            reader.number("INLINE_VIDEO_MAX_MB", 50, low=0, high=1e4) * MB
        ),
        result_ttl_s=reader.number("RESULT_TTL_HOURS", 24, low=0.01, high=1e5) * 3600,
        webhook_retries=reader.integer("WEBHOOK_RETRIES", 5, low=1, high=20),
        webhook_secret=reader.text("WEBHOOK_SECRET"),
    )


class _Reader:
    """Typed reads of the merged environment; a bad value names its variable."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env

    def text(self, name: str) -> str | None:
        value = self.env.get(name, "").strip()
        return value or None

    def number(self, name: str, default: float, *, low: float, high: float) -> float:
        text = self.text(name)
        if text is None:
            return float(default)
        try:
            value = float(text)
        except ValueError:
            raise ConfigError(f"{name}='{text}' is not a number") from None
        if not math.isfinite(value) or not low <= value <= high:
            raise ConfigError(f"{name}={text} is out of range: use {low:g} to {high:g}")
        return value

    def optional_number(self, name: str, *, low: float) -> float | None:
        if self.text(name) is None:
            return None
        return self.number(name, 0, low=low, high=1e9)

    def integer(self, name: str, default: int, *, low: int, high: int) -> int:
        text = self.text(name)
        if text is None:
            return default
        try:
            value = int(text)
        except ValueError:
            raise ConfigError(f"{name}='{text}' is not a whole number") from None
        if not low <= value <= high:
            raise ConfigError(f"{name}={text} is out of range: use {low} to {high}")
        return value
