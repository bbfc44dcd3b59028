"""Residents and their conversation state: who they are on which platform, what they chose."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass

from sqlalchemy import Executable, Insert, Row, UniqueConstraint, bindparam, insert, update
from sqlalchemy.engine import Connection
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import class_mapper, make_transient_to_detached
from sqlmodel import Field, SQLModel, select

from .db import Database


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


class Resident(SQLModel, table=True):
    """A person on one platform. `chat_id` is where answers and pushes go."""

    __table_args__ = (UniqueConstraint("platform", "platform_id"),)
    id: int | None = Field(default=None, primary_key=True)
    platform: str = Field(max_length=16, index=True)
    platform_id: str = Field(max_length=255)
    chat_id: str = Field(max_length=255)
    language: str = Field(default="fi", max_length=2)
    language_chosen: bool = False
    active: bool = True
    first_seen: dt.datetime = Field(default_factory=utcnow)


class ConversationState(SQLModel, table=True):
    """The step of an unfinished dialogue and the choices last offered, per resident."""

    resident_id: int = Field(primary_key=True, foreign_key="resident.id", ondelete="CASCADE")
    flow: str = Field(default="", max_length=32)
    step: str = Field(default="", max_length=32)
    data: str = "{}"
    choices: str = "[]"
    updated_at: dt.datetime = Field(default_factory=utcnow)


@dataclass(frozen=True)
class Flow:
    """A resident's place in a multi-step dialogue, read from ConversationState."""

    name: str
    step: str
    data: dict
    updated_at: dt.datetime


@dataclass(frozen=True)
class Arrival:
    """Who sent a message and where their conversation stands, read once per message."""

    resident: Resident
    created: bool  # this was the resident's first message
    flow: Flow | None
    offered: list[tuple[str, str]]


_RESIDENT = Resident.__table__
_STATE = ConversationState.__table__
_STATE_COLUMNS = (_STATE.c.flow, _STATE.c.step, _STATE.c.data, _STATE.c.choices,
                  _STATE.c.updated_at)
# One statement for the resident and their dialogue state (the hot path of every message).
_ARRIVAL = (select(_RESIDENT, *_STATE_COLUMNS)
            .select_from(_RESIDENT.outerjoin(_STATE, _STATE.c.resident_id == _RESIDENT.c.id))
            .where(_RESIDENT.c.platform == bindparam("platform"),
                   _RESIDENT.c.platform_id == bindparam("platform_id")))
_BACK_IN_CHAT = (update(_RESIDENT).where(_RESIDENT.c.id == bindparam("resident"))
                 .values(chat_id=bindparam("chat"), active=True))
_CLEAR_CHOICES = (update(_STATE).where(_STATE.c.resident_id == bindparam("resident"))
                  .values(choices="[]", updated_at=bindparam("now")))
_UPSERTS = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}
_UPSERT_CACHE: dict[tuple, Insert] = {}
_NEW_RESIDENT: dict[str, Executable] = {}


class Residents:
    """Repository of residents and their conversation state.

    The per-message reads and writes (`arrive`, offered choices) use SQLAlchemy Core
    statements: the ORM's session and identity map cost several times the query.
    """

    def __init__(self, db: Database):
        self.db = db

    def get_or_create(self, platform: str, platform_id: str, chat_id: str | None,
                      language: str) -> tuple[Resident, bool]:
        """The resident for this platform id; created on first contact. True when new.

        `chat_id` None (a message in a group) keeps the resident's private chat as it
        was: pushes and private answers must never move into a shared room.
        """
        arrival = self.arrive(platform, platform_id, chat_id, language)
        return arrival.resident, arrival.created

    def arrive(self, platform: str, platform_id: str, chat_id: str | None,
               language: str) -> Arrival:
        """`get_or_create` and the conversation state, in one read and one transaction."""
        keys = {"platform": platform, "platform_id": platform_id}
        with self.db.engine.begin() as connection:
            row = connection.execute(_ARRIVAL, keys).first()
            if row is None:
                values = dict(platform=platform, platform_id=platform_id, chat_id=chat_id or "",
                              language=language, language_chosen=False, active=True,
                              first_seen=utcnow())
                new_id = connection.execute(_new_resident(connection), values).scalar()
                if new_id is not None:
                    values["id"] = new_id
                    return Arrival(_detached_resident(values), True, None, [])
                # Another process took this resident's first message a moment ago (their
                # next message reached it while this one was under way): theirs it is.
                row = connection.execute(_ARRIVAL, keys).one()
            values = {column.name: row[n] for n, column in enumerate(_RESIDENT.columns)}
            chat_id = values["chat_id"] if chat_id is None else chat_id
            if values["chat_id"] != chat_id or not values["active"]:
                connection.execute(_BACK_IN_CHAT, {"resident": values["id"], "chat": chat_id})
                values.update(chat_id=chat_id, active=True)
            flow, offered = _state_of(row)
            return Arrival(_detached_resident(values), False, flow, offered)

    def find(self, platform: str, platform_id: str) -> Resident | None:
        with self.db.session() as session:
            return session.exec(select(Resident).where(
                Resident.platform == platform, Resident.platform_id == platform_id)).first()

    def by_id(self, resident_id: int) -> Resident | None:
        with self.db.session() as session:
            return session.get(Resident, resident_id)

    def set_language(self, resident_id: int, language: str) -> None:
        with self.db.session() as session:
            resident = session.get(Resident, resident_id)
            if resident is not None:
                resident.language, resident.language_chosen = language, True
                session.add(resident)

    def mark_inactive(self, platform: str, chat_id: str) -> int:
        """A resident who blocked the bot or left: no more pushes. Returns rows changed."""
        with self.db.session() as session:
            rows = session.exec(select(Resident).where(
                Resident.platform == platform, Resident.chat_id == chat_id)).all()
            for resident in rows:
                resident.active = False
                session.add(resident)
            return len(rows)

    # conversation state -------------------------------------------------

    def flow(self, resident_id: int) -> Flow | None:
        with self.db.session() as session:
            state = session.get(ConversationState, resident_id)
            if state is None or not state.flow:
                return None
            return Flow(state.flow, state.step, json.loads(state.data), state.updated_at)

    def set_flow(self, resident_id: int, name: str, step: str, data: dict) -> None:
        self._update(resident_id, flow=name, step=step, data=json.dumps(data, ensure_ascii=False))

    def clear_flow(self, resident_id: int) -> None:
        self._update(resident_id, flow="", step="", data="{}")

    def set_offered_choices(self, resident_id: int, choices: list[tuple[str, str]]) -> None:
        self._update(resident_id, choices=json.dumps(choices, ensure_ascii=False))

    def clear_offered_choices(self, resident_id: int) -> None:
        """Forget the offered choices, if any row is left (the resident may have just left)."""
        with self.db.engine.begin() as connection:
            connection.execute(_CLEAR_CHOICES, {"resident": resident_id, "now": utcnow()})

    def _update(self, resident_id: int, **fields: str) -> None:
        """Set some state fields, creating the row with defaults if needed: one upsert."""
        statement = self._upsert(tuple(fields))
        values = {"resident_id": resident_id, "updated_at": utcnow(), **fields}
        if statement is None:  # no upsert known for this database: read, then write
            with self.db.session() as session:
                state = session.get(ConversationState, resident_id) or ConversationState(
                    resident_id=resident_id)
                for name, value in values.items():
                    setattr(state, name, value)
                session.add(state)
            return
        with self.db.engine.begin() as connection:
            connection.execute(statement, values)

    def _upsert(self, fields: tuple[str, ...]) -> Insert | None:
        """INSERT .. ON CONFLICT DO UPDATE of `fields` and updated_at, built once per field set."""
        insert = _UPSERTS.get(self.db.engine.dialect.name)
        if insert is None:
            return None
        statement = _UPSERT_CACHE.get((insert, fields))
        if statement is None:
            statement = insert(_STATE)
            updated = (*fields, "updated_at")
            statement = statement.on_conflict_do_update(
                index_elements=[_STATE.c.resident_id],
                set_={name: statement.excluded[name] for name in updated})
            _UPSERT_CACHE[(insert, fields)] = statement
        return statement


def _state_of(row: Row) -> tuple[Flow | None, list[tuple[str, str]]]:
    """The open dialogue and the offered choices from an `_ARRIVAL` row (no state: none)."""
    name, step, data, choices, updated_at = row[-len(_STATE_COLUMNS):]
    if choices is None:  # no ConversationState row yet
        return None, []
    flow = Flow(name, step, json.loads(data), updated_at) if name else None
    return flow, [tuple(c) for c in json.loads(choices)]


def _new_resident(connection: Connection) -> Executable:
    """INSERT the resident, unless another process did just now (then it returns no id).

    Built once per dialect; the values come as parameters (building costs more than running).
    """
    name = connection.dialect.name
    statement = _NEW_RESIDENT.get(name)
    if statement is None:
        upsert = _UPSERTS.get(name)
        if upsert is None:
            statement = insert(_RESIDENT).returning(_RESIDENT.c.id)
        else:
            statement = (upsert(_RESIDENT)
                         .on_conflict_do_nothing(index_elements=[_RESIDENT.c.platform,
                                                                 _RESIDENT.c.platform_id])
                         .returning(_RESIDENT.c.id))
        _NEW_RESIDENT[name] = statement
    return statement


def _detached_resident(values: dict) -> Resident:
    """A Resident as a closed ORM session would have left it, built from a row's values.

    `Resident(**values)` costs about 60 µs (SQLModel's constructor); this costs 5.
    """
    resident = class_mapper(Resident).class_manager.new_instance()
    resident.__dict__.update(values)
    make_transient_to_detached(resident)
    return resident
