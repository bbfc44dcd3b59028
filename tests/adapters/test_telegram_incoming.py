"""Which Telegram updates reach the core, and as what: Bot API payloads in, Incoming out."""

from __future__ import annotations

from typing import Any

import pytest
from telegram import Update

from adapters.telegram_incoming import Me, incoming_from, strip_bot_name
from tests.fakes.telegram_world import TelegramWorld

ME = Me(123456789, "espoo_test_bot")
GROUP = -100777


@pytest.fixture
def world() -> TelegramWorld:
    return TelegramWorld({"id": ME.id, "is_bot": True, "first_name": "Bot",
                          "username": ME.username})


def update(payload: dict[str, Any], kind: str = "message") -> Update:
    return Update.de_json({"update_id": 1, kind: payload}, None)


def in_group(world: TelegramWorld, text: str, **fields: Any) -> Update:
    message = world.build_message(world.user(5, language_code="sv"), GROUP, text=text, **fields)
    return update(message)


@pytest.mark.parametrize("text, seen", [
    ("Huomenta kaikki", None),
    ("/help@some_other_bot", None),
    ("/help", "/help"),
    ("/help@espoo_test_bot aiheet", "/help aiheet"),
    ("@Espoo_Test_Bot, miten teen aloitteen?", "miten teen aloitteen?"),
    ("Kysyn @espoo_test_bot sinulta", "Kysyn sinulta"),
    ("mailto@espoo_test_bot.fi", None),
])
def test_group_messages_reach_the_core_only_when_addressed(
        world: TelegramWorld, text: str, seen: str | None) -> None:
    incoming = incoming_from(in_group(world, text), ME)
    assert (incoming.text if incoming else None) == seen
    if incoming:
        assert incoming.group and incoming.chat_id == str(GROUP) and incoming.user_id == "5"


def test_a_reply_to_the_bot_in_a_group_is_addressed(world: TelegramWorld) -> None:
    bot_message = world.new_message(world.add_chat(GROUP), world.bot_user, text="Vastaus")
    incoming = incoming_from(in_group(
        world, "Entä sitten?", reply_to_message=bot_message), ME)
    assert incoming is not None and incoming.text == "Entä sitten?"


def test_group_stickers_and_edits_are_ignored(world: TelegramWorld) -> None:
    sticker = {"file_id": "x", "file_unique_id": "y", "width": 1, "height": 1,
               "is_animated": False, "is_video": False, "type": "regular"}
    message = world.build_message(world.user(6), GROUP, sticker=sticker)
    assert incoming_from(update(message), ME) is None
    edited = world.build_message(world.user(6), GROUP, text="x", edit_date=1)
    assert incoming_from(update(edited, "edited_message"), ME) is None


def test_service_messages_and_other_bots_are_ignored(world: TelegramWorld) -> None:
    joined = world.build_message(world.user(7), GROUP, new_chat_members=[world.user(8)])
    assert incoming_from(update(joined), ME) is None
    other_bot = {"id": 99, "is_bot": True, "first_name": "Other"}
    assert incoming_from(update(world.build_message(other_bot, text="/start")), ME) is None


@pytest.mark.parametrize("code, hint", [
    ("fi", "fi"), ("sv-FI", "sv"), ("EN", "en"), ("de", ""), ("pt-br", ""), (None, "")])
def test_language_hint_comes_from_the_app_language(
        world: TelegramWorld, code: str | None, hint: str) -> None:
    message = world.build_message(world.user(9, language_code=code), text="hei")
    incoming = incoming_from(update(message), ME)
    assert incoming is not None and incoming.language_hint == hint and not incoming.group


def test_a_button_press_is_a_choice(world: TelegramWorld) -> None:
    bot_message = world.new_message(world.add_chat(10), world.bot_user, text="Kieli?")
    query = {"id": "1", "from": world.user(10, language_code="en"), "message": bot_message,
             "chat_instance": "c", "data": "lang:sv"}
    incoming = incoming_from(update(query, "callback_query"), ME)
    assert incoming is not None
    assert (incoming.choice, incoming.text, incoming.chat_id, incoming.language_hint) == (
        "lang:sv", "", "10", "en")


def test_strip_bot_name_without_a_username_changes_nothing() -> None:
    assert strip_bot_name("@x hei", Me(1, "")) == "@x hei"
