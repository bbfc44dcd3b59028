"""Residents' feedback items and the per-year counter behind their `P-YYYY-NNNN` references."""

from __future__ import annotations

import datetime as dt
import logging
import re
from enum import Enum
from zoneinfo import ZoneInfo

from sqlalchemy import func, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlmodel import Field, Session, SQLModel, col, select

from .db import Database
from .residents import utcnow

logger = logging.getLogger(__name__)

FILE_ATTEMPTS = 5
REFERENCE = re.compile(r"^P-\d{4}-\d{4,}$", re.IGNORECASE)


class Status(str, Enum):
    """An item is new until an admin answers it, and stays answered until closed."""

    NEW = "new"
    ANSWERED = "answered"
    CLOSED = "closed"


OPEN_STATUSES = (Status.NEW.value, Status.ANSWERED.value)


class FeedbackItem(SQLModel, table=True):
    """One piece of feedback: only what handling it needs (no names, no chat ids)."""

    __tablename__ = "feedback_item"
    id: int | None = Field(default=None, primary_key=True)
    reference: str = Field(max_length=24, unique=True)
    resident_id: int | None = Field(default=None, foreign_key="resident.id", ondelete="SET NULL",
                                    nullable=True, index=True)
    kind: str = Field(max_length=16)
    district_id: str | None = Field(default=None, max_length=64)
    text: str
    reply_wanted: bool = False
    status: str = Field(default=Status.NEW.value, max_length=16, index=True)
    created_at: dt.datetime = Field(default_factory=utcnow, index=True)
    updated_at: dt.datetime = Field(default_factory=utcnow)
    answer_text: str | None = None
    answered_by: str | None = Field(default=None, max_length=255)
    answered_at: dt.datetime | None = None
    # A hash of the message it was filed from (`updates.message_key`): a message handled
    # twice (replayed after a crash) finds its item instead of filing another.
    source_key: str | None = Field(default=None, max_length=64, unique=True)


class FeedbackCounter(SQLModel, table=True):
    """The last number handed out per year, so a reference is never reused, even after deletes."""

    __tablename__ = "feedback_counter"
    year: int = Field(primary_key=True)
    last: int = 0


def format_reference(year: int, number: int) -> str:
    return f"P-{year}-{number:04d}"


class FeedbackStore:
    """Repository of feedback items; each verb is one short transaction."""

    def __init__(self, db: Database, timezone: str = "Europe/Helsinki"):
        self.db = db
        self.zone = ZoneInfo(timezone)

    def file(self, resident_id: int | None, kind: str, text: str, district_id: str | None,
             reply_wanted: bool, source_key: str | None = None) -> FeedbackItem:
        """Store a new item with a fresh reference; committed when this returns.

        The item filed before from the same `source_key` is returned instead, if any.
        """
        for attempt in range(1, FILE_ATTEMPTS + 1):
            try:
                if source_key is not None:
                    existing = self.by_source(source_key)
                    if existing is not None:
                        return existing
                return self._file_once(resident_id, kind, text, district_id, reply_wanted,
                                       source_key)
            except (IntegrityError, OperationalError):
                # Two writers took the same number, or SQLite's snapshot went stale: try again.
                if attempt == FILE_ATTEMPTS:
                    raise
                logger.warning("feedback reference clash, retrying (attempt %d)", attempt)
        raise AssertionError("unreachable")

    def _file_once(self, resident_id: int | None, kind: str, text: str, district_id: str | None,
                   reply_wanted: bool, source_key: str | None) -> FeedbackItem:
        now = utcnow()
        year = now.astimezone(self.zone).year
        with self.db.session() as session:
            number = _next_number(session, year)
            item = FeedbackItem(reference=format_reference(year, number), resident_id=resident_id,
                                kind=kind, district_id=district_id, text=text,
                                reply_wanted=reply_wanted, created_at=now, updated_at=now,
                                source_key=source_key)
            session.add(item)
            session.flush()
            return item

    def by_reference(self, reference: str) -> FeedbackItem | None:
        with self.db.session() as session:
            return session.exec(select(FeedbackItem).where(
                FeedbackItem.reference == reference.strip().upper())).first()

    def by_source(self, source_key: str) -> FeedbackItem | None:
        """The item filed from this message, if it was filed (see `FeedbackItem.source_key`)."""
        with self.db.session() as session:
            return session.exec(select(FeedbackItem).where(
                FeedbackItem.source_key == source_key)).first()

    def open_items(self) -> list[FeedbackItem]:
        """New and answered items, oldest first: the admins' work list."""
        with self.db.session() as session:
            return list(session.exec(select(FeedbackItem)
                                     .where(col(FeedbackItem.status).in_(OPEN_STATUSES))
                                     .order_by(col(FeedbackItem.id))).all())

    def of_resident(self, resident_id: int) -> list[FeedbackItem]:
        """A resident's own items, newest first."""
        with self.db.session() as session:
            return list(session.exec(select(FeedbackItem)
                                     .where(FeedbackItem.resident_id == resident_id)
                                     .order_by(col(FeedbackItem.id).desc())).all())

    def all_items(self) -> list[FeedbackItem]:
        with self.db.session() as session:
            return list(session.exec(select(FeedbackItem).order_by(col(FeedbackItem.id))).all())

    def count_since(self, resident_id: int, since: dt.datetime) -> int:
        """How many items the resident filed after `since` (the hourly limit)."""
        with self.db.session() as session:
            return session.exec(select(func.count()).select_from(FeedbackItem).where(
                FeedbackItem.resident_id == resident_id,
                col(FeedbackItem.created_at) > since)).one()

    def answer(self, reference: str, text: str, admin: str) -> FeedbackItem | None:
        """Record an admin's answer; None when the item is missing or already closed."""
        with self.db.session() as session:
            item = _item(session, reference)
            if item is None or item.status == Status.CLOSED.value:
                return None
            now = utcnow()
            item.answer_text, item.answered_by, item.answered_at = text, admin, now
            item.status, item.updated_at = Status.ANSWERED.value, now
            session.add(item)
            return item

    def close(self, reference: str) -> FeedbackItem | None:
        """Close an item; None when it does not exist. Closing twice is harmless."""
        with self.db.session() as session:
            item = _item(session, reference)
            if item is None:
                return None
            if item.status != Status.CLOSED.value:
                item.status, item.updated_at = Status.CLOSED.value, utcnow()
                session.add(item)
            return item

    def forget_resident(self, resident_id: int) -> int:
        """Unlink a resident from their items ("forget me"); the items stay, anonymous."""
        with self.db.session() as session:
            items = session.exec(select(FeedbackItem).where(
                FeedbackItem.resident_id == resident_id)).all()
            for item in items:
                item.resident_id, item.source_key = None, None
                session.add(item)
            return len(items)


def _item(session: Session, reference: str) -> FeedbackItem | None:
    return session.exec(select(FeedbackItem).where(
        FeedbackItem.reference == reference.strip().upper())).first()


def _next_number(session: Session, year: int) -> int:
    """Increment the year's counter, writing first so the row is locked before it is read."""
    bumped = session.execute(update(FeedbackCounter).where(col(FeedbackCounter.year) == year)
                             .values(last=FeedbackCounter.last + 1))
    if bumped.rowcount == 0:
        session.add(FeedbackCounter(year=year, last=1))
        session.flush()
        return 1
    return session.exec(select(FeedbackCounter.last).where(FeedbackCounter.year == year)).one()
