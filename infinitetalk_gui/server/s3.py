"""``push_to_s3``: upload the finished MP4 with boto3 (part of the ``server`` extra)."""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any
from urllib.parse import quote

from infinitetalk_gui.core.errors import ConfigError

log = logging.getLogger(__name__)


class S3Error(Exception):
    """An upload failed; the message says why in plain words (no credentials in it)."""


class S3Uploader:
    """One bucket. The boto3 client is made on first use (it is slow to build) and shared:
    boto3 clients are thread-safe."""

    def __init__(
        self,
        bucket: str,
        *,
        region: str | None = None,
        endpoint_url: str | None = None,
        prefix: str = "",
        public_url: str | None = None,
        expires_s: int = 86400,
    ) -> None:
        try:
            import boto3  # noqa: F401
        except ImportError:
            raise ConfigError(
                "push_to_s3 needs boto3, which is not installed: "
                "pip install 'infinitetalk-gui[server]'"
            ) from None
        self.bucket = bucket
        self.region = region
        self.endpoint_url = endpoint_url
        self.prefix = prefix
        self.public_url = public_url.rstrip("/") if public_url else None
        self.expires_s = expires_s
        self._client: Any = None
        self._lock = threading.Lock()

    def _s3(self) -> Any:
        with self._lock:
            if self._client is None:
                import boto3
                from botocore.config import Config

                self._client = boto3.client(
                    "s3",
                    region_name=self.region,
                    endpoint_url=self.endpoint_url,
                    config=Config(
                        signature_version="s3v4",
                        retries={"max_attempts": 5, "mode": "standard"},
                        connect_timeout=10,
                        read_timeout=60,
                    ),
                )
            return self._client

    def key_for(self, job_id: str) -> str:
        return f"{self.prefix}{job_id}.mp4"

    def upload(self, path: Path, key: str) -> None:
        """Multipart upload for large files (boto3's transfer manager); raises S3Error."""
        from boto3.exceptions import Boto3Error
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self._s3().upload_file(
                str(path), self.bucket, key, ExtraArgs={"ContentType": "video/mp4"}
            )
        except (Boto3Error, BotoCoreError, ClientError, OSError) as error:
            # boto3 wraps the service's answer in S3UploadFailedError, whose text also names
            # our local path: give the answer itself.
            cause = error.__cause__ or error.__context__
            reason = cause if isinstance(cause, (ClientError, BotoCoreError)) else error
            raise S3Error(f"upload to s3://{self.bucket}/{key} failed: {reason}") from None
        log.info("pushed %s to s3://%s/%s", path.name, self.bucket, key)

    def url_for(self, key: str) -> str:
        """The public URL when the bucket is public, else a presigned GET URL (made locally,
        no network call, so a fresh one is given on every request)."""
        if self.public_url:
            return f"{self.public_url}/{quote(key)}"
        url: str = self._s3().generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=self.expires_s
        )
        return url
