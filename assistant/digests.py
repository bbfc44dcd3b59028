"""The daily digest: once an hour, residents whose digest hour it is get one message of news.

Schedule `send_digests` hourly (at minute 0, UTC clock); it works out the local hour
itself. Each resident's last digest time is stored with the queued message in one
transaction, so a rerun in the same hour sends nothing twice.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from typing import TYPE_CHECKING

from .newsdesk import NewsDesk, news_desk, wake_sender
from .store.news import ALL, DigestReader, NewsItem
from .store.outbox import OutboxMessage

if TYPE_CHECKING:
    from .core import Assistant

logger = logging.getLogger(__name__)

MAX_DIGEST_CHARS = 3800  # under Telegram's 4096 with the footer
MAX_ITEM_CHARS = 600
FIRST_LOOKBACK = dt.timedelta(days=1)


async def send_digests(assistant: "Assistant", now: dt.datetime | None = None) -> int:
    """Queue today's digest for everyone whose digest hour is now; returns messages queued."""
    desk = news_desk(assistant)
    added = await asyncio.to_thread(queue_digests, desk, now or desk.clock())
    if added:
        await wake_sender(assistant)
    return added


def queue_digests(desk: NewsDesk, now: dt.datetime) -> int:
    """The digests and each reader's new last-digest time, in one transaction."""
    hour = now.astimezone(desk.zone).hour
    with desk.db.session() as session:
        readers = desk.subscriptions.digest_readers(session, hour)
        if not readers:
            return 0
        items = desk.items.since(session, min(_since(r, now) for r in readers), now)
        messages = []
        for reader in readers:
            mine = _items_for(desk, reader, items, now)
            if mine:
                messages.append(_message(desk, reader, mine, now))
            desk.subscriptions.mark_digest_sent(session, reader.recipient.resident_id, now)
        added = desk.outbox.add(session, messages)
    logger.info("digest hour %d: %d readers, %d messages queued", hour, len(readers), added)
    return added


def _since(reader: DigestReader, now: dt.datetime) -> dt.datetime:
    return reader.last_digest_at or now - FIRST_LOOKBACK


def _items_for(desk: NewsDesk, reader: DigestReader, items: list[NewsItem],
               now: dt.datetime) -> list[NewsItem]:
    """The items since this reader's last digest, in the districts they follow."""
    after = _since(reader, now)
    covered = desk.covered_ids(reader.district_ids)
    return [i for i in items
            if i.created_at > after and (i.district_id == ALL or i.district_id in covered)]


def _message(desk: NewsDesk, reader: DigestReader, items: list[NewsItem],
             now: dt.datetime) -> OutboxMessage:
    recipient = reader.recipient
    local = now.astimezone(desk.zone)
    return OutboxMessage(
        platform=recipient.platform, chat_id=recipient.chat_id,
        text=digest_text(desk, recipient.language, items),
        dedupe_key=f"digest:{recipient.resident_id}:{local:%Y-%m-%dT%H}",
        resident_id=recipient.resident_id, not_before=now)


def digest_text(desk: NewsDesk, language: str, items: list[NewsItem]) -> str:
    """A header, one entry per item (oldest first) while they fit, then how many did not."""
    texts = desk.assistant.texts
    parts = [texts.get(language, "news_digest_header", count=len(items))]
    used = len(parts[0])
    for shown, item in enumerate(items):
        entry = texts.get(language, "news_digest_item",
                          district=desk.label(item.district_id, language),
                          time=item.created_at.astimezone(desk.zone).strftime("%d.%m. %H:%M"),
                          text=_shorten(item.text))
        if used + len(entry) > MAX_DIGEST_CHARS:
            parts.append(texts.get(language, "news_digest_more", count=len(items) - shown))
            break
        parts.append(entry)
        used += len(entry) + 2
    parts.append(texts.get(language, "news_digest_footer"))
    return "\n\n".join(parts)


def _shorten(text: str) -> str:
    return text if len(text) <= MAX_ITEM_CHARS else text[: MAX_ITEM_CHARS - 1] + "…"
