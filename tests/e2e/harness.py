"""Process-level end-to-end harness: the real `python -m assistant run` against the fake Bot API.

The fake Telegram server runs in a thread of the test process with its own event
loop (`ServerThread`), so tests stay synchronous and can block (sqlite3 reads,
waiting for a process) without stalling the server. The assistant runs as a child
process in its own process group (`AssistantProcess`), so it can be killed with
SIGKILL like a crashed server would be, and restarted on the same database.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

from tests.fakes.telegram_server import FakeTelegramServer

REPO = Path(__file__).resolve().parents[2]
TOKEN = "123456789:TEST-espoo-token"
JSON = dict[str, Any]
T = TypeVar("T")
REFERENCE = re.compile(r"\bP-\d{4}-\d{4,}\b")
_user_ids = itertools.count(800_001)


def new_user_id() -> int:
    """A Telegram user id no other test of this session uses (private chat id = user id)."""
    return next(_user_ids)


# ------------------------------------------------------------------ waiting


def wait_for(condition: Callable[[], T], timeout: float, what: str,
             processes: Iterable["AssistantProcess"] = (), interval: float = 0.02) -> T:
    """Poll `condition` until it returns something truthy; fail with `what` and stderr tails.

    A watched process that exits meanwhile fails the wait at once (with its exit code).
    """
    watched = list(processes)
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        for process in watched:
            if process.exited():
                raise AssertionError(f"{process.name} exited with {process.returncode} while "
                                     f"waiting for {what}\n{process.stderr_tail()}")
        if time.monotonic() > deadline:
            tails = "\n".join(p.stderr_tail() for p in watched)
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}\n{tails}")
        time.sleep(interval)


# ------------------------------------------------------------------ the fake server


class ServerThread:
    """A `FakeTelegramServer` on an event loop of its own thread; `call` runs code there."""

    def __init__(self, enforce_limits: bool = False):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="fake-telegram",
                                       daemon=True)
        self.server: FakeTelegramServer | None = None
        self.enforce_limits = enforce_limits

    def start(self) -> "ServerThread":
        self.thread.start()
        self.server = self._run(self._create())
        return self

    async def _create(self) -> FakeTelegramServer:
        server = FakeTelegramServer(token=TOKEN, enforce_limits=self.enforce_limits)
        await server.start()
        return server

    def stop(self) -> None:
        if self.server is not None:
            self._run(self.server.stop())
        self._run(self._cancel_tasks())  # e.g. watchers that never fired
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)
        self.loop.close()

    @staticmethod
    async def _cancel_tasks() -> None:
        others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in others:
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)

    def _run(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=30)

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run `fn(*args, **kwargs)` on the server's thread and return its result."""
        future: concurrent.futures.Future[T] = concurrent.futures.Future()

        def run() -> None:
            try:
                future.set_result(fn(*args, **kwargs))
            except BaseException as error:  # handed to the caller
                future.set_exception(error)

        self.loop.call_soon_threadsafe(run)
        return future.result(timeout=30)

    def watch(self, condition: Callable[[], bool]) -> None:
        """Check `condition` after every request, on the server's thread, before it answers.

        For actions that must happen at an exact point, e.g. killing the bot the moment
        a message reaches the server and before the bot hears that it was sent.
        """
        assert self.server is not None
        server = self.server

        async def watching() -> None:
            try:
                await server.wait_until(condition, timeout=120)
            except TimeoutError:
                pass

        asyncio.run_coroutine_threadsafe(watching(), self.loop)

    @property
    def url(self) -> str:
        assert self.server is not None
        return self.server.url

    # residents' side ------------------------------------------------------

    def add_chats(self, user_ids: Iterable[int], language_code: str = "fi") -> None:
        """Known private chats (residents who wrote to the bot before)."""
        ids = list(user_ids)

        def add() -> None:
            assert self.server is not None
            for user_id in ids:
                self.server.add_chat(user_id, user=self.server.user(user_id, "Asukas",
                                                                      language_code))
        self.call(add)

    def send_text(self, user_id: int, text: str, language_code: str = "fi") -> JSON:
        def send() -> JSON:
            assert self.server is not None
            user = self.server.users.get(user_id) or self.server.user(user_id, "Asukas",
                                                                     language_code)
            return self.server.send_text(user, text)
        return self.call(send)

    def press(self, user_id: int, message: JSON, callback_data: str) -> JSON:
        return self.call(lambda: self.server.press_button(user_id, message, callback_data))

    def messages_to(self, chat_id: int) -> list[JSON]:
        return self.call(lambda: list(self.server.messages_to(chat_id)))

    def message_count(self, chat_id: int) -> int:
        return self.call(lambda: len(self.server.bot_messages.get(chat_id, ())))

    def sent(self) -> list[JSON]:
        """A copy of every message the bot has sent so far (method, chat_id, text, time)."""
        return self.call(lambda: [dict(entry, message=None) for entry in self.server.sent])

    def chats_with_messages(self, chat_ids: Iterable[int]) -> int:
        """How many of these chats the bot has written to."""
        ids = list(chat_ids)
        return self.call(lambda: sum(1 for c in ids if self.server.bot_messages.get(c)))

    def count_sent(self, predicate: Callable[[JSON], bool]) -> int:
        return self.call(lambda: sum(1 for entry in self.server.sent if predicate(entry)))

    def quiet_for(self) -> float:
        """Seconds since the last request other than a long poll (getUpdates)."""
        def last() -> float:
            assert self.server is not None
            times = [r["time"] for r in self.server.all_requests[-50:]
                     if r["method"] != "getUpdates"]
            return time.monotonic() - max(times, default=0.0)
        return self.call(last)

    def requests(self, method: str) -> int:
        return self.call(lambda: len(self.server.requests_for(method)))

    def unconfirmed_updates(self) -> set[int]:
        """Update ids the bot has not confirmed yet (by a later getUpdates offset)."""
        assert self.server is not None
        return self.call(lambda: {u["update_id"] for u in self.server._pending})

    def rejected_429(self) -> int:
        return self.call(lambda: self.server.rejected_429)


# ------------------------------------------------------------------ the assistant process


# A start of `run` spends most of its time importing. A spare process for a restart does
# that part early, then waits on stdin for "go" (and quits on anything else, e.g. the end
# of stdin when the test process dies); after "go" it runs `python -m assistant run`.
WARM_LAUNCHER = """\
import runpy, sys
import assistant.cli, assistant.runtime, adapters.telegram  # the slow part of a start
if sys.stdin.readline().strip() != "go":
    sys.exit(0)
sys.argv = ["-m", "run"]
runpy.run_module("assistant", run_name="__main__", alter_sys=True)
"""


class AssistantProcess:
    """`python -m assistant run` in its own process group; its output goes to a log file.

    `warm=True` starts a spare that has imported the program and waits for `go()`.
    """

    def __init__(self, env: dict[str, str], log_path: Path, name: str = "assistant",
                 warm: bool = False):
        self.env, self.log_path, self.name, self.warm = env, log_path, name, warm
        self.popen: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0

    def start(self) -> "AssistantProcess":
        command = ([sys.executable, "-c", WARM_LAUNCHER] if self.warm
                   else [sys.executable, "-m", "assistant", "run"])
        with self.log_path.open("ab") as log:
            log.write(f"---- {self.name} started{' (spare)' if self.warm else ''}\n".encode())
            log.flush()
            self.started_at = time.monotonic()
            self.popen = subprocess.Popen(
                command, cwd=REPO, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.PIPE if self.warm else subprocess.DEVNULL,
                start_new_session=True)
        return self

    def go(self) -> None:
        """Let a spare run the program now."""
        assert self.popen is not None and self.popen.stdin is not None
        self.started_at = time.monotonic()
        self.popen.stdin.write(b"go\n")
        self.popen.stdin.close()

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    @property
    def returncode(self) -> int | None:
        return self.popen.poll() if self.popen else None

    def exited(self) -> bool:
        return self.popen is not None and self.popen.poll() is not None

    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def kill(self) -> None:
        """SIGKILL the whole process group, as a crash or an OOM kill would end it."""
        if self.running():
            _signal_group(self.pid, signal.SIGKILL)
        self._reap()

    def _reap(self) -> None:
        if self.popen is not None:
            self.popen.wait(timeout=10)
            if self.popen.stdin is not None and not self.popen.stdin.closed:
                self.popen.stdin.close()

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM (a clean shutdown), then SIGKILL if it does not end in time."""
        if self.running():
            _signal_group(self.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout=timeout)  # type: ignore[union-attr]
            except subprocess.TimeoutExpired:
                self.kill()
        self._reap()
        return self.returncode

    def stderr_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace").splitlines()[-lines:]
        except OSError:
            return f"[{self.name}: no log]"
        return f"---- last lines of {self.log_path}:\n" + "\n".join(text)


def _signal_group(pid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pid, sig)  # start_new_session: the group id is the child's pid
    except ProcessLookupError:
        pass


# ------------------------------------------------------------------ a deployment


class AdminChat:
    """What the admin and the residents' chats look like from the fake server, shared by the
    single-process `Deployment` and the webhook rig; they give `server`, `admin_id`, `wait`
    and `published_item` (the news item of a draft, read in their database's SQL style)."""

    server: ServerThread
    admin_id: int

    def wait(self, condition: Callable[[], T], timeout: float, what: str) -> T:
        raise NotImplementedError

    def published_item(self, draft_id: int) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    def post_news(self, district: str, text: str) -> int:
        """The admin posts `/news <district> <text>` and presses the preview's first button.

        Returns the news item id (read from the database). Other messages to the admin
        (notices of feedback, say) may arrive in between; the preview is found by its button.
        """
        before = self.server.message_count(self.admin_id)
        self.server.send_text(self.admin_id, f"/news {district} {text}")
        preview = self.new_message(self.admin_id, before, lambda m: text in (m["text"] or "")
                                   and buttons(m)[:1] != [], "the news preview")
        confirm = buttons(preview)[0]
        assert confirm.startswith("news:ok:"), f"no confirm button first: {preview}"
        self.server.press(self.admin_id, preview, confirm)
        draft_id = int(confirm.rsplit(":", 1)[1])
        [(item_id,)] = self.wait(lambda: self.published_item(draft_id), 30,
                                 f"draft {draft_id} to be published")
        return int(item_id)

    def new_message(self, chat_id: int, after: int, match: Callable[[JSON], bool],
                    what: str, timeout: float = 30) -> JSON:
        """The first of the bot's messages in the chat after the first `after` that matches."""
        def found() -> JSON | None:
            return next((m for m in self.server.messages_to(chat_id)[after:] if match(m)), None)
        return self.wait(found, timeout, f"{what} in chat {chat_id}")


class Deployment(AdminChat):
    """One database and one admin, the assistant processes run on it, the shared server.

    `start()` runs a process and waits until it polls for updates; `kill()` and
    `restart()` simulate a crash and a supervisor's restart; `spare()` and `take_over()`
    do the same with a process started ahead; `close()` (fixture finalizer) ends them all.
    """

    def __init__(self, server: ServerThread, workdir: Path, knowledge_dir: Path):
        self.server, self.workdir = server, workdir
        self.db_path = workdir / "assistant.db"
        self.admin_id = new_user_id()
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(workdir),
            "PYTHONPATH": str(REPO),
            "TELEGRAM_BOT_TOKEN": TOKEN,
            "TELEGRAM_API_URL": server.url,
            "DATABASE_URL": f"sqlite:///{self.db_path}",
            "ASSISTANT_ADMINS": f"telegram:{self.admin_id}",
            "QUIET_HOURS": "",
            "LOG_LEVEL": "WARNING",
            "KNOWLEDGE_DIR": str(knowledge_dir),
        }
        self.processes: list[AssistantProcess] = []
        self.current: AssistantProcess | None = None
        self.ready_seconds: list[float] = []  # process start (or go) -> first getUpdates
        self._db: Any = None

    def _new_process(self, warm: bool) -> AssistantProcess:
        process = AssistantProcess(self.env, self.workdir / "assistant.log",
                                   f"assistant #{len(self.processes) + 1}", warm=warm)
        self.processes.append(process)
        return process

    def start(self, timeout: float = 90) -> AssistantProcess:
        """Start `run` and wait until it takes updates (its first getUpdates reached the server)."""
        assert self.current is None or not self.current.running(), "one process at a time"
        polls = self.server.requests("getUpdates")
        process = self._new_process(warm=False).start()
        return self._until_polling(process, polls, timeout)

    def spare(self) -> AssistantProcess:
        """A process for the next restart, importing the program now; see `take_over`."""
        return self._new_process(warm=True).start()

    def take_over(self, spare: AssistantProcess, timeout: float = 90) -> AssistantProcess:
        """The spare runs the program (the current process must be dead by now)."""
        assert self.current is None or not self.current.running(), "one process at a time"
        polls = self.server.requests("getUpdates")
        spare.go()
        return self._until_polling(spare, polls, timeout)

    def _until_polling(self, process: AssistantProcess, polls_before: int,
                       timeout: float) -> AssistantProcess:
        self.current = process
        wait_for(lambda: self.server.requests("getUpdates") > polls_before, timeout,
                 f"{process.name} to poll for updates", [process], interval=0.05)
        self.ready_seconds.append(time.monotonic() - process.started_at)
        return process

    def kill(self) -> None:
        assert self.current is not None
        self.current.kill()

    def restart(self, timeout: float = 90) -> AssistantProcess:
        if self.current is not None and self.current.running():
            self.current.kill()
        return self.start(timeout)

    def close(self) -> None:
        for process in self.processes:
            process.stop(timeout=5)
        if self._db is not None:
            self._db.dispose()

    def wait(self, condition: Callable[[], T], timeout: float, what: str) -> T:
        return wait_for(condition, timeout, what, [self.current] if self.current else [])

    # chatting -------------------------------------------------------------

    def ask(self, user_id: int, text: str, replies: int = 1, timeout: float = 30) -> list[JSON]:
        """`user_id` writes `text`; returns the bot's next `replies` messages in that chat."""
        before = self.server.message_count(user_id)
        self.server.send_text(user_id, text)
        return self._replies(user_id, before, replies, timeout, repr(text))

    def _replies(self, chat_id: int, before: int, count: int, timeout: float,
                 what: str) -> list[JSON]:
        self.wait(lambda: self.server.message_count(chat_id) >= before + count, timeout,
                  f"{count} answer(s) to {what} in chat {chat_id}")
        return self.server.messages_to(chat_id)[before:]

    def published_item(self, draft_id: int) -> list[tuple[Any, ...]]:
        return self.query("SELECT news_item_id FROM newsdraft WHERE id = ? "
                          "AND news_item_id IS NOT NULL", draft_id)

    # the database, read as an operator would, with sqlite3 -------------------

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        connection = sqlite3.connect(self.db_path, timeout=30)
        try:
            return connection.execute(sql, params).fetchall()
        finally:
            connection.close()

    def execute(self, sql: str, *params: Any) -> int:
        connection = sqlite3.connect(self.db_path, timeout=30)
        try:
            with connection:
                return connection.execute(sql, params).rowcount
        finally:
            connection.close()

    def outbox_counts(self, news_item_id: int) -> Counter[str]:
        rows = self.query("SELECT status, count(*) FROM outbox WHERE news_item_id = ? "
                          "GROUP BY status", news_item_id)
        return Counter(dict(rows))

    def expire_leases(self) -> int:
        """Let the dead process's leases run out now instead of after `lease_seconds` (30 s).

        Exactly what waiting would do: outbox rows still "sending" become claimable, and
        so do the updates it took in and did not handle. Returns the outbox rows.
        """
        self.expire_intake_leases()
        return self.execute("UPDATE outbox SET not_before = '2000-01-01 00:00:00.000000', "
                            "lease_until = '2000-01-01 00:00:00.000000' "
                            "WHERE status = 'sending'")

    def expire_intake_leases(self) -> int:
        """The dead process's pending updates, claimable at the next start (after 30 s
        otherwise). Returns how many there are."""
        return self.execute("UPDATE processedupdate SET lease_until = "
                            "'2000-01-01 00:00:00.000000' WHERE lease_until IS NOT NULL")

    def pending_updates(self) -> set[int]:
        """Telegram updates taken in and not yet handled."""
        return {int(key) for (key,) in self.query(
            "SELECT update_key FROM processedupdate WHERE platform = 'telegram' "
            "AND lease_until IS NOT NULL")}

    def handled_updates(self) -> set[int]:
        return {int(key) for (key,) in self.query(
            "SELECT update_key FROM processedupdate WHERE platform = 'telegram' "
            "AND lease_until IS NULL")}

    def seed_subscribers(self, user_ids: Iterable[int], district_id: str,
                         language: str = "fi") -> None:
        """Residents who subscribed earlier, written with the product's own repositories."""
        seed_subscribers(self.db(), self.server, user_ids, district_id, language)

    def db(self) -> Any:
        """The product's `Database` on this deployment's file (the schema created if new)."""
        if self._db is None:
            from assistant.store.db import Database

            self._db = Database(self.env["DATABASE_URL"])
            self._db.create_all()
        return self._db


def seed_subscribers(db: Any, server: ServerThread, user_ids: Iterable[int], district_id: str,
                     language: str) -> None:
    """Telegram residents subscribed to `district_id` in `db`, and their chats on `server`."""
    from assistant.store.news import Subscriptions
    from assistant.store.residents import Residents

    ids = list(user_ids)
    residents, subscriptions = Residents(db), Subscriptions(db)
    for user_id in ids:
        resident, _ = residents.get_or_create("telegram", str(user_id), str(user_id), language)
        subscriptions.add(resident.id, district_id)
    server.add_chats(ids, language)


def buttons(message: JSON) -> list[str]:
    rows = (message.get("reply_markup") or {}).get("inline_keyboard", [])
    return [button["callback_data"] for row in rows for button in row]


def per_chat(entries: Iterable[JSON], token: str) -> Counter[int]:
    """How many messages containing `token` each chat got."""
    return Counter(e["chat_id"] for e in entries if token in (e.get("text") or ""))


def duplicates(counts: Counter[int]) -> int:
    return sum(n - 1 for n in counts.values() if n > 1)


def send_rate(times: list[float]) -> float:
    """Messages per second as count / (last - first)."""
    times = sorted(times)
    if len(times) < 2 or times[-1] == times[0]:
        return float("inf")
    return len(times) / (times[-1] - times[0])


def max_in_window(times: list[float], window: float) -> int:
    """The most messages within any `window` seconds."""
    times, best, first = sorted(times), 0, 0
    for last, moment in enumerate(times):
        while moment - times[first] >= window:
            first += 1
        best = max(best, last - first + 1)
    return best
