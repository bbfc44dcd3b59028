"""Background jobs: a small wrapper over APScheduler 3's AsyncIOScheduler.

Jobs are plain `async def job() -> None` functions registered under a fixed name,
so registering again replaces the job instead of doubling it. The scheduler keeps
its times in UTC; a daily job names the zone its wall-clock time is meant in
(Europe/Helsinki for residents), so it follows daylight saving time. A failing job
is logged and runs again at its next time; a late one runs once, never piled up.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Awaitable, Callable
from zoneinfo import ZoneInfo

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

logger = logging.getLogger(__name__)

Job = Callable[[], Awaitable[None]]
UTC = dt.timezone.utc
# A job that could not start on time (a busy loop, a suspended laptop) still runs within this.
MISFIRE_GRACE_SECONDS = 300


async def run_guarded(name: str, job: Job) -> None:
    """Run one job; an exception is logged and the job stays scheduled."""
    try:
        await job()
    except Exception:
        logger.exception("scheduled job %s failed", name)


class Scheduler:
    """Named interval and daily jobs on the running asyncio loop."""

    def __init__(self) -> None:
        self._scheduler = AsyncIOScheduler(timezone=UTC, job_defaults={
            "coalesce": True, "max_instances": 1, "misfire_grace_time": MISFIRE_GRACE_SECONDS})
        self._started = False

    def add_interval(self, name: str, coro_fn: Job, seconds: float,
                     start_now: bool = False) -> None:
        """Run `coro_fn` every `seconds`; the first run after one interval, or at once."""
        first = dt.datetime.now(UTC) if start_now else None
        trigger = IntervalTrigger(seconds=seconds, timezone=UTC)
        self._add(name, coro_fn, trigger, next_run_time=first)

    def add_daily(self, name: str, coro_fn: Job, hour: int, minute: int,
                  timezone: str = "Europe/Helsinki") -> None:
        """Run `coro_fn` every day at hour:minute wall-clock time in `timezone`."""
        trigger = CronTrigger(hour=hour, minute=minute, timezone=ZoneInfo(timezone))
        self._add(name, coro_fn, trigger)

    def _add(self, name: str, coro_fn: Job, trigger: object,
             next_run_time: dt.datetime | None = None) -> None:
        extra = {"next_run_time": next_run_time} if next_run_time else {}
        self._scheduler.add_job(run_guarded, trigger, args=(name, coro_fn), id=name, name=name,
                                replace_existing=True, **extra)

    def remove(self, name: str) -> None:
        if self._scheduler.get_job(name) is not None:
            self._scheduler.remove_job(name)

    def names(self) -> list[str]:
        return sorted(job.id for job in self._scheduler.get_jobs())

    def next_run(self, name: str) -> dt.datetime | None:
        """The job's next run time in UTC (None when it is unknown or not yet computed)."""
        job = self._scheduler.get_job(name)
        when = getattr(job, "next_run_time", None) if job else None
        return when.astimezone(UTC) if when else None

    @property
    def running(self) -> bool:
        return self._started and bool(self._scheduler.running)

    def start(self) -> None:
        """Start on the running event loop (call from inside it)."""
        if not self._started:
            self._scheduler.start()
            self._started = True

    def stop(self) -> None:
        """Stop scheduling and cancel running jobs; takes effect on the loop's next turn."""
        if self._started:
            self._started = False
            self._scheduler.shutdown(wait=False)
