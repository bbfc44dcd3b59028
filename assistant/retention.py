"""Retention: nothing about residents is kept longer than it is needed.

`prune(assistant, now)` is the daily job (the runtime schedules it). It deletes
- conversation state (unfinished forms, offered choices) untouched for FLOW_TTL,
- delivered, failed and undeliverable pushes older than `settings.retention_days`,
- unanswered-question texts older than `settings.retention_days`,
- handled update keys older than UPDATE_TTL (they only catch redeliveries; an update
  still pending is kept until handled).
Feedback is kept until its sender deletes it with /forget; profiles and
subscriptions until the resident deletes them.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import delete, inspect
from sqlmodel import col

from .store.db import Database
from .store.outbox import Outbox
from .store.residents import ConversationState, utcnow
from .store.updates import Updates

if TYPE_CHECKING:
    from .core import Assistant

logger = logging.getLogger(__name__)

FLOW_TTL = dt.timedelta(hours=24)
UPDATE_TTL = dt.timedelta(days=2)  # Telegram keeps an unconfirmed update for 24 hours


@dataclass(frozen=True)
class Pruned:
    """Rows deleted by one run, per kind (counts only: they go to the log)."""

    conversations: int
    outbox: int
    unanswered: int
    updates: int


async def prune(assistant: "Assistant", now: dt.datetime | None = None) -> Pruned:
    """The daily retention job; the deletes run in a thread so chats keep being answered."""
    return await asyncio.to_thread(prune_now, assistant, now or utcnow())


async def expire_conversations(assistant: "Assistant", now: dt.datetime | None = None) -> int:
    """Clear unfinished forms and offered choices untouched for FLOW_TTL (may run hourly)."""
    return await asyncio.to_thread(_expire_conversations, assistant.db, (now or utcnow()) - FLOW_TTL)


def prune_now(assistant: "Assistant", now: dt.datetime) -> Pruned:
    keep_from = now - dt.timedelta(days=assistant.settings.retention_days)
    pruned = Pruned(conversations=_expire_conversations(assistant.db, now - FLOW_TTL),
                    outbox=Outbox(assistant.db).prune_sent(keep_from),
                    unanswered=_prune_unanswered(assistant.db, keep_from),
                    updates=Updates(assistant.db).prune(now - UPDATE_TTL))
    logger.info("retention: deleted %d conversation states, %d pushes, %d unanswered "
                "questions, %d update keys", pruned.conversations, pruned.outbox,
                pruned.unanswered, pruned.updates)
    return pruned


def _expire_conversations(db: Database, before: dt.datetime) -> int:
    with db.session() as session:
        result = session.exec(delete(ConversationState).where(  # type: ignore[call-overload]
            col(ConversationState.updated_at) < before))
        return result.rowcount or 0


def _prune_unanswered(db: Database, before: dt.datetime) -> int:
    """Unanswered questions hold text only (never who asked), but text can still be personal."""
    try:
        from .store.admin import UnansweredQuestion, UnansweredQuestions
    except ImportError:  # the admin feature is not installed
        return 0
    if not inspect(db.engine).has_table(UnansweredQuestion.__tablename__):
        return 0
    return UnansweredQuestions(db).prune(before)
