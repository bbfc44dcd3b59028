"""Crash recovery of the real process: SIGKILL mid-broadcast and right after a feedback
acknowledgement, then a cold restart of `python -m assistant run` on the same database.
The acknowledged update was not yet marked handled: the restart replays it, files nothing
new and acknowledges the same reference again.

Run with -s to see the figures (rows in flight at the kill, duplicates, times).
"""

from __future__ import annotations

import os
import signal
import time
import uuid

import pytest

from tests.e2e.harness import REFERENCE, Deployment, duplicates, new_user_id, per_chat

ENFORCE_LIMITS = True  # ~30/s, so a broadcast to N takes N/30 s and can be caught midway

SUBSCRIBERS = 300
LEASE_SECONDS = 30  # the Sender's lease: rows of a dead process are sent again after it


def test_broadcast_resumes_after_kill_without_losing_anyone(deployment: Deployment) -> None:
    server = deployment.server
    subscribers = [new_user_id() for _ in range(SUBSCRIBERS)]
    deployment.seed_subscribers(subscribers, "leppavaara")  # as if they had subscribed earlier
    members = set(subscribers)
    deployment.start()
    token = f"E2E-RESUME-{uuid.uuid4().hex[:10]}"

    def delivered() -> int:
        return server.count_sent(lambda e: e["chat_id"] in members and token in (e["text"] or ""))

    item = deployment.post_news("Leppävaara", f"Vesikatko tiistaina. {token}")
    deployment.wait(lambda: delivered() >= SUBSCRIBERS // 3, 60, "a third of the broadcast")
    deployment.kill()
    killed_at = time.monotonic()
    at_kill = delivered()
    states = deployment.outbox_counts(item)  # read with sqlite3 right after the kill
    in_flight = states["sending"]

    deployment.restart()
    deployment.wait(lambda: deployment.outbox_counts(item) == {"sent": SUBSCRIBERS},
                    LEASE_SECONDS + 90, "every outbox row of the item to be sent")
    completed_in = time.monotonic() - killed_at
    received = per_chat(server.sent(), token)
    received.pop(deployment.admin_id, None)  # the admin's preview
    extra = duplicates(received)
    print(f"\n[crash mid-broadcast] {at_kill}/{SUBSCRIBERS} delivered at the kill; outbox then "
          f"{dict(states)}; in flight {in_flight}, duplicates {extra}; broadcast complete "
          f"{completed_in:.1f} s after the kill (restart ready in "
          f"{deployment.ready_seconds[-1]:.1f} s; the dead process's lease is {LEASE_SECONDS} s)")
    assert set(received) == members, (
        f"missing {len(members - set(received))}, strangers {len(set(received) - members)}")
    assert extra <= in_flight, f"{extra} duplicates, but only {in_flight} rows were in flight"


def test_feedback_acknowledged_just_before_a_kill_is_kept(deployment: Deployment) -> None:
    """The kill lands the moment the acknowledgement reaches Telegram, before the bot hears back."""
    server = deployment.server
    if deployment.current is None or not deployment.current.running():
        deployment.start()
    process = deployment.current
    assert process is not None
    resident = new_user_id()
    text = f"Puiston roska-astiat ovat täynnä {uuid.uuid4().hex[:8]}"
    seen: list[str] = []
    acknowledged: list[str] = []

    def kill_on_acknowledgement() -> bool:  # on the server's thread, before it answers
        assert server.server is not None
        for message in server.server.texts_to(resident):
            found = REFERENCE.search(message)
            if found:
                acknowledged.append(message)
                seen.append(found.group())  # last: the test must not see the exit before it
                os.killpg(process.pid, signal.SIGKILL)
                return True
        return False

    server.watch(kill_on_acknowledgement)
    update_id = server.send_text(resident, f"/feedback {text}")["update_id"]
    deployment.wait(lambda: seen, 60, "the acknowledgement with a reference")
    process.popen.wait(timeout=10)  # type: ignore[union-attr]
    [reference] = seen
    assert deployment.query("SELECT reference, text, status FROM feedback_item WHERE text = ?",
                            text) == [(reference, text, "new")]
    notified_before_kill = _admin_told(deployment, reference)
    # Answered, not yet marked handled: the restart takes it over once its lease ran out
    # (30 s; run out here by hand) and handles it again.
    assert update_id in deployment.pending_updates()
    deployment.expire_intake_leases()

    deployment.restart()

    def acknowledgements() -> list[str]:
        return [m["text"] for m in server.messages_to(resident) if m["text"] in acknowledged]

    deployment.wait(lambda: len(acknowledgements()) >= 2, 30, "the replay's acknowledgement")
    # The admin can find the item, answer it, and the answer reaches the resident.
    admin = deployment.admin_id
    shown = server.message_count(admin)
    server.send_text(admin, f"/feedbacks {reference}")
    deployment.new_message(admin, shown, lambda m: reference in m["text"] and text in m["text"],
                           f"the admin's view of {reference}")  # admins' messages are all text
    answer = f"Kiitos, tyhjennämme ne huomenna {uuid.uuid4().hex[:6]}"
    before, told = server.message_count(resident), server.message_count(admin)
    server.send_text(admin, f"/reply {reference} {answer}")
    deployment.new_message(admin, told, lambda m: reference in m["text"] and text not in m["text"],
                           "the confirmation that the answer was sent")
    deployment.wait(lambda: server.message_count(resident) > before, 30,
                    "the admin's answer in the resident's chat")
    assert answer in server.messages_to(resident)[-1]["text"]
    assert deployment.query("SELECT status, answer_text FROM feedback_item WHERE reference = ?",
                            reference) == [("answered", answer)]
    # The restarted process notifies the admin of new feedback; the killed one is filed once.
    other = new_user_id()
    [ack] = deployment.ask(other, "/feedback Katuvalo on rikki")
    new_reference = REFERENCE.search(ack["text"]).group()  # type: ignore[union-attr]
    deployment.wait(lambda: _admin_told(deployment, new_reference), 30,
                    f"the admin's notice of {new_reference}")
    assert deployment.query("SELECT count(*) FROM feedback_item WHERE text = ?", text) == [(1,)]
    assert len(acknowledgements()) == 2  # the same answer again: never a new item
    assert update_id not in deployment.pending_updates()
    # The replay queued no second notice (its outbox key is the message's).
    assert deployment.query("SELECT count(*) FROM outbox WHERE text LIKE ?",
                            f"%/reply {reference}%") == [(1,)]
    # The notice was stored in the outbox before the acknowledgement left: it arrives (after
    # the killed process's lease on it expires, at worst).
    deployment.wait(lambda: notified_before_kill or _admin_told(deployment, reference), 45,
                    f"the admin's notice of {reference} filed at the kill")
    print(f"\n[crash after feedback ack] {reference} kept and notified; "
          f"restart ready in {deployment.ready_seconds[-1]:.1f} s")


def _admin_told(deployment: Deployment, reference: str) -> bool:
    texts = [m.get("text") or "" for m in deployment.server.messages_to(deployment.admin_id)]
    return any(reference in t and "/reply" in t for t in texts)
