"""Incoming platform updates already handled, so a redelivered one is answered only once.

Telegram redelivers webhook updates it thinks failed (and keeps them 24 hours);
a Matrix client replays events after a lost sync token. Adapters ask
`first_time(platform, update_id or event_id)` before handing an update to the core.
"""

from __future__ import annotations

import datetime as dt
import logging

from sqlalchemy import delete
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import Connection
from sqlalchemy.exc import OperationalError
from sqlmodel import Field, SQLModel

from .db import Database
from .residents import utcnow

logger = logging.getLogger(__name__)


class ProcessedUpdate(SQLModel, table=True):
    """One update seen: its platform and key (Telegram update_id, Matrix event_id)."""

    platform: str = Field(primary_key=True, max_length=16)
    update_key: str = Field(primary_key=True, max_length=255)
    seen_at: dt.datetime = Field(default_factory=utcnow, index=True)


TABLE = ProcessedUpdate.__table__  # type: ignore[attr-defined]


class Updates:
    """Repository of handled updates."""

    def __init__(self, db: Database):
        self.db = db

    def first_time(self, platform: str, key: str | int, now: dt.datetime | None = None) -> bool:
        """Record the update; False when it was recorded before (a redelivery or replay).

        One INSERT that skips an existing key, so two workers racing on the same
        update cannot both get True. True, too, when the database cannot be reached.
        """
        values = {"platform": platform, "update_key": str(key), "seen_at": now or utcnow()}
        try:
            with self.db.engine.begin() as connection:
                return _insert_new(connection, values)
        except OperationalError:
            # The database is away: answer (the core then says sorry) rather than drop the
            # update unanswered; at worst a redelivery during the outage is answered twice.
            logger.warning("%s update %s: the database is unreachable; treated as new",
                           platform, key)
            return True

    def prune(self, older_than: dt.datetime) -> int:
        """Forget updates seen before `older_than` (Telegram keeps updates 24 hours)."""
        with self.db.engine.begin() as connection:
            return connection.execute(delete(TABLE).where(TABLE.c.seen_at < older_than)).rowcount


def _insert_new(connection: Connection, values: dict) -> bool:
    if connection.dialect.name == "postgresql":
        stmt = pg_insert(TABLE).values(**values).on_conflict_do_nothing()
    else:
        stmt = TABLE.insert().values(**values).prefix_with("OR IGNORE")
    # INSERT rowcounts survive only on request (psycopg closes the cursor early).
    return connection.execute(stmt, execution_options={"preserve_rowcount": True}).rowcount == 1
