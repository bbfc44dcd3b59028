"""News feeds: RSS/Atom URLs per district in `knowledge/feeds.yaml`, polled on a schedule.

Each entry is taken once, by guid or link, across restarts: the FeedEntry row is
written in the same transaction as the news item and its outbox rows. The first
successful poll of a feed only records what is already there, so adding a feed
does not push its whole history to every subscriber.
"""

from __future__ import annotations

import asyncio
import html
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
import feedparser
import yaml

from .newsdesk import NewsDesk, news_desk, wake_sender
from .store.news import ALL

if TYPE_CHECKING:
    from .core import Assistant

logger = logging.getLogger(__name__)

FEEDS_FILE = "feeds.yaml"
FETCH_TIMEOUT_SECONDS = 30
MAX_FEED_BYTES = 5_000_000
MAX_NEW_PER_POLL = 10  # more at once means the feed changed its ids: record, do not flood
USER_AGENT = "asukasbotti (Espoo residents' assistant; feed reader)"
_TAG = re.compile(r"<[^>]+>")


class FeedConfigError(Exception):
    """`feeds.yaml` is malformed; the message names the file and the feed."""


class FeedError(Exception):
    """A feed could not be fetched (HTTP status, size)."""


@dataclass(frozen=True)
class Feed:
    """One feed and the district ("all" for city-wide) its entries are news for."""

    url: str
    district_id: str
    name: str = ""


def load_feeds(knowledge_dir: Path, known_district: Any = None) -> list[Feed]:
    """The feeds in `feeds.yaml` (none when the file is missing); bad entries fail loudly."""
    path = Path(knowledge_dir) / FEEDS_FILE
    if not path.is_file():
        return []
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    raw = data.get("feeds") if isinstance(data, dict) else None
    if not isinstance(raw, list):
        raise FeedConfigError(f"{path}: needs a list under 'feeds:'")
    return [_feed(path, n, entry, known_district) for n, entry in enumerate(raw, start=1)]


def _feed(path: Path, number: int, entry: Any, known_district: Any) -> Feed:
    if not isinstance(entry, dict):
        raise FeedConfigError(f"{path}: feed {number} must be a mapping with url and district")
    url, district = str(entry.get("url") or ""), str(entry.get("district") or "")
    if not url.startswith(("http://", "https://")):
        raise FeedConfigError(f"{path}: feed {number}: url must start with http:// or https://")
    if district != ALL and (known_district is None or not known_district(district)):
        raise FeedConfigError(f"{path}: feed {number}: unknown district {district!r}")
    return Feed(url, district, str(entry.get("name") or ""))


async def poll_feeds(assistant: "Assistant") -> int:
    """Fetch every feed once and publish new entries; returns the number of items published."""
    desk = news_desk(assistant)
    feeds = load_feeds(desk.settings.knowledge_dir, lambda d: desk.district(d) is not None)
    published = 0
    timeout = aiohttp.ClientTimeout(total=FETCH_TIMEOUT_SECONDS)
    async with aiohttp.ClientSession(timeout=timeout, headers={"User-Agent": USER_AGENT}) as http:
        for feed in feeds:
            try:
                published += await poll_feed(desk, http, feed)
            except Exception:  # one broken feed must not stop the others
                logger.exception("polling feed %s failed", feed.url)
    if published:
        await wake_sender(assistant)
    return published


async def poll_feed(desk: NewsDesk, http: aiohttp.ClientSession, feed: Feed) -> int:
    """Take the new entries of one feed; returns how many became news."""
    body = await fetch(http, feed.url)
    parsed = await asyncio.to_thread(feedparser.parse, body)
    entries = _keyed_entries(parsed.entries)
    if not entries:
        logger.warning("feed %s has no readable entries", feed.url)
        return 0
    baseline = not desk.feed_entries.has_any(feed.url)
    known = desk.feed_entries.known(feed.url, entries)
    fresh = [(key, entry) for key, entry in entries.items() if key not in known]
    fresh.reverse()  # feeds list the newest first; publish in the order they appeared
    return await asyncio.to_thread(_take, desk, feed, fresh, not baseline)


async def fetch(http: aiohttp.ClientSession, url: str) -> bytes:
    async with http.get(url) as response:
        if response.status != 200:
            raise FeedError(f"HTTP {response.status}")
        body = await response.content.read(MAX_FEED_BYTES + 1)
    if len(body) > MAX_FEED_BYTES:
        raise FeedError(f"feed larger than {MAX_FEED_BYTES} bytes")
    return body


def _take(desk: NewsDesk, feed: Feed, fresh: list[tuple[str, Any]], publish: bool) -> int:
    """Record the fresh entries and publish the newest few, all in one transaction."""
    if len(fresh) > MAX_NEW_PER_POLL and publish:
        logger.warning("feed %s: %d new entries at once; publishing the newest %d",
                       feed.url, len(fresh), MAX_NEW_PER_POLL)
    first_published = len(fresh) - MAX_NEW_PER_POLL if publish else len(fresh)
    published = 0
    now = desk.clock()
    with desk.db.session() as session:
        for index, (key, entry) in enumerate(fresh):
            item_id = None
            if index >= first_published:
                item, _ = desk.publish(session, feed.district_id, entry_text(entry), urgent=False,
                                       source="feed", author=feed.name or feed.url)
                item_id, published = item.id, published + 1
            desk.feed_entries.add(session, feed.url, key, item_id, now)
    return published


def _keyed_entries(entries: list[Any]) -> dict[str, Any]:
    """Entries by guid, else link, else title (duplicates within one document dropped)."""
    keyed: dict[str, Any] = {}
    for entry in entries:
        key = str(entry.get("id") or entry.get("link") or entry.get("title") or "").strip()
        if key and key not in keyed:
            keyed[key] = entry
    return keyed


def entry_text(entry: Any) -> str:
    """Plain text of an entry: its title (or summary) and link."""
    title = _plain(entry.get("title") or "") or _plain(entry.get("summary") or "")[:300]
    link = str(entry.get("link") or "").strip()
    return "\n".join(part for part in (title, link) if part)


def _plain(value: str) -> str:
    return " ".join(html.unescape(_TAG.sub(" ", str(value))).split())
