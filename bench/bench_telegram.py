"""Telegram adapter benchmark, run by hand (never by pytest):

    .venv/bin/python bench/bench_telegram.py [--messages 3000] [--residents 1000]
                                             [--memory-residents 10000] [--core echo]

The fake Bot API server runs in its own process (`python -m tests.fakes.telegram_server`),
so the adapter gets a CPU of its own. Updates are handed to the adapter the way its
Updater does after a getUpdates (at most `--backlog` waiting): each batch of 100 stored
by the intake in one transaction, then put into PTB's update queue. They go through the
whole adapter: intake (SQLite), Update -> Incoming, the real assistant on the shipped
knowledge base, sendMessage over HTTP with rate limits off, the handled mark (SQLite).

1. --messages from --residents distinct residents: handled messages per second;
2. one message from each of --memory-residents residents: peak RSS of this process.

`--core echo` replaces the assistant with a fixed reply, to tell the adapter's own cost
(PTB, its aiohttp backend, this adapter) from the core's (matching, SQLite).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from telegram import Update  # noqa: E402

from adapters.telegram import TelegramAdapter  # noqa: E402
from assistant.core import Assistant  # noqa: E402
from assistant.menus import command_menus  # noqa: E402
from assistant.messages import Choice, Incoming, Reply  # noqa: E402
from assistant.platform import PermanentFailure, RecipientGone, RetryLater  # noqa: E402
from assistant.router import Router  # noqa: E402
from assistant.settings import Settings  # noqa: E402
from assistant.store.updates import Updates  # noqa: E402

logger = logging.getLogger("bench_telegram")
TOKEN = "123456789:TEST-espoo-token"
TEXTS = ["/start", "Miten teen kuntalaisaloitteen?", "hur ger jag respons till staden",
         "How can I vote in the municipal elections?", "/help", "missä on asukasilta",
         "vaalit", "kiitos!"]
LANGUAGES = ["fi", "fi", "sv", "en", "de"]


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds(pid: int | None = None) -> float:
    """CPU time used by this process (or `pid`): on a busy machine it says more than wall time."""
    if pid is None:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def stats(port: int) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/_fake/stats", timeout=5) as answer:
        return json.load(answer)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(port: int, chats: int) -> subprocess.Popen:
    """The fake server in a process of its own; refuses a port someone else's server holds."""
    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", port)) == 0:
            raise RuntimeError(f"port {port} is taken (another benchmark?); try --port 0")
    server = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.telegram_server", "--port", str(port),
         "--chats", str(chats), "--token", TOKEN],
        cwd=Path(__file__).resolve().parent.parent, stdout=subprocess.DEVNULL)
    for _ in range(200):
        if server.poll() is not None:
            raise RuntimeError("the fake Telegram server exited")
        try:
            stats(port)
            return server
        except OSError:
            time.sleep(0.05)
    server.kill()
    raise RuntimeError("the fake Telegram server did not start")


def update_json(update_id: int, user_id: int, text: str) -> dict:
    user = {"id": user_id, "is_bot": False, "first_name": f"Asukas {user_id}",
            "language_code": LANGUAGES[user_id % len(LANGUAGES)]}
    message = {"message_id": update_id, "from": user, "date": int(time.time()), "text": text,
               "chat": {"id": user_id, "type": "private", "first_name": user["first_name"]}}
    if text.startswith("/"):
        message["entities"] = [{"type": "bot_command", "offset": 0, "length": len(text)}]
    return {"update_id": update_id, "message": message}


class EchoRouter:
    """Stands in for the core with `--core echo`: one short reply with two buttons, no database."""

    def __init__(self, adapter: TelegramAdapter):
        self.adapter = adapter

    async def on_message(self, incoming: Incoming) -> None:
        reply = Reply(f"Kiitos viestistäsi ({len(incoming.text)} merkkiä).",
                      (Choice("Kyllä", "yes:1"), Choice("Ei", "no:1")))
        try:
            await self.adapter.send(incoming.chat_id, reply)
        except (RetryLater, PermanentFailure, RecipientGone) as error:
            logger.warning("echo not sent: %r", error)  # as the router does


class Counter:
    """Wraps the router's callback: counts messages fully handled (replies sent)."""

    def __init__(self, router: Router | EchoRouter):
        self.router, self.done = router, 0
        self.changed = asyncio.Event()

    async def on_message(self, incoming: Incoming) -> None:
        try:
            await self.router.on_message(incoming)
        finally:
            self.done += 1
            self.changed.set()

    async def wait(self) -> None:
        self.changed.clear()
        await self.changed.wait()


async def feed(adapter: TelegramAdapter, counter: Counter, updates: list[dict],
               backlog: int) -> float:
    """Queue `updates` as the Updater would, keeping at most `backlog` unhandled; seconds taken."""
    queue, bot = adapter.application.update_queue, adapter.application.bot
    first_done, put = counter.done, 0
    started = time.perf_counter()
    for first in range(0, len(updates), 100):  # getUpdates returns at most 100
        while put - (counter.done - first_done) > backlog:
            await counter.wait()
        raw = updates[first:first + 100]
        batch = [Update.de_json(data, bot) for data in raw]
        await adapter.intake.take_batch(batch, {d["update_id"]: d for d in raw})  # as getUpdates
        for update in batch:
            await queue.put(update)
            put += 1
    while counter.done - first_done < len(updates):
        await counter.wait()
    return time.perf_counter() - started


async def measure(adapter: TelegramAdapter, counter: Counter, batch: list[dict], backlog: int,
                  server_pid: int) -> tuple[int, float, float, float]:
    """(messages, wall seconds, our CPU seconds, the server's CPU seconds) for one batch."""
    ours, theirs = cpu_seconds(), cpu_seconds(server_pid)
    seconds = await feed(adapter, counter, batch, backlog)
    return len(batch), seconds, cpu_seconds() - ours, cpu_seconds(server_pid) - theirs


def report(title: str, figures: tuple[int, float, float, float]) -> None:
    count, seconds, ours, theirs = figures
    print(f"{title}: {seconds:.1f} s, {count / seconds:.0f} handled/s; CPU per message "
          f"{1000 * ours / count:.2f} ms here (= {count / ours:.0f}/s on a free core), "
          f"{1000 * theirs / count:.2f} ms in the fake server")


def messages(count: int, residents: int, first_user: int, first_update: int) -> list[dict]:
    """`count` updates spread round-robin over `residents` residents, texts cycling."""
    return [update_json(first_update + n, first_user + n % residents, TEXTS[n % len(TEXTS)])
            for n in range(count)]


async def run(args: argparse.Namespace) -> None:
    chats = max(args.residents, args.memory_residents) + 10
    server = start_server(args.port, chats)
    database = Path(tempfile.mkdtemp()) / "bench.db"
    settings = Settings.from_env({"DATABASE_URL": f"sqlite:///{database}", "QUIET_HOURS": "",
                                  "TELEGRAM_BOT_TOKEN": TOKEN,
                                  "TELEGRAM_API_URL": f"http://127.0.0.1:{args.port}"})
    assistant = Assistant(settings)
    router = Router(assistant)
    adapter = TelegramAdapter(settings, menus=command_menus(assistant), rate_limits=False,
                              log=Updates(assistant.db).of("telegram"))
    router.add(adapter)
    counter = Counter(router if args.core == "full" else EchoRouter(adapter))
    print(f"core: {args.core}")
    try:
        await adapter.start(counter.on_message)
        print(f"started: RSS {current_rss_mb():.0f} MB")
        await feed(adapter, counter, messages(50, 10, chats - 10, 1), args.backlog)  # warm-up
        batch = messages(args.messages, args.residents, 1, 1000)
        report(f"1. {args.messages} messages from {args.residents} residents",
               await measure(adapter, counter, batch, args.backlog, server.pid))
        print(f"   server saw {stats(args.port)['sent']} sends")
        batch = messages(args.memory_residents, args.memory_residents, 1, 100_000)
        report(f"2. {args.memory_residents} distinct residents",
               await measure(adapter, counter, batch, args.backlog, server.pid))
        print(f"   RSS now {current_rss_mb():.0f} MB, peak {peak_rss_mb():.0f} MB; "
              f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    finally:
        await adapter.stop()
        assistant.db.dispose()
        server.terminate()
        server.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--residents", type=int, default=1000)
    parser.add_argument("--memory-residents", type=int, default=10_000)
    parser.add_argument("--backlog", type=int, default=500, help="most updates queued unhandled")
    parser.add_argument("--port", type=int, default=0, help="the fake server's; 0 picks a free one")
    parser.add_argument("--core", choices=("full", "echo"), default="full",
                        help="echo: a fixed reply instead of the assistant (adapter cost alone)")
    args = parser.parse_args()
    args.port = args.port or free_port()
    logging.basicConfig(level=logging.WARNING)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # so `finally` stops the server
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
