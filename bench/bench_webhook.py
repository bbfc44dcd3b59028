"""Webhook benchmark, run by hand (never by pytest): 1, 2 and 3 `run` processes in Telegram
webhook mode on one PostgreSQL, behind a round-robin proxy.

    .venv/bin/python bench/bench_webhook.py [--residents 300] [--messages 10]
                                            [--processes 1 2 3]
                                            [--url postgresql+psycopg://…/postgres]

For each process count: a new database (`db upgrade`), one helper process holding the fake
Bot API (tests/fakes/telegram_server.py, posting webhooks over up to 40 connections, as
Telegram does) and the round-robin proxy (tests/fakes/load_balancer.py), and that many
bot processes: `assistant.runtime.run_platforms`, which is `python -m assistant run`, with
the adapter's rate limiter off. The knowledge base is the shipped one (without feeds).

After a warm-up, --residents residents each send --messages questions, all queued at
once; the figure is handled messages per second from the first update posted to the
last reply received. Also: CPU per message (bots, the helper, PostgreSQL), peak RSS of
each bot process, and per resident whether every question got exactly its answer, and
in the order asked.

Without --url it starts a throw-away PostgreSQL with durable settings (fsync on) through
tests/pg.py; --url names a maintenance database of a server you run.
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
import tempfile
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

TOKEN = "123456789:TEST-espoo-token"
SECRET = "bench-Webhook_secret-1"
HOOK_PATH = "/telegram/hook"
DURABLE = "-c max_connections=100"  # PostgreSQL's defaults otherwise (fsync, synchronous_commit)
QUESTIONS = [  # one per topic of the shipped knowledge base, so each has its own answer
    "Milloin on seuraava asukasilta?", "Miten voin vaikuttaa kaavoitukseen?",
    "Mikä on kansalaisaloite?", "Miten teen kuntalaisaloitteen?",
    "Milloin ovat seuraavat kuntavaalit?", "Miten saan yhteyden valtuutettuun?",
    "Miten nuori voi vaikuttaa Espoossa?", "Onko Espoossa osallistuvaa budjetointia?",
    "Mikä on otakantaa.fi?", "Milloin valtuusto kokoontuu?",
]
WARM_UP_USER, FIRST_USER = 10_000_001, 20_000_001


# the helper process: the fake Bot API and the proxy ---------------------------------

def serve(backends: list[int]) -> None:
    """Fake Telegram, the proxy in front of `backends` and a control port, on one loop."""
    from aiohttp import web

    from tests.fakes.load_balancer import RoundRobinProxy
    from tests.fakes.telegram_server import FakeTelegramServer

    async def main() -> None:
        server = FakeTelegramServer(token=TOKEN)
        await server.start()
        proxy = RoundRobinProxy([f"http://127.0.0.1:{p}" for p in backends], keep_log=False)
        await proxy.start()
        mark: dict[str, float] = {"t0": 0.0, "sent": 0, "attempts": 0}

        async def inject(request: web.Request) -> web.Response:
            order = await request.json()
            mark.update(t0=time.monotonic(), sent=len(server.sent),
                        attempts=len(server.delivery.attempts))
            users = range(order["first_user"], order["first_user"] + order["residents"])
            for n in range(order["messages"]):  # everyone's first message, then second...
                for user in users:
                    server.send_text(server.users.get(user) or server.user(user, "Asukas", "fi"),
                                     order["texts"][n % len(order["texts"])])
            return web.json_response({"queued": order["messages"] * order["residents"]})

        async def stats(request: web.Request) -> web.Response:
            sends = [e["time"] for e in server.sent[int(mark["sent"]):]]
            attempts = server.delivery.attempts[int(mark["attempts"]):]
            return web.json_response({
                "sent": len(sends), "last_send": max(sends, default=0.0),
                "first_post": min((a["time"] for a in attempts), default=0.0),
                "posts": len(attempts),
                "not_2xx": sum(1 for a in attempts if not 200 <= (a["status"] or 0) < 300),
                "given_up": len(server.failed_webhook_deliveries),
                "most_in_flight": server.delivery.most_in_flight,
                "forwarded": proxy.forwarded})

        async def replies(request: web.Request) -> web.Response:
            first, count = int(request.query["first"]), int(request.query["count"])
            return web.json_response({str(c): server.texts_to(c)
                                      for c in range(first, first + count)})

        app = web.Application()
        app.router.add_post("/inject", inject)
        app.router.add_get("/stats", stats)
        app.router.add_get("/replies", replies)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        print(json.dumps({"telegram": server.url, "proxy": proxy.url,
                          "control": f"http://127.0.0.1:{runner.addresses[0][1]}"}), flush=True)
        await asyncio.Event().wait()

    asyncio.run(main())


# a bot process: `run` with the adapter's rate limiter off ---------------------------

def bot() -> None:
    import logging

    import adapters.telegram as telegram
    from assistant.runtime import run_platforms
    from assistant.settings import Settings

    logging.basicConfig(level=logging.WARNING)
    limited = telegram.TelegramAdapter.__init__

    def unlimited(self, settings, **options):  # type: ignore[no-untyped-def]
        limited(self, settings, **{**options, "rate_limits": False})

    telegram.TelegramAdapter.__init__ = unlimited  # type: ignore[method-assign]
    asyncio.run(run_platforms(Settings.from_env()))


# measuring ----------------------------------------------------------------------------

def spawn(*args: str, env: dict[str, str] | None = None, log: Path | None = None
          ) -> subprocess.Popen[str]:
    out = log.open("a") if log else subprocess.PIPE
    return subprocess.Popen([sys.executable, __file__, *args], cwd=REPO, text=True, env=env,
                            stdout=out, stderr=subprocess.STDOUT if log else None)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def children_cpu_seconds(parent: int | None) -> float | None:
    """CPU of `parent`'s children, living and exited (PostgreSQL's backends: a connection
    beyond the pool's size is closed after use, and its backend exits), None if unknown."""
    if parent is None:
        return None
    fields = Path(f"/proc/{parent}/stat").read_text().rsplit(")", 1)[1].split()
    total = (int(fields[13]) + int(fields[14])) / os.sysconf("SC_CLK_TCK")  # exited ones
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        fields = text.rsplit(")", 1)[1].split()
        if int(fields[1]) == parent:
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def get_json(url: str, body: dict | None = None) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.load(response)


def wait(condition: Callable[[], bool], timeout: float, what: str,
         processes: Sequence[subprocess.Popen[str]] = ()) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        for process in processes:
            if process.poll() is not None:
                raise RuntimeError(f"a process exited ({process.returncode}) waiting for {what}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.05)


@dataclass
class Run:
    processes: int
    messages: int
    seconds: float = 0.0
    bot_cpu_ms: float = 0.0
    helper_cpu_ms: float = 0.0
    postgres_cpu_ms: float | None = None
    peak_rss_mb: list[float] = field(default_factory=list)
    shares: list[int] = field(default_factory=list)
    wrong: int = 0  # residents whose answers were missing, doubled or not theirs
    out_of_order: int = 0  # residents who got the right answers in another order
    posts_not_2xx: int = 0
    given_up: int = 0
    most_in_flight: int = 0
    connections: int = 0  # PostgreSQL sessions opened during the measurement
    transactions: int = 0  # PostgreSQL transactions (commits and rollbacks) meanwhile

    @property
    def rate(self) -> float:
        return self.messages / self.seconds if self.seconds else 0.0


class Bench:
    def __init__(self, admin_url: str, knowledge: Path, logs: Path,
                 postmaster: int | None = None):
        self.admin_url, self.knowledge, self.logs = admin_url, knowledge, logs
        self.postmaster = postmaster

    def database(self, name: str, create: bool = True) -> str:
        from tests.pg import recreate_database

        return recreate_database(self.admin_url, name, create)

    def run(self, processes: int, residents: int, messages: int) -> Run:
        name = f"bench_webhook_{processes}"
        url = self.database(name)
        ports = [free_port() for _ in range(processes)]
        helper = spawn("_serve", *map(str, ports))
        bots: list[subprocess.Popen[str]] = []
        try:
            assert helper.stdout is not None
            urls = json.loads(helper.stdout.readline())
            env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(REPO),
                   "HOME": os.environ.get("HOME", "/tmp"), "DATABASE_URL": url,
                   "TELEGRAM_BOT_TOKEN": TOKEN, "TELEGRAM_API_URL": urls["telegram"],
                   "TELEGRAM_WEBHOOK_URL": urls["proxy"] + HOOK_PATH,
                   "TELEGRAM_WEBHOOK_SECRET": SECRET, "KNOWLEDGE_DIR": str(self.knowledge),
                   "QUIET_HOURS": "", "LOG_LEVEL": "WARNING"}
            upgrade = subprocess.run([sys.executable, "-m", "assistant", "db", "upgrade"],
                                     cwd=REPO, env=env, capture_output=True, text=True)
            assert upgrade.returncode == 0, upgrade.stderr
            expected = self._expected(env)
            for index, port in enumerate(ports):
                bots.append(spawn("_bot", env={**env, "TELEGRAM_WEBHOOK_PORT": str(port)},
                                  log=self.logs / f"{name}-{index + 1}.log"))
            wait(lambda: all(listening(p) for p in ports), 120, "the bots to listen", bots)
            control = urls["control"]
            self._ask_all(control, WARM_UP_USER, 20, 2, bots)  # imports, caches, connections
            return self._measure(control, processes, residents, messages, expected, bots,
                                 helper)
        finally:
            for process in bots:
                if process.poll() is None:
                    process.send_signal(signal.SIGTERM)
            for process in bots:
                process.wait(30)
            helper.terminate()
            helper.wait(30)
            self.database(name, create=False)

    def _measure(self, control: str, processes: int, residents: int, messages: int,
                 expected: dict[str, str], bots: list[subprocess.Popen[str]],
                 helper: subprocess.Popen[str]) -> Run:
        run = Run(processes, residents * messages)
        bots_before = sum(cpu_seconds(b.pid) for b in bots)
        helper_before = cpu_seconds(helper.pid)
        postgres_before = children_cpu_seconds(self.postmaster)
        forwarded_before = get_json(f"{control}/stats")["forwarded"]
        database_before = self._database_stats(processes)
        stats = self._ask_all(control, FIRST_USER, residents, messages, bots)
        run.bot_cpu_ms = (sum(cpu_seconds(b.pid) for b in bots) - bots_before) * 1000 / run.messages
        run.helper_cpu_ms = (cpu_seconds(helper.pid) - helper_before) * 1000 / run.messages
        postgres_after = children_cpu_seconds(self.postmaster)
        if postgres_before is not None and postgres_after is not None:
            run.postgres_cpu_ms = (postgres_after - postgres_before) * 1000 / run.messages
        run.seconds = stats["last_send"] - stats["first_post"]
        run.shares = [a - b for a, b in zip(stats["forwarded"], forwarded_before)]
        run.posts_not_2xx, run.given_up = stats["not_2xx"], stats["given_up"]
        run.most_in_flight = stats["most_in_flight"]
        time.sleep(1.0)  # anything sent twice arrives too; PostgreSQL's statistics catch up
        run.connections, run.transactions = (after - before for after, before in zip(
            self._database_stats(processes), database_before))
        run.peak_rss_mb = [peak_rss_mb(b.pid) for b in bots]
        got = get_json(f"{control}/replies?first={FIRST_USER}&count={residents}")
        asked = [expected[QUESTIONS[n % len(QUESTIONS)]] for n in range(messages)]
        for texts in got.values():
            if sorted(texts) != sorted(asked):
                run.wrong += 1
            elif texts != asked:
                run.out_of_order += 1
        return run

    def _database_stats(self, processes: int) -> tuple[int, int]:
        """(connections ever opened, transactions) of the run's database (PostgreSQL 14+)."""
        from sqlalchemy import text

        from assistant.store.db import Database

        admin = Database(self.admin_url)
        try:
            with admin.engine.connect() as connection:
                row = connection.execute(text(
                    "SELECT sessions, xact_commit + xact_rollback FROM pg_stat_database "
                    "WHERE datname = :name"), {"name": f"bench_webhook_{processes}"}).one()
                return int(row[0]), int(row[1])
        finally:
            admin.dispose()

    @staticmethod
    def _ask_all(control: str, first_user: int, residents: int, messages: int,
                 bots: list[subprocess.Popen[str]]) -> dict:
        """Queue everyone's messages at once; the fake server's stats once all are answered."""
        get_json(f"{control}/inject", {"first_user": first_user, "residents": residents,
                                        "messages": messages, "texts": QUESTIONS})
        total = residents * messages
        stats: dict = {}

        def answered() -> bool:
            stats.update(get_json(f"{control}/stats"))
            return stats["sent"] >= total

        wait(answered, 600, f"{total} answers", bots)
        return stats

    @staticmethod
    def _expected(env: dict[str, str]) -> dict[str, str]:
        """What `python -m assistant ask` answers to each question."""
        result = subprocess.run([sys.executable, "-m", "assistant", "ask", "--json"], cwd=REPO,
                                env=env, input="\n".join(QUESTIONS) + "\n", capture_output=True,
                                text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        answers = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
        return {a["question"]: a["text"].strip() for a in answers}


def report(run: Run) -> None:
    postgres = f"{run.postgres_cpu_ms:.2f}" if run.postgres_cpu_ms is not None else "?"
    rss = ", ".join(f"{megabytes:.0f}" for megabytes in run.peak_rss_mb)
    print(f"{run.processes} process(es): {run.messages} messages in {run.seconds:.1f} s = "
          f"{run.rate:.0f} handled/s; shares {run.shares}; CPU per message "
          f"{run.bot_cpu_ms:.2f} ms bots, {run.helper_cpu_ms:.2f} ms fake Telegram + proxy, "
          f"{postgres} ms PostgreSQL; peak RSS {rss} MB; "
          f"residents with wrong answers {run.wrong}, right answers in another order "
          f"{run.out_of_order}; posts not 2xx {run.posts_not_2xx}, given up {run.given_up}, "
          f"most posts in flight {run.most_in_flight}; PostgreSQL: {run.connections} "
          f"connections opened, {run.transactions / run.messages:.1f} transactions per "
          f"message", flush=True)


def knowledge_without_feeds() -> Path:
    """The shipped districts and topics, without feeds.yaml: nothing reaches for the internet."""
    folder = Path(tempfile.mkdtemp(prefix="bench-webhook-kb-"))
    (folder / "districts.yaml").symlink_to(REPO / "knowledge" / "districts.yaml")
    (folder / "topics").symlink_to(REPO / "knowledge" / "topics")
    return folder


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_serve":
        return serve([int(p) for p in sys.argv[2:]])
    if len(sys.argv) > 1 and sys.argv[1] == "_bot":
        return bot()
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--residents", type=int, default=300)
    parser.add_argument("--messages", type=int, default=10,
                        help="per resident; keep it under the core's flood limit (20 a minute)")
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--url", help="a maintenance database of your own PostgreSQL server")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # so `finally` cleans up
    knowledge, logs = knowledge_without_feeds(), Path(tempfile.mkdtemp(prefix="bench-webhook-"))
    cluster = None
    try:
        if args.url:
            admin_url, postmaster = args.url, None
        else:
            from tests import pg

            cluster = pg.start_cluster(DURABLE)
            admin_url = cluster.url("postgres")
            postmaster = int((cluster.data / "postmaster.pid").read_text().split()[0])
        bench = Bench(admin_url, knowledge, logs, postmaster)
        print(f"{args.residents} residents x {args.messages} messages; bot logs in {logs}")
        for processes in args.processes:
            report(bench.run(processes, args.residents, args.messages))
        print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())} "
              f"on {os.cpu_count()} CPUs")
    finally:
        if cluster is not None:
            cluster.stop()
            shutil.rmtree(cluster.folder, ignore_errors=True)
        shutil.rmtree(knowledge, ignore_errors=True)


if __name__ == "__main__":
    main()
