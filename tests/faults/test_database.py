"""The database away for a moment: locked by another connection (SQLite), or down (PostgreSQL)."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import shutil
import sqlite3
import threading
import time
from collections.abc import Iterator

import pytest
from sqlalchemy.engine import make_url

from assistant.core import Assistant
from assistant.store.outbox import OutboxMessage
from tests.conftest import make_settings
from tests.faults.rig import FaultRig, fault_rig, text_of
from tests.pg import Cluster, _as_owner, start_cluster

REFERENCE = re.compile(r"P-\d{4}-\d{4,}")
AWAY_SECONDS = 2.0  # how long the lock is held, or the server down
# The server process crashes, the machine does not: fsync may stay off, commits must be written.
DURABLE_ENOUGH = "-c fsync=off -c synchronous_commit=on -c max_connections=100"


def reference_in(text: str) -> str:
    found = REFERENCE.search(text)
    assert found, f"no feedback reference in {text!r}"
    return found.group(0)


def feedback_texts(assistant: Assistant, resident_id: int) -> list[str]:
    return [item.text for item in assistant.feedback.of_resident(resident_id)]


# --------------------------------------------------------------- SQLite, locked


class ExclusiveLock(threading.Thread):
    """Another connection (a script, a backup) holds BEGIN EXCLUSIVE, writes, and commits.

    A thread, because the core's SQLite calls block the event loop while they wait.
    """

    def __init__(self, path: str, seconds: float):
        super().__init__(daemon=True)
        self.path, self.seconds = path, seconds
        self.held, self.released_at = threading.Event(), 0.0

    def run(self) -> None:
        connection = sqlite3.connect(self.path, isolation_level=None)
        try:
            connection.execute("BEGIN EXCLUSIVE")
            connection.execute("INSERT INTO processedupdate (platform, update_key, seen_at) "
                               "VALUES ('lock', ?, '2026-01-01 00:00:00')", (str(time.time()),))
            self.held.set()
            time.sleep(self.seconds)
            connection.execute("COMMIT")
            self.released_at = time.monotonic()
        finally:
            connection.close()


async def test_a_briefly_locked_sqlite_database_delays_answers_but_loses_none(
        assistant: Assistant) -> None:
    """busy_timeout rides out the lock: every message is answered after it, each feedback
    is stored exactly once, and a resident who writes for the first time is created."""
    path = make_url(assistant.settings.database_url).database
    assert assistant.db.is_sqlite and path
    async with fault_rig(assistant) as rig:
        known = [rig.user("en") for _ in range(3)]
        ids = [await rig.resident_for(u) for u in known]
        newcomer = rig.user("en")
        lock = ExclusiveLock(path, AWAY_SECONDS)
        lock.start()
        assert await asyncio.to_thread(lock.held.wait, 5)
        for n, user in enumerate(known + [newcomer]):
            rig.server.send_text(user, f"/feedback Katuvalo {n} on rikki")
            rig.server.send_text(user, "/help")
        for user in known + [newcomer]:
            await rig.server.wait_for_messages(user["id"], 2 + (user in known), timeout=15)
        await asyncio.to_thread(lock.join, 5)
        answered_at = [m["time"] for m in rig.server.sent[-8:]]
    assert lock.released_at and min(answered_at) >= lock.released_at - 0.05  # it did hold
    for n, user in enumerate(known + [newcomer]):
        texts = rig.texts_to(user)[-2:]
        assert texts[1].startswith(text_of(assistant, "en", "help_intro")), texts
        reference = reference_in(texts[0])
        resident = rig.rig.resident(user)
        assert resident is not None and (user in known) == (resident.id in ids)
        assert feedback_texts(assistant, resident.id) == [f"Katuvalo {n} on rikki"]
        assert assistant.feedback.by_reference(reference).resident_id == resident.id


# --------------------------------------------------------------- PostgreSQL, down


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    """A server of this module's own: the test stops and starts it. Commits are written
    before they are acknowledged (the session's server skips that for speed, so a crash
    there loses the last fraction of a second of commits)."""
    server = start_cluster(DURABLE_ENOUGH)
    yield server
    server.stop()
    shutil.rmtree(server.folder, ignore_errors=True)


@pytest.fixture(scope="module")
def pg_assistant(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory
                 ) -> Iterator[Assistant]:
    bot = Assistant(make_settings(tmp_path_factory.mktemp("pg"), DATABASE_URL=cluster.url()))
    yield bot
    bot.db.dispose()


def restart(cluster: Cluster) -> None:
    """`pg_ctl start` on the existing data folder (Cluster.start would initdb it anew)."""
    options = (f"-p {cluster.port} -c listen_addresses=127.0.0.1 -k {cluster.folder} "
               f"{cluster.options}")
    _as_owner([str(cluster.bindir / "pg_ctl"), "-D", str(cluster.data), "-l",
               str(cluster.folder / "server.log"), "-o", options, "-w", "-t", "60", "start"])


async def outage(rig: FaultRig, cluster: Cluster, during: list[tuple[dict, str]]) -> float:
    """Stop the server, let residents write (each gets one answer), start it again after
    ~2 s; returns how long it was down."""
    await asyncio.to_thread(cluster.stop)  # -m immediate: connections die mid-flight
    stopped = time.monotonic()
    try:
        for user, text in during:
            before = len(rig.texts_to(user))
            rig.server.send_text(user, text)
            await rig.server.wait_for_messages(user["id"], before + 1, timeout=8)
        await asyncio.sleep(max(0.0, AWAY_SECONDS - (time.monotonic() - stopped)))
    finally:
        await asyncio.to_thread(restart, cluster)
    return time.monotonic() - stopped


async def test_postgresql_down_for_seconds_gets_a_polite_answer_and_then_all_works(
        pg_assistant: Assistant, cluster: Cluster) -> None:
    """While the server is down every message gets the polite internal_error text, the
    adapter and the sender keep running; afterwards what was acknowledged before is all
    there (feedback, a queued push is delivered once) and new messages work again."""
    assistant = pg_assistant
    async with fault_rig(assistant) as rig:
        alice, bob = rig.user("en"), rig.user("fi")
        [filed] = await rig.ask(alice, "/feedback Puiston penkki on rikki")
        reference = reference_in(filed["text"])
        bob_id = await rig.resident_for(bob)
        due = rig.outbox.clock() + dt.timedelta(seconds=AWAY_SECONDS + 1)
        assert rig.outbox.enqueue(OutboxMessage("telegram", str(bob["id"]), "Uutinen",
                                                f"fault:pg:{bob['id']}", bob_id, not_before=due))
        down_for = await outage(rig, cluster, [(alice, "/help"),
                                               (bob, "/feedback Toinen asia")])
        assert rig.texts_to(alice)[-1] == text_of(assistant, "en", "internal_error")
        assert rig.texts_to(bob)[-1] == text_of(assistant, "fi", "internal_error")
        [mine] = await rig.ask(alice, "/myfeedback")
        [again] = await rig.ask(bob, "/feedback Toinen asia")
        row_id = rig.row_by_key(f"fault:pg:{bob['id']}").id
        await rig.wait_status([row_id], "sent", timeout=20)  # the sender outlived the outage
    assert down_for >= AWAY_SECONDS
    assert reference in mine["text"]
    assert feedback_texts(assistant, rig.rig.resident(alice).id) == ["Puiston penkki on rikki"]
    assert reference_in(again["text"]) != reference
    assert feedback_texts(assistant, bob_id) == ["Toinen asia"]  # the failed try stored nothing
    assert rig.texts_to(bob).count("Uutinen") == 1
