"""429 Too Many Requests with retry_after: the wait is honoured, nothing is lost or doubled."""

from __future__ import annotations

from assistant.core import Assistant
from tests.adapters.telegram_rig import eventually
from tests.faults.rig import fault_rig, text_of

RETRY_AFTER = 2


async def test_a_reply_meeting_429_waits_retry_after_and_arrives_once(
        assistant: Assistant) -> None:
    async with fault_rig(assistant) as rig:
        user = rig.user("en")
        rig.server.fail_next("sendMessage", 429, f"Too Many Requests: retry after {RETRY_AFTER}",
                             retry_after=RETRY_AFTER)
        [reply] = await rig.ask(user, "/help")
        await rig.ask(user, "/language")  # the adapter still answers the next message
        calls = rig.requests_to(user)
    assert reply["text"].startswith(text_of(assistant, "en", "help_intro"))
    assert rig.texts_to(user)[0] == reply["text"] and len(rig.texts_to(user)) == 2
    assert [c["status"] for c in calls] == [429, 200, 200]
    assert calls[1]["time"] - calls[0]["time"] >= RETRY_AFTER


async def test_pushes_meeting_429_wait_retry_after_for_the_whole_platform(
        assistant: Assistant) -> None:
    """The 429 pauses every push (Telegram's limit is per bot), each push arrives once,
    and one chat's pushes keep their order; the outbox records each as sent."""
    async with fault_rig(assistant) as rig:
        first, second, third = rig.user(), rig.user(), rig.user()
        ids = {u["id"]: await rig.resident_for(u) for u in (first, second, third)}
        rig.server.fail_next("sendMessage", 429, f"Too Many Requests: retry after {RETRY_AFTER}",
                             retry_after=RETRY_AFTER)
        rows = [rig.push(first, "Uutinen 1", ids[first["id"]]),
                rig.push(first, "Uutinen 2", ids[first["id"]])]
        await eventually(lambda: rig.sender.results["retry"] == 1, timeout=5)
        rows += [rig.push(second, "Uutinen A", ids[second["id"]]),  # enqueued during the pause
                 rig.push(third, "Uutinen X", ids[third["id"]])]
        await rig.wait_status(rows, "sent", timeout=15)
        limited_at = next(r["time"] for r in rig.server.requests_for("sendMessage")
                          if r["status"] == 429)
    assert rig.texts_to(first)[1:] == ["Uutinen 1", "Uutinen 2"]
    assert rig.texts_to(second)[1:] == ["Uutinen A"]
    assert rig.texts_to(third)[1:] == ["Uutinen X"]
    after = [r for r in rig.server.requests_for("sendMessage") if r["time"] > limited_at]
    assert after and all(r["time"] - limited_at >= RETRY_AFTER for r in after)
    assert sum(rig.row(i).attempts for i in rows) == len(rows) + 1  # one retry, no more
    assert rig.sender.results["retry"] == 1


async def test_a_reply_meeting_more_429s_than_network_retries_still_arrives_once(
        assistant: Assistant) -> None:
    """Each 429 names when Telegram takes the message: a burst of them is sat out, not
    counted like lost connections (3 retries), so the resident's answer is never dropped."""
    async with fault_rig(assistant) as rig:
        user = rig.user("en")
        rig.server.fail_next("sendMessage", 429, "Too Many Requests: retry after 1",
                             count=5, retry_after=1)
        [reply] = await rig.ask(user, "/help")  # 5 x 1.1 s, within the 10 s the rig waits
        calls = rig.requests_to(user)
    assert reply["text"].startswith(text_of(assistant, "en", "help_intro"))
    assert [c["status"] for c in calls] == [429] * 5 + [200]
