"""403 Forbidden (the resident blocked the bot): stop sending to them, and only to them."""

from __future__ import annotations

import asyncio

from assistant.core import Assistant
from tests.adapters.telegram_rig import eventually
from tests.faults.rig import fault_rig


async def test_a_blocked_resident_is_marked_inactive_and_their_pushes_stop(
        assistant: Assistant) -> None:
    async with fault_rig(assistant) as rig:
        blocked, other, third = rig.user(), rig.user(), rig.user()
        ids = {u["id"]: await rig.resident_for(u) for u in (blocked, other, third)}
        rig.server.block(blocked["id"])
        gone = [rig.push(blocked, f"Uutinen {n}", ids[blocked["id"]]) for n in range(3)]
        sent = [rig.push(other, "Uutinen", ids[other["id"]]),
                rig.push(third, "Uutinen", ids[third["id"]])]
        await rig.wait_status(gone, "gone", timeout=10)
        await rig.wait_status(sent, "sent", timeout=10)
        await asyncio.sleep(1.5)  # time enough for a retry, were there one
        later = rig.push(blocked, "Myöhempi uutinen", ids[blocked["id"]])
        await rig.wait_status([later], "gone", timeout=10)
    # /start, the first push (the other two were dropped unsent), the later push: no retries
    assert [c["status"] for c in rig.requests_to(blocked)] == [200, 403, 403]
    assert len(rig.texts_to(blocked)) == 1  # the /start answer from before the block
    assert rig.texts_to(other)[1:] == ["Uutinen"] and rig.texts_to(third)[1:] == ["Uutinen"]
    assert rig.rig.resident(blocked).active is False
    assert rig.rig.resident(other).active and rig.rig.resident(third).active
    assert rig.row(gone[0]).attempts == 1 and rig.row(later).attempts == 1
    assert rig.sender.results["retry"] == 0


async def test_a_reply_to_a_blocked_resident_marks_them_inactive_and_others_are_answered(
        assistant: Assistant) -> None:
    async with fault_rig(assistant) as rig:
        blocked, other = rig.user(), rig.user()
        await rig.resident_for(blocked)
        rig.server.block(blocked["id"])
        rig.server.send_text(blocked, "/help")
        [answer] = await rig.ask(other, "/help")
        await eventually(lambda: rig.rig.resident(blocked).active is False)
    assert answer["text"]
    assert [c["status"] for c in rig.requests_to(blocked)] == [200, 403]  # not retried
    assert rig.rig.resident(other).active
