"""Outbox benchmark, run by hand (never by pytest):

    .venv/bin/python bench/bench_outbox.py [--rows 100000] [--url postgresql+psycopg://...]

1. enqueue --rows pushes in one transaction (seconds, peak RSS);
2. drain them with rate limits off through a fast fake adapter (msgs/s);
3. drain 150 pushes to 150 chats under Telegram's limits (seconds, steady msgs/s).
Without --url it uses a temporary SQLite file.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlmodel import SQLModel  # noqa: E402

from assistant.delivery import Sender  # noqa: E402
from assistant.messages import Reply  # noqa: E402
from assistant.ratelimit import TELEGRAM  # noqa: E402
from assistant.store.db import Database  # noqa: E402
from assistant.store.outbox import Outbox, OutboxMessage  # noqa: E402

TEXT = ("Leppävaara: asukasilta torstaina 12.3. klo 18 Sellon kirjastossa. "
        "Aiheena Leppävaaran keskuksen liikennejärjestelyt. Lue lisää: https://www.espoo.fi/")


class FastAdapter:
    """Accepts every message at once and remembers when."""

    platform = "telegram"

    def __init__(self) -> None:
        self.times: list[float] = []

    async def start(self, on_message) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def send(self, chat_id: str, reply: Reply) -> str:
        await asyncio.sleep(0)  # a real adapter awaits the network
        self.times.append(time.perf_counter())
        return str(len(self.times))


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def messages(count: int, prefix: str):
    for n in range(count):
        yield OutboxMessage(platform="telegram", chat_id=str(100_000_000 + n), text=TEXT,
                            dedupe_key=f"{prefix}:1:r:{n}", news_item_id=1)


def fresh_database(url: str) -> Database:
    db = Database(url)
    from assistant.store import models  # noqa: F401

    SQLModel.metadata.drop_all(db.engine)
    db.create_all()
    return db


def bench_enqueue(db: Database, rows: int) -> None:
    outbox = Outbox(db)
    before = peak_rss_mb()
    started, cpu = time.perf_counter(), time.process_time()
    with db.session() as session:
        inserted = outbox.add(session, messages(rows, "news"))
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    print(f"enqueue: {inserted} rows in {seconds:.2f} s (CPU {cpu:.2f} s), "
          f"peak RSS {peak_rss_mb():.0f} MB (was {before:.0f} MB before)")
    started = time.perf_counter()
    with db.session() as session:
        again = outbox.add(session, messages(rows, "news"))
    print(f"enqueue again (all duplicates): {again} inserted in "
          f"{time.perf_counter() - started:.2f} s")


async def bench_drain_unlimited(db: Database, rows: int) -> None:
    adapter = FastAdapter()
    sender = Sender(db, Outbox(db), {"telegram": adapter}, None, "bench", batch_size=200)
    started, cpu = time.perf_counter(), time.process_time()
    handled = 0
    while count := await sender.drain_once():
        handled += count
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    print(f"drain, limits off: {len(adapter.times)} sent of {handled} in {seconds:.2f} s "
          f"(CPU {cpu:.2f} s) = {len(adapter.times) / seconds:.0f} msg/s; "
          f"counts {Outbox(db).counts()}")


async def bench_drain_telegram(db: Database, chats: int = 150) -> None:
    outbox = Outbox(db)
    with db.session() as session:
        outbox.add(session, messages(chats, "limited"))
    adapter = FastAdapter()
    sender = Sender(db, outbox, {"telegram": adapter}, {"telegram": TELEGRAM}, "bench")
    started = time.perf_counter()
    while await sender.drain_once():
        pass
    seconds = time.perf_counter() - started
    times, burst = adapter.times, int(TELEGRAM.per_second_global or 0)
    # The window lets `burst` go at once; the rate after that is the steady state.
    steady = (len(times) - burst) / (times[-1] - times[0])
    busiest = max(bisect.bisect_right(times, t + 1.0) - i for i, t in enumerate(times))
    print(f"drain, Telegram limits: {len(times)} to {chats} chats in {seconds:.2f} s; "
          f"steady {steady:.1f} msg/s ({steady / TELEGRAM.per_second_global:.0%} of the limit); "
          f"busiest second {busiest} messages")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--url", default="")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        url = args.url or f"sqlite:///{folder}/bench.db"
        print(f"database: {url.split('@')[-1]}")
        db = fresh_database(url)
        bench_enqueue(db, args.rows)
        asyncio.run(bench_drain_unlimited(db, args.rows))
        asyncio.run(bench_drain_telegram(db))
        db.dispose()


if __name__ == "__main__":
    main()
