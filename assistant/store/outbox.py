"""The delivery outbox: one durable row per push, claimed with a lease, marked once sent.

A row goes pending -> sending (claimed, leased) -> sent | pending (retry) | failed | gone.
A worker that dies mid-batch leaves rows "sending"; once their lease expires any
worker claims them again. Only a row whose network call was under way at the crash,
or whose delivery was not yet marked, can be delivered twice; rows marked sent never are.

`not_before` is the earliest time a row may be claimed: the quiet-hours time or the
enqueue time for new rows, the retry time after a failure, and the lease end while a
row is being sent. One partial index on it makes claiming cheap however many rows
are sent or waiting for the morning.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any, Callable, Collection, Iterable, Iterator

from sqlalchemy import (ARRAY, Index, Integer, any_, bindparam, case, delete, func, select, text,
                        update)
from sqlalchemy.engine import Connection
from sqlmodel import Field, Session, SQLModel

from ..messages import Choice
from .db import Database
from .residents import utcnow

PENDING, SENDING, SENT, FAILED, GONE = "pending", "sending", "sent", "failed", "gone"
STATUSES = (PENDING, SENDING, SENT, FAILED, GONE)
ACTIVE = (PENDING, SENDING)
# Literal (not bound) so that SQLite sees the query imply the partial index's condition.
ACTIVE_SQL = "status IN ('pending', 'sending')"
FINISHED = (SENT, FAILED, GONE)
INSERT_CHUNK = 5_000
ERROR_CHARS = 300

Clock = Callable[[], dt.datetime]


@dataclass(frozen=True)
class OutboxMessage:
    """One push to enqueue; `dedupe_key` makes enqueueing the same push twice harmless."""

    platform: str
    chat_id: str
    text: str
    dedupe_key: str
    resident_id: int | None = None
    news_item_id: int | None = None
    not_before: dt.datetime | None = None
    choices: tuple[Choice, ...] = ()


class OutboxRow(SQLModel, table=True):
    """A push and its delivery state."""

    __tablename__ = "outbox"  # type: ignore[assignment]
    __table_args__ = (
        Index("ix_outbox_due", "not_before", "id",
              sqlite_where=text(ACTIVE_SQL), postgresql_where=text(ACTIVE_SQL)),
    )
    id: int | None = Field(default=None, primary_key=True)
    dedupe_key: str = Field(max_length=255, unique=True)
    platform: str = Field(max_length=16)
    chat_id: str = Field(max_length=255)
    resident_id: int | None = Field(default=None, foreign_key="resident.id",
                                    ondelete="CASCADE", index=True)
    news_item_id: int | None = Field(default=None, index=True)
    text: str
    choices: str = "[]"
    status: str = Field(default=PENDING, max_length=8)
    attempts: int = 0
    not_before: dt.datetime = Field(default_factory=utcnow)
    lease_until: dt.datetime | None = None
    claimed_by: str | None = Field(default=None, max_length=64)
    last_error: str = Field(default="", max_length=ERROR_CHARS)
    created_at: dt.datetime = Field(default_factory=utcnow)
    sent_at: dt.datetime | None = None

    def choice_list(self) -> tuple[Choice, ...]:
        return tuple(Choice(label, value) for label, value in json.loads(self.choices or "[]"))


TABLE = OutboxRow.__table__  # type: ignore[attr-defined]
# Built once: results are written often, and building a statement costs more than SQLite
# takes to run it. Failures only move rows still "sending", so a late answer never undoes
# what another worker recorded; a delivery is recorded whatever happened.
_SENT = (update(TABLE).where(TABLE.c.id.in_(bindparam("row_ids", expanding=True)))
         .values(status=SENT, sent_at=bindparam("when"), lease_until=None))
# PostgreSQL takes the ids as one array: the same SQL text for any count, so no statement
# is rendered anew per call, and the server keeps it prepared.
_SENT_PG = (update(TABLE).where(TABLE.c.id == any_(bindparam("row_ids", type_=ARRAY(Integer))))
            .values(status=SENT, sent_at=bindparam("when"), lease_until=None))
_NO_SORT = text("SET LOCAL enable_sort = off")  # this transaction only
_RETRY = (update(TABLE).where(TABLE.c.id == bindparam("row_id"), TABLE.c.status == SENDING)
          .values(status=PENDING, not_before=bindparam("due"), lease_until=None, claimed_by=None,
                  last_error=bindparam("error")))
_FINISH = (update(TABLE).where(TABLE.c.id == bindparam("row_id"), TABLE.c.status == SENDING)
           .values(status=bindparam("new_status"), lease_until=None,
                   last_error=bindparam("error")))


class Outbox:
    """Repository of pushes: enqueue in the caller's transaction, claim, record each result."""

    def __init__(self, db: Database, clock: Clock = utcnow):
        self.db = db
        self.clock = clock

    # enqueueing ---------------------------------------------------------

    def add(self, session: Session, messages: Iterable[OutboxMessage]) -> int:
        """Insert in the caller's transaction; rows whose dedupe_key exists are skipped."""
        connection, now = session.connection(), self.clock()
        return sum(_insert(connection, chunk, now) for chunk in _chunks(messages, INSERT_CHUNK))

    def enqueue(self, message: OutboxMessage) -> bool:
        """Enqueue one push in its own transaction; False when its dedupe_key existed."""
        with self.db.session() as session:
            return self.add(session, [message]) == 1

    # claiming -----------------------------------------------------------

    def claim(self, worker_id: str, limit: int, lease_seconds: float,
              now: dt.datetime | None = None,
              platforms: Collection[str] | None = None) -> list[OutboxRow]:
        """Take up to `limit` due rows (and rows of an expired lease), oldest due first.

        Each one statement, so two workers never get the same row: on SQLite an
        UPDATE of a LIMITed subquery (the write lock is taken before reading); on
        PostgreSQL the subquery locks with FOR UPDATE SKIP LOCKED.
        """
        if limit <= 0:
            return []
        now = now or self.clock()
        lease_until = now + dt.timedelta(seconds=lease_seconds)
        dialect = self.db.engine.dialect.name
        stmt = self._claim_statement(dialect, worker_id[:64], limit, now, lease_until, platforms)
        with self.db.session() as session:
            if dialect == "postgresql":
                # Right after a large enqueue the statistics still say few rows are due, and
                # the planner would read and sort all of them for every claim (20 ms at 20,000
                # rows); walking ix_outbox_due in order reads only the rows it takes.
                session.execute(_NO_SORT)
            rows = list(session.scalars(stmt, execution_options={"synchronize_session": False}))
        return sorted(rows, key=lambda r: r.id)  # enqueue order, so one chat's pushes keep theirs

    def _claim_statement(self, dialect: str, worker_id: str, limit: int, now: dt.datetime,
                         lease_until: dt.datetime, platforms: Collection[str] | None) -> Any:
        due = [text(ACTIVE_SQL), TABLE.c.not_before <= now]
        if platforms is not None:
            due.append(TABLE.c.platform.in_(list(platforms)))
        picked = (select(TABLE.c.id).where(*due)
                  .order_by(TABLE.c.not_before, TABLE.c.id).limit(limit))
        if dialect == "postgresql":
            picked = picked.with_for_update(skip_locked=True)
        return (update(OutboxRow).where(TABLE.c.id.in_(picked.scalar_subquery()))
                .values(status=SENDING, attempts=TABLE.c.attempts + 1, claimed_by=worker_id,
                        lease_until=lease_until, not_before=lease_until)
                .returning(OutboxRow))

    # results ------------------------------------------------------------

    def mark_sent(self, row_id: int) -> None:
        """Delivered: never send again (also when the lease had run out meanwhile)."""
        self.mark_sent_many([row_id])

    def mark_sent_many(self, row_ids: Collection[int]) -> None:
        """Several deliveries recorded in one statement and transaction."""
        if row_ids:
            stmt = _SENT_PG if self.db.engine.dialect.name == "postgresql" else _SENT
            self._execute(stmt, [{"row_ids": list(row_ids), "when": self.clock()}])

    def mark_retry(self, row_id: int, after_seconds: float, error: str,
                   now: dt.datetime | None = None) -> None:
        """Back to pending, due `after_seconds` from now; the claim counted the attempt."""
        due = (now or self.clock()) + dt.timedelta(seconds=max(0.0, after_seconds))
        self._execute(_RETRY, [{"row_id": row_id, "due": due, "error": error[:ERROR_CHARS]}])

    def mark_gone(self, row_id: int, error: str) -> None:
        """The recipient blocked the bot or left: this row is never sent."""
        self._finish(row_id, GONE, error)

    def mark_failed(self, row_id: int, error: str) -> None:
        """Refused for good, or out of attempts."""
        self._finish(row_id, FAILED, error)

    def _finish(self, row_id: int, status: str, error: str) -> None:
        self._execute(_FINISH, [{"row_id": row_id, "new_status": status,
                                 "error": error[:ERROR_CHARS]}])

    def _execute(self, stmt: Any, params: list[dict[str, Any]]) -> None:
        with self.db.engine.begin() as connection:
            connection.execute(stmt, params)

    def release(self, row_ids: Collection[int], not_before: dt.datetime) -> int:
        """Give claimed rows back unsent (a rate limit would outlast the lease); no attempt used."""
        if not row_ids:
            return 0
        with self.db.engine.begin() as connection:
            return connection.execute(
                update(TABLE).where(TABLE.c.id.in_(list(row_ids)), TABLE.c.status == SENDING)
                .values(status=PENDING, not_before=not_before, lease_until=None, claimed_by=None,
                        attempts=case((TABLE.c.attempts > 0, TABLE.c.attempts - 1), else_=0))
            ).rowcount

    def mark_resident_gone(self, resident_id: int, error: str) -> int:
        """Drop every queued push of a resident who blocked the bot; returns rows changed."""
        with self.db.engine.begin() as connection:
            return connection.execute(
                update(TABLE).where(TABLE.c.resident_id == resident_id,
                                    TABLE.c.status.in_(ACTIVE))
                .values(status=GONE, lease_until=None, last_error=error[:ERROR_CHARS])
            ).rowcount

    # reading and housekeeping ---------------------------------------------

    def get(self, row_id: int) -> OutboxRow | None:
        with self.db.session() as session:
            return session.get(OutboxRow, row_id)

    def counts(self, news_item_id: int | None = None) -> dict[str, int]:
        """Rows per status (every status present, zero when none), for one item or all."""
        stmt = select(TABLE.c.status, func.count()).group_by(TABLE.c.status)
        if news_item_id is not None:
            stmt = stmt.where(TABLE.c.news_item_id == news_item_id)
        counts = dict.fromkeys(STATUSES, 0)
        with self.db.engine.connect() as connection:
            counts.update({status: n for status, n in connection.execute(stmt)})
        return counts

    def delete_for_resident(self, resident_id: int) -> int:
        """Privacy: a forgotten resident's undelivered pushes (pending or sending) go now.

        Finished rows stay until `prune_sent`, or go with the resident row (ON DELETE CASCADE).
        """
        with self.db.engine.begin() as connection:
            return connection.execute(
                delete(TABLE).where(TABLE.c.resident_id == resident_id,
                                    TABLE.c.status.in_(ACTIVE))).rowcount

    def prune_sent(self, older_than: dt.datetime) -> int:
        """Retention: finished rows (sent, failed, gone) created before `older_than`."""
        with self.db.engine.begin() as connection:
            return connection.execute(
                delete(TABLE).where(TABLE.c.status.in_(FINISHED),
                                    TABLE.c.created_at < older_than)).rowcount


INSERT_COLUMNS = ("dedupe_key", "platform", "chat_id", "resident_id", "news_item_id", "text",
                  "choices", "status", "attempts", "last_error", "not_before", "created_at")
_INTO = f"INTO outbox ({', '.join(INSERT_COLUMNS)})"
SQLITE_INSERT = f"INSERT OR IGNORE {_INTO} VALUES ({', '.join('?' * len(INSERT_COLUMNS))})"
POSTGRESQL_INSERT = (f"INSERT {_INTO} VALUES ({', '.join(['%s'] * len(INSERT_COLUMNS))}) "
                     "ON CONFLICT (dedupe_key) DO NOTHING")


def _insert(connection: Connection, messages: list[OutboxMessage], now: dt.datetime) -> int:
    """Plain DB-API executemany: SQLAlchemy's per-value processing would cost most of the time.

    Timestamps go through the column type's own bind processor, so they are stored
    exactly as SQLAlchemy stores and compares them. Existing dedupe keys are skipped
    (OR IGNORE, ON CONFLICT DO NOTHING); sqlite3 and psycopg 3 both sum executemany's
    rowcount, so it counts only the rows really inserted.
    """
    column_type = TABLE.c.created_at.type.dialect_impl(connection.dialect)
    stamp = column_type.bind_processor(connection.dialect) or (lambda value: value)
    now_value = stamp(now)
    rows = [(m.dedupe_key, m.platform, m.chat_id, m.resident_id, m.news_item_id, m.text,
             _choices_json(m.choices), PENDING, 0, "",
             stamp(m.not_before) if m.not_before else now_value, now_value) for m in messages]
    sql = POSTGRESQL_INSERT if connection.dialect.name == "postgresql" else SQLITE_INSERT
    return connection.exec_driver_sql(sql, rows,
                                      execution_options={"preserve_rowcount": True}).rowcount


def _choices_json(choices: tuple[Choice, ...]) -> str:
    if not choices:
        return "[]"
    return json.dumps([[c.label, c.value] for c in choices], ensure_ascii=False)


def _chunks(items: Iterable[OutboxMessage], size: int) -> Iterator[list[OutboxMessage]]:
    chunk: list[OutboxMessage] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
