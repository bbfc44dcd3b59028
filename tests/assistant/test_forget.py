"""/forget: after a confirmation, no table holds the resident's platform id or chat id."""

from __future__ import annotations

import datetime as dt
import re
import shutil

import pytest
from sqlalchemy import inspect, select, text
from sqlmodel import SQLModel

from assistant.core import Assistant
from assistant.store.feedback import FeedbackItem
from assistant.store.news import Subscription
from assistant.store.outbox import OutboxRow
from assistant.store.residents import ConversationState, utcnow
from assistant.store.updates import Entry, Updates
from tests.conftest import REPO, SAMPLE_KNOWLEDGE, make_settings

USER = "5550123987"  # distinctive: a substring of both the platform id and the chat id
REF = re.compile(r"P-\d{4}-\d{4}")


def make_bot(tmp_path, **env: str) -> Assistant:
    """Sample topics with the shipped districts; console:admin is an owner."""
    knowledge = tmp_path / "knowledge"
    shutil.copytree(SAMPLE_KNOWLEDGE / "topics", knowledge / "topics")
    shutil.copy(REPO / "knowledge" / "districts.yaml", knowledge / "districts.yaml")
    return Assistant(make_settings(tmp_path, KNOWLEDGE_DIR=str(knowledge),
                                   ASSISTANT_ADMINS="console:admin", **env))


@pytest.fixture
def bot(tmp_path):
    assistant = make_bot(tmp_path)
    yield assistant
    assistant.db.dispose()


@pytest.fixture
def any_bot(tmp_path, database_url):
    """The same on SQLite and on PostgreSQL (whose foreign keys are checked at once)."""
    assistant = make_bot(tmp_path, DATABASE_URL=database_url)
    yield assistant
    assistant.db.dispose()


def own(replies) -> str:
    return "\n".join(r.text for r in replies if not r.chat_id)


async def busy_resident(bot, chat_factory, user_id: str = USER):
    """A resident with everything: language, subscriptions, feedback, a form, queued pushes."""
    chat = chat_factory(bot, user_id=user_id, platform="telegram", language_hint="fi")
    await chat.send("/kieli suomi")
    await chat.send("/tilaa Tapiola")
    await chat.send("/tilaa Leppävaara")
    reference = REF.search(own(await chat.send("/palaute Penkit puuttuvat puistosta"))).group(0)
    return chat, reference


async def publish_news(bot, chat_factory, district: str = "tapiola") -> None:
    admin = chat_factory(bot, user_id="admin")
    [preview] = await admin.send(f"/news {district} Katutöitä ensi viikolla")
    await admin.send(choice=preview.choices[0].value)


async def confirm_forget(chat, button: int = 0) -> str:
    [question] = await chat.send("/forget")
    return own(await chat.send(choice=question.choices[button].value))


def leftovers(bot: Assistant, needle: str) -> list[str]:
    """Every table.column whose value contains `needle`, over every table in the database."""
    found = []
    with bot.db.engine.connect() as connection:
        existing = set(inspect(connection).get_table_names())
        for name, table in SQLModel.metadata.tables.items():
            if name not in existing:
                continue
            for row in connection.execute(select(table)).mappings():
                found += [f"{name}.{column}" for column, value in row.items()
                          if value is not None and needle in str(value)]
        for name in existing - set(SQLModel.metadata.tables):  # e.g. alembic_version
            for row in connection.execute(text(f'SELECT * FROM "{name}"')).mappings():
                found += [f"{name}.{column}" for column, value in row.items()
                          if value is not None and needle in str(value)]
    return found


def rows(bot: Assistant, model) -> list:
    with bot.db.session() as session:
        return list(session.exec(select(model)).scalars().all())


async def test_first_button_confirms_second_deletes_feedback_too_third_cancels(
        bot, chat_factory):
    chat = chat_factory(bot, language_hint="fi")
    [question] = await chat.send("/unohda")
    values = [c.value for c in question.choices]
    assert values[0].startswith("forget:yes:") and values[1].startswith("forget:all:")
    assert values[2] == "forget:no"
    assert all(len(v.encode()) <= 64 for v in values)
    assert "Poista tietoni" == question.choices[0].label


async def test_forget_leaves_no_trace_of_the_platform_or_chat_id(any_bot, chat_factory):
    bot = any_bot
    chat, reference = await busy_resident(bot, chat_factory)
    _, neighbours_ref = await busy_resident(bot, chat_factory, user_id="4440001")
    await chat.send("/palaute")  # an unfinished form with offered choices
    await publish_news(bot, chat_factory)
    log = Updates(bot.db).of("telegram")
    log.handled(["987654321"])
    log.take([Entry("987654322", f'{{"message": {{"from": {{"id": {USER}}}}}}}', USER),
              Entry("987654323", '{"message": {"from": {"id": 4440001}}}', "4440001")])
    assert leftovers(bot, USER), "the set-up should have stored the ids"
    pending = [r for r in rows(bot, OutboxRow) if r.chat_id == f"chat-{USER}"]
    assert pending and pending[0].status == "pending"
    forgotten = bot.residents.find("telegram", USER).id

    done = await confirm_forget(chat)

    assert "Tietosi on poistettu" in done and "1" in done
    assert leftovers(bot, USER) == []
    assert bot.residents.find("telegram", USER) is None
    [item, neighbours] = sorted(rows(bot, FeedbackItem), key=lambda i: i.reference)
    assert (item.reference, item.resident_id, item.text) == (
        reference, None, "Penkit puuttuvat puistosta")
    assert neighbours.reference == neighbours_ref and neighbours.resident_id is not None
    neighbour_row = bot.residents.find("telegram", "4440001")
    assert {s.resident_id for s in rows(bot, Subscription)} == {neighbour_row.id}
    assert {r.chat_id for r in rows(bot, OutboxRow)} == {"chat-4440001"}
    assert forgotten not in {s.resident_id for s in rows(bot, ConversationState)}
    assert log.pending() == ["987654323"]  # the neighbour's update still waits to be handled


async def test_typing_one_confirms_where_there_are_no_buttons(bot, chat_factory):
    chat, _ = await busy_resident(bot, chat_factory)
    await chat.send("/forget")
    assert "Tietosi on poistettu" in await chat.text("1")
    assert leftovers(bot, USER) == []


async def test_second_button_deletes_the_feedback_too(bot, chat_factory):
    chat, reference = await busy_resident(bot, chat_factory)
    await chat.send(f"/palaute Toinen palaute {USER}")
    done = await confirm_forget(chat, button=1)
    assert "Poistettuja palautteita: 2" in done
    assert rows(bot, FeedbackItem) == [] and leftovers(bot, USER) == []
    admin = chat_factory(bot, user_id="admin")
    assert "ei löydy" in await admin.text(f"/feedbacks {reference}")


async def test_third_button_and_expired_confirmations_delete_nothing(bot, chat_factory):
    chat, _ = await busy_resident(bot, chat_factory)
    assert "en poistanut mitään" in await confirm_forget(chat, button=2)
    old = int((utcnow() - dt.timedelta(hours=1)).timestamp())
    assert "vanhentunut" in await chat.text(choice=f"forget:yes:{old}")
    assert "voimassa" in await chat.text(choice="forget:yes:soon")
    resident = bot.residents.find("telegram", USER)
    assert resident is not None and len(bot.feedback.of_resident(resident.id)) == 1
    assert len(rows(bot, Subscription)) == 2


async def test_a_forgotten_resident_starts_afresh(bot, chat_factory):
    chat, _ = await busy_resident(bot, chat_factory)
    await confirm_forget(chat)
    await chat.send("/start")
    again = bot.residents.find("telegram", USER)
    assert again is not None and not again.language_chosen
    assert bot.feedback.of_resident(again.id) == []
    copy = own(await chat.send("/omattiedot"))
    assert "Et seuraa" in copy and "Et ole lähettänyt palautetta" in copy


async def test_admins_see_forgotten_feedback_as_anonymous(bot, chat_factory):
    chat, reference = await busy_resident(bot, chat_factory)
    await confirm_forget(chat)
    admin = chat_factory(bot, user_id="admin")
    await admin.send("/kieli suomi")
    assert "[nimetön]" in await admin.text("/feedbacks")
    assert "nimetön" in await admin.text(f"/feedbacks {reference}")
    await admin.send("/language en")
    assert "anonymous" in await admin.text(f"/feedbacks {reference}")
    await admin.send("/sprak svenska")
    assert "anonym" in await admin.text("/feedbacks")


async def test_reply_to_forgotten_feedback_says_the_resident_cannot_be_reached(
        bot, chat_factory):
    chat, reference = await busy_resident(bot, chat_factory)
    await confirm_forget(chat)
    admin = chat_factory(bot, user_id="admin")
    await admin.send("/kieli suomi")
    replies = await admin.send(f"/reply {reference} Kiitos palautteesta")
    assert [r for r in replies if r.chat_id] == []
    assert "voi enää tavoittaa" in own(replies)
    assert leftovers(bot, USER) == []


async def test_notices_of_known_residents_are_not_marked_anonymous(bot, chat_factory):
    _, reference = await busy_resident(bot, chat_factory)
    admin = chat_factory(bot, user_id="admin")
    await admin.send("/kieli suomi")
    assert "nimetön" not in await admin.text(f"/feedbacks {reference}")
    assert "nimetön" not in await admin.text("/feedbacks")
