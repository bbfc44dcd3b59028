"""Metrics: counters from the core's hooks, outbox gauges at scrape time, send latency, HTTP."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest

from assistant.core import Assistant
from assistant.delivery import Sender
from assistant.metrics import Metrics, serve
from assistant.platform import RetryLater
from assistant.runtime import background
from assistant.store.db import Database
from assistant.store.outbox import Outbox, OutboxMessage
from tests.conftest import SAMPLE_KNOWLEDGE, make_settings
from tests.fakes.recording_adapter import RecordingAdapter
from tests.pg import free_port


def value(metrics: Metrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


def enqueue(outbox: Outbox, *chats: str) -> None:
    for chat in chats:
        outbox.enqueue(OutboxMessage("telegram", chat, f"news for {chat}", f"news:1:{chat}"))


async def test_messages_and_answers_are_counted(sample_assistant, chat_factory):
    metrics = Metrics()
    metrics.attach(sample_assistant)
    chat = chat_factory(sample_assistant)
    await chat.send("Miten teen kuntalaisaloitteen?")
    await chat.send("Milloin uimahalli aukeaa jouluna?")
    await chat.send("/help")
    assert value(metrics, "assistant_messages_handled_total", platform="console") == 3
    assert value(metrics, "assistant_questions_answered_total", language="fi") == 1
    assert value(metrics, "assistant_questions_unanswered_total", language="fi") == 1


def test_outbox_rows_are_counted_at_scrape_time(tmp_path: Path):
    db = Database(f"sqlite:///{tmp_path}/m.db")
    db.create_all()
    outbox, metrics = Outbox(db), Metrics()
    metrics.watch_outbox(outbox)
    enqueue(outbox, "1", "2", "3")
    assert value(metrics, "assistant_outbox_rows", status="pending") == 3
    (row, *_) = outbox.claim("w", 1, 30)
    outbox.mark_sent(row.id)
    assert value(metrics, "assistant_outbox_rows", status="pending") == 2
    assert value(metrics, "assistant_outbox_rows", status="sent") == 1
    assert value(metrics, "assistant_outbox_rows", status="failed") == 0
    db.dispose()


async def test_each_send_is_timed_with_its_outcome(tmp_path: Path):
    db = Database(f"sqlite:///{tmp_path}/m.db")
    db.create_all()
    outbox, metrics = Outbox(db), Metrics()
    adapter = RecordingAdapter("telegram", delay=0.01)
    adapter.fail("2", RetryLater(5))
    enqueue(outbox, "1", "2", "3")
    sender = Sender(db, outbox, {"telegram": metrics.timed(adapter)}, None, "w")
    assert await sender.drain_once() == 3
    histogram = "assistant_outbox_send_seconds"
    assert value(metrics, f"{histogram}_count", platform="telegram", outcome="sent") == 2
    assert value(metrics, f"{histogram}_count", platform="telegram", outcome="RetryLater") == 1
    assert value(metrics, f"{histogram}_sum", platform="telegram", outcome="sent") >= 0.02
    db.dispose()


async def test_metrics_and_health_are_served_over_http(tmp_path: Path):
    db = Database(f"sqlite:///{tmp_path}/m.db")
    db.create_all()
    metrics = Metrics()
    metrics.watch_outbox(Outbox(db))
    port = free_port()
    runner = await serve(metrics, db, "127.0.0.1", port)
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{port}/metrics") as response:
                body = await response.text()
                assert response.status == 200
                assert response.headers["Content-Type"].startswith("text/plain")
            async with http.get(f"http://127.0.0.1:{port}/healthz") as health:
                assert (health.status, await health.json()) == (200, {"status": "ok"})
        assert 'assistant_outbox_rows{status="pending"} 0.0' in body
    finally:
        await runner.cleanup()
        db.dispose()


async def test_health_fails_when_the_database_is_unreachable():
    unreachable = Database(f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/none")
    port = free_port()
    runner = await serve(Metrics(), unreachable, "127.0.0.1", port)
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{port}/healthz") as health:
                assert health.status == 503
    finally:
        await runner.cleanup()
        unreachable.dispose()


async def test_the_runtime_sends_the_outbox_and_serves_metrics(tmp_path: Path):
    port = free_port()
    settings = make_settings(tmp_path, KNOWLEDGE_DIR=str(SAMPLE_KNOWLEDGE), METRICS_PORT=str(port))
    bot = Assistant(settings)
    adapter = RecordingAdapter("telegram")
    enqueue(Outbox(bot.db), "1", "2")
    async with background(bot, {"telegram": adapter}, limits=None):
        for _ in range(100):
            if len(adapter.sent) == 2:
                break
            await asyncio.sleep(0.05)
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{port}/metrics") as response:
                body = await response.text()
    assert sorted(s.chat_id for s in adapter.sent) == ["1", "2"]
    assert 'assistant_outbox_rows{status="sent"} 2.0' in body
    assert 'assistant_outbox_send_seconds_count{outcome="sent",platform="telegram"} 2.0' in body
    bot.db.dispose()


@pytest.mark.parametrize("path", ["/metrics", "/healthz"])
async def test_the_runtime_serves_both_endpoints_on_the_metrics_host(tmp_path: Path, path: str):
    port = free_port()
    settings = make_settings(tmp_path, KNOWLEDGE_DIR=str(SAMPLE_KNOWLEDGE), METRICS_PORT=str(port))
    assert settings.metrics_host == "127.0.0.1"
    bot = Assistant(settings)
    async with background(bot, {}):
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{port}{path}") as response:
                assert response.status == 200
    bot.db.dispose()


def test_the_runtime_schedules_feeds_digests_and_retention(sample_assistant):
    from assistant.runtime import schedule_jobs
    from assistant.scheduler import Scheduler

    jobs = Scheduler()
    schedule_jobs(jobs, sample_assistant)
    names = jobs.names()
    assert {"poll_feeds", "retention", "expire_conversations"} <= set(names)
    assert [n for n in names if n.startswith("send_digests_")] == [
        f"send_digests_{hour:02d}" for hour in range(24)]
