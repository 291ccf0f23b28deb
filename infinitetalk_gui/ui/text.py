"""Numbers as people read them: durations, rough times, money. No Qt here (--smoke uses it)."""

from __future__ import annotations

import re
from collections.abc import Mapping

from infinitetalk_gui.core.models import JobState


def clock(ms: float | None) -> str:
    """``83_000`` -> ``"1:23"``; an hour or more -> ``"1:02:03"``."""
    if ms is None:
        return "–"
    total = max(0, round(ms / 1000))
    hours, rest = divmod(total, 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"{hours}:{minutes:02d}:{seconds:02d}"
    return f"{minutes}:{seconds:02d}"


def rough_time(seconds: float) -> str:
    """A duration in words, rounded the way people say it: "12 s", "about 4 min", "1 h 20 min"."""
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{max(1, round(seconds))} s"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"


def money(usd: float) -> str:
    """US dollars with enough digits to tell small GPU costs apart."""
    if usd <= 0:
        return "$0.00"
    if usd < 0.01:
        return f"${usd:.4f}"
    return f"${usd:.2f}"


def plural(count: int, word: str, words: str | None = None) -> str:
    return f"{count} {word if count == 1 else (words or word + 's')}"


def ffmpeg_version_line(output: str) -> str:
    """``ffmpeg version 9.0.2-static https://...`` -> ``9.0.2-static``."""
    first = output.strip().splitlines()[0] if output.strip() else ""
    parts = first.split()
    if len(parts) >= 3 and parts[0] == "ffmpeg" and parts[1] == "version":
        return parts[2]
    return first or "unknown"


_STATE_WORDS = re.compile(r"\b(IN_QUEUE|IN_PROGRESS|COMPLETED|FAILED|CANCELLED|TIMED_OUT)\b")


def plain_status(line: str, labels: Mapping[JobState, str]) -> str:
    """A core log line for the status bar: RunPod's state names as the words the chunk table
    uses (``chunk 2/3 IN_PROGRESS`` -> ``Chunk 2/3 rendering``), first letter capitalised."""
    text = _STATE_WORDS.sub(lambda match: labels[JobState(match.group(1))], line)
    return text[:1].upper() + text[1:]
