"""Worker benchmark, run by hand (never by pytest): several `worker` processes on one PostgreSQL.

    .venv/bin/python bench/bench_workers.py [--rows 20000] [--workers 1 2 3] [--kill-workers 3]
                                            [--url postgresql+psycopg://user@host:port/postgres]

For each worker count: a new database holding --rows pushes, one to each of --rows
private chats; the fake Bot API (tests/fakes/telegram_server.py) in a process of its
own; and that many worker processes (`assistant.runtime.run_worker` with rate limits
off, so the machine is what limits). Reports the combined throughput, the CPU each
part used per message (workers, fake server, PostgreSQL's processes, and the whole
machine's busy time, which includes any other load) and checks that every chat got
exactly one message. Then the kill run: --kill-workers workers, one killed with
SIGKILL halfway; the others take over its rows once their lease (30 s) runs out. No
chat may miss its message; a chat may get two only if its row was in the killed
worker's hands (claimed, not yet marked) when it died. Its rate "until the lease" is
that of every other row; the whole run includes the wait for the lease.

Without --url it starts a throw-away PostgreSQL (tests/pg.py) with durable settings
(fsync on). --url names a maintenance database on a server you run; the benchmark
creates and drops its own databases there.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from sqlalchemy import text  # noqa: E402

from assistant.store.db import Database  # noqa: E402
from assistant.store.outbox import Outbox, OutboxMessage  # noqa: E402

TOKEN = "123456789:TEST-espoo-token"
TEXT = ("Leppävaara: asukasilta torstaina 12.3. klo 18 Sellon kirjastossa. "
        "Aiheena Leppävaaran keskuksen liikennejärjestelyt. Lue lisää: https://www.espoo.fi/")
SAMPLE_KNOWLEDGE = REPO / "tests" / "assistant" / "data" / "knowledge"  # no feeds: no network
DURABLE = "-c max_connections=100"  # PostgreSQL's defaults otherwise (fsync, synchronous_commit)
LEASE_SECONDS = 30.0  # the Sender's default


@dataclass
class Run:
    """What one run measured."""

    workers: int
    rows: int
    wall_seconds: float  # workers started -> every row marked sent
    send_rate: float  # the fake server's first -> last message
    missed: int
    duplicates: int
    worker_cpu_ms: float = 0.0  # per message, all workers together
    server_cpu_ms: float = 0.0  # per message, the fake Bot API
    postgres_cpu_ms: float | None = None  # per message, the server's processes (ours only)
    machine_cpu_ms: float = 0.0  # per message, busy time of all CPUs (other load included)
    machine_busy: float = 0.0  # share of all CPUs busy, workers started -> all sent
    in_flight_at_kill: int = 0
    duplicates_outside_in_flight: int = 0
    rate_until_lease: float = 0.0  # kill run: the rows not held by the killed worker


# the processes the benchmark starts ---------------------------------------------

def serve_telegram(port: int, counts_port: int, chats: int) -> None:
    """The fake Bot API, plus on a second port /sent (how many requests it recorded as sent,
    cheap to ask often, unlike its /_fake/stats) and /counts (messages per chat, times)."""
    from aiohttp import web

    from tests.fakes.telegram_server import FakeTelegramServer

    async def main() -> None:
        server = FakeTelegramServer(token=TOKEN)
        await server.start(port)
        for chat_id in range(1, chats + 1):
            server.add_chat(chat_id)

        async def counts(_request: web.Request) -> web.Response:
            messages = [e for e in server.sent if e["method"] == "sendMessage"]
            return web.json_response({"chats": Counter(str(e["chat_id"]) for e in messages),
                                      "times": [e["time"] for e in messages]})

        async def sent(_request: web.Request) -> web.Response:
            return web.json_response(len(server.sent))

        app = web.Application()
        app.router.add_get("/sent", sent)
        app.router.add_get("/counts", counts)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", counts_port).start()
        print("ready", flush=True)
        await asyncio.Event().wait()

    asyncio.run(main())


def run_worker() -> None:
    """One worker as `python -m assistant worker` runs it, with rate limits off."""
    from assistant.runtime import run_worker as worker
    from assistant.settings import Settings

    asyncio.run(worker(Settings.from_env(os.environ), rate_limits=False))


def spawn(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, __file__, *args], cwd=REPO, text=True,
                            stdout=subprocess.PIPE, env=env)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    """User and system CPU a running process has used (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children_cpu_seconds(parent: int | None) -> float | None:
    """CPU used by the running children of `parent` (PostgreSQL's backends and helpers)."""
    if parent is None:
        return None
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # ended meanwhile
            continue
        if int(fields[1]) == parent:
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of all CPUs since boot (/proc/stat; idle and iowait not busy)."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    total = sum(values[:8]) / os.sysconf("SC_CLK_TCK")
    return total - (values[3] + values[4]) / os.sysconf("SC_CLK_TCK"), total


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.load(response)


# one run ----------------------------------------------------------------------------

class Bench:
    """Databases on one server, a fake Telegram per run, worker processes."""

    def __init__(self, admin_url: str, postmaster: int | None = None):
        self.admin_url, self.postmaster = admin_url, postmaster

    def database(self, name: str, create: bool = True) -> str:
        """A new empty database `name` (create=False: drop it)."""
        from tests.pg import recreate_database

        return recreate_database(self.admin_url, name, create)

    def run(self, rows: int, workers: int, kill: bool = False) -> Run:
        name = f"bench_workers_{workers}{'_kill' if kill else ''}"
        url = self.database(name)
        db = Database(url)
        db.create_all()
        with db.session() as session:
            Outbox(db).add(session, (OutboxMessage("telegram", str(n), TEXT, f"bench:{n}")
                                     for n in range(1, rows + 1)))
        port, counts_port = free_port(), free_port()
        server = spawn("_serve-telegram", str(port), str(counts_port), str(rows))
        assert server.stdout is not None and server.stdout.readline().strip() == "ready"
        env = dict(os.environ, DATABASE_URL=url, TELEGRAM_BOT_TOKEN=TOKEN,
                   TELEGRAM_API_URL=f"http://127.0.0.1:{port}", KNOWLEDGE_DIR=str(SAMPLE_KNOWLEDGE),
                   LOG_LEVEL="WARNING", METRICS_PORT="0")
        procs: list[subprocess.Popen[str]] = []
        try:
            started = time.perf_counter()
            procs = [spawn("_worker", env=env) for _ in range(workers)]
            # CPU is counted from the first message on, as the send rate: not the start-up.
            progress = f"http://127.0.0.1:{counts_port}/sent"
            self._wait_for_first(progress, timeout=120)
            postgres_before, machine_before = children_cpu_seconds(self.postmaster), machine_cpu()
            server_before = cpu_seconds(server.pid)
            workers_before = {p.pid: cpu_seconds(p.pid) for p in procs}
            victim = self._kill_halfway(db, progress, rows, procs[0]) if kill else None
            self._wait_until_sent(db, progress, rows, timeout=900 + (LEASE_SECONDS if kill else 0))
            wall = time.perf_counter() - started
            machine_after, postgres_after = machine_cpu(), children_cpu_seconds(self.postmaster)
            # The killed worker's CPU is lost with it: the figure counts the others only.
            worker_cpu = sum(cpu_seconds(p.pid) - workers_before[p.pid]
                             for p in procs if p.poll() is None)
            server_cpu = cpu_seconds(server.pid) - server_before
            stats = get_json(f"http://127.0.0.1:{port}/_fake/stats")
            counts = get_json(f"http://127.0.0.1:{counts_port}/counts")
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
            for proc in procs:
                proc.wait(30)
            server.terminate()
            server.wait(30)
            db.dispose()
            self.database(name, create=False)
        result = self._result(workers, rows, wall, stats["messages_sent_per_second"],
                              counts["chats"], victim)
        result.worker_cpu_ms = worker_cpu * 1000 / rows
        result.server_cpu_ms = server_cpu * 1000 / rows
        if postgres_before is not None and postgres_after is not None:
            result.postgres_cpu_ms = (postgres_after - postgres_before) * 1000 / rows
        busy, total = (after - before for after, before in zip(machine_after, machine_before))
        result.machine_cpu_ms, result.machine_busy = busy * 1000 / rows, busy / total
        if victim is not None:
            result.rate_until_lease = _rate_of_first(sorted(counts["times"]), rows - len(victim))
        return result

    def _kill_halfway(self, db: Database, progress: str, rows: int,
                      proc: subprocess.Popen[str]) -> set[str]:
        """SIGKILL `proc` once half the rows are out; the chats of the rows it held."""
        while get_json(progress) < rows // 2:
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        worker_id = f"{socket.gethostname()}:{proc.pid}"[:64]
        with db.engine.connect() as connection:
            held = connection.execute(text(
                "SELECT chat_id FROM outbox WHERE status = 'sending' AND claimed_by = :worker"),
                {"worker": worker_id}).scalars().all()
        return set(held)

    @staticmethod
    def _wait_for_first(progress: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while get_json(progress) == 0:
            if time.monotonic() > deadline:
                raise TimeoutError(f"no message after {timeout:.0f} s")
            time.sleep(0.01)

    @staticmethod
    def _wait_until_sent(db: Database, progress: str, rows: int, timeout: float) -> None:
        """Until every row is marked sent; the database is asked only once the fake server has
        seen as many messages (counting 20,000 rows ten times a second costs PostgreSQL CPU)."""
        outbox, deadline = Outbox(db), time.monotonic() + timeout
        while get_json(progress) < rows or outbox.counts()["sent"] < rows:
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {outbox.counts()} after {timeout:.0f} s")
            time.sleep(0.05)

    @staticmethod
    def _result(workers: int, rows: int, wall: float, rate: float, counts: dict[str, int],
                held: set[str] | None) -> Run:
        missed = sum(1 for n in range(1, rows + 1) if counts.get(str(n), 0) == 0)
        twice = {chat for chat, n in counts.items() if n > 1}
        result = Run(workers, rows, wall, rate, missed, sum(counts[c] - 1 for c in twice))
        if held is not None:
            result.in_flight_at_kill = len(held)
            result.duplicates_outside_in_flight = len(twice - held)
        return result


def _rate_of_first(times: list[float], count: int) -> float:
    """Messages per second from the first message to the `count`th."""
    if count < 2 or len(times) < count or times[count - 1] == times[0]:
        return 0.0
    return (count - 1) / (times[count - 1] - times[0])


def report(result: Run, kill: bool = False) -> None:
    postgres = ("?" if result.postgres_cpu_ms is None else f"{result.postgres_cpu_ms:.2f}")
    line = (f"{result.workers} worker(s){' (one killed)' if kill else ''}: {result.rows} rows, "
            f"{result.rows / result.wall_seconds:,.0f} msg/s overall ({result.wall_seconds:.1f} s "
            f"from start), {result.send_rate:,.0f} msg/s while sending; CPU per message "
            f"{result.worker_cpu_ms:.2f} ms in workers, {result.server_cpu_ms:.2f} ms in the fake "
            f"server, {postgres} ms in PostgreSQL, {result.machine_cpu_ms:.2f} ms machine-wide "
            f"(CPUs {result.machine_busy:.0%} busy); missed {result.missed}, "
            f"duplicates {result.duplicates}")
    if kill:
        line += (f" (killed worker held {result.in_flight_at_kill} rows; "
                 f"duplicates outside them: {result.duplicates_outside_in_flight}; "
                 f"{result.rate_until_lease:,.0f} msg/s until the lease)")
    print(line, flush=True)


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "_serve-telegram":
        serve_telegram(*(int(a) for a in sys.argv[2:5]))
        return 0
    if len(sys.argv) > 1 and sys.argv[1] == "_worker":
        run_worker()
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--kill-workers", type=int, default=3, help="0 skips the kill run")
    parser.add_argument("--url", help="a maintenance database URL (default: a throw-away server)")
    args = parser.parse_args()
    cluster = None
    if args.url is None:
        from tests.pg import start_cluster

        cluster = start_cluster(options=DURABLE)
    try:
        postmaster = None if cluster is None else int(
            (cluster.data / "postmaster.pid").read_text().split()[0])
        bench = Bench(args.url or cluster.url("postgres"), postmaster)  # type: ignore[union-attr]
        print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; PostgreSQL "
              f"{'at ' + args.url if args.url else 'throw-away, fsync on'}", flush=True)
        for workers in args.workers:
            report(bench.run(args.rows, workers))
        if args.kill_workers:
            report(bench.run(args.rows, args.kill_workers, kill=True), kill=True)
        print(f"load average at the end {os.getloadavg()[0]:.1f}", flush=True)
    finally:
        if cluster is not None:
            cluster.stop()
            shutil.rmtree(cluster.folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
