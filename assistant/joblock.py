"""Scheduled jobs run once across workers: a PostgreSQL advisory lock around each run.

Every process that runs the scheduler fires the same jobs. On PostgreSQL the
first to take the job's advisory lock runs it; the others skip that run. Their
timers are not in step (an interval starts when a process starts), so a lock
alone would still let each worker run the job once per interval, one after the
other: with `min_interval` the job's last start is kept in `job_run`, and a
holder runs the job only when that is long enough ago. SQLite means one
process, so there the job always runs.

The lock is session-level (pg_try_advisory_lock) on an autocommit connection, so a
long job holds no transaction open; a worker that dies loses its connection and,
with it, the lock.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from contextlib import contextmanager
from typing import Awaitable, Callable, Iterator

from sqlalchemy import text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import Connection
from sqlmodel import Field, SQLModel

from .store.db import Database
from .store.residents import utcnow

logger = logging.getLogger(__name__)

LOCK_NAMESPACE = "asukasbotti:job:"
Job = Callable[[], Awaitable[None]]


class JobRun(SQLModel, table=True):
    """When a scheduled job last started, on any worker."""

    __tablename__ = "job_run"  # type: ignore[assignment]
    name: str = Field(primary_key=True, max_length=64)
    started_at: dt.datetime = Field(default_factory=utcnow)


def lock_key(job_name: str) -> int:
    """A stable signed 64-bit key per job name (advisory locks are numbers)."""
    digest = hashlib.blake2b((LOCK_NAMESPACE + job_name).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


@contextmanager
def run_once(db: Database, job_name: str, min_interval: float | None = None,
             now: dt.datetime | None = None) -> Iterator[bool]:
    """Yields True when this process should run `job_name` now, holding its lock meanwhile.

    `min_interval` (seconds): also skip when any worker started the job more
    recently than that. On SQLite always True.
    """
    if db.is_sqlite:
        yield True
        return
    with db.engine.connect() as connection:
        connection = connection.execution_options(isolation_level="AUTOCOMMIT")
        key = lock_key(job_name)
        if not connection.scalar(text("SELECT pg_try_advisory_lock(:key)"), {"key": key}):
            logger.debug("job %s is running elsewhere; skipped", job_name)
            yield False
            return
        try:
            due = _claim_run(connection, job_name, min_interval, now or utcnow())
            yield due
        finally:
            _unlock(connection, key)


def once(db: Database, job_name: str, job: Job, min_interval: float | None = None) -> Job:
    """`job` for the scheduler: on each firing it runs only in the process that wins `run_once`."""
    async def run() -> None:
        with run_once(db, job_name, min_interval) as mine:
            if mine:
                await job()

    return run


def _claim_run(connection: Connection, job_name: str, min_interval: float | None,
               now: dt.datetime) -> bool:
    """Under the lock: is the job due, and if so record that it starts now."""
    if min_interval is not None:
        last = connection.scalar(text("SELECT started_at FROM job_run WHERE name = :name"),
                                 {"name": job_name})
        if last is not None and (now - last).total_seconds() < min_interval:
            logger.debug("job %s ran %s ago elsewhere; skipped", job_name, now - last)
            return False
    table = JobRun.__table__  # type: ignore[attr-defined]
    upsert = pg_insert(table).values(name=job_name, started_at=now)
    connection.execute(upsert.on_conflict_do_update(
        index_elements=["name"], set_={"started_at": upsert.excluded.started_at}))
    return True


def _unlock(connection: Connection, key: int) -> None:
    """Release the lock; if that fails, drop the connection, which releases it too."""
    try:
        connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
    except Exception:
        logger.exception("releasing advisory lock %s failed; closing the connection", key)
        connection.invalidate()
