"""The fake server's webhook delivery behaves as Telegram's: parallel connections, one chat's
updates in order, a failed delivery posted again with the same update_id."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from telegram import Bot

from tests.fakes.telegram_server import FakeTelegramServer
from tests.fakes.telegram_webhook import queue_key

TOKEN = "123456789:TEST-espoo-token"


class Receiver:
    """A webhook endpoint: records each request, can hold requests and answer errors."""

    def __init__(self) -> None:
        self.received: list[int] = []  # update ids, in the order requests arrived
        self.answered: list[int] = []
        self.open = 0
        self.most_open = 0
        self.gate = asyncio.Event()
        self.gate.set()
        self.hold: set[int] = set()  # update ids that wait for `gate`
        self.statuses: dict[int, list[int]] = {}  # update id -> statuses to answer first
        self.headers: dict[int, dict[str, str]] = {}
        self.times: dict[int, list[float]] = {}
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        update = await request.json()
        update_id = update["update_id"]
        self.received.append(update_id)
        self.times.setdefault(update_id, []).append(time.monotonic())
        self.open += 1
        self.most_open = max(self.most_open, self.open)
        try:
            if update_id in self.hold:
                await self.gate.wait()
            script = self.statuses.get(update_id)
            if script:
                status = script.pop(0)
                return web.Response(status=status, headers=self.headers.get(update_id, {}))
            self.answered.append(update_id)
            return web.Response()
        finally:
            self.open -= 1

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hook", self.handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}/hook"

    async def stop(self) -> None:
        self.gate.set()
        if self._runner is not None:
            await self._runner.cleanup()


@pytest.fixture
async def server() -> AsyncIterator[FakeTelegramServer]:
    async with FakeTelegramServer(token=TOKEN) as fake:
        yield fake


@pytest.fixture
async def bot(server: FakeTelegramServer) -> AsyncIterator[Bot]:
    async with Bot(TOKEN, base_url=server.base_url, base_file_url=server.file_url) as client:
        yield client


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    endpoint = Receiver()
    await endpoint.start()
    yield endpoint
    await endpoint.stop()


async def eventually(condition: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


def ids(updates: list[dict]) -> list[int]:
    return [u["update_id"] for u in updates]


@pytest.mark.asyncio
async def test_up_to_max_connections_are_posted_at_once(
        server: FakeTelegramServer, bot: Bot, receiver: Receiver) -> None:
    receiver.gate.clear()
    updates = [server.send_text(5000 + n, "hei") for n in range(6)]
    receiver.hold = set(ids(updates))
    await bot.set_webhook(receiver.url, max_connections=3)
    assert (await bot.get_webhook_info()).max_connections == 3
    await eventually(lambda: len(receiver.received) == 3)
    await asyncio.sleep(0.1)  # no fourth request while three are open
    assert (receiver.open, len(receiver.received)) == (3, 3)
    receiver.gate.set()
    await eventually(lambda: len(server.webhook_deliveries) == 6)
    assert receiver.most_open == 3
    assert sorted(receiver.answered) == ids(updates)


@pytest.mark.asyncio
async def test_a_chats_next_update_waits_for_the_answer_to_the_previous(
        server: FakeTelegramServer, bot: Bot, receiver: Receiver) -> None:
    receiver.gate.clear()
    first = server.send_text(5001, "yksi")
    second, third = server.send_text(5001, "kaksi"), server.send_text(5001, "kolme")
    other = server.send_text(5002, "toinen asukas")
    receiver.hold = {first["update_id"]}
    await bot.set_webhook(receiver.url)
    await eventually(lambda: other["update_id"] in receiver.answered)  # not held up
    await asyncio.sleep(0.1)
    assert receiver.received == [first["update_id"], other["update_id"]]
    receiver.gate.set()
    await eventually(lambda: len(server.webhook_deliveries) == 4)
    assert [u for u in receiver.answered if u != other["update_id"]] == ids([first, second, third])


@pytest.mark.asyncio
async def test_a_failed_delivery_is_posted_again_with_the_same_id(
        server: FakeTelegramServer, bot: Bot, receiver: Receiver) -> None:
    first, second = server.send_text(5003, "yksi"), server.send_text(5003, "kaksi")
    other = server.send_text(5004, "hei")
    receiver.statuses[first["update_id"]] = [502, 500]
    await bot.set_webhook(receiver.url)
    await eventually(lambda: len(server.webhook_deliveries) == 3)
    assert receiver.received.count(first["update_id"]) == 3
    assert receiver.answered.index(first["update_id"]) < receiver.answered.index(
        second["update_id"])  # the chat's next update waited for the retries
    attempts = [a["status"] for a in server.delivery.attempts
                if a["update_id"] == first["update_id"]]
    assert attempts == [502, 500, 200]
    delivered = {d["update"]["update_id"]: d["attempts"] for d in server.webhook_deliveries}
    assert delivered == {first["update_id"]: 3, second["update_id"]: 1, other["update_id"]: 1}


@pytest.mark.asyncio
async def test_retry_after_of_a_failed_delivery_is_waited_out(
        server: FakeTelegramServer, bot: Bot, receiver: Receiver) -> None:
    update = server.send_text(5005, "hei")
    receiver.statuses[update["update_id"]] = [503]
    receiver.headers[update["update_id"]] = {"Retry-After": "1"}
    await bot.set_webhook(receiver.url)
    await eventually(lambda: bool(server.webhook_deliveries))
    first, again = receiver.times[update["update_id"]]
    assert again - first >= 0.95


@pytest.mark.asyncio
async def test_an_update_failing_every_retry_is_given_up(
        server: FakeTelegramServer, bot: Bot, receiver: Receiver) -> None:
    update = server.send_text(5006, "hei")
    receiver.statuses[update["update_id"]] = [500] * 10
    await bot.set_webhook(receiver.url)
    await eventually(lambda: bool(server.failed_webhook_deliveries))
    assert receiver.received == [update["update_id"]] * (1 + server.delivery.retries)
    assert "500" in server.failed_webhook_deliveries[0]["error"]
    assert not server.webhook_deliveries


@pytest.mark.asyncio
async def test_deleting_the_webhook_leaves_undelivered_updates_to_get_updates(
        server: FakeTelegramServer, bot: Bot, receiver: Receiver) -> None:
    receiver.gate.clear()
    updates = [server.send_text(5007, text) for text in ("yksi", "kaksi", "kolme")]
    receiver.hold = {updates[0]["update_id"]}
    await bot.set_webhook(receiver.url)
    await eventually(lambda: len(receiver.received) == 1)
    assert (await bot.get_webhook_info()).pending_update_count == 3
    await bot.delete_webhook()
    receiver.gate.set()
    await eventually(lambda: len(server.webhook_deliveries) == 1)
    polled = await bot.get_updates(timeout=1)
    assert [u.update_id for u in polled] == ids(updates[1:])


def test_updates_queue_per_kind_and_chat() -> None:
    message = {"update_id": 1, "message": {"chat": {"id": 7}, "from": {"id": 7}}}
    press = {"update_id": 2, "callback_query": {"id": "q", "from": {"id": 7}}}
    assert queue_key(message) == ("message", 7)
    assert queue_key(press) == ("callback_query", 7)
    assert queue_key({"update_id": 3, "poll": {"id": "p"}}) == ("update", 3)
