"""A message handled twice (an adapter replays what a killed process had not marked handled)
files its feedback once, answers with the same reference and queues no second admin notice."""

from __future__ import annotations

import re

import pytest
from sqlmodel import select

from assistant.core import Assistant
from assistant.feedback import HOURLY_LIMIT
from assistant.messages import Incoming
from assistant.router import Router
from assistant.store.feedback import FeedbackItem
from assistant.store.outbox import OutboxRow
from tests.conftest import make_settings
from tests.fakes.recording_adapter import RecordingAdapter

REF = re.compile(r"P-\d{4}-\d{4,}")
ADMIN = "9001"


@pytest.fixture
def bot(tmp_path, database_url) -> Assistant:
    assistant = Assistant(make_settings(tmp_path, DATABASE_URL=database_url,
                                        ASSISTANT_ADMINS=f"telegram:{ADMIN}"))
    yield assistant
    assistant.db.dispose()


def message(text: str, message_id: str, user: str = "5551", platform: str = "telegram"
            ) -> Incoming:
    return Incoming(platform=platform, user_id=user, chat_id=user, text=text,
                    language_hint="en", message_id=message_id)


def items(bot: Assistant) -> list[FeedbackItem]:
    with bot.db.session() as session:
        return list(session.exec(select(FeedbackItem)).all())


def notices(bot: Assistant) -> list[str]:
    with bot.db.session() as session:
        return [row.chat_id for row in session.exec(select(OutboxRow)).all()]


async def test_a_replayed_feedback_is_filed_once_and_answered_with_its_reference(bot):
    router, adapter = Router(bot), RecordingAdapter("telegram")
    router.add(adapter)
    first = message("/feedback The swings in the park are broken", "77")
    await router.on_message(first)
    await router.on_message(first)  # the same message, replayed after a crash
    [item] = items(bot)
    answers = [REF.search(s.text).group() for s in adapter.sent if s.chat_id == "5551"]
    assert answers == [item.reference, item.reference]
    assert notices(bot) == [ADMIN]  # the admin's notice is queued once
    assert item.source_key and "5551" not in item.source_key  # a hash, not the ids in clear


async def test_the_same_message_id_in_another_chat_files_its_own_item(bot):
    await bot.handle(message("/feedback Streetlight out", "77", user="5551"))
    await bot.handle(message("/feedback Streetlight out", "77", user="5552"))
    assert len({item.reference for item in items(bot)}) == 2


async def test_where_message_ids_repeat_nothing_is_taken_for_a_replay(bot):
    """The console numbers its messages from 1 in every session."""
    for _ in range(2):
        await bot.handle(message("/feedback Bench missing", "1", platform="console"))
    assert len(items(bot)) == 2


async def test_a_replay_at_the_hourly_limit_still_gets_its_reference(bot):
    for n in range(HOURLY_LIMIT):
        replies = await bot.handle(message(f"/feedback Item {n}", str(n)))
    last = REF.search(replies[0].text).group()
    replies = await bot.handle(message(f"/feedback Item {HOURLY_LIMIT - 1}",
                                       str(HOURLY_LIMIT - 1)))
    assert REF.search(replies[0].text).group() == last
    assert len(items(bot)) == HOURLY_LIMIT


async def test_forget_clears_the_message_key_of_kept_feedback(bot):
    await bot.handle(message("/feedback Trash bins are full", "5"))
    resident = bot.residents.find("telegram", "5551")
    assert bot.personal_data.erase(resident.id, delete_feedback=False) == 1
    [item] = items(bot)
    assert (item.resident_id, item.source_key) == (None, None)


def press(choice: str, user: str = "5551") -> Incoming:
    """A button press: Telegram gives it no message id of the resident's own."""
    return Incoming(platform="telegram", user_id=user, chat_id=user, choice=choice,
                    language_hint="en")


async def test_a_replayed_form_send_press_files_once_even_if_the_crash_came_before_closing(bot):
    await bot.handle(message("/feedback", "80"))
    await bot.handle(press("fb:k:proposal"))
    await bot.handle(press("fb:d:-"))
    await bot.handle(message("More benches along the shore path", "81"))
    await bot.handle(press("fb:r:0"))
    resident = bot.residents.find("telegram", "5551")
    open_form = bot.residents.flow(resident.id)
    first = await bot.handle(press("fb:send"))
    [item] = items(bot)
    assert REF.search(first[0].text).group() == item.reference
    # The crash came after filing but before the form was closed: the form is still open
    # when the press is handled again.
    bot.residents.set_flow(resident.id, open_form.name, open_form.step, open_form.data)
    again = await bot.handle(press("fb:send"))
    assert [i.reference for i in items(bot)] == [item.reference]
    assert REF.search(again[0].text).group() == item.reference
    assert bot.residents.flow(resident.id) is None


async def test_two_forms_with_the_same_text_are_two_items(bot):
    for n in range(2):
        await bot.handle(message("/feedback", f"9{n}0"))
        await bot.handle(press("fb:k:feedback"))
        await bot.handle(press("fb:d:-"))
        await bot.handle(message("Same words", f"9{n}1"))
        await bot.handle(press("fb:r:0"))
        await bot.handle(press("fb:send"))
    assert len({i.reference for i in items(bot)}) == 2
