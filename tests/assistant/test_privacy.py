"""Privacy by chat: /privacy explains, /mydata sends everything stored, never into a group."""

from __future__ import annotations

import json
import shutil

import pytest

from assistant.core import Assistant
from assistant.messages import Incoming, Reply
from assistant.privacy import ATTACHMENT_NAME
from tests.conftest import REPO, SAMPLE_KNOWLEDGE, make_settings


@pytest.fixture
def bot(tmp_path):
    """Sample topics (quick) with the shipped districts; console:admin is an owner."""
    knowledge = tmp_path / "knowledge"
    shutil.copytree(SAMPLE_KNOWLEDGE / "topics", knowledge / "topics")
    shutil.copy(REPO / "knowledge" / "districts.yaml", knowledge / "districts.yaml")
    assistant = Assistant(make_settings(tmp_path, KNOWLEDGE_DIR=str(knowledge),
                                        ASSISTANT_ADMINS="console:admin", RETENTION_DAYS="30"))
    yield assistant
    assistant.db.dispose()


def group_message(text: str, user_id: str = "resident-1") -> Incoming:
    return Incoming(platform="console", user_id=user_id, chat_id="group-1", text=text,
                    language_hint="fi", group=True, message_id="g1")


def attachment(replies: list[Reply]) -> dict:
    [reply] = [r for r in replies if r.attachment_name]
    assert reply.attachment_name == ATTACHMENT_NAME
    return json.loads(reply.attachment.decode("utf-8"))


@pytest.mark.parametrize("command,language,phrase", [
    ("/privacy", "en", "30 days"), ("/tietosuoja", "fi", "30 päivän"),
    ("/integritet", "sv", "30 dagar"), ("!privacy", "en", "until you delete them"),
])
async def test_privacy_says_what_is_kept_and_for_how_long(bot, chat_factory, command, language,
                                                          phrase):
    chat = chat_factory(bot, language_hint=language)
    await chat.send(f"/language {language}")
    text = await chat.text(command)
    assert phrase in text and "/mydata" in text and "/forget" in text


async def test_privacy_may_be_asked_in_a_group(bot):
    [reply] = await bot.handle(group_message("/tietosuoja"))
    assert "30 päivän" in reply.text


async def test_help_lists_the_privacy_commands(bot, chat_factory):
    text = await chat_factory(bot, language_hint="en").text("/help")
    assert "/privacy" in text and "/mydata" in text and "/forget" in text


async def test_mydata_sends_everything_readable_and_as_json(bot, chat_factory):
    chat = chat_factory(bot, language_hint="fi")
    await chat.send("/kieli suomi")
    await chat.send("/tilaa Tapiola")
    await chat.send("/kooste 18")
    ack = await chat.text("/palaute Puistoon tarvitaan lisää penkkejä")
    reference = ack.split("Viite: ")[1].split(".")[0]
    await chat.send("/palaute")  # an unfinished form
    replies = await chat.send("/omattiedot")
    [reply] = replies
    assert not reply.chat_id and not reply.platform
    for expected in ("console", "resident-1", "Suomi", "Tapiola", "klo 18", reference,
                     "Puistoon tarvitaan lisää penkkejä", "uusi", "palautelomake", "mydata.json"):
        assert expected in reply.text, expected
    data = attachment(replies)
    assert data["profile"]["platform"] == "console"
    assert data["profile"]["platform_id"] == "resident-1"
    assert data["profile"]["chat_id"] == "chat-resident-1"
    assert data["profile"]["language"] == "fi" and data["profile"]["language_chosen"] is True
    assert data["profile"]["active"] is True and data["profile"]["first_seen"]
    assert [s["district_id"] for s in data["subscriptions"]] == ["tapiola"]
    assert data["delivery"]["digest_hour"] == 18
    [item] = data["feedback"]
    assert (item["reference"], item["status"], item["text"]) == (
        reference, "new", "Puistoon tarvitaan lisää penkkejä")
    assert data["unfinished_form"]["name"] == "feedback"
    assert data["unfinished_form"]["step"] == "kind"


async def test_mydata_of_a_newcomer_says_there_is_little(bot, chat_factory):
    chat = chat_factory(bot, language_hint="sv")
    replies = await chat.send("/minadata")
    assert "Du följer inga" in replies[0].text and "inte skickat någon respons" in replies[0].text
    data = attachment(replies)
    assert data["subscriptions"] == [] and data["feedback"] == []
    assert data["unfinished_form"] is None and data["delivery"]["digest_hour"] is None


async def test_mydata_shows_admins_answers(bot, chat_factory):
    chat = chat_factory(bot, language_hint="en")
    await chat.send("/language en")
    ack = await chat.text("/feedback More benches in the park please")
    reference = ack.split("Reference: ")[1].split(".")[0]
    await chat_factory(bot, user_id="admin").send(f"/reply {reference} We will ask the city.")
    replies = await chat.send("/mydata")
    assert "Answer: We will ask the city." in replies[0].text
    [item] = attachment(replies)["feedback"]
    assert item["status"] == "answered" and item["answer"] == "We will ask the city."


async def test_long_feedback_is_shortened_in_the_message_but_whole_in_the_file(bot, chat_factory):
    chat = chat_factory(bot, language_hint="fi")
    long_text = "Pitkä palaute " + "sana " * 700 + "loppu"
    await chat.send("/palaute " + long_text)
    replies = await chat.send("/mydata")
    assert "loppu" not in replies[0].text
    assert attachment(replies)["feedback"][0]["text"] == long_text.strip()


async def test_mydata_copy_holds_only_the_residents_own_data(bot, chat_factory):
    await chat_factory(bot, user_id="resident-2").send("/feedback Naapurin palaute")
    await chat_factory(bot, user_id="resident-2").send("/subscribe Leppävaara")
    replies = await chat_factory(bot).send("/mydata")
    data = attachment(replies)
    assert data["feedback"] == [] and data["subscriptions"] == []
    assert "Naapurin" not in replies[0].text and "resident-2" not in replies[0].attachment.decode()


@pytest.mark.parametrize("command", ["/mydata", "/omattiedot", "/forget", "/unohda", "/glom"])
async def test_private_data_is_never_sent_into_a_group(bot, chat_factory, command):
    await chat_factory(bot).send("/palaute Yksityinen asia ryhmältä piiloon")
    replies = await bot.handle(group_message(command))
    assert [r.text for r in replies] == [bot.texts.get("fi", "privacy_private_only")]
    assert not any(r.attachment or r.choices for r in replies)
    assert bot.residents.find("console", "resident-1") is not None
    assert len(bot.feedback.of_resident(bot.residents.find("console", "resident-1").id)) == 1


async def test_mydata_lists_roles_granted_to_the_resident(bot, chat_factory):
    from assistant.store.admin import Roles

    Roles(bot.db).grant("console", "resident-1", "editor", None, "console:admin")
    data = attachment(await chat_factory(bot).send("/mydata"))
    assert [(r["role"], r["district_id"]) for r in data["roles"]] == [("editor", None)]
