"""One resident floods the bot (30 messages at once): the others are answered as fast as before."""

from __future__ import annotations

import asyncio
import time

from assistant.core import Assistant
from tests.faults.rig import FaultRig, fault_rig, text_of

BURST = 30
QUESTION = "Miten teen kuntalaisaloitteen?"
BOUND_SECONDS = 1.0  # generous: unhurried, a reply takes some 0.02-0.05 s here


async def latencies(rig: FaultRig, user: dict, times: int, pause: float) -> list[float]:
    """How long each of `times` questions, `pause` apart, waits for its answer."""
    measured = []
    for _ in range(times):
        await asyncio.sleep(pause)
        started = time.monotonic()
        await rig.ask(user, QUESTION)
        measured.append(time.monotonic() - started)
    return measured


def burst(rig: FaultRig, flooder: dict) -> None:
    for n in range(BURST):
        rig.server.send_text(flooder, f"Miten teen kuntalaisaloitteen {n}?")


async def test_a_flood_from_one_resident_does_not_slow_the_answers_to_another(
        assistant: Assistant) -> None:
    """The flooder gets the flood guard's answers (up to its limit, one "slow down", then
    silence); the other resident's answers during the burst stay under the bound."""
    async with fault_rig(assistant) as rig:
        flooder, other = rig.user("en"), rig.user("fi")
        await rig.ask(flooder, "/help")
        await rig.ask(other, "/help")
        quiet = await latencies(rig, other, 3, 0.2)
        burst(rig, flooder)
        flooded = await latencies(rig, other, 3, 0.05)
        limit = assistant.flood.limit
        await rig.server.wait_for_messages(flooder["id"], limit + 1, timeout=10)
        await asyncio.sleep(0.5)  # silence: nothing more comes
    print(f"other resident's reply latency: quiet {quiet}, during the flood {flooded}")
    assert max(flooded) < BOUND_SECONDS and max(quiet) < BOUND_SECONDS
    texts = rig.texts_to(flooder)
    assert len(texts) == limit + 1  # /help and limit - 1 answers, then one "slow down"
    assert texts[-1] == text_of(assistant, "en", "flood_slow_down",
                                seconds=int(assistant.flood.silence))
    assert len(rig.texts_to(other)) == 1 + 6 and len(set(rig.texts_to(other)[1:])) == 1


async def test_a_flood_meeting_telegrams_per_chat_limit_does_not_stall_other_residents(
        assistant: Assistant) -> None:
    """As above, with Telegram's per-chat limit (a burst of 3, then 1 a second) enforced.
    Four others ask once each, a quarter second apart, while the flooder's replies are due."""
    async with fault_rig(assistant, enforce_limits=True) as rig:
        flooder, others = rig.user("en"), [rig.user("fi") for _ in range(4)]
        for user in [flooder, *others]:
            await rig.ask(user, "/help")
        burst(rig, flooder)
        await asyncio.sleep(1.2)  # the flooder's first three replies are out, the rest due

        async def one(user: dict, delay: float) -> float:
            [waited] = await latencies(rig, user, 1, delay)
            return waited

        waited = await asyncio.gather(*(one(u, 0.27 * n) for n, u in enumerate(others)))
        rejected = rig.server.rejected_429
        rig.server.enforce_limits = False  # let the flooder's backlog go, so stopping is quick
    print(f"other residents' reply latency during the flood: {waited}; 429s: {rejected}")
    assert max(waited) < BOUND_SECONDS / 2
