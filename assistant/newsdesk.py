"""The news feature's shared parts: who receives an item, quiet hours, and the fan-out.

A news item for a district reaches the subscribers of that district, of its major
district (or, for a major district, of all its city districts) and those districts'
channels. The item and every outbox row are written in one transaction, so a crash
either loses the whole post or none of it.
"""

from __future__ import annotations

import datetime as dt
import inspect
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable
from zoneinfo import ZoneInfo

from sqlmodel import Session

from .districts import FILE_NAME as DISTRICTS_FILE
from .districts import District, Gazetteer
from .placenames import NameIndex
from .store.news import ALL, FeedEntries, NewsItem, NewsItems, Recipient, Subscriptions
from .store.outbox import Outbox, OutboxMessage
from .store.residents import utcnow

if TYPE_CHECKING:
    from .core import Assistant

logger = logging.getLogger(__name__)

MAX_NEWS_CHARS = 3500  # leaves room for the header under Telegram's 4096


@dataclass(frozen=True)
class Audience:
    """How many an item would reach: instant pushes, digest readers and district channels."""

    instant: int
    digest: int
    channels: int

    @property
    def subscribers(self) -> int:
        return self.instant + self.digest


class NewsDesk:
    """Repositories, gazetteer and clock of the news feature; `clock` is swapped in tests."""

    def __init__(self, assistant: "Assistant", clock: Callable[[], dt.datetime] = utcnow):
        self.assistant = assistant
        self.settings = assistant.settings
        self.db = assistant.db
        self._gazetteer: Gazetteer | None = None
        self.subscriptions = Subscriptions(assistant.db)
        self.items = NewsItems(assistant.db)
        self.feed_entries = FeedEntries(assistant.db)
        self.outbox = Outbox(assistant.db, clock=lambda: self.clock())
        self.clock = clock

    @property
    def gazetteer(self) -> Gazetteer:
        """Loaded on first use: answering questions (`ask`) never needs it."""
        if self._gazetteer is None:
            self._gazetteer = _gazetteer(self.settings.knowledge_dir)
            self._exact_names = {NameIndex.fold_name(name): d
                                 for d in self._gazetteer for name in d.names()}
        return self._gazetteer

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.settings.timezone)

    def district(self, district_id: str) -> District | None:
        return self.gazetteer.get(district_id)

    def exact(self, name: str) -> District | None:
        """The district whose name is exactly `name` (case, dots and dashes aside)."""
        self.gazetteer  # noqa: B018  (loads the names on first use)
        return self._exact_names.get(NameIndex.fold_name(name))

    def label(self, district_id: str, language: str) -> str:
        """The district's name in `language`, or "all of Espoo" for city-wide news."""
        if district_id == ALL:
            return self.assistant.texts.get(language, "news_all_districts")
        district = self.district(district_id)
        return district.name(language) if district else district_id

    def audience_ids(self, district_id: str) -> list[str] | None:
        """Subscribed district ids that receive an item posted to `district_id` (None: all)."""
        if district_id == ALL:
            return None
        ids = [district_id]
        district = self.district(district_id)
        if district is not None:
            major = self.gazetteer.major_of(district)
            if major.id != district_id:
                ids.append(major.id)
            ids += [child.id for child in self.gazetteer.children(district_id)]
        return ids

    def covered_ids(self, subscribed: tuple[str, ...] | list[str]) -> set[str]:
        """Item district ids that subscriptions to `subscribed` receive (the rule reversed)."""
        covered: set[str] = set()
        for district_id in subscribed:
            covered.update(self.audience_ids(district_id) or ())
        return covered

    def channels(self, district_id: str) -> list[tuple[str, str, str]]:
        """(district id, platform, chat id) of every channel that carries the item."""
        ids = self.audience_ids(district_id)
        districts = list(self.gazetteer) if ids is None else [self.district(i) for i in ids]
        found = []
        for district in districts:
            if district is None:
                continue
            if district.telegram_channel:
                found.append((district.id, "telegram", district.telegram_channel))
            if district.matrix_room:
                found.append((district.id, "matrix", district.matrix_room))
        return found

    def audience(self, district_id: str) -> Audience:
        """Who a post to `district_id` would reach now (the preview's count)."""
        with self.db.session() as session:
            recipients = self.subscriptions.for_district(session, self.audience_ids(district_id))
        digest = sum(1 for r in recipients if r.digest_hour is not None)
        return Audience(len(recipients) - digest, digest, len(self.channels(district_id)))

    def quiet_until(self, now: dt.datetime) -> dt.datetime | None:
        """End of the quiet hours (UTC) when `now` falls in them; None otherwise."""
        return quiet_until(self.settings.quiet_hours, self.zone, now)

    def publish(self, session: Session, district_id: str, text: str, *, urgent: bool,
                source: str, author: str) -> tuple[NewsItem, Audience]:
        """Store an item and queue its pushes, inside the caller's transaction."""
        now = self.clock()
        item = self.items.add(session, district_id, text[:MAX_NEWS_CHARS], urgent=urgent,
                              source=source, author=author, now=now)
        not_before = None if urgent else self.quiet_until(now)
        recipients = self.subscriptions.for_district(session, self.audience_ids(district_id))
        instant = [r for r in recipients if r.digest_hour is None]
        messages = self._resident_messages(item, instant, not_before)
        messages += self._channel_messages(item, not_before)
        self.outbox.add(session, messages)
        audience = Audience(len(instant), len(recipients) - len(instant),
                            len(messages) - len(instant))
        logger.info("news item %s (%s): %s", item.id, source, audience)
        return item, audience

    def push_text(self, item: NewsItem, language: str, *, footer: bool = True) -> str:
        """The pushed message: a header naming the district, the news, how to stop."""
        key = "news_push_urgent" if item.urgent else "news_push"
        texts = self.assistant.texts
        text = texts.get(language, key, district=self.label(item.district_id, language),
                         text=item.text)
        return text + "\n\n" + texts.get(language, "news_push_footer") if footer else text

    def _resident_messages(self, item: NewsItem, recipients: list[Recipient],
                           not_before: dt.datetime | None) -> list[OutboxMessage]:
        by_language: dict[str, str] = {}
        messages = []
        for r in recipients:
            if r.language not in by_language:
                by_language[r.language] = self.push_text(item, r.language)
            messages.append(OutboxMessage(
                platform=r.platform, chat_id=r.chat_id, text=by_language[r.language],
                dedupe_key=f"news:{item.id}:r:{r.resident_id}", resident_id=r.resident_id,
                news_item_id=item.id, not_before=not_before))
        return messages

    def _channel_messages(self, item: NewsItem,
                          not_before: dt.datetime | None) -> list[OutboxMessage]:
        text = self.push_text(item, self.settings.default_language, footer=False)
        return [OutboxMessage(platform=platform, chat_id=chat_id, text=text,
                              dedupe_key=f"channel:{item.id}:{district_id}:{platform}",
                              news_item_id=item.id, not_before=not_before)
                for district_id, platform, chat_id in self.channels(item.district_id)]


def _gazetteer(knowledge_dir: Path) -> Gazetteer:
    """The districts; none (with a warning) when the knowledge folder has no district file."""
    if not (Path(knowledge_dir) / DISTRICTS_FILE).is_file():
        logger.warning("no %s in %s: district news has no districts", DISTRICTS_FILE, knowledge_dir)
        return Gazetteer([])
    return Gazetteer.load(knowledge_dir)


def quiet_until(quiet_hours: tuple[int, int] | None, zone: ZoneInfo,
                now: dt.datetime) -> dt.datetime | None:
    """When quiet hours (local start, end) hold `now`, the UTC time they end."""
    if quiet_hours is None:
        return None
    start, end = quiet_hours
    local = now.astimezone(zone)
    if not _in_window(local.hour, start, end):
        return None
    day = local.date() if local.hour < end else local.date() + dt.timedelta(days=1)
    return dt.datetime.combine(day, dt.time(end), tzinfo=zone).astimezone(dt.timezone.utc)


def _in_window(hour: int, start: int, end: int) -> bool:
    if start == end:
        return False
    if start < end:
        return start <= hour < end
    return hour >= start or hour < end


def news_desk(assistant: "Assistant") -> NewsDesk:
    """The desk that `news.register` attached to the assistant."""
    return getattr(assistant, "news_desk")


async def wake_sender(assistant: "Assistant") -> None:
    """Tell the outbox sender that rows are waiting (a no-op when no sender runs)."""
    wake = getattr(assistant, "delivery_wake", None)
    if not callable(wake):
        return
    try:
        result = wake()
        if inspect.isawaitable(result):
            await result
    except Exception:
        logger.exception("waking the sender failed")
