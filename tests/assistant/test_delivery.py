"""The sender: each row once, in order per chat, within limits; retries, gone, failed."""

from __future__ import annotations

import asyncio
import bisect
import datetime as dt
import logging
from pathlib import Path

import pytest

from assistant.delivery import Sender
from assistant.platform import PermanentFailure, RecipientGone, RetryLater
from assistant.ratelimit import TELEGRAM, PlatformLimiter, RateLimit, SlidingWindow
from assistant.store.db import Database
from assistant.store.outbox import Outbox, OutboxMessage
from assistant.store.residents import Residents
from tests.assistant.test_outbox import T0, FakeTime
from tests.fakes.recording_adapter import RecordingAdapter


@pytest.fixture
def db(tmp_path: Path) -> Database:
    database = Database(f"sqlite:///{tmp_path}/delivery.db")
    database.create_all()
    yield database
    database.dispose()


@pytest.fixture
def clock() -> FakeTime:
    return FakeTime()


@pytest.fixture
def outbox(db: Database, clock: FakeTime) -> Outbox:
    return Outbox(db, clock=clock)


@pytest.fixture
def adapter() -> RecordingAdapter:
    return RecordingAdapter("telegram")


def enqueue(outbox: Outbox, chat: str, text: str, **fields) -> None:
    assert outbox.enqueue(OutboxMessage(platform=fields.pop("platform", "telegram"), chat_id=chat,
                                        text=text, dedupe_key=f"{chat}:{text}", **fields))


def sender_for(db: Database, outbox: Outbox, adapter: RecordingAdapter, limits=None,
               **options) -> Sender:
    return Sender(db, outbox, {adapter.platform: adapter}, limits, "test-worker", **options)


async def drain(sender: Sender) -> int:
    total = 0
    while handled := await sender.drain_once():
        total += handled
    return total


async def test_every_row_is_sent_exactly_once_and_in_order_per_chat(db, outbox, adapter):
    for n in range(5):
        for chat in ("a", "b", "c"):
            enqueue(outbox, chat, f"{chat}{n}")
    sender = sender_for(db, outbox, adapter, batch_size=4)
    assert await drain(sender) == 15
    for chat in ("a", "b", "c"):
        assert adapter.texts(chat) == [f"{chat}{n}" for n in range(5)]
    assert len(adapter.sent) == 15
    assert outbox.counts()["sent"] == 15
    assert outbox.get(1).sent_at == T0


async def test_choices_reach_the_adapter(db, outbox, adapter):
    from assistant.messages import Choice

    enqueue(outbox, "a", "news", choices=(Choice("Lue", "news:1"),))
    captured = []
    original = adapter.send

    async def spy(chat_id, reply):
        captured.append(reply)
        return await original(chat_id, reply)

    adapter.send = spy
    await drain(sender_for(db, outbox, adapter))
    assert captured[0].choices == (Choice("Lue", "news:1"),)


async def test_sends_stay_within_the_global_window_and_the_chat_interval(db, outbox, adapter):
    limit = RateLimit(per_second_global=10, per_chat_interval_seconds=0.3,
                      per_group_per_minute=None)
    for n in range(12):
        enqueue(outbox, f"chat{n}", f"m{n}")
    for n in range(3):
        enqueue(outbox, "busy", f"busy{n}")
    sender = sender_for(db, outbox, adapter, {"telegram": limit})
    assert await drain(sender) == 15
    times = sorted(s.at for s in adapter.sent)
    assert max(bisect.bisect_left(times, t + 1.0) - i for i, t in enumerate(times)) <= 10
    busy = [s.at for s in adapter.sent if s.chat_id == "busy"]
    assert all(later - earlier >= 0.3 for earlier, later in zip(busy, busy[1:]))
    assert adapter.texts("busy") == ["busy0", "busy1", "busy2"]


async def test_a_chat_that_must_wait_long_gets_its_rows_back_for_later(db, outbox, adapter, clock):
    limit = RateLimit(per_second_global=None, per_chat_interval_seconds=10,
                      per_group_per_minute=None)
    for n in range(3):
        enqueue(outbox, "a", f"a{n}")
    enqueue(outbox, "b", "b0")
    sender = sender_for(db, outbox, adapter, {"telegram": limit})
    assert await sender.drain_once() == 4
    assert adapter.texts() == ["a0", "b0"]
    waiting = [outbox.get(2), outbox.get(3)]
    assert [(r.status, r.attempts) for r in waiting] == [("pending", 0), ("pending", 0)]
    assert all(r.not_before >= T0 + dt.timedelta(seconds=9) for r in waiting)
    assert await sender.drain_once() == 0


async def test_a_chat_with_many_rows_does_not_hold_up_the_batch(db, outbox, adapter):
    limit = RateLimit(per_second_global=None, per_chat_interval_seconds=0.2,
                      per_group_per_minute=None)
    for n in range(4):
        enqueue(outbox, "a", f"a{n}")
    sender = sender_for(db, outbox, adapter, {"telegram": limit}, max_chat_wait=0.3)
    assert await sender.drain_once() == 4
    assert adapter.texts() == ["a0", "a1"]
    assert [(outbox.get(n).status, outbox.get(n).attempts) for n in (3, 4)] == [
        ("pending", 0), ("pending", 0)]


async def test_a_group_gets_at_most_its_messages_per_minute(db, outbox, adapter):
    limit = RateLimit(per_second_global=None, per_chat_interval_seconds=0,
                      per_group_per_minute=2)
    for n in range(3):
        enqueue(outbox, "-100123", f"g{n}")
    sender = sender_for(db, outbox, adapter, {"telegram": limit})
    await drain(sender)
    assert adapter.texts() == ["g0", "g1"]
    assert outbox.get(3).not_before >= T0 + dt.timedelta(seconds=59)


async def test_retry_later_is_honoured_exactly(db, outbox, adapter, clock):
    enqueue(outbox, "a", "a0")
    adapter.fail("a", RetryLater(60, "flood"))
    sender = sender_for(db, outbox, adapter)
    assert await sender.drain_once() == 1
    row = outbox.get(1)
    assert (row.status, row.attempts, row.not_before) == (
        "pending", 1, T0 + dt.timedelta(seconds=60))
    assert row.last_error.startswith("RetryLater")
    clock.advance(59)
    assert await sender.drain_once() == 0
    clock.advance(1)
    sender.limiters["telegram"].paused_until = 0  # the monotonic pause ends with the fake minute
    assert await sender.drain_once() == 1
    assert adapter.texts() == ["a0"]
    assert outbox.get(1).status == "sent"


async def test_retry_later_pauses_the_whole_platform(db, outbox, adapter, clock):
    enqueue(outbox, "a", "a0")
    adapter.fail("a", RetryLater(30))
    sender = sender_for(db, outbox, adapter, {"telegram": TELEGRAM})
    await sender.drain_once()
    enqueue(outbox, "b", "b0")
    assert await sender.drain_once() == 1
    assert adapter.texts() == []
    row = outbox.get(2)
    assert (row.status, row.attempts) == ("pending", 0)
    assert row.not_before >= T0 + dt.timedelta(seconds=29)


async def test_recipient_gone_marks_row_gone_and_resident_inactive(db, outbox, adapter):
    residents = Residents(db)
    anna, _ = residents.get_or_create("telegram", "anna", "chat-anna", "fi")
    enqueue(outbox, "chat-anna", "n1", resident_id=anna.id)
    enqueue(outbox, "chat-anna", "n2", resident_id=anna.id)
    enqueue(outbox, "chat-ben", "n3")
    adapter.fail("chat-anna", RecipientGone("blocked"))
    sender = sender_for(db, outbox, adapter)
    await drain(sender)
    assert [outbox.get(n).status for n in (1, 2, 3)] == ["gone", "gone", "sent"]
    assert residents.by_id(anna.id).active is False
    assert adapter.attempts.count("chat-anna") == 1


async def test_a_later_row_of_a_gone_resident_is_not_sent(db, outbox, adapter):
    residents = Residents(db)
    anna, _ = residents.get_or_create("telegram", "anna", "chat-anna", "fi")
    enqueue(outbox, "chat-anna", "n1", resident_id=anna.id)
    adapter.fail("chat-anna", RecipientGone())
    sender = sender_for(db, outbox, adapter, batch_size=1)
    enqueue(outbox, "chat-anna", "n2", resident_id=anna.id)
    await drain(sender)
    assert outbox.counts()["gone"] == 2 and adapter.sent == []


async def test_permanent_failure_is_not_retried(db, outbox, adapter, clock):
    enqueue(outbox, "a", "a0")
    adapter.fail("a", PermanentFailure("Bad Request: chat not found"))
    sender = sender_for(db, outbox, adapter)
    await drain(sender)
    clock.advance(3600)
    assert await sender.drain_once() == 0
    row = outbox.get(1)
    assert (row.status, row.attempts) == ("failed", 1)
    assert "chat not found" in row.last_error


async def test_unknown_errors_back_off_then_fail_without_logging_the_text(
        db, outbox, adapter, clock, caplog):
    enqueue(outbox, "a", "secret news text")
    adapter.fail("a", *[ConnectionError("secret news text")] * 8)
    sender = sender_for(db, outbox, adapter, max_attempts=8)
    waits = []
    with caplog.at_level(logging.DEBUG, logger="assistant.delivery"):
        for _ in range(8):
            assert await sender.drain_once() == 1
            row = outbox.get(1)
            if row.status == "pending":
                waits.append((row.not_before - clock.now).total_seconds())
                clock.advance(waits[-1] - 0.5)
                assert await sender.drain_once() == 0
                clock.advance(0.5)
    assert waits == [1, 2, 4, 8, 16, 32, 64]
    row = outbox.get(1)
    assert (row.status, row.attempts, row.last_error) == ("failed", 8, "ConnectionError")
    assert adapter.sent == []
    assert "secret" not in caplog.text
    assert "ConnectionError" in caplog.text


async def test_a_send_that_hangs_times_out_and_is_retried(db, outbox, clock):
    slow = RecordingAdapter("telegram", delay=1.0)
    enqueue(outbox, "a", "a0")
    sender = sender_for(db, outbox, slow, lease_seconds=0.3)
    assert await sender.drain_once() == 1
    row = outbox.get(1)
    assert (row.status, row.last_error) == ("pending", "TimeoutError")


async def test_after_a_crash_unfinished_rows_are_sent_once_the_lease_expires(
        db, outbox, adapter, clock):
    for n in range(5):
        enqueue(outbox, f"chat{n}", f"m{n}")
    claimed = outbox.claim("crashed-worker", limit=5, lease_seconds=30)
    outbox.mark_sent(claimed[0].id)  # these two went out before the crash
    outbox.mark_sent(claimed[1].id)
    sender = sender_for(db, outbox, adapter)
    clock.advance(29)
    assert await sender.drain_once() == 0
    clock.advance(2)
    assert await drain(sender) == 3
    assert sorted(adapter.texts()) == ["m2", "m3", "m4"]
    assert outbox.counts()["sent"] == 5


async def test_a_delivery_that_cannot_be_recorded_stays_leased_for_a_resend(
        db, outbox, adapter, clock, caplog):
    enqueue(outbox, "a", "a0")

    def broken(row_ids):
        raise RuntimeError("disk full")

    outbox.mark_sent_many = broken
    sender = sender_for(db, outbox, adapter)
    assert await sender.drain_once() == 1
    assert outbox.get(1).status == "sending"
    assert "recording 1 deliveries failed" in caplog.text


async def test_rows_for_a_platform_without_adapter_stay_pending(db, outbox, adapter):
    enqueue(outbox, "!room:example.org", "m0", platform="matrix")
    enqueue(outbox, "a", "a0")
    assert await drain(sender_for(db, outbox, adapter)) == 1
    assert outbox.get(1).status == "pending"


async def test_sends_run_concurrently_within_the_bound(db, outbox):
    slow = RecordingAdapter("telegram", delay=0.05)
    for n in range(20):
        enqueue(outbox, f"chat{n}", f"m{n}")
    sender = sender_for(db, outbox, slow, concurrency=4, batch_size=20)
    assert await drain(sender) == 20
    assert slow.max_in_flight == 4


class SlowChats(RecordingAdapter):
    """Each chat's sends take their own time (default 0); `log` has (chat, "start"/"end")."""

    def __init__(self, delays: dict[str, float]):
        super().__init__("telegram")
        self.delays, self.log = delays, []

    async def send(self, chat_id, reply):
        self.log.append((chat_id, "start"))
        try:
            await asyncio.sleep(self.delays.get(chat_id, 0.0))
            return await super().send(chat_id, reply)
        finally:
            self.log.append((chat_id, "end"))


async def run_until(sender: Sender, done, timeout: float = 5.0) -> None:
    """`sender.run()` until `done()` holds, then stop it (its batches finish first)."""
    stop = asyncio.Event()
    task = asyncio.create_task(sender.run(stop))
    for _ in range(int(timeout / 0.01)):
        if done():
            break
        await asyncio.sleep(0.01)
    stop.set()
    await asyncio.wait_for(task, timeout)


async def test_run_claims_the_next_batch_while_one_is_still_sending(db, outbox):
    slow = SlowChats({"chat0": 0.3})
    for n in range(20):
        enqueue(outbox, f"chat{n}", f"m{n}")
    sender = sender_for(db, outbox, slow, batch_size=10, poll_seconds=0.01)
    await run_until(sender, lambda: len(slow.sent) == 20)
    assert sorted(slow.texts()) == sorted(f"m{n}" for n in range(20))
    # The second batch went out while the first batch's slow send was still under way.
    assert slow.log.index(("chat19", "end")) < slow.log.index(("chat0", "end"))
    assert outbox.counts()["sent"] == 20


async def test_a_chats_rows_in_a_later_batch_wait_for_those_in_an_earlier_one(db, outbox):
    slow = SlowChats({"a": 0.2})  # a0 is still out when a1's batch is claimed
    for n in range(3):
        enqueue(outbox, "a", f"a{n}")
        enqueue(outbox, f"x{n}", f"x{n}")
    sender = sender_for(db, outbox, slow, batch_size=2, poll_seconds=0.01)
    await run_until(sender, lambda: len(slow.sent) == 6)
    assert slow.texts("a") == ["a0", "a1", "a2"]
    chat_a = [event for chat, event in slow.log if chat == "a"]
    assert chat_a == ["start", "end"] * 3  # never two of its sends at once
    assert outbox.counts()["sent"] == 6


async def test_a_retried_row_holds_back_its_chats_rows_of_a_later_batch(db, outbox, clock):
    slow = SlowChats({"a": 0.2})
    slow.fail("a", RetryLater(60))
    for text in ("a0", "x0", "a1", "y0"):
        enqueue(outbox, "a" if text.startswith("a") else text, text)
    sender = sender_for(db, outbox, slow, batch_size=2, poll_seconds=0.01)
    await run_until(sender, lambda: sender.results["deferred"] == 1 and len(slow.sent) == 2)
    assert sorted(slow.texts()) == ["x0", "y0"]
    first, later = outbox.get(1), outbox.get(3)
    assert (first.status, later.status, later.attempts) == ("pending", "pending", 0)
    assert later.not_before == first.not_before == T0 + dt.timedelta(seconds=60)


async def test_on_stop_the_rows_not_yet_started_go_back_due_at_once(db, outbox):
    slow = RecordingAdapter("telegram", delay=0.2)
    for n in range(10):
        enqueue(outbox, f"chat{n}", f"m{n}")
    sender = sender_for(db, outbox, slow, concurrency=2)
    await run_until(sender, lambda: slow.in_flight == 2)
    assert slow.texts() == ["m0", "m1"]  # the two under way were finished and recorded
    assert outbox.counts() == {"pending": 8, "sending": 0, "sent": 2, "failed": 0, "gone": 0}
    assert {(outbox.get(n).attempts, outbox.get(n).not_before) for n in range(3, 11)} == {
        (0, T0)}


async def test_run_wakes_early_and_stops_on_request(db, outbox, adapter):
    sender = sender_for(db, outbox, adapter, poll_seconds=30)
    stop = asyncio.Event()
    task = asyncio.create_task(sender.run(stop))
    await asyncio.sleep(0.05)
    enqueue(outbox, "a", "a0")
    sender.wake()
    for _ in range(100):
        if adapter.sent:
            break
        await asyncio.sleep(0.01)
    assert adapter.texts() == ["a0"]
    stop.set()
    await asyncio.wait_for(task, timeout=2)


async def test_run_keeps_going_after_a_failed_drain(db, outbox, adapter, caplog):
    sender = sender_for(db, outbox, adapter, poll_seconds=0.01)
    real_claim, calls = outbox.claim, []

    def flaky_claim(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("database is locked")
        return real_claim(*args, **kwargs)

    outbox.claim = flaky_claim
    enqueue(outbox, "a", "a0")
    stop = asyncio.Event()
    task = asyncio.create_task(sender.run(stop))
    for _ in range(200):
        if adapter.sent:
            break
        await asyncio.sleep(0.01)
    stop.set()
    await asyncio.wait_for(task, timeout=2)
    assert adapter.texts() == ["a0"]
    assert "outbox drain failed" in caplog.text


async def test_a_mixed_batch_on_postgresql(fresh_postgres_url: str, clock):
    db = Database(fresh_postgres_url)
    db.create_all()
    outbox, adapter = Outbox(db, clock=clock), RecordingAdapter("telegram")
    anna, _ = Residents(db).get_or_create("telegram", "anna", "chat-anna", "fi")
    for n in range(3):
        enqueue(outbox, f"chat{n}", f"m{n}")
    enqueue(outbox, "chat-anna", "a0", resident_id=anna.id)
    enqueue(outbox, "chat-anna", "a1", resident_id=anna.id)
    adapter.fail("chat-anna", RecipientGone())
    adapter.fail("chat1", RetryLater(5))
    sender = sender_for(db, outbox, adapter)
    assert await drain(sender) == 5
    assert outbox.counts() == {"pending": 1, "sending": 0, "sent": 2, "failed": 0, "gone": 2}
    assert Residents(db).by_id(anna.id).active is False
    clock.advance(5)
    sender.limiters["telegram"].paused_until = 0
    assert await drain(sender) == 1
    assert sorted(adapter.texts()) == ["m0", "m1", "m2"]
    db.dispose()


def test_sliding_window_never_exceeds_its_count():
    window = SlidingWindow(limit=3, span=1.0)
    now, sent = 0.0, []
    while len(sent) < 10:
        wait = window.wait(now)
        if wait:
            now += wait
            continue
        window.record(now)
        sent.append(now)
    assert all(later - earlier > 1.0 for earlier, later in zip(sent, sent[3:]))


def test_limiter_pause_and_chat_interval():
    now = [100.0]
    limiter = PlatformLimiter(TELEGRAM, clock=lambda: now[0])
    limiter.record("123", now[0])
    assert 1.0 <= limiter.chat_wait("123", now[0]) <= 1.05
    assert limiter.chat_wait("456", now[0]) == 0
    limiter.pause(5)
    assert limiter.overall_wait(now[0]) == 5
    now[0] += 5
    assert limiter.overall_wait(now[0]) == 0
    limiter.forget_idle(now[0])
    assert limiter.chat_wait("123", now[0]) == 0
