"""Migration 0002 (update intake, feedback source keys) on a database at 0001 that holds rows:
old update keys stay as handled, old feedback has no source key, and it goes back down."""

from __future__ import annotations

from alembic import command
from sqlalchemy import text

from assistant.store import migrate
from assistant.store.db import Database
from assistant.store.feedback import FeedbackStore
from assistant.store.updates import Entry, Updates


def test_0002_upgrades_a_database_with_rows_and_downgrades(database_url: str):
    db = Database(database_url)
    try:
        assert migrate.upgrade(db, "0001") == "0001"
        with db.engine.begin() as connection:
            connection.execute(text(
                "INSERT INTO processedupdate (platform, update_key, seen_at) "
                "VALUES ('telegram', '41', '2026-01-01 00:00:00')"))
            connection.execute(text(
                "INSERT INTO feedback_item (reference, kind, text, reply_wanted, status, "
                "created_at, updated_at) VALUES ('P-2025-0001', 'feedback', 'Penkki', false, "
                "'new', '2026-01-01 00:00:00', '2026-01-01 00:00:00')"))
        assert migrate.upgrade(db) == "0002"
        assert migrate.differences(db) == []
        log = Updates(db).of("telegram")
        assert log.is_handled("41") and log.pending() == []
        assert log.take([Entry("41", "{}"), Entry("42", "{}")]) == {"42"}
        store = FeedbackStore(db)
        assert store.by_reference("P-2025-0001").source_key is None
        first = store.file(None, "feedback", "Katuvalo", None, False, source_key="k" * 64)
        again = store.file(None, "feedback", "Katuvalo", None, False, source_key="k" * 64)
        assert again.reference == first.reference

        with migrate._schema_change(db) as connection:
            command.downgrade(migrate.alembic_config(connection), "0001")
        assert migrate.current(db) == "0001"
        assert migrate.upgrade(db) == "0002" and migrate.differences(db) == []
    finally:
        db.dispose()
