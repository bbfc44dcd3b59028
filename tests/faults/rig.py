"""The fault rig: the fake Bot API server, the real assistant, router, Telegram adapter and
outbox sender, all in this process, with short HTTP timeouts so timeouts cost little time."""

from __future__ import annotations

import asyncio
import functools
import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from unittest import mock

from sqlmodel import select

from adapters.telegram_http import AiohttpRequest
from assistant.core import Assistant
from assistant.delivery import Sender
from assistant.ratelimit import DEFAULT_LIMITS
from assistant.store.outbox import Outbox, OutboxMessage, OutboxRow
from tests.adapters.telegram_rig import TelegramRig, eventually, running_rig

JSON = dict[str, Any]
# The client gives up on a Bot API call after this long (getUpdates: plus the poll's own 1 s).
READ_TIMEOUT = 1.0
_keys = itertools.count(1)


class FaultRig:
    """A running `TelegramRig` plus the outbox and a sender draining it."""

    def __init__(self, rig: TelegramRig, sender: Sender):
        self.rig, self.sender = rig, sender
        self.server, self.assistant, self.adapter = rig.server, rig.assistant, rig.adapter
        self.outbox = sender.outbox

    def user(self, language_code: str = "fi") -> JSON:
        return self.rig.user(language_code)

    async def ask(self, user: JSON, text: str, replies: int = 1, **where: Any) -> list[JSON]:
        return await self.rig.ask(user, text, replies, **where)

    async def resident_for(self, user: JSON) -> int:
        """A resident row for a Telegram user, made the way residents make it: /start."""
        await self.ask(user, "/start")
        resident = self.rig.resident(user)
        assert resident is not None and resident.id is not None
        return resident.id

    def push(self, user: JSON, text: str, resident_id: int | None = None) -> int:
        """Enqueue one push to the user's private chat; returns its outbox row id."""
        key = f"fault:{next(_keys)}:{user['id']}"
        message = OutboxMessage(platform="telegram", chat_id=str(user["id"]), text=text,
                                dedupe_key=key, resident_id=resident_id)
        assert self.outbox.enqueue(message)
        self.sender.wake()
        row = self.row_by_key(key)
        assert row.id is not None
        return row.id

    def row_by_key(self, key: str) -> OutboxRow:
        with self.assistant.db.session() as session:
            row = session.exec(select(OutboxRow).where(OutboxRow.dedupe_key == key)).one()
        return row

    def row(self, row_id: int) -> OutboxRow:
        row = self.outbox.get(row_id)
        assert row is not None
        return row

    async def wait_status(self, row_ids: list[int], status: str, timeout: float = 15) -> None:
        """Wait until every row has `status` (read back from the database)."""
        try:
            await eventually(lambda: all(self.row(i).status == status for i in row_ids), timeout)
        except TimeoutError:
            states = {i: (self.row(i).status, self.row(i).attempts, self.row(i).last_error)
                      for i in row_ids}
            raise AssertionError(f"rows not {status}: {states}") from None

    def texts_to(self, user: JSON) -> list[str]:
        return self.server.texts_to(user["id"])

    def requests_to(self, user: JSON, method: str = "sendMessage") -> list[JSON]:
        """Every call of `method` for the user's chat, failed ones included (status, time)."""
        chat = user["id"]
        return [r for r in self.server.requests_for(method)
                if str(r["params"].get("chat_id")) == str(chat)]


@asynccontextmanager
async def fault_rig(assistant: Assistant, *, enforce_limits: bool = False,
                    read_timeout: float = READ_TIMEOUT, **adapter_options: Any
                    ) -> AsyncIterator[FaultRig]:
    """One fake server, the adapter polling it (1 s long polls), and a sender for pushes."""
    short = functools.partial(AiohttpRequest, read_timeout=read_timeout, connect_timeout=1.0)
    with mock.patch("adapters.telegram.AiohttpRequest", short):  # the adapter builds its own
        async with running_rig(assistant, enforce_limits=enforce_limits,
                               **adapter_options) as rig:
            sender = Sender(assistant, Outbox(assistant.db), {"telegram": rig.adapter},
                            DEFAULT_LIMITS, worker_id="faults", poll_seconds=0.05)
            stop = asyncio.Event()
            sending = asyncio.create_task(sender.run(stop))
            try:
                yield FaultRig(rig, sender)
            finally:
                stop.set()
                await asyncio.wait_for(sending, 15)


def text_of(assistant: Assistant, lang: str, key: str, /, **values: object) -> str:
    """A catalogue text as the fake server stores it (trimmed, as Telegram does)."""
    return assistant.texts.get(lang, key, **values).strip()
