"""Abuse resistance: per-resident flood control, unread content, and no reach beyond oneself."""

from __future__ import annotations

import pytest
from sqlmodel import select

from assistant.core import MAX_MESSAGE_CHARS, Assistant
from assistant.flood import FloodGuard, Verdict
from assistant.store.feedback import FeedbackItem
from assistant.store.news import NewsDraft, NewsItem
from assistant.store.outbox import OutboxRow
from tests.conftest import SAMPLE_KNOWLEDGE, make_settings


class Clock:
    """A hand-wound monotonic clock."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def bot(tmp_path):
    """The two-topic sample knowledge base; console:admin is an owner."""
    assistant = Assistant(make_settings(tmp_path, KNOWLEDGE_DIR=str(SAMPLE_KNOWLEDGE),
                                        ASSISTANT_ADMINS="console:admin"))
    yield assistant
    assistant.db.dispose()


@pytest.fixture
def clock(bot) -> Clock:
    clock = Clock()
    bot.flood = FloodGuard(limit=20, window=60, silence=60, clock=clock)
    return clock


def test_guard_warns_once_then_stays_silent_until_the_silence_ends():
    clock = Clock()
    guard = FloodGuard(limit=3, window=60, silence=30, clock=clock)
    assert [guard.check(("console", "a")) for _ in range(3)] == [Verdict.OK] * 3
    assert guard.check(("console", "a")) is Verdict.WARN
    assert guard.check(("console", "a")) is Verdict.SILENT
    assert guard.check(("console", "b")) is Verdict.OK
    clock.now += 29
    assert guard.check(("console", "a")) is Verdict.SILENT
    clock.now += 200  # silence over and the window empty: answered again
    assert guard.check(("console", "a")) is Verdict.OK


def test_guard_keeps_a_persistent_flooder_quiet_with_one_warning_per_silence():
    clock = Clock()
    guard = FloodGuard(limit=3, window=60, silence=30, clock=clock)
    verdicts = []
    for _ in range(40):  # one message every 2 s for 80 s
        verdicts.append(guard.check(("console", "a")))
        clock.now += 2
    assert verdicts[:3] == [Verdict.OK] * 3
    assert verdicts.count(Verdict.WARN) == 3  # at 6 s, then after each 30 s silence
    assert verdicts.count(Verdict.OK) == 3


def test_guard_slow_senders_are_never_limited():
    clock = Clock()
    guard = FloodGuard(limit=20, window=60, silence=60, clock=clock)
    for _ in range(200):
        assert guard.check(("telegram", "1")) is Verdict.OK
        clock.now += 3.1


def test_guard_forgets_idle_senders():
    clock = Clock()
    guard = FloodGuard(limit=5, window=60, silence=60, clock=clock)
    for n in range(999):
        guard.check(("console", str(n)))
    assert guard.tracked() == 999
    clock.now += 61
    guard.check(("console", "late"))  # the 1000th check sweeps
    assert guard.tracked() == 1


async def test_flooding_resident_gets_one_slow_down_then_silence(
        bot, clock, chat_factory):
    chat = chat_factory(bot, language_hint="fi")
    for n in range(20):
        assert await chat.send(f"kysymys numero {n}"), n
    [slow_down] = await chat.send("vielä yksi")
    assert "Odota hetki" in slow_down.text and "60" in slow_down.text
    for _ in range(5):
        assert await chat.send("ja vielä") == []
    other = chat_factory(bot, user_id="resident-2")
    assert await other.text("Miten teen kuntalaisaloitteen?")  # others are not affected
    clock.now += 121
    assert "Kuntalaisaloite" in await chat.text("Miten teen kuntalaisaloitteen?")


async def test_silenced_messages_touch_no_data(bot, clock, chat_factory):
    chat = chat_factory(bot)
    for _ in range(21):
        await chat.send("/start")
    assert await chat.send("/feedback Tämä ei saa tallentua") == []
    with bot.db.session() as session:
        assert session.exec(select(FeedbackItem)).all() == []


async def test_slow_down_speaks_the_residents_language(bot, clock, chat_factory):
    chat = chat_factory(bot)
    await chat.send("/language sv")
    for _ in range(19):
        await chat.send("/help")
    assert "Vänta en stund" in await chat.text("/help")


async def test_owners_are_not_flood_limited(bot, clock, chat_factory):
    admin = chat_factory(bot, user_id="admin")
    for _ in range(40):
        assert await admin.send("/help")


UNREAD_KINDS = ["sticker", "file", "photo", "voice", "audio", "video", "location", "contact",
                "poll", "edit", "other", "something-new"]


async def test_unread_content_gets_a_short_polite_answer(bot, chat_factory):
    chat = chat_factory(bot, language_hint="en")
    for kind in UNREAD_KINDS:
        [reply] = await chat.send("", kind=kind)
        assert reply.text == bot.texts.get("en", "unsupported_content"), kind
        assert not reply.chat_id and not reply.choices, kind


async def test_unreadable_encrypted_message_is_named_as_such(bot, chat_factory):
    chat = chat_factory(bot, language_hint="en")
    [reply] = await chat.send("", kind="encrypted")
    assert reply.text == bot.texts.get("en", "encrypted_unreadable")


async def test_edited_text_is_not_read_as_a_new_message(bot, chat_factory):
    chat = chat_factory(bot, language_hint="fi")
    [reply] = await chat.send("/feedback Muokattu viesti", kind="edit")
    assert reply.text == bot.texts.get("fi", "unsupported_content")
    with bot.db.session() as session:
        assert session.exec(select(FeedbackItem)).all() == []


async def test_oversized_message_is_refused_politely(bot, chat_factory):
    chat = chat_factory(bot, language_hint="fi")
    [reply] = await chat.send("a" * (MAX_MESSAGE_CHARS + 1))
    assert reply.text == bot.texts.get("fi", "message_too_long",
                                                     limit=MAX_MESSAGE_CHARS)
    [reply] = await chat.send("/feedback " + "b" * MAX_MESSAGE_CHARS)
    assert str(MAX_MESSAGE_CHARS) in reply.text
    with bot.db.session() as session:
        assert session.exec(select(FeedbackItem)).all() == []


ADMIN_ATTEMPTS = [
    "/news all Ilmainen tapahtuma kaikille!", "/news urgent all Hätä", "/uutinen kaikki Hei",
    "!nyhet alla Hej", "/news status", "/reply P-2026-0001 Hei naapuri", "/vastaa P-2026-0001 Moi",
    "/feedbacks", "/palautteet", "/feedback close P-2026-0001", "/admin", "/grant console:x editor",
    "/broadcast Hei kaikki", "/stats", "/audit", "/edit", "/unanswered", "/roles",
]


async def test_resident_cannot_push_or_reach_others(bot, chat_factory):
    chat = chat_factory(bot, language_hint="fi")
    await chat_factory(bot, user_id="resident-2").send("/feedback Toisen asukkaan palaute")
    for attempt in ADMIN_ATTEMPTS:
        replies = await chat.send(attempt)
        expected = bot.texts.get("fi", "unknown_command", command=_command_of(attempt))
        assert [r.text for r in replies] == [expected], attempt
        assert not any(r.chat_id or r.platform for r in replies), attempt
    with bot.db.session() as session:
        assert session.exec(select(OutboxRow)).all() == []
        assert session.exec(select(NewsItem)).all() == []
        assert session.exec(select(NewsDraft)).all() == []
        [item] = session.exec(select(FeedbackItem)).all()
        assert item.status == "new" and item.answer_text is None


def _command_of(attempt: str) -> str:
    name, _, rest = attempt[1:].partition(" ")
    words = rest.split()
    if name in ("feedback",) and words and words[0] == "close":
        return "feedback close"
    return name


async def test_resident_cannot_press_an_admins_news_buttons(bot, chat_factory):
    admin = chat_factory(bot, user_id="admin")
    chat = chat_factory(bot, language_hint="fi")
    await admin.send("/news all Vain ylläpitäjän uutinen")
    for value in ("news:ok:1", "news:at:1:tapiola", "fb:send"):
        [reply] = await chat.send(choice=value)
        assert reply.text == bot.texts.get("fi", "choice_expired")
    with bot.db.session() as session:
        assert session.exec(select(OutboxRow)).all() == []
        assert session.exec(select(NewsItem)).all() == []
