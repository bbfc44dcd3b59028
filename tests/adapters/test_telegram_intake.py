"""Durable intake on the fake Bot API: an update is stored before Telegram counts it as
delivered, and one taken in by a process that died is answered by the next, exactly once."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlmodel import select

from adapters.telegram import TelegramAdapter
from assistant.core import Assistant
from assistant.menus import command_menus
from assistant.messages import Incoming
from assistant.router import Router
from assistant.store.updates import ProcessedUpdate, UpdateLog
from tests.adapters.telegram_rig import BOT_NAME, TOKEN, eventually
from tests.conftest import make_settings
from tests.fakes.telegram_server import FakeTelegramServer

_platforms = itertools.count(1)


@pytest.fixture(scope="module")
def assistant(tmp_path_factory: pytest.TempPathFactory) -> Assistant:
    bot = Assistant(make_settings(tmp_path_factory.mktemp("intake")))
    yield bot
    bot.db.dispose()


@pytest.fixture
async def server() -> AsyncIterator[FakeTelegramServer]:
    fake = FakeTelegramServer(token=TOKEN, bot_username=BOT_NAME)
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
def platform() -> str:
    """A key space of the test's own (the fake server numbers updates from the same start)."""
    return f"tg-intake-{next(_platforms)}"


def adapter_on(server: FakeTelegramServer, assistant: Assistant, log: UpdateLog,
               **env: Any) -> TelegramAdapter:
    settings = dataclasses.replace(assistant.settings, telegram_bot_token=TOKEN,
                                   telegram_api_url=server.url, **env)
    return TelegramAdapter(settings, menus=command_menus(assistant), poll_timeout=1, log=log)


async def answering(adapter: TelegramAdapter, assistant: Assistant) -> None:
    router = Router(assistant)
    router.add(adapter)
    await adapter.start(router.on_message)


def stored_keys(assistant: Assistant, platform: str) -> set[str]:
    """Every update key taken in, pending or handled."""
    with assistant.db.session() as session:
        return set(session.exec(select(ProcessedUpdate.update_key).where(
            ProcessedUpdate.platform == platform)).all())


class Stuck:
    """A process that takes updates in and never gets to answer them: its handlers hang
    until `die()` cancels them, as a kill would end them."""

    def __init__(self) -> None:
        self.handling: list[asyncio.Task[Any]] = []
        self.dead = False

    async def on_message(self, incoming: Incoming) -> None:
        if self.dead:
            raise asyncio.CancelledError
        self.handling.append(asyncio.current_task())  # type: ignore[arg-type]
        await asyncio.Event().wait()

    def die(self) -> None:
        self.dead = True
        for task in self.handling:
            task.cancel()


async def test_updates_a_dead_process_took_in_are_answered_once_by_the_next(
        server: FakeTelegramServer, assistant: Assistant, platform: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    first_log = UpdateLog(assistant.db, platform, lease_seconds=0.5)
    first, stuck = adapter_on(server, assistant, first_log), Stuck()
    await first.start(stuck.on_message)
    alice, bob = server.user(880_001, "Alice", "en"), server.user(880_002, "Bob", "en")
    sent = [server.send_text(alice, "/start"), server.send_text(bob, "/help"),
            server.send_text(alice, "/help")]
    # All three taken in and confirmed to Telegram (the next getUpdates moved past them).
    await eventually(lambda: len(first_log.pending()) == 3 and not server._pending, 10)
    assert not server.sent

    async def crashed() -> None:  # a killed process releases nothing
        return None

    monkeypatch.setattr(first.intake, "release", crashed)
    stuck.die()
    await first.stop()
    assert sorted(first_log.pending()) == sorted(str(u["update_id"]) for u in sent)
    await asyncio.sleep(0.6)  # its lease runs out

    second = adapter_on(server, assistant, UpdateLog(assistant.db, platform))
    await answering(second, assistant)
    try:
        await server.wait_for_messages(alice["id"], 2)
        await server.wait_for_messages(bob["id"], 1)
        # Telegram delivering one again (it thinks it failed) is dropped; the next is answered.
        server.redeliver(sent[0])
        server.send_text(alice, "/help")
        await server.wait_for_messages(alice["id"], 3)
        await eventually(lambda: first_log.pending() == [], 5)
    finally:
        await second.stop()
    welcome, help_intro = (assistant.texts.get("en", key).split("\n")[0]
                           for key in ("welcome", "help_intro"))
    texts = server.texts_to(alice["id"])
    assert len(texts) == 3 and texts[0].startswith(welcome), texts  # in the order written
    assert all(t.startswith(help_intro) for t in texts[1:]), texts
    assert len(server.texts_to(bob["id"])) == 1


async def test_a_clean_stop_hands_unfinished_updates_to_the_next_start_at_once(
        server: FakeTelegramServer, assistant: Assistant, platform: str) -> None:
    log = UpdateLog(assistant.db, platform)  # 30 s: only a release lets the next start have it
    first, stuck = adapter_on(server, assistant, log), Stuck()
    await first.start(stuck.on_message)
    carl = server.user(880_003, "Carl", "en")
    server.send_text(carl, "/start")
    await eventually(lambda: len(log.pending()) == 1 and stuck.handling != [], 10)
    stuck.die()
    await first.stop()

    second = adapter_on(server, assistant, UpdateLog(assistant.db, platform))
    await answering(second, assistant)
    try:
        await server.wait_for_messages(carl["id"], 1, timeout=5)
    finally:
        await second.stop()
    assert log.pending() == []


async def test_polled_updates_are_stored_before_telegram_may_forget_them(
        server: FakeTelegramServer, assistant: Assistant, platform: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    confirmed: dict[int, bool] = {}  # update id -> stored when its offset was passed
    forget = server._confirm

    def confirm(offset: int) -> None:
        taken = stored_keys(assistant, platform)
        for update in server._pending:
            if update["update_id"] < offset:
                confirmed[update["update_id"]] = str(update["update_id"]) in taken
        forget(offset)

    monkeypatch.setattr(server, "_confirm", confirm)
    adapter = adapter_on(server, assistant, UpdateLog(assistant.db, platform))
    await answering(adapter, assistant)
    users = [server.user(880_010 + n, "Asukas", "fi") for n in range(4)]
    try:
        sent = [server.send_text(user, text)["update_id"] for user in users
                for text in ("/start", "/help")]
        for user in users:
            await server.wait_for_messages(user["id"], 2)
        await eventually(lambda: set(sent) <= set(confirmed), 5)
    finally:
        await adapter.stop()
    assert all(confirmed[update_id] for update_id in sent), confirmed


async def test_webhook_updates_are_stored_before_the_webhook_answers(
        server: FakeTelegramServer, assistant: Assistant, platform: str) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    hook = f"http://127.0.0.1:{port}/telegram/hook"
    stored_at_answer: dict[int, bool] = {}

    class Deliveries(list):  # the fake server appends an update once the webhook said 200
        def append(self, delivery: dict) -> None:
            update_id = delivery["update"]["update_id"]
            stored_at_answer[update_id] = str(update_id) in stored_keys(assistant, platform)
            super().append(delivery)

    server.webhook_deliveries = Deliveries()
    log = UpdateLog(assistant.db, platform)
    adapter = adapter_on(server, assistant, log, telegram_webhook_url=hook,
                         telegram_webhook_listen="127.0.0.1", telegram_webhook_port=port)
    await answering(adapter, assistant)
    user = server.user(880_020, "Asukas", "fi")
    try:
        first = server.send_text(user, "/start")
        await server.wait_for_messages(user["id"], 1)
        server.redeliver(first)  # a retry after a lost answer: dropped
        second = server.send_text(user, "/help")
        await server.wait_for_messages(user["id"], 2)
        await eventually(lambda: log.pending() == [], 5)
    finally:
        await adapter.stop()
    assert stored_at_answer == {first["update_id"]: True, second["update_id"]: True}
    assert len(server.texts_to(user["id"])) == 2
