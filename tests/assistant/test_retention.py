"""Retention: stale conversation state, delivered pushes and old question texts are deleted."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import update
from sqlmodel import select

from assistant import retention
from assistant.core import Assistant
from assistant.store.feedback import FeedbackItem
from assistant.store.outbox import FAILED, GONE, PENDING, SENT, Outbox, OutboxMessage, OutboxRow
from assistant.store.residents import ConversationState, utcnow
from assistant.store.updates import Entry, ProcessedUpdate, Updates
from tests.conftest import SAMPLE_KNOWLEDGE, make_settings

NOW = dt.datetime(2027, 3, 1, 12, 0, tzinfo=dt.timezone.utc)
HOUR = dt.timedelta(hours=1)


@pytest.fixture
def bot(tmp_path):
    assistant = Assistant(make_settings(tmp_path, KNOWLEDGE_DIR=str(SAMPLE_KNOWLEDGE),
                                        RETENTION_DAYS="30"))
    yield assistant
    assistant.db.dispose()


def set_column(bot: Assistant, model, column: str, value: object, **where) -> None:
    """Set one column of the matching rows, e.g. to backdate them (the stores use the wall clock)."""
    statement = update(model).values({column: value})
    for name, wanted in where.items():
        statement = statement.where(getattr(model, name) == wanted)
    with bot.db.session() as session:
        session.exec(statement)


def all_rows(bot: Assistant, model) -> list:
    with bot.db.session() as session:
        return list(session.exec(select(model)).all())


def queue(bot: Assistant, key: str, status: str, created: dt.datetime) -> None:
    outbox = Outbox(bot.db, clock=lambda: created)
    outbox.enqueue(OutboxMessage(platform="console", chat_id=f"chat-{key}", text="uutinen",
                                 dedupe_key=key))
    set_column(bot, OutboxRow, "status", status, dedupe_key=key)


async def test_stale_conversation_state_is_cleared_and_fresh_kept(bot, chat_factory):
    old, fresh = chat_factory(bot, user_id="old"), chat_factory(bot, user_id="fresh")
    await old.send("/feedback")
    await fresh.send("/feedback")
    old_id = bot.residents.find("console", "old").id
    fresh_id = bot.residents.find("console", "fresh").id
    set_column(bot, ConversationState, "updated_at", NOW - HOUR * 25, resident_id=old_id)
    set_column(bot, ConversationState, "updated_at", NOW - HOUR * 23, resident_id=fresh_id)
    pruned = await retention.prune(bot, NOW)
    assert pruned.conversations == 1
    assert [s.resident_id for s in all_rows(bot, ConversationState)] == [fresh_id]
    assert bot.residents.flow(old_id) is None and bot.residents.flow(fresh_id) is not None


async def test_expire_conversations_alone_clears_old_forms(bot, chat_factory):
    chat = chat_factory(bot)
    await chat.send("/feedback")
    resident_id = bot.residents.find("console", "resident-1").id
    assert await retention.expire_conversations(bot, utcnow()) == 0
    assert await retention.expire_conversations(bot, utcnow() + dt.timedelta(hours=25)) == 1
    assert bot.residents.flow(resident_id) is None
    assert "Kuntalaisaloite" in await chat.text("Miten teen kuntalaisaloitteen?")


async def test_finished_pushes_older_than_the_retention_period_are_deleted(bot):
    old = NOW - dt.timedelta(days=31)
    recent = NOW - dt.timedelta(days=29)
    for key, status, created in [("old-sent", SENT, old), ("old-failed", FAILED, old),
                                 ("old-gone", GONE, old), ("old-pending", PENDING, old),
                                 ("recent-sent", SENT, recent)]:
        queue(bot, key, status, created)
    pruned = await retention.prune(bot, NOW)
    assert pruned.outbox == 3
    assert sorted(r.dedupe_key for r in all_rows(bot, OutboxRow)) == ["old-pending",
                                                                       "recent-sent"]


async def test_handled_update_keys_go_after_two_days_pending_ones_stay(bot):
    log = Updates(bot.db).of("telegram")
    log.handled(["1"], now=NOW - dt.timedelta(days=3))
    log.handled(["2"], now=NOW - dt.timedelta(hours=30))
    log.take([Entry("3", "{}")], now=NOW - dt.timedelta(days=3))  # never handled: kept
    pruned = await retention.prune(bot, NOW)
    assert pruned.updates == 1
    assert sorted(u.update_key for u in all_rows(bot, ProcessedUpdate)) == ["2", "3"]


async def test_unanswered_question_texts_go_after_the_retention_period(bot):
    from assistant.store import admin as admin_store

    questions = admin_store.UnansweredQuestions(bot.db)
    questions.add("Vanha kysymys", "vanha kysymys", "fi", None)
    questions.add("Uusi kysymys", "uusi kysymys", "fi", None)
    table = admin_store.UnansweredQuestion
    set_column(bot, table, "created_at", NOW - dt.timedelta(days=31), text="Vanha kysymys")
    set_column(bot, table, "created_at", NOW - dt.timedelta(days=1), text="Uusi kysymys")
    pruned = await retention.prune(bot, NOW)
    assert pruned.unanswered == 1
    assert [q.text for q in all_rows(bot, table)] == ["Uusi kysymys"]


async def test_feedback_is_kept_however_old(bot, chat_factory):
    await chat_factory(bot).send("/feedback Vanha mutta tärkeä palaute")
    set_column(bot, FeedbackItem, "created_at", NOW - dt.timedelta(days=3650))
    await retention.prune(bot, NOW)
    assert [i.text for i in all_rows(bot, FeedbackItem)] == ["Vanha mutta tärkeä palaute"]


async def test_prune_on_an_empty_database_deletes_nothing(bot):
    assert await retention.prune(bot) == retention.Pruned(0, 0, 0, 0)


async def test_prune_logs_counts_only(bot, chat_factory, caplog):
    await chat_factory(bot).send("/feedback Salainen palauteteksti")
    caplog.set_level("INFO")
    await retention.prune(bot, NOW + dt.timedelta(days=400))
    [record] = [r for r in caplog.records if r.name == "assistant.retention"]
    assert "conversation states" in record.getMessage()
    assert "Salainen" not in caplog.text
