"""The job store: jobs and their chunks in SQLite (WAL), shared by the GUI, the CLI and the service.

Every state change is checked against the *stored* state inside the same write transaction, so
no process (or thread) holding a stale copy can move a finished chunk backwards. One process
drives a job at a time: it holds the job's lease (pid + hostname + a heartbeat from a background
thread). A lease whose heartbeat is old, or whose pid is gone on this host, is stale and may be
taken over, which is how a job is resumed after a crash or ``kill -9``.
"""

from __future__ import annotations

import builtins
import contextlib
import json
import logging
import os
import re
import socket
import sqlite3
import sys
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from infinitetalk_gui.core import paths
from infinitetalk_gui.core.errors import ConfigError, InputError, JobLocked
from infinitetalk_gui.core.models import (
    TERMINAL_STATES,
    Chunk,
    InvalidTransition,
    Job,
    JobState,
    RenderSettings,
    check_transition,
)

log = logging.getLogger(__name__)

DEFAULT_HEARTBEAT_S = 5.0
DEFAULT_STALE_AFTER_S = 20.0
DEFAULT_BUSY_TIMEOUT_S = 15.0

# Field names that look like credentials: the store refuses settings carrying one, so a key
# added to RenderSettings by mistake can never reach the database file.
_SECRET_NAME = re.compile(r"api[_-]?key|secret|token|passw|authoriz|bearer|credential", re.I)

# Schema migrations: MIGRATIONS[n] takes the database from user_version n to n + 1.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """
        CREATE TABLE jobs (
            id TEXT PRIMARY KEY,
            image_path TEXT NOT NULL,
            audio_path TEXT NOT NULL,
            output_path TEXT NOT NULL,
            settings TEXT NOT NULL,
            state TEXT NOT NULL,
            stage TEXT NOT NULL,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            finished_at REAL,
            audio_duration_ms INTEGER,
            error TEXT
        )
        """,
        "CREATE INDEX jobs_by_created ON jobs (created_at)",
        """
        CREATE TABLE chunks (
            job_id TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
            idx INTEGER NOT NULL,
            start_ms INTEGER NOT NULL,
            end_ms INTEGER NOT NULL,
            state TEXT NOT NULL,
            attempt INTEGER NOT NULL,
            runpod_id TEXT,
            queue_ms INTEGER,
            exec_ms INTEGER,
            result_path TEXT,
            error TEXT,
            submitted_at REAL,
            updated_at REAL,
            PRIMARY KEY (job_id, idx)
        )
        """,
        """
        CREATE TABLE leases (
            job_id TEXT PRIMARY KEY REFERENCES jobs (id) ON DELETE CASCADE,
            owner TEXT NOT NULL,
            pid INTEGER NOT NULL,
            hostname TEXT NOT NULL,
            acquired_at REAL NOT NULL,
            heartbeat_at REAL NOT NULL
        )
        """,
    ),
)
SCHEMA_VERSION = len(MIGRATIONS)

_JOB_COLUMNS = (
    "id, image_path, audio_path, output_path, settings, state, stage, created_at, updated_at, "
    "finished_at, audio_duration_ms, error"
)
_CHUNK_COLUMNS = (
    "job_id, idx, start_ms, end_ms, state, attempt, runpod_id, queue_ms, exec_ms, result_path, "
    "error, submitted_at, updated_at"
)
_LEASE_COLUMNS = "job_id, owner, pid, hostname, acquired_at, heartbeat_at"
_UPSERT_CHUNK = (
    f"INSERT INTO chunks ({_CHUNK_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (job_id, idx) DO UPDATE SET start_ms = excluded.start_ms, "
    "end_ms = excluded.end_ms, state = excluded.state, attempt = excluded.attempt, "
    "runpod_id = excluded.runpod_id, queue_ms = excluded.queue_ms, exec_ms = excluded.exec_ms, "
    "result_path = excluded.result_path, error = excluded.error, "
    "submitted_at = excluded.submitted_at, updated_at = excluded.updated_at"
)


@dataclass(frozen=True)
class LeaseInfo:
    """Who drives a job: a process (pid on hostname) and when it last said it was alive."""

    job_id: str
    pid: int
    hostname: str
    acquired_at: float
    heartbeat_at: float


def pid_alive(pid: int) -> bool:
    """True when a process with this id runs on this machine (a zombie counts as alive)."""
    if pid <= 0:
        return False
    if sys.platform == "win32":
        return _windows_pid_alive(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, it belongs to another user
    return True


if sys.platform == "win32":
    import ctypes

    def _windows_pid_alive(pid: int) -> bool:
        # os.kill(pid, 0) would terminate the process on Windows: ask the kernel instead.
        query_limited_information, still_active, access_denied = 0x1000, 259, 5
        kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)
        handle = kernel32.OpenProcess(query_limited_information, False, pid)
        if not handle:
            return bool(ctypes.get_last_error() == access_denied)
        try:
            code = ctypes.c_ulong()
            if not kernel32.GetExitCodeProcess(handle, ctypes.byref(code)):
                return True
            return code.value == still_active
        finally:
            kernel32.CloseHandle(handle)


class Lease:
    """The right to drive one job, renewed by a background heartbeat until released.

    Use it as a context manager. If another process takes the job over (because this one
    stalled past the stale limit), ``lost`` becomes true and ``check()`` raises JobLocked:
    the pipeline should check it between steps and stop writing.
    """

    def __init__(self, store: JobStore, info: LeaseInfo, owner: str, heartbeat_s: float) -> None:
        self._store = store
        self._owner = owner
        self._heartbeat_s = heartbeat_s
        self._stop = threading.Event()
        self._lost = threading.Event()
        self._released = False
        self._info_lock = threading.Lock()
        self._info = info
        self._thread = threading.Thread(
            target=self._beat_until_stopped,
            name=f"lease-heartbeat-{info.job_id[:8]}",
            daemon=True,  # never keeps the interpreter alive; release() stops it cleanly
        )

    @property
    def job_id(self) -> str:
        return self._info.job_id

    @property
    def info(self) -> LeaseInfo:
        with self._info_lock:
            return self._info

    @property
    def lost(self) -> bool:
        return self._lost.is_set()

    @property
    def released(self) -> bool:
        return self._released

    def check(self) -> None:
        """Raise JobLocked if another process has taken this job over."""
        if self._lost.is_set():
            raise JobLocked(
                f"job {self.job_id} was taken over by another process while this one "
                "was not responding; this process stopped driving it"
            )

    def heartbeat(self) -> bool:
        """Renew the lease now; False (and ``lost``) when someone else holds it."""
        if self._released or self._lost.is_set():
            return False
        now = time.time()
        if self._store._renew_lease(self.job_id, self._owner, now):
            with self._info_lock:
                info = self._info
                self._info = LeaseInfo(info.job_id, info.pid, info.hostname, info.acquired_at, now)
            return True
        self._lost.set()
        log.warning("lost the lease on job %s: another process took it over", self.job_id)
        return False

    def release(self) -> None:
        """Stop the heartbeat and give the job back. Idempotent."""
        if self._released:
            return
        self._released = True
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join()
        self._store._release_lease(self)

    def _start(self) -> None:
        self._thread.start()

    def _beat_until_stopped(self) -> None:
        while not self._stop.wait(self._heartbeat_s):
            try:
                if not self.heartbeat():
                    return
            except sqlite3.Error as exc:
                # A busy or briefly unavailable database: try again on the next beat; the
                # stale limit is several beats long, so one miss does not lose the lease.
                log.warning("heartbeat for job %s failed: %s", self.job_id, exc)

    def __enter__(self) -> Lease:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


class JobStore:
    """Jobs and chunks in one SQLite file; safe to share between threads and processes."""

    def __init__(
        self,
        path: Path | None = None,
        *,
        heartbeat_s: float = DEFAULT_HEARTBEAT_S,
        stale_after_s: float = DEFAULT_STALE_AFTER_S,
        busy_timeout_s: float = DEFAULT_BUSY_TIMEOUT_S,
    ) -> None:
        if not 0 < heartbeat_s < stale_after_s:
            raise ValueError("heartbeat_s must be positive and shorter than stale_after_s")
        self.path = Path(path) if path is not None else paths.jobs_db()
        self.heartbeat_s = heartbeat_s
        self.stale_after_s = stale_after_s
        self._busy_timeout_s = busy_timeout_s
        self._hostname = socket.gethostname()
        # One connection shared by every thread, serialised by this lock; other processes
        # are kept in order by SQLite's locks, waited on for up to busy_timeout_s.
        self._lock = threading.RLock()
        self._leases: set[Lease] = set()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(
                self.path,
                timeout=busy_timeout_s,
                isolation_level=None,  # transactions are explicit (BEGIN IMMEDIATE for writes)
                check_same_thread=False,
            )
        except sqlite3.Error as exc:
            raise ConfigError(f"cannot open the job database {self.path}: {exc}") from exc
        self._db.row_factory = sqlite3.Row
        try:
            self._configure()
            self._migrate()
        except sqlite3.DatabaseError as exc:
            self._db.close()
            raise ConfigError(
                f"the job database {self.path} cannot be used ({exc}); "
                "move the file away to start with an empty job list"
            ) from exc
        except BaseException:
            self._db.close()
            raise

    # -- setup ------------------------------------------------------------------------------

    def _configure(self) -> None:
        db = self._db
        db.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_s * 1000)}")
        db.execute("PRAGMA foreign_keys = ON")
        mode = db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            # Some network file systems cannot do WAL; the store still works, just slower.
            log.warning("the job database %s runs in %s mode, not WAL", self.path, mode)
        # NORMAL is durable against crashes of the app in WAL mode; only a power cut may lose
        # the last state change, which resume re-derives from RunPod anyway.
        db.execute("PRAGMA synchronous = NORMAL")

    def _migrate(self) -> None:
        with self._write() as db:
            version = int(db.execute("PRAGMA user_version").fetchone()[0])
            if version > SCHEMA_VERSION:
                raise ConfigError(
                    f"the job database {self.path} was written by a newer version of "
                    f"InfiniteTalk GUI (schema {version}, this one knows {SCHEMA_VERSION}); "
                    "update the app or move the file away"
                )
            for target in range(version, SCHEMA_VERSION):
                for statement in MIGRATIONS[target]:
                    db.execute(statement)
                log.info("job database %s migrated to schema %d", self.path, target + 1)
            if version != SCHEMA_VERSION:
                db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction that takes SQLite's write lock up front.

        IMMEDIATE rather than deferred: a read that later upgrades to a write can fail with
        SQLITE_BUSY without waiting, which would turn concurrent writers into errors.
        """
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise

    @contextlib.contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """A read transaction: several SELECTs see one consistent snapshot."""
        with self._lock:
            self._db.execute("BEGIN")
            try:
                yield self._db
            finally:
                self._db.execute("COMMIT")

    # -- jobs and chunks --------------------------------------------------------------------

    def create(self, job: Job) -> None:
        """Store a new job and its chunks; sets ``created_at`` and ``updated_at``."""
        settings = _settings_json(job.settings)
        now = time.time()
        with self._write() as db:
            if db.execute("SELECT 1 FROM jobs WHERE id = ?", (job.id,)).fetchone():
                raise ValueError(f"a job with id '{job.id}' already exists")
            finished_at = _finished_at(job, now)
            db.execute(
                f"INSERT INTO jobs ({_JOB_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    job.id,
                    job.image_path,
                    job.audio_path,
                    job.output_path,
                    settings,
                    str(job.state),
                    job.stage,
                    now,
                    now,
                    finished_at,
                    job.audio_duration_ms,
                    job.error,
                ),
            )
            db.executemany(_UPSERT_CHUNK, [_chunk_row(job.id, c, now) for c in job.chunks])
        job.created_at = job.updated_at = now
        job.finished_at = finished_at
        for chunk in job.chunks:
            chunk.updated_at = now

    def save_job(self, job: Job) -> None:
        """Write the job's own fields (not its chunks); refuses a state the stored one forbids.

        Sets ``updated_at``; sets ``finished_at`` when the job reaches a terminal state and
        clears it when the job goes back to work (resume).
        """
        settings = _settings_json(job.settings)
        now = time.time()
        with self._write() as db:
            row = db.execute("SELECT state FROM jobs WHERE id = ?", (job.id,)).fetchone()
            if row is None:
                raise _no_job(job.id)
            try:
                check_transition(JobState(row["state"]), job.state)
            except InvalidTransition as exc:
                raise InvalidTransition(f"job {job.id}: {exc}") from None
            finished_at = _finished_at(job, now)
            db.execute(
                "UPDATE jobs SET image_path = ?, audio_path = ?, output_path = ?, settings = ?, "
                "state = ?, stage = ?, updated_at = ?, finished_at = ?, audio_duration_ms = ?, "
                "error = ? WHERE id = ?",
                (
                    job.image_path,
                    job.audio_path,
                    job.output_path,
                    settings,
                    str(job.state),
                    job.stage,
                    now,
                    finished_at,
                    job.audio_duration_ms,
                    job.error,
                    job.id,
                ),
            )
        job.updated_at = now
        job.finished_at = finished_at

    def save_chunk(self, job_id: str, chunk: Chunk) -> None:
        """Insert or update one chunk; refuses a state the stored one forbids. Sets updated_at."""
        self.save_chunks(job_id, (chunk,))

    def save_chunks(self, job_id: str, chunks: Sequence[Chunk]) -> None:
        """Insert or update several chunks in one transaction: all are written or none."""
        if not chunks:
            return
        now = time.time()
        with self._write() as db:
            if not db.execute("SELECT 1 FROM jobs WHERE id = ?", (job_id,)).fetchone():
                raise _no_job(job_id)
            for chunk in chunks:
                row = db.execute(
                    "SELECT state FROM chunks WHERE job_id = ? AND idx = ?", (job_id, chunk.index)
                ).fetchone()
                if row is not None:
                    try:
                        check_transition(JobState(row["state"]), chunk.state)
                    except InvalidTransition as exc:
                        raise InvalidTransition(
                            f"job {job_id}, chunk {chunk.index}: {exc}"
                        ) from None
                db.execute(_UPSERT_CHUNK, _chunk_row(job_id, chunk, now))
        for chunk in chunks:
            chunk.updated_at = now

    def replace_chunks(self, job_id: str, chunks: Sequence[Chunk]) -> None:
        """Make ``chunks`` the job's whole chunk list, bypassing the state machine.

        For a re-plan (the audio changed since a crash mid-split) or a finished chunk whose
        video vanished from the cache and must be rendered again: the only writes that may
        start a chunk record afresh.
        """
        now = time.time()
        with self._write() as db:
            if not db.execute("SELECT 1 FROM jobs WHERE id = ?", (job_id,)).fetchone():
                raise _no_job(job_id)
            db.execute("DELETE FROM chunks WHERE job_id = ?", (job_id,))
            db.executemany(_UPSERT_CHUNK, [_chunk_row(job_id, c, now) for c in chunks])
        for chunk in chunks:
            chunk.updated_at = now

    def get(self, job_id: str) -> Job:
        """The job with this exact id, its chunks ordered by index; InputError if none."""
        with self._read() as db:
            row = db.execute(f"SELECT {_JOB_COLUMNS} FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None:
                raise _no_job(job_id)
            return self._load(db, [row])[0]

    def resolve(self, id_or_prefix: str) -> Job:
        """The job whose id is, or uniquely starts with, the given text (as typed on the CLI)."""
        wanted = id_or_prefix.strip()
        if not wanted:
            raise InputError("no job id given: run 'infinitetalk-gui jobs' to see the job ids")
        with self._read() as db:
            rows = db.execute(
                f"SELECT {_JOB_COLUMNS} FROM jobs WHERE substr(id, 1, ?) = ? "
                "ORDER BY created_at DESC, rowid DESC",
                (len(wanted), wanted),
            ).fetchall()
            exact = [r for r in rows if r["id"] == wanted]
            if exact:
                rows = exact
            if not rows:
                raise _no_job(wanted)
            if len(rows) > 1:
                shown = ", ".join(r["id"] for r in rows[:5])
                more = f" and {len(rows) - 5} more" if len(rows) > 5 else ""
                raise InputError(
                    f"'{wanted}' matches several jobs: {shown}{more}; type more of the id"
                )
            return self._load(db, rows)[0]

    def list(self, limit: int | None = 50) -> builtins.list[Job]:
        """The most recent jobs with their chunks, newest first (all of them if limit is None)."""
        with self._read() as db:
            rows = db.execute(
                f"SELECT {_JOB_COLUMNS} FROM jobs ORDER BY created_at DESC, rowid DESC LIMIT ?",
                (-1 if limit is None else max(limit, 0),),
            ).fetchall()
            return self._load(db, rows)

    def delete(self, job_id: str) -> None:
        """Forget a job and its chunks. JobLocked if another live process is driving it."""
        with self._write() as db:
            if not db.execute("SELECT 1 FROM jobs WHERE id = ?", (job_id,)).fetchone():
                raise _no_job(job_id)
            holder = self._live_holder(db, job_id)
            ours = self._own_leases(job_id)
            if holder is not None and not ours:
                raise JobLocked(self._locked_message(holder, "driven"))
            db.execute("DELETE FROM jobs WHERE id = ?", (job_id,))
        # Outside the transaction: release() waits for the heartbeat thread, which needs the lock.
        for lease in ours:
            lease.release()

    def prune(self, older_than_days: float) -> int:
        """Delete finished jobs (any terminal state) older than this; returns how many."""
        cutoff = time.time() - older_than_days * 86400
        terminal = sorted(str(s) for s in TERMINAL_STATES)
        marks = ", ".join("?" for _ in terminal)
        with self._write() as db:
            rows = db.execute(
                f"SELECT id FROM jobs WHERE state IN ({marks}) "
                "AND coalesce(finished_at, updated_at) < ?",
                (*terminal, cutoff),
            ).fetchall()
            doomed = [r["id"] for r in rows if self._live_holder(db, r["id"]) is None]
            db.executemany("DELETE FROM jobs WHERE id = ?", [(i,) for i in doomed])
        return len(doomed)

    def interrupted(self) -> builtins.list[Job]:
        """Unfinished jobs nobody is driving (their process died): offered for resume."""
        terminal = sorted(str(s) for s in TERMINAL_STATES)
        marks = ", ".join("?" for _ in terminal)
        with self._read() as db:
            rows = db.execute(
                f"SELECT {_JOB_COLUMNS} FROM jobs WHERE state NOT IN ({marks}) "
                "ORDER BY created_at DESC, rowid DESC",
                terminal,
            ).fetchall()
            orphans = [r for r in rows if self._live_holder(db, r["id"]) is None]
            return self._load(db, orphans)

    # -- leases -----------------------------------------------------------------------------

    def lease(self, job_id: str) -> Lease:
        """Take the right to drive this job; JobLocked if another live process holds it.

        A stale lease (no heartbeat for ``stale_after_s``, or its pid gone on this host) is
        taken over. The returned lease heartbeats in a background thread until released.
        """
        now = time.time()
        owner = uuid.uuid4().hex
        with self._write() as db:
            if not db.execute("SELECT 1 FROM jobs WHERE id = ?", (job_id,)).fetchone():
                raise _no_job(job_id)
            previous = self._stored_lease(db, job_id)
            if previous is not None:
                if self._is_live(previous):
                    raise JobLocked(self._locked_message(previous, "driven"))
                log.warning(
                    "taking over job %s from pid %d on %s, which stopped responding %.0f s ago",
                    job_id,
                    previous.pid,
                    previous.hostname,
                    now - previous.heartbeat_at,
                )
            info = LeaseInfo(job_id, os.getpid(), self._hostname, now, now)
            db.execute(
                f"INSERT OR REPLACE INTO leases ({_LEASE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)",
                (job_id, owner, info.pid, info.hostname, now, now),
            )
        lease = Lease(self, info, owner, self.heartbeat_s)
        with self._lock:
            self._leases.add(lease)
        lease._start()
        return lease

    def lease_holder(self, job_id: str) -> LeaseInfo | None:
        """The live process driving this job, or None (nobody, or its holder died)."""
        with self._read() as db:
            return self._live_holder(db, job_id)

    def is_live(self, info: LeaseInfo) -> bool:
        """Whether a lease is still held: recent heartbeat and, on this host, a running pid."""
        return self._is_live(info)

    def _is_live(self, info: LeaseInfo) -> bool:
        if time.time() - info.heartbeat_at > self.stale_after_s:
            return False
        return not (info.hostname == self._hostname and not pid_alive(info.pid))

    def _stored_lease(self, db: sqlite3.Connection, job_id: str) -> LeaseInfo | None:
        row = db.execute(
            "SELECT pid, hostname, acquired_at, heartbeat_at FROM leases WHERE job_id = ?",
            (job_id,),
        ).fetchone()
        if row is None:
            return None
        return LeaseInfo(
            job_id, int(row["pid"]), row["hostname"], row["acquired_at"], row["heartbeat_at"]
        )

    def _live_holder(self, db: sqlite3.Connection, job_id: str) -> LeaseInfo | None:
        info = self._stored_lease(db, job_id)
        return info if info is not None and self._is_live(info) else None

    def _own_leases(self, job_id: str) -> builtins.list[Lease]:
        with self._lock:
            return [lease for lease in self._leases if lease.job_id == job_id and not lease.lost]

    def _locked_message(self, holder: LeaseInfo, what: str) -> str:
        if holder.pid == os.getpid() and holder.hostname == self._hostname:
            return f"job {holder.job_id} is already being {what} by this program"
        seen = max(0.0, time.time() - holder.heartbeat_at)
        return (
            f"job {holder.job_id} is being {what} by another process (pid {holder.pid} on "
            f"{holder.hostname}, last seen {seen:.0f} s ago): wait for it to finish or "
            "cancel it there"
        )

    def _renew_lease(self, job_id: str, owner: str, now: float) -> bool:
        with self._lock:
            cursor = self._db.execute(
                "UPDATE leases SET heartbeat_at = ? WHERE job_id = ? AND owner = ?",
                (now, job_id, owner),
            )
            return cursor.rowcount == 1

    def _release_lease(self, lease: Lease) -> None:
        with self._lock:
            self._leases.discard(lease)
            # A closed store cannot delete it: the lease then goes stale on its own.
            with contextlib.suppress(sqlite3.ProgrammingError):
                self._db.execute(
                    "DELETE FROM leases WHERE job_id = ? AND owner = ?",
                    (lease.job_id, lease._owner),
                )

    # -- loading ----------------------------------------------------------------------------

    def _load(self, db: sqlite3.Connection, rows: Iterable[sqlite3.Row]) -> builtins.list[Job]:
        jobs = [_job_from_row(r) for r in rows]
        if not jobs:
            return jobs
        by_id = {job.id: job for job in jobs}
        marks = ", ".join("?" for _ in by_id)
        for row in db.execute(
            f"SELECT {_CHUNK_COLUMNS} FROM chunks WHERE job_id IN ({marks}) ORDER BY job_id, idx",
            builtins.list(by_id),
        ):
            by_id[row["job_id"]].chunks.append(_chunk_from_row(row))
        return jobs

    # -- lifetime ---------------------------------------------------------------------------

    def close(self) -> None:
        """Release this store's leases and close the database. Idempotent."""
        with self._lock:
            leases = builtins.list(self._leases)
        for lease in leases:
            lease.release()
        with self._lock:
            self._db.close()

    def __enter__(self) -> JobStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _no_job(job_id: str) -> InputError:
    return InputError(f"no job with id '{job_id}': run 'infinitetalk-gui jobs' to see the job ids")


def _finished_at(job: Job, now: float) -> float | None:
    if job.state in TERMINAL_STATES:
        return job.finished_at if job.finished_at is not None else now
    return None


def _settings_json(settings: RenderSettings) -> str:
    data = settings.to_dict()
    secret = _secret_field(data)
    if secret is not None:
        raise ValueError(f"refusing to store settings with a field that looks secret: '{secret}'")
    return json.dumps(data, sort_keys=True)


def _secret_field(data: Any) -> str | None:
    if isinstance(data, dict):
        for key, value in data.items():
            if _SECRET_NAME.search(str(key)):
                return str(key)
            found = _secret_field(value)
            if found is not None:
                return found
    elif isinstance(data, list | tuple):
        for value in data:
            found = _secret_field(value)
            if found is not None:
                return found
    return None


def _chunk_row(job_id: str, chunk: Chunk, now: float) -> tuple[Any, ...]:
    return (
        job_id,
        chunk.index,
        chunk.start_ms,
        chunk.end_ms,
        str(chunk.state),
        chunk.attempt,
        chunk.runpod_id,
        chunk.queue_ms,
        chunk.exec_ms,
        chunk.result_path,
        chunk.error,
        chunk.submitted_at,
        now,
    )


def _job_from_row(row: sqlite3.Row) -> Job:
    return Job(
        id=row["id"],
        image_path=row["image_path"],
        audio_path=row["audio_path"],
        output_path=row["output_path"],
        settings=RenderSettings.from_dict(json.loads(row["settings"])),
        state=JobState(row["state"]),
        stage=row["stage"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        finished_at=row["finished_at"],
        audio_duration_ms=row["audio_duration_ms"],
        error=row["error"],
    )


def _chunk_from_row(row: sqlite3.Row) -> Chunk:
    return Chunk(
        index=row["idx"],
        start_ms=row["start_ms"],
        end_ms=row["end_ms"],
        state=JobState(row["state"]),
        attempt=row["attempt"],
        runpod_id=row["runpod_id"],
        queue_ms=row["queue_ms"],
        exec_ms=row["exec_ms"],
        result_path=row["result_path"],
        error=row["error"],
        submitted_at=row["submitted_at"],
        updated_at=row["updated_at"],
    )
