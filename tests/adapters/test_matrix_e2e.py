"""End to end on a real Synapse: residents' matrix-nio clients talk to the assistant,
which runs as a bot through MatrixAdapter (with the Router, the shipped knowledge base
and a temporary SQLite database)."""

from __future__ import annotations

import asyncio
import stat
from pathlib import Path
from typing import Any

import pytest
from nio import (
    AsyncClient,
    Event,
    RoomEncryptedFile,
    RoomMessageFile,
    RoomMessageNotice,
)
from nio.crypto import decrypt_attachment

from adapters.matrix_format import HTML, NOTICE, reply_text, to_html
from adapters.matrix_session import CREDENTIALS_FILE, load_credentials
from assistant.answers import compose
from assistant.core import Assistant
from assistant.messages import Incoming, Reply
from assistant.platform import RecipientGone, RetryLater
from tests.adapters.conftest import ResidentFactory
from tests.adapters.matrix_rig import PASSWORD, BotRig, Gate, Resident, download, localpart
from tests.fakes.synapse_server import SynapseServer

QUESTION = {"fi": "miten teen kuntalaisaloitteen", "sv": "hur gör jag ett invånarinitiativ",
            "en": "how do i make a municipal initiative"}
LANGUAGE_MENU = "1. Suomi\n2. Svenska\n3. English"


def answer_to(assistant: Assistant, question: str, language: str) -> str:
    """The body the core's answer to `question` gets: what the resident must see."""
    answer = compose(assistant, question, language)
    assert answer.topic_id, f"{question!r} should match a topic"
    return reply_text(Reply(answer.text, answer.choices))


async def core_reply(assistant: Assistant, kind: str) -> str:
    """What the core answers a first-time resident for content of `kind`."""
    probe = Incoming(platform="probe", user_id=kind, chat_id=kind, kind=kind)
    return reply_text((await assistant.handle(probe))[0])


def catalogue(assistant: Assistant, lang: str, key: str, /, **values: object) -> str:
    return assistant.texts.get(lang, key, **values)


def assert_notice(event: Event, body: str) -> dict[str, Any]:
    """An m.notice with exactly `body` and its escaped HTML twin; returns the content."""
    assert isinstance(event, RoomMessageNotice), event
    content: dict[str, Any] = event.source["content"]
    assert (content["msgtype"], content["body"]) == (NOTICE, body)
    assert (content["format"], content["formatted_body"]) == (HTML, to_html(body))
    return content


async def test_question_in_a_direct_chat_is_answered_as_a_notice(
    matrix_bot: BotRig, matrix_resident: Resident
) -> None:
    room_id = await matrix_resident.open_room([matrix_bot.user_id])

    answer = await matrix_resident.ask(room_id, QUESTION["fi"])

    assert_notice(answer, answer_to(matrix_bot.core, QUESTION["fi"], "fi"))
    resident = matrix_bot.core.residents.find("matrix", matrix_resident.user_id)
    assert resident is not None and resident.chat_id == room_id
    assert [(i.chat_id, i.group) for i in matrix_bot.incoming] == [(room_id, False)]


async def test_language_commands_switch_the_answer_language(
    matrix_bot: BotRig, matrix_resident: Resident
) -> None:
    core, room_id = matrix_bot.core, await matrix_resident.open_room([matrix_bot.user_id])

    swedish = await matrix_resident.ask(room_id, "/kieli sv")
    answer = await matrix_resident.ask(room_id, QUESTION["sv"])
    english = await matrix_resident.ask(room_id, "!language en")
    answer_in_english = await matrix_resident.ask(room_id, QUESTION["fi"])

    assert_notice(swedish, catalogue(core, "sv", "language_set", language="Svenska"))
    assert_notice(answer, answer_to(core, QUESTION["sv"], "sv"))
    assert_notice(english, catalogue(core, "en", "language_set", language="English"))
    assert_notice(answer_in_english, answer_to(core, QUESTION["fi"], "en"))
    resident = core.residents.find("matrix", matrix_resident.user_id)
    assert resident is not None and (resident.language, resident.language_chosen) == ("en", True)


async def test_numbered_choice_is_picked_by_typing_its_number(
    matrix_bot: BotRig, matrix_resident: Resident
) -> None:
    core, room_id = matrix_bot.core, await matrix_resident.open_room([matrix_bot.user_id])

    menu = await matrix_resident.ask(room_id, "/language")
    picked = await matrix_resident.ask(room_id, "3")

    assert_notice(menu, f"{catalogue(core, 'fi', 'language_ask')}\n\n{LANGUAGE_MENU}")
    assert_notice(picked, catalogue(core, "en", "language_set", language="English"))
    resident = core.residents.find("matrix", matrix_resident.user_id)
    assert resident is not None and resident.language == "en"


async def test_encrypted_direct_chat_gets_encrypted_answers_and_files(
    synapse: SynapseServer, matrix_bot: BotRig, resident_factory: ResidentFactory
) -> None:
    resident = await resident_factory(synapse, matrix_bot.user_id, encrypted=True)
    room_id = await resident.open_room([matrix_bot.user_id], encrypted=True)
    data = b'{"language": "en"}'

    answer = await resident.ask(room_id, QUESTION["en"])
    assert matrix_bot.adapter is not None
    await matrix_bot.adapter.send(room_id, Reply("Your data", attachment_name="mydata.json",
                                                 attachment=data))
    note, file = await resident.replies(2)

    assert matrix_bot.incoming[0].text == QUESTION["en"]  # the bot read the encrypted question
    assert answer.decrypted and note.decrypted
    assert answer.source["content"].get("body") and "ciphertext" not in answer.source["content"]
    assert_notice(answer, answer_to(matrix_bot.core, QUESTION["en"], "en"))
    assert_notice(note, "Your data")
    assert isinstance(file, RoomEncryptedFile), file
    assert file.source["content"]["info"] == {"mimetype": "application/json", "size": len(data)}
    ciphertext = await download(resident, file.url)
    assert ciphertext != data
    assert decrypt_attachment(ciphertext, file.key["k"], file.hashes["sha256"], file.iv) == data


async def test_attachment_is_uploaded_and_sent_as_a_file(
    matrix_bot: BotRig, matrix_resident: Resident
) -> None:
    room_id = await matrix_resident.open_room([matrix_bot.user_id])
    await matrix_bot.knows_room(room_id)
    assert matrix_bot.adapter is not None

    await matrix_bot.adapter.send(room_id, Reply("", attachment_name="mydata.json",
                                                 attachment=b"{}"))
    (file,) = await matrix_resident.replies(1)

    assert isinstance(file, RoomMessageFile), file
    assert file.source["content"]["filename"] == "mydata.json"
    assert await download(matrix_resident, file.url) == b"{}"


async def test_restart_answers_what_came_while_down_exactly_once_in_an_encrypted_chat(
    synapse: SynapseServer, tmp_path: Path, resident_factory: ResidentFactory
) -> None:
    bot = BotRig(synapse, tmp_path)
    await bot.start()
    try:
        resident = await resident_factory(synapse, bot.user_id, encrypted=True)
        room_id = await resident.open_room([bot.user_id], encrypted=True)
        await resident.ask(room_id, QUESTION["fi"])
        menu = await resident.ask(room_id, "/language")
        device_id = bot.adapter.client.device_id if bot.adapter else ""
        await bot.stop()

        await resident.say(room_id, "2")  # picks from the menu while the bot is down
        await bot.start()
        (picked,) = await resident.replies(1)
        answer = await resident.ask(room_id, QUESTION["fi"])
    finally:
        await bot.stop()

    assert picked.decrypted and answer.decrypted  # the bot's keys survived the restart
    assert LANGUAGE_MENU in menu.source["content"]["body"]
    assert_notice(picked, catalogue(bot.core, "sv", "language_set", language="Svenska"))
    assert_notice(answer, answer_to(bot.core, QUESTION["fi"], "sv"))
    assert [i.text for i in bot.incoming] == [QUESTION["fi"], "/language", "2", QUESTION["fi"]]
    saved = load_credentials(bot.store_path)
    assert saved is not None and saved.device_id == device_id  # no second login
    assert stat.S_IMODE((bot.store_path / CREDENTIALS_FILE).stat().st_mode) == 0o600


async def test_lost_connection_is_resumed_and_nothing_is_missed(
    synapse: SynapseServer, tmp_path: Path, resident_factory: ResidentFactory
) -> None:
    gate = Gate(synapse.port)
    await gate.open()
    bot = BotRig(synapse, tmp_path, homeserver=gate.url)
    await bot.start()
    try:
        resident = await resident_factory(synapse, bot.user_id)
        room_id = await resident.open_room([bot.user_id])
        await resident.ask(room_id, QUESTION["fi"])

        await gate.close()  # the bot's long poll breaks; it backs off and retries
        await resident.say(room_id, QUESTION["en"])
        await asyncio.sleep(1.5)
        await gate.open()
        (answer,) = await resident.replies(1)
    finally:
        await bot.stop()
        await gate.close()

    assert_notice(answer, answer_to(bot.core, QUESTION["en"], "en"))
    assert [i.text for i in bot.incoming] == [QUESTION["fi"], QUESTION["en"]]


async def test_first_start_does_not_answer_history(
    synapse: SynapseServer, tmp_path: Path, resident_factory: ResidentFactory
) -> None:
    bot = BotRig(synapse, tmp_path)
    resident = await resident_factory(synapse, bot.user_id)
    created = await resident.client.room_create(is_direct=True, invite=[bot.user_id])
    other_device = AsyncClient(synapse.url, bot.user_id)  # the account, before the assistant
    await other_device.login(PASSWORD)
    await other_device.join(created.room_id)
    await other_device.close()
    await resident.say(created.room_id, "vanha kysymys ennen bottia")

    await bot.start()
    try:
        answer = await resident.ask(created.room_id, QUESTION["fi"])
    finally:
        await bot.stop()

    assert_notice(answer, answer_to(bot.core, QUESTION["fi"], "fi"))
    assert [i.text for i in bot.incoming] == [QUESTION["fi"]]


async def test_group_room_answers_only_commands_and_mentions(
    synapse: SynapseServer, matrix_bot: BotRig, resident_factory: ResidentFactory
) -> None:
    anna = await resident_factory(synapse, matrix_bot.user_id)
    bertil = await resident_factory(synapse, matrix_bot.user_id)
    created = await anna.client.room_create(invite=[bertil.user_id])
    room_id = created.room_id
    await anna.say(room_id, "!help")  # history from before the bot came: not answered
    await anna.client.room_invite(room_id, matrix_bot.user_id)
    await anna.sync_until(lambda: anna.has_joined(room_id, matrix_bot.user_id))
    bot_name = matrix_bot.user_id[1:].split(":")[0]  # Synapse's default display name

    await anna.say(room_id, "hei kaikki, mitä kuuluu?")
    await anna.send(room_id, {"msgtype": "m.image", "body": "kuva.jpg", "url": "mxc://x/y"})
    help_ = await anna.ask(room_id, "!help")
    mention_id = await anna.say(room_id, f"{bot_name}: {QUESTION['en']}")
    (answer,) = await anna.replies(1)

    assert help_.source["content"]["body"].startswith(catalogue(matrix_bot.core, "fi", "help_intro"))
    content = assert_notice(answer, answer_to(matrix_bot.core, QUESTION["en"], "en"))
    assert content["m.relates_to"] == {"m.in_reply_to": {"event_id": mention_id}}
    assert [(i.text, i.group) for i in matrix_bot.incoming] == [
        ("!help", True), (QUESTION["en"], True)]


async def test_files_locations_and_edits_get_a_polite_answer(
    matrix_bot: BotRig, matrix_resident: Resident
) -> None:
    room_id = await matrix_resident.open_room([matrix_bot.user_id])
    first = await matrix_resident.say(room_id, "hei")
    await matrix_resident.replies(1)
    contents = [
        {"msgtype": "m.image", "body": "kuva.jpg", "url": "mxc://localhost/kuva"},
        {"msgtype": "m.location", "body": "Tapiola", "geo_uri": "geo:60.17,24.80"},
        {"msgtype": "m.text", "body": "* moi", "m.new_content": {"msgtype": "m.text", "body": "moi"},
         "m.relates_to": {"rel_type": "m.replace", "event_id": first}},
    ]

    for content in contents:
        await matrix_resident.send(room_id, content)
    replies = await matrix_resident.replies(3)

    for kind, reply in zip(("file", "location", "edit"), replies):
        assert_notice(reply, await core_reply(matrix_bot.core, kind))
    assert [(i.kind, i.text) for i in matrix_bot.incoming[1:]] == [
        ("file", ""), ("location", ""), ("edit", "")]


async def test_undecryptable_message_gets_a_notice_and_a_key_request(
    matrix_bot: BotRig, matrix_resident: Resident
) -> None:
    room_id = await matrix_resident.open_room([matrix_bot.user_id])
    unreadable = {"algorithm": "m.megolm.v1.aes-sha2", "ciphertext": "AwgAEnB0aGlzIGlzIG5vdA",
                  "sender_key": "c2VuZGVyIGtleQ", "session_id": "lost-session",
                  "device_id": matrix_resident.client.device_id}

    await matrix_resident.client.room_send(room_id, "m.room.encrypted", unreadable)
    (notice,) = await matrix_resident.replies(1)

    assert_notice(notice, await core_reply(matrix_bot.core, "encrypted"))
    assert [i.kind for i in matrix_bot.incoming] == ["encrypted"]
    assert matrix_bot.adapter is not None
    assert "lost-session" in matrix_bot.adapter.client.outgoing_key_requests


async def test_burst_under_default_rate_limits_is_answered_once_each(
    synapse_limited: SynapseServer, tmp_path: Path, resident_factory: ResidentFactory
) -> None:
    # No retries inside nio: answers then wait in the adapter, and the push below sees the 429.
    bot = BotRig(synapse_limited, tmp_path, max_limit_exceeded=0)
    await bot.start()
    try:
        resident = await resident_factory(synapse_limited, bot.user_id)
        _, admin_token, _ = synapse_limited.register_user(localpart("admin"), PASSWORD, admin=True)
        synapse_limited.override_ratelimit(resident.user_id, admin_token)  # the bot stays limited
        room_id = await resident.open_room([bot.user_id])
        questions = [f"{QUESTION['fi']} {'?' * n}" for n in range(1, 13)]

        await asyncio.gather(*(resident.say(room_id, q) for q in questions))
        answers = await resident.replies(len(questions), deadline=90)
        marker = await resident.ask(room_id, "/help")
        assert bot.adapter is not None
        with pytest.raises(RetryLater) as limited:  # a push from the outbox: it reschedules
            await bot.adapter.send(room_id, Reply("Uutinen"))
    finally:
        await bot.stop()

    assert 0 < limited.value.after_seconds <= 10
    expected = answer_to(bot.core, QUESTION["fi"], "fi")
    for answer in answers:
        assert_notice(answer, expected)
    help_intro = catalogue(bot.core, "fi", "help_intro")
    assert marker.source["content"]["body"].startswith(help_intro)  # no repeats came first
    assert sorted(i.text for i in bot.incoming) == sorted([*questions, "/help"])


async def test_rooms_without_the_resident_or_the_bot_are_recipient_gone(
    matrix_bot: BotRig, matrix_resident: Resident
) -> None:
    room_id = await matrix_resident.open_room([matrix_bot.user_id])
    await matrix_resident.ask(room_id, "hei")
    elsewhere = await matrix_resident.client.room_create()
    adapter = matrix_bot.adapter
    assert adapter is not None

    await matrix_resident.client.room_leave(room_id)
    async with asyncio.timeout(30):
        while adapter.client.rooms[room_id].member_count > 1:
            await asyncio.sleep(0.05)

    with pytest.raises(RecipientGone):
        await adapter.send(room_id, Reply("Uutinen"))
    with pytest.raises(RecipientGone):
        await adapter.send(elsewhere.room_id, Reply("Uutinen"))
