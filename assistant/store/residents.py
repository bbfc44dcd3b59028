"""Residents and their conversation state: who they are on which platform, what they chose."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass

from sqlalchemy import UniqueConstraint
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


class Residents:
    """Repository of residents and their conversation state."""

    def __init__(self, db: Database):
        self.db = db

    def get_or_create(self, platform: str, platform_id: str, chat_id: str | None,
                      language: str) -> tuple[Resident, bool]:
        """The resident for this platform id; created on first contact. True when new.

        `chat_id` None (a message in a group) keeps the resident's private chat as it
        was: pushes and private answers must never move into a shared room.
        """
        with self.db.session() as session:
            resident = session.exec(select(Resident).where(
                Resident.platform == platform, Resident.platform_id == platform_id)).first()
            if resident is not None:
                chat_id = resident.chat_id if chat_id is None else chat_id
                if resident.chat_id != chat_id or not resident.active:
                    resident.chat_id, resident.active = chat_id, True
                    session.add(resident)
                return resident, False
            resident = Resident(platform=platform, platform_id=platform_id,
                                chat_id=chat_id or "", language=language)
            session.add(resident)
            session.flush()
            return resident, True

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

    def snapshot(self, resident_id: int) -> tuple[Flow | None, list[tuple[str, str]]]:
        """The open dialogue and the choices last offered, in one read (once per message)."""
        with self.db.session() as session:
            state = session.get(ConversationState, resident_id)
            if state is None:
                return None, []
            flow = (Flow(state.flow, state.step, json.loads(state.data), state.updated_at)
                    if state.flow else None)
            return flow, [tuple(c) for c in json.loads(state.choices)]

    def set_offered_choices(self, resident_id: int, choices: list[tuple[str, str]]) -> None:
        self._update(resident_id, choices=json.dumps(choices, ensure_ascii=False))

    def clear_offered_choices(self, resident_id: int) -> None:
        """Forget the offered choices, if any row is left (the resident may have just left)."""
        with self.db.session() as session:
            state = session.get(ConversationState, resident_id)
            if state is not None:
                state.choices, state.updated_at = "[]", utcnow()
                session.add(state)

    def _update(self, resident_id: int, **fields: str) -> None:
        with self.db.session() as session:
            state = session.get(ConversationState, resident_id) or ConversationState(
                resident_id=resident_id)
            for name, value in fields.items():
                setattr(state, name, value)
            state.updated_at = utcnow()
            session.add(state)
