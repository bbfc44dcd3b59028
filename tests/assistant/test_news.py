"""Admins' district news: a preview with its reach, confirm/cancel buttons, outbox fan-out."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path
from typing import Callable
from zoneinfo import ZoneInfo

import pytest
import yaml
from sqlmodel import select

from assistant.core import Assistant
from assistant.newsdesk import news_desk, quiet_until
from assistant.store.news import NewsDraft, NewsItem
from assistant.store.outbox import OutboxRow
from tests.conftest import REPO, SAMPLE_KNOWLEDGE, make_settings

UTC = dt.timezone.utc
HELSINKI = ZoneInfo("Europe/Helsinki")


def news_knowledge(tmp_path: Path, edit: Callable[[dict], None] | None = None) -> Path:
    """The sample topics (quick to load) with the shipped districts, optionally edited."""
    knowledge = tmp_path / "knowledge"
    shutil.copytree(SAMPLE_KNOWLEDGE / "topics", knowledge / "topics")
    data = yaml.safe_load((REPO / "knowledge" / "districts.yaml").read_text(encoding="utf-8"))
    if edit is not None:
        edit(data)
    (knowledge / "districts.yaml").write_text(yaml.safe_dump(data, allow_unicode=True), "utf-8")
    return knowledge


def make_news_assistant(tmp_path: Path, edit: Callable[[dict], None] | None = None,
                        **env: str) -> Assistant:
    return Assistant(make_settings(tmp_path, ASSISTANT_ADMINS="console:admin",
                                   KNOWLEDGE_DIR=str(news_knowledge(tmp_path, edit)), **env))


@pytest.fixture
def news_assistant(tmp_path):
    bot = make_news_assistant(tmp_path)
    yield bot
    bot.db.dispose()


def moderators(assistant: Assistant, *user_ids: str) -> None:
    """Give the `moderator` role to console users (owners come from ASSISTANT_ADMINS)."""
    assistant.role_resolvers.append(
        lambda incoming: {"moderator"} if incoming.user_id in user_ids else set())


async def subscribe(chat_factory, assistant: Assistant, user_id: str, district: str) -> None:
    replies = await chat_factory(assistant, user_id=user_id).send(f"/subscribe {district}")
    assert replies[0].choices[0].value == "newsmode:now", replies[0].text


def outbox_rows(assistant: Assistant) -> list[OutboxRow]:
    with assistant.db.session() as session:
        return list(session.exec(select(OutboxRow).order_by(OutboxRow.id)).all())


def resident_rows(assistant: Assistant) -> dict[str, OutboxRow]:
    """Outbox rows for residents, by the resident's chat id."""
    return {r.chat_id: r for r in outbox_rows(assistant) if r.resident_id is not None}


def items(assistant: Assistant) -> list[NewsItem]:
    with assistant.db.session() as session:
        return list(session.exec(select(NewsItem)).all())


def set_clock(assistant: Assistant, when: dt.datetime) -> None:
    news_desk(assistant).clock = lambda: when


@pytest.fixture
async def neighbourhood(news_assistant, chat_factory):
    """Subscribers: two of Leppävaara, one of Suur-Leppävaara, one of Tapiola."""
    for user, district in [("lepp-1", "Leppävaara"), ("lepp-2", "Leppävaara"),
                           ("major-1", "Suur-Leppävaara"), ("tapiola-1", "Tapiola")]:
        await subscribe(chat_factory, news_assistant, user, district)
    return news_assistant


async def test_resident_without_the_role_gets_the_unknown_command_answer(
        news_assistant, chat_factory):
    chat = chat_factory(news_assistant, user_id="resident-1")
    await chat.send("/language fi")
    unknown = await chat.text("/nosuchcommand")
    answer = await chat.text("/news Leppävaara Asukasilta torstaina")
    assert answer == unknown.replace("nosuchcommand", "news")
    assert items(news_assistant) == [] and outbox_rows(news_assistant) == []


async def test_preview_counts_recipients_and_sends_nothing_yet(neighbourhood, chat_factory):
    admin = chat_factory(neighbourhood, user_id="admin")
    [preview] = await admin.send("/news Leppävaara Asukasilta torstaina klo 18")
    assert "Asukasilta torstaina klo 18" in preview.text
    assert "3" in preview.text  # lepp-1, lepp-2 and the Suur-Leppävaara subscriber
    assert [c.value.split(":")[1] for c in preview.choices] == ["ok", "no"]
    assert items(neighbourhood) == [] and outbox_rows(neighbourhood) == []
    with neighbourhood.db.session() as session:
        draft = session.exec(select(NewsDraft)).one()
    assert (draft.district_id, draft.status, draft.urgent) == ("leppavaara", "pending", False)


async def test_first_button_confirms_and_queues_one_row_per_subscriber(neighbourhood, chat_factory):
    admin = chat_factory(neighbourhood, user_id="admin")
    [preview] = await admin.send("/news Leppävaara Asukasilta torstaina")
    await admin.send(choice=preview.choices[0].value)
    [item] = items(neighbourhood)
    assert (item.district_id, item.source, item.author, item.urgent) == (
        "leppavaara", "admin", "console:admin", False)
    rows = resident_rows(neighbourhood)
    assert set(rows) == {"chat-lepp-1", "chat-lepp-2", "chat-major-1"}
    row = rows["chat-lepp-1"]
    assert row.dedupe_key == f"news:{item.id}:r:{row.resident_id}"
    assert (row.news_item_id, row.status, row.platform) == (item.id, "pending", "console")
    assert "Asukasilta torstaina" in row.text and "Leppävaara" in row.text


async def test_confirming_twice_sends_once(neighbourhood, chat_factory):
    admin = chat_factory(neighbourhood, user_id="admin")
    [preview] = await admin.send("/news Leppävaara Asukasilta")
    await admin.send(choice=preview.choices[0].value)
    again = await admin.text(choice=preview.choices[0].value)
    assert again == neighbourhood.texts.get("fi", "news_draft_gone")
    assert len(items(neighbourhood)) == 1 and len(outbox_rows(neighbourhood)) == 3


async def test_second_button_cancels(neighbourhood, chat_factory):
    admin = chat_factory(neighbourhood, user_id="admin")
    [preview] = await admin.send("/news Leppävaara Asukasilta")
    assert await admin.text(choice=preview.choices[1].value) == neighbourhood.texts.get(
        "fi", "news_cancelled")
    assert items(neighbourhood) == [] and outbox_rows(neighbourhood) == []
    with neighbourhood.db.session() as session:
        assert session.exec(select(NewsDraft)).one().status == "cancelled"
    await admin.send(choice=preview.choices[0].value)
    assert items(neighbourhood) == []


async def test_news_for_a_major_district_reaches_its_city_districts(neighbourhood, chat_factory):
    admin = chat_factory(neighbourhood, user_id="admin")
    [preview] = await admin.send("/news Suur-Leppävaara Kirjasto suljettu")
    await admin.send(choice=preview.choices[0].value)
    assert set(resident_rows(neighbourhood)) == {"chat-lepp-1", "chat-lepp-2", "chat-major-1"}


async def test_news_for_another_district_skips_these_subscribers(neighbourhood, chat_factory):
    admin = chat_factory(neighbourhood, user_id="admin")
    [preview] = await admin.send("/news Tapiola Kirjasto suljettu")
    assert "1" in preview.text
    await admin.send(choice=preview.choices[0].value)
    assert set(resident_rows(neighbourhood)) == {"chat-tapiola-1"}


async def test_news_for_all_reaches_every_subscriber(neighbourhood, chat_factory):
    admin = chat_factory(neighbourhood, user_id="admin")
    [preview] = await admin.send("/news kaikki Valtuusto kokoontuu maanantaina")
    await admin.send(choice=preview.choices[0].value)
    assert len(resident_rows(neighbourhood)) == 4
    assert items(neighbourhood)[0].district_id == "all"


async def test_inactive_residents_get_no_rows(neighbourhood, chat_factory):
    neighbourhood.residents.mark_inactive("console", "chat-lepp-2")
    admin = chat_factory(neighbourhood, user_id="admin")
    [preview] = await admin.send("/news Leppävaara Asukasilta")
    assert "2" in preview.text
    await admin.send(choice=preview.choices[0].value)
    assert set(resident_rows(neighbourhood)) == {"chat-lepp-1", "chat-major-1"}


async def test_digest_readers_get_no_instant_row(neighbourhood, chat_factory):
    await chat_factory(neighbourhood, user_id="lepp-1").send(choice="newsmode:18")
    admin = chat_factory(neighbourhood, user_id="admin")
    [preview] = await admin.send("/news Leppävaara Asukasilta")
    assert news_desk(neighbourhood).audience("leppavaara").digest == 1
    await admin.send(choice=preview.choices[0].value)
    assert set(resident_rows(neighbourhood)) == {"chat-lepp-2", "chat-major-1"}


async def test_moderator_role_may_post_and_owners_pass(news_assistant, chat_factory):
    moderators(news_assistant, "mod")
    await subscribe(chat_factory, news_assistant, "lepp-1", "Leppävaara")
    moderator = chat_factory(news_assistant, user_id="mod")
    [preview] = await moderator.send("/uutinen Leppävaara Katutöitä")
    await moderator.send(choice=preview.choices[0].value)
    assert items(news_assistant)[0].author == "console:mod"


async def test_only_the_author_may_confirm_a_draft(neighbourhood, chat_factory):
    moderators(neighbourhood, "mod")
    admin = chat_factory(neighbourhood, user_id="admin")
    [preview] = await admin.send("/news Leppävaara Katutöitä")
    await chat_factory(neighbourhood, user_id="mod").send(choice=preview.choices[0].value)
    resident = chat_factory(neighbourhood, user_id="lepp-1")
    assert await resident.text(choice=preview.choices[0].value) == neighbourhood.texts.get(
        "fi", "choice_expired")
    assert items(neighbourhood) == []


async def test_ambiguous_district_gets_choices_never_a_guess(neighbourhood, chat_factory):
    admin = chat_factory(neighbourhood, user_id="admin")
    [question] = await admin.send("/news Oleri Kokous tiistaina")
    assert [c.value.rsplit(":", 1)[1] for c in question.choices] == ["olari"]
    [preview] = await admin.send(choice=question.choices[0].value)
    assert "Kokous tiistaina" in preview.text and "Olari" in preview.text
    await admin.send(choice=preview.choices[0].value)
    assert items(neighbourhood)[0].district_id == "olari"


async def test_multi_word_district_name_is_taken_whole(neighbourhood, chat_factory):
    admin = chat_factory(neighbourhood, user_id="admin")
    [preview] = await admin.send("/news Espoon keskus Kirjasto auki")
    await admin.send(choice=preview.choices[0].value)
    item = items(neighbourhood)[0]
    assert (item.district_id, item.text) == ("espoon-keskus", "Kirjasto auki")


async def test_pending_post_survives_a_restart(neighbourhood, chat_factory):
    admin = chat_factory(neighbourhood, user_id="admin")
    [preview] = await admin.send("/news Leppävaara Asukasilta")
    restarted = Assistant(neighbourhood.settings)
    try:
        await chat_factory(restarted, user_id="admin").send(choice=preview.choices[0].value)
        assert len(items(restarted)) == 1 and len(resident_rows(restarted)) == 3
    finally:
        restarted.db.dispose()


async def test_item_and_rows_are_stored_in_one_transaction(
        neighbourhood, chat_factory, monkeypatch):
    outbox = news_desk(neighbourhood).outbox
    real_add = outbox.add

    def add_then_fail(session, messages):
        real_add(session, messages)
        raise RuntimeError("database went away")

    monkeypatch.setattr(outbox, "add", add_then_fail)
    admin = chat_factory(neighbourhood, user_id="admin")
    [preview] = await admin.send("/news Leppävaara Asukasilta")
    answer = await admin.text(choice=preview.choices[0].value)
    assert answer == neighbourhood.texts.get("fi", "internal_error")
    assert items(neighbourhood) == [] and outbox_rows(neighbourhood) == []
    with neighbourhood.db.session() as session:
        assert session.exec(select(NewsDraft)).one().status == "pending"
    monkeypatch.setattr(outbox, "add", real_add)
    await admin.send(choice=preview.choices[0].value)
    assert len(items(neighbourhood)) == 1 and len(outbox_rows(neighbourhood)) == 3


async def test_confirm_wakes_the_sender(neighbourhood, chat_factory):
    woken = []
    neighbourhood.delivery_wake = lambda: woken.append(True)
    admin = chat_factory(neighbourhood, user_id="admin")
    [preview] = await admin.send("/news Leppävaara Asukasilta")
    await admin.send(choice=preview.choices[0].value)
    assert woken == [True]


async def test_news_status_shows_sent_pending_and_failed(neighbourhood, chat_factory):
    admin = chat_factory(neighbourhood, user_id="admin")
    [preview] = await admin.send("/news Leppävaara Asukasilta")
    await admin.send(choice=preview.choices[0].value)
    outbox = news_desk(neighbourhood).outbox
    first, second, _ = outbox_rows(neighbourhood)
    outbox.mark_sent(first.id)
    outbox.claim("test", 10, 60)
    outbox.mark_failed(second.id, "bad request")
    outbox.mark_retry(_.id, 5, "timeout")
    status = await admin.text("/news status")
    assert "Asukasilta" in status and "1 / 1 / 1" in status


# quiet hours ---------------------------------------------------------------


@pytest.fixture
def quiet_assistant(tmp_path):
    bot = make_news_assistant(tmp_path, QUIET_HOURS="22-08")
    yield bot
    bot.db.dispose()


@pytest.mark.parametrize("local,expected", [
    (dt.datetime(2025, 1, 15, 23, 30), dt.datetime(2025, 1, 16, 8, 0)),
    (dt.datetime(2025, 1, 16, 3, 0), dt.datetime(2025, 1, 16, 8, 0)),
    (dt.datetime(2025, 7, 1, 22, 0), dt.datetime(2025, 7, 2, 8, 0)),   # summer time
    (dt.datetime(2025, 3, 30, 2, 30), dt.datetime(2025, 3, 30, 8, 0)),  # clocks go forward
    (dt.datetime(2025, 1, 16, 8, 0), None),
    (dt.datetime(2025, 1, 16, 21, 59), None),
])
def test_quiet_hours_end_in_helsinki_time(local, expected):
    now = local.replace(tzinfo=HELSINKI).astimezone(UTC)
    found = quiet_until((22, 8), HELSINKI, now)
    wanted = expected.replace(tzinfo=HELSINKI).astimezone(UTC) if expected else None
    assert found == wanted
    assert found is None or found.tzinfo is not None


def test_quiet_hours_off_and_daytime_windows():
    now = dt.datetime(2025, 1, 15, 23, 30, tzinfo=HELSINKI)
    assert quiet_until(None, HELSINKI, now) is None
    assert quiet_until((1, 6), HELSINKI, now) is None
    assert quiet_until((1, 6), HELSINKI, now.replace(hour=2)) == dt.datetime(
        2025, 1, 15, 6, tzinfo=HELSINKI).astimezone(UTC)


async def test_instant_push_waits_for_the_end_of_quiet_hours(quiet_assistant, chat_factory):
    await subscribe(chat_factory, quiet_assistant, "lepp-1", "Leppävaara")
    night = dt.datetime(2025, 1, 15, 23, 30, tzinfo=HELSINKI).astimezone(UTC)
    set_clock(quiet_assistant, night)
    admin = chat_factory(quiet_assistant, user_id="admin")
    [preview] = await admin.send("/news Leppävaara Asukasilta")
    assert "08:00" in preview.text
    await admin.send(choice=preview.choices[0].value)
    [row] = outbox_rows(quiet_assistant)
    assert row.not_before == dt.datetime(2025, 1, 16, 6, 0, tzinfo=UTC)


async def test_urgent_news_bypasses_quiet_hours(quiet_assistant, chat_factory):
    await subscribe(chat_factory, quiet_assistant, "lepp-1", "Leppävaara")
    night = dt.datetime(2025, 1, 15, 23, 30, tzinfo=HELSINKI).astimezone(UTC)
    set_clock(quiet_assistant, night)
    admin = chat_factory(quiet_assistant, user_id="admin")
    [preview] = await admin.send("/news urgent Leppävaara Vesikatko huomenna")
    await admin.send(choice=preview.choices[0].value)
    [row] = outbox_rows(quiet_assistant)
    assert row.not_before == night
    assert items(quiet_assistant)[0].urgent


async def test_daytime_push_is_due_at_once(quiet_assistant, chat_factory):
    await subscribe(chat_factory, quiet_assistant, "lepp-1", "Leppävaara")
    noon = dt.datetime(2025, 1, 15, 12, 0, tzinfo=HELSINKI).astimezone(UTC)
    set_clock(quiet_assistant, noon)
    admin = chat_factory(quiet_assistant, user_id="admin")
    [preview] = await admin.send("/news Leppävaara Asukasilta")
    await admin.send(choice=preview.choices[0].value)
    assert outbox_rows(quiet_assistant)[0].not_before == noon


# district channels -----------------------------------------------------------


def _add_channels(data: dict) -> None:
    major = next(m for m in data["major_districts"] if m["id"] == "suur-leppavaara")
    major["telegram_channel"] = "@espoo_leppavaara"
    city = next(d for d in major["districts"] if d["id"] == "leppavaara")
    city["matrix_room"] = "#leppavaara:example.org"


@pytest.fixture
def channel_assistant(tmp_path):
    """Districts with a Telegram channel for Suur-Leppävaara and a Matrix room for Leppävaara."""
    bot = make_news_assistant(tmp_path, _add_channels)
    yield bot
    bot.db.dispose()


async def test_district_channels_get_one_row_each(channel_assistant, chat_factory):
    admin = chat_factory(channel_assistant, user_id="admin")
    [preview] = await admin.send("/news Leppävaara Asukasilta")
    assert news_desk(channel_assistant).audience("leppavaara").channels == 2
    await admin.send(choice=preview.choices[0].value)
    item = items(channel_assistant)[0]
    channels = {(r.platform, r.chat_id, r.dedupe_key) for r in outbox_rows(channel_assistant)}
    assert channels == {
        ("telegram", "@espoo_leppavaara", f"channel:{item.id}:suur-leppavaara:telegram"),
        ("matrix", "#leppavaara:example.org", f"channel:{item.id}:leppavaara:matrix")}


async def test_news_elsewhere_skips_these_channels(channel_assistant, chat_factory):
    admin = chat_factory(channel_assistant, user_id="admin")
    [preview] = await admin.send("/news Kilo Asukasilta")
    await admin.send(choice=preview.choices[0].value)
    assert {r.chat_id for r in outbox_rows(channel_assistant)} == {"@espoo_leppavaara"}


async def test_line_breaks_of_the_post_are_kept(neighbourhood, chat_factory):
    admin = chat_factory(neighbourhood, user_id="admin")
    [preview] = await admin.send("/news urgent Espoon keskus Vesikatko\n\nKadut:  Kirkkokatu")
    await admin.send(choice=preview.choices[0].value)
    item = items(neighbourhood)[0]
    assert (item.district_id, item.text, item.urgent) == (
        "espoon-keskus", "Vesikatko\n\nKadut:  Kirkkokatu", True)


async def test_unknown_district_creates_no_draft(neighbourhood, chat_factory):
    admin = chat_factory(neighbourhood, user_id="admin")
    await admin.send("/language fi")
    reply = await admin.text("/news Atlantis Kokous")
    assert reply == neighbourhood.texts.get("fi", "news_target_unknown")
    with neighbourhood.db.session() as session:
        assert session.exec(select(NewsDraft)).all() == []
