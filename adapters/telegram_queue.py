"""How Telegram updates are processed (chats concurrently, one chat in order) and how
replies to one chat are spaced out. Taking them in once each is `telegram_intake`'s."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from telegram import Update
from telegram.ext import BaseUpdateProcessor


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

    async def process_update(self, update: object,  # type: ignore[misc]  # final in PTB
                             coroutine: Awaitable[Any]) -> None:
        """Wait for the chat's turn, then take a slot: PTB's own order (slot first) would let
        one chat's backlog hold every slot while it waits, and block all other chats."""
        chat = update.effective_chat if isinstance(update, Update) else None
        if chat is None:
            async with self._semaphore:
                await self.do_process_update(update, coroutine)
            return
        turn = self._chats.setdefault(chat.id, _ChatTurn())
        turn.waiting += 1
        try:
            async with turn.lock, self._semaphore:
                await self.do_process_update(update, coroutine)
        finally:
            turn.waiting -= 1
            if turn.waiting == 0:
                del self._chats[chat.id]

    async def do_process_update(self, update: object, coroutine: Awaitable[Any]) -> None:
        await coroutine

    @property
    def chats_in_flight(self) -> int:
        return len(self._chats)

    async def initialize(self) -> None:
        """Nothing to set up."""

    async def shutdown(self) -> None:
        """Nothing to release."""


class ChatPacer:
    """Holds back one chat's replies after Telegram said that chat is getting too many (429).

    PTB's rate limiter answers any 429 by holding back every request of the bot, so one
    flooding resident would stall all others; waiting here delays only that chat. Chats
    are not slowed before a 429: Telegram tolerates short bursts, and residents expect a
    multi-part answer at once. Groups are also held to 20 a minute by PTB's group limiter,
    which likewise waits per group.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self._until: dict[str, float] = {}  # chat -> when it may be sent to again

    def hold(self, chat_id: str, seconds: float) -> None:
        """Send nothing to `chat_id` for `seconds` (Telegram's retry_after)."""
        now = self.clock()
        self._until = {chat: until for chat, until in self._until.items() if until > now}
        self._until[chat_id] = max(self._until.get(chat_id, now), now + seconds)

    async def wait(self, chat_id: str) -> None:
        """Return when `chat_id` may be sent to."""
        delay = self._until.get(chat_id, 0.0) - self.clock()
        if delay > 0:
            await asyncio.sleep(delay)
