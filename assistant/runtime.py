"""Wiring for `run` and `worker`: the core, the platform adapters, the outbox sender and the jobs.

`run` takes residents' messages, sends the outbox and runs the scheduled jobs;
`worker` only sends and runs jobs, so several processes can share one PostgreSQL
(the outbox is claimed row by row, and each job runs once across them: `joblock`).
A worker sends Telegram pushes with the bot token alone; Matrix pushes are sent by
`run`, because a second Matrix client would need a device and keys of its own.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from contextlib import asynccontextmanager
from typing import AsyncIterator, Mapping

from . import digests, feeds, retention
from .core import Assistant
from .delivery import Sender
from .joblock import once
from .menus import command_menus
from .metrics import Metrics, serve
from .platform import Adapter
from .ratelimit import DEFAULT_LIMITS, RateLimit
from .router import Router
from .scheduler import Scheduler
from .settings import Settings
from .store.outbox import Outbox
from .store.updates import Updates

logger = logging.getLogger(__name__)


async def run_platforms(settings: Settings) -> None:
    """Start every configured adapter and run until SIGINT/SIGTERM."""
    assistant = Assistant(settings)
    router = Router(assistant)
    adapters = []
    if settings.telegram_enabled:
        adapters.append(_telegram(assistant))
    if settings.matrix_enabled:
        adapters.append(_matrix(assistant))
    for adapter in adapters:
        router.add(adapter)
        await adapter.start(router.on_message)
        logger.info("%s adapter started", adapter.platform)
    async with background(assistant, router.adapters):
        await _until_signalled()
    for adapter in reversed(adapters):
        await adapter.stop()
    assistant.db.dispose()


async def run_worker(settings: Settings, rate_limits: bool = True) -> None:
    """`worker`: send the outbox and run the jobs, taking no messages, until SIGINT/SIGTERM."""
    assistant = Assistant(settings)
    adapters: dict[str, Adapter] = {}
    if settings.telegram_enabled:
        adapters["telegram"] = await _telegram_sender(settings, rate_limits)
    if settings.matrix_enabled:
        logger.warning("a worker sends no Matrix pushes; `run` sends them")
    try:
        async with background(assistant, adapters, DEFAULT_LIMITS if rate_limits else None):
            await _until_signalled()
    finally:
        for adapter in adapters.values():
            await adapter.stop()
        assistant.db.dispose()


@asynccontextmanager
async def background(assistant: Assistant, adapters: Mapping[str, Adapter],
                     limits: Mapping[str, RateLimit] | None = DEFAULT_LIMITS
                     ) -> AsyncIterator[Sender]:
    """The outbox sender, the scheduled jobs and the metrics server, while the block runs."""
    settings = assistant.settings
    metrics = Metrics() if settings.metrics_port else None
    timed = {name: metrics.timed(a) if metrics else a for name, a in adapters.items()}
    sender = Sender(assistant, Outbox(assistant.db), timed, limits)
    setattr(assistant, "delivery_wake", sender.wake)  # news and digests wake it
    stop = asyncio.Event()
    sending = asyncio.create_task(sender.run(stop))
    jobs = Scheduler()
    schedule_jobs(jobs, assistant)
    jobs.start()
    server = None
    try:
        if metrics:
            metrics.attach(assistant)
            metrics.watch_outbox(sender.outbox)
            server = await serve(metrics, assistant.db, settings.metrics_host,
                                 settings.metrics_port)
        yield sender
    finally:
        jobs.stop()
        stop.set()
        await sending
        if server is not None:
            await server.cleanup()


def schedule_jobs(jobs: Scheduler, assistant: Assistant) -> None:
    """The recurring jobs; across workers each firing runs in one process only (`once`)."""
    db = assistant.db
    poll = assistant.settings.feed_poll_minutes * 60.0

    async def poll_feeds() -> None:
        await feeds.poll_feeds(assistant)

    async def send_digests() -> None:
        await digests.send_digests(assistant)

    async def prune() -> None:
        await retention.prune(assistant)

    async def expire_conversations() -> None:
        await retention.expire_conversations(assistant)

    jobs.add_interval("poll_feeds", once(db, "poll_feeds", poll_feeds, 0.8 * poll), poll,
                      start_now=True)
    digest = once(db, "send_digests", send_digests, 1800)
    for hour in range(24):  # at minute 0 of every hour; the digest picks the Helsinki hour
        jobs.add_daily(f"send_digests_{hour:02d}", digest, hour, 0, timezone="UTC")
    jobs.add_daily("retention", once(db, "retention", prune, 12 * 3600), 3, 30)
    jobs.add_interval("expire_conversations",
                      once(db, "expire_conversations", expire_conversations, 1800), 3600)


async def _until_signalled() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


def _telegram(assistant: Assistant):  # type: ignore[no-untyped-def]
    """The Telegram adapter with the core's command menus, keeping updates in the DB until
    handled (a crash loses none, a redelivery is answered once)."""
    from adapters.telegram import TelegramAdapter

    return TelegramAdapter(assistant.settings, menus=command_menus(assistant),
                           log=Updates(assistant.db).of("telegram"))


def _matrix(assistant: Assistant):  # type: ignore[no-untyped-def]
    """The Matrix adapter with its handled events in the DB (they come again after a lost token)."""
    from adapters.matrix import MatrixAdapter

    return MatrixAdapter(assistant.settings, handled=Updates(assistant.db).of("matrix"))


async def _telegram_sender(settings: Settings, rate_limits: bool) -> Adapter:
    """A Telegram adapter that only sends: the bot is initialised (getMe); no updates taken.

    TelegramAdapter has no send-only start, so this initialises its Application;
    `stop()` then shuts it down as usual.
    """
    from adapters.telegram import TelegramAdapter

    adapter = TelegramAdapter(settings, rate_limits=rate_limits)
    await adapter.application.initialize()
    return adapter
