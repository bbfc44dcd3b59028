"""The small contract between the core and a chat platform adapter.

An adapter turns platform events into `Incoming`, hands them to the callback the
core gives it, and sends `Reply` objects. Sending failures are reported with the
three exceptions below, so the outbox can decide to retry, drop or unsubscribe
without knowing any platform.
"""

from __future__ import annotations

from typing import Awaitable, Callable, Protocol

from .messages import Incoming, Reply

OnMessage = Callable[[Incoming], Awaitable[None]]


class RetryLater(Exception):
    """The platform asked us to wait (rate limit) or failed transiently (5xx, timeout)."""

    def __init__(self, after_seconds: float = 1.0, reason: str = ""):
        super().__init__(reason or f"retry after {after_seconds}s")
        self.after_seconds = after_seconds


class RecipientGone(Exception):
    """The resident blocked the bot, left, or the chat no longer exists: stop sending."""


class PermanentFailure(Exception):
    """The platform refused this message for good (bad request); retrying will not help."""


class Adapter(Protocol):
    """What the core needs from a platform: start, stop and send."""

    platform: str

    async def start(self, on_message: OnMessage) -> None: ...

    async def stop(self) -> None: ...

    async def send(self, chat_id: str, reply: Reply) -> str:
        """Send one reply to `chat_id`; returns the platform's message id."""
        ...
