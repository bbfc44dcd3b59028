"""The sender: drains the outbox within each platform's limits and records every result.

A batch is claimed (rows become "sending" with a short lease), split per chat, and
the chats are served concurrently: one chat's rows go out in order, the platform's
overall slots are handed out first come, first served, and at most `concurrency`
sends are under way at once. `run()` claims the next batch while the earlier ones are
still going out, so sending never waits for the database; a chat's rows in a later
batch wait for its rows in the earlier one. A delivery is recorded only after the
platform accepted it, together with the others of the last `record_seconds` (a commit
costs far more than a row), so a crash can repeat only the sends under way and the
few deliveries not yet written.
The database is called from threads: the event loop keeps sending while it waits.
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
# What a chat's later rows must do once its earlier ones are through: go on (None),
# wait until a time (an earlier row was retried or given back), or be dropped (GONE).
ChatEnd = dt.datetime | str | None


def default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"[:64]


class Sender:
    """Delivers outbox rows through the adapters; one sender per process and worker id.

    `limits` maps a platform to its `RateLimit`; a platform not in it, or
    `limits=None`, is not rate limited by us (its RetryLater still pauses it).
    Use either `run()` or `drain_once()` (one batch, sent and recorded), not both at once.
    """

    def __init__(self, assistant_or_db: object, outbox: Outbox, adapters: Mapping[str, Adapter],
                 limits: Mapping[str, RateLimit] | None = DEFAULT_LIMITS,
                 worker_id: str | None = None, *, batch_size: int = 100, concurrency: int = 32,
                 lease_seconds: float = 30.0, max_attempts: int = 8, poll_seconds: float = 0.5,
                 max_chat_wait: float = 2.0, record_seconds: float = 0.025,
                 clock: Callable[[], float] = time.monotonic):
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
        self._slots = asyncio.Semaphore(concurrency)
        self._wake = asyncio.Event()
        self._room = asyncio.Event()  # set when fewer than batch_size claimed rows are unfinished
        self._held = 0
        self._stopping = False
        self._chats: dict[tuple[str, str], asyncio.Future[ChatEnd]] = {}
        self._recorder = _SentRecorder(outbox, record_seconds)

    def wake(self) -> None:
        """New rows were enqueued: stop idling now (called from the event loop's thread)."""
        self._wake.set()

    async def run(self, stop_event: asyncio.Event) -> None:
        """Drain until `stop_event` is set; poll when idle, or sooner when woken.

        A batch is claimed whenever fewer than `batch_size` claimed rows are unfinished,
        so up to two batches are in hand. On stop, the sends under way end and the rows
        not yet started are given back, due at once, for the next process.
        """
        logger.info("outbox sender %s started", self.worker_id)
        batches: set[asyncio.Task[None]] = set()
        failures = 0
        try:
            while not stop_event.is_set():
                if self._held >= self.batch_size:
                    self._room.clear()
                    await _first_of(MAX_IDLE_SECONDS, self._room, stop_event)
                    continue
                self._wake.clear()
                try:
                    rows = await self._claim()
                    failures = 0
                except Exception:  # the database is away: try again, less and less often
                    logger.exception("outbox drain failed")
                    rows, failures = [], failures + 1
                if rows:
                    batch = asyncio.create_task(self._send_batch(rows))
                    batches.add(batch)
                    batch.add_done_callback(batches.discard)
                else:
                    await _first_of(min(MAX_IDLE_SECONDS, self.poll_seconds * 2 ** failures),
                                    self._wake, stop_event)
        finally:
            self._stopping = True
            await asyncio.gather(*batches, return_exceptions=True)
            await self._recorder.flush()
            self._stopping = False
        logger.info("outbox sender %s stopped", self.worker_id)

    async def drain_once(self) -> int:
        """Claim one batch, send it within the limits and record it; returns the rows handled."""
        rows = await self._claim()
        if rows:
            await self._send_batch(rows)
        await self._recorder.flush()
        return len(rows)

    async def _claim(self) -> list[OutboxRow]:
        rows = await asyncio.to_thread(self.outbox.claim, self.worker_id, self.batch_size,
                                       self.lease_seconds, platforms=list(self.adapters))
        self._held += len(rows)
        return rows

    async def _send_batch(self, rows: list[OutboxRow]) -> None:
        started = self.clock()
        outcomes = await asyncio.gather(
            *(self._send_chat(chat_rows, started) for chat_rows in _by_chat(rows)),
            return_exceptions=True)
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                logger.error("outbox chat task failed: %s", type(outcome).__name__,
                             exc_info=outcome)
        self._forget_idle_chats()

    # one chat -------------------------------------------------------------

    async def _send_chat(self, rows: list[OutboxRow], started: float) -> None:
        """One chat's rows of a batch, after the chat's rows of earlier batches."""
        key = (rows[0].platform, rows[0].chat_id)
        earlier = self._chats.get(key)
        end: ChatEnd = None
        self._chats[key] = mine = asyncio.get_running_loop().create_future()
        try:
            if earlier is not None:
                end = await asyncio.shield(earlier)
            if end == GONE:
                await self._drop(rows)
            elif isinstance(end, dt.datetime):
                await self._release(rows, end)
            else:
                end = await self._send_in_order(rows, started)
        finally:
            mine.set_result(end)
            if self._chats.get(key) is mine:
                del self._chats[key]
            self._finished(len(rows))

    async def _send_in_order(self, rows: list[OutboxRow], started: float) -> ChatEnd:
        """The rows in order; the rest wait their turn in the outbox, or are dropped."""
        for index, row in enumerate(rows):
            outcome = ""
            delay = await self._chat_turn(row, started)
            if not delay:
                async with self._slots:
                    delay = await self._platform_turn(row, started)
                    if not delay and not self._stopping:
                        outcome = await self._deliver(row)
            if not outcome:  # a long wait, or stopping
                return await self._give_back(rows[index:], delay)
            if outcome == GONE:
                await self._drop(rows[index + 1:])
                return GONE
            if outcome == RETRY:  # the chat's later rows must not overtake this one
                return await self._hold_behind(row, rows[index + 1:])
        return None

    def _finished(self, count: int) -> None:
        self._held -= count
        if self._held < self.batch_size:
            self._room.set()

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
            outcome = await self._retry_later(row, exc)
        except RecipientGone as exc:
            outcome = await self._gone(row, exc)
        except PermanentFailure as exc:
            logger.warning("push %s to a %s chat refused for good: %s", row.id, row.platform,
                           type(exc).__name__)
            await asyncio.to_thread(self.outbox.mark_failed, row.id, _describe(exc))
            outcome = FAILED
        except Exception as exc:  # 5xx, timeouts, bugs: back off, never log the text
            outcome = await self._backoff(row, exc)
        else:
            self._recorder.add(row.id)
            outcome = SENT
        self.results[outcome] += 1
        return outcome

    async def _retry_later(self, row: OutboxRow, exc: RetryLater) -> str:
        """The platform named the wait: honour it exactly, for the whole platform."""
        after = max(0.0, float(exc.after_seconds))
        self.limiters[row.platform].pause(after)
        logger.info("%s asked to wait %.1f s (push %s, attempt %d)", row.platform, after,
                    row.id, row.attempts)
        return await self._retry_or_fail(row, after, _describe(exc))

    async def _backoff(self, row: OutboxRow, exc: Exception) -> str:
        after = min(BACKOFF_CAP_SECONDS, 2.0 ** max(0, row.attempts - 1))
        logger.warning("push %s to a %s chat failed (%s), attempt %d", row.id, row.platform,
                       type(exc).__name__, row.attempts)
        # Where it failed, without the exception's text: it may quote the message.
        logger.debug("push %s failed at:\n%s", row.id,
                     "".join(traceback.format_tb(exc.__traceback__)))
        return await self._retry_or_fail(row, after, type(exc).__name__)

    async def _retry_or_fail(self, row: OutboxRow, after: float, error: str) -> str:
        assert row.id is not None
        if row.attempts >= self.max_attempts:
            logger.warning("push %s given up after %d attempts", row.id, row.attempts)
            await asyncio.to_thread(self.outbox.mark_failed, row.id, error)
            return FAILED
        await asyncio.to_thread(self.outbox.mark_retry, row.id, after, error)
        return RETRY

    async def _gone(self, row: OutboxRow, exc: RecipientGone) -> str:
        """Blocked or left: this row, the resident's queued rows, and future pushes stop."""
        assert row.id is not None
        error = _describe(exc)

        def record() -> None:
            self.outbox.mark_gone(row.id, error)  # type: ignore[arg-type]
            self.residents.mark_inactive(row.platform, row.chat_id)
            if row.resident_id is not None:
                self.outbox.mark_resident_gone(row.resident_id, error)

        await asyncio.to_thread(record)
        logger.info("push %s: recipient on %s is gone", row.id, row.platform)
        return GONE

    async def _drop(self, rows: list[OutboxRow]) -> None:
        def record() -> None:
            for row in rows:
                assert row.id is not None
                self.outbox.mark_gone(row.id, "recipient gone")

        if rows:
            await asyncio.to_thread(record)
            self.results[GONE] += len(rows)

    async def _give_back(self, rows: list[OutboxRow], delay: float) -> dt.datetime:
        due = self.outbox.clock() + dt.timedelta(seconds=delay)
        await self._release(rows, due)
        return due

    async def _release(self, rows: list[OutboxRow], due: dt.datetime) -> None:
        await asyncio.to_thread(self.outbox.release, [r.id for r in rows if r.id is not None], due)
        self.results["deferred"] += len(rows)

    async def _hold_behind(self, retried: OutboxRow, rows: list[OutboxRow]) -> dt.datetime:
        """Give rows back due with the retried one; claims order by (due, id), so they follow it."""
        assert retried.id is not None
        current = await asyncio.to_thread(self.outbox.get, retried.id)
        due = current.not_before if current is not None else self.outbox.clock()
        await self._release(rows, due)
        return due

    def _forget_idle_chats(self) -> None:
        now = self.clock()
        for limiter in self.limiters.values():
            limiter.forget_idle(now)


class _SentRecorder:
    """Marks deliveries sent from a thread, one transaction at a time (a group commit).

    A transaction takes the deliveries of `seconds` (or fewer, when `flush()` is waiting),
    and those that end while it commits wait for the next. Until then the rows stay
    "sending": a crash leaves them to be sent again when their lease ends.
    """

    def __init__(self, outbox: Outbox, seconds: float):
        self.outbox, self.seconds = outbox, seconds
        self._rows: list[int] = []
        self._writing: asyncio.Task[None] | None = None
        self._hurry = asyncio.Event()

    def add(self, row_id: int) -> None:
        self._rows.append(row_id)
        if self._writing is None or self._writing.done():
            self._writing = asyncio.create_task(self._write())

    async def flush(self) -> None:
        """Return once every delivery added so far is written (or failed to be)."""
        self._hurry.set()
        try:
            while self._writing is not None and not self._writing.done():
                await asyncio.shield(self._writing)
        finally:
            self._hurry.clear()

    async def _write(self) -> None:
        while self._rows:
            await _first_of(self.seconds, self._hurry)  # let more deliveries join this one
            row_ids, self._rows = self._rows, []
            try:
                await asyncio.to_thread(self.outbox.mark_sent_many, row_ids)
            except Exception:  # they stay "sending" and go again after the lease: duplicates
                logger.exception("recording %d deliveries failed", len(row_ids))


async def _first_of(seconds: float, *events: asyncio.Event) -> None:
    """Wait until one of the events is set, or `seconds` have passed."""
    waits = {asyncio.ensure_future(event.wait()) for event in events}
    _, pending = await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()


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
