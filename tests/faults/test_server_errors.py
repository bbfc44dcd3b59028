"""Bot API 5xx answers (500, 502): sends are retried after a pause and arrive once;
polling goes on."""

from __future__ import annotations

import pytest

from assistant.core import Assistant
from tests.faults.rig import fault_rig, text_of


async def test_pushes_meeting_500_and_502_are_retried_later_and_arrive_once(
        assistant: Assistant) -> None:
    async with fault_rig(assistant) as rig:
        first, second = rig.user(), rig.user()
        ids = {u["id"]: await rig.resident_for(u) for u in (first, second)}
        rig.server.fail_next("sendMessage", 500, "Internal Server Error")
        rig.server.fail_next("sendMessage", 502, "Bad Gateway")
        rows = [rig.push(first, "Uutinen 1", ids[first["id"]]),
                rig.push(second, "Uutinen 2", ids[second["id"]])]
        await rig.wait_status(rows, "sent", timeout=15)
    assert rig.texts_to(first)[1:] == ["Uutinen 1"] and rig.texts_to(second)[1:] == ["Uutinen 2"]
    for user, row_id in zip((first, second), rows):
        failed, delivered = rig.requests_to(user)[1:]  # after the /start answer
        assert failed["status"] in (500, 502) and delivered["status"] == 200
        assert delivered["time"] - failed["time"] >= 1.0  # backed off, did not hammer
        row = rig.row(row_id)
        assert (row.status, row.attempts) == ("sent", 2) and row.sent_at is not None
    assert rig.sender.results["retry"] == 2 and rig.sender.results["sent"] == 2


@pytest.mark.parametrize("fault", ["500", "dropped"])
async def test_a_reply_meeting_500_or_a_dropped_connection_is_retried_and_arrives_once(
        assistant: Assistant, fault: str) -> None:
    async with fault_rig(assistant) as rig:
        user = rig.user("en")
        if fault == "500":
            rig.server.fail_next("sendMessage", 500, "Internal Server Error")
        else:
            rig.server.drop_next("sendMessage")  # lost before delivery
        rig.server.send_text(user, "/help")
        await rig.server.wait_for_messages(user["id"], 1, timeout=6)
        [after] = await rig.ask(user, "/language")
    assert rig.texts_to(user)[0].startswith(text_of(assistant, "en", "help_intro"))
    assert [c["status"] for c in rig.requests_to(user)][1:] == [200, 200]
    assert after["text"] == text_of(assistant, "en", "language_ask")


async def test_polling_survives_500_and_502_on_get_updates(assistant: Assistant) -> None:
    async with fault_rig(assistant) as rig:

        def statuses() -> list[int | None]:
            return [r["status"] for r in rig.server.requests_for("getUpdates")]

        user = rig.user("en")
        await rig.ask(user, "/help")  # polling runs
        rig.server.fail_next("getUpdates", 500, "Internal Server Error")
        rig.server.fail_next("getUpdates", 502, "Bad Gateway")
        await rig.server.wait_until(lambda: 502 in statuses(), timeout=5)
        [reply] = await rig.ask(user, "/language")  # PTB backs off 1 s, then 1.5 s
        seen = statuses()
        [again] = await rig.ask(user, "/help")
    assert reply["text"] == text_of(assistant, "en", "language_ask")
    assert seen.count(500) == 1 and seen.count(502) == 1
    assert len(rig.texts_to(user)) == 3  # each message answered once
    assert again["text"].startswith(text_of(assistant, "en", "help_intro"))
