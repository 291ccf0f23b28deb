"""The REST API's routes. Blocking work (the store, ffmpeg, base64) runs in the thread pool."""

from __future__ import annotations

import base64
import binascii
import re
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response
from fastapi.sse import EventSourceResponse, ServerSentEvent
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import ValidationError
from starlette.datastructures import FormData, UploadFile

from infinitetalk_gui.server import webhook
from infinitetalk_gui.server.errors import ApiError
from infinitetalk_gui.server.errors import error_response as _err
from infinitetalk_gui.server.jobs import JobOptions, JobService, shutting_down
from infinitetalk_gui.server.schemas import (
    HealthOut,
    JobCreated,
    JobList,
    JobOut,
    JobRequest,
)

router = APIRouter()

FORM_FIELDS = frozenset(
    {"image", "audio", "width", "height", "prompt", "push_to_s3", "webhook_url"}
)
_DATA_URI = re.compile(r"data:[^,]{0,200},")
_SUFFIX = re.compile(r"\.[A-Za-z0-9]{1,8}")
_TRUE, _FALSE = {"true", "1", "yes", "on"}, {"false", "0", "no", "off", ""}


NOT_FOUND: dict[int | str, dict[str, Any]] = {404: _err("No job with this id")}


def _service(request: Request) -> JobService:
    service: JobService = request.app.state.service
    return service


def _root(request: Request) -> str:
    return str(request.scope.get("root_path", "")).rstrip("/")


# ----------------------------------------------------------------------------- POST /jobs

JOB_REQUEST_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/JobRequest"}},
            "multipart/form-data": {
                "schema": {"$ref": "#/components/schemas/MultipartJobRequest"},
                "encoding": {
                    "image": {"contentType": "image/png, image/jpeg, image/webp"},
                    "audio": {"contentType": "audio/*, video/*"},
                },
            },
        },
    }
}


@router.post(
    "/jobs",
    status_code=202,
    response_model=JobCreated,
    summary="Start a job",
    openapi_extra=JOB_REQUEST_BODY,
    responses={
        413: _err("The body is over MAX_BODY_MB"),
        415: _err("Neither JSON nor multipart/form-data"),
        503: _err("The service is shutting down"),
    },
)
async def create_job(request: Request) -> JSONResponse:
    """A portrait and a voice, as JSON with base64 fields or as multipart files. The job waits
    IN_QUEUE for a free slot; follow it with `GET /jobs/{id}` or `GET /jobs/{id}/events`."""
    service = _service(request)
    if not service.accepting:
        raise shutting_down()
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type not in ("application/json", "multipart/form-data"):
        raise ApiError(
            415,
            "unsupported_media_type",
            "Send the job as application/json (base64 fields) or multipart/form-data (files).",
        )
    folder = await run_in_threadpool(service.new_folder)
    try:
        if media_type == "application/json":
            image, audio, options = await _from_json(request, folder)
        else:
            image, audio, options = await _from_multipart(request, folder)
        job = await run_in_threadpool(service.create, image, audio, folder, options)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    request.state.job_id = job.id
    return JSONResponse(
        {"id": job.id, "status": "IN_QUEUE"},
        status_code=202,
        headers={"Location": f"{_root(request)}/jobs/{job.id}"},
    )


async def _from_json(request: Request, folder: Path) -> tuple[Path, Path, JobOptions]:
    body = await request.body()
    try:
        payload = await run_in_threadpool(JobRequest.model_validate_json, body)
    except ValidationError as error:
        raise _invalid(error) from None
    options = _options(
        payload.width,
        payload.height,
        payload.prompt,
        payload.push_to_s3,
        payload.webhook_url,
        "image_base64",
        "audio_base64",
    )
    image = folder / "image"
    audio = folder / "audio"
    await run_in_threadpool(_write_base64, payload.image_base64, image, "image_base64")
    await run_in_threadpool(_write_base64, payload.audio_base64, audio, "audio_base64")
    return image, audio, options


def _invalid(error: ValidationError) -> ApiError:
    """A schema error as a 400 that names the fields (never echoing their values)."""
    problems = error.errors(include_input=False, include_url=False)
    if any(p["type"] == "json_invalid" for p in problems):
        return ApiError(400, "bad_json", "The body is not valid JSON.")
    parts = []
    for problem in problems[:5]:
        where = ".".join(str(p) for p in problem["loc"]) or "body"
        parts.append(f"{where}: {problem['msg']}")
    return ApiError(400, "invalid_request", "Invalid request: " + "; ".join(parts) + ".")


def _options(
    width: int | None,
    height: int | None,
    prompt: str | None,
    push_to_s3: bool,
    webhook_url: str | None,
    image_label: str,
    audio_label: str,
) -> JobOptions:
    if webhook_url is not None:
        problem = webhook.check_url(webhook_url)
        if problem:
            raise ApiError(400, "invalid_request", f"{problem}.")
    return JobOptions(
        width=width,
        height=height,
        prompt=prompt.strip() if prompt else None,
        push_to_s3=push_to_s3,
        webhook_url=webhook_url,
        image_label=image_label,
        audio_label=audio_label,
    )


def decode_base64(text: str, name: str) -> bytes:
    """Standard base64; a ``data:...;base64,`` prefix, line breaks and missing padding are
    forgiven, any other stray character is an error (never silently dropped)."""
    if text.startswith("data:"):
        match = _DATA_URI.match(text)
        if match:
            text = text[match.end() :]
    try:
        data = _strict_b64(text)
    except (binascii.Error, ValueError):
        try:
            data = _strict_b64("".join(text.split()))  # base64 tools wrap lines at 76
        except (binascii.Error, ValueError):
            raise ApiError(400, "bad_base64", f"{name} is not valid base64.") from None
    if not data:
        raise ApiError(400, "bad_base64", f"{name} is empty.")
    return data


def _strict_b64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


def _write_base64(text: str, path: Path, name: str) -> None:
    path.write_bytes(decode_base64(text, name))


async def _from_multipart(request: Request, folder: Path) -> tuple[Path, Path, JobOptions]:
    async with request.form(max_files=2, max_fields=10, max_part_size=64 * 1024) as form:
        unknown = sorted(set(form.keys()) - FORM_FIELDS)
        if unknown:
            raise ApiError(400, "invalid_request", f"Unknown form field(s): {', '.join(unknown)}.")
        image, image_label = await _save_upload(form, "image", folder)
        audio, audio_label = await _save_upload(form, "audio", folder)
        options = _options(
            _form_int(form, "width"),
            _form_int(form, "height"),
            _form_text(form, "prompt"),
            _form_bool(form, "push_to_s3"),
            _form_text(form, "webhook_url"),
            image_label,
            audio_label,
        )
    return image, audio, options


async def _save_upload(form: FormData, name: str, folder: Path) -> tuple[Path, str]:
    upload = form.get(name)
    if not isinstance(upload, UploadFile):
        raise ApiError(400, "invalid_request", f"The form needs a file field named '{name}'.")
    filename = Path(upload.filename or name).name
    match = _SUFFIX.fullmatch(Path(filename).suffix)
    path = folder / (name + (match.group(0).lower() if match else ""))

    def copy() -> int:
        upload.file.seek(0)
        with path.open("wb") as out:
            shutil.copyfileobj(upload.file, out, 1 << 20)
            return out.tell()

    if await run_in_threadpool(copy) == 0:
        raise ApiError(400, "invalid_media", f"The {name} file '{filename}' is empty.")
    return path, filename


def _form_text(form: FormData, name: str) -> str | None:
    value = form.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ApiError(400, "invalid_request", f"The form field '{name}' must be text, not a file.")
    if len(value) > 2000:
        raise ApiError(400, "invalid_request", f"The form field '{name}' is too long.")
    return value


def _form_int(form: FormData, name: str) -> int | None:
    text = _form_text(form, name)
    if text is None or not text.strip():
        return None
    try:
        return int(text.strip())
    except ValueError:
        raise ApiError(
            400, "invalid_request", f"The form field '{name}' must be a whole number."
        ) from None


def _form_bool(form: FormData, name: str) -> bool:
    text = (_form_text(form, name) or "").strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ApiError(400, "invalid_request", f"The form field '{name}' must be true or false.")


# ----------------------------------------------------------------------------- reading jobs


@router.get("/jobs", response_model=JobList, summary="Jobs started here, newest first")
def list_jobs(
    request: Request, limit: int = Query(50, ge=1, le=500, description="How many")
) -> JSONResponse:
    service = _service(request)
    root = _root(request)
    jobs = [service.doc(job, meta, inline=False, root=root) for job, meta in service.list(limit)]
    return JSONResponse({"jobs": jobs})


@router.get("/jobs/{job_id}", response_model=JobOut, summary="A job", responses=NOT_FOUND)
def get_job(
    request: Request,
    job_id: str,
    inline: bool = Query(True, description="0 leaves video_base64 out"),
) -> JSONResponse:
    service = _service(request)
    job, meta = service.get(job_id)
    return JSONResponse(service.doc(job, meta, inline=inline, root=_root(request)))


@router.delete(
    "/jobs/{job_id}",
    response_model=JobOut,
    summary="Cancel a job (its remote chunks too)",
    responses={**NOT_FOUND, 409: _err("The job has already ended")},
)
def cancel_job(request: Request, job_id: str) -> JSONResponse:
    service = _service(request)
    job = service.cancel(job_id)
    job, meta = service.get(job.id)
    return JSONResponse(
        service.doc(job, meta, inline=False, root=_root(request)),
        status_code=200 if job.state.terminal else 202,
    )


@router.get(
    "/jobs/{job_id}/video",
    summary="The finished MP4 (range requests supported)",
    response_class=FileResponse,
    responses={
        200: {"content": {"video/mp4": {"schema": {"type": "string", "format": "binary"}}}},
        206: {
            "description": "Part of the MP4 (Range request)",
            "content": {"video/mp4": {"schema": {"type": "string", "format": "binary"}}},
        },
        307: {"description": "The video lives in S3 only: redirect to it"},
        **NOT_FOUND,
        409: _err("The job has not completed"),
        416: {"description": "The Range asked for is outside the file"},
    },
)
def job_video(request: Request, job_id: str) -> Response:
    where = _service(request).video(job_id)
    if isinstance(where, str):
        return RedirectResponse(where, status_code=307)
    return FileResponse(
        where,
        media_type="video/mp4",
        filename=f"{job_id}.mp4",
        content_disposition_type="inline",
    )


async def _existing_job(request: Request, job_id: str) -> str:
    # Checked before the stream starts, so an unknown id gets a JSON 404, not an empty stream.
    await run_in_threadpool(_service(request).get, job_id)
    return job_id


@router.get(
    "/jobs/{job_id}/events",
    response_class=EventSourceResponse,
    summary="Server-Sent Events: the job's state and chunk changes",
    responses=NOT_FOUND,
)
async def job_events(
    request: Request, job_id: str = Depends(_existing_job)
) -> AsyncIterator[ServerSentEvent]:
    """`status` (the whole job, as `GET /jobs/{id}` without video_base64), `chunk` (one chunk
    changed) and a last `end` (the final job); the stream then closes."""
    service = _service(request)
    root = _root(request)
    subscription = service.broker.subscribe(job_id)
    try:
        job, meta = await run_in_threadpool(service.get, job_id)
        doc = await run_in_threadpool(lambda: service.doc(job, meta, inline=False, root=root))
        yield ServerSentEvent(event="status", data=doc, id="0", retry=2000)
        if service.is_final(job, meta):
            yield ServerSentEvent(event="end", data=doc, id="1")
            return
        sequence = 0
        while True:
            item = await subscription.queue.get()
            if item is None:
                return  # the service is shutting down
            sequence += 1
            kind, data = item
            if root and "video_url" in data and str(data["video_url"]).startswith("/"):
                data = {**data, "video_url": root + data["video_url"]}
            yield ServerSentEvent(event=kind, data=data, id=str(sequence))
            if kind == "end":
                return
    finally:
        service.broker.unsubscribe(subscription)


# ----------------------------------------------------------------------------- service


@router.get("/health", response_model=HealthOut, summary="The service (and with deep=1, RunPod)")
def health(
    request: Request,
    deep: bool = Query(False, description="1 also calls the RunPod endpoint's /health"),
) -> JSONResponse:
    return JSONResponse(_service(request).health(deep))


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
def metrics(request: Request) -> Response:
    registry = request.app.state.metrics.registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
