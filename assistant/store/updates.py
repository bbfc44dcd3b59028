"""Incoming platform updates: kept until handled, so a crash loses none and none is handled twice.

Telegram: an adapter stores every update (pending: its JSON, who sent it, a lease)
before Telegram learns it arrived, and marks it handled (JSON and sender cleared) once
its answers went out. A process that dies leaves pending rows behind; when their lease
has run out, a start or a running process's sweep claims them and handles them. A
redelivered update whose key is stored is dropped at intake: it was handled, or it is
pending and will be. Matrix replays events itself (its sync token is saved after
handling), so it only asks `is_handled` before and marks `handled` after.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from itertools import islice
from typing import Any, TypeVar

from sqlalchemy import Index, and_, delete, select, text, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import OperationalError
from sqlmodel import Field, Session, SQLModel

from .db import Database
from .residents import utcnow

logger = logging.getLogger(__name__)
T = TypeVar("T")

LEASE_SECONDS = 30.0  # a pending update may be claimed this long after its holder last renewed it
MAX_ATTEMPTS = 3  # taken once, claimed twice: an update that kills every process is dropped
CHUNK = 500  # keys per IN (...) list
TAKE_CHUNK = 100  # rows per INSERT (7 parameters each)
PENDING_SQL = "lease_until IS NOT NULL"
# Platforms whose adapters replay updates, and whose message ids never repeat in a chat.
REPLAYING_PLATFORMS = frozenset({"telegram", "matrix"})


class ProcessedUpdate(SQLModel, table=True):
    """One update taken in: its platform and key (Telegram update_id, Matrix event_id).

    Pending while `lease_until` is set; then `payload` holds the update's JSON and
    `sender` a hash of who sent it (so /forget finds it). Handled: all three are NULL.
    """

    __table_args__ = (
        Index("ix_processedupdate_pending", "platform", "lease_until",
              sqlite_where=text(PENDING_SQL), postgresql_where=text(PENDING_SQL)),
    )
    platform: str = Field(primary_key=True, max_length=16)
    update_key: str = Field(primary_key=True, max_length=255)
    seen_at: dt.datetime = Field(default_factory=utcnow, index=True)
    lease_until: dt.datetime | None = None
    attempts: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    payload: str | None = None
    sender: str | None = Field(default=None, max_length=64)


TABLE = ProcessedUpdate.__table__  # type: ignore[attr-defined]
HANDLED = {"lease_until": None, "payload": None, "sender": None}
# Plain SQL ({} is the driver's placeholder): a handled mark follows every update, and
# SQLAlchemy takes longer to build a statement than SQLite takes to run it.
MARK_HANDLED_SQL = ("UPDATE processedupdate SET lease_until = NULL, payload = NULL, "
                    "sender = NULL WHERE platform = {} AND update_key = {}")
INSERT_HANDLED_SQL = ("INSERT INTO processedupdate (platform, update_key, seen_at, attempts) "
                      "VALUES ({}, {}, {}, 0) ON CONFLICT DO NOTHING")
PENDING_COLUMNS = ("platform", "update_key", "seen_at", "lease_until", "attempts", "payload",
                   "sender")


@dataclass(frozen=True)
class Entry:
    """An update as taken in: its key, its JSON, and its sender's platform id ("" if none)."""

    key: str
    payload: str
    sender_id: str = ""


@dataclass(frozen=True)
class Claimed:
    """A pending update of a dead process, now leased to the caller (`payload` None: none kept)."""

    key: str
    payload: str | None


def sender_hash(platform: str, user_id: str) -> str:
    """Who sent a pending update, not in clear (a pending row is found by it on /forget)."""
    return hashlib.sha256(f"{platform}:{user_id}".encode()).hexdigest()


def message_key(platform: str, chat_id: str, message_id: str) -> str | None:
    """A stable name of one incoming message, not in clear: what a message handled twice
    (replayed after a crash) uses to find what it did the first time. None where message
    ids may repeat (the console counts from 1 in every session) or are missing."""
    if not message_id or platform not in REPLAYING_PLATFORMS:
        return None
    return hashlib.sha256(f"{platform}:{chat_id}:{message_id}".encode()).hexdigest()


class Updates:
    """Every platform's updates: what retention and /forget need; `of()` gives one platform's."""

    def __init__(self, db: Database):
        self.db = db

    def of(self, platform: str, lease_seconds: float = LEASE_SECONDS) -> UpdateLog:
        return UpdateLog(self.db, platform, lease_seconds)

    def prune(self, older_than: dt.datetime) -> int:
        """Forget handled updates taken in before `older_than`; pending ones are never pruned."""
        with self.db.engine.begin() as connection:
            return connection.execute(delete(TABLE).where(
                TABLE.c.seen_at < older_than, TABLE.c.lease_until.is_(None))).rowcount

    @staticmethod
    def forget_sender(session: Session, platform: str, user_id: str) -> int:
        """/forget: drop the resident's updates still pending (their JSON names them)."""
        return session.execute(update(TABLE).where(
            TABLE.c.platform == platform, TABLE.c.lease_until.is_not(None),
            TABLE.c.sender == sender_hash(platform, user_id)).values(**HANDLED)).rowcount


class UpdateLog:
    """One platform's updates: taken in, leased, claimed after a crash, marked handled.

    Every verb is one short transaction. When the database cannot be reached they log
    and carry on as if nothing was stored: the core can only apologise then anyway, and
    an update that was not stored is simply not replayed.
    """

    def __init__(self, db: Database, platform: str, lease_seconds: float = LEASE_SECONDS):
        self.db, self.platform = db, platform
        self.lease_seconds = lease_seconds

    def _lease(self, now: dt.datetime) -> dt.datetime:
        return now + dt.timedelta(seconds=self.lease_seconds)

    # intake -------------------------------------------------------------------

    def take(self, entries: Sequence[Entry], now: dt.datetime | None = None) -> set[str]:
        """Store new updates as pending under the caller's lease; returns the keys that were new.

        One INSERT per 100 that skips stored keys, so of two processes taking the same
        update only one gets it. All keys count as new when the database is away.
        """
        if not entries:
            return set()
        now = now or utcnow()
        try:
            with self.db.engine.begin() as connection:
                return {key for chunk in _chunks(entries, TAKE_CHUNK)
                        for key in _insert_pending(connection, self.platform, chunk, now,
                                                   self._lease(now))}
        except OperationalError:
            logger.warning("%s: the database is unreachable; %d update(s) taken in unstored",
                           self.platform, len(entries))
            return {e.key for e in entries}

    def handled(self, keys: Iterable[str], now: dt.datetime | None = None) -> None:
        """Record updates as handled (their JSON is dropped); unknown keys are recorded too."""
        rows = [(self.platform, key) for key in keys]
        if not rows:
            return
        try:
            with self.db.engine.begin() as connection:
                marked = _run(connection, MARK_HANDLED_SQL, rows).rowcount
                if marked < len(rows):  # never taken in: Matrix, or the database was away
                    seen = _stamp(connection, now or utcnow())
                    _run(connection, INSERT_HANDLED_SQL, [row + (seen,) for row in rows])
        except OperationalError:
            logger.warning("%s: the database is unreachable; %d update(s) stay pending",
                           self.platform, len(rows))

    def is_handled(self, key: str) -> bool:
        """Whether the update was handled before (False too when the database is away)."""
        try:
            with self.db.engine.connect() as connection:
                return connection.execute(select(TABLE.c.update_key).where(
                    *self._key_is(key), TABLE.c.lease_until.is_(None))).first() is not None
        except OperationalError:
            logger.warning("%s update %s: the database is unreachable; treated as new",
                           self.platform, key)
            return False

    # leases -------------------------------------------------------------------

    def renew(self, keys: Collection[str], now: dt.datetime | None = None) -> None:
        """Extend the lease of updates this process still holds (a backlog can take a while)."""
        self._set_lease(keys, self._lease(now or utcnow()))

    def release(self, keys: Collection[str], now: dt.datetime | None = None) -> None:
        """Let the next start claim these at once (a clean stop left them unhandled)."""
        self._set_lease(keys, now or utcnow())

    def _set_lease(self, keys: Collection[str], until: dt.datetime) -> None:
        try:
            with self.db.engine.begin() as connection:
                for chunk in _chunks(keys):
                    connection.execute(update(TABLE).where(
                        TABLE.c.platform == self.platform, TABLE.c.update_key.in_(chunk),
                        TABLE.c.lease_until.is_not(None)).values(lease_until=until))
        except OperationalError:
            logger.warning("%s: the database is unreachable; leases not changed", self.platform)

    def claim_expired(self, exclude: Collection[str] = (), limit: int = 100,
                      now: dt.datetime | None = None) -> list[Claimed]:
        """Lease to the caller up to `limit` pending updates whose lease ran out (their process
        died), oldest first. Each is claimed by a conditional UPDATE, so of several processes
        claiming at once only one gets it. One claimed MAX_ATTEMPTS times is given up."""
        now = now or utcnow()
        try:
            with self.db.engine.begin() as connection:
                return self._claim(connection, set(exclude), limit, now)
        except OperationalError:
            logger.warning("%s: the database is unreachable; nothing replayed", self.platform)
            return []

    def _claim(self, connection: Connection, exclude: set[str], limit: int,
               now: dt.datetime) -> list[Claimed]:
        expired = and_(TABLE.c.platform == self.platform, TABLE.c.lease_until.is_not(None),
                       TABLE.c.lease_until < now)
        keys = [k for k in connection.execute(
            select(TABLE.c.update_key).where(expired).order_by(TABLE.c.seen_at)
            .limit(limit + len(exclude))).scalars() if k not in exclude][:limit]
        claimed = []
        for key in keys:
            row = connection.execute(
                update(TABLE).where(expired, TABLE.c.update_key == key)
                .values(lease_until=self._lease(now), attempts=TABLE.c.attempts + 1)
                .returning(TABLE.c.payload, TABLE.c.attempts)).first()
            if row is None:
                continue  # another process was first
            payload, attempts = row
            if attempts > MAX_ATTEMPTS:
                logger.error("%s update %s: given up after %d attempts", self.platform, key,
                             attempts - 1)
                connection.execute(update(TABLE).where(*self._key_is(key)).values(**HANDLED))
                continue
            claimed.append(Claimed(key, payload))
        return claimed

    # inspection ---------------------------------------------------------------

    def pending(self) -> list[str]:
        """Keys of the updates still pending (tests and operators)."""
        with self.db.engine.connect() as connection:
            return list(connection.execute(select(TABLE.c.update_key).where(
                TABLE.c.platform == self.platform, TABLE.c.lease_until.is_not(None))).scalars())

    def _key_is(self, key: str) -> tuple[Any, Any]:
        return TABLE.c.platform == self.platform, TABLE.c.update_key == key


def _insert_pending(connection: Connection, platform: str, entries: Sequence[Entry],
                    now: dt.datetime, lease_until: dt.datetime) -> list[str]:
    """One multi-row INSERT ... ON CONFLICT DO NOTHING RETURNING, as plain SQL (SQLAlchemy
    takes 20 times longer to build it than the database to run it)."""
    seen, lease = _stamp(connection, now), _stamp(connection, lease_until)
    values: list[Any] = []
    for e in entries:
        sender = sender_hash(platform, e.sender_id) if e.sender_id else None
        values += [platform, e.key, seen, lease, 1, e.payload, sender]
    row = f"({', '.join(['{}'] * len(PENDING_COLUMNS))})"
    sql = (f"INSERT INTO processedupdate ({', '.join(PENDING_COLUMNS)}) VALUES "
           f"{', '.join([row] * len(entries))} ON CONFLICT DO NOTHING RETURNING update_key")
    return [key for (key,) in _run(connection, sql, tuple(values))]


def _run(connection: Connection, sql: str, parameters: Any) -> Any:
    """Plain SQL with the driver's placeholders (sqlite3 `?`, psycopg `%s`) for `{}`;
    a list of tuples runs it once per tuple, its rowcount the sum."""
    mark = "?" if connection.dialect.paramstyle == "qmark" else "%s"
    return connection.exec_driver_sql(sql.replace("{}", mark), parameters,
                                      execution_options={"preserve_rowcount": True})


def _stamp(connection: Connection, moment: dt.datetime) -> Any:
    """A timestamp as SQLAlchemy itself stores (and so compares) it in this database."""
    column_type = TABLE.c.seen_at.type.dialect_impl(connection.dialect)
    processor = column_type.bind_processor(connection.dialect)
    return processor(moment) if processor else moment


def _chunks(items: Iterable[T], size: int = CHUNK) -> Iterable[list[T]]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk
