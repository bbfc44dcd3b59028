"""The admins' side of feedback: notices, /feedbacks, /reply, closing, roles and group chats."""

from __future__ import annotations

import pytest

from assistant.core import Assistant
from assistant.districts import Gazetteer
from assistant.messages import Incoming
from tests.assistant.feedback_helpers import REF, bot, items, own, values  # noqa: F401
from tests.conftest import REPO, SAMPLE_KNOWLEDGE, make_settings


async def file_one(chat, text: str = "Puistoon lisää penkkejä") -> str:
    """Fill the form (proposal, Suur-Tapiola, answer wanted) and return the reference."""
    await chat.send("/palaute")
    await chat.send(choice="fb:k:proposal")
    await chat.send(choice="fb:d:suur-tapiola")
    await chat.send(text)
    await chat.send(choice="fb:r:1")
    return REF.search(own(await chat.send(choice="fb:send"))).group(0)


async def finnish(chat):
    """Settle the language: the core guesses it from words, and "/feedbacks" looks English."""
    await chat.send("/kieli fi")
    return chat


def moderators(assistant: Assistant, *user_ids: str) -> None:
    assistant.role_resolvers.append(lambda inc: {"moderator"} if inc.user_id in user_ids else set())


async def test_admin_is_notified_in_their_own_chat(bot, chat_factory):
    admin = await finnish(chat_factory(bot, user_id="admin"))
    await admin.send("/help")  # the admin has talked to the bot: their chat is known
    chat = chat_factory(bot)
    await chat.send("/palaute")
    await chat.send(choice="fb:k:proposal")
    await chat.send(choice="fb:d:suur-tapiola")
    await chat.send("Puistoon lisää penkkejä")
    await chat.send(choice="fb:r:1")
    replies = await chat.send(choice="fb:send")
    [notice] = [r for r in replies if r.chat_id]
    reference = items(bot)[0].reference
    assert (notice.platform, notice.chat_id) == ("console", "chat-admin")
    for part in (reference, "Ehdotus", "Suur-Tapiola", "Puistoon lisää penkkejä"):
        assert part in notice.text
    assert not [r for r in replies if r.chat_id == "chat-resident-1"]


async def test_telegram_owner_is_notified_by_user_id_unknown_matrix_owner_skipped(
        tmp_path, chat_factory):
    bot = Assistant(make_settings(tmp_path, KNOWLEDGE_DIR=str(SAMPLE_KNOWLEDGE),
                                  ASSISTANT_ADMINS="telegram:4242,matrix:@boss:example.org"))
    bot.gazetteer = Gazetteer.load(REPO / "knowledge")
    # the owner last wrote in a group: the notice must still go to their private chat
    await bot.handle(Incoming(platform="telegram", user_id="4242", chat_id="-1001", text="/help",
                              group=True))
    replies = await chat_factory(bot).send("/palaute Hyvää työtä")
    notices = [(r.platform, r.chat_id) for r in replies if r.chat_id]
    assert notices == [("telegram", "4242")]
    bot.db.dispose()


async def test_status_moves_new_answered_closed(bot, chat_factory):
    admin = await finnish(chat_factory(bot, user_id="admin"))
    reference = await file_one(chat_factory(bot))
    assert items(bot)[0].status == "new"
    replies = await admin.send(f"/reply {reference} Kiitos, viemme asian eteenpäin.")
    item = items(bot)[0]
    assert (item.status, item.answer_text, item.answered_by) == (
        "answered", "Kiitos, viemme asian eteenpäin.", "console:admin")
    assert item.answered_at is not None and item.updated_at >= item.created_at
    assert reference in own(replies)
    replies = await admin.send(f"/feedback close {reference}")
    assert reference in own(replies)
    assert items(bot)[0].status == "closed"
    assert "suljettu" in own(await admin.send(f"/reply {reference} Vielä yksi"))
    assert items(bot)[0].answer_text == "Kiitos, viemme asian eteenpäin."


async def test_reply_reaches_the_resident_in_their_language(bot, chat_factory):
    admin = await finnish(chat_factory(bot, user_id="admin"))
    resident = chat_factory(bot, language_hint="sv")
    await resident.send("/sprak svenska")
    ack = own(await resident.send("/respons Det behövs fler bänkar i parken"))
    reference = REF.search(ack).group(0)
    replies = await admin.send(f"/reply {reference.lower()} Tack, vi tar upp saken.")
    [delivery] = [r for r in replies if r.chat_id]
    assert (delivery.platform, delivery.chat_id) == ("console", "chat-resident-1")
    assert delivery.text.startswith(f"Svar på din respons {reference}")
    assert "Tack, vi tar upp saken." in delivery.text
    mine = own(await resident.send("/minrespons"))
    assert "besvarad" in mine and "Tack, vi tar upp saken." in mine


async def test_reply_to_a_forgotten_resident_is_stored_only(bot, chat_factory):
    admin = await finnish(chat_factory(bot, user_id="admin"))
    reference = await file_one(chat_factory(bot))
    resident_id = items(bot)[0].resident_id
    assert bot.feedback.forget_resident(resident_id) == 1
    replies = await admin.send(f"/reply {reference} Kiitos")
    assert not [r for r in replies if r.chat_id] and items(bot)[0].status == "answered"
    assert items(bot)[0].resident_id is None


async def test_open_list_and_one_item(bot, chat_factory):
    admin = await finnish(chat_factory(bot, user_id="admin"))
    first = await file_one(chat_factory(bot), "Ensimmäinen ehdotus")
    second = await file_one(chat_factory(bot, user_id="resident-2"), "Toinen ehdotus")
    listing = own(await admin.send("/feedbacks"))
    assert first in listing and second in listing and "Ensimmäinen ehdotus" in listing
    await admin.send(f"/feedback close {first}")
    listing = own(await admin.send("/palautteet"))
    assert first not in listing and second in listing
    one = own(await admin.send(f"/feedbacks {first}"))
    assert first in one and "suljettu" in one
    await admin.send(f"/feedback close {second}")
    assert "Ei avoimia" in own(await admin.send("/feedbacks"))


async def test_admin_mistakes_get_usage_answers(bot, chat_factory):
    admin = await finnish(chat_factory(bot, user_id="admin"))
    assert "/reply P-" in own(await admin.send("/reply"))
    assert "/reply P-" in own(await admin.send("/reply P-2026-0001"))
    assert "ei löydy" in own(await admin.send("/reply P-2000-0001 Hei"))
    assert "ei löydy" in own(await admin.send("/feedback close P-2000-0001"))
    assert "/feedback close P-" in own(await admin.send("/feedback close"))
    assert items(bot) == []


@pytest.mark.parametrize("command,shown", [
    ("/feedbacks", "feedbacks"), ("/palautteet", "palautteet"),
    ("/reply P-2026-0001 Hei", "reply"), ("/vastaa P-2026-0001 Hei", "vastaa"),
    ("/feedback close P-2026-0001", "feedback close"),
    ("/palaute sulje P-2026-0001", "palaute sulje"),
])
async def test_resident_without_role_gets_the_unknown_command_answer(
        bot, chat_factory, command, shown):
    reference = await file_one(chat_factory(bot, user_id="resident-2"))
    resident = await finnish(chat_factory(bot))
    replies = await resident.send(command.replace("P-2026-0001", reference))
    assert own(replies) == bot.texts.get("fi", "unknown_command", command=shown)
    assert items(bot)[0].status == "new" and len(items(bot)) == 1


async def test_resident_may_start_feedback_with_the_word_close(bot, chat_factory):
    ack = own(await chat_factory(bot).send("/feedback close the road to cars on Sundays"))
    assert REF.search(ack) and items(bot)[0].text == "close the road to cars on Sundays"


async def test_moderator_role_may_answer_and_close(bot, chat_factory):
    moderators(bot, "mod")
    mod = await finnish(chat_factory(bot, user_id="mod"))
    reference = await file_one(chat_factory(bot))
    assert reference in own(await mod.send("/feedbacks"))
    replies = await mod.send(f"/reply {reference} Hoidetaan")
    assert [r.chat_id for r in replies if r.chat_id] == ["chat-resident-1"]
    assert items(bot)[0].answered_by == "console:mod"
    await mod.send(f"/feedback close {reference}")
    assert items(bot)[0].status == "closed"


async def test_admin_commands_show_nothing_in_a_group(bot, chat_factory):
    await file_one(chat_factory(bot), "Yksityinen asia")
    await finnish(chat_factory(bot, user_id="admin"))
    replies = await bot.handle(Incoming(platform="console", user_id="admin", chat_id="group-9",
                                        text="/feedbacks", group=True))
    assert "Yksityinen asia" not in own(replies) and "yksityis" in own(replies)


async def test_admin_text_is_delivered_plain(bot, chat_factory):
    admin = await finnish(chat_factory(bot, user_id="admin"))
    reference = await file_one(chat_factory(bot))
    replies = await admin.send(f"/reply {reference} <b>Kiitos</b> & tervetuloa")
    [delivery] = [r for r in replies if r.chat_id]
    assert "<b>Kiitos</b> & tervetuloa" in delivery.text and "&amp;" not in delivery.text


async def test_help_shows_admin_commands_only_to_admins(bot, chat_factory):
    assert "/feedbacks" not in own(await chat_factory(bot).send("/help"))
    assert "/myfeedback" in own(await chat_factory(bot).send("/help"))
    assert "/feedbacks" in own(await chat_factory(bot, user_id="admin").send("/help"))
    assert values(await chat_factory(bot).send("/help")) == []
