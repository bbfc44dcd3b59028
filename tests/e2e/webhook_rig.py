"""Several `python -m assistant run` processes in Telegram webhook mode on one PostgreSQL
database, behind a round-robin proxy that the fake Bot API delivers webhooks to.

    fake Telegram --POST--> RoundRobinProxy --> run #1 (port a)
    (ServerThread)          (same thread)   \\-> run #2 (port b)   all: one DATABASE_URL,
                                             \\-> run #3 (port c)   one webhook URL and secret

Each process listens on a loopback port of its own; all of them are configured with
the proxy's URL as TELEGRAM_WEBHOOK_URL, as a deployment behind a load balancer is.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from tests.e2e.harness import (
    REPO,
    TOKEN,
    AdminChat,
    AssistantProcess,
    ServerThread,
    new_user_id,
    seed_subscribers,
    wait_for,
)
from tests.fakes.load_balancer import RoundRobinProxy
from tests.pg import free_port

HOOK_PATH = "/telegram/hook"
SECRET = "e2e-Webhook_secret-1"
JSON = dict[str, Any]
T = TypeVar("T")


class WebhookCluster(AdminChat):
    """`size` webhook processes on `database_url`, the proxy in front, one admin."""

    def __init__(self, server: ServerThread, workdir: Path, knowledge_dir: Path,
                 database_url: str, size: int = 3, secret: str = SECRET):
        self.server, self.workdir, self.database_url = server, workdir, database_url
        self.secret = secret
        self.ports = [free_port() for _ in range(size)]
        self.proxy = RoundRobinProxy([f"http://127.0.0.1:{port}" for port in self.ports])
        self.admin_id = new_user_id()
        self.base_env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(workdir),
            "PYTHONPATH": str(REPO),
            "TELEGRAM_BOT_TOKEN": TOKEN,
            "TELEGRAM_API_URL": server.url,
            "DATABASE_URL": database_url,
            "ASSISTANT_ADMINS": f"telegram:{self.admin_id}",
            "QUIET_HOURS": "",
            "LOG_LEVEL": "WARNING",
            "KNOWLEDGE_DIR": str(knowledge_dir),
        }
        self.processes: list[AssistantProcess | None] = [None] * size
        self._db: Any = None

    # lifecycle ------------------------------------------------------------------

    def on_server_loop(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.server.loop).result(timeout=30)

    def open(self) -> "WebhookCluster":
        """Start the proxy and bring the schema up to date (`db upgrade`), as a deploy would."""
        self.on_server_loop(self.proxy.start())
        result = subprocess.run([sys.executable, "-m", "assistant", "db", "upgrade"], cwd=REPO,
                                env=self.base_env, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, f"db upgrade failed:\n{result.stdout}\n{result.stderr}"
        return self

    @property
    def webhook_url(self) -> str:
        return self.proxy.url + HOOK_PATH

    def env(self, index: int) -> dict[str, str]:
        return {**self.base_env, "TELEGRAM_WEBHOOK_URL": self.webhook_url,
                "TELEGRAM_WEBHOOK_LISTEN": "127.0.0.1",
                "TELEGRAM_WEBHOOK_PORT": str(self.ports[index]),
                "TELEGRAM_WEBHOOK_SECRET": self.secret}

    def start(self, indexes: Iterable[int] | None = None, timeout: float = 90) -> None:
        """Start these processes (all by default) at once; return when each listens."""
        chosen = list(range(len(self.ports)) if indexes is None else indexes)
        for index in chosen:
            log = self.workdir / f"run-{index + 1}.log"
            self.processes[index] = AssistantProcess(self.env(index), log,
                                                     f"run #{index + 1}").start()
        for index in chosen:
            process = self.processes[index]
            assert process is not None
            wait_for(lambda: listening(self.ports[index]), timeout,
                     f"{process.name} to listen on port {self.ports[index]}", [process],
                     interval=0.05)

    def kill(self, index: int) -> None:
        """SIGKILL one process, as a crash or an OOM kill would end it."""
        process = self.processes[index]
        assert process is not None
        process.kill()

    def running(self) -> list[AssistantProcess]:
        return [p for p in self.processes if p is not None and p.running()]

    def close(self) -> None:
        for process in self.processes:
            if process is not None:
                process.stop(timeout=5)
        self.on_server_loop(self.proxy.stop())
        if self._db is not None:
            self._db.dispose()

    def wait(self, condition: Callable[[], T], timeout: float, what: str) -> T:
        return wait_for(condition, timeout, what, self.running())

    # the residents' side -----------------------------------------------------------

    def replies(self, chat_id: int, before: int, count: int, timeout: float = 30,
                what: str = "") -> list[JSON]:
        self.wait(lambda: self.server.message_count(chat_id) >= before + count, timeout,
                  f"{count} answer(s) {what} in chat {chat_id}")
        return self.server.messages_to(chat_id)[before:]

    def ask(self, user_id: int, text: str, replies: int = 1, timeout: float = 30) -> list[JSON]:
        before = self.server.message_count(user_id)
        self.server.send_text(user_id, text)
        return self.replies(user_id, before, replies, timeout, f"to {text!r}")

    def published_item(self, draft_id: int) -> list[tuple[Any, ...]]:
        return self.query("SELECT news_item_id FROM newsdraft WHERE id = :id "
                          "AND news_item_id IS NOT NULL", id=draft_id)

    def ask_cli(self, questions: Sequence[str]) -> list[JSON]:
        """`python -m assistant ask --json` on the same database, one line per question."""
        result = subprocess.run([sys.executable, "-m", "assistant", "ask", "--json"], cwd=REPO,
                                env=self.base_env, input="\n".join(questions) + "\n",
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]

    # the database, read as an operator would ----------------------------------------

    def db(self) -> Any:
        if self._db is None:
            from assistant.store.db import Database

            self._db = Database(self.database_url)
        return self._db

    def query(self, sql: str, **params: Any) -> list[tuple[Any, ...]]:
        from sqlalchemy import text

        with self.db().engine.connect() as connection:
            return [tuple(row) for row in connection.execute(text(sql), params)]

    def expire_update_leases(self) -> int:
        """Let a dead process's leases on the updates it took run out now, not in 30 s.

        Exactly what waiting would do, as long as the live processes hold none (they are
        quiet): a running process's sweep claims them. Returns how many there were.
        """
        from sqlalchemy import text

        with self.db().engine.begin() as connection:
            return connection.execute(text(
                "UPDATE processedupdate SET lease_until = '2000-01-01 00:00:00+00' "
                "WHERE platform = 'telegram' AND lease_until IS NOT NULL")).rowcount

    def pending_updates(self) -> int:
        """Telegram updates taken in and not yet handled, by any process."""
        [(count,)] = self.query("SELECT count(*) FROM processedupdate "
                                "WHERE platform = 'telegram' AND lease_until IS NOT NULL")
        return int(count)

    def seed_subscribers(self, user_ids: Iterable[int], district_id: str,
                         language: str = "fi") -> None:
        """Residents who subscribed earlier, written with the product's own repositories."""
        seed_subscribers(self.db(), self.server, user_ids, district_id, language)


def listening(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def wait_quiet(server: ServerThread, seconds: float, timeout: float = 30) -> None:
    """Until the fake server has had no request (other than polls) for `seconds`."""
    deadline = time.monotonic() + timeout
    while server.quiet_for() < seconds:
        assert time.monotonic() < deadline, "the bot never went quiet"
        time.sleep(0.05)
