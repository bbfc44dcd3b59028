"""A resident's first two messages handled at once by two processes (webhook workers behind
a load balancer): both find no resident, both insert; the second must not fail."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import event, insert

from assistant.store.db import Database
from assistant.store.residents import Resident, Residents


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    database.create_all()
    yield database
    database.dispose()


def test_a_resident_created_meanwhile_by_another_process_is_found(db: Database) -> None:
    """Right before this process inserts the new resident, another one commits it."""
    other = Database(db.url)  # the other process: its own engine and connections
    table = Resident.__table__  # type: ignore[attr-defined]
    raced: list[int] = []

    def other_process_first(conn, cursor, statement, parameters, context, executemany) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO RESIDENT") and not raced:
            with other.engine.begin() as connection:
                raced.append(connection.execute(insert(table).values(
                    platform="telegram", platform_id="4242", chat_id="4242", language="sv",
                    language_chosen=False, active=True)).inserted_primary_key[0])

    event.listen(db.engine, "before_cursor_execute", other_process_first)
    try:
        arrival = Residents(db).arrive("telegram", "4242", "4242", "fi")
    finally:
        event.remove(db.engine, "before_cursor_execute", other_process_first)
        other.dispose()
    assert raced, "the race was not staged"
    assert (arrival.resident.id, arrival.created) == (raced[0], False)
    assert arrival.resident.language == "sv"  # the row the other process wrote
    again = Residents(db).arrive("telegram", "4242", "4242", "fi")
    assert (again.resident.id, again.created) == (raced[0], False)
