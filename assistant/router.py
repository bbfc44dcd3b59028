"""Carries each incoming message to the core and its replies back out, on any platform.

Replies to the resident's own chat go out at once. Messages for other chats (an admin's
notice of new feedback, an admin's answer delivered to a resident) go through the outbox
first, before the resident's own reply: once a resident has seen "received", the notice
is stored and survives a crash; the outbox sender delivers it within the limits.
"""

from __future__ import annotations

import logging
import uuid

from .core import Assistant
from .messages import Incoming, Reply
from .platform import Adapter, PermanentFailure, RecipientGone, RetryLater
from .store.outbox import Outbox, OutboxMessage
from .store.updates import message_key

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
        elsewhere = [r for r in replies if r.chat_id and not r.attachment]
        if elsewhere:
            self._enqueue(incoming, elsewhere)
        for reply in replies:
            if reply in elsewhere:
                continue
            platform = reply.platform or incoming.platform
            chat_id = reply.chat_id or incoming.chat_id
            await self.send(platform, chat_id, reply)

    def _enqueue(self, incoming: Incoming, replies: list[Reply]) -> None:
        outbox = Outbox(self.assistant.db)
        # Named after the message when it has an id, so handling it again after a crash
        # (an adapter replays what it had not marked handled) queues no notice twice.
        source = message_key(incoming.platform, incoming.chat_id, incoming.message_id)
        for number, reply in enumerate(replies):
            key = f"{incoming.kind}:{source}:{number}" if source else uuid.uuid4().hex
            outbox.enqueue(OutboxMessage(
                platform=reply.platform or incoming.platform, chat_id=reply.chat_id,
                text=reply.text, dedupe_key=f"notice:{key}", choices=reply.choices))
        wake = getattr(self.assistant, "delivery_wake", None)
        if wake is not None:
            wake()

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
