"""The job and its chunks: states, the one state machine, and the render settings a job keeps."""

from __future__ import annotations

import copy
import re
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

FPS = 25
FRAME_MS = 1000 // FPS  # 40 ms: every cut lies on this grid
RUNPOD_BASE_URL = "https://api.runpod.ai/v2"
SIZE_PRESETS: tuple[tuple[int, int], ...] = (
    (512, 512),
    (480, 832),
    (832, 480),
    (720, 1280),
    (1280, 720),
)
MIN_SIDE, MAX_SIDE = 256, 1280
DEFAULT_PROMPT = "A person talking naturally"


class JobState(StrEnum):
    """RunPod's own status words; the original plan's RUNNING is IN_PROGRESS."""

    IN_QUEUE = "IN_QUEUE"
    IN_PROGRESS = "IN_PROGRESS"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    TIMED_OUT = "TIMED_OUT"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_STATES

    @classmethod
    def from_remote(cls, status: str) -> JobState:
        """Map a RunPod status string (``RUNNING`` is a synonym of ``IN_PROGRESS``)."""
        status = status.strip().upper()
        if status == "RUNNING":
            return cls.IN_PROGRESS
        return cls(status)


TERMINAL_STATES = frozenset(
    {JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED, JobState.TIMED_OUT}
)

# One state machine for jobs and chunks. A failed, cancelled or timed-out job or chunk
# may go back to IN_QUEUE (retry / resume); COMPLETED is final.
_TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    JobState.IN_QUEUE: frozenset(
        {
            JobState.IN_QUEUE,
            JobState.IN_PROGRESS,
            JobState.COMPLETED,
            JobState.FAILED,
            JobState.CANCELLED,
            JobState.TIMED_OUT,
        }
    ),
    JobState.IN_PROGRESS: frozenset(
        {
            JobState.IN_PROGRESS,
            JobState.IN_QUEUE,
            JobState.COMPLETED,
            JobState.FAILED,
            JobState.CANCELLED,
            JobState.TIMED_OUT,
        }
    ),
    JobState.COMPLETED: frozenset({JobState.COMPLETED}),
    JobState.FAILED: frozenset({JobState.FAILED, JobState.IN_QUEUE}),
    JobState.CANCELLED: frozenset({JobState.CANCELLED, JobState.IN_QUEUE}),
    JobState.TIMED_OUT: frozenset({JobState.TIMED_OUT, JobState.IN_QUEUE}),
}


class InvalidTransition(ValueError):
    pass


def check_transition(old: JobState, new: JobState) -> None:
    if new not in _TRANSITIONS[old]:
        raise InvalidTransition(f"cannot go from {old} to {new}")


def parse_size(text: str) -> tuple[int, int]:
    """Parse ``WxH``; both sides multiples of 16 between 256 and 1280."""
    match = re.fullmatch(r"\s*(\d+)\s*[xX×]\s*(\d+)\s*", text)
    if not match:
        raise ValueError(f"'{text}' is not a size: write it as WIDTHxHEIGHT, e.g. 512x512")
    width, height = int(match.group(1)), int(match.group(2))
    check_size(width, height)
    return width, height


def check_size(width: int, height: int) -> None:
    for name, side in (("width", width), ("height", height)):
        if not MIN_SIDE <= side <= MAX_SIDE or side % 16:
            raise ValueError(
                f"{name} {side} is not allowed: use a multiple of 16 between "
                f"{MIN_SIDE} and {MAX_SIDE} (e.g. 512x512, 480x832, 720x1280)"
            )


@dataclass
class RenderSettings:
    """Everything a job needs to be finished later, by any process (never the API key)."""

    endpoint_url: str
    width: int = 512
    height: int = 512
    prompt: str = DEFAULT_PROMPT
    concurrency: int = 3
    chunk_seconds: float = 45.0
    silence_db: float = -40.0
    min_silence_ms: int = 500
    attempts: int = 4
    timeout_s: float | None = None
    execution_timeout_ms: int = 20 * 60 * 1000
    pad_color: str = "black"
    gpu_price_per_second: float = 0.00034
    overwrite: bool = False
    demo: bool = False  # rendered on the built-in demo endpoint: a resume starts a new one

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RenderSettings:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


@dataclass
class Chunk:
    """One slice of the audio, rendered by one RunPod job (or several, on retry)."""

    index: int
    start_ms: int
    end_ms: int
    state: JobState = JobState.IN_QUEUE
    attempt: int = 0
    runpod_id: str | None = None
    queue_ms: int | None = None
    exec_ms: int | None = None
    result_path: str | None = None
    error: str | None = None
    submitted_at: float | None = None
    updated_at: float | None = None

    @property
    def duration_ms(self) -> int:
        return self.end_ms - self.start_ms

    @property
    def frames(self) -> int:
        """Video frames this chunk must have in the output: ceil(duration / 40 ms)."""
        return -(-self.duration_ms // FRAME_MS)

    def set_state(self, new: JobState) -> None:
        check_transition(self.state, new)
        self.state = new


@dataclass
class Job:
    """A render: inputs, settings, state and its chunks. Snapshots are handed to listeners."""

    id: str
    image_path: str
    audio_path: str
    output_path: str
    settings: RenderSettings
    state: JobState = JobState.IN_QUEUE
    stage: str = "queued"
    created_at: float = 0.0
    updated_at: float = 0.0
    finished_at: float | None = None
    audio_duration_ms: int | None = None
    error: str | None = None
    chunks: list[Chunk] = field(default_factory=list)

    @property
    def chunks_done(self) -> int:
        return sum(1 for c in self.chunks if c.state is JobState.COMPLETED)

    @property
    def chunks_total(self) -> int:
        return len(self.chunks)

    @property
    def queue_ms(self) -> int:
        return sum(c.queue_ms or 0 for c in self.chunks)

    @property
    def exec_ms(self) -> int:
        return sum(c.exec_ms or 0 for c in self.chunks)

    @property
    def cost_usd(self) -> float:
        """Estimated GPU cost so far: execution seconds times the price per second."""
        return self.exec_ms / 1000 * self.settings.gpu_price_per_second

    def set_state(self, new: JobState) -> None:
        check_transition(self.state, new)
        self.state = new

    def snapshot(self) -> Job:
        return copy.deepcopy(self)

    def summary(self) -> dict[str, Any]:
        """The short form used by ``jobs --json`` and the history list."""
        return {
            "id": self.id,
            "state": str(self.state),
            "chunks_done": self.chunks_done,
            "chunks_total": self.chunks_total,
            "output": self.output_path,
        }
