"""District news storage: subscriptions, delivery preferences, news items, drafts and feed entries.

Repositories keep their sessions inside, except for the verbs that must share the
caller's transaction (storing an item together with its outbox rows): those take
the session as their first argument.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from typing import Iterable

from sqlalchemy import UniqueConstraint, delete
from sqlmodel import Field, Session, SQLModel, col, select

from .db import Database
from .residents import Resident, utcnow

ALL = "all"
DRAFT_PENDING, DRAFT_PUBLISHED, DRAFT_CANCELLED = "pending", "published", "cancelled"
MAX_KEY_CHARS = 255


class Subscription(SQLModel, table=True):
    """A resident follows the news of one district (major or city district)."""

    __table_args__ = (UniqueConstraint("resident_id", "district_id"),)
    id: int | None = Field(default=None, primary_key=True)
    resident_id: int = Field(foreign_key="resident.id", ondelete="CASCADE", index=True)
    district_id: str = Field(max_length=64, index=True)
    created_at: dt.datetime = Field(default_factory=utcnow)


class DeliveryPreference(SQLModel, table=True):
    """Instant pushes (digest_hour None) or one daily digest at a local hour."""

    resident_id: int = Field(primary_key=True, foreign_key="resident.id", ondelete="CASCADE")
    digest_hour: int | None = Field(default=None, index=True)
    last_digest_at: dt.datetime | None = None


class NewsItem(SQLModel, table=True):
    """One piece of news for a district or for the whole city ("all")."""

    id: int | None = Field(default=None, primary_key=True)
    district_id: str = Field(max_length=64, index=True)
    text: str
    urgent: bool = False
    source: str = Field(default="admin", max_length=16)  # "admin" | "feed"
    author: str = Field(default="", max_length=255)
    created_at: dt.datetime = Field(default_factory=utcnow, index=True)


class NewsDraft(SQLModel, table=True):
    """An admin's post waiting for confirmation; in the database so a restart keeps it."""

    id: int | None = Field(default=None, primary_key=True)
    resident_id: int = Field(foreign_key="resident.id", ondelete="CASCADE", index=True)
    district_id: str = Field(max_length=64)
    text: str
    urgent: bool = False
    status: str = Field(default=DRAFT_PENDING, max_length=16)
    news_item_id: int | None = None
    created_at: dt.datetime = Field(default_factory=utcnow)


class FeedEntry(SQLModel, table=True):
    """A feed entry already taken (by guid or link), so it becomes news only once."""

    __table_args__ = (UniqueConstraint("feed_url", "entry_key"),)
    id: int | None = Field(default=None, primary_key=True)
    feed_url: str = Field(max_length=1000)
    entry_key: str = Field(max_length=MAX_KEY_CHARS)
    news_item_id: int | None = None
    seen_at: dt.datetime = Field(default_factory=utcnow)


@dataclass(frozen=True)
class Recipient:
    """An active subscriber as the fan-out needs them: where to send, in which language, how."""

    resident_id: int
    platform: str
    chat_id: str
    language: str
    digest_hour: int | None


@dataclass(frozen=True)
class DigestReader:
    """A resident due a digest: their subscriptions and the time of their last digest."""

    recipient: Recipient
    district_ids: tuple[str, ...]
    last_digest_at: dt.datetime | None


class Subscriptions:
    """Who follows which district, and how they want the news."""

    def __init__(self, db: Database):
        self.db = db

    def add(self, resident_id: int, district_id: str) -> bool:
        """Follow a district; False when already followed."""
        with self.db.session() as session:
            if self._find(session, resident_id, district_id) is not None:
                return False
            session.add(Subscription(resident_id=resident_id, district_id=district_id))
            return True

    def remove(self, resident_id: int, district_id: str) -> bool:
        with self.db.session() as session:
            found = self._find(session, resident_id, district_id)
            if found is not None:
                session.delete(found)
            return found is not None

    def remove_all(self, resident_id: int) -> int:
        with self.db.session() as session:
            result = session.exec(delete(Subscription).where(  # type: ignore[call-overload]
                col(Subscription.resident_id) == resident_id))
            return result.rowcount or 0

    def of_resident(self, resident_id: int) -> list[str]:
        """District ids the resident follows, oldest first."""
        with self.db.session() as session:
            return list(session.exec(select(Subscription.district_id).where(
                Subscription.resident_id == resident_id).order_by(col(Subscription.id))).all())

    def for_district(self, session: Session, district_ids: Iterable[str] | None) -> list[Recipient]:
        """Active residents following any of `district_ids` (None: anyone following anything)."""
        query = (select(Resident.id, Resident.platform, Resident.chat_id,  # type: ignore[call-overload]
                        Resident.language, DeliveryPreference.digest_hour)
                 .join(Subscription, col(Subscription.resident_id) == col(Resident.id))
                 .join(DeliveryPreference, col(DeliveryPreference.resident_id) == col(Resident.id),
                       isouter=True)
                 .where(col(Resident.active).is_(True)).distinct())
        if district_ids is not None:
            query = query.where(col(Subscription.district_id).in_(list(district_ids)))
        return [Recipient(*row) for row in session.exec(query).all()]

    def digest_hour(self, resident_id: int) -> int | None:
        with self.db.session() as session:
            preference = session.get(DeliveryPreference, resident_id)
            return preference.digest_hour if preference else None

    def set_digest_hour(self, resident_id: int, hour: int | None, now: dt.datetime) -> None:
        """Choose a daily digest at `hour` (local), or instant pushes with None."""
        with self.db.session() as session:
            preference = session.get(DeliveryPreference, resident_id) or DeliveryPreference(
                resident_id=resident_id)
            if hour is not None and preference.digest_hour is None:
                preference.last_digest_at = now  # the first digest starts from this choice
            preference.digest_hour = hour
            session.add(preference)

    def digest_readers(self, session: Session, hour: int) -> list[DigestReader]:
        """Active residents whose digest hour is `hour`, with what they follow."""
        rows = session.exec(
            select(Resident.id, Resident.platform, Resident.chat_id,  # type: ignore[call-overload]
                   Resident.language,
                   DeliveryPreference.digest_hour, DeliveryPreference.last_digest_at,
                   Subscription.district_id)
            .join(DeliveryPreference, col(DeliveryPreference.resident_id) == col(Resident.id))
            .join(Subscription, col(Subscription.resident_id) == col(Resident.id))
            .where(DeliveryPreference.digest_hour == hour, col(Resident.active).is_(True))
            .order_by(col(Resident.id))).all()
        grouped: dict[int, tuple[Recipient, list[str], dt.datetime | None]] = {}
        for rid, platform, chat_id, language, digest_hour, last, district_id in rows:
            entry = grouped.setdefault(
                rid, (Recipient(rid, platform, chat_id, language, digest_hour), [], last))
            entry[1].append(district_id)
        return [DigestReader(r, tuple(ids), last) for r, ids, last in grouped.values()]

    def mark_digest_sent(self, session: Session, resident_id: int, at: dt.datetime) -> None:
        preference = session.get(DeliveryPreference, resident_id)
        if preference is not None:
            preference.last_digest_at = at
            session.add(preference)

    @staticmethod
    def _find(session: Session, resident_id: int, district_id: str) -> Subscription | None:
        return session.exec(select(Subscription).where(
            Subscription.resident_id == resident_id,
            Subscription.district_id == district_id)).first()


class NewsItems:
    """News items and the admins' drafts that become them."""

    def __init__(self, db: Database):
        self.db = db

    def add(self, session: Session, district_id: str, text: str, *, urgent: bool = False,
            source: str = "admin", author: str = "", now: dt.datetime | None = None) -> NewsItem:
        """Store an item inside the caller's transaction; its id is set on return."""
        item = NewsItem(district_id=district_id, text=text, urgent=urgent, source=source,
                        author=author, created_at=now or utcnow())
        session.add(item)
        session.flush()
        return item

    def since(self, session: Session, after: dt.datetime, until: dt.datetime) -> list[NewsItem]:
        """Items created in (after, until], oldest first."""
        return list(session.exec(select(NewsItem).where(
            col(NewsItem.created_at) > after, col(NewsItem.created_at) <= until)
            .order_by(col(NewsItem.created_at), col(NewsItem.id))).all())

    def latest(self, limit: int = 5) -> list[NewsItem]:
        with self.db.session() as session:
            return list(session.exec(select(NewsItem).order_by(
                col(NewsItem.id).desc()).limit(limit)).all())

    def create_draft(self, resident_id: int, district_id: str, text: str, urgent: bool,
                     now: dt.datetime) -> NewsDraft:
        with self.db.session() as session:
            draft = NewsDraft(resident_id=resident_id, district_id=district_id, text=text,
                              urgent=urgent, created_at=now)
            session.add(draft)
            session.flush()
            return draft

    def take_draft(self, session: Session, draft_id: int, resident_id: int,
                   created_after: dt.datetime) -> NewsDraft | None:
        """The resident's pending draft, marked published in the caller's transaction.

        None when it is someone else's, already published or cancelled, or too old.
        """
        draft = _pending(session, draft_id, resident_id)
        if draft is None or draft.created_at < created_after:
            return None
        draft.status = DRAFT_PUBLISHED
        session.add(draft)
        return draft

    def set_draft_district(self, draft_id: int, resident_id: int,
                           district_id: str) -> NewsDraft | None:
        """Settle the district of a pending draft whose name was ambiguous."""
        with self.db.session() as session:
            draft = _pending(session, draft_id, resident_id)
            if draft is not None:
                draft.district_id = district_id
                session.add(draft)
            return draft

    def cancel_draft(self, draft_id: int, resident_id: int) -> bool:
        with self.db.session() as session:
            draft = _pending(session, draft_id, resident_id)
            if draft is None:
                return False
            draft.status = DRAFT_CANCELLED
            session.add(draft)
            return True


def _pending(session: Session, draft_id: int, resident_id: int) -> NewsDraft | None:
    """A draft of this resident that is still waiting for confirmation."""
    draft = session.get(NewsDraft, draft_id)
    if draft is None or draft.resident_id != resident_id or draft.status != DRAFT_PENDING:
        return None
    return draft


def entry_key(raw: str) -> str:
    """A guid or link short enough for the unique index; long ones are hashed."""
    if len(raw) <= MAX_KEY_CHARS:
        return raw
    return "sha256:" + hashlib.sha256(raw.encode("utf-8")).hexdigest()


class FeedEntries:
    """Feed entries already taken, per feed URL."""

    def __init__(self, db: Database):
        self.db = db

    def known(self, feed_url: str, keys: Iterable[str]) -> set[str]:
        """Which of `keys` were taken before."""
        listed = list(keys)
        wanted = [entry_key(k) for k in listed]
        with self.db.session() as session:
            found = set(session.exec(select(FeedEntry.entry_key).where(
                FeedEntry.feed_url == feed_url, col(FeedEntry.entry_key).in_(wanted))).all())
        return {k for k in listed if entry_key(k) in found}

    def has_any(self, feed_url: str) -> bool:
        with self.db.session() as session:
            return session.exec(select(FeedEntry.id).where(
                FeedEntry.feed_url == feed_url).limit(1)).first() is not None

    def add(self, session: Session, feed_url: str, key: str, news_item_id: int | None,
            now: dt.datetime) -> None:
        """Record an entry inside the caller's transaction (the unique index refuses repeats)."""
        session.add(FeedEntry(feed_url=feed_url, entry_key=entry_key(key),
                              news_item_id=news_item_id, seen_at=now))
