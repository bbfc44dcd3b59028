"""The daily digest: one message at the resident's Helsinki hour with the news since the last."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import select

from assistant.core import Assistant
from assistant.digests import send_digests
from assistant.newsdesk import news_desk
from assistant.store.news import DeliveryPreference
from assistant.store.outbox import OutboxRow
from tests.assistant.test_news import news_assistant  # noqa: F401  (fixture)

HELSINKI = ZoneInfo("Europe/Helsinki")
UTC = dt.timezone.utc


def local(day: int, hour: int, minute: int = 0) -> dt.datetime:
    """A January 2025 time in Helsinki, as UTC."""
    return dt.datetime(2025, 1, day, hour, minute, tzinfo=HELSINKI).astimezone(UTC)


def post(assistant: Assistant, district_id: str, text: str, when: dt.datetime) -> None:
    """An item as a confirmed admin post would store it, at `when`."""
    desk = news_desk(assistant)
    desk.clock = lambda: when
    with desk.db.session() as session:
        desk.publish(session, district_id, text, urgent=False, source="admin", author="test")


def digests(assistant: Assistant) -> list[OutboxRow]:
    with assistant.db.session() as session:
        return list(session.exec(select(OutboxRow).where(
            OutboxRow.dedupe_key.startswith("digest:")).order_by(OutboxRow.id)).all())


async def reader(assistant, chat_factory, user_id: str, district: str, hour: int,
                 since: dt.datetime) -> None:
    """A resident following `district` who chose a digest at `hour`, at time `since`."""
    news_desk(assistant).clock = lambda: since
    chat = chat_factory(assistant, user_id=user_id)
    await chat.send("/language fi")
    await chat.send(f"/tilaa {district}")
    await chat.send(f"/kooste {hour}")


@pytest.fixture
async def morning_reader(news_assistant, chat_factory):  # noqa: F811
    """resident-1 follows Leppävaara with a digest at 8, chosen on 14 January at noon."""
    await reader(news_assistant, chat_factory, "resident-1", "Leppävaara", 8, local(14, 12))
    return news_assistant


async def test_digest_collects_the_news_of_the_followed_districts(morning_reader):
    post(morning_reader, "leppavaara", "Asukasilta torstaina", local(14, 15))
    post(morning_reader, "suur-leppavaara", "Kirjasto suljettu", local(14, 16))
    post(morning_reader, "all", "Valtuusto kokoontuu", local(14, 17))
    post(morning_reader, "tapiola", "Tapiolan uutinen", local(14, 18))
    assert await send_digests(morning_reader, local(15, 8, 0)) == 1
    [row] = digests(morning_reader)
    assert "Asukasilta torstaina" in row.text and "Kirjasto suljettu" in row.text
    assert "Valtuusto kokoontuu" in row.text and "Tapiolan uutinen" not in row.text
    assert row.text.index("Asukasilta") < row.text.index("Valtuusto")
    assert row.chat_id == "chat-resident-1" and row.not_before == local(15, 8)
    assert row.dedupe_key == f"digest:{row.resident_id}:2025-01-15T08"


async def test_digest_readers_get_no_instant_rows(morning_reader):
    post(morning_reader, "leppavaara", "Asukasilta", local(14, 15))
    with morning_reader.db.session() as session:
        assert session.exec(select(OutboxRow)).all() == []


async def test_no_digest_at_another_hour(morning_reader):
    post(morning_reader, "leppavaara", "Asukasilta", local(14, 15))
    assert await send_digests(morning_reader, local(15, 9, 0)) == 0
    assert await send_digests(morning_reader, local(15, 7, 59)) == 0
    assert digests(morning_reader) == []


async def test_summer_time_hour_is_local(morning_reader):
    post(morning_reader, "leppavaara", "Asukasilta", local(14, 15))
    summer_eight = dt.datetime(2025, 7, 1, 8, 5, tzinfo=HELSINKI).astimezone(UTC)
    assert summer_eight.hour == 5
    assert await send_digests(morning_reader, summer_eight) == 1


async def test_last_digest_time_is_recorded_and_nothing_is_sent_twice(morning_reader):
    post(morning_reader, "leppavaara", "Asukasilta", local(14, 15))
    await send_digests(morning_reader, local(15, 8, 0))
    assert await send_digests(morning_reader, local(15, 8, 30)) == 0
    resident = morning_reader.residents.find("console", "resident-1")
    with morning_reader.db.session() as session:
        assert session.get(DeliveryPreference, resident.id).last_digest_at == local(15, 8, 30)
    assert len(digests(morning_reader)) == 1


async def test_next_digest_has_only_newer_news(morning_reader):
    post(morning_reader, "leppavaara", "Eilinen uutinen", local(14, 15))
    await send_digests(morning_reader, local(15, 8))
    post(morning_reader, "leppavaara", "Tämän päivän uutinen", local(15, 12))
    assert await send_digests(morning_reader, local(16, 8)) == 1
    latest = digests(morning_reader)[-1]
    assert "Tämän päivän uutinen" in latest.text and "Eilinen" not in latest.text


async def test_no_news_no_message(morning_reader):
    post(morning_reader, "leppavaara", "Ennen tilausta", local(14, 11))
    assert await send_digests(morning_reader, local(15, 8)) == 0
    assert digests(morning_reader) == []


async def test_inactive_reader_gets_no_digest(morning_reader):
    post(morning_reader, "leppavaara", "Asukasilta", local(14, 15))
    morning_reader.residents.mark_inactive("console", "chat-resident-1")
    assert await send_digests(morning_reader, local(15, 8)) == 0


async def test_each_reader_gets_their_own_districts(morning_reader, chat_factory):
    await reader(morning_reader, chat_factory, "resident-2", "Tapiola", 8, local(14, 12))
    post(morning_reader, "leppavaara", "Leppävaaran uutinen", local(14, 15))
    post(morning_reader, "tapiola", "Tapiolan uutinen", local(14, 16))
    assert await send_digests(morning_reader, local(15, 8)) == 2
    texts = {row.chat_id: row.text for row in digests(morning_reader)}
    assert "Tapiolan" not in texts["chat-resident-1"]
    assert "Leppävaaran" not in texts["chat-resident-2"]


async def test_long_digest_is_cut_with_a_count_of_the_rest(morning_reader):
    for n in range(12):
        post(morning_reader, "leppavaara", f"Uutinen {n} " + "x" * 590, local(14, 13, n))
    await send_digests(morning_reader, local(15, 8))
    [row] = digests(morning_reader)
    assert len(row.text) < 4096
    assert "Uutinen 0 " in row.text and "Uutinen 11 " not in row.text
    assert "muuta uutista" in row.text


async def test_digest_wakes_the_sender(morning_reader):
    woken = []
    morning_reader.delivery_wake = lambda: woken.append(True)
    post(morning_reader, "leppavaara", "Asukasilta", local(14, 15))
    await send_digests(morning_reader, local(15, 8))
    assert woken == [True]
