"""Webhook delivery for the fake Telegram server, shaped after the Bot API server's own
(tdlib/telegram-bot-api, WebhookActor.cpp).

What a bot behind a webhook sees from Telegram, and this reproduces:
- up to `max_connections` (setWebhook, default 40) requests at once;
- updates queued per chat (per update kind and chat, or sender for button presses):
  a chat's next update is posted only after the previous one was answered with a 2xx,
  while other chats' updates go on in parallel;
- a non-2xx answer, a dropped connection or a timeout makes Telegram post the same
  update (same update_id) again: the first retry at once, then after growing delays,
  or after the answer's Retry-After; the chat's later updates wait meanwhile;
- at most 2 × max_connections updates are taken from the pending list at a time.

Deviations: delays are scaled down (`retry_delay`, 0.05 s, instead of 1 s) and an update
is given up after `retries` retries instead of after hours.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import aiohttp

log = logging.getLogger(__name__)

JSON = dict[str, Any]
DEFAULT_MAX_CONNECTIONS = 40
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"


def queue_key(update: JSON) -> tuple[str, Any]:
    """Which of Telegram's per-chat queues an update waits in (unique when it names no chat)."""
    kind = next((key for key in update if key != "update_id"), "")
    body = update.get(kind) if isinstance(update.get(kind), dict) else {}
    if isinstance(body.get("chat"), dict):
        return kind, body["chat"].get("id")
    if isinstance(body.get("from"), dict):
        return kind, body["from"].get("id")
    return "update", update.get("update_id")


class WebhookDelivery:
    """Posts updates to the webhook set by setWebhook until deleteWebhook.

    `take()` hands over the next pending update (None when there is none); what is
    still undelivered when the webhook is deleted goes back through `give_back`;
    `settled()` runs after each delivery or failure (the server's waiters).
    """

    def __init__(self, take: Callable[[], JSON | None],
                 give_back: Callable[[list[JSON]], None], settled: Callable[[], None],
                 retries: int = 3, retry_delay: float = 0.05, timeout: float = 10.0,
                 clock: Callable[[], float] = time.monotonic):
        self.take, self.give_back, self.settled = take, give_back, settled
        self.retries, self.retry_delay, self.timeout = retries, retry_delay, timeout
        self.clock = clock
        self.session: aiohttp.ClientSession | None = None
        self.config: JSON | None = None  # url, secret_token, max_connections
        self.delivered: list[JSON] = []  # {"update", "attempts"}
        self.failed: list[JSON] = []  # {"update", "error"}
        self.attempts: list[JSON] = []  # every POST: update_id, status (None: none), time posted
        self.in_flight = 0
        self.most_in_flight = 0
        self._queues: dict[tuple[str, Any], deque[JSON]] = {}
        self._loaded = 0
        self._slots = asyncio.Semaphore(DEFAULT_MAX_CONNECTIONS)
        self._changed = asyncio.Event()
        self._loader: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def loaded(self) -> int:
        """Updates taken from the pending list and not yet delivered (or given up)."""
        return self._loaded

    def set(self, url: str, secret_token: str | None, max_connections: int | None) -> None:
        connections = min(max(max_connections or DEFAULT_MAX_CONNECTIONS, 1), 100)
        if self.config is None or self.config["max_connections"] != connections:
            self._slots = asyncio.Semaphore(connections)
        self.config = {"url": url, "secret_token": secret_token, "max_connections": connections}
        if self._loader is None or self._loader.done():
            self._loader = asyncio.create_task(self._load())
        self.wake()

    def delete(self) -> None:
        """deleteWebhook: nothing more is posted; undelivered updates go back to pending."""
        self.config = None
        self.wake()

    def wake(self) -> None:
        self._changed.set()

    async def close(self) -> None:
        self.config = None
        tasks = [t for t in (self._loader, *self._tasks) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # ------------------------------------------------------------------ queues

    async def _load(self) -> None:
        """Move pending updates into per-chat queues, each served by a task of its own."""
        while self.config is not None:
            self._changed.clear()
            if self._loaded >= 2 * self.config["max_connections"]:
                await self._changed.wait()
                continue
            update = self.take()
            if update is None:
                await self._changed.wait()
                continue
            key = queue_key(update)
            queue = self._queues.get(key)
            if queue is None:
                queue = self._queues[key] = deque()
                task = asyncio.create_task(self._serve(key, queue))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            queue.append(update)
            self._loaded += 1

    async def _serve(self, key: tuple[str, Any], queue: deque[JSON]) -> None:
        """One chat's updates, in order: the next only after the previous was answered."""
        try:
            while queue:
                if not await self._deliver(queue[0]):  # the webhook was deleted meanwhile
                    self._loaded -= len(queue)
                    self.give_back(list(queue))
                    queue.clear()
                    break
                queue.popleft()
                self._loaded -= 1
                self._changed.set()
        except Exception:
            log.exception("webhook delivery to queue %s crashed", key)
        finally:
            if self._queues.get(key) is queue:
                del self._queues[key]
            self._changed.set()

    async def _deliver(self, update: JSON) -> bool:
        """Post until answered with a 2xx or given up; False when the webhook is gone."""
        error, wait = "", 0.0
        for attempt in range(self.retries + 1):
            if attempt:
                await asyncio.sleep(wait)
            config = self.config
            if config is None:
                return False
            async with self._slots:
                status, error, retry_after = await self._post(config, update)
            if status is not None and 200 <= status < 300:
                self.delivered.append({"update": update, "attempts": attempt + 1})
                self.settled()
                return True
            # Telegram: the first retry at once, then doubling delays, or Retry-After.
            wait = retry_after if retry_after else self.retry_delay * 2 ** attempt if attempt else 0
        log.warning("webhook delivery of update %s failed: %s", update.get("update_id"), error)
        self.failed.append({"update": update, "error": error})
        self.settled()
        return True

    async def _post(self, config: JSON, update: JSON) -> tuple[int | None, str, float]:
        """(HTTP status or None, error text, Retry-After seconds) of one attempt."""
        assert self.session is not None
        headers = {SECRET_HEADER: config["secret_token"]} if config["secret_token"] else {}
        status, error, retry_after = None, "", 0.0
        posted = self.clock()
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            async with self.session.post(
                config["url"], json=update, headers=headers,
                timeout=aiohttp.ClientTimeout(total=self.timeout),
            ) as response:
                status = response.status
                await response.read()
                if not 200 <= status < 300:
                    error = f"Wrong response from the webhook: {status} {response.reason}"
                    retry_after = _seconds(response.headers.get("Retry-After"))
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            error = f"Connection failed: {exc!r}"
        finally:
            self.in_flight -= 1
        self.attempts.append({"update_id": update.get("update_id"), "status": status,
                              "time": posted})
        return status, error, retry_after


def _seconds(header: str | None) -> float:
    try:
        return max(0.0, min(float(header or 0), 3600.0))
    except ValueError:
        return 0.0
