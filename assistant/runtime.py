"""Wiring for `run`: the core, the configured platform adapters and background jobs, in one process."""

from __future__ import annotations

import asyncio
import logging
import signal

from .core import Assistant
from .router import Router
from .settings import Settings

logger = logging.getLogger(__name__)


async def run_platforms(settings: Settings) -> None:
    """Start every configured adapter and run until SIGINT/SIGTERM."""
    assistant = Assistant(settings)
    router = Router(assistant)
    adapters = []
    if settings.telegram_enabled:
        from adapters.telegram import TelegramAdapter

        adapters.append(TelegramAdapter(settings))
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
