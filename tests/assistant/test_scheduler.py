"""The job scheduler wrapper: named jobs, UTC times, failures logged, no overlapping runs."""

from __future__ import annotations

import asyncio
import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from assistant.scheduler import Scheduler


@pytest.fixture
async def scheduler():
    jobs = Scheduler()
    yield jobs
    jobs.stop()
    await asyncio.sleep(0)


async def test_a_failing_interval_job_is_logged_and_keeps_running(scheduler, caplog):
    runs = []

    async def broken() -> None:
        runs.append(1)
        raise ValueError("feed unreachable")

    scheduler.add_interval("feeds", broken, 0.05, start_now=True)
    scheduler.start()
    await asyncio.sleep(0.4)
    assert len(runs) >= 3
    assert "scheduled job feeds failed" in caplog.text
    assert scheduler.names() == ["feeds"]


async def test_adding_a_name_again_replaces_the_job(scheduler):
    calls = []

    async def old() -> None:
        calls.append("old")

    async def new() -> None:
        calls.append("new")

    scheduler.add_interval("drain", old, 0.05, start_now=True)
    scheduler.add_interval("drain", new, 0.05, start_now=True)
    scheduler.start()
    await asyncio.sleep(0.2)
    assert scheduler.names() == ["drain"]
    assert calls and set(calls) == {"new"}


async def test_runs_of_one_job_never_overlap(scheduler):
    running, overlaps, runs = [0], [], []

    async def slow() -> None:
        running[0] += 1
        overlaps.append(running[0])
        await asyncio.sleep(0.15)
        running[0] -= 1
        runs.append(1)

    scheduler.add_interval("slow", slow, 0.02, start_now=True)
    scheduler.start()
    await asyncio.sleep(0.5)
    assert runs and max(overlaps) == 1


async def test_daily_job_runs_at_local_wall_clock_time_kept_in_utc(scheduler):
    async def digest() -> None:
        pass

    scheduler.add_daily("digest", digest, hour=7, minute=30, timezone="Europe/Helsinki")
    scheduler.start()
    when = scheduler.next_run("digest")
    assert when.tzinfo == dt.timezone.utc
    local = when.astimezone(ZoneInfo("Europe/Helsinki"))
    assert (local.hour, local.minute) == (7, 30)
    assert dt.timedelta(0) < when - dt.datetime.now(dt.timezone.utc) <= dt.timedelta(days=1)


async def test_stop_ends_scheduling_and_remove_forgets_a_job(scheduler):
    runs = []

    async def tick() -> None:
        runs.append(1)

    scheduler.add_interval("tick", tick, 0.05, start_now=True)
    scheduler.add_interval("other", tick, 60)
    scheduler.remove("other")
    assert scheduler.names() == ["tick"]
    scheduler.start()
    await asyncio.sleep(0.12)
    scheduler.stop()
    await asyncio.sleep(0.01)
    assert not scheduler.running
    count = len(runs)
    await asyncio.sleep(0.15)
    assert len(runs) == count
