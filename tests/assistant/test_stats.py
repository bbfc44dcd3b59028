"""`/stats`: residents, subscribers, feedback and questions, for moderators and editors only."""

from __future__ import annotations

import datetime as dt
import threading

import pytest

from assistant.curation import local_today
from assistant.store.admin import (
    AuditLog,
    QuestionCount,
    QuestionCounts,
    Revisions,
    Roles,
    Statistics,
    UnansweredQuestions,
)
from assistant.store.db import Database
from assistant.store.feedback import FeedbackStore
from tests.assistant.test_admin_roles import admin_bot, rows, snapshot, staff, unknown  # noqa: F401
from tests.conftest import Chat


async def test_stats_counts_residents_subscribers_feedback_and_questions(admin_bot):
    moderator = await staff(admin_bot, "moderator")  # telegram, Finnish
    for user, language in [("r1", "fi"), ("r2", "sv"), ("r3", "sv")]:
        await Chat(admin_bot, user_id=user).send(f"/language {language}")
    for user, district in [("r1", "Tapiola"), ("r2", "Tapiola"), ("r3", "Leppävaara")]:
        await Chat(admin_bot, user_id=user).send(f"/subscribe {district}")
    store = admin_bot.feedback
    for text in ("yksi", "kaksi", "kolme", "neljä"):
        store.file(None, "feedback", text, None, False)
    items = store.all_items()
    store.answer(items[0].reference, "Kiitos", "console:admin")
    store.close(items[1].reference)
    r1 = Chat(admin_bot, user_id="r1")
    await r1.send("Miten annan palautetta kaupungille?")
    await r1.send("Miten teen kuntalaisaloitteen?")
    await r1.send("Milloin uimahalli aukeaa?")
    admin_bot.question_counts.flush()  # counts are written in batches
    [counts] = rows(admin_bot, QuestionCount)
    assert (counts.day, counts.answered, counts.unanswered) == (local_today(admin_bot), 2, 1)

    text = await moderator.text("/stats")
    assert "Asukkaita yhteensä: 4" in text
    assert "- console: suomi 1, ruotsi 2" in text and "- telegram: suomi 1" in text
    assert "- Tapiola: 2" in text and "- Leppävaara: 1" in text
    assert text.index("Tapiola") < text.index("Leppävaara")
    assert "uusia 2, vastattuja 1, suljettuja 1" in text
    assert "7 päivän aikana: vastattuja 2, ilman vastausta 1" in text


async def test_questions_older_than_a_week_are_not_counted(admin_bot):
    today = local_today(admin_bot)
    admin_bot.question_counts.bump(today - dt.timedelta(days=7), True)
    admin_bot.question_counts.bump(today - dt.timedelta(days=6), True)
    admin_bot.question_counts.bump(today, False)
    admin_bot.question_counts.bump(today, False)
    assert admin_bot.question_counts.since(today - dt.timedelta(days=6)) == (1, 2)
    editor = await staff(admin_bot, "editor")
    assert "vastattuja 1, ilman vastausta 2" in await editor.text("/tilastot")


@pytest.mark.parametrize("role", ["moderator", "editor", "owner"])
async def test_moderators_editors_and_owners_may_read_stats(admin_bot, role):
    chat = await staff(admin_bot, role)
    assert (await chat.text("/stats")).startswith("Tilastot")


async def test_a_resident_asking_for_stats_gets_the_unknown_command_answer(admin_bot):
    resident = await staff(admin_bot, None)
    before = snapshot(admin_bot)
    assert await resident.text("/stats") == unknown(admin_bot, "stats")
    assert await resident.text("/statistik") == unknown(admin_bot, "statistik")
    assert await resident.text("!tilastot") == unknown(admin_bot, "tilastot")
    assert snapshot(admin_bot) == before
    assert "/stats" not in await resident.text("/help")


async def test_stats_without_subscribers_or_feedback(admin_bot):
    text = await (await staff(admin_bot, "editor")).text("/stats")
    assert "Uutistilaajia ei vielä ole." in text
    assert "uusia 0, vastattuja 0, suljettuja 0" in text


def test_admin_stores_behave_alike_on_sqlite_and_postgresql(database_url):
    """Roles, revisions, question groups, audit, counters and statistics on both databases."""
    db = Database(database_url)
    db.create_all()
    try:
        roles = Roles(db)
        assert roles.grant("telegram", "5", "moderator", "tapiola", "console:admin")
        assert not roles.grant("telegram", "5", "moderator", "tapiola", "console:admin")
        assert roles.grant("telegram", "5", "editor", None, "console:admin")
        assert not roles.grant("telegram", "5", "editor", None, "console:admin")
        assert len(roles.revoke("telegram", "5", "moderator")) == 1
        assert [r.role for r in roles.of("telegram", "5")] == ["editor"]

        revisions, questions = Revisions(db), UnansweredQuestions(db)
        group = questions.add("Milloin?", "milloin", "fi", None)
        assert questions.add("milloin", "milloin", "fi", group) == group
        revision = revisions.add("t", "fi", "question", "Milloin?", "x")
        assert questions.link(group, revision.id) == 2 and questions.groups(5) == []
        assert revisions.undo_latest("t").id == revision.id and revisions.active() == []
        assert [(g.group_id, g.count) for g in questions.groups(5)] == [(group, 2)]
        assert questions.heads("fi") == [(group, "milloin")]

        AuditLog(db).record("a", "role.add", "b", "", "c")
        assert [e.action for e in AuditLog(db).latest(5)] == ["role.add"]

        counts, day = QuestionCounts(db), dt.date(2026, 12, 1)
        workers = [threading.Thread(target=counts.bump, args=(day, n % 2 == 0)) for n in range(8)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(30)
        assert counts.since(day) == (4, 4)

        FeedbackStore(db).file(None, "feedback", "x", None, False)
        statistics = Statistics(db)
        assert statistics.feedback() == {"new": 1}
        assert statistics.residents() == [] and statistics.subscribers() == []
    finally:
        db.dispose()
