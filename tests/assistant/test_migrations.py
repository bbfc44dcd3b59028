"""Schema migrations: start-up creates or refuses, `db upgrade` migrates, old databases adopted.

A second revision is written into a copy of the migrations folder, so the path
from an older revision to a newer one is tested on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

import shutil
import threading
from pathlib import Path
from typing import Iterator

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text

from assistant.cli import main
from assistant.store import migrate
from assistant.store.db import Database, SchemaError
from assistant.store.news import Subscriptions
from assistant.store.outbox import Outbox, OutboxMessage
from assistant.store.residents import Residents

SECOND_REVISION = '''"""residents get a nickname (a test revision)"""
import sqlalchemy as sa
from alembic import op

revision = "9001"
down_revision = "{head}"
branch_labels = None
depends_on = None


def recreate() -> str:
    """On SQLite copy and drop the table, as most changes there need; alter in place elsewhere."""
    return "always" if op.get_context().dialect.name == "sqlite" else "auto"


def upgrade() -> None:
    with op.batch_alter_table("resident", recreate=recreate()) as batch_op:
        batch_op.add_column(sa.Column("nickname", sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("resident", recreate=recreate()) as batch_op:
        batch_op.drop_column("nickname")
'''


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    yield database
    database.dispose()


@pytest.fixture
def newer_program(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The migrations as a later version of the program would have them: one revision more."""
    folder = tmp_path / "migrations"
    shutil.copytree(migrate.SCRIPT_LOCATION, folder, ignore=shutil.ignore_patterns("__pycache__"))
    (folder / "versions" / "9001_nickname.py").write_text(
        SECOND_REVISION.format(head=migrate.head()), encoding="utf-8")
    monkeypatch.setattr(migrate, "SCRIPT_LOCATION", folder)
    yield "9001"


def columns(db: Database, table: str) -> set[str]:
    return {column["name"] for column in inspect(db.engine).get_columns(table)}


def test_start_up_creates_a_new_database_at_the_newest_revision(db: Database):
    db.create_all()
    assert migrate.current(db) == migrate.head()
    db.create_all()  # a second start changes nothing
    assert migrate.current(db) == migrate.head()
    assert migrate.upgrade(db) == migrate.head()  # Alembic reads the stamp: nothing to run


def test_start_up_refuses_an_out_of_date_database_until_upgraded(db: Database, newer_program):
    assert migrate.head() == newer_program
    with db.engine.begin() as connection:  # a database made by the previous version
        migrate.target_metadata().create_all(connection)
        connection.execute(text("CREATE TABLE alembic_version (version_num VARCHAR(32) "
                                "NOT NULL PRIMARY KEY)"))
        connection.execute(text("INSERT INTO alembic_version VALUES (:v)"),
                           {"v": _previous(newer_program)})
    with pytest.raises(SchemaError, match=r"database schema is out of date: run "
                                          r"`python -m assistant db upgrade`"):
        db.create_all()
    assert migrate.upgrade(db) == newer_program
    assert "nickname" in columns(db, "resident")
    db.create_all()


def _previous(revision: str) -> str | None:
    scripts = ScriptDirectory.from_config(migrate.alembic_config())
    return scripts.get_revision(revision).down_revision


def test_the_newest_revision_is_read_as_alembic_reads_it(newer_program):
    scripts = ScriptDirectory.from_config(migrate.alembic_config())
    assert migrate.head() == scripts.get_current_head() == newer_program


def test_a_batch_migration_keeps_the_rows_that_reference_the_table(db: Database, newer_program):
    migrate.upgrade(db, _previous(newer_program))
    resident, _ = Residents(db).get_or_create("telegram", "7", "7", "fi")
    Subscriptions(db).add(resident.id, "tapiola")
    Outbox(db).enqueue(OutboxMessage("telegram", "7", "hei", "k:7", resident_id=resident.id))
    assert migrate.upgrade(db) == newer_program
    assert Subscriptions(db).of_resident(resident.id) == ["tapiola"]
    assert Outbox(db).counts()["pending"] == 1
    assert Residents(db).by_id(resident.id).chat_id == "7"


def test_a_newer_database_is_refused_with_its_reason(db: Database):
    db.create_all()
    with db.engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    with pytest.raises(SchemaError, match="newer than this program knows"):
        db.create_all()


def test_a_database_from_before_migrations_is_adopted_by_upgrade(db: Database):
    migrate.target_metadata().create_all(db.engine)  # how start-up used to create it
    with pytest.raises(SchemaError, match="out of date"):
        db.create_all()
    assert migrate.upgrade(db) == migrate.head()
    db.create_all()


def test_a_database_from_before_migrations_that_differs_is_not_adopted(db: Database):
    migrate.target_metadata().create_all(db.engine)
    with db.engine.begin() as connection:
        connection.execute(text("CREATE TABLE stray (id INTEGER PRIMARY KEY)"))
        connection.execute(text("DROP TABLE job_run"))
    with pytest.raises(SchemaError, match="differ from this program's models"):
        migrate.upgrade(db)
    assert migrate.current(db) is None


def test_concurrent_starts_create_the_schema_once(fresh_postgres_url: str):
    errors: list[BaseException] = []

    def start() -> None:
        database = Database(fresh_postgres_url)
        try:
            database.create_all()
        except BaseException as error:  # noqa: BLE001  (asserted below)
            errors.append(error)
        finally:
            database.dispose()

    threads = [threading.Thread(target=start) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    db = Database(fresh_postgres_url)
    assert migrate.current(db) == migrate.head()
    assert migrate.differences(db) == []
    db.dispose()


def test_db_commands_upgrade_and_report_the_revision(database_url: str, capsys,
                                                     monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("DATABASE_URL", database_url)
    assert main(["db", "current"]) == 1
    assert "none" in capsys.readouterr().out
    assert main(["db", "upgrade"]) == 0
    assert f"database at revision {migrate.head()}" in capsys.readouterr().out
    assert main(["db", "current"]) == 0
    assert capsys.readouterr().out.startswith(f"{migrate.head()} (head")


def test_the_program_says_how_to_fix_an_out_of_date_database(database_url: str, capsys,
                                                            monkeypatch: pytest.MonkeyPatch):
    db = Database(database_url)
    migrate.target_metadata().create_all(db.engine)  # no revision: from before migrations
    db.dispose()
    monkeypatch.setenv("DATABASE_URL", database_url)
    assert main(["ask", "Miten teen kuntalaisaloitteen?"]) == 1
    assert ("database schema is out of date: run `python -m assistant db upgrade`"
            in capsys.readouterr().err)
