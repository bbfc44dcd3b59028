"""Wiring for `run`: the core, the configured platform adapters and background jobs, in one process."""

from __future__ import annotations

import asyncio
import logging
import signal

from .core import Assistant
from .menus import command_menus
from .router import Router
from .settings import Settings
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
        from adapters.matrix import MatrixAdapter

        adapters.append(MatrixAdapter(settings))
    for adapter in adapters:
        router.add(adapter)
        await adapter.start(router.on_message)
        logger.info("%s adapter started", adapter.platform)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    for adapter in reversed(adapters):
        await adapter.stop()
    assistant.db.dispose()


def _telegram(assistant: Assistant):  # type: ignore[no-untyped-def]
    """The Telegram adapter with the core's command menus and a redelivery filter in the DB."""
    from adapters.telegram import TelegramAdapter

    updates = Updates(assistant.db)
    return TelegramAdapter(assistant.settings, menus=command_menus(assistant),
                           dedupe=lambda key: updates.first_time("telegram", key))
