"""The core's cost per message, in process (run by hand: `.venv/bin/python bench/bench_core.py`).

    .venv/bin/python bench/bench_core.py [--messages 4000] [--new-share 0.25] [--profile 30]

`Assistant.handle()` on the shipped knowledge base and a temporary SQLite file, for a
mix of messages like a busy day's: questions in Finnish, Swedish and English from both
evaluation sets (on- and off-topic, so unanswered questions are stored and grouped),
a share of them from residents writing for the first time, a few commands and topic
buttons. No adapter, no network: what the core itself costs per message on one CPU.

Two runs, each on a fresh database:

- *mix*: `--messages` messages drawn from the questions above, so a question comes
  back about five times, as popular questions do (the matcher remembers recent
  decisions, so repeats are cheap: the share of remembered ones is printed);
- *unseen*: every distinct evaluation question once, after a warm-up of commands
  and buttons only: the cost of questions the assistant has not seen before.

For each: the median and 95th percentile per message (wall clock, one message at a
time), CPU per message and messages per CPU second, SQL statements and commits per
message. `--profile N` also runs the mix under cProfile and prints the N costliest
functions.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import event  # noqa: E402

from assistant.core import Assistant  # noqa: E402
from assistant.flood import FloodGuard  # noqa: E402
from assistant.messages import Incoming  # noqa: E402
from assistant.settings import Settings  # noqa: E402

COMMANDS = ["/start", "/help", "/topics", "/apua", "/hjälp"]
HINTS = ["fi", "fi", "sv", "en", "de", ""]


def eval_questions() -> list[str]:
    questions = []
    for name in ("answer_quality.yaml", "answer_quality_holdout.yaml"):
        data = yaml.safe_load((ROOT / "tests/eval" / name).read_text("utf-8"))
        questions += [q["q"] for part in ("on_topic", "off_topic") for q in data[part]]
    return questions


def message_mix(count: int, new_share: float, seed: int = 11, question_share: float = 0.85,
                questions: list[str] | None = None) -> list[Incoming]:
    """`count` messages: 85 % questions, 8 % commands, 7 % topic buttons; `new_share` first
    contacts. With `questions`, those are asked in order, one per message, and nothing else."""
    rng = random.Random(seed)
    pool = eval_questions()
    topics = sorted(p.stem for p in (ROOT / "knowledge/topics").glob("*.yaml"))
    residents: list[int] = []
    mix = []
    for n in range(count):
        if not residents or rng.random() < new_share:
            residents.append(100_000 * seed + len(residents))  # seeds never share residents
            user = residents[-1]
        else:
            user = rng.choice(residents)
        roll = rng.random()
        text, choice = "", None
        if questions is not None:
            text = questions[n]
        elif roll < question_share:
            text = rng.choice(pool)
        elif roll < question_share + (1 - question_share) / 2:
            text = rng.choice(COMMANDS)
        else:
            choice = f"topic:{rng.choice(topics)}"
        mix.append(Incoming("telegram", str(user), str(user), text=text, choice=choice,
                            language_hint=HINTS[user % len(HINTS)], message_id=str(n)))
    return mix


class StatementCounter:
    """Counts SQL statements and commits on an engine (what a message costs the database)."""

    def __init__(self, engine) -> None:
        self.statements = self.commits = 0
        event.listen(engine, "before_cursor_execute", self._statement)
        event.listen(engine, "commit", self._commit)

    def _statement(self, *_args) -> None:
        self.statements += 1

    def _commit(self, *_args) -> None:
        self.commits += 1


def fresh_assistant(folder: Path, name: str) -> Assistant:
    settings = Settings.from_env({"DATABASE_URL": f"sqlite:///{folder}/{name}.db"})
    assistant = Assistant(settings)
    assistant.flood = FloodGuard(limit=10**9)  # the mix sends faster than a person types
    return assistant


async def timed_run(assistant: Assistant, mix: list[Incoming]) -> tuple[list[float], float]:
    timings = []
    cpu_start = time.process_time()
    for incoming in mix:
        start = time.perf_counter()
        replies = await assistant.handle(incoming)
        timings.append((time.perf_counter() - start) * 1000)
        assert replies, f"no reply to {incoming}"
    return timings, time.process_time() - cpu_start


def measure(name: str, assistant: Assistant, warmup: list[Incoming],
            mix: list[Incoming]) -> None:
    """Run `warmup` untimed, then `mix` timed, and print the figures."""
    counter = StatementCounter(assistant.db.engine)
    asyncio.run(timed_run(assistant, warmup))
    remembered = getattr(assistant.matcher, "_decide_words", None)  # recent decisions
    if remembered is not None:
        remembered.cache_clear()
    counter.statements = counter.commits = 0
    timings, cpu = asyncio.run(timed_run(assistant, mix))
    timings.sort()
    count = len(mix)
    asked = sum(1 for m in mix if m.text and not m.text.startswith("/"))
    hits = remembered.cache_info().hits if remembered is not None else 0
    print(f"{name}: {count} messages from {len({m.user_id for m in mix})} residents "
          f"(each new at their first message), {asked} questions ({hits} decided before), "
          f"load average {os.getloadavg()[0]:.2f}")
    print(f"  per message: median {statistics.median(timings):.3f} ms, "
          f"p95 {timings[int(0.95 * count)]:.3f} ms, mean {statistics.fmean(timings):.3f} ms")
    print(f"  CPU: {cpu:.2f} s = {1000 * cpu / count:.3f} ms per message = "
          f"{count / cpu:.0f} messages per CPU second")
    print(f"  SQL per message: {counter.statements / count:.2f} statements, "
          f"{counter.commits / count:.2f} transactions (read-only ones too)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=4000)
    parser.add_argument("--new-share", type=float, default=0.25,
                        help="share of messages that are a resident's first")
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--profile", type=int, default=0, metavar="N",
                        help="also profile the mix and print the N costliest functions")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-core-") as folder:
        run(args, Path(folder))


def run(args: argparse.Namespace, folder: Path) -> None:
    warmup = message_mix(args.warmup, args.new_share, seed=3)
    measure("mix", fresh_assistant(folder, "mix"), warmup,
            message_mix(args.messages, args.new_share))
    unseen = list(dict.fromkeys(eval_questions()))
    measure("unseen", fresh_assistant(folder, "unseen"),
            message_mix(args.warmup, args.new_share, seed=3, question_share=0.0),
            message_mix(len(unseen), args.new_share, seed=5, questions=unseen))
    if args.profile:
        profiled = fresh_assistant(folder, "profiled")
        asyncio.run(timed_run(profiled, warmup))
        profiler = cProfile.Profile()
        profiler.enable()
        asyncio.run(timed_run(profiled, message_mix(args.messages, args.new_share)))
        profiler.disable()
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(args.profile)
        pstats.Stats(profiler).sort_stats("tottime").print_stats(args.profile)


if __name__ == "__main__":
    main()
