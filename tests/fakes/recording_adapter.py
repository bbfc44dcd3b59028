"""A fake platform adapter for delivery tests: records sends, raises on demand."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Callable

from assistant.messages import Reply
from assistant.platform import OnMessage


@dataclass(frozen=True)
class Sent:
    """One message the fake platform accepted."""

    chat_id: str
    text: str
    at: float


class RecordingAdapter:
    """Accepts every send unless told to fail: `fail(chat_id, exc, ...)` queues exceptions."""

    def __init__(
        self,
        platform: str = "telegram",
        delay: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.platform, self.delay, self.clock = platform, delay, clock
        self.sent: list[Sent] = []
        self.attempts: list[str] = []
        self.in_flight = self.max_in_flight = 0
        self._failures: dict[str, list[BaseException]] = defaultdict(list)

    def fail(self, chat_id: str, *errors: BaseException) -> None:
        """The next sends to `chat_id` raise these, one each, in order."""
        self._failures[chat_id].extend(errors)

    async def start(self, on_message: OnMessage) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def send(self, chat_id: str, reply: Reply) -> str:
        self.attempts.append(chat_id)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.delay:
                await asyncio.sleep(self.delay)
            if self._failures.get(chat_id):
                raise self._failures[chat_id].pop(0)
            self.sent.append(Sent(chat_id, reply.text, self.clock()))
            return str(len(self.sent))
        finally:
            self.in_flight -= 1

    def texts(self, chat_id: str | None = None) -> list[str]:
        return [s.text for s in self.sent if chat_id is None or s.chat_id == chat_id]
