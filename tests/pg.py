"""A throw-away PostgreSQL server for the tests: initdb in a temporary folder, one per session.

The distribution's server binaries are used (Debian: /usr/lib/postgresql/<ver>/bin,
installed by scripts/test-services.sh). PostgreSQL refuses to run as root, so under
root the cluster belongs to the `postgres` OS user. It listens on 127.0.0.1 on a
free port, with its socket in the temporary folder, and trusts local connections.
Each test that asks for a database gets a new, empty one on this server.

Import the fixtures into a conftest: `from tests.pg import postgres_url`.
"""

from __future__ import annotations

import itertools
import os
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import psycopg
import pytest

MISSING = ("PostgreSQL server binaries (initdb, pg_ctl) not found under /usr/lib/postgresql/*/bin "
           "or on PATH; the tests need them: run `bash scripts/test-services.sh` as root "
           "(apt-get install postgresql), or `./dev test`, which does.")
# Durability is worthless for a test cluster; these make it several times faster.
SERVER_OPTIONS = ("-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
                  "-c max_connections=300 -c shared_buffers=64MB")
_numbers = itertools.count(1)


def find_bindir() -> Path | None:
    """The newest installed server's bin folder (Debian layout first, then PATH)."""
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"),
                      key=lambda p: _version(p.parent.parent.name))
    if versions:
        return versions[-1].parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _version(name: str) -> tuple[int, ...]:
    return tuple(int(part) for part in name.split(".") if part.isdigit())


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class Cluster:
    """One running server; `url(db)` is the SQLAlchemy URL of a database on it."""

    bindir: Path
    folder: Path
    port: int
    options: str = SERVER_OPTIONS  # benchmarks pass durable settings instead

    @property
    def data(self) -> Path:
        return self.folder / "data"

    def url(self, database: str = "test") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        _as_owner([str(self.bindir / "initdb"), "-D", str(self.data), "-U", "postgres",
                   "--auth=trust", "--encoding=UTF8", "--locale=C.UTF-8", "--no-sync"])
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.folder} {self.options}"
        _as_owner([str(self.bindir / "pg_ctl"), "-D", str(self.data), "-l",
                   str(self.folder / "server.log"), "-o", options, "-w", "-t", "60", "start"])

    def stop(self) -> None:
        _as_owner([str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w",
                   "stop"], check=False)

    def create_database(self, name: str) -> str:
        with psycopg.connect(f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres",
                             autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop_database(self, name: str) -> None:
        with psycopg.connect(f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres",
                             autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def log_tail(self, lines: int = 20) -> str:
        log = self.folder / "server.log"
        if not log.exists():
            return ""
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def _as_owner(command: list[str], check: bool = True) -> None:
    """Run a server command; under root as the `postgres` OS user (the server refuses root)."""
    if os.geteuid() == 0:
        command = ["runuser", "-u", "postgres", "--", *command]
    result = subprocess.run(command, capture_output=True, text=True, cwd="/")
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({result.returncode}):\n"
                           f"{result.stdout}\n{result.stderr}")


def _owned_folder() -> Path:
    """A temporary folder the server's OS user owns (pytest's tmp folders are root-only)."""
    if os.geteuid() != 0:
        return Path(tempfile.mkdtemp(prefix="asukasbotti-pg-"))
    folder = Path(tempfile.mkdtemp(prefix="asukasbotti-pg-", dir="/tmp"))  # not a root-only TMPDIR
    shutil.chown(folder, "postgres", "postgres")
    return folder


def start_cluster(options: str = SERVER_OPTIONS) -> Cluster:
    """initdb and start a server, with its database `test`; fails the test when impossible."""
    bindir = find_bindir()
    if bindir is None:
        pytest.fail(MISSING, pytrace=False)
    cluster = Cluster(bindir, _owned_folder(), free_port(), options)
    try:
        cluster.start()
        cluster.create_database("test")
    except Exception as error:
        tail = cluster.log_tail()
        cluster.stop()
        shutil.rmtree(cluster.folder, ignore_errors=True)
        pytest.fail(f"could not start PostgreSQL: {error}\n{tail}", pytrace=False)
    return cluster


def recreate_database(admin_url: str, name: str, create: bool = True) -> str:
    """Drop database `name` on the server of `admin_url` (a maintenance database), then,
    unless `create` is False, create it empty; returns its SQLAlchemy URL. The benchmarks
    use it on their own cluster or on a server named by --url."""
    from sqlalchemy import text
    from sqlalchemy.engine import make_url

    from assistant.store.db import Database

    admin = Database(admin_url)
    with admin.engine.connect() as connection:
        connection = connection.execution_options(isolation_level="AUTOCOMMIT")
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        if create:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[Cluster]:
    """The session's server, stopped and deleted at the end."""
    cluster = start_cluster()
    yield cluster
    cluster.stop()
    shutil.rmtree(cluster.folder, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_url(postgres_cluster: Cluster) -> str:
    """`postgresql+psycopg://postgres@127.0.0.1:PORT/test`, shared by the whole session."""
    return postgres_cluster.url("test")


@pytest.fixture
def fresh_postgres_url(postgres_cluster: Cluster) -> Iterator[str]:
    """A new, empty database on the session's server, dropped after the test."""
    name = f"test_{os.getpid()}_{next(_numbers)}"
    url = postgres_cluster.create_database(name)
    yield url
    postgres_cluster.drop_database(name)
