"""The adapter's plumbing: the aiohttp backend for PTB, per-chat ordering, the redelivery filter."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from telegram import Bot, Update
from telegram.error import NetworkError, TimedOut

from adapters.telegram_http import AiohttpRequest
from adapters.telegram_intake import RecentUpdates
from adapters.telegram_queue import ChatOrderedProcessor
from assistant.store.updates import Entry
from tests.adapters.telegram_rig import TOKEN
from tests.fakes.telegram_server import FakeTelegramServer

RESIDENT = 4242


@pytest.fixture
async def server() -> AsyncIterator[FakeTelegramServer]:
    async with FakeTelegramServer(token=TOKEN) as fake:
        fake.add_chat(RESIDENT)
        yield fake


def bot_on(server: FakeTelegramServer, read_timeout: float = 5.0) -> Bot:
    return Bot(TOKEN, base_url=server.base_url, base_file_url=server.file_url,
               request=AiohttpRequest(read_timeout=read_timeout))


async def test_aiohttp_backend_sends_forms_and_uploads(server: FakeTelegramServer) -> None:
    async with bot_on(server) as bot:
        await bot.send_message(RESIDENT, "Hei <b>Espoo</b> &amp; sinä", parse_mode="HTML")
        await bot.send_document(RESIDENT, b"a;b\n1;2\n", filename="palaute.csv", caption="CSV")
    assert server.texts_to(RESIDENT) == ["Hei Espoo & sinä", "CSV"]
    assert (server.uploads[0]["filename"], server.uploads[0]["content"]) == (
        "palaute.csv", b"a;b\n1;2\n")


async def test_aiohttp_backend_reports_timeouts_and_lost_connections(
        server: FakeTelegramServer) -> None:
    async with bot_on(server, read_timeout=0.2) as bot:
        server.delay_next("sendMessage", 1.0)
        with pytest.raises(TimedOut):
            await bot.send_message(RESIDENT, "hidas")
        server.drop_next("sendMessage")
        with pytest.raises(NetworkError) as caught:
            await bot.send_message(RESIDENT, "katkennut")
        assert TOKEN not in str(caught.value)  # the URL holds the token; errors must not
        assert (await bot.send_message(RESIDENT, "perillä")).text == "perillä"


async def test_long_polls_wait_longer_than_the_read_timeout(server: FakeTelegramServer) -> None:
    async with bot_on(server, read_timeout=0.2) as bot:
        assert await bot.get_updates(timeout=1) == ()  # PTB adds the poll time to the timeout


def _update(update_id: int, chat_id: int) -> Update:
    chat = {"id": chat_id, "type": "private", "first_name": "A"}
    message = {"message_id": update_id, "date": 0, "chat": chat, "text": "x",
               "from": {"id": chat_id, "is_bot": False, "first_name": "A"}}
    return Update.de_json({"update_id": update_id, "message": message}, None)


async def test_one_chat_in_order_other_chats_alongside() -> None:
    processor = ChatOrderedProcessor(8)
    log: list[str] = []

    async def handle(name: str, seconds: float) -> None:
        log.append(f"{name} in")
        await asyncio.sleep(seconds)
        log.append(f"{name} out")

    await asyncio.gather(
        processor.process_update(_update(1, 10), handle("a1", 0.05)),
        processor.process_update(_update(2, 10), handle("a2", 0)),
        processor.process_update(_update(3, 20), handle("b1", 0)),
    )
    assert log.index("a1 out") < log.index("a2 in")  # the same chat waits its turn
    assert log.index("b1 out") < log.index("a1 out")  # another chat does not
    assert processor.chats_in_flight == 0  # nothing kept per resident afterwards


def test_recent_updates_forget_the_oldest() -> None:
    recent = RecentUpdates(capacity=2)

    def new(key: str) -> bool:
        return recent.take([Entry(key, "{}")]) == {key}

    assert new("1") and new("2") and not new("1")
    assert new("3")  # "2" was the oldest and is forgotten
    assert new("2") and not new("3")
