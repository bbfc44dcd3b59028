"""Fixtures of the process-level end-to-end tests: one fake Bot API server and one deployment
(database, admin, assistant processes) per test module; every process is ended afterwards."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.harness import REPO, Deployment, ServerThread

SAMPLE_TOPICS = REPO / "tests" / "assistant" / "data" / "knowledge" / "topics"


@pytest.fixture(scope="session")
def workspace(request: pytest.FixtureRequest) -> Iterator[Path]:
    """A folder of this session's own, kept when a test failed (the processes' logs are in it).

    Not pytest's tmp_path: with several pytest sessions on the machine, a finished
    session's basetemp is rotated away within minutes, logs and all.
    """
    path = Path(tempfile.mkdtemp(prefix="e2e-"))
    failed_before = request.session.testsfailed
    yield path
    if request.session.testsfailed == failed_before:
        shutil.rmtree(path, ignore_errors=True)
    else:
        print(f"\ne2e logs and databases kept in {path}")


@pytest.fixture(scope="session")
def knowledge_dir(workspace: Path) -> Path:
    """The shipped districts with the two sample topics and no feeds.yaml.

    News and feedback need only the districts; a small knowledge base halves the
    process's start, and without feeds no process ever reaches for the internet.
    """
    target = workspace / "knowledge"
    target.mkdir()
    (target / "districts.yaml").symlink_to(REPO / "knowledge" / "districts.yaml")
    (target / "topics").symlink_to(SAMPLE_TOPICS)
    return target


@pytest.fixture(scope="module")
def server(request: pytest.FixtureRequest) -> Iterator[ServerThread]:
    """The module's fake Telegram; a module sets ENFORCE_LIMITS = True for Telegram's limits."""
    thread = ServerThread(enforce_limits=getattr(request.module, "ENFORCE_LIMITS", False))
    thread.start()
    yield thread
    thread.stop()


@pytest.fixture(scope="module")
def deployment(request: pytest.FixtureRequest, server: ServerThread, knowledge_dir: Path,
               workspace: Path) -> Iterator[Deployment]:
    """A database and its admin; the module's tests start, kill and restart processes on it."""
    folder = workspace / request.module.__name__.rsplit(".", 1)[-1]
    folder.mkdir()
    deploy = Deployment(server, folder, knowledge_dir)
    yield deploy
    deploy.close()
