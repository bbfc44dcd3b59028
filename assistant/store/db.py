"""The database: one engine per URL, short sessions, SQLite tuned for a small server."""

from __future__ import annotations

import logging
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url
from sqlmodel import Session, SQLModel, create_engine

logger = logging.getLogger(__name__)

# Named constraints, so that migrations can alter them on SQLite too (batch mode needs names).
SQLModel.metadata.naming_convention = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class SchemaError(RuntimeError):
    """The database's schema does not match this program; the message says what to do."""


class Database:
    """Owns the engine; repositories open their sessions through `session()`."""

    def __init__(self, url: str):
        self.url = url
        self.engine = _make_engine(url)

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    def create_all(self) -> None:
        """Create the schema on a new database; refuse one whose migrations are behind.

        Raises `SchemaError` saying what to do (`python -m assistant db upgrade`).
        """
        from . import migrate

        migrate.prepare(self)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session that commits on success and rolls back on any error."""
        with Session(self.engine, expire_on_commit=False) as session:
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise

    def dispose(self) -> None:
        self.engine.dispose()


POOL_SIZE = 12  # asyncio's worker threads (min(32, CPUs + 4): 6 here), the loop's own, spare


def _make_engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        # Kept open: as many connections as the event loop and asyncio's worker threads use
        # at once, so none is opened and closed per message; 3 processes stay far below
        # PostgreSQL's default 100. Pre-ping: a restarted server costs no failed message.
        return create_engine(url, pool_pre_ping=True, pool_size=POOL_SIZE, max_overflow=10)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
    event.listen(engine, "connect", _tune_sqlite)
    return engine


def _tune_sqlite(dbapi_connection, _record) -> None:
    """WAL lets readers and one writer work at once; busy_timeout rides out short locks.

    synchronous=NORMAL in WAL mode: a commit is written to the WAL but not fsynced, so it
    costs no disk flush. A committed transaction survives the process being killed (the
    operating system holds the write); only a power cut or an OS crash may lose the last
    ones before a checkpoint, and never corrupts the database.
    """
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
