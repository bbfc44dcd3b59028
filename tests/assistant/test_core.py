"""The core's routing: commands, choices, languages, bad input; read back from storage."""

from __future__ import annotations

import pytest

from assistant.messages import Incoming
from assistant.store.residents import Resident
from sqlmodel import select


async def test_question_in_finnish_is_answered_in_finnish(sample_assistant, chat_factory):
    chat = chat_factory(sample_assistant)
    text = await chat.text("Miten teen kuntalaisaloitteen?")
    assert text.startswith("Kuntalaisaloite")
    assert "https://example.org/initiative" in text


async def test_reply_follows_the_language_the_question_is_written_in(sample_assistant, chat_factory):
    chat = chat_factory(sample_assistant)
    assert (await chat.text("hur ger jag respons till staden")).startswith("Respons till staden")
    assert (await chat.text("how do I give feedback to the city")).startswith("Feedback to the city")


async def test_chosen_language_wins_over_the_message_language(sample_assistant, chat_factory):
    chat = chat_factory(sample_assistant)
    await chat.send("/language en")
    assert (await chat.text("miten teen kuntalaisaloitteen")).startswith("Municipal initiative")
    with sample_assistant.db.session() as session:
        resident = session.exec(select(Resident)).one()
    assert (resident.language, resident.language_chosen) == ("en", True)


async def test_platform_hint_sets_language_on_first_contact(sample_assistant, chat_factory):
    chat = chat_factory(sample_assistant, language_hint="sv")
    assert "Hej!" in await chat.text("/start")


async def test_unknown_hint_falls_back_to_finnish(sample_assistant, chat_factory):
    chat = chat_factory(sample_assistant, language_hint="de")
    assert "Hei!" in await chat.text("/start")


@pytest.mark.parametrize("prefix", ["/", "!"])
async def test_commands_answer_to_slash_and_bang(sample_assistant, chat_factory, prefix):
    chat = chat_factory(sample_assistant)
    assert "/language" in await chat.text(f"{prefix}help")


@pytest.mark.parametrize("alias,language_word", [("kieli", "Svenska"), ("sprak", "Svenska"), ("language", "Svenska")])
async def test_language_aliases(sample_assistant, chat_factory, alias, language_word):
    chat = chat_factory(sample_assistant)
    assert language_word in await chat.text(f"/{alias} svenska")


async def test_language_button_switches_language(sample_assistant, chat_factory):
    chat = chat_factory(sample_assistant)
    replies = await chat.send("/kieli")
    values = [c.value for c in replies[0].choices]
    assert values == ["lang:fi", "lang:sv", "lang:en"]
    await chat.send(choice="lang:en")
    assert "I don't know the command" in await chat.text("/nosuchcommand")


async def test_typed_number_picks_an_offered_choice(sample_assistant, chat_factory):
    chat = chat_factory(sample_assistant)
    await chat.send("/language")
    assert "English" in await chat.text("3")


async def test_typed_number_without_offer_is_just_text(sample_assistant, chat_factory):
    chat = chat_factory(sample_assistant)
    await chat.send("/language")
    await chat.send("3")
    assert "/topics" in await chat.text("3")  # options were used up: "3" is not a topic


async def test_stale_button_gets_polite_answer(sample_assistant, chat_factory):
    chat = chat_factory(sample_assistant)
    assert "ei ole enää voimassa" in await chat.text(choice="nosuch:thing")


async def test_topic_button_shows_the_topic(sample_assistant, chat_factory):
    chat = chat_factory(sample_assistant)
    assert (await chat.text(choice="topic:sample-feedback")).startswith("Palaute kaupungille")


@pytest.mark.parametrize("text,expected", [
    ("", "tyhjä"), ("   \n\t ", "tyhjä"), ("x" * 100_000, "liian pitkä"), ("x" * 4101, "liian pitkä"),
    ("😀😀😀", "en osaa vastata"), ("\x00\x01\x02", "tyhjä"), ("Как подать инициативу?", "en osaa vastata"),
    ("/language klingon", "En tunne kieltä"),
])
async def test_bad_input_gets_short_polite_answer(sample_assistant, chat_factory, text, expected):
    chat = chat_factory(sample_assistant)
    replies = await chat.send(text)
    assert len(replies) == 1 and expected in replies[0].text
    assert len(replies[0].text) < 900


@pytest.mark.parametrize("kind", ["sticker", "voice", "location", "file", "edit"])
async def test_content_the_assistant_cannot_read(sample_assistant, chat_factory, kind):
    chat = chat_factory(sample_assistant)
    assert "tekstiviestejä" in await chat.text("", kind=kind)


async def test_unknown_command_is_answered_politely(sample_assistant, chat_factory):
    chat = chat_factory(sample_assistant)
    assert "En tunne komentoa /nosuch" in await chat.text("/nosuch")


async def test_resident_survives_restart(settings, chat_factory, tmp_path):
    from assistant.core import Assistant
    from tests.conftest import SAMPLE_KNOWLEDGE, make_settings

    settings = make_settings(tmp_path, KNOWLEDGE_DIR=str(SAMPLE_KNOWLEDGE))
    first = Assistant(settings)
    await chat_factory(first).send("/kieli en")
    first.db.dispose()
    second = Assistant(settings)
    assert (await chat_factory(second).text("miten teen aloitteen")).startswith("Municipal initiative")


async def test_handle_never_raises(sample_assistant):
    replies = await sample_assistant.handle(Incoming(platform="x", user_id="", chat_id="", text="\ud800"))
    assert replies and replies[0].text


async def test_message_in_a_group_keeps_the_private_chat_for_pushes(sample_assistant):
    from assistant.store.residents import Resident

    private = Incoming(platform="telegram", user_id="7", chat_id="7", text="/start")
    group = Incoming(platform="telegram", user_id="7", chat_id="-1001", text="/help", group=True)
    await sample_assistant.handle(private)
    await sample_assistant.handle(group)
    with sample_assistant.db.session() as session:
        resident = session.exec(select(Resident)).one()
    assert resident.chat_id == "7"
