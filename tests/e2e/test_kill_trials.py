"""Seeded kill trials: SIGKILL `run` at a random moment of a mixed workload, restart, lose nothing.

Each trial (seed 1..20, `random.Random(seed)`) seeds 50 subscribers of its own district,
has the admin post news to them, then lets residents send `/feedback <text>` at random
moments while the news goes out, and kills the process at another random moment.
A process started ahead (`Deployment.spare`: the program imported, waiting) takes over
at once: the same `python -m assistant run`, only its imports done before the kill, so
twenty restarts fit the time budget. The dead process's 30 s leases are expired by hand
(`expire_leases`), which is what waiting would do. Then:

- every subscriber got the news at least once, and duplicates <= rows "sending" at the kill;
- every feedback whose acknowledgement was sent is in the database once, under the
  reference the resident was told, and no reference was given twice;
- a feedback that was never acknowledged is only accepted when the kill explains it
  (filed but the answer lost, or taken in and lost: see `Outcome`), and is reported.

The process that took over runs the next trial. Run with -s for the per-trial figures.
"""

from __future__ import annotations

import random
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import Enum

import pytest

from tests.e2e.harness import REFERENCE, Deployment, duplicates, new_user_id, per_chat

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
    """What became of one resident's /feedback."""

    ACKNOWLEDGED = "acknowledged"
    ANSWER_LOST = "filed, answer lost in the kill"  # committed, the kill came before the send
    # Marked as seen, the kill came before filing; Telegram had it confirmed (PTB polls on).
    TAKEN_AND_LOST = "taken in, lost in the kill"
    # Marked as seen, the kill came before filing; Telegram gave it to the restarted process,
    # whose redelivery filter skipped it as already handled.
    SKIPPED_AS_SEEN = "taken in, lost in the kill, its redelivery skipped"
    # Fetched and confirmed (PTB's next getUpdates), the kill came before it was handled.
    CONFIRMED_AND_LOST = "confirmed to Telegram unhandled, lost in the kill"
    NEVER_HANDLED = "never handled"  # the restart had to handle it and did not: a bug


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
        lost = [o.value for o in self.outcomes.values() if o is not Outcome.ACKNOWLEDGED]
        return (f"seed {self.seed:2d}: kill at {self.kill_at:4.2f} s, {self.delivered_at_kill:2d}/"
                f"{SUBSCRIBERS} delivered, in flight {self.in_flight:2d}, duplicates "
                f"{self.duplicates:2d}; restart {self.restart_seconds:3.1f} s, trial "
                f"{self.seconds:4.1f} s; unacknowledged feedback: {lost or 'none'}")


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
              f"{sum(t.seconds for t in done) / len(done):.1f} s; feedback: {dict(fates)}")


@pytest.mark.parametrize("seed", SEEDS)
def test_random_kill_loses_no_news_and_no_acknowledged_feedback(
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
        fate = Fate.after_kill(deployment, sent=set(update_ids.values()))
        trial.delivered_at_kill = delivered()
    deployment.expire_leases()
    deployment.take_over(spare)
    trial.restart_seconds = deployment.ready_seconds[-1]

    deployment.wait(lambda: deployment.outbox_counts(item) == {"sent": SUBSCRIBERS}, 60,
                    f"seed {seed}: every outbox row of the news to be sent")
    received = per_chat(server.sent(), token)
    received.pop(deployment.admin_id, None)  # the admin's preview
    trial.duplicates = duplicates(received)
    due = [uid for uid, update_id in update_ids.items() if fate.still_due(update_id)]
    deployment.wait(lambda: server.chats_with_messages(due) == len(due), 60,
                    f"seed {seed}: answers to the {len(due)} /feedback the restart had to handle")
    trial.outcomes = _feedback_outcomes(deployment, writers, update_ids, fate)
    trial.seconds = time.monotonic() - started
    trials.append(trial)

    assert set(received) == members, (
        f"seed {seed}: missing {len(members - set(received))}, "
        f"strangers {len(set(received) - members)}")
    assert trial.duplicates <= trial.in_flight, trial.line()
    never = [uid for uid, o in trial.outcomes.items() if o is Outcome.NEVER_HANDLED]
    assert not never, f"seed {seed}: feedback the restart had to handle, unhandled: {never}"
    assert not deployment.query("SELECT reference FROM feedback_item GROUP BY reference "
                                "HAVING count(*) > 1"), "a reference was given twice"


@dataclass
class Fate:
    """Which updates the killed process had taken in: those the restart must not handle again."""

    sent: set[int] = field(default_factory=set)  # update ids sent before the kill
    seen: set[int] = field(default_factory=set)  # marked as handled in the database
    waiting: set[int] = field(default_factory=set)  # not yet confirmed to Telegram

    @classmethod
    def after_kill(cls, deployment: Deployment, sent: set[int]) -> "Fate":
        seen = {int(key) for (key,) in deployment.query(
            "SELECT update_key FROM processedupdate WHERE platform = 'telegram'")}
        time.sleep(DRAIN_SECONDS)  # the server finishes requests that reached it before the kill
        return cls(sent, seen & sent, deployment.server.unconfirmed_updates() & sent)

    def still_due(self, update_id: int) -> bool:
        """Sent after the kill, or still waiting at Telegram and not yet seen by the bot."""
        return update_id not in self.sent or (update_id in self.waiting
                                              and update_id not in self.seen)


def _feedback_outcomes(deployment: Deployment, writers: dict[int, str],
                       update_ids: dict[int, int], fate: Fate) -> dict[int, Outcome]:
    """Check each acknowledged feedback against the database; classify the others."""
    outcomes: dict[int, Outcome] = {}
    told: set[str] = set()
    for uid, text in writers.items():
        rows = deployment.query("SELECT reference FROM feedback_item WHERE text = ?", text)
        answers = deployment.server.messages_to(uid)
        references = [m.group() for a in answers if (m := REFERENCE.search(a["text"] or ""))]
        if references:
            assert len(answers) == 1, f"resident {uid} was answered twice: {answers}"
            assert rows == [(references[0],)], (
                f"resident {uid} was told {references[0]}, the database has {rows}")
            assert references[0] not in told, f"{references[0]} was given twice"
            told.add(references[0])
            outcomes[uid] = Outcome.ACKNOWLEDGED
            continue
        assert not answers, f"resident {uid} got no reference: {answers}"
        assert len(rows) <= 1, f"feedback filed {len(rows)} times: {rows}"
        update_id = update_ids[uid]
        outcomes[uid] = (Outcome.NEVER_HANDLED if fate.still_due(update_id)
                         else Outcome.ANSWER_LOST if rows
                         else Outcome.CONFIRMED_AND_LOST if update_id not in fate.seen
                         else Outcome.SKIPPED_AS_SEEN if update_id in fate.waiting
                         else Outcome.TAKEN_AND_LOST)
    return outcomes
