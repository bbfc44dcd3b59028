"""The storage layer behaves the same on SQLite and on a real PostgreSQL (tests/pg.py)."""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
from collections import Counter
from typing import Callable, Iterator

import pytest
from sqlmodel import select

from assistant.delivery import Sender
from assistant.joblock import once, run_once
from assistant.store import migrate
from assistant.store.db import Database
from assistant.store.feedback import FeedbackItem, FeedbackStore
from assistant.store.news import NewsItem, NewsItems, Subscriptions
from assistant.store.outbox import Outbox, OutboxMessage, OutboxRow
from assistant.store.residents import Resident, Residents
from tests import pg
from tests.fakes.recording_adapter import RecordingAdapter

T0 = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.timezone.utc)


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    database.create_all()
    yield database
    database.dispose()


def message(n: int, **fields) -> OutboxMessage:
    return OutboxMessage(platform="telegram", chat_id=str(n), text=f"news {n}",
                         dedupe_key=f"news:1:r:{n}", **fields)


def add(outbox: Outbox, messages: list[OutboxMessage]) -> int:
    with outbox.db.session() as session:
        return outbox.add(session, messages)


def in_threads(count: int, work: Callable[[int], None]) -> None:
    """Run `work(0..count-1)` in threads at once; re-raise the first failure."""
    errors: list[BaseException] = []

    def guarded(n: int) -> None:
        try:
            work(n)
        except BaseException as error:  # noqa: BLE001  (reported to the test below)
            errors.append(error)

    threads = [threading.Thread(target=guarded, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    if errors:
        raise errors[0]


# residents ----------------------------------------------------------------------

def test_resident_is_created_once_and_keeps_its_language(db: Database):
    residents = Residents(db)
    anna, new = residents.get_or_create("telegram", "42", "42", "fi")
    again, new_again = residents.get_or_create("telegram", "42", "42", "sv")
    assert (new, new_again, again.id) == (True, False, anna.id)
    residents.set_language(anna.id, "sv")
    stored = Residents(db).by_id(anna.id)
    assert (stored.language, stored.language_chosen, stored.first_seen.tzinfo is not None) == (
        "sv", True, True)


# feedback -------------------------------------------------------------------------

def test_feedback_references_stay_unique_under_concurrent_writers(db: Database, database_url: str):
    references: list[str] = []

    def file_five(n: int) -> None:
        store = FeedbackStore(Database(database_url))  # its own engine, as another worker has
        for k in range(5):
            references.append(store.file(None, "idea", f"idea {n}.{k}", None, False).reference)
        store.db.dispose()

    in_threads(4, file_five)
    stored = [item.reference for item in FeedbackStore(db).all_items()]
    assert sorted(stored) == sorted(references)
    assert len(set(stored)) == 20
    numbers = sorted(int(reference.rsplit("-", 1)[1]) for reference in stored)
    assert numbers == list(range(1, 21))


# outbox -----------------------------------------------------------------------------

def test_outbox_add_skips_duplicates_and_records_each_result(db: Database):
    outbox = Outbox(db, clock=lambda: T0)
    assert add(outbox, [message(n) for n in range(1, 6)]) == 5
    assert add(outbox, [message(5), message(6)]) == 1
    rows = outbox.claim("w1", 10, 30)
    assert [r.chat_id for r in rows] == ["1", "2", "3", "4", "5", "6"]
    outbox.mark_sent(rows[0].id)
    outbox.mark_retry(rows[1].id, 60, "TimedOut")
    outbox.mark_gone(rows[2].id, "Forbidden")
    outbox.mark_failed(rows[3].id, "BadRequest")
    assert Outbox(db).counts() == {"pending": 1, "sending": 2, "sent": 1, "failed": 1, "gone": 1}
    retried = outbox.get(rows[1].id)
    assert (retried.status, retried.attempts, retried.not_before) == (
        "pending", 1, T0 + dt.timedelta(seconds=60))
    assert outbox.get(rows[0].id).sent_at == T0


def test_concurrent_claimers_never_get_the_same_row(db: Database, database_url: str):
    add(Outbox(db), [message(n) for n in range(1, 1201)])
    claimed: dict[int, list[int]] = {n: [] for n in range(3)}

    def drain(n: int) -> None:
        outbox = Outbox(Database(database_url))
        while rows := outbox.claim(f"w{n}", limit=25, lease_seconds=60):
            assert len(rows) <= 25
            claimed[n].extend(r.id for r in rows)
        outbox.db.dispose()

    in_threads(3, drain)
    everything = [row_id for ids in claimed.values() for row_id in ids]
    assert len(everything) == len(set(everything)) == 1200
    assert Outbox(db).counts()["sending"] == 1200


def test_a_crashed_workers_rows_are_taken_over_after_the_lease(db: Database):
    outbox = Outbox(db)
    add(outbox, [message(n, not_before=T0) for n in range(1, 4)])
    crashed = outbox.claim("crashed", 10, lease_seconds=30, now=T0)
    assert len(crashed) == 3
    assert outbox.claim("survivor", 10, 30, now=T0 + dt.timedelta(seconds=29)) == []
    taken = outbox.claim("survivor", 10, 30, now=T0 + dt.timedelta(seconds=31))
    assert sorted(r.id for r in taken) == sorted(r.id for r in crashed)
    with db.session() as session:
        rows = session.exec(select(OutboxRow)).all()
    assert {(r.claimed_by, r.attempts, r.status) for r in rows} == {("survivor", 2, "sending")}


async def test_two_senders_deliver_every_row_exactly_once(db: Database, database_url: str):
    add(Outbox(db), [message(n) for n in range(1, 301)])
    adapter = RecordingAdapter("telegram", delay=0.001)
    engines = [Database(database_url) for _ in range(2)]
    senders = [Sender(engine, Outbox(engine), {"telegram": adapter}, None, f"w{n}", batch_size=20)
               for n, engine in enumerate(engines)]

    async def drain(sender: Sender) -> None:
        while await sender.drain_once():
            pass

    await asyncio.gather(*(drain(sender) for sender in senders))
    for engine in engines:
        engine.dispose()
    assert Counter(s.chat_id for s in adapter.sent) == {str(n): 1 for n in range(1, 301)}
    assert Outbox(db).counts()["sent"] == 300
    assert all(sender.results["sent"] > 0 for sender in senders)


# subscriptions and news -----------------------------------------------------------

def test_subscribers_of_a_district_are_the_active_followers(db: Database):
    residents, subscriptions = Residents(db), Subscriptions(db)
    anna, _ = residents.get_or_create("telegram", "1", "1", "fi")
    ben, _ = residents.get_or_create("matrix", "@ben:x", "!room:x", "sv")
    cecilia, _ = residents.get_or_create("telegram", "3", "3", "en")
    subscriptions.add(anna.id, "leppavaara")
    subscriptions.add(ben.id, "leppavaara")
    subscriptions.add(ben.id, "tapiola")
    subscriptions.add(cecilia.id, "leppavaara")
    residents.mark_inactive("telegram", "3")
    with db.session() as session:
        found = subscriptions.for_district(session, ["leppavaara", "tapiola"])
    assert sorted((r.resident_id, r.chat_id) for r in found) == [
        (anna.id, "1"), (ben.id, "!room:x")]
    assert subscriptions.of_resident(ben.id) == ["leppavaara", "tapiola"]


def test_news_item_and_its_outbox_rows_commit_or_vanish_together(db: Database):
    items, outbox = NewsItems(db), Outbox(db)
    with db.session() as session:
        item = items.add(session, "tapiola", "Asukasilta torstaina")
        outbox.add(session, [message(n, news_item_id=item.id) for n in range(1, 4)])
    with pytest.raises(RuntimeError), db.session() as session:
        doomed = items.add(session, "tapiola", "never published")
        outbox.add(session, [message(n + 10, news_item_id=doomed.id) for n in range(1, 4)])
        raise RuntimeError("crash before commit")
    with db.session() as session:
        assert [i.text for i in session.exec(select(NewsItem))] == ["Asukasilta torstaina"]
    assert outbox.counts(news_item_id=item.id)["pending"] == 3
    assert sum(Outbox(db).counts().values()) == 3


# scheduled jobs -------------------------------------------------------------------

def test_only_one_of_two_concurrent_holders_runs_a_job_on_postgresql(db: Database,
                                                                     database_url: str):
    ran: list[bool] = []
    both_inside = threading.Barrier(2, timeout=10)

    def hold(n: int) -> None:
        worker_db = Database(database_url)
        with run_once(worker_db, "poll_feeds") as mine:
            ran.append(mine)
            both_inside.wait()
        worker_db.dispose()

    in_threads(2, hold)
    expected = [True, True] if db.is_sqlite else [False, True]
    assert sorted(ran) == expected
    with run_once(db, "poll_feeds") as mine:  # released afterwards
        assert mine


def test_a_job_that_ran_recently_elsewhere_is_skipped_on_postgresql(db: Database):
    with run_once(db, "digests", min_interval=3000, now=T0) as first:
        assert first
    with run_once(db, "digests", min_interval=3000, now=T0 + dt.timedelta(minutes=10)) as early:
        assert early is db.is_sqlite
    with run_once(db, "digests", min_interval=3000, now=T0 + dt.timedelta(minutes=55)) as due:
        assert due


async def test_a_scheduled_job_runs_in_one_worker_per_firing(db: Database, database_url: str):
    ran: list[int] = []

    def job_of(worker: int):
        async def poll() -> None:
            ran.append(worker)
            await asyncio.sleep(0.05)  # the other worker fires meanwhile
        return poll

    engines = [Database(database_url) for _ in range(2)]
    jobs = [once(engine, "poll_feeds", job_of(n), min_interval=60) for n, engine in
            enumerate(engines)]
    await asyncio.gather(*(job() for job in jobs))
    await jobs[1]()  # a later firing within min_interval
    for engine in engines:
        engine.dispose()
    assert len(ran) == (3 if db.is_sqlite else 1)


# schema ---------------------------------------------------------------------------

def test_db_upgrade_from_empty_matches_the_models(database_url: str):
    db = Database(database_url)
    try:
        assert migrate.upgrade(db) == migrate.head()
        assert migrate.differences(db) == []
        resident, _ = Residents(db).get_or_create("telegram", "1", "1", "fi")
        with db.session() as session:
            assert session.get(Resident, resident.id).platform == "telegram"
            assert session.exec(select(FeedbackItem)).all() == []
    finally:
        db.dispose()


def test_a_new_database_is_created_as_the_newest_revision(db: Database):
    assert migrate.current(db) == migrate.head()
    assert migrate.differences(db) == []


def test_missing_postgresql_fails_the_tests_with_what_to_do(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(pg, "find_bindir", lambda: None)
    with pytest.raises(pytest.fail.Exception, match="scripts/test-services.sh"):
        pg.start_cluster()
