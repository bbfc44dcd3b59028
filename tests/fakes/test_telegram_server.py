"""The fake Telegram server, driven by the real python-telegram-bot client."""

from __future__ import annotations

import asyncio
import datetime as dtm
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.error import (
    BadRequest,
    Conflict,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TimedOut,
)
from telegram.ext import ApplicationBuilder, CommandHandler, ContextTypes
from telegram.request import HTTPXRequest

from tests.fakes.telegram_limits import FloodLimiter
from tests.fakes.telegram_markup import EntityParseError, format_text
from tests.fakes.telegram_server import FakeTelegramServer

TOKEN = "123456789:TEST-espoo-token"
RESIDENT = 4242


@pytest.fixture
async def server() -> AsyncIterator[FakeTelegramServer]:
    async with FakeTelegramServer(token=TOKEN) as fake:
        yield fake


@pytest.fixture
async def bot(server: FakeTelegramServer) -> AsyncIterator[Bot]:
    async with Bot(TOKEN, base_url=server.base_url, base_file_url=server.file_url) as client:
        yield client


def _seconds(retry_after: int | dtm.timedelta) -> float:
    return retry_after.total_seconds() if isinstance(retry_after, dtm.timedelta) else retry_after


def _keyboard(*data: str) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup([[InlineKeyboardButton(d.title(), callback_data=d) for d in data]])


# --------------------------------------------------------------- basics


@pytest.mark.asyncio
async def test_get_me_describes_the_bot(bot: Bot) -> None:
    me = await bot.get_me()
    assert me.username == "espoo_test_bot"
    assert me.id == 123456789
    assert me.is_bot


@pytest.mark.asyncio
async def test_wrong_token_is_unauthorized(server: FakeTelegramServer) -> None:
    with pytest.raises(InvalidToken):
        async with Bot("987:WRONG", base_url=server.base_url):
            pass
    assert server.all_requests[-1]["status"] == 401


@pytest.mark.asyncio
async def test_unknown_method_is_not_found_and_names_are_case_insensitive(
    server: FakeTelegramServer,
) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{server.base_url}{TOKEN}/nosuchMethod") as response:
            assert response.status == 404
            assert await response.json() == {
                "ok": False,
                "error_code": 404,
                "description": "Not Found",
            }
        async with http.post(f"{server.base_url}{TOKEN}/GETME", json={}) as response:
            assert (await response.json())["result"]["username"] == "espoo_test_bot"


@pytest.mark.asyncio
async def test_send_message_returns_a_full_message_with_keyboard(
    server: FakeTelegramServer, bot: Bot
) -> None:
    server.send_text(RESIDENT, "/start")
    markup = _keyboard("yes", "no")
    first = await bot.send_message(
        RESIDENT, "Hei <b>Espoo</b>!", parse_mode="HTML", reply_markup=markup
    )
    second = await bot.send_message(RESIDENT, "Toinen")
    assert first.text == "Hei Espoo!"
    assert first.entities[0].type == "bold" and first.entities[0].offset == 4
    assert first.reply_markup == markup
    assert first.from_user.username == "espoo_test_bot"
    assert first.chat.id == RESIDENT and first.chat.type == "private"
    assert second.message_id == first.message_id + 1  # the resident's /start was message 1
    assert server.texts_to(RESIDENT) == ["Hei Espoo!", "Toinen"]
    assert server.sent[0]["parse_mode"] == "HTML"
    assert server.sent[0]["reply_markup"]["inline_keyboard"][0][0]["callback_data"] == "yes"


@pytest.mark.asyncio
async def test_unknown_chat_is_not_found(bot: Bot) -> None:
    with pytest.raises(BadRequest, match="(?i)chat not found"):
        await bot.send_message(999, "Hei")


@pytest.mark.asyncio
async def test_reply_to_a_residents_message(server: FakeTelegramServer, bot: Bot) -> None:
    update = server.send_text(RESIDENT, "Kysymys")
    question_id = update["message"]["message_id"]
    reply = await bot.send_message(RESIDENT, "Vastaus", reply_to_message_id=question_id)
    assert reply.reply_to_message.text == "Kysymys"
    with pytest.raises(BadRequest, match="(?i)message to be replied not found"):
        await bot.send_message(RESIDENT, "Vastaus", reply_to_message_id=12345)


# --------------------------------------------------------------- validation


@pytest.mark.asyncio
async def test_too_long_and_empty_messages_are_refused(
    server: FakeTelegramServer, bot: Bot
) -> None:
    server.add_chat(RESIDENT)
    with pytest.raises(BadRequest, match="(?i)message is too long"):
        await bot.send_message(RESIDENT, "x" * 4097)
    with pytest.raises(BadRequest, match="(?i)message text is empty"):
        await bot.send_message(RESIDENT, "   ")
    # Length counts the text without tags, after unescaping.
    await bot.send_message(RESIDENT, "<b>" + "&lt;" * 4096 + "</b>", parse_mode="HTML")
    assert server.sent == server.sent[:1]


@pytest.mark.asyncio
@pytest.mark.parametrize("html", ["<b>open", "<b>x</i>", "</b>", "<marquee>x</marquee>", "a < b"])
async def test_malformed_html_is_refused(server: FakeTelegramServer, bot: Bot, html: str) -> None:
    server.add_chat(RESIDENT)
    with pytest.raises(BadRequest, match="(?i)can't parse entities"):
        await bot.send_message(RESIDENT, html, parse_mode="HTML")
    assert not server.sent


@pytest.mark.asyncio
async def test_unescaped_markdown_v2_is_refused(server: FakeTelegramServer, bot: Bot) -> None:
    server.add_chat(RESIDENT)
    with pytest.raises(BadRequest, match="(?i)reserved"):
        await bot.send_message(RESIDENT, "Kello on 12.00", parse_mode="MarkdownV2")
    message = await bot.send_message(RESIDENT, r"*Kello* on 12\.00", parse_mode="MarkdownV2")
    assert message.text == "Kello on 12.00"


@pytest.mark.asyncio
async def test_oversized_callback_data_is_refused(server: FakeTelegramServer, bot: Bot) -> None:
    server.add_chat(RESIDENT)
    with pytest.raises(BadRequest, match="(?i)BUTTON_DATA_INVALID"):
        await bot.send_message(RESIDENT, "Valitse", reply_markup=_keyboard("x" * 65))


def test_html_entities_use_utf16_offsets() -> None:
    text, entities = format_text("😀 <i>Tapiola</i> &amp; /apua", "HTML")
    assert text == "😀 Tapiola & /apua"
    assert entities == [
        {"type": "italic", "offset": 3, "length": 7},
        {"type": "bot_command", "offset": 13, "length": 5},
    ]
    with pytest.raises(EntityParseError):
        format_text('<span class="x">x</span>', "HTML")


# --------------------------------------------------------------- updates


@pytest.mark.asyncio
async def test_get_updates_confirms_with_offset(server: FakeTelegramServer, bot: Bot) -> None:
    server.send_text(RESIDENT, "yksi")
    server.send_text(RESIDENT, "kaksi")
    updates = await bot.get_updates()
    assert [u.message.text for u in updates] == ["yksi", "kaksi"]
    assert [u.message.text for u in await bot.get_updates()] == ["yksi", "kaksi"]
    updates = await bot.get_updates(offset=updates[0].update_id + 1)
    assert [u.message.text for u in updates] == ["kaksi"]
    assert await bot.get_updates(offset=updates[-1].update_id + 1) == ()


@pytest.mark.asyncio
async def test_long_poll_returns_as_soon_as_an_update_arrives(
    server: FakeTelegramServer, bot: Bot
) -> None:
    started = time.monotonic()
    poll = asyncio.create_task(bot.get_updates(timeout=5))
    await asyncio.sleep(0.2)
    server.send_text(RESIDENT, "/start")
    updates = await poll
    assert updates[0].message.text == "/start"
    assert updates[0].message.entities[0].type == "bot_command"
    assert time.monotonic() - started < 2


@pytest.mark.asyncio
async def test_long_poll_times_out_empty(bot: Bot) -> None:
    started = time.monotonic()
    assert await bot.get_updates(timeout=1) == ()
    assert 0.9 < time.monotonic() - started < 3


@pytest.mark.asyncio
async def test_a_second_long_poll_terminates_the_first(
    server: FakeTelegramServer, bot: Bot
) -> None:
    first = asyncio.create_task(bot.get_updates(timeout=5))
    await asyncio.sleep(0.2)
    async with Bot(TOKEN, base_url=server.base_url) as second_instance:
        assert await second_instance.get_updates() == ()
    with pytest.raises(Conflict, match="(?i)terminated by other getUpdates"):
        await first


@pytest.mark.asyncio
async def test_stop_answers_open_long_polls_quickly() -> None:
    fake = FakeTelegramServer(token=TOKEN)
    await fake.start()
    async with Bot(TOKEN, base_url=fake.base_url) as client:
        poll = asyncio.create_task(client.get_updates(timeout=30))
        await asyncio.sleep(0.2)
        started = time.monotonic()
        await fake.stop()
        assert await poll == ()
    assert time.monotonic() - started < 2


@pytest.mark.asyncio
async def test_json_bodies_are_accepted_like_form_bodies(server: FakeTelegramServer) -> None:
    server.add_chat(RESIDENT)
    body = {
        "chat_id": RESIDENT,
        "text": "Hei",
        "reply_markup": {"inline_keyboard": [[{"text": "OK", "callback_data": "ok"}]]},
    }
    url = f"{server.base_url}{TOKEN}/sendMessage"
    async with aiohttp.ClientSession() as http, http.post(url, json=body) as response:
        result = (await response.json())["result"]
    assert result["text"] == "Hei"
    assert result["reply_markup"] == body["reply_markup"]
    assert server.sent[0]["chat_id"] == RESIDENT


@pytest.mark.asyncio
async def test_redelivered_update_keeps_its_id(server: FakeTelegramServer, bot: Bot) -> None:
    update = server.send_text(RESIDENT, "hei")
    first = await bot.get_updates()
    server.redeliver(update)
    again = await bot.get_updates(offset=first[-1].update_id + 1)
    assert [u.update_id for u in again] == [update["update_id"]]


@pytest.mark.asyncio
async def test_group_messages_carry_the_group_chat(server: FakeTelegramServer, bot: Bot) -> None:
    server.send_text(RESIDENT, "@espoo_test_bot hei", chat_id=-100123, chat_title="Leppävaara")
    [update] = await bot.get_updates()
    assert update.message.chat.type == "supergroup"
    assert update.message.chat.title == "Leppävaara"
    assert update.message.entities[0].type == "mention"
    await bot.send_message(-100123, "Moi ryhmä")
    assert server.texts_to(-100123) == ["Moi ryhmä"]


# --------------------------------------------------------------- callbacks


@pytest.mark.asyncio
async def test_callback_query_can_be_answered_once(server: FakeTelegramServer, bot: Bot) -> None:
    server.add_chat(RESIDENT)
    sent = await bot.send_message(RESIDENT, "Kieli?", reply_markup=_keyboard("fi", "sv"))
    server.press_button(RESIDENT, server.messages_to(RESIDENT)[0], "sv")
    [update] = await bot.get_updates()
    query = update.callback_query
    assert query.data == "sv" and query.message.message_id == sent.message_id
    assert await query.answer("Valittu")
    with pytest.raises(BadRequest, match="(?i)query is too old"):
        await query.answer()
    assert server.answered_callbacks[0]["text"] == "Valittu"
    with pytest.raises(ValueError, match="(?i)no button"):
        server.press_button(RESIDENT, server.messages_to(RESIDENT)[0], "en")


@pytest.mark.asyncio
async def test_edit_message_text_and_markup(server: FakeTelegramServer, bot: Bot) -> None:
    server.add_chat(RESIDENT)
    sent = await bot.send_message(RESIDENT, "Kieli?", reply_markup=_keyboard("fi"))
    edited = await bot.edit_message_text("Kieli: suomi", RESIDENT, sent.message_id)
    assert edited.text == "Kieli: suomi" and edited.reply_markup is None
    with pytest.raises(BadRequest, match="(?i)message is not modified"):
        await bot.edit_message_text("Kieli: suomi", RESIDENT, sent.message_id)
    await bot.edit_message_reply_markup(RESIDENT, sent.message_id, reply_markup=_keyboard("sv"))
    assert server.messages_to(RESIDENT)[0]["reply_markup"]["inline_keyboard"][0][0]["text"] == "Sv"
    with pytest.raises(BadRequest, match="(?i)message to edit not found"):
        await bot.edit_message_text("x", RESIDENT, 999)


# --------------------------------------------------------------- limits and faults


@pytest.mark.asyncio
async def test_flood_limit_raises_retry_after() -> None:
    frozen = 1000.0  # a slow machine must not refill the bucket mid-test
    async with FakeTelegramServer(
        token=TOKEN, enforce_limits=True, clock=lambda: frozen
    ) as limited:
        limited.add_chat(RESIDENT)
        async with Bot(TOKEN, base_url=limited.base_url) as client:
            for _ in range(3):  # the burst allowance
                await client.send_message(RESIDENT, "Hei")
            with pytest.raises(RetryAfter) as caught:
                await client.send_message(RESIDENT, "Hei")
    assert _seconds(caught.value.retry_after) == 1
    assert limited.rejected_429 == 1
    assert len(limited.sent) == 3


def test_flood_limiter_group_and_global_windows() -> None:
    now = [0.0]
    limiter = FloodLimiter(lambda: now[0])
    for i in range(20):
        now[0] = i * 1.0
        assert limiter.retry_after(-5) == 0
        limiter.record(-5)
    now[0] = 20.0
    assert limiter.retry_after(-5) == 40  # the first of 20 leaves the 60 s window at t=60
    for chat in range(1, 31):
        assert limiter.retry_after(chat) == 0
        limiter.record(chat)
    assert limiter.retry_after(31) == 1


def test_send_rate_helpers_for_benchmarks() -> None:
    fake = FakeTelegramServer(token=TOKEN)
    times = (0.0, 0.1, 0.2, 1.5, 2.0)
    fake.sent = [{"method": "sendMessage", "chat_id": 1, "time": t} for t in times]
    assert fake.max_sent_in_window(1.0) == 3
    assert fake.messages_sent_per_second() == 2.0


@pytest.mark.asyncio
async def test_blocked_chat_is_forbidden(server: FakeTelegramServer, bot: Bot) -> None:
    server.add_chat(RESIDENT)
    server.block(RESIDENT)
    with pytest.raises(Forbidden, match="(?i)bot was blocked by the user"):
        await bot.send_message(RESIDENT, "Hei")


@pytest.mark.asyncio
async def test_injected_failures(server: FakeTelegramServer, bot: Bot) -> None:
    server.add_chat(RESIDENT)
    server.fail_next("sendMessage", 502, "Bad Gateway")
    server.fail_next("sendmessage", 429, "Too Many Requests: retry after 7", retry_after=7)
    with pytest.raises(NetworkError, match="(?i)Bad Gateway"):
        await bot.send_message(RESIDENT, "Hei")
    with pytest.raises(RetryAfter) as caught:
        await bot.send_message(RESIDENT, "Hei")
    assert _seconds(caught.value.retry_after) == 7
    await bot.send_message(RESIDENT, "Hei")
    assert server.texts_to(RESIDENT) == ["Hei"]


@pytest.mark.asyncio
async def test_dropped_connection_with_and_without_delivery(
    server: FakeTelegramServer, bot: Bot
) -> None:
    server.add_chat(RESIDENT)
    server.drop_next("sendMessage")
    with pytest.raises(NetworkError):
        await bot.send_message(RESIDENT, "lost")
    server.drop_next("sendMessage", deliver=True)
    with pytest.raises(NetworkError):
        await bot.send_message(RESIDENT, "delivered")
    assert server.texts_to(RESIDENT) == ["delivered"]


@pytest.mark.asyncio
async def test_slow_answer_times_out_but_delivers(server: FakeTelegramServer) -> None:
    server.add_chat(RESIDENT)
    server.delay_next("sendMessage", 1.0)
    request = HTTPXRequest(read_timeout=0.3)
    async with Bot(TOKEN, base_url=server.base_url, request=request) as client:
        with pytest.raises(TimedOut):
            await client.send_message(RESIDENT, "slow")
    await server.wait_for_messages(RESIDENT, 1, timeout=3)


@pytest.mark.asyncio
async def test_wait_for_messages_reports_what_arrived(server: FakeTelegramServer, bot: Bot) -> None:
    server.add_chat(RESIDENT)
    await bot.send_message(RESIDENT, "yksi")
    with pytest.raises(TimeoutError, match="(?i)got 1 of 2 messages: \\['yksi'\\]"):
        await server.wait_for_messages(RESIDENT, 2, timeout=0.2)


# --------------------------------------------------------------- other methods


@pytest.mark.asyncio
async def test_commands_are_kept_per_language_and_scope(
    server: FakeTelegramServer, bot: Bot
) -> None:
    await bot.set_my_commands([("apua", "Ohjeet")], language_code="fi")
    await bot.set_my_commands([("hjalp", "Hjälp")], language_code="sv")
    assert [c.command for c in await bot.get_my_commands(language_code="sv")] == ["hjalp"]
    assert server.commands[("default", "fi")] == [{"command": "apua", "description": "Ohjeet"}]
    assert await bot.get_my_commands() == ()
    await bot.delete_my_commands(language_code="fi")
    assert ("default", "fi") not in server.commands
    with pytest.raises(BadRequest, match="(?i)BOT_COMMAND_INVALID"):
        await bot.set_my_commands([("kieli.fi", "Kieli")])


@pytest.mark.asyncio
async def test_document_upload_and_download(server: FakeTelegramServer, bot: Bot) -> None:
    server.add_chat(RESIDENT)
    await bot.send_chat_action(RESIDENT, "upload_document")
    message = await bot.send_document(
        RESIDENT, b"a;b\n1;2\n", filename="palaute.csv", caption="Raportti"
    )
    assert message.document.file_name == "palaute.csv" and message.caption == "Raportti"
    assert server.uploads[0]["content"] == b"a;b\n1;2\n"
    telegram_file = await bot.get_file(message.document.file_id)
    assert bytes(await telegram_file.download_as_bytearray()) == b"a;b\n1;2\n"
    assert server.chat_actions[0]["action"] == "upload_document"


# --------------------------------------------------------------- webhook


@pytest.mark.asyncio
async def test_webhook_mode_posts_updates_with_secret(server: FakeTelegramServer, bot: Bot) -> None:
    received: list[tuple[Any, str | None]] = []
    attempts = []

    async def receive(request: web.Request) -> web.Response:
        attempts.append(1)
        if len(attempts) == 1:
            return web.Response(status=500)  # the first delivery fails and is retried
        received.append(
            (await request.json(), request.headers.get("X-Telegram-Bot-Api-Secret-Token"))
        )
        return web.Response()

    app = web.Application()
    app.router.add_post("/hook", receive)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        port = runner.addresses[0][1]
        await bot.set_webhook(f"http://127.0.0.1:{port}/hook", secret_token="s3cret")
        with pytest.raises(Conflict, match="(?i)webhook is active"):
            await bot.get_updates()
        update = server.send_text(RESIDENT, "hei")
        await server.wait_until(lambda: bool(server.webhook_deliveries), timeout=5)
        assert received == [(update, "s3cret")]
        await bot.delete_webhook()
        assert await bot.get_updates() == ()
    finally:
        await runner.cleanup()


# --------------------------------------------------------------- the whole PTB stack


@pytest.mark.asyncio
async def test_application_polling_runs_the_start_handler(server: FakeTelegramServer) -> None:
    seen: list[str] = []

    async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        seen.append(update.effective_user.language_code)
        await update.message.reply_text("Tervetuloa!", do_quote=True)

    application = (
        ApplicationBuilder()
        .token(TOKEN)
        .base_url(server.base_url)
        .base_file_url(server.file_url)
        .build()
    )
    application.add_handler(CommandHandler("start", start))
    async with application:
        await application.start()
        await application.updater.start_polling(poll_interval=0, timeout=2)
        server.send_text(server.user(RESIDENT, "Maija"), "/start")
        replies = await server.wait_for_messages(RESIDENT, 1, timeout=5)
        await application.updater.stop()
        await application.stop()
    assert seen == ["fi"]
    assert replies[0]["text"] == "Tervetuloa!"
    assert replies[0]["reply_to_message"]["text"] == "/start"
