"""Carries each incoming message to the core and its replies back out, on any platform."""

from __future__ import annotations

import logging

from .core import Assistant
from .messages import Incoming, Reply
from .platform import Adapter, PermanentFailure, RecipientGone, RetryLater

logger = logging.getLogger(__name__)


class Router:
    """Knows every running adapter by platform name; replies may cross platforms."""

    def __init__(self, assistant: Assistant):
        self.assistant = assistant
        self.adapters: dict[str, Adapter] = {}

    def add(self, adapter: Adapter) -> None:
        self.adapters[adapter.platform] = adapter

    async def on_message(self, incoming: Incoming) -> None:
        """The callback adapters call for each message."""
        replies = await self.assistant.handle(incoming)
        for reply in replies:
            platform = reply.platform or incoming.platform
            chat_id = reply.chat_id or incoming.chat_id
            await self.send(platform, chat_id, reply)

    async def send(self, platform: str, chat_id: str, reply: Reply) -> bool:
        """Send now; failures are logged, never raised into the adapter's loop."""
        adapter = self.adapters.get(platform)
        if adapter is None:
            logger.warning("no adapter for platform %s; reply dropped", platform)
            return False
        try:
            await adapter.send(chat_id, reply)
            return True
        except RecipientGone:
            self.assistant.residents.mark_inactive(platform, chat_id)
        except (RetryLater, PermanentFailure) as exc:
            logger.warning("reply to a %s chat not sent: %s", platform, exc.__class__.__name__)
        return False
