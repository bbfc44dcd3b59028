"""The Telegram adapter end to end: PTB polling (or a webhook) on the fake Bot API server,
the real assistant with the shipped knowledge base, and the router in between."""

from __future__ import annotations

import dataclasses
import socket

import aiohttp
import pytest

from assistant import answers
from assistant.core import MAX_MESSAGE_CHARS, Assistant
from assistant.menus import command_menus
from assistant.messages import Choice, Reply
from assistant.platform import RecipientGone, RetryLater
from assistant.runtime import _telegram
from assistant.store.updates import Entry, Updates
from tests.adapters.telegram_rig import (
    BOT_NAME,
    TOKEN,
    TelegramRig,
    buttons,
    eventually,
    running_rig,
)
from tests.conftest import make_settings

GROUP = -100_555_001


@pytest.fixture(scope="module")
def assistant(tmp_path_factory: pytest.TempPathFactory) -> Assistant:
    """One assistant for the module (building it takes a second); each test has new residents."""
    bot = Assistant(make_settings(tmp_path_factory.mktemp("telegram")))
    yield bot
    bot.db.dispose()


@pytest.fixture
async def rig(assistant: Assistant):
    async with running_rig(assistant) as running:
        yield running


def text_of(assistant: Assistant, lang: str, key: str, /, **values: object) -> str:
    return assistant.texts.get(lang, key, **values).strip()


# --------------------------------------------------------------- first contact, menus


@pytest.mark.parametrize("language_code, expected", [
    ("fi", "fi"), ("sv", "sv"), ("en", "en"), ("de", "fi"), ("sv-FI", "sv"), (None, "fi")])
async def test_start_answers_in_the_language_of_the_app(
        rig: TelegramRig, language_code: str | None, expected: str) -> None:
    [welcome] = await rig.ask(rig.user(language_code), "/start")
    assert welcome["text"] == text_of(rig.assistant, expected, "welcome")
    assert buttons(welcome) == ["lang:fi", "lang:sv", "lang:en"]
    assert rig.server.sent[-1]["parse_mode"] == "HTML"


async def test_command_menus_are_set_per_language_at_start(rig: TelegramRig) -> None:
    menus = command_menus(rig.assistant)
    for language in ("fi", "sv", "en", ""):
        assert rig.server.commands[("default", language)] == [
            {"command": name, "description": text} for name, text in menus[language]]
    assert {"command": "help", "description": "den här hjälpen"} in rig.server.commands[
        ("default", "sv")]


# --------------------------------------------------------------- answers and buttons


async def test_question_is_answered_as_compose_answers_it(rig: TelegramRig) -> None:
    question = "Miten teen kuntalaisaloitteen?"
    expected = answers.compose(rig.assistant, question, "fi")
    assert expected.topic_id, "the shipped knowledge base should know this question"
    [answer] = await rig.ask(rig.user("fi"), question)
    assert answer["text"] == expected.text.strip()
    assert rig.server.sent[-1]["link_preview_options"] == {"is_disabled": True}


def _question_with_suggestions(assistant: Assistant) -> tuple[str, answers.Answer]:
    for question in ("vaalit", "päätös", "äänestys", "espoo", "vaikuttaminen nuoret vaalit"):
        answer = answers.compose(assistant, question, "fi")
        if answer.suggestions:
            return question, answer
    raise AssertionError("no candidate question gives 'did you mean' suggestions any more")


async def test_did_you_mean_button_answers_the_callback_and_shows_the_topic(
        rig: TelegramRig) -> None:
    question, expected = _question_with_suggestions(rig.assistant)
    user = rig.user("fi")
    [offer] = await rig.ask(user, question)
    assert offer["text"] == expected.text.strip()
    assert buttons(offer) == [c.value for c in expected.choices]
    first = expected.suggestions[0]
    [topic] = await rig.press(user, offer, f"topic:{first}")
    assert rig.server.answered_callbacks, "the button press was not answered"
    topic_text = answers.topic_text(rig.assistant, rig.assistant.knowledge.get(first), "fi")
    assert topic["text"] == topic_text.strip()
    await rig.server.wait_until(lambda: "reply_markup" not in rig.server.messages_to(
        user["id"])[0])  # the keyboard is gone, so it cannot be pressed twice


async def test_language_is_switched_by_button_and_stored(rig: TelegramRig) -> None:
    user = rig.user("fi")
    [ask] = await rig.ask(user, "/language")
    assert ask["text"] == text_of(rig.assistant, "fi", "language_ask")
    [done] = await rig.press(user, ask, "lang:sv")
    assert done["text"] == text_of(rig.assistant, "sv", "language_set", language="Svenska")
    resident = rig.resident(user)
    assert (resident.language, resident.language_chosen) == ("sv", True)
    [help_] = await rig.ask(user, "/help")
    assert help_["text"].startswith(text_of(rig.assistant, "sv", "help_intro"))


# --------------------------------------------------------------- groups


async def test_in_a_group_the_bot_answers_only_when_addressed(rig: TelegramRig) -> None:
    alice, bob = rig.user("fi"), rig.user("fi")
    where = {"chat_id": GROUP, "chat_title": "Leppävaara"}
    rig.server.send_text(alice, "Huomenta kaikki!", **where)
    rig.server.send_text(bob, "/help@some_other_bot", **where)
    [by_mention] = await rig.ask(alice, f"@{BOT_NAME} Miten teen kuntalaisaloitteen?", **where)
    assert by_mention["text"] == answers.compose(
        rig.assistant, "Miten teen kuntalaisaloitteen?", "fi").text.strip()
    assert by_mention["reply_to_message"]["from"]["id"] == alice["id"]
    [by_command] = await rig.ask(bob, f"/help@{BOT_NAME}", **where)
    assert by_command["text"].startswith(text_of(rig.assistant, "fi", "help_intro"))
    rig.server.send_text(bob, "En tiennytkään.", **where)
    await rig.ask(alice, "Entä kansalaisaloite?", reply_to_message_id=by_command["message_id"],
                  **where)
    assert len(rig.server.texts_to(GROUP)) == 3
    texts = [i.text for i in rig.incoming if i.chat_id == str(GROUP)]
    assert texts == ["Miten teen kuntalaisaloitteen?", "/help", "Entä kansalaisaloite?"]
    assert all(i.group for i in rig.incoming if i.chat_id == str(GROUP))


# --------------------------------------------------------------- failures and limits


async def test_a_resident_who_blocked_the_bot_is_marked_inactive(rig: TelegramRig) -> None:
    user = rig.user("fi")
    await rig.ask(user, "/start")
    assert rig.resident(user).active
    rig.server.block(user["id"])
    rig.server.send_text(user, "Hei?")
    await eventually(lambda: not rig.resident(user).active)
    assert rig.server.requests_for("sendMessage")[-1]["status"] == 403


async def test_a_burst_to_one_chat_arrives_whole_and_once_despite_429(assistant: Assistant) -> None:
    async with running_rig(assistant, enforce_limits=True) as rig:
        user = rig.user("en")
        for n in range(6):
            rig.server.send_text(user, f"/language klingon{n}")
        messages = await rig.server.wait_for_messages(user["id"], 6, timeout=15)
        assert rig.server.rejected_429 >= 1, "the burst should have met the flood limit"
    assert [m["text"] for m in messages] == [
        text_of(assistant, "en", "language_unknown", given=f"klingon{n}") for n in range(6)]


async def test_a_push_meeting_429_gets_retry_later_at_once(rig: TelegramRig) -> None:
    """Outside an update (the outbox), a 429 is the caller's to reschedule, with Telegram's time."""
    rig.server.add_chat(4242)
    rig.server.fail_next("sendMessage", 429, "Too Many Requests: retry after 7", retry_after=7)
    with pytest.raises(RetryLater) as caught:
        await rig.adapter.send("4242", Reply("Uutinen"))
    assert caught.value.after_seconds == 7
    rig.server.block(4242)
    with pytest.raises(RecipientGone):
        await rig.adapter.send("4242", Reply("Uutinen"))
    with pytest.raises(RecipientGone):  # "chat not found"
        await rig.adapter.send("987654", Reply("Uutinen"))
    assert rig.server.texts_to(4242) == []


async def test_a_100_kb_message_gets_a_polite_answer(rig: TelegramRig) -> None:
    [answer] = await rig.ask(rig.user("fi"), "kysymys " * 12_500)
    assert answer["text"] == text_of(rig.assistant, "fi", "message_too_long",
                                     limit=MAX_MESSAGE_CHARS)


async def test_html_in_the_input_is_echoed_as_text(rig: TelegramRig) -> None:
    given = "<b>x</b> & <script>"
    [answer] = await rig.ask(rig.user("en"), f"/language {given}")
    assert answer["text"] == text_of(rig.assistant, "en", "language_unknown", given=given)
    assert "entities" not in answer  # nothing of it became formatting


async def test_polling_survives_network_errors(rig: TelegramRig) -> None:
    rig.server.drop_next("getUpdates")
    rig.server.fail_next("getUpdates", 500, "Internal Server Error")
    [welcome] = await rig.ask(rig.user("fi"), "/start")
    assert welcome["text"] == text_of(rig.assistant, "fi", "welcome")
    statuses = [r["status"] for r in rig.server.requests_for("getUpdates")]
    assert None in statuses and 500 in statuses


async def test_a_redelivered_update_is_handled_once(rig: TelegramRig) -> None:
    user = rig.user("fi")
    update = rig.server.send_text(user, "/start")
    await rig.server.wait_for_messages(user["id"], 1)
    rig.server.redeliver(update)
    await rig.ask(user, "/help")
    assert [i.text for i in rig.incoming] == ["/start", "/help"]
    assert len(rig.server.texts_to(user["id"])) == 2


# --------------------------------------------------------------- content and length


@pytest.mark.parametrize("field, payload, kind", [
    ("sticker", {"file_id": "CAACAg1", "file_unique_id": "AgAD1", "width": 512, "height": 512,
                 "is_animated": False, "is_video": False, "type": "regular"}, "sticker"),
    ("photo", [{"file_id": "AgACAg2", "file_unique_id": "AQAD2", "width": 90, "height": 90}],
     "photo"),
    ("document", {"file_id": "BQACAg3", "file_unique_id": "AgAD3", "file_name": "a.pdf"}, "file"),
    ("voice", {"file_id": "AwACAg4", "file_unique_id": "AgAD4", "duration": 3}, "voice"),
    ("location", {"latitude": 60.2055, "longitude": 24.6559}, "location"),
    ("contact", {"phone_number": "+358401234567", "first_name": "Maija"}, "contact"),
])
async def test_content_that_is_not_text_gets_a_polite_answer(
        rig: TelegramRig, field: str, payload: object, kind: str) -> None:
    user = rig.user("en")
    rig.server.send_raw_update({"message": rig.server.build_message(user, **{field: payload})})
    [answer] = await rig.server.wait_for_messages(user["id"], 1)
    assert answer["text"] == text_of(rig.assistant, "en", "unsupported_content")
    assert [(i.kind, i.text) for i in rig.incoming] == [(kind, "")]


async def test_an_edited_message_gets_a_polite_answer(rig: TelegramRig) -> None:
    user = rig.user("sv")
    original = rig.server.build_message(user, text="Hej")
    rig.server.send_raw_update({"edited_message": {**original, "text": "Hej!", "edit_date": 1}})
    [answer] = await rig.server.wait_for_messages(user["id"], 1)
    assert answer["text"] == text_of(rig.assistant, "sv", "unsupported_content")
    assert rig.incoming[0].kind == "edit"


async def test_a_long_reply_is_split_under_the_limit_with_buttons_last(rig: TelegramRig) -> None:
    user = rig.user("fi")
    await rig.ask(user, "/start")
    paragraphs = [f"Kappale {n}: " + "sana " * 150 for n in range(20)]  # ~15,000 characters
    text = "\n\n".join(p.strip() for p in paragraphs)
    await rig.adapter.send(str(user["id"]), Reply(text, (Choice("Kyllä", "yes:1"),)))
    parts = rig.server.messages_to(user["id"])[1:]
    assert len(parts) == 4 and all(len(p["text"]) <= 4096 for p in parts)
    assert "\n\n".join(p["text"] for p in parts) == text  # cut at paragraph breaks
    assert [bool(buttons(p)) for p in parts] == [False, False, False, True]


async def test_an_attachment_follows_its_text_as_a_document(rig: TelegramRig) -> None:
    user = rig.user("fi")
    await rig.ask(user, "/start")
    reply = Reply("Palautteet taulukkona:", attachment_name="palaute.csv", attachment=b"a;b\n")
    await rig.adapter.send(str(user["id"]), reply)
    assert rig.server.texts_to(user["id"])[1:] == ["Palautteet taulukkona:", ""]
    assert (rig.server.uploads[0]["filename"], rig.server.uploads[0]["content"]) == (
        "palaute.csv", b"a;b\n")


# --------------------------------------------------------------- webhook and wiring


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def test_webhook_mode_checks_the_secret_on_every_request(assistant: Assistant) -> None:
    port = _free_port()
    hook = f"http://127.0.0.1:{port}/telegram/hook"
    env = {"telegram_webhook_url": hook, "telegram_webhook_listen": "127.0.0.1",
           "telegram_webhook_port": port, "telegram_webhook_secret": "s3cret-Token_1"}
    async with running_rig(assistant, env=env) as rig:
        assert rig.server.webhook == {"url": hook, "secret_token": "s3cret-Token_1"}
        user = rig.user("en")
        [welcome] = await rig.ask(user, "/start")
        assert welcome["text"] == text_of(assistant, "en", "welcome")
        forged = {"update_id": 1, "message": rig.server.build_message(user, text="/help")}
        async with aiohttp.ClientSession() as http:
            for headers in ({"X-Telegram-Bot-Api-Secret-Token": "wrong"}, {}):
                async with http.post(hook, json=forged, headers=headers) as response:
                    assert response.status == 403
        assert not rig.server.requests_for("getUpdates")
    assert len(rig.server.texts_to(user["id"])) == 1


def test_runtime_wires_menus_and_an_update_log_in_the_database(
        assistant: Assistant, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = dataclasses.replace(assistant.settings, telegram_bot_token=TOKEN)
    monkeypatch.setattr(assistant, "settings", settings)
    adapter = _telegram(assistant)
    assert adapter.menus == command_menus(assistant)
    log = adapter.intake.log
    assert log.take([Entry("wiring-check-1", "{}")]) == {"wiring-check-1"}
    assert Updates(assistant.db).of("telegram").pending() == ["wiring-check-1"]
