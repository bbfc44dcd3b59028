"""Timeouts and dropped connections between the bot and the Bot API.

The client gives up after `READ_TIMEOUT` (1 s; getUpdates: its 1 s long poll plus that).
"""

from __future__ import annotations

from collections.abc import Callable

from assistant.core import Assistant
from tests.faults.rig import READ_TIMEOUT, fault_rig, text_of

SLOW = READ_TIMEOUT + 0.6  # the server answers, but only after the client gave up


async def test_a_push_lost_in_transit_is_sent_again_at_most_one_extra_time(
        assistant: Assistant) -> None:
    """Policy: pushes are delivered at least once. The Bot API has no idempotency key, so a
    send whose answer never came (timeout, dropped connection) is retried and, when Telegram
    had in fact delivered it, the resident gets it twice: once extra per lost answer, so at
    most once extra here. The outbox records the delivery ("sent") with both attempts and
    the lost answer as `last_error`.
    """
    async with fault_rig(assistant) as rig:
        users = [rig.user() for _ in range(3)]
        ids = [await rig.resident_for(u) for u in users]
        rig.server.delay_next("sendMessage", SLOW)  # timed out, delivered
        rig.server.drop_next("sendMessage", deliver=True)  # answer lost, delivered
        rig.server.drop_next("sendMessage")  # lost before delivery
        rows = [rig.push(u, "Uutinen", i) for u, i in zip(users, ids)]
        await rig.wait_status(rows, "sent", timeout=15)
    copies = sorted(rig.texts_to(u)[1:].count("Uutinen") for u in users)
    assert copies == [1, 2, 2]  # the undelivered one once, the delivered ones once extra
    assert sum(len(rig.requests_to(u)[1:]) for u in users) == 6  # each push: 2 attempts
    errors = sorted(rig.row(i).last_error for i in rows)
    assert all(rig.row(i).attempts == 2 for i in rows)
    assert any("TimedOut" in e for e in errors) and sum("NetworkError" in e for e in errors) == 2


async def test_a_reply_that_timed_out_but_was_delivered_arrives_once_and_polling_goes_on(
        assistant: Assistant) -> None:
    """Replies are not retried after a timeout (the router drops the unconfirmed send),
    so a reply Telegram did deliver is not doubled; the adapter keeps answering."""
    async with fault_rig(assistant) as rig:
        user = rig.user("en")
        rig.server.delay_next("sendMessage", SLOW)
        [slow] = await rig.ask(user, "/help")
        [next_one] = await rig.ask(user, "/language")
    assert slow["text"].startswith(text_of(assistant, "en", "help_intro"))
    assert next_one["text"] == text_of(assistant, "en", "language_ask")
    assert len(rig.texts_to(user)) == 2 and len(rig.requests_to(user)) == 2


async def test_polling_survives_slow_and_dropped_get_updates(assistant: Assistant) -> None:
    """A long poll that outlasts the client's timeout, a poll whose connection is dropped, and
    one dropped after the server handed out the update: every message is answered once."""
    async with fault_rig(assistant) as rig:
        polls = rig.server.requests_for

        async def fault_the_next_poll(inject: Callable[[], None]) -> None:
            """Inject, then wait until the faulted poll has arrived (the one before is spent)."""
            before = len(polls("getUpdates"))
            inject()
            await rig.server.wait_until(lambda: len(polls("getUpdates")) > before, timeout=5)

        user = rig.user("en")
        await rig.ask(user, "/help")  # polling runs
        await fault_the_next_poll(lambda: rig.server.delay_next("getUpdates", 1 + READ_TIMEOUT + 1))
        [first] = await rig.ask(user, "/language")
        await fault_the_next_poll(lambda: rig.server.drop_next("getUpdates"))
        [second] = await rig.ask(user, "/topics")
        await fault_the_next_poll(lambda: rig.server.drop_next("getUpdates", deliver=True))
        [third] = await rig.ask(user, "/help")  # handed out by the dropped poll, then again
        statuses = [r["status"] for r in polls("getUpdates")]
    assert statuses.count(None) == 2  # both connections were dropped
    assert first["text"] == text_of(assistant, "en", "language_ask")
    assert second["text"] and third["text"].startswith(text_of(assistant, "en", "help_intro"))
    assert len(rig.texts_to(user)) == 4  # nothing twice, nothing lost
    assert [i.text for i in rig.rig.incoming] == ["/help", "/language", "/topics", "/help"]
