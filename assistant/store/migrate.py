"""Schema migrations (Alembic, configured in code): start-up checks, `db upgrade`, new revisions.

Start-up (`Database.create_all`) creates a new, empty database from the tables
and stamps it with the newest revision; the drift test proves that this equals
running every migration. A database whose revision is older is refused until
`python -m assistant db upgrade` has run. A database created before migrations
existed (tables, no revision) is adopted by `db upgrade` when its tables match
the models. On PostgreSQL an advisory lock makes concurrent starts take turns.

Start-up does not import Alembic (it costs a fresh process a few hundred
milliseconds): the newest revision is read from the version files, and the version
table is Alembic's, written with plain SQL. Everything else uses Alembic itself.
"""

from __future__ import annotations

import logging
import re
import tempfile
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterator

from typing import TYPE_CHECKING

from sqlalchemy import Column, MetaData, PrimaryKeyConstraint, String, Table, delete, inspect
from sqlalchemy import insert, select, text
from sqlalchemy.engine import Connection
from sqlmodel import SQLModel
from sqlmodel.sql.sqltypes import AutoString, UTCDateTime

from .db import Database, SchemaError

if TYPE_CHECKING:
    from alembic.config import Config

logger = logging.getLogger(__name__)

SCRIPT_LOCATION = Path(__file__).resolve().parent.parent / "migrations"
VERSIONS = SCRIPT_LOCATION / "versions"
OUT_OF_DATE = "database schema is out of date: run `python -m assistant db upgrade`"
SCHEMA_LOCK_KEY = 0x61_73_75_6B_61_73_00_01  # "asukas" + 1: one schema change at a time
# Alembic's own version table, as Alembic creates it.
VERSION_TABLE = Table("alembic_version", MetaData(),
                      Column("version_num", String(32), nullable=False),
                      PrimaryKeyConstraint("version_num", name="alembic_version_pkc"))
_REVISION = re.compile(r"^revision\b[^=\n]*=\s*['\"]([^'\"]+)['\"]", re.M)
_DOWN_REVISION = re.compile(r"^down_revision\b[^=\n]*=(.*)$", re.M)


def target_metadata() -> MetaData:
    """Every table the program declares."""
    from . import models  # noqa: F401  (registers the tables)

    return SQLModel.metadata


def configure_options(dialect: str) -> dict[str, Any]:
    """Options for Alembic's context, shared by migrations, new revisions and the drift check."""
    return {"render_as_batch": dialect == "sqlite", "compare_type": True,
            "render_item": _render_item}


def _render_item(kind: str, obj: Any, _context: Any) -> str | bool:
    """Write SQLModel's column types as plain SQLAlchemy ones, so migrations outlive SQLModel."""
    if kind == "type" and isinstance(obj, AutoString):
        length = getattr(obj.impl_instance, "length", None)
        return f"sa.String(length={length})" if length else "sa.String()"
    if kind == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def alembic_config(connection: Connection | None = None, url: str = "") -> "Config":
    """Alembic's configuration without an alembic.ini (nothing read from the working folder)."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(SCRIPT_LOCATION))
    config.set_main_option("file_template", "%%(rev)s_%%(slug)s")
    if url:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    config.attributes["connection"] = connection
    return config


def head() -> str | None:
    """The newest revision this program knows."""
    _, heads = _history(SCRIPT_LOCATION / "versions")
    if len(heads) > 1:
        raise SchemaError(f"the migrations have several heads {', '.join(heads)}: merge them "
                          "into one revision")
    return heads[0] if heads else None


@lru_cache(maxsize=4)
def _history(versions: Path) -> tuple[frozenset[str], tuple[str, ...]]:
    """Every revision in the version files, and the heads (revisions nothing revises)."""
    known: set[str] = set()
    revised: set[str] = set()
    for path in versions.glob("*.py"):
        source = path.read_text(encoding="utf-8")
        revision, down = _REVISION.search(source), _DOWN_REVISION.search(source)
        if revision is None:
            continue
        known.add(revision.group(1))
        if down is not None:
            revised.update(re.findall(r"['\"]([^'\"]+)['\"]", down.group(1)))
    return frozenset(known), tuple(sorted(known - revised))


# reading the database ---------------------------------------------------------

def current(db: Database) -> str | None:
    """The database's revision (None: new, or created before migrations)."""
    with db.engine.connect() as connection:
        return _revision(connection)


def _has_tables(connection: Connection) -> bool:
    return bool(set(inspect(connection).get_table_names()) & set(target_metadata().tables))


def differences(db: Database) -> list[Any]:
    """What Alembic's autogenerate finds between the database and the models (empty: none)."""
    with db.engine.connect() as connection:
        return _differences(connection)


def _differences(connection: Connection) -> list[Any]:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, target_metadata()))


def _revision(connection: Connection) -> str | None:
    if not inspect(connection).has_table(VERSION_TABLE.name):
        return None
    return connection.execute(select(VERSION_TABLE.c.version_num)).scalar()


# changing it ------------------------------------------------------------------

@contextmanager
def _schema_change(db: Database) -> Iterator[Connection]:
    """One transaction for a schema change; concurrent starts take turns.

    PostgreSQL: under an advisory lock. SQLite: with foreign keys off, because batch
    migrations copy and drop tables and a drop must not cascade into other tables
    (the pragma only works outside a transaction, so it wraps the transaction).
    """
    with db.engine.connect() as connection:
        sqlite = connection.dialect.name == "sqlite"
        if sqlite:
            _pragma(connection, "foreign_keys=OFF")
        try:
            with connection.begin():
                if not sqlite:
                    connection.execute(text("SELECT pg_advisory_xact_lock(:key)"),
                                       {"key": SCHEMA_LOCK_KEY})
                yield connection
        finally:
            if sqlite:
                _pragma(connection, "foreign_keys=ON")


def _pragma(connection: Connection, setting: str) -> None:
    connection.exec_driver_sql(f"PRAGMA {setting}")
    connection.commit()


def prepare(db: Database) -> None:
    """At start-up: create a new database, accept a current one, refuse an out-of-date one."""
    with _schema_change(db) as connection:
        if not _has_tables(connection):
            _create(connection)
            return
        revision = _revision(connection)
        if revision != head():
            raise SchemaError(_mismatch(revision))


def _create(connection: Connection) -> None:
    """The tables as the models declare them, stamped as the newest revision."""
    target_metadata().create_all(connection)
    _stamp(connection, head())
    logger.info("created the database schema (revision %s)", head())


def _stamp(connection: Connection, revision: str | None) -> None:
    """Record `revision` in the version table, as `alembic stamp` does."""
    VERSION_TABLE.create(connection, checkfirst=True)
    connection.execute(delete(VERSION_TABLE))
    if revision is not None:
        connection.execute(insert(VERSION_TABLE).values(version_num=revision))


def _mismatch(revision: str | None) -> str:
    if revision is None:
        return f"{OUT_OF_DATE} (it was created before migrations; this program needs {head()})"
    known, _ = _history(SCRIPT_LOCATION / "versions")
    if revision not in known:
        return (f"database schema revision {revision} is newer than this program knows "
                f"(its newest is {head()}): run the newer version of the assistant")
    return f"{OUT_OF_DATE} (it is at {revision}; this program needs {head()})"


def upgrade(db: Database, revision: str = "head") -> str | None:
    """Run the migrations up to `revision`; returns the revision the database is at."""
    from alembic import command

    with _schema_change(db) as connection:
        if _has_tables(connection) and _revision(connection) is None:
            _adopt(connection)
        command.upgrade(alembic_config(connection), revision)
    return current(db)


def _adopt(connection: Connection) -> None:
    """A database made before migrations: stamp it as the newest, if it matches the models."""
    found = _differences(connection)
    if found:
        listed = "\n".join(f"  {difference}" for difference in found[:20])
        raise SchemaError("the database has tables but no schema revision, and they differ "
                          f"from this program's models:\n{listed}\n"
                          "back it up and recreate it, or migrate it by hand")
    _stamp(connection, head())
    logger.warning("database created before migrations adopted as revision %s", head())


# new revisions (for developers: scripts/new-migration.sh) ------------------------

def new_revision(message: str, initial: bool = False) -> Path | None:
    """Write the next numbered migration: the models' difference from all migrations so far.

    `initial` first deletes every revision, so the first one describes the whole
    schema again (only before any database outside a laptop has been migrated).
    None when the models and migrations already agree.
    """
    from alembic import command

    if initial:
        for old in VERSIONS.glob("[0-9]*.py"):
            old.unlink()
    _forget_history()
    with tempfile.TemporaryDirectory() as folder:
        db = Database(f"sqlite:///{folder}/new-migration.db")
        try:
            with db.engine.begin() as connection:
                config = alembic_config(connection)
                command.upgrade(config, "head")
                config.attributes["process_revision_directives"] = _skip_empty
                script = command.revision(config, message=message, autogenerate=True,
                                          rev_id=_next_number())
        finally:
            db.dispose()
            _forget_history()
    if isinstance(script, list):
        script = script[0] if script else None
    return Path(script.path) if script is not None else None


def _forget_history() -> None:
    _history.cache_clear()


def _next_number() -> str:
    numbers = [int(m.group(1)) for p in VERSIONS.glob("*.py")
               if (m := re.match(r"(\d+)_", p.name))]
    return f"{max(numbers, default=0) + 1:04d}"


def _skip_empty(_context: Any, _revision: Any, directives: list[Any]) -> None:
    if directives and directives[0].upgrade_ops.is_empty():
        directives[:] = []


# the command line (`python -m assistant db upgrade|current`) --------------------

def run_cli(url: str, action: str) -> int:
    """Upgrade the database, or say which revision it is at; returns the exit status."""
    db = Database(url)
    try:
        if action == "upgrade":
            before = current(db)
            after = upgrade(db)
            print(f"database at revision {after}" + (f" (was {before})" if before != after else
                                                     " (already up to date)"))
            return 0
        revision = current(db)
        print(f"{revision or 'none'} {_describe(revision)}")
        return 0 if revision == head() else 1
    finally:
        db.dispose()


def _describe(revision: str | None) -> str:
    if revision is None:
        return "(no schema yet, or created before migrations: run `python -m assistant db upgrade`)"
    if revision == head():
        return "(head: up to date)"
    return f"(this program needs {head()}: run `python -m assistant db upgrade`)"
