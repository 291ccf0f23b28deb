"""Fixtures shared by the core tests that drive whole jobs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from infinitetalk_gui.core.store import JobStore
from tests import mediagen


@pytest.fixture
def store() -> Iterator[JobStore]:
    """The job store in the test's own data folder."""
    job_store = JobStore()
    yield job_store
    job_store.close()


@pytest.fixture
def portrait(tmp_path: Path) -> Path:
    return mediagen.portrait(tmp_path / "face.png", 300, 420)
