"""The outbox repository: enqueue with dedupe, atomic claims with leases, results, housekeeping."""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path

import pytest
from sqlalchemy import event
from sqlalchemy.dialects import postgresql
from sqlmodel import select

from assistant.messages import Choice
from assistant.store.db import Database
from assistant.store.outbox import Outbox, OutboxMessage, OutboxRow
from assistant.store.residents import Resident, Residents

T0 = dt.datetime(2025, 3, 1, 12, 0, tzinfo=dt.timezone.utc)


class FakeTime:
    """A settable UTC clock for the outbox."""

    def __init__(self, start: dt.datetime = T0):
        self.now = start

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += dt.timedelta(seconds=seconds)


@pytest.fixture
def db(database_url: str) -> Database:
    database = Database(database_url)
    database.create_all()
    yield database
    database.dispose()


@pytest.fixture
def clock() -> FakeTime:
    return FakeTime()


@pytest.fixture
def outbox(db: Database, clock: FakeTime) -> Outbox:
    return Outbox(db, clock=clock)


def message(n: int, chat: str = "", **fields) -> OutboxMessage:
    return OutboxMessage(platform=fields.pop("platform", "telegram"), chat_id=chat or f"chat-{n}",
                         text=f"news {n}", dedupe_key=f"news:1:r:{n}", **fields)


def add(outbox: Outbox, messages: list[OutboxMessage]) -> int:
    with outbox.db.session() as session:
        return outbox.add(session, messages)


def statuses(db: Database) -> dict[int, str]:
    with db.session() as session:
        return {row.id: row.status for row in session.exec(select(OutboxRow))}


def test_add_skips_duplicate_dedupe_keys_and_counts_inserted(outbox: Outbox):
    assert add(outbox, [message(1), message(2), message(3)]) == 3
    assert add(outbox, [message(2), message(3), message(4)]) == 1
    assert outbox.counts()["pending"] == 4


def test_add_duplicates_within_one_call_are_inserted_once(outbox: Outbox):
    assert add(outbox, [message(1), message(1)]) == 1
    assert outbox.counts()["pending"] == 1


def test_add_is_part_of_the_callers_transaction(outbox: Outbox):
    with pytest.raises(RuntimeError):
        with outbox.db.session() as session:
            outbox.add(session, [message(1)])
            raise RuntimeError("the news item failed to store")
    assert outbox.counts()["pending"] == 0


def test_enqueue_returns_false_when_the_key_exists(outbox: Outbox):
    assert outbox.enqueue(message(1)) is True
    assert outbox.enqueue(message(1)) is False
    assert outbox.counts()["pending"] == 1


def test_add_stores_fields_choices_and_due_time(outbox: Outbox, clock: FakeTime):
    later = T0 + dt.timedelta(hours=8)
    add(outbox, [message(1, news_item_id=7, not_before=later,
                         choices=(Choice("Lue lisää", "news:7"), Choice("Peru", "unsub:3")))])
    add(outbox, [message(2)])
    first, second = outbox.get(1), outbox.get(2)
    assert (first.platform, first.chat_id, first.text, first.news_item_id) == (
        "telegram", "chat-1", "news 1", 7)
    assert first.choice_list() == (Choice("Lue lisää", "news:7"), Choice("Peru", "unsub:3"))
    assert first.not_before == later and first.created_at == T0
    assert second.not_before == T0 and second.choice_list() == ()


def test_claim_leases_due_rows_oldest_first(outbox: Outbox):
    add(outbox, [message(n) for n in range(1, 6)])
    rows = outbox.claim("w1", limit=2, lease_seconds=30)
    assert [r.id for r in rows] == [1, 2]
    stored = outbox.get(1)
    assert (stored.status, stored.claimed_by, stored.attempts) == ("sending", "w1", 1)
    assert stored.lease_until == T0 + dt.timedelta(seconds=30)
    assert [r.id for r in outbox.claim("w2", limit=10, lease_seconds=30)] == [3, 4, 5]
    assert outbox.claim("w3", limit=10, lease_seconds=30) == []


def test_claim_waits_for_not_before(outbox: Outbox, clock: FakeTime):
    add(outbox, [message(1, not_before=T0 + dt.timedelta(hours=8)), message(2)])
    assert [r.id for r in outbox.claim("w", 10, 30)] == [2]
    outbox.mark_sent(2)
    clock.advance(8 * 3600 - 1)
    assert outbox.claim("w", 10, 30) == []
    clock.advance(1)
    assert [r.id for r in outbox.claim("w", 10, 30)] == [1]


def test_a_row_is_due_at_exactly_its_not_before(outbox: Outbox, db: Database):
    add(outbox, [message(1, not_before=T0 + dt.timedelta(seconds=5))])
    assert outbox.claim("w", 10, 30, now=T0 + dt.timedelta(seconds=5)) != []
    with db.engine.connect() as connection:  # stored as SQLAlchemy itself stores timestamps
        raw = connection.exec_driver_sql("SELECT not_before, created_at FROM outbox").one()
    assert outbox.get(1).created_at == T0
    if db.is_sqlite:
        assert raw[1] == "2025-03-01 12:00:00.000000"


def test_claim_takes_back_rows_of_an_expired_lease_only(outbox: Outbox, clock: FakeTime):
    add(outbox, [message(1)])
    assert len(outbox.claim("crashed", 10, lease_seconds=30)) == 1
    clock.advance(29)
    assert outbox.claim("w2", 10, 30) == []
    clock.advance(2)
    rows = outbox.claim("w2", 10, 30)
    assert [(r.id, r.claimed_by, r.attempts) for r in rows] == [(1, "w2", 2)]


def test_claim_filters_by_platform(outbox: Outbox):
    add(outbox, [message(1, platform="matrix"), message(2)])
    assert [r.id for r in outbox.claim("w", 10, 30, platforms=["telegram"])] == [2]
    assert outbox.get(1).status == "pending"


def test_sent_rows_are_never_claimed_again(outbox: Outbox, clock: FakeTime):
    add(outbox, [message(1)])
    (row,) = outbox.claim("w", 10, 30)
    outbox.mark_sent(row.id)
    clock.advance(3600)
    assert outbox.claim("w", 10, 30) == []
    stored = outbox.get(row.id)
    assert (stored.status, stored.sent_at, stored.lease_until) == ("sent", T0, None)


def test_mark_retry_makes_the_row_due_after_the_wait(outbox: Outbox, clock: FakeTime):
    add(outbox, [message(1)])
    (row,) = outbox.claim("w", 10, 30)
    outbox.mark_retry(row.id, 60, "RetryLater: flood")
    stored = outbox.get(row.id)
    assert (stored.status, stored.last_error) == ("pending", "RetryLater: flood")
    assert stored.not_before == T0 + dt.timedelta(seconds=60)
    clock.advance(59.9)
    assert outbox.claim("w", 10, 30) == []
    clock.advance(0.1)
    assert [r.attempts for r in outbox.claim("w", 10, 30)] == [2]


def test_a_late_failure_does_not_undo_a_sent_row(outbox: Outbox):
    add(outbox, [message(1)])
    (row,) = outbox.claim("w", 10, 30)
    outbox.mark_sent(row.id)
    outbox.mark_retry(row.id, 1, "late")
    outbox.mark_failed(row.id, "late")
    outbox.mark_gone(row.id, "late")
    assert outbox.get(row.id).status == "sent"


def test_mark_failed_and_gone_are_final(outbox: Outbox, clock: FakeTime):
    add(outbox, [message(1), message(2)])
    first, second = outbox.claim("w", 10, 30)
    outbox.mark_failed(first.id, "PermanentFailure: bad request")
    outbox.mark_gone(second.id, "RecipientGone")
    clock.advance(3600)
    assert outbox.claim("w", 10, 30) == []
    assert statuses(outbox.db) == {1: "failed", 2: "gone"}
    assert outbox.get(1).last_error == "PermanentFailure: bad request"


def test_release_gives_rows_back_without_using_an_attempt(outbox: Outbox, clock: FakeTime):
    add(outbox, [message(1)])
    (row,) = outbox.claim("w", 10, 30)
    assert outbox.release([row.id], T0 + dt.timedelta(seconds=5)) == 1
    stored = outbox.get(row.id)
    assert (stored.status, stored.attempts, stored.claimed_by) == ("pending", 0, None)
    clock.advance(5)
    assert [r.id for r in outbox.claim("w", 10, 30)] == [row.id]


def test_concurrent_claimers_never_get_the_same_row(tmp_path: Path):
    url = f"sqlite:///{tmp_path}/shared.db"
    setup = Database(url)
    setup.create_all()
    add(Outbox(setup), [message(n) for n in range(1, 1501)])
    claimed: dict[str, list[int]] = {"a": [], "b": []}

    def worker(name: str) -> None:
        outbox = Outbox(Database(url))  # its own engine, as another process would have
        while rows := outbox.claim(name, limit=20, lease_seconds=60):
            claimed[name].extend(r.id for r in rows)

    threads = [threading.Thread(target=worker, args=(name,)) for name in claimed]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    a, b = set(claimed["a"]), set(claimed["b"])
    assert not a & b
    assert a | b == set(range(1, 1501))
    assert len(claimed["a"]) + len(claimed["b"]) == 1500
    assert Outbox(setup).counts()["sending"] == 1500


def test_counts_per_news_item(outbox: Outbox):
    add(outbox, [message(1, news_item_id=7), message(2, news_item_id=7),
                 message(3, news_item_id=8)])
    (row, *_) = outbox.claim("w", 1, 30)
    outbox.mark_sent(row.id)
    assert outbox.counts(news_item_id=7) == {
        "pending": 1, "sending": 0, "sent": 1, "failed": 0, "gone": 0}
    assert outbox.counts()["pending"] == 2


def make_resident(db: Database, name: str) -> Resident:
    resident, _ = Residents(db).get_or_create("telegram", name, f"chat-{name}", "fi")
    return resident


def test_delete_for_resident_removes_their_undelivered_rows_only(outbox: Outbox, db: Database):
    anna, ben = make_resident(db, "anna"), make_resident(db, "ben")
    add(outbox, [message(1, resident_id=anna.id), message(2, resident_id=anna.id),
                 message(3, resident_id=anna.id), message(4, resident_id=ben.id)])
    first, second = outbox.claim("w", 2, 30)
    outbox.mark_sent(first.id)
    assert outbox.delete_for_resident(anna.id) == 2
    assert statuses(db) == {1: "sent", 4: "pending"}


def test_deleting_a_resident_deletes_their_rows(outbox: Outbox, db: Database):
    anna = make_resident(db, "anna")
    add(outbox, [message(1, resident_id=anna.id), message(2)])
    with db.session() as session:
        session.delete(session.get(Resident, anna.id))
    assert set(statuses(db)) == {2}


def test_mark_resident_gone_drops_their_queued_rows(outbox: Outbox, db: Database):
    anna = make_resident(db, "anna")
    add(outbox, [message(1, resident_id=anna.id), message(2, resident_id=anna.id), message(3)])
    (first, *_) = outbox.claim("w", 1, 30)
    outbox.mark_sent(first.id)
    assert outbox.mark_resident_gone(anna.id, "RecipientGone") == 1
    assert statuses(db) == {1: "sent", 2: "gone", 3: "pending"}


def test_prune_sent_deletes_only_old_finished_rows(outbox: Outbox, db: Database, clock: FakeTime):
    add(outbox, [message(n) for n in range(1, 5)])
    rows = outbox.claim("w", 3, 30)
    outbox.mark_sent(rows[0].id)
    outbox.mark_failed(rows[1].id, "x")
    outbox.mark_gone(rows[2].id, "x")
    clock.advance(86400)
    add(outbox, [message(5, not_before=T0)])
    (old_pending, fresh) = outbox.claim("w", 10, 30)
    outbox.release([old_pending.id], clock.now)
    outbox.mark_sent(fresh.id)
    assert outbox.prune_sent(older_than=T0 + dt.timedelta(hours=1)) == 3
    assert statuses(db) == {4: "pending", 5: "sent"}


def test_claim_on_postgresql_locks_with_skip_locked():
    outbox = Outbox.__new__(Outbox)
    stmt = outbox._claim_statement("postgresql", "w", 10, T0, T0, ["telegram"])
    sql = str(stmt.compile(dialect=postgresql.psycopg.dialect()))
    assert "FOR UPDATE SKIP LOCKED" in sql and "RETURNING" in sql


def test_concurrent_claimers_on_postgresql_skip_each_others_rows(fresh_postgres_url: str):
    db = Database(fresh_postgres_url)
    db.create_all()
    outbox = Outbox(db)
    assert add(outbox, [message(n) for n in range(1, 401)]) == 400
    claimed: list[list[int]] = [[], []]

    def worker(index: int) -> None:
        while rows := outbox.claim(f"w{index}", 7, 30):
            claimed[index].extend(r.id for r in rows)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not set(claimed[0]) & set(claimed[1])
    assert set(claimed[0]) | set(claimed[1]) == set(range(1, 401))
    db.dispose()


def test_a_claim_on_postgresql_walks_the_due_index_even_before_analyze(fresh_postgres_url: str):
    """Right after a large enqueue the statistics say few rows are due: a claim must still
    read only the rows it takes (in index order), not read and sort all the due ones.
    (At this size, and with the platform filter the Sender uses, the planner sorts.)"""
    db = Database(fresh_postgres_url)
    db.create_all()
    outbox = Outbox(db)
    news = "Leppävaara: asukasilta torstaina klo 18 Sellon kirjastossa. " * 3
    assert add(outbox, [OutboxMessage("telegram", str(n), news, f"news:{n}")
                        for n in range(1, 20_001)]) == 20_000
    executed: list[tuple[str, object]] = []

    def record(_conn, _cursor, statement, parameters, _context, _executemany) -> None:
        executed.append((statement, parameters))

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        assert [r.id for r in outbox.claim("w", 100, 30, platforms=["telegram"])] == list(
            range(1, 101))
    finally:
        event.remove(db.engine, "before_cursor_execute", record)
    plan: list[str] = []
    with db.engine.begin() as connection:  # the claim's statements again, the UPDATE explained
        for statement, parameters in executed:
            if statement.lstrip().upper().startswith("UPDATE"):
                plan = [line for (line,) in connection.exec_driver_sql(
                    "EXPLAIN " + statement, parameters)]  # type: ignore[arg-type]
            else:
                connection.exec_driver_sql(statement, parameters)  # type: ignore[arg-type]
    shown = "\n".join(plan)
    assert "Index Scan using ix_outbox_due" in shown and "Sort" not in shown, shown
    db.dispose()
