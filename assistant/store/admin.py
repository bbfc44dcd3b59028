"""Admin curation storage: roles, answer revisions, unanswered questions, audit log, counters.

Every chat edit of the knowledge base is a revision row (never an update in place),
so history and undo are reads and one flag; the audit log is append-only.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass

from sqlalchemy import bindparam, delete, func, or_, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Field, SQLModel, col, select

from .db import Database
from .feedback import FeedbackItem
from .news import Subscription
from .residents import Resident, utcnow

FIELDS = ("answer", "title", "question", "topic")


class Role(SQLModel, table=True):
    """An editor or moderator granted by an owner; `district_id` None means everywhere."""

    id: int | None = Field(default=None, primary_key=True)
    platform: str = Field(max_length=16, index=True)
    platform_id: str = Field(max_length=255, index=True)
    role: str = Field(max_length=16)
    district_id: str | None = Field(default=None, max_length=64, nullable=True)
    granted_by: str = Field(max_length=255)
    granted_at: dt.datetime = Field(default_factory=utcnow)


class AnswerRevision(SQLModel, table=True):
    """One chat change of a topic: an answer or title text, added phrasings, or a new topic.

    `value` of a "question" revision holds one phrasing per line; of a "topic"
    revision, the whole new topic as JSON. The newest revision that is not undone wins.
    """

    __tablename__ = "answer_revision"
    id: int | None = Field(default=None, primary_key=True)
    topic_id: str = Field(max_length=64, index=True)
    language: str = Field(default="", max_length=2)
    field: str = Field(max_length=16)
    value: str
    author: str = Field(max_length=255)
    created_at: dt.datetime = Field(default_factory=utcnow)
    undone: bool = False


class UnansweredQuestion(SQLModel, table=True):
    """A question no topic answered: its text and language only, never who asked."""

    __tablename__ = "unanswered_question"
    id: int | None = Field(default=None, primary_key=True)
    text: str
    normalised: str
    language: str = Field(max_length=2)
    group_id: int | None = Field(default=None, index=True)
    linked_revision_id: int | None = Field(default=None, nullable=True)
    created_at: dt.datetime = Field(default_factory=utcnow, index=True)


class AuditEntry(SQLModel, table=True):
    """Who did what to what, with the value before and after; rows are never changed."""

    __tablename__ = "audit_entry"
    id: int | None = Field(default=None, primary_key=True)
    actor: str = Field(max_length=255)
    action: str = Field(max_length=32, index=True)
    target: str = Field(max_length=255)
    before: str = ""
    after: str = ""
    created_at: dt.datetime = Field(default_factory=utcnow, index=True)


class QuestionCount(SQLModel, table=True):
    """Free-text questions answered and not answered, per local day (counts only)."""

    __tablename__ = "question_count"
    day: dt.date = Field(primary_key=True)
    answered: int = 0
    unanswered: int = 0


class Roles:
    """Who holds which role where.

    Every message asks for the sender's roles, and almost nobody has one: the set of
    role holders is kept in memory (refreshed after HOLDERS_TTL seconds, at once after a
    change made here), so a resident's message costs no query. A grant made by another
    process takes effect here within HOLDERS_TTL.
    """

    HOLDERS_TTL = 30.0

    def __init__(self, db: Database):
        self.db = db
        self._holders: set[tuple[str, str]] | None = None
        self._holders_read_at = 0.0

    def _is_holder(self, platform: str, platform_id: str) -> bool:
        now = time.monotonic()
        if self._holders is None or now - self._holders_read_at > self.HOLDERS_TTL:
            with self.db.session() as session:
                rows = session.exec(select(Role.platform, Role.platform_id)).all()
            self._holders, self._holders_read_at = {tuple(r) for r in rows}, now
        return (platform, platform_id) in self._holders

    def grant(self, platform: str, platform_id: str, role: str, district_id: str | None,
              granted_by: str) -> bool:
        """Add a role; False when the same grant already exists."""
        with self.db.session() as session:
            same_district = (col(Role.district_id) == district_id if district_id
                             else col(Role.district_id).is_(None))
            found = session.exec(select(Role).where(
                Role.platform == platform, Role.platform_id == platform_id, Role.role == role,
                same_district)).first()
            if found is not None:
                return False
            session.add(Role(platform=platform, platform_id=platform_id, role=role,
                             district_id=district_id, granted_by=granted_by))
        self._holders = None
        return True

    def revoke(self, platform: str, platform_id: str, role: str | None = None,
               district_id: str | None = None) -> list[Role]:
        """Remove the matching grants (all of the person's when no role is named)."""
        with self.db.session() as session:
            query = select(Role).where(Role.platform == platform, Role.platform_id == platform_id)
            if role:
                query = query.where(Role.role == role)
            if district_id:
                query = query.where(Role.district_id == district_id)
            rows = list(session.exec(query).all())
            for row in rows:
                session.delete(row)
        self._holders = None
        return rows

    def of(self, platform: str, platform_id: str) -> list[Role]:
        if not self._is_holder(platform, platform_id):
            return []
        with self.db.session() as session:
            return list(session.exec(select(Role).where(
                Role.platform == platform, Role.platform_id == platform_id)).all())

    def all(self) -> list[Role]:
        with self.db.session() as session:
            return list(session.exec(select(Role).order_by(
                col(Role.platform), col(Role.platform_id), col(Role.role))).all())


class Revisions:
    """The chat history of every topic."""

    def __init__(self, db: Database):
        self.db = db

    def add(self, topic_id: str, language: str, field: str, value: str,
            author: str) -> AnswerRevision:
        if field not in FIELDS:
            raise ValueError(f"unknown revision field {field!r}")
        with self.db.session() as session:
            revision = AnswerRevision(topic_id=topic_id, language=language, field=field,
                                      value=value, author=author)
            session.add(revision)
            session.flush()
            return revision

    def active(self) -> list[AnswerRevision]:
        """Every revision in force, oldest first (the order they are applied in)."""
        with self.db.session() as session:
            return list(session.exec(select(AnswerRevision).where(
                col(AnswerRevision.undone).is_(False)).order_by(col(AnswerRevision.id))).all())

    def of_topic(self, topic_id: str, limit: int = 10) -> list[AnswerRevision]:
        """The topic's revisions, undone ones too, newest first."""
        with self.db.session() as session:
            return list(session.exec(select(AnswerRevision).where(
                AnswerRevision.topic_id == topic_id).order_by(
                col(AnswerRevision.id).desc()).limit(limit)).all())

    def undo_latest(self, topic_id: str) -> AnswerRevision | None:
        """Mark the topic's newest revision in force as undone; None when there is none."""
        with self.db.session() as session:
            revision = session.exec(select(AnswerRevision).where(
                AnswerRevision.topic_id == topic_id, col(AnswerRevision.undone).is_(False))
                .order_by(col(AnswerRevision.id).desc())).first()
            if revision is not None:
                revision.undone = True
                session.add(revision)
            return revision


@dataclass(frozen=True)
class QuestionGroup:
    """Similar unanswered questions: the group's number, size, language and first text."""

    group_id: int
    count: int
    language: str
    example: str


class UnansweredQuestions:
    """Questions kept for editors, grouped by similarity; open until linked to a topic."""

    def __init__(self, db: Database):
        self.db = db

    def heads(self, language: str) -> list[tuple[int, str]]:
        """(group id, normalised first text) of the open groups in `language`.

        Read for every unanswered question, so two columns through Core, not ORM rows.
        """
        with self.db.engine.connect() as connection:
            rows = connection.execute(_OPEN_HEADS, {"language": language})
            return [(group_id, normalised) for group_id, normalised in rows]

    def add(self, text: str, normalised: str, language: str, group_id: int | None) -> int:
        """Store a question in a group (a new one when `group_id` is None); its group id."""
        values = dict(text=text, normalised=normalised, language=language, group_id=group_id,
                      created_at=utcnow())
        with self.db.engine.begin() as connection:
            row_id = connection.execute(_NEW_QUESTION, values).inserted_primary_key[0]
            if group_id is None:  # the first of a new group names it
                connection.execute(_NAME_GROUP, {"row": row_id})
            return group_id or row_id

    def groups(self, limit: int) -> list[QuestionGroup]:
        """The open groups, most asked first."""
        with self.db.session() as session:
            rows = session.exec(_open_rows().order_by(col(UnansweredQuestion.id))).all()
        found: dict[int, list[UnansweredQuestion]] = {}
        for row in rows:
            found.setdefault(row.group_id or row.id, []).append(row)
        groups = [QuestionGroup(gid, len(members), members[0].language, members[0].text)
                  for gid, members in found.items()]
        return sorted(groups, key=lambda g: (-g.count, -g.group_id))[:limit]

    def members(self, group_id: int) -> list[UnansweredQuestion]:
        """The open questions of one group, oldest first."""
        with self.db.session() as session:
            return list(session.exec(_open_rows().where(
                UnansweredQuestion.group_id == group_id).order_by(
                col(UnansweredQuestion.id))).all())

    def link(self, group_id: int, revision_id: int) -> int:
        """Close a group: its questions now lead to a topic through `revision_id`."""
        with self.db.session() as session:
            result = session.execute(update(UnansweredQuestion).where(
                col(UnansweredQuestion.group_id) == group_id).values(
                linked_revision_id=revision_id))
            return result.rowcount or 0

    def prune(self, before: dt.datetime) -> int:
        """Forget questions older than the retention period."""
        with self.db.session() as session:
            result = session.exec(delete(UnansweredQuestion).where(  # type: ignore[call-overload]
                col(UnansweredQuestion.created_at) < before))
            return result.rowcount or 0


def _open_rows(*columns):
    """Questions (or some of their columns) not linked, or linked by a revision undone since."""
    return (select(*(columns or (UnansweredQuestion,)))
            .join(AnswerRevision, isouter=True,
                  onclause=col(AnswerRevision.id) == col(UnansweredQuestion.linked_revision_id))
            .where(or_(col(UnansweredQuestion.linked_revision_id).is_(None),
                       col(AnswerRevision.undone).is_(True))))


# Statements of the per-question path, built once (building them costs more than running).
_OPEN_HEADS = _open_rows(col(UnansweredQuestion.id), col(UnansweredQuestion.normalised)).where(
    col(UnansweredQuestion.language) == bindparam("language"),
    col(UnansweredQuestion.id) == col(UnansweredQuestion.group_id)).order_by(
    col(UnansweredQuestion.id))
_NEW_QUESTION = UnansweredQuestion.__table__.insert()  # type: ignore[attr-defined]
_NAME_GROUP = (update(UnansweredQuestion)
               .where(col(UnansweredQuestion.id) == bindparam("row"))
               .values(group_id=bindparam("row")))


class AuditLog:
    """The append-only record of admin actions."""

    def __init__(self, db: Database):
        self.db = db

    def record(self, actor: str, action: str, target: str, before: str = "",
               after: str = "") -> AuditEntry:
        with self.db.session() as session:
            entry = AuditEntry(actor=actor[:255], action=action[:32], target=target[:255],
                               before=before or "", after=after or "")
            session.add(entry)
            session.flush()
            return entry

    def latest(self, limit: int) -> list[AuditEntry]:
        with self.db.session() as session:
            return list(session.exec(select(AuditEntry).order_by(
                col(AuditEntry.id).desc()).limit(limit)).all())


class QuestionCounts:
    """Daily counters of answered and unanswered questions.

    Counts gather in memory and are written every FLUSH_EVERY questions or
    FLUSH_SECONDS, and before any read here: a count per message would cost a write
    per message. A crash loses at most the counts not yet written; they are statistics.
    """

    FLUSH_EVERY = 50
    FLUSH_SECONDS = 30.0

    def __init__(self, db: Database):
        self.db = db
        self._pending: dict[tuple[dt.date, str], int] = {}
        self._flushed_at = time.monotonic()

    def bump(self, day: dt.date, answered: bool) -> None:
        """Count one question for `day`."""
        column = "answered" if answered else "unanswered"
        self._pending[(day, column)] = self._pending.get((day, column), 0) + 1
        if (sum(self._pending.values()) >= self.FLUSH_EVERY
                or time.monotonic() - self._flushed_at > self.FLUSH_SECONDS):
            self.flush()

    def flush(self) -> None:
        """Write the gathered counts; a day's row is created by its first count."""
        pending, self._pending = self._pending, {}
        self._flushed_at = time.monotonic()
        for (day, column), amount in pending.items():
            self._add(day, column, amount)

    def _add(self, day: dt.date, column: str, amount: int) -> None:
        for _ in range(3):  # two processes' first counts of a day may race to create the row
            try:
                with self.db.session() as session:
                    bumped = session.execute(update(QuestionCount).where(
                        col(QuestionCount.day) == day).values(
                        {column: getattr(QuestionCount, column) + amount}))
                    if bumped.rowcount == 0:
                        session.add(QuestionCount(day=day, **{column: amount}))
                return
            except IntegrityError:
                continue

    def since(self, first_day: dt.date) -> tuple[int, int]:
        """(answered, unanswered) from `first_day` on."""
        self.flush()
        with self.db.session() as session:
            answered, unanswered = session.exec(select(
                func.coalesce(func.sum(QuestionCount.answered), 0),
                func.coalesce(func.sum(QuestionCount.unanswered), 0)).where(
                col(QuestionCount.day) >= first_day)).one()
            return int(answered), int(unanswered)


class Statistics:
    """Counts across features for /stats; no row leaves this class, only numbers."""

    def __init__(self, db: Database):
        self.db = db

    def residents(self) -> list[tuple[str, str, int]]:
        """(platform, language, active residents)."""
        with self.db.session() as session:
            rows = session.exec(
                select(Resident.platform, Resident.language, func.count())
                .where(col(Resident.active).is_(True))
                .group_by(Resident.platform, Resident.language)
                .order_by(Resident.platform, Resident.language)).all()
        return [(platform, language, int(n)) for platform, language, n in rows]

    def subscribers(self) -> list[tuple[str, int]]:
        """(district id, subscribers), most followed first."""
        with self.db.session() as session:
            rows = session.exec(
                select(Subscription.district_id,
                       func.count(func.distinct(Subscription.resident_id)))
                .join(Resident, col(Resident.id) == col(Subscription.resident_id))
                .where(col(Resident.active).is_(True))
                .group_by(Subscription.district_id)).all()
        return sorted(((d, int(n)) for d, n in rows), key=lambda r: (-r[1], r[0]))

    def feedback(self) -> dict[str, int]:
        """Feedback items by status."""
        with self.db.session() as session:
            rows = session.exec(select(FeedbackItem.status, func.count())
                                .group_by(FeedbackItem.status)).all()
        return {status: int(n) for status, n in rows}
