"""The sender: drains the outbox within each platform's limits and records every result.

A batch is claimed (rows become "sending" with a short lease), split per chat, and
the chats are served concurrently: one chat's rows go out in order, the platform's
overall slots are handed out first come, first served. Each result is written the
moment the platform answers (deliveries that end in the same event-loop turn share one
transaction), so a crash can repeat at most the sends under way.
A row that would have to wait long (a busy chat, a paused platform) is given back
with its due time instead of holding its lease.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import socket
import time
import traceback
from collections import Counter
from typing import Callable, Mapping

from .messages import Reply
from .platform import Adapter, PermanentFailure, RecipientGone, RetryLater
from .ratelimit import DEFAULT_LIMITS, PlatformLimiter, RateLimit
from .store.db import Database
from .store.outbox import Outbox, OutboxRow
from .store.residents import Residents

logger = logging.getLogger(__name__)

SENT, RETRY, GONE, FAILED = "sent", "retry", "gone", "failed"
BACKOFF_CAP_SECONDS = 300.0
MAX_IDLE_SECONDS = 30.0
UNLIMITED = RateLimit(per_second_global=None, per_chat_interval_seconds=0.0,
                      per_group_per_minute=None)


def default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"[:64]


class Sender:
    """Delivers outbox rows through the adapters; one sender per process and worker id.

    `limits` maps a platform to its `RateLimit`; a platform not in it, or
    `limits=None`, is not rate limited by us (its RetryLater still pauses it).
    Call `drain_once()` from one task at a time (`run()` does).
    """

    def __init__(self, assistant_or_db: object, outbox: Outbox, adapters: Mapping[str, Adapter],
                 limits: Mapping[str, RateLimit] | None = DEFAULT_LIMITS,
                 worker_id: str | None = None, *, batch_size: int = 50, concurrency: int = 32,
                 lease_seconds: float = 30.0, max_attempts: int = 8, poll_seconds: float = 0.5,
                 max_chat_wait: float = 2.0, clock: Callable[[], float] = time.monotonic):
        self.residents = _residents(assistant_or_db)
        self.outbox, self.adapters = outbox, dict(adapters)
        self.worker_id = worker_id or default_worker_id()
        self.batch_size, self.lease_seconds = batch_size, lease_seconds
        self.max_attempts, self.poll_seconds = max_attempts, poll_seconds
        self.max_chat_wait, self.clock = max_chat_wait, clock
        self.send_timeout = lease_seconds / 3
        self.limiters = {platform: PlatformLimiter((limits or {}).get(platform, UNLIMITED), clock)
                         for platform in self.adapters}
        self.results: Counter[str] = Counter()
        self._delivered: list[int] = []
        self._slots = asyncio.Semaphore(concurrency)
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """New rows were enqueued: stop idling now (called from the event loop's thread)."""
        self._wake.set()

    async def run(self, stop_event: asyncio.Event) -> None:
        """Drain until `stop_event` is set; poll when idle, or sooner when woken."""
        logger.info("outbox sender %s started", self.worker_id)
        failures = 0
        while not stop_event.is_set():
            self._wake.clear()
            try:
                handled = await self.drain_once()
                failures = 0
            except Exception:  # the database is away: try again, less and less often
                logger.exception("outbox drain failed")
                handled, failures = 0, failures + 1
            if not handled:
                await self._idle(stop_event, min(MAX_IDLE_SECONDS,
                                                  self.poll_seconds * 2 ** failures))
        logger.info("outbox sender %s stopped", self.worker_id)

    async def drain_once(self) -> int:
        """Claim one batch and send it within the limits; returns the rows handled."""
        rows = self.outbox.claim(self.worker_id, self.batch_size, self.lease_seconds,
                                 platforms=list(self.adapters))
        if not rows:
            return 0
        started = self.clock()
        outcomes = await asyncio.gather(
            *(self._send_chat(chat_rows, started) for chat_rows in _by_chat(rows)),
            return_exceptions=True)
        self._flush_sent()
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                logger.error("outbox chat task failed: %s", type(outcome).__name__,
                             exc_info=outcome)
        self._forget_idle_chats()
        return len(rows)

    async def _idle(self, stop_event: asyncio.Event, seconds: float) -> None:
        waits = {asyncio.ensure_future(self._wake.wait()), asyncio.ensure_future(stop_event.wait())}
        _, pending = await asyncio.wait(waits, timeout=seconds,
                                        return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()

    # one chat -------------------------------------------------------------

    async def _send_chat(self, rows: list[OutboxRow], started: float) -> None:
        """One chat's rows in order; the rest wait their turn in the outbox, or are dropped."""
        for index, row in enumerate(rows):
            outcome = ""
            delay = await self._chat_turn(row, started)
            if not delay:
                async with self._slots:
                    delay = await self._platform_turn(row, started)
                    if not delay:
                        outcome = await self._deliver(row)
            if delay:
                self._give_back(rows[index:], delay)
                return
            if outcome == GONE:
                self._drop(rows[index + 1:])
                return
            if outcome == RETRY:  # the chat's later rows must not overtake this one
                self._hold_behind(row, rows[index + 1:])
                return

    async def _chat_turn(self, row: OutboxRow, started: float) -> float:
        """Wait for the chat's next slot; returns the delay instead when it would hold the batch."""
        now = self.clock()
        wait = self.limiters[row.platform].chat_wait(row.chat_id, now)
        if now + wait > started + self.max_chat_wait:
            return wait
        if wait > 0:
            await asyncio.sleep(wait)
        return 0.0

    async def _platform_turn(self, row: OutboxRow, started: float) -> float:
        """Take one of the platform's overall slots (in arrival order); 0 means send now."""
        limiter = self.limiters[row.platform]
        # Start no send late in the lease: the send itself must end before it does.
        deadline = started + self.lease_seconds / 2
        if limiter.limit.per_second_global is None:
            return await self._take_slot(limiter, row.chat_id, deadline)
        async with limiter.lock:
            return await self._take_slot(limiter, row.chat_id, deadline)

    async def _take_slot(self, limiter: PlatformLimiter, chat_id: str, deadline: float) -> float:
        while True:
            now = self.clock()
            wait = limiter.overall_wait(now)
            if not wait:
                limiter.record(chat_id, now)
                return 0.0
            if now + wait > deadline:
                return wait
            await asyncio.sleep(wait)

    # one row ----------------------------------------------------------------

    async def _deliver(self, row: OutboxRow) -> str:
        """Send one row and record what happened; returns the outcome."""
        assert row.id is not None
        reply = Reply(text=row.text, choices=row.choice_list())
        try:
            # In this task (not wait_for's new one): the send starts in the turn its slot was
            # taken, so a busy loop cannot bunch sends that were counted a second apart.
            async with asyncio.timeout(self.send_timeout):
                await self.adapters[row.platform].send(row.chat_id, reply)
        except RetryLater as exc:
            outcome = self._retry_later(row, exc)
        except RecipientGone as exc:
            outcome = self._gone(row, exc)
        except PermanentFailure as exc:
            logger.warning("push %s to a %s chat refused for good: %s", row.id, row.platform,
                           type(exc).__name__)
            self.outbox.mark_failed(row.id, _describe(exc))
            outcome = FAILED
        except Exception as exc:  # 5xx, timeouts, bugs: back off, never log the text
            outcome = self._backoff(row, exc)
        else:
            self._record_sent(row.id)
            outcome = SENT
        self.results[outcome] += 1
        return outcome

    def _record_sent(self, row_id: int) -> None:
        """Group commit: deliveries that end in the same loop turn share one transaction."""
        self._delivered.append(row_id)
        if len(self._delivered) == 1:
            asyncio.get_running_loop().call_soon(self._flush_sent)

    def _flush_sent(self) -> None:
        row_ids, self._delivered = self._delivered, []
        if not row_ids:
            return
        try:
            self.outbox.mark_sent_many(row_ids)
        except Exception:  # they stay "sending" and go again after the lease: duplicates
            logger.exception("recording %d deliveries failed", len(row_ids))

    def _retry_later(self, row: OutboxRow, exc: RetryLater) -> str:
        """The platform named the wait: honour it exactly, for the whole platform."""
        after = max(0.0, float(exc.after_seconds))
        self.limiters[row.platform].pause(after)
        logger.info("%s asked to wait %.1f s (push %s, attempt %d)", row.platform, after,
                    row.id, row.attempts)
        return self._retry_or_fail(row, after, _describe(exc))

    def _backoff(self, row: OutboxRow, exc: Exception) -> str:
        after = min(BACKOFF_CAP_SECONDS, 2.0 ** max(0, row.attempts - 1))
        logger.warning("push %s to a %s chat failed (%s), attempt %d", row.id, row.platform,
                       type(exc).__name__, row.attempts)
        # Where it failed, without the exception's text: it may quote the message.
        logger.debug("push %s failed at:\n%s", row.id,
                     "".join(traceback.format_tb(exc.__traceback__)))
        return self._retry_or_fail(row, after, type(exc).__name__)

    def _retry_or_fail(self, row: OutboxRow, after: float, error: str) -> str:
        assert row.id is not None
        if row.attempts >= self.max_attempts:
            logger.warning("push %s given up after %d attempts", row.id, row.attempts)
            self.outbox.mark_failed(row.id, error)
            return FAILED
        self.outbox.mark_retry(row.id, after, error)
        return RETRY

    def _gone(self, row: OutboxRow, exc: RecipientGone) -> str:
        """Blocked or left: this row, the resident's queued rows, and future pushes stop."""
        assert row.id is not None
        error = _describe(exc)
        self.outbox.mark_gone(row.id, error)
        self.residents.mark_inactive(row.platform, row.chat_id)
        if row.resident_id is not None:
            self.outbox.mark_resident_gone(row.resident_id, error)
        logger.info("push %s: recipient on %s is gone", row.id, row.platform)
        return GONE

    def _drop(self, rows: list[OutboxRow]) -> None:
        for row in rows:
            assert row.id is not None
            self.outbox.mark_gone(row.id, "recipient gone")
            self.results[GONE] += 1

    def _give_back(self, rows: list[OutboxRow], delay: float) -> None:
        due = self.outbox.clock() + dt.timedelta(seconds=delay)
        self.outbox.release([r.id for r in rows if r.id is not None], due)
        self.results["deferred"] += len(rows)

    def _hold_behind(self, retried: OutboxRow, rows: list[OutboxRow]) -> None:
        """Give rows back due with the retried one; claims order by (due, id), so they follow it."""
        assert retried.id is not None
        current = self.outbox.get(retried.id)
        due = current.not_before if current is not None else self.outbox.clock()
        self.outbox.release([r.id for r in rows if r.id is not None], due)
        self.results["deferred"] += len(rows)

    def _forget_idle_chats(self) -> None:
        now = self.clock()
        for limiter in self.limiters.values():
            limiter.forget_idle(now)


def _by_chat(rows: list[OutboxRow]) -> list[list[OutboxRow]]:
    """Rows grouped per chat, each group in claim order, groups by their first row."""
    chats: dict[tuple[str, str], list[OutboxRow]] = {}
    for row in rows:
        chats.setdefault((row.platform, row.chat_id), []).append(row)
    return list(chats.values())


def _describe(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}"[:300]


def _residents(assistant_or_db: object) -> Residents:
    if isinstance(assistant_or_db, Database):
        return Residents(assistant_or_db)
    residents = getattr(assistant_or_db, "residents", None)
    if not isinstance(residents, Residents):
        raise TypeError("Sender needs an Assistant or a Database")
    return residents
