"""Seeded kill trials: SIGKILL `run` at a random moment of a mixed workload, restart, lose nothing.

Each trial (seed 1..20, `random.Random(seed)`) seeds 50 subscribers of its own district,
has the admin post news to them, then lets residents send `/feedback <text>` at random
moments while the news goes out, and kills the process at another random moment.
A process started ahead (`Deployment.spare`: the program imported, waiting) takes over
at once: the same `python -m assistant run`, only its imports done before the kill, so
twenty restarts fit the time budget. The dead process's 30 s leases (outbox rows, and
updates taken in but not handled) are expired by hand (`expire_leases`), which is what
waiting would do. Then:

- every subscriber got the news at least once, and duplicates <= rows "sending" at the kill;
- every /feedback, sent before or after the kill, is filed exactly once, and its writer
  is told that reference: once, or exactly twice when the kill fell between the answer
  and the handled mark (the restart replays the update: the answer is at least once,
  the filing is not repeated);
- no update is left pending, no reference was given twice.

The random kills rarely land in the few milliseconds a /feedback is in the bot's hands,
so two more kills land there on purpose: as the getUpdates that would hand it over
answers (the bot never gets it), and as the bot's next getUpdates confirms it to
Telegram (taken in, most likely not yet answered: only the bot's database has it).

The process that took over runs the next trial. Run with -s for the per-trial figures.
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import pytest

from tests.e2e.harness import REFERENCE, Deployment, duplicates, new_user_id, per_chat
from tests.fakes.telegram_api import ApiError

ENFORCE_LIMITS = False  # speed; the process still keeps its own 30/s
SEEDS = range(1, 21)
SUBSCRIBERS = 50
FEEDBACKS = 4
WINDOW_SECONDS = 2.0  # the news takes ~1.7 s at 30/s; the kill and the feedback fall in here
DRAIN_SECONDS = 0.2  # after the kill, for requests that reached the server just before it
# Twenty city districts, one per trial, so that no trial's news reaches another's residents.
DISTRICTS = [("karakallio", "Karakallio"), ("laaksolahti", "Laaksolahti"),
             ("lintuvaara", "Lintuvaara"), ("lippajarvi", "Lippajärvi"),
             ("sepankyla", "Sepänkylä"), ("viherlaakso", "Viherlaakso"),
             ("haukilahti", "Haukilahti"), ("laajalahti", "Laajalahti"), ("mankkaa", "Mankkaa"),
             ("niittykumpu", "Niittykumpu"), ("otaniemi", "Otaniemi"), ("westend", "Westend"),
             ("matinkyla", "Matinkylä"), ("olari", "Olari"), ("henttaa", "Henttaa"),
             ("espoonlahti", "Espoonlahti"), ("kaitaa", "Kaitaa"), ("latokaski", "Latokaski"),
             ("soukka", "Soukka"), ("kauklahti", "Kauklahti")]


class Outcome(str, Enum):
    """Where one resident's /feedback was when the process was killed."""

    HANDLED = "handled before the kill"
    PENDING = "taken in, unhandled at the kill: replayed"
    ANSWERED_PENDING = "answered, not marked handled at the kill: replayed, answered again"
    NOT_TAKEN = "not yet taken in at the kill"  # still at Telegram, unconfirmed
    AFTER_KILL = "sent after the kill"


@dataclass
class Trial:
    seed: int
    kill_at: float = 0.0
    delivered_at_kill: int = 0
    in_flight: int = 0
    duplicates: int = 0
    restart_seconds: float = 0.0
    seconds: float = 0.0
    outcomes: dict[int, Outcome] = field(default_factory=dict)

    def line(self) -> str:
        fates = Counter(o.name.lower() for o in self.outcomes.values())
        return (f"seed {self.seed:2d}: kill at {self.kill_at:4.2f} s, {self.delivered_at_kill:2d}/"
                f"{SUBSCRIBERS} delivered, in flight {self.in_flight:2d}, duplicates "
                f"{self.duplicates:2d}; restart {self.restart_seconds:3.1f} s, trial "
                f"{self.seconds:4.1f} s; feedback {dict(sorted(fates.items()))}")


@pytest.fixture(scope="module")
def trials(deployment: Deployment) -> Iterator[list[Trial]]:
    """The first process, and the trials' figures, printed at the end (with -s)."""
    deployment.start()
    done: list[Trial] = []
    yield done
    print("\n[kill trials]\n" + "\n".join(t.line() for t in done))
    if done:
        fates = Counter(o.value for t in done for o in t.outcomes.values())
        print(f"in flight {sum(t.in_flight for t in done)}, duplicates "
              f"{sum(t.duplicates for t in done)} over {len(done)} kills; mean trial "
              f"{sum(t.seconds for t in done) / len(done):.1f} s; feedback, each filed once "
              f"and answered with its reference: {dict(fates)}")


@pytest.mark.parametrize("seed", SEEDS)
def test_random_kill_loses_no_news_and_no_feedback(
        deployment: Deployment, trials: list[Trial], seed: int) -> None:
    rng = random.Random(seed)
    trial = Trial(seed)
    started = time.monotonic()
    server = deployment.server
    district_id, district = DISTRICTS[seed - 1]
    subscribers = [new_user_id() for _ in range(SUBSCRIBERS)]
    deployment.seed_subscribers(subscribers, district_id)
    spare = deployment.spare()
    token = f"E2E-TRIAL-{seed}-{uuid.uuid4().hex[:8]}"
    item = deployment.post_news(district, f"Uutinen {token}")
    members = set(subscribers)

    def delivered() -> int:
        return server.count_sent(lambda e: e["chat_id"] in members and token in (e["text"] or ""))

    # The workload from now on: feedback at random moments, and the kill at one of them.
    writers = {new_user_id(): f"Palaute {seed}-{n} {uuid.uuid4().hex[:8]}"
               for n in range(FEEDBACKS)}
    events = sorted([(rng.uniform(0, WINDOW_SECONDS), uid) for uid in writers]
                    + [(rng.uniform(0, WINDOW_SECONDS), 0)])
    update_ids: dict[int, int] = {}
    fate = Fate()
    begin = time.monotonic()
    for at, uid in events:
        time.sleep(max(0.0, begin + at - time.monotonic()))
        if uid:
            update_ids[uid] = server.send_text(uid, f"/feedback {writers[uid]}")["update_id"]
            continue
        deployment.kill()
        trial.kill_at = time.monotonic() - begin
        trial.in_flight = deployment.outbox_counts(item)["sending"]
        fate = Fate.after_kill(deployment, update_ids)
        trial.delivered_at_kill = delivered()
    deployment.expire_leases()
    deployment.take_over(spare)
    trial.restart_seconds = deployment.ready_seconds[-1]

    deployment.wait(lambda: deployment.outbox_counts(item) == {"sent": SUBSCRIBERS}, 60,
                    f"seed {seed}: every outbox row of the news to be sent")
    received = per_chat(server.sent(), token)
    received.pop(deployment.admin_id, None)  # the admin's preview
    trial.duplicates = duplicates(received)
    expected = {uid: fate.answers_expected(uid, update_ids[uid]) for uid in writers}
    deployment.wait(lambda: all(server.message_count(uid) >= n for uid, n in expected.items())
                    and not deployment.pending_updates(), 60,
                    f"seed {seed}: answers to every /feedback, no update left pending")
    trial.outcomes = {uid: fate.outcome(uid, update_ids[uid]) for uid in writers}
    trial.seconds = time.monotonic() - started
    trials.append(trial)

    assert set(received) == members, (
        f"seed {seed}: missing {len(members - set(received))}, "
        f"strangers {len(set(received) - members)}")
    assert trial.duplicates <= trial.in_flight, trial.line()
    told = [_filed_once_and_told(deployment, uid, text, expected[uid], trial)
            for uid, text in writers.items()]
    assert len(set(told)) == len(told), f"a reference was given for two feedbacks: {told}"
    assert not deployment.query("SELECT reference FROM feedback_item GROUP BY reference "
                                "HAVING count(*) > 1"), "a reference was given twice"


# Moments of a feedback's journey to kill the process at, on the fake server's thread,
# and what the bot had done with it then.
HANDED_OVER = "as Telegram hands it over"  # the getUpdates batch holding it is answered
FORGOTTEN = "as Telegram forgets it"  # the bot's next getUpdates asks for updates past it
ANSWERED = "as its answer reaches Telegram"  # filed, the answer is not recorded
EXPECTED = {HANDED_OVER: {Outcome.NOT_TAKEN}, ANSWERED: {Outcome.PENDING},
            FORGOTTEN: {Outcome.PENDING, Outcome.ANSWERED_PENDING, Outcome.HANDLED}}


@pytest.mark.parametrize("moment", EXPECTED)
def test_a_kill_as_a_feedback_changes_hands_loses_nothing(deployment: Deployment,
                                                          moment: str) -> None:
    server = deployment.server
    if deployment.current is None or not deployment.current.running():
        deployment.start()
    process = deployment.current
    assert process is not None
    spare = deployment.spare()
    uid = new_user_id()
    text = f"Palaute {moment} {uuid.uuid4().hex[:8]}"
    switch = KillSwitch(process.pid, text, uid)
    server.call(switch.install, server.server, moment)
    update_id = server.send_text(uid, f"/feedback {text}")["update_id"]
    assert switch.killed.wait(30), f"the bot never got to the moment {moment!r}"
    process.popen.wait(timeout=10)  # type: ignore[union-attr]
    fate = Fate.after_kill(deployment, {uid: update_id})
    outcome = fate.outcome(uid, update_id)
    filed = deployment.query("SELECT count(*) FROM feedback_item WHERE text = ?", text)
    deployment.expire_leases()
    deployment.take_over(spare)
    expected = fate.answers_expected(uid, update_id)
    deployment.wait(lambda: server.message_count(uid) >= expected
                    and not deployment.pending_updates(), 60,
                    f"{expected} answer(s) to the feedback killed {moment}")
    _filed_once_and_told(deployment, uid, text, expected, Trial(0, outcomes={uid: outcome}))
    print(f"\n[kill {moment}] {outcome.value}; filed at the kill: {filed[0][0]}; "
          f"answered {expected} time(s), filed once")
    assert outcome in EXPECTED[moment]
    if moment == ANSWERED:  # filed before the kill: the replay found it, filed nothing new
        assert filed == [(1,)]


class KillSwitch:
    """SIGKILLs the bot once, from inside the fake server, at a moment of one feedback."""

    def __init__(self, pid: int, text: str, uid: int):
        self.pid, self.text, self.uid = pid, text, uid
        self.killed = threading.Event()
        self._restore: list[Any] = []

    def install(self, fake: Any, moment: str) -> None:
        if moment == HANDED_OVER:
            take = fake._take

            def taking(limit: int) -> list[dict]:
                batch = take(limit)
                if any(self._carries(u) for u in batch):
                    self._kill()
                return batch

            fake._take = taking
            self._restore.append(lambda: fake.__dict__.pop("_take"))
        elif moment == FORGOTTEN:
            confirm = fake._confirm

            def confirming(offset: int) -> None:
                if any(u["update_id"] < offset and self._carries(u) for u in fake._pending):
                    self._kill()
                confirm(offset)

            fake._confirm = confirming
            self._restore.append(lambda: fake.__dict__.pop("_confirm"))
        else:
            name, send = fake._methods["sendmessage"]

            async def sending(params: dict) -> Any:
                if str(params.get("chat_id")) == str(self.uid):
                    self._kill()
                    raise ApiError(500, "the bot was killed before this was recorded")
                return await send(params)

            fake._methods["sendmessage"] = (name, sending)
            self._restore.append(lambda: fake._methods.update(sendmessage=(name, send)))

    def _carries(self, update: dict) -> bool:
        return self.text in ((update.get("message") or {}).get("text") or "")

    def _kill(self) -> None:
        if self.killed.is_set():
            return
        os.killpg(self.pid, signal.SIGKILL)
        for restore in self._restore:  # the next process runs untouched
            restore()
        self.killed.set()


@dataclass
class Fate:
    """What the killed process had done with each /feedback sent before the kill."""

    answered: dict[int, int] = field(default_factory=dict)  # resident -> answers at the kill
    handled: set[int] = field(default_factory=set)  # update ids marked handled
    pending: set[int] = field(default_factory=set)  # update ids taken in, not handled

    @classmethod
    def after_kill(cls, deployment: Deployment, update_ids: dict[int, int]) -> "Fate":
        time.sleep(DRAIN_SECONDS)  # the server finishes requests that reached it before the kill
        sent = set(update_ids.values())
        return cls({uid: deployment.server.message_count(uid) for uid in update_ids},
                   deployment.handled_updates() & sent, deployment.pending_updates() & sent)

    def answers_expected(self, uid: int, update_id: int) -> int:
        """A handled update was answered; any other is (re)handled by the restart, and
        answered once more: a second time if its answer had left before the kill."""
        before = self.answered.get(uid, 0)
        return before if update_id in self.handled else before + 1

    def outcome(self, uid: int, update_id: int) -> Outcome:
        if uid not in self.answered:
            return Outcome.AFTER_KILL
        if update_id in self.handled:
            return Outcome.HANDLED
        if update_id in self.pending:
            return Outcome.ANSWERED_PENDING if self.answered[uid] else Outcome.PENDING
        return Outcome.NOT_TAKEN


def _filed_once_and_told(deployment: Deployment, uid: int, text: str, answers: int,
                         trial: Trial) -> str:
    """The feedback is in the database once, and every answer the writer got names it."""
    rows = deployment.query("SELECT reference FROM feedback_item WHERE text = ?", text)
    assert len(rows) == 1, f"seed {trial.seed}: resident {uid}'s feedback filed {len(rows)} times"
    [(reference,)] = rows
    got = [m["text"] or "" for m in deployment.server.messages_to(uid)]
    assert len(got) == answers, (
        f"seed {trial.seed}: resident {uid} ({trial.outcomes[uid].value}) got {len(got)} "
        f"answers, expected {answers}: {got}")
    told = {m.group() for t in got if (m := REFERENCE.search(t))}
    assert told == {reference}, f"resident {uid} was told {told}, the database has {reference}"
    return reference
