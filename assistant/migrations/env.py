"""Alembic's entry point: runs the migrations on the connection `assistant.store.migrate` gives.

Configured in code (no alembic.ini): the caller puts an open connection in
`config.attributes["connection"]`, or the URL in the `sqlalchemy.url` option.
SQLite cannot alter most of a table in place, so there migrations run in batch
mode (copy, alter, rename), which is a no-op wrapper on PostgreSQL.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine
from sqlalchemy.engine import Connection

from assistant.store.migrate import configure_options, target_metadata

config = context.config


def run(connection: Connection) -> None:
    context.configure(
        connection=connection, target_metadata=target_metadata(),
        process_revision_directives=config.attributes.get("process_revision_directives"),
        **configure_options(connection.dialect.name))
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        run(connection)
        return
    engine = create_engine(config.get_main_option("sqlalchemy.url") or "")
    try:
        with engine.connect() as own:
            run(own)
    finally:
        engine.dispose()


def run_offline() -> None:
    """`--sql` mode: print the SQL for a DBA instead of running it."""
    url = config.get_main_option("sqlalchemy.url") or ""
    context.configure(url=url, target_metadata=target_metadata(), literal_binds=True,
                      **configure_options(url.split(":", 1)[0].split("+", 1)[0]))
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
