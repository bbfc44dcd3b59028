"""How Telegram updates are taken in: once each, chats concurrently, one chat in order."""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any

from telegram import Update
from telegram.ext import BaseUpdateProcessor


class RecentUpdates:
    """In-memory redelivery filter, for when no database-backed one is given.

    Telegram keeps unconfirmed updates for 24 hours and redelivers webhook updates
    it thinks failed; remembering the last `capacity` update ids covers a restart-free
    process. Across restarts use `assistant.store.updates.Updates`.
    """

    def __init__(self, capacity: int = 10_000):
        self.capacity = capacity
        self._seen: OrderedDict[str, None] = OrderedDict()

    def first_time(self, key: str) -> bool:
        if key in self._seen:
            self._seen.move_to_end(key)
            return False
        self._seen[key] = None
        if len(self._seen) > self.capacity:
            self._seen.popitem(last=False)
        return True


@dataclass
class _ChatTurn:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    waiting: int = 0


class ChatOrderedProcessor(BaseUpdateProcessor):
    """PTB update processor: chats are served concurrently, one chat's updates one at a time.

    A resident's second message must not overtake the first (dialogue steps, language
    choice), but one slow chat must not hold up the others. Locks exist only while a
    chat has updates in flight, so memory does not grow with the number of residents.
    """

    def __init__(self, max_concurrent_updates: int = 32):
        super().__init__(max_concurrent_updates)
        self._chats: dict[int, _ChatTurn] = {}

    async def do_process_update(self, update: object, coroutine: Awaitable[Any]) -> None:
        chat = update.effective_chat if isinstance(update, Update) else None
        if chat is None:
            await coroutine
            return
        turn = self._chats.setdefault(chat.id, _ChatTurn())
        turn.waiting += 1
        try:
            async with turn.lock:
                await coroutine
        finally:
            turn.waiting -= 1
            if turn.waiting == 0:
                del self._chats[chat.id]

    @property
    def chats_in_flight(self) -> int:
        return len(self._chats)

    async def initialize(self) -> None:
        """Nothing to set up."""

    async def shutdown(self) -> None:
        """Nothing to release."""
