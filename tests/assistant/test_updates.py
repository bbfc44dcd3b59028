"""The update log: intake stores, a redelivery is dropped, handling clears the payload,
a dead process's updates are claimed once their lease ran out, by one claimer only."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from sqlmodel import select

from assistant.store.db import Database
from assistant.store.updates import (MAX_ATTEMPTS, Entry, ProcessedUpdate, Updates, UpdateLog,
                                     sender_hash)

NOW = dt.datetime(2026, 11, 28, 12, 0, tzinfo=dt.timezone.utc)
LATER = NOW + dt.timedelta(seconds=31)  # past the 30 s lease


@pytest.fixture
def db(database_url: str) -> Database:
    database = Database(database_url)
    database.create_all()
    yield database
    database.dispose()


def entry(key: int | str, sender: str = "4711") -> Entry:
    return Entry(str(key), f'{{"update_id": {key}}}', sender)


def row(db: Database, platform: str, key: str) -> ProcessedUpdate | None:
    with db.session() as session:
        return session.get(ProcessedUpdate, (platform, key))


def test_intake_stores_the_batch_pending_with_payload_sender_and_lease(db: Database):
    log = Updates(db).of("telegram")
    assert log.take([entry(1), entry(2, "")], now=NOW) == {"1", "2"}
    first, second = row(db, "telegram", "1"), row(db, "telegram", "2")
    assert first.payload == '{"update_id": 1}' and first.attempts == 1
    assert first.sender == sender_hash("telegram", "4711") and "4711" not in first.sender
    assert first.lease_until == NOW + dt.timedelta(seconds=30)
    assert second.sender is None
    assert sorted(log.pending()) == ["1", "2"]


def test_a_redelivered_update_is_dropped_whether_pending_or_handled(db: Database):
    log = Updates(db).of("telegram")
    assert log.take([entry(1), entry(2)]) == {"1", "2"}
    log.handled(["1"])
    assert log.take([entry(1), entry(2), entry(3)]) == {"3"}  # 1 handled, 2 still pending
    restarted = Updates(Database(db.url)).of("telegram")
    assert restarted.take([entry(2), entry(3)]) == set()


def test_the_same_key_on_another_platform_is_new(db: Database):
    assert Updates(db).of("telegram").take([entry(42)]) == {"42"}
    assert Updates(db).of("matrix").take([entry(42)]) == {"42"}


def test_the_handled_mark_clears_payload_sender_and_lease(db: Database):
    log = Updates(db).of("telegram")
    log.take([entry(7)])
    log.handled(["7"])
    handled = row(db, "telegram", "7")
    assert (handled.payload, handled.sender, handled.lease_until) == (None, None, None)
    assert log.pending() == [] and log.is_handled("7")
    assert log.claim_expired(now=NOW + dt.timedelta(days=1)) == []


def test_matrix_marks_events_handled_after_handling(db: Database):
    log = Updates(db).of("matrix")
    assert not log.is_handled("$Kf3z9Xw:example.org")
    log.handled(["$Kf3z9Xw:example.org"])  # no intake row before: recorded as handled
    assert Updates(Database(db.url)).of("matrix").is_handled("$Kf3z9Xw:example.org")
    assert not log.is_handled("$other:example.org")


def test_a_pending_update_is_not_handled_yet(db: Database):
    log = Updates(db).of("matrix")
    log.take([entry("$a")])
    assert not log.is_handled("$a")


def test_replay_claims_only_updates_whose_lease_expired(db: Database):
    log = Updates(db).of("telegram")
    log.take([entry(1), entry(2)], now=NOW)
    log.take([entry(3)], now=NOW + dt.timedelta(seconds=20))
    log.handled(["2"])
    claimed = log.claim_expired(now=LATER)
    assert [(c.key, c.payload) for c in claimed] == [("1", '{"update_id": 1}')]
    assert row(db, "telegram", "1").lease_until == LATER + dt.timedelta(seconds=30)
    assert log.claim_expired(now=LATER) == []  # now leased to the claimer
    assert [c.key for c in log.claim_expired(now=LATER + dt.timedelta(seconds=21))] == ["3"]


def test_renewed_and_excluded_updates_are_not_claimed(db: Database):
    log = Updates(db).of("telegram")
    log.take([entry(1), entry(2), entry(3)], now=NOW)
    log.renew(["1"], now=NOW + dt.timedelta(seconds=20))
    assert [c.key for c in log.claim_expired(exclude={"2"}, now=LATER)] == ["3"]


def test_released_updates_are_claimed_at_once(db: Database):
    log = Updates(db).of("telegram")
    log.take([entry(1), entry(2)], now=NOW)
    log.release(["1"], now=NOW + dt.timedelta(seconds=1))
    assert [c.key for c in log.claim_expired(now=NOW + dt.timedelta(seconds=2))] == ["1"]


def test_an_update_that_keeps_killing_its_process_is_given_up(db: Database):
    log = Updates(db).of("telegram")
    log.take([entry(1)], now=NOW)
    moment = NOW
    for _ in range(MAX_ATTEMPTS - 1):
        moment += dt.timedelta(seconds=31)
        assert [c.key for c in log.claim_expired(now=moment)] == ["1"]
    assert log.claim_expired(now=moment + dt.timedelta(seconds=31)) == []
    given_up = row(db, "telegram", "1")
    assert given_up.lease_until is None and given_up.payload is None


def test_two_claimers_racing_get_each_update_once(db: Database):
    Updates(db).of("telegram").take([entry(n) for n in range(40)], now=NOW)
    got: list[list[str]] = []
    start = threading.Barrier(4)

    def claimer() -> None:
        log = UpdateLog(Database(db.url), "telegram")
        start.wait()
        mine: list[str] = []
        while batch := log.claim_expired(limit=5, now=LATER):
            mine += [c.key for c in batch]
        got.append(mine)
        log.db.dispose()

    threads = [threading.Thread(target=claimer) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    claimed = [key for mine in got for key in mine]
    assert sorted(claimed, key=int) == [str(n) for n in range(40)]  # each once, none lost


def test_racing_intakes_take_each_update_once(db: Database):
    new: list[set[str]] = []

    def worker() -> None:
        log = UpdateLog(Database(db.url), "telegram")
        new.extend(log.take([entry(n)]) for n in range(50))
        log.db.dispose()

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    keys = [key for taken in new for key in taken]
    assert sorted(keys, key=int) == [str(n) for n in range(50)]


def test_prune_forgets_old_handled_updates_but_never_pending_ones(db: Database):
    updates = Updates(db)
    log = updates.of("telegram")
    log.take([entry(1), entry(2)], now=NOW - dt.timedelta(days=3))
    log.handled(["1"])
    log.take([entry(3)], now=NOW)
    log.handled(["3"])
    assert updates.prune(older_than=NOW - dt.timedelta(days=2)) == 1
    with db.session() as session:
        assert sorted(r.update_key for r in session.exec(select(ProcessedUpdate))) == ["2", "3"]
    assert log.pending() == ["2"]


def test_forgetting_a_sender_drops_only_their_pending_updates(db: Database):
    log = Updates(db).of("telegram")
    log.take([entry(1, "4711"), entry(2, "4711"), entry(3, "999")])
    log.handled(["2"])
    with db.session() as session:
        assert Updates.forget_sender(session, "telegram", "4711") == 1
    assert log.pending() == ["3"]
    assert row(db, "telegram", "1").payload is None
