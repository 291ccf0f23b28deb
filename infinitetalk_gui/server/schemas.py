"""Request and response bodies (pydantic): the OpenAPI schema is generated from these."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from infinitetalk_gui.core.models import JobState

SIZE_RULE = "a multiple of 16 between 256 and 1280"


class JobRequest(BaseModel):
    """``POST /jobs`` as JSON. Strict: ``"512"`` is not a number, unknown fields are refused."""

    model_config = ConfigDict(strict=True, extra="forbid")

    image_base64: str = Field(
        min_length=1, description="The portrait (PNG, JPEG or WebP), base64; a data: prefix is ok"
    )
    audio_base64: str = Field(
        min_length=1, description="The voice (WAV, MP3, M4A, OGG, FLAC...), base64"
    )
    width: int | None = Field(None, description=f"Output width, {SIZE_RULE} (default 512)")
    height: int | None = Field(None, description=f"Output height, {SIZE_RULE} (default 512)")
    prompt: str | None = Field(None, max_length=2000, description="Text prompt for the model")
    push_to_s3: bool = Field(False, description="Upload the MP4 to the configured S3 bucket")
    webhook_url: str | None = Field(
        None, max_length=2000, description="http(s) URL that gets the final job JSON by POST"
    )


class MultipartJobRequest(BaseModel):
    """``POST /jobs`` as ``multipart/form-data``: the friendly way to post large media."""

    image: bytes = Field(json_schema_extra={"format": "binary"}, description="The portrait file")
    audio: bytes = Field(json_schema_extra={"format": "binary"}, description="The voice file")
    width: int | None = None
    height: int | None = None
    prompt: str | None = Field(None, max_length=2000)
    push_to_s3: bool = False
    webhook_url: str | None = Field(None, max_length=2000)


class JobCreated(BaseModel):
    id: str
    status: Literal["IN_QUEUE"]


class ChunkOut(BaseModel):
    index: int
    start_s: float
    end_s: float
    status: JobState
    attempt: int
    queue_ms: int | None
    exec_ms: int | None


class JobOut(BaseModel):
    """A job as ``GET /jobs/{id}`` shows it; optional fields are left out when they don't apply."""

    id: str
    status: JobState
    progress: int = Field(ge=0, le=100)
    chunks_done: int
    chunks_total: int
    chunks: list[ChunkOut]
    error: str | None = None
    video_url: str | None = Field(
        None, description="When COMPLETED: /jobs/{id}/video, or the S3 URL when pushed"
    )
    video_base64: str | None = Field(
        None, description="When COMPLETED, not pushed and small enough, unless ?inline=0"
    )
    cost_estimate_usd: float | None = None


class JobList(BaseModel):
    jobs: list[JobOut]


class ErrorOut(BaseModel):
    error: str
    code: str


class RunPodHealth(BaseModel):
    ok: bool
    message: str
    warm_workers: int
    jobs: dict[str, int]
    workers: dict[str, int]


class HealthOut(BaseModel):
    status: Literal["ok", "degraded"]
    version: str
    demo: bool
    accepting_jobs: bool
    jobs_running: int
    jobs_queued: int
    runpod: RunPodHealth | None = None
