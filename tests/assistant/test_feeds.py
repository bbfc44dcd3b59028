"""News feeds: polled from a local HTTP server, each entry taken once, also across restarts."""

from __future__ import annotations

import asyncio
from pathlib import Path
from xml.sax.saxutils import escape

import pytest
import yaml
from aiohttp import web
from sqlmodel import func, select

from assistant import feeds
from assistant.core import Assistant
from assistant.districts import Gazetteer
from assistant.feeds import FeedConfigError, load_feeds, poll_feeds
from assistant.store.news import FeedEntry, NewsItem
from assistant.store.outbox import OutboxRow
from tests.assistant.test_news import make_news_assistant
from tests.conftest import REPO


class FeedServer:
    """Serves feed documents on 127.0.0.1; a test edits `documents` between polls."""

    def __init__(self) -> None:
        self.documents: dict[str, bytes] = {}
        self.status: dict[str, int] = {}
        self.delay: dict[str, float] = {}
        self.base = ""

    async def handle(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        await asyncio.sleep(self.delay.get(name, 0))
        if name in self.status:
            return web.Response(status=self.status[name])
        body = self.documents.get(name, rss())
        return web.Response(body=body, content_type="application/rss+xml")

    def url(self, name: str) -> str:
        return f"{self.base}/{name}"


@pytest.fixture
async def server():
    feed_server = FeedServer()
    app = web.Application()
    app.router.add_get("/{name}", feed_server.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    feed_server.base = f"http://{host}:{port}"
    yield feed_server
    await runner.cleanup()


def rss(*entries: tuple[str, str]) -> bytes:
    """An RSS 2.0 document of (guid, title) entries, newest first, linking to example.org."""
    items = "".join(
        f"<item><guid>{escape(guid)}</guid><title>{escape(title)}</title>"
        f"<link>https://example.org/{escape(guid)}</link></item>" for guid, title in entries)
    return (f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
            f"<title>Test</title><link>https://example.org/</link>{items}</channel></rss>").encode()


def write_feeds(assistant: Assistant, *feeds_: tuple[str, str]) -> None:
    """feeds.yaml in the assistant's knowledge folder: (url, district) pairs."""
    data = {"feeds": [{"url": url, "district": district, "name": "Testisyöte"}
                      for url, district in feeds_]}
    path = Path(assistant.settings.knowledge_dir) / "feeds.yaml"
    path.write_text(yaml.safe_dump(data), "utf-8")


def news_items(assistant: Assistant) -> list[NewsItem]:
    with assistant.db.session() as session:
        return list(session.exec(select(NewsItem).order_by(NewsItem.id)).all())


def entry_count(assistant: Assistant) -> int:
    with assistant.db.session() as session:
        return session.exec(select(func.count()).select_from(FeedEntry)).one()


def recipients(assistant: Assistant) -> list[str]:
    with assistant.db.session() as session:
        return sorted(session.exec(select(OutboxRow.chat_id)).all())


@pytest.fixture
async def feed_assistant(tmp_path, server, chat_factory):
    """A Leppävaara feed and a city-wide feed; subscribers of Leppävaara and of Tapiola."""
    bot = make_news_assistant(tmp_path)
    write_feeds(bot, (server.url("leppavaara.xml"), "leppavaara"), (server.url("city.xml"), "all"))
    server.documents["leppavaara.xml"] = rss(("a-1", "Vanha uutinen"))
    await chat_factory(bot, user_id="lepp").send("/subscribe Leppävaara")
    await chat_factory(bot, user_id="tapiola").send("/subscribe Tapiola")
    yield bot
    bot.db.dispose()


async def test_first_poll_records_what_is_there_without_pushing(feed_assistant):
    assert await poll_feeds(feed_assistant) == 0
    assert news_items(feed_assistant) == [] and recipients(feed_assistant) == []
    assert entry_count(feed_assistant) == 1


async def test_new_entry_becomes_news_once(feed_assistant, server):
    await poll_feeds(feed_assistant)
    server.documents["leppavaara.xml"] = rss(("a-2", "Asukasilta &amp; kahvit"),
                                             ("a-1", "Vanha uutinen"))
    assert await poll_feeds(feed_assistant) == 1
    [item] = news_items(feed_assistant)
    assert (item.district_id, item.source, item.urgent) == ("leppavaara", "feed", False)
    assert item.text == "Asukasilta & kahvit\nhttps://example.org/a-2"
    assert recipients(feed_assistant) == ["chat-lepp"]
    assert await poll_feeds(feed_assistant) == 0
    assert len(news_items(feed_assistant)) == 1 and recipients(feed_assistant) == ["chat-lepp"]


async def test_entries_are_taken_once_after_a_restart(feed_assistant, server):
    await poll_feeds(feed_assistant)
    server.documents["leppavaara.xml"] = rss(("a-2", "Uusi"), ("a-1", "Vanha uutinen"))
    await poll_feeds(feed_assistant)
    restarted = Assistant(feed_assistant.settings)
    try:
        assert await poll_feeds(restarted) == 0
        assert len(news_items(restarted)) == 1 and entry_count(restarted) == 2
        server.documents["leppavaara.xml"] = rss(("a-3", "Uudempi"), ("a-2", "Uusi"))
        assert await poll_feeds(restarted) == 1
        assert [i.text.split("\n")[0] for i in news_items(restarted)] == ["Uusi", "Uudempi"]
    finally:
        restarted.db.dispose()


async def test_city_wide_feed_reaches_every_subscriber(feed_assistant, server):
    server.documents["city.xml"] = rss(("c-1", "Valtuusto"))
    await poll_feeds(feed_assistant)
    server.documents["city.xml"] = rss(("c-2", "Kaupunginhallitus"), ("c-1", "Valtuusto"))
    assert await poll_feeds(feed_assistant) == 1
    assert news_items(feed_assistant)[0].district_id == "all"
    assert recipients(feed_assistant) == ["chat-lepp", "chat-tapiola"]


async def test_new_entries_are_published_oldest_first(feed_assistant, server):
    await poll_feeds(feed_assistant)
    server.documents["leppavaara.xml"] = rss(("a-3", "Kolmas"), ("a-2", "Toinen"), ("a-1", "Vanha"))
    assert await poll_feeds(feed_assistant) == 2
    assert [i.text.split("\n")[0] for i in news_items(feed_assistant)] == ["Toinen", "Kolmas"]


async def test_a_flood_of_new_entries_is_recorded_but_only_the_newest_pushed(
        feed_assistant, server):
    await poll_feeds(feed_assistant)
    fresh = [(f"b-{n}", f"Uutinen {n}") for n in range(15, 0, -1)]
    server.documents["leppavaara.xml"] = rss(*fresh)
    assert await poll_feeds(feed_assistant) == feeds.MAX_NEW_PER_POLL
    assert entry_count(feed_assistant) == 16
    assert news_items(feed_assistant)[-1].text.startswith("Uutinen 15")


async def test_a_broken_feed_does_not_stop_the_others(feed_assistant, server):
    await poll_feeds(feed_assistant)
    server.status["city.xml"] = 500
    server.documents["leppavaara.xml"] = rss(("a-2", "Uusi"), ("a-1", "Vanha uutinen"))
    assert await poll_feeds(feed_assistant) == 1


async def test_a_slow_feed_times_out(feed_assistant, server, monkeypatch):
    monkeypatch.setattr(feeds, "FETCH_TIMEOUT_SECONDS", 0.2)
    await poll_feeds(feed_assistant)
    server.delay["city.xml"] = 1.0
    server.documents["leppavaara.xml"] = rss(("a-2", "Uusi"), ("a-1", "Vanha uutinen"))
    assert await poll_feeds(feed_assistant) == 1


async def test_entry_without_guid_is_taken_by_link(feed_assistant, server):
    def by_link(*titles: str) -> bytes:
        items = "".join(f"<item><title>{t}</title><link>https://example.org/{t}</link></item>"
                        for t in titles)
        return f'<rss version="2.0"><channel><title>T</title>{items}</channel></rss>'.encode()

    server.documents["leppavaara.xml"] = by_link("eka")
    await poll_feeds(feed_assistant)
    server.documents["leppavaara.xml"] = by_link("toka", "eka")
    assert await poll_feeds(feed_assistant) == 1
    assert await poll_feeds(feed_assistant) == 0
    with feed_assistant.db.session() as session:
        keys = set(session.exec(select(FeedEntry.entry_key)).all())
    assert keys == {"https://example.org/eka", "https://example.org/toka"}


async def test_atom_feed(feed_assistant, server):
    def atom(*ids: str) -> bytes:
        entries = "".join(f'<entry><id>urn:{i}</id><title>Atom {i}</title>'
                          f'<link href="https://example.org/{i}"/><updated>2025-01-01T00:00:00Z</updated>'
                          f"</entry>" for i in ids)
        return (f'<feed xmlns="http://www.w3.org/2005/Atom"><title>T</title><id>urn:f</id>'
                f"<updated>2025-01-01T00:00:00Z</updated>{entries}</feed>").encode()

    server.documents["leppavaara.xml"] = atom("1")
    await poll_feeds(feed_assistant)
    server.documents["leppavaara.xml"] = atom("2", "1")
    assert await poll_feeds(feed_assistant) == 1
    assert news_items(feed_assistant)[0].text == "Atom 2\nhttps://example.org/2"


def test_shipped_feeds_are_the_city_wide_dynasty_feeds():
    gazetteer = Gazetteer.load(REPO / "knowledge")
    shipped = load_feeds(REPO / "knowledge", lambda d: d in gazetteer)
    assert len(shipped) == 2
    assert {f.district_id for f in shipped} == {"all"}
    assert all(f.url.startswith("https://espoo.oncloudos.com/cgi/DREQUEST.PHP?page=rss/")
               for f in shipped)


@pytest.mark.parametrize("entry,problem", [
    ({"url": "https://example.org/rss", "district": "atlantis"}, "unknown district"),
    ({"url": "ftp://example.org/rss", "district": "all"}, "url must start"),
    ("just a string", "must be a mapping"),
])
def test_a_bad_feeds_file_fails_loudly_with_its_name(tmp_path, entry, problem):
    (tmp_path / "feeds.yaml").write_text(yaml.safe_dump({"feeds": [entry]}), "utf-8")
    with pytest.raises(FeedConfigError, match=problem) as raised:
        load_feeds(tmp_path, lambda d: d == "leppavaara")
    assert "feeds.yaml" in str(raised.value)


def test_no_feeds_file_means_no_feeds(tmp_path):
    assert load_feeds(tmp_path) == []
