"""Test rig: the fake Bot API server, the real assistant and router, the adapter polling it."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from adapters.telegram import TelegramAdapter
from assistant.core import Assistant
from assistant.menus import command_menus
from assistant.messages import Incoming
from assistant.router import Router
from assistant.store.updates import Updates
from tests.fakes.telegram_server import FakeTelegramServer

TOKEN = "123456789:TEST-espoo-token"
BOT_NAME = "espoo_test_bot"
JSON = dict[str, Any]
_user_ids = itertools.count(700_001)
_rigs = itertools.count(1)


class TelegramRig:
    """What a test drives (the server, as residents) and inspects (server records, incomings)."""

    def __init__(self, assistant: Assistant, server: FakeTelegramServer, adapter: TelegramAdapter):
        self.assistant, self.server, self.adapter = assistant, server, adapter
        self.router = Router(assistant)
        self.router.add(adapter)
        self.incoming: list[Incoming] = []

    async def on_message(self, incoming: Incoming) -> None:
        self.incoming.append(incoming)
        await self.router.on_message(incoming)

    def user(self, language_code: str | None = "fi", first_name: str = "Asukas") -> JSON:
        """A new resident (ids are unique across the test module's shared database)."""
        return self.server.user(next(_user_ids), first_name, language_code)

    async def ask(self, user: JSON, text: str, replies: int = 1, **where: Any) -> list[JSON]:
        """The resident writes `text`; returns the bot's `replies` new messages in that chat."""
        update = self.server.send_text(user, text, **where)
        chat_id = update["message"]["chat"]["id"]
        before = len(self.server.bot_messages.get(chat_id, ()))
        messages = await self.server.wait_for_messages(chat_id, before + replies, timeout=10)
        return messages[before:]

    async def press(self, user: JSON, message: JSON, value: str, replies: int = 1) -> list[JSON]:
        """The resident presses a button of `message`; returns the bot's new messages."""
        chat_id = message["chat"]["id"]
        before = len(self.server.bot_messages.get(chat_id, ()))
        self.server.press_button(user, message, value)
        messages = await self.server.wait_for_messages(chat_id, before + replies, timeout=10)
        return messages[before:]

    def resident(self, user: JSON):  # type: ignore[no-untyped-def]
        return self.assistant.residents.find("telegram", str(user["id"]))


def buttons(message: JSON) -> list[str]:
    """The callback_data of every inline button of a message, row by row."""
    rows = (message.get("reply_markup") or {}).get("inline_keyboard", [])
    return [button["callback_data"] for row in rows for button in row]


async def eventually(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Wait until `condition()` holds (for effects the server cannot see, like the database)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise TimeoutError("condition not met in time")
        await asyncio.sleep(0.02)


@asynccontextmanager
async def running_rig(assistant: Assistant, *, enforce_limits: bool = False,
                      env: dict[str, Any] | None = None, **adapter_options: Any
                      ) -> AsyncIterator[TelegramRig]:
    """Start the fake server and the adapter on it (polling unless `env` names a webhook)."""
    server = FakeTelegramServer(token=TOKEN, bot_username=BOT_NAME, enforce_limits=enforce_limits)
    await server.start()
    settings = dataclasses.replace(assistant.settings, telegram_bot_token=TOKEN,
                                   telegram_api_url=server.url, **(env or {}))
    # Each rig gets its own key space: the fake server numbers updates from the same start.
    adapter_options.setdefault("log", Updates(assistant.db).of(f"telegram-{next(_rigs)}"))
    adapter = TelegramAdapter(settings, menus=command_menus(assistant), poll_timeout=1,
                              **adapter_options)
    rig = TelegramRig(assistant, server, adapter)
    try:
        await adapter.start(rig.on_message)
        yield rig
    finally:
        await adapter.stop()
        await server.stop()
