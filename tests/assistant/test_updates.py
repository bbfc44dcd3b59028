"""Deduplication of incoming platform updates: a redelivered update is recognised once recorded."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from sqlmodel import select

from assistant.store.db import Database
from assistant.store.updates import ProcessedUpdate, Updates


@pytest.fixture
def db(database_url: str) -> Database:
    database = Database(database_url)
    database.create_all()
    yield database
    database.dispose()


def test_a_redelivered_telegram_update_is_recognised(db: Database):
    updates = Updates(db)
    assert updates.first_time("telegram", 912345) is True
    assert updates.first_time("telegram", 912345) is False
    assert updates.first_time("telegram", "912345") is False
    assert updates.first_time("telegram", 912346) is True


def test_a_replayed_matrix_event_is_recognised_after_a_restart(db: Database):
    assert Updates(db).first_time("matrix", "$Kf3z9Xw:example.org") is True
    restarted = Updates(Database(db.url))
    assert restarted.first_time("matrix", "$Kf3z9Xw:example.org") is False


def test_the_same_key_on_another_platform_is_new(db: Database):
    updates = Updates(db)
    assert updates.first_time("telegram", "42") is True
    assert updates.first_time("matrix", "42") is True
    with db.session() as session:
        rows = session.exec(select(ProcessedUpdate)).all()
    assert sorted((r.platform, r.update_key) for r in rows) == [
        ("matrix", "42"), ("telegram", "42")]


def test_racing_workers_get_true_exactly_once(db: Database):
    results: list[bool] = []

    def worker() -> None:
        updates = Updates(Database(db.url))
        results.extend(updates.first_time("telegram", n) for n in range(50))

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results.count(True) == 50 and results.count(False) == 150


def test_prune_forgets_old_updates_only(db: Database):
    updates = Updates(db)
    now = dt.datetime.now(dt.timezone.utc)
    updates.first_time("telegram", 1, now=now - dt.timedelta(days=3))
    updates.first_time("telegram", 2, now=now)
    assert updates.prune(older_than=now - dt.timedelta(days=2)) == 1
    assert updates.first_time("telegram", 1) is True
    assert updates.first_time("telegram", 2) is False

