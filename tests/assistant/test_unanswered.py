"""Unanswered questions: kept without identity, grouped, listed, linked to a topic, answered."""

from __future__ import annotations

from assistant.answers import compose
from assistant.store.admin import AnswerRevision, AuditEntry, UnansweredQuestion
from assistant.unanswered import keep
from tests.assistant.test_admin_roles import admin_bot, rows, snapshot, staff, unknown  # noqa: F401

POOL = "Milloin uimahalli aukeaa?"


def questions(bot) -> list[UnansweredQuestion]:
    return sorted(rows(bot, UnansweredQuestion), key=lambda q: q.id)


async def test_an_unanswered_question_is_kept_as_text_and_language_only(admin_bot):
    resident = await staff(admin_bot, None)
    await resident.send(POOL)
    [question] = questions(admin_bot)
    assert (question.text, question.language, question.group_id) == (POOL, "fi", question.id)
    assert question.linked_revision_id is None
    stored = question.model_dump()
    assert set(stored) == {"id", "text", "normalised", "language", "group_id",
                           "linked_revision_id", "created_at"}
    assert "resident-1" not in str(stored) and "chat-resident-1" not in str(stored)


async def test_answered_questions_and_commands_are_not_kept(admin_bot):
    resident = await staff(admin_bot, None)
    await resident.send("Miten annan palautetta kaupungille?")
    await resident.send("/topics")
    assert questions(admin_bot) == []


async def test_similar_questions_share_a_group_per_language(admin_bot):
    for text, language in [(POOL, "fi"), ("milloin uimahalli aukeaa", "fi"),
                           ("Milloin Leppävaaran uimahalli aukeaa?", "fi"),
                           ("Paljonko bussilippu maksaa?", "fi"), (POOL, "sv")]:
        keep(admin_bot, text, language)
    found = questions(admin_bot)
    assert [q.group_id for q in found] == [found[0].id, found[0].id, found[0].id,
                                           found[3].id, found[4].id]
    groups = admin_bot.unanswered.groups(10)
    assert [(g.group_id, g.count, g.language) for g in groups] == [
        (found[0].id, 3, "fi"), (found[4].id, 1, "sv"), (found[3].id, 1, "fi")]


async def test_editor_lists_groups_most_frequent_first(admin_bot):
    editor = await staff(admin_bot, "editor")
    assert "Vastaamattomia kysymyksiä ei ole" in await editor.text("/unanswered")
    for text in ("Paljonko bussilippu maksaa?", POOL, POOL, "milloin uimahalli aukeaa"):
        keep(admin_bot, text, "fi")
    lines = (await editor.text("/vastaamattomat")).splitlines()
    assert lines[1] == f"#2 (3 kpl, suomi): {POOL}"
    assert lines[2] == "#1 (1 kpl, suomi): Paljonko bussilippu maksaa?"


async def test_unanswered_then_linked_then_answered(admin_bot):
    resident, editor = await staff(admin_bot, None), await staff(admin_bot, "editor")
    dont_know = admin_bot.texts.get("fi", "dont_know")
    assert await resident.text(POOL) == dont_know
    await (await staff(admin_bot, None, "resident-2")).send("milloin uimahalli aukeaa")
    [group] = admin_bot.unanswered.groups(10)
    assert group.count == 2
    reply = await editor.text(f"/unanswered link {group.group_id} sample-feedback")
    assert "sample-feedback" in reply and "2" in reply
    [revision] = rows(admin_bot, AnswerRevision)
    assert (revision.topic_id, revision.language, revision.field) == ("sample-feedback", "fi",
                                                                      "question")
    assert revision.value.split("\n") == [POOL, "milloin uimahalli aukeaa"]
    assert {q.linked_revision_id for q in questions(admin_bot)} == {revision.id}
    assert admin_bot.unanswered.groups(10) == []
    answer = compose(admin_bot, POOL, "fi")
    assert answer.topic_id == "sample-feedback"
    assert await resident.text(POOL) == answer.text
    assert len(questions(admin_bot)) == 2  # answered now: not kept again
    [entry] = [e for e in rows(admin_bot, AuditEntry) if e.action == "unanswered.link"]
    assert (entry.actor, entry.target) == ("telegram:1001",
                                           f"#{group.group_id} -> sample-feedback/fi")
    assert POOL in entry.after


async def test_undoing_a_link_reopens_the_group(admin_bot):
    editor = await staff(admin_bot, "editor")
    keep(admin_bot, POOL, "fi")
    await editor.send("/unanswered link 1 sample-feedback")
    assert admin_bot.unanswered.groups(10) == []
    await editor.send("/answer undo sample-feedback")
    assert compose(admin_bot, POOL, "fi").topic_id is None
    assert [g.group_id for g in admin_bot.unanswered.groups(10)] == [1]


async def test_swedish_group_is_linked_as_swedish_phrasings(admin_bot):
    editor = await staff(admin_bot, "editor")
    keep(admin_bot, "När öppnar simhallen?", "sv")
    await editor.send("/unanswered link #1 sample-feedback")
    [revision] = rows(admin_bot, AnswerRevision)
    assert (revision.language, revision.value) == ("sv", "När öppnar simhallen?")
    topic = admin_bot.knowledge.get("sample-feedback")
    assert "När öppnar simhallen?" in topic.text("sv").questions


async def test_link_mistakes_change_nothing(admin_bot):
    editor = await staff(admin_bot, "editor")
    keep(admin_bot, POOL, "fi")
    before = snapshot(admin_bot)
    assert "ryhmää #9 ei ole" in await editor.text("/unanswered link 9 sample-feedback")
    assert "Aihetta \"nothing\" ei ole" in await editor.text("/unanswered link 1 nothing")
    assert "Käyttö" in await editor.text("/unanswered link 1")
    assert "Käyttö" in await editor.text("/unanswered link x sample-feedback")
    assert snapshot(admin_bot) == before


async def test_a_group_the_topic_already_covers_stays_open(admin_bot):
    editor = await staff(admin_bot, "editor")
    keep(admin_bot, "Palaute kaupungille", "fi")  # already one of the topic's phrasings
    assert "on jo ryhmän #1" in await editor.text("/unanswered link 1 sample-feedback")
    assert rows(admin_bot, AnswerRevision) == []
    assert [g.group_id for g in admin_bot.unanswered.groups(10)] == [1]


async def test_unanswered_is_for_editors_only(admin_bot):
    keep(admin_bot, POOL, "fi")
    chats = [await staff(admin_bot, None), await staff(admin_bot, "moderator")]
    before = snapshot(admin_bot)
    for chat in chats:
        assert await chat.text("/unanswered") == unknown(admin_bot, "unanswered")
        assert await chat.text("/unanswered link 1 sample-feedback") == unknown(admin_bot,
                                                                               "unanswered")
    assert snapshot(admin_bot) == before
    owner = await staff(admin_bot, "owner")
    assert POOL in await owner.text("/unanswered")


async def test_a_failing_store_never_reaches_the_resident(admin_bot):
    def broken(*args, **kwargs):
        raise RuntimeError("disk full")
    admin_bot.unanswered.heads = broken
    resident = await staff(admin_bot, None)
    assert await resident.text(POOL) == admin_bot.texts.get("fi", "dont_know")
