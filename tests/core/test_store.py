"""The SQLite job store: round trips, the state machine on stored state, concurrency, leases."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from infinitetalk_gui.core import paths
from infinitetalk_gui.core.errors import ConfigError, InputError, JobLocked
from infinitetalk_gui.core.models import (
    Chunk,
    InvalidTransition,
    Job,
    JobState,
    RenderSettings,
)
from infinitetalk_gui.core.store import SCHEMA_VERSION, JobStore

REPO = Path(__file__).resolve().parents[2]
SECRET_NAME = r"api[_-]?key|secret|token|passw|authoriz|bearer|credential"

# A second process that opens the store, takes a job's lease, says so, and waits for a line.
LEASE_CHILD = """
import sys
from pathlib import Path
from infinitetalk_gui.core.store import JobStore
store = JobStore(Path(sys.argv[1]), heartbeat_s=float(sys.argv[3]), stale_after_s=600)
lease = store.lease(sys.argv[2])
print("leased", flush=True)
sys.stdin.readline()
lease.release()
store.close()
print("released", flush=True)
"""

# A second process that bumps the attempt of the odd chunks of a job, over and over.
WRITER_CHILD = """
import sys
from pathlib import Path
from infinitetalk_gui.core.store import JobStore
store = JobStore(Path(sys.argv[1]))
job = store.get(sys.argv[2])
print("ready", flush=True)
sys.stdin.readline()
for attempt in range(1, int(sys.argv[3]) + 1):
    for chunk in job.chunks:
        if chunk.index % 2:
            chunk.attempt = attempt
            store.save_chunk(job.id, chunk)
store.close()
print("done", flush=True)
"""

# A process that opens a brand-new database file and creates one job in it.
CREATE_CHILD = """
import sys
from pathlib import Path
from infinitetalk_gui.core.models import Job, RenderSettings
from infinitetalk_gui.core.store import JobStore
with JobStore(Path(sys.argv[1])) as store:
    store.create(Job(sys.argv[2], "i.png", "a.wav", "o.mp4", RenderSettings("http://x")))
"""


def child(code: str, *args: object) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, "-c", code, *map(str, args)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=REPO,
    )


def expect_line(proc: subprocess.Popen[str], wanted: str) -> None:
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if line != wanted:
        proc.kill()
        _, err = proc.communicate(timeout=10)
        pytest.fail(f"child said {line!r}, expected {wanted!r}; stderr:\n{err}")


def finish(proc: subprocess.Popen[str], send: str | None = None) -> str:
    out, err = proc.communicate(send, timeout=30)
    assert proc.returncode == 0, err
    return out


def make_job(job_id: str = "a1b2c3d4", chunks: int = 3, **fields: object) -> Job:
    settings = RenderSettings(
        endpoint_url="http://127.0.0.1:8000",
        width=480,
        height=832,
        prompt="A woman talking, soft light",
        concurrency=2,
        chunk_seconds=30.0,
        silence_db=-35.5,
        min_silence_ms=400,
        attempts=3,
        timeout_s=900.0,
        pad_color="#102030",
        gpu_price_per_second=0.0005,
        overwrite=True,
    )
    job = Job(
        id=job_id,
        image_path="/in/portrait.png",
        audio_path="/in/voice.mp3",
        output_path="/out/talk.mp4",
        settings=settings,
        **fields,  # type: ignore[arg-type]
    )
    job.chunks = [Chunk(i, i * 45_000, (i + 1) * 45_000) for i in range(chunks)]
    return job


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "store" / "jobs.sqlite3"


@pytest.fixture
def store(db_path: Path) -> Iterator[JobStore]:
    with JobStore(db_path, heartbeat_s=0.1, stale_after_s=5) as opened:
        yield opened


# -- setup ---------------------------------------------------------------------------------


def test_default_file_lives_in_the_xdg_data_dir(isolated_home: Path) -> None:
    with JobStore() as store:
        assert store.path == paths.jobs_db()
        assert store.path.is_relative_to(isolated_home / "data")
        assert store.path.is_file()


def test_wal_mode_and_schema_version(store: JobStore, db_path: Path) -> None:
    raw = sqlite3.connect(db_path)
    try:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert raw.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    finally:
        raw.close()


def test_reopening_keeps_the_jobs(db_path: Path) -> None:
    with JobStore(db_path) as first:
        first.create(make_job())
    with JobStore(db_path) as second:
        assert second.get("a1b2c3d4").chunks_total == 3


def test_database_from_a_newer_version_is_refused(db_path: Path) -> None:
    JobStore(db_path).close()
    raw = sqlite3.connect(db_path)
    raw.execute("PRAGMA user_version = 99")
    raw.close()
    with pytest.raises(ConfigError, match=r"newer version.*schema 99") as info:
        JobStore(db_path)
    assert str(db_path) in str(info.value)


def test_damaged_database_is_a_plain_error(db_path: Path) -> None:
    db_path.parent.mkdir(parents=True)
    db_path.write_bytes(b"this is not sqlite at all, just text " * 200)
    with pytest.raises(ConfigError, match="move the file away") as info:
        JobStore(db_path)
    assert str(db_path) in str(info.value)


def test_processes_creating_a_new_database_at_once(db_path: Path) -> None:
    procs = [child(CREATE_CHILD, db_path, f"job{n}") for n in range(3)]
    for proc in procs:
        finish(proc)
    with JobStore(db_path) as store:
        assert sorted(job.id for job in store.list()) == ["job0", "job1", "job2"]


# -- round trips ---------------------------------------------------------------------------


def test_round_trip_with_every_field(store: JobStore) -> None:
    job = make_job(stage="rendering", audio_duration_ms=135_000, error="worker said: no")
    job.state = JobState.IN_PROGRESS
    done, running, fresh = job.chunks
    done.state, done.attempt, done.runpod_id = JobState.COMPLETED, 2, "sync-1"
    done.queue_ms, done.exec_ms, done.result_path = 1500, 61_000, "/cache/j/0.mp4"
    done.error, done.submitted_at = "first try FAILED: CUDA out of memory", 1_700_000_000.5
    running.state, running.attempt, running.runpod_id = JobState.IN_PROGRESS, 1, "sync-2"
    running.submitted_at = 1_700_000_001.25

    before = time.time()
    store.create(job)
    assert before <= job.created_at == job.updated_at <= time.time()
    assert all(c.updated_at == job.created_at for c in job.chunks)

    loaded = store.get(job.id)
    assert loaded == job
    assert loaded.settings == job.settings
    assert loaded.settings.timeout_s == 900.0
    assert [c.index for c in loaded.chunks] == [0, 1, 2]
    # Fields never set stay None, not 0 or "".
    assert fresh.runpod_id is None and loaded.chunks[2].runpod_id is None
    assert loaded.chunks[2].queue_ms is None and loaded.chunks[2].submitted_at is None
    assert loaded.finished_at is None


def test_settings_are_stored_as_json(store: JobStore, db_path: Path) -> None:
    job = make_job()
    job.settings.timeout_s = None
    store.create(job)
    raw = sqlite3.connect(db_path)
    try:
        text = raw.execute("SELECT settings FROM jobs").fetchone()[0]
    finally:
        raw.close()
    assert json.loads(text) == job.settings.to_dict()
    assert store.get(job.id).settings.timeout_s is None


def test_job_without_chunks_and_chunks_added_later(store: JobStore) -> None:
    job = make_job(chunks=0)
    store.create(job)
    assert store.get(job.id).chunks == []
    # The splitter hands chunks over one by one, and not in order.
    store.save_chunk(job.id, Chunk(1, 45_000, 90_000))
    store.save_chunk(job.id, Chunk(0, 0, 45_000, state=JobState.IN_PROGRESS))
    assert [(c.index, c.state) for c in store.get(job.id).chunks] == [
        (0, JobState.IN_PROGRESS),
        (1, JobState.IN_QUEUE),
    ]


def test_save_job_writes_its_fields_and_keeps_created_at(store: JobStore) -> None:
    job = make_job()
    store.create(job)
    created = job.created_at
    job.set_state(JobState.IN_PROGRESS)
    job.stage, job.audio_duration_ms = "splitting", 135_040
    job.output_path = "/elsewhere/talk.mp4"
    store.save_job(job)
    loaded = store.get(job.id)
    assert (loaded.state, loaded.stage, loaded.audio_duration_ms) == (
        JobState.IN_PROGRESS,
        "splitting",
        135_040,
    )
    assert loaded.output_path == "/elsewhere/talk.mp4"
    assert loaded.created_at == created <= loaded.updated_at == job.updated_at


def test_save_job_leaves_chunks_alone(store: JobStore) -> None:
    job = make_job()
    store.create(job)
    stale = store.get(job.id)
    job.chunks[0].set_state(JobState.IN_PROGRESS)
    store.save_chunk(job.id, job.chunks[0])
    stale.stage = "rendering"
    store.save_job(stale)  # its chunks are out of date: they must not be written back
    assert store.get(job.id).chunks[0].state is JobState.IN_PROGRESS


def test_finished_at_is_set_on_the_end_and_cleared_on_resume(store: JobStore) -> None:
    job = make_job()
    store.create(job)
    job.set_state(JobState.FAILED)
    job.error = "chunk 2 failed 4 times: out of memory"
    store.save_job(job)
    finished = store.get(job.id).finished_at
    assert finished is not None and finished == job.finished_at
    job.set_state(JobState.IN_QUEUE)
    job.error = None
    store.save_job(job)
    loaded = store.get(job.id)
    assert loaded.finished_at is None and loaded.error is None


def test_duplicate_id_is_refused(store: JobStore) -> None:
    store.create(make_job())
    with pytest.raises(ValueError, match="already exists"):
        store.create(make_job())


def test_unknown_job_is_a_plain_input_error(store: JobStore) -> None:
    with pytest.raises(InputError, match="no job with id 'nope'"):
        store.get("nope")
    with pytest.raises(InputError, match="no job with id 'nope'"):
        store.save_job(make_job("nope"))
    with pytest.raises(InputError, match="no job with id 'nope'"):
        store.save_chunk("nope", Chunk(0, 0, 1000))
    with pytest.raises(InputError, match="no job with id 'nope'"):
        store.lease("nope")


# -- list, resolve, delete, prune ----------------------------------------------------------


def test_list_is_newest_first_and_limited(store: JobStore) -> None:
    for n in range(5):
        store.create(make_job(f"job{n}", chunks=n))
    listed = store.list()
    assert [j.id for j in listed] == ["job4", "job3", "job2", "job1", "job0"]
    assert [j.chunks_total for j in listed] == [4, 3, 2, 1, 0]
    assert [j.id for j in store.list(limit=2)] == ["job4", "job3"]
    assert len(store.list(limit=None)) == 5
    assert store.list(limit=0) == []


def test_resolve_by_unique_prefix(store: JobStore) -> None:
    for job_id in ("abc123", "abd456", "ff0000"):
        store.create(make_job(job_id))
    assert store.resolve("abc123").id == "abc123"
    assert store.resolve("abc").id == "abc123"
    assert store.resolve(" f ").id == "ff0000"
    assert store.resolve("ff0").chunks_total == 3


def test_resolve_ambiguous_prefix_names_the_candidates(store: JobStore) -> None:
    for job_id in ("abc123", "abd456"):
        store.create(make_job(job_id))
    with pytest.raises(InputError, match="'ab' matches several jobs: ") as info:
        store.resolve("ab")
    assert "abc123" in str(info.value) and "abd456" in str(info.value)


def test_resolve_exact_id_wins_over_longer_ids(store: JobStore) -> None:
    store.create(make_job("abc"))
    store.create(make_job("abcdef"))
    assert store.resolve("abc").id == "abc"


def test_resolve_missing_or_empty(store: JobStore) -> None:
    store.create(make_job("abc123"))
    with pytest.raises(InputError, match="no job with id 'x'"):
        store.resolve("x")
    with pytest.raises(InputError, match="no job id given"):
        store.resolve("  ")
    # Prefix matching is literal: LIKE wildcards in the text match nothing.
    with pytest.raises(InputError, match="no job with id '%'"):
        store.resolve("%")


def test_delete_removes_job_and_chunks(store: JobStore, db_path: Path) -> None:
    store.create(make_job("keep"))
    store.create(make_job("gone"))
    store.delete("gone")
    with pytest.raises(InputError):
        store.get("gone")
    raw = sqlite3.connect(db_path)
    try:
        assert raw.execute("SELECT count(*) FROM chunks WHERE job_id = 'gone'").fetchone() == (0,)
    finally:
        raw.close()
    assert store.get("keep").chunks_total == 3
    with pytest.raises(InputError, match="no job with id 'gone'"):
        store.delete("gone")


def test_prune_deletes_only_old_finished_jobs(store: JobStore) -> None:
    for job_id, state in (("old-done", JobState.COMPLETED), ("old-failed", JobState.FAILED)):
        job = make_job(job_id, state=state)
        job.finished_at = time.time() - 40 * 86400  # a finish time given by the caller is kept
        store.create(job)
    store.create(make_job("new-done", state=JobState.COMPLETED))
    old_running = make_job("old-running")
    store.create(old_running)
    assert store.prune(older_than_days=30) == 2
    assert sorted(j.id for j in store.list()) == ["new-done", "old-running"]


# -- the state machine on stored state -----------------------------------------------------


def test_completed_chunk_cannot_go_back(store: JobStore) -> None:
    job = make_job()
    store.create(job)
    stale_copy = store.get(job.id)  # another process's view, taken before completion
    job.chunks[0].set_state(JobState.COMPLETED)
    job.chunks[0].result_path = "/cache/0.mp4"
    store.save_chunk(job.id, job.chunks[0])

    stale_copy.chunks[0].set_state(JobState.IN_PROGRESS)  # allowed in its own memory
    with pytest.raises(InvalidTransition, match="chunk 0: cannot go from COMPLETED"):
        store.save_chunk(job.id, stale_copy.chunks[0])
    stored = store.get(job.id).chunks[0]
    assert stored.state is JobState.COMPLETED and stored.result_path == "/cache/0.mp4"


def test_save_chunks_is_all_or_nothing(store: JobStore) -> None:
    job = make_job()
    store.create(job)
    job.chunks[1].set_state(JobState.COMPLETED)
    store.save_chunk(job.id, job.chunks[1])
    fresh = [dataclasses.replace(c, state=JobState.IN_PROGRESS, attempt=1) for c in job.chunks]
    with pytest.raises(InvalidTransition):
        store.save_chunks(job.id, fresh)
    assert [c.state for c in store.get(job.id).chunks] == [
        JobState.IN_QUEUE,
        JobState.COMPLETED,
        JobState.IN_QUEUE,
    ]
    del fresh[1]
    store.save_chunks(job.id, fresh)
    assert [c.attempt for c in store.get(job.id).chunks] == [1, 0, 1]


def test_job_transitions_are_checked_against_the_stored_state(store: JobStore) -> None:
    job = make_job()
    store.create(job)
    other = store.get(job.id)
    job.set_state(JobState.COMPLETED)
    store.save_job(job)
    other.set_state(JobState.CANCELLED)  # IN_QUEUE -> CANCELLED looks fine from its copy
    with pytest.raises(InvalidTransition, match="cannot go from COMPLETED to CANCELLED"):
        store.save_job(other)
    assert store.get(job.id).state is JobState.COMPLETED


def test_failed_and_cancelled_jobs_can_be_restarted(store: JobStore) -> None:
    job = make_job()
    store.create(job)
    chunk = job.chunks[0]
    for state in (JobState.IN_PROGRESS, JobState.FAILED, JobState.IN_QUEUE, JobState.CANCELLED):
        chunk.set_state(state)
        store.save_chunk(job.id, chunk)
        job.set_state(state)
        store.save_job(job)
    chunk.set_state(JobState.IN_QUEUE)
    store.save_chunk(job.id, chunk)
    job.set_state(JobState.IN_QUEUE)
    store.save_job(job)
    assert store.get(job.id).state is JobState.IN_QUEUE


# -- no secrets ----------------------------------------------------------------------------


def test_no_key_is_ever_stored(
    store: JobStore, db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_key = "rpa_FAKEKEY0123456789abcdef"
    monkeypatch.setenv("RUNPOD_API_KEY", fake_key)
    job = make_job()
    store.create(job)
    job.set_state(JobState.IN_PROGRESS)
    store.save_job(job)
    store.save_chunks(job.id, job.chunks)
    with store.lease(job.id):
        pass

    raw = sqlite3.connect(db_path)
    try:
        tables = [r[0] for r in raw.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        columns = [c[1] for t in tables for c in raw.execute(f"PRAGMA table_info({t})")]
        settings = json.loads(raw.execute("SELECT settings FROM jobs").fetchone()[0])
    finally:
        raw.close()
    for name in (*tables, *columns, *settings):
        assert not re.search(SECRET_NAME, name, re.I), name
    for file in db_path.parent.iterdir():  # the WAL and shm files included
        assert fake_key.encode() not in file.read_bytes()


def test_settings_with_a_key_field_are_refused(store: JobStore) -> None:
    @dataclasses.dataclass
    class LeakySettings(RenderSettings):
        api_key: str = "rpa_FAKEKEY"

    job = make_job()
    job.settings = LeakySettings(endpoint_url="http://127.0.0.1:8000")
    with pytest.raises(ValueError, match="'api_key'"):
        store.create(job)
    assert store.list() == []


# -- concurrency ---------------------------------------------------------------------------


@pytest.mark.parametrize("shared", [True, False], ids=["one-store", "store-per-thread"])
def test_threads_do_not_lose_updates(db_path: Path, shared: bool) -> None:
    rounds = 30
    main = JobStore(db_path)
    job = make_job(chunks=3)
    main.create(job)
    stores = [main if shared else JobStore(db_path) for _ in job.chunks]
    errors: list[BaseException] = []
    start = threading.Barrier(len(job.chunks) + 1)

    def drive(store: JobStore, chunk: Chunk) -> None:
        try:
            start.wait()
            for attempt in range(1, rounds + 1):
                chunk.attempt = attempt
                chunk.set_state(JobState.IN_PROGRESS)
                chunk.runpod_id = f"run-{chunk.index}-{attempt}"
                store.save_chunk(job.id, chunk)
                chunk.set_state(JobState.IN_QUEUE if attempt < rounds else JobState.COMPLETED)
                store.save_chunk(job.id, chunk)
        except BaseException as exc:
            errors.append(exc)

    workers = [
        threading.Thread(target=drive, args=(s, dataclasses.replace(c)))
        for s, c in zip(stores, job.chunks, strict=True)
    ]
    for worker in workers:
        worker.start()
    start.wait()
    for n in range(rounds):  # the main thread writes job fields meanwhile
        job.stage = f"round {n}"
        main.save_job(job)
    for worker in workers:
        worker.join()
    assert errors == []
    loaded = main.get(job.id)
    assert loaded.stage == f"round {rounds - 1}"
    assert [(c.state, c.attempt, c.runpod_id) for c in loaded.chunks] == [
        (JobState.COMPLETED, rounds, f"run-{i}-{rounds}") for i in range(3)
    ]
    for store in {id(s): s for s in stores}.values():
        store.close()


def test_two_processes_do_not_lose_updates(store: JobStore, db_path: Path) -> None:
    rounds = 60
    job = make_job(chunks=4)
    store.create(job)
    proc = child(WRITER_CHILD, db_path, job.id, rounds)
    expect_line(proc, "ready")
    assert proc.stdin is not None
    proc.stdin.write("go\n")
    proc.stdin.flush()
    for attempt in range(1, rounds + 1):
        for chunk in job.chunks[::2]:
            chunk.attempt = attempt
            store.save_chunk(job.id, chunk)
    assert finish(proc).strip() == "done"
    assert [c.attempt for c in store.get(job.id).chunks] == [rounds] * 4


# -- leases --------------------------------------------------------------------------------


def test_lease_is_exclusive_within_a_process(store: JobStore, db_path: Path) -> None:
    store.create(make_job())
    with store.lease("a1b2c3d4") as lease:
        holder = store.lease_holder("a1b2c3d4")
        assert holder is not None and holder.pid == os.getpid()
        assert lease.info.pid == os.getpid()
        with pytest.raises(JobLocked, match="already being driven by this program"):
            store.lease("a1b2c3d4")
        with JobStore(db_path) as other, pytest.raises(JobLocked):
            other.lease("a1b2c3d4")
    assert lease.released
    assert store.lease_holder("a1b2c3d4") is None
    with store.lease("a1b2c3d4"):
        pass


def test_lease_held_by_another_live_process(store: JobStore, db_path: Path) -> None:
    store.create(make_job())
    proc = child(LEASE_CHILD, db_path, "a1b2c3d4", 0.1)
    expect_line(proc, "leased")
    holder = store.lease_holder("a1b2c3d4")
    assert holder is not None and holder.pid == proc.pid
    with pytest.raises(JobLocked, match=rf"another process \(pid {proc.pid} on ") as info:
        store.lease("a1b2c3d4")
    assert "wait for it to finish" in str(info.value)
    with pytest.raises(JobLocked):
        store.delete("a1b2c3d4")
    assert store.interrupted() == []
    assert finish(proc, "go\n").strip() == "released"
    assert store.lease_holder("a1b2c3d4") is None
    with store.lease("a1b2c3d4"):
        pass


def test_lease_of_a_killed_process_is_taken_over(db_path: Path) -> None:
    # A stale limit far longer than the test: only the dead pid frees the lease.
    with JobStore(db_path, heartbeat_s=0.1, stale_after_s=600) as store:
        job = make_job()
        job.state = JobState.IN_PROGRESS
        store.create(job)
        proc = child(LEASE_CHILD, db_path, job.id, 0.1)
        expect_line(proc, "leased")
        with pytest.raises(JobLocked):
            store.lease(job.id)
        proc.kill()  # SIGKILL: no clean-up runs in the child
        proc.communicate(timeout=10)
        assert store.lease_holder(job.id) is None
        assert [j.id for j in store.interrupted()] == [job.id]
        with store.lease(job.id) as lease:
            holder = store.lease_holder(job.id)
            assert holder is not None and holder.pid == os.getpid()
            assert not lease.lost
            assert store.interrupted() == []


def test_stale_heartbeat_is_taken_over_and_the_loser_knows(db_path: Path) -> None:
    job = make_job()
    with (
        JobStore(db_path, heartbeat_s=30, stale_after_s=60) as hung,
        JobStore(db_path, heartbeat_s=0.1, stale_after_s=5) as rescuer,
    ):
        hung.create(job)
        lease = hung.lease(job.id)
        # The holder's pid is alive (it is us) but it stopped beating long ago.
        raw = sqlite3.connect(db_path)
        raw.execute("UPDATE leases SET heartbeat_at = heartbeat_at - 100")
        raw.commit()
        raw.close()
        assert rescuer.lease_holder(job.id) is None
        with rescuer.lease(job.id):
            assert lease.heartbeat() is False
            assert lease.lost
            with pytest.raises(JobLocked, match="taken over by another process"):
                lease.check()
            lease.release()  # must not drop the new holder's lease
            holder = rescuer.lease_holder(job.id)
            assert holder is not None and holder.pid == os.getpid()


def test_heartbeat_runs_in_the_background(store: JobStore, db_path: Path) -> None:
    store.create(make_job())
    with store.lease("a1b2c3d4") as lease:
        first = lease.info.heartbeat_at
        deadline = time.monotonic() + 5
        while lease.info.heartbeat_at == first and time.monotonic() < deadline:
            time.sleep(0.02)
        holder = store.lease_holder("a1b2c3d4")
        assert holder is not None and holder.heartbeat_at > first
        lease.check()


def test_interrupted_lists_unfinished_jobs_nobody_drives(store: JobStore) -> None:
    for job_id, state in (
        ("queued", JobState.IN_QUEUE),
        ("running", JobState.IN_PROGRESS),
        ("done", JobState.COMPLETED),
        ("failed", JobState.FAILED),
        ("driven", JobState.IN_PROGRESS),
    ):
        store.create(make_job(job_id, state=state))
    with store.lease("driven"):
        interrupted = store.interrupted()
    assert [j.id for j in interrupted] == ["running", "queued"]
    assert all(j.chunks_total == 3 for j in interrupted)
    assert [j.id for j in store.interrupted()] == ["driven", "running", "queued"]


def test_own_leased_job_can_be_deleted(store: JobStore) -> None:
    store.create(make_job())
    lease = store.lease("a1b2c3d4")
    store.delete("a1b2c3d4")
    assert lease.released
    assert store.list() == []


def test_close_releases_leases(db_path: Path) -> None:
    store = JobStore(db_path, heartbeat_s=0.05, stale_after_s=5)
    store.create(make_job())
    lease = store.lease("a1b2c3d4")
    store.close()
    assert lease.released
    with JobStore(db_path) as other:
        assert other.lease_holder("a1b2c3d4") is None
        with other.lease("a1b2c3d4"):
            pass


def test_intervals_are_checked(db_path: Path) -> None:
    with pytest.raises(ValueError, match="heartbeat_s"):
        JobStore(db_path, heartbeat_s=30, stale_after_s=20)
