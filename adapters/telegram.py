"""The Telegram adapter: python-telegram-bot's Application in, the core's Incoming/Reply across.

It polls getUpdates by default, or serves a webhook when TELEGRAM_WEBHOOK_URL is set
(the secret token is checked on every request). Each update is stored before Telegram
hears it arrived and marked handled after it was answered (`telegram_intake`), so a
crash loses none: a later start replays it. Updates become `Incoming` (see
`telegram_incoming`); replies go out as escaped HTML, split under 4096 characters,
with choices as inline buttons. Send errors become the core's RetryLater,
RecipientGone and PermanentFailure. Nothing here knows a feature of the assistant.
"""

from __future__ import annotations

import asyncio
import contextvars
import datetime as dt
import functools
import logging
import secrets
import warnings
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TypeVar
from urllib.parse import urlsplit

from telegram import (
    BotCommand,
    InputFile,
    LinkPreviewOptions,
    Message,
    ReplyParameters,
    Update,
)
from telegram.constants import ParseMode
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Forbidden,
    NetworkError,
    RetryAfter,
    TelegramError,
    TimedOut,
)
from telegram.ext import (
    AIORateLimiter,
    Application,
    ApplicationBuilder,
    ContextTypes,
    ExtBot,
    TypeHandler,
)

from adapters.telegram_format import escape, keyboard, split_text
from adapters.telegram_http import AiohttpRequest
from adapters.telegram_incoming import PLATFORM, Me, incoming_from
from adapters.telegram_intake import Intake, IntakeBot, IntakeQueue, RecentUpdates, UpdateLog
from adapters.telegram_queue import ChatOrderedProcessor, ChatPacer
from assistant.messages import Reply
from assistant.platform import OnMessage, PermanentFailure, RecipientGone, RetryLater
from assistant.settings import Settings

logger = logging.getLogger(__name__)
T = TypeVar("T")
# Bot API URLs contain the token, and httpx logs every request URL at INFO.
logging.getLogger("httpx").setLevel(logging.WARNING)
logging.getLogger("httpcore").setLevel(logging.WARNING)

ALLOWED_UPDATES = ["message", "edited_message", "callback_query"]
NO_PREVIEW = LinkPreviewOptions(is_disabled=True)
Menus = Mapping[str, Sequence[tuple[str, str]]]  # language ("" = default) -> (command, help)
# Set while the adapter handles an update: sends made then are direct replies, which wait
# out a 429 (that chat only) or a 5xx themselves; other sends (the outbox) get RetryLater.
_REPLYING: contextvars.ContextVar[bool] = contextvars.ContextVar("telegram_replying", default=False)
REPLY_WAIT_LIMIT = 60.0  # seconds of 429 waits a reply sits out before it is given up
FIRST_RETRY_WAIT = 0.5  # seconds before a reply's first retry after a 5xx; doubles each time


class _RateLimitToWarning(logging.Filter):
    """PTB logs every 429 it does not retry as an ERROR with a traceback; the adapter
    (replies) or the outbox (pushes) retries it, so it is only worth a WARNING."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR and str(record.msg).startswith("Rate limit hit"):
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            record.exc_info, record.exc_text = None, None
        return True


logging.getLogger("telegram.ext.AIORateLimiter").addFilter(_RateLimitToWarning())


class TelegramAdapter:
    """One bot: `start(on_message)` begins polling or the webhook, `send()` answers.

    `max_concurrent_updates` is kept low on purpose: the core is CPU-bound (matching,
    SQLite), so more updates at once only add latency until replies time out.
    `log` keeps each update from intake until handled (`telegram_intake`); without one,
    redeliveries are only caught within the process and a crash loses what was queued.
    """

    platform = PLATFORM

    def __init__(self, settings: Settings, *, menus: Menus | None = None,
                 log: UpdateLog | None = None, rate_limits: bool = True,
                 reply_retries: int = 3, poll_timeout: int = 10, poll_interval: float = 0.0,
                 max_concurrent_updates: int = 32):
        self.settings = settings
        self.menus = dict(menus or {})
        self.intake = Intake(log or RecentUpdates())
        self.reply_retries = reply_retries
        self.poll_timeout, self.poll_interval = poll_timeout, poll_interval
        self.webhook_secret = settings.telegram_webhook_secret or secrets.token_urlsafe(32)
        self.me = Me(0, "")
        self._on_message: OnMessage | None = None
        self.processor = ChatOrderedProcessor(max_concurrent_updates)
        self.pacer = ChatPacer()
        self.application = _build(settings, self.processor, self.intake, rate_limits)
        self._sweeper: asyncio.Task[None] | None = None

    @property
    def bot(self) -> ExtBot[int]:
        return self.application.bot

    # ------------------------------------------------------------- lifecycle

    async def start(self, on_message: OnMessage) -> None:
        """Check the token (getMe), set the command menus, start taking updates; then return."""
        self._on_message = on_message
        app = self.application
        app.add_handler(TypeHandler(Update, self._on_update))
        app.add_error_handler(self._on_error)
        await app.initialize()
        self.me = Me.of(app.bot.bot)
        await self._set_menus()
        await app.start()
        await self._replay()  # what a process that died took in and did not handle
        self._sweeper = asyncio.create_task(self._sweep(), name="telegram-intake-sweep")
        if self.settings.telegram_webhook_url:
            await self._start_webhook()
        else:
            await self._start_polling()

    async def stop(self) -> None:
        """Stop taking updates, finish those under way, close the HTTP clients."""
        app = self.application
        if self._sweeper is not None:
            self._sweeper.cancel()
            await asyncio.gather(self._sweeper, return_exceptions=True)
            self._sweeper = None
        if app.updater is not None and app.updater.running:
            await app.updater.stop()
        if app.running:
            await app.stop()
        await self.intake.release()
        await app.shutdown()

    async def _replay(self) -> None:
        """Queue the updates of a dead process (their lease ran out), claimed for this one."""
        queue = self.application.update_queue
        assert isinstance(queue, IntakeQueue)
        for update in await self.intake.claim(self.bot):
            await queue.put_claimed(update)

    async def _sweep(self) -> None:
        """Keep our leases and pick up a dead process's updates while running (webhook
        workers share the log; with polling there is one process, then this is cheap)."""
        while True:
            await asyncio.sleep(self.intake.sweep_seconds)
            try:
                await self._replay()
            except Exception:
                logger.exception("Telegram: the intake sweep failed")

    async def _start_polling(self) -> None:
        assert self.application.updater is not None
        await self.application.updater.start_polling(
            poll_interval=self.poll_interval, timeout=self.poll_timeout,
            allowed_updates=ALLOWED_UPDATES, bootstrap_retries=3,
            error_callback=_polling_failed)
        logger.info("Telegram: polling for updates as @%s", self.me.username)

    async def _start_webhook(self) -> None:
        assert self.application.updater is not None
        url = self.settings.telegram_webhook_url
        await self.application.updater.start_webhook(
            listen=self.settings.telegram_webhook_listen, port=self.settings.telegram_webhook_port,
            url_path=urlsplit(url).path or "/", webhook_url=url, secret_token=self.webhook_secret,
            allowed_updates=ALLOWED_UPDATES, bootstrap_retries=3)
        logger.info("Telegram: webhook listening on %s:%s", self.settings.telegram_webhook_listen,
                    self.settings.telegram_webhook_port)

    async def _set_menus(self) -> None:
        """setMyCommands per language (Bot API: a language_code, or none for the default)."""
        for language, entries in self.menus.items():
            commands = [BotCommand(name, (text or name)[:256]) for name, text in entries]
            try:
                await self.bot.set_my_commands(commands, language_code=language or None)
            except TelegramError as error:
                logger.warning("Telegram: setting the %r command menu failed: %s",
                               language, type(error).__name__)

    # ------------------------------------------------------------- incoming

    async def _on_update(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Every update passes here; nothing a resident sends may escape as an exception.

        It is marked handled after its answers were sent (or failed), not when cancelled
        by a stop: a crash before the mark replays it, so an answer may come twice but
        never not at all.
        """
        if not isinstance(update, Update):
            return
        _REPLYING.set(True)
        try:
            if update.callback_query is not None:
                await self._settle_button(update)
            incoming = incoming_from(update, self.me)
            if incoming is not None and self._on_message is not None:
                await self._on_message(incoming)
        except Exception:
            logger.exception("Telegram: handling update %s failed", update.update_id)
        self.intake.done(update)

    async def _settle_button(self, update: Update) -> None:
        """Stop the button's spinner, and remove the keyboard so it is not pressed twice."""
        query = update.callback_query
        assert query is not None
        await _quietly(query.answer(), "answerCallbackQuery")
        if isinstance(query.message, Message) and query.message.reply_markup is not None:
            await _quietly(query.message.edit_reply_markup(reply_markup=None),
                           "editMessageReplyMarkup")

    async def _on_error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        logger.error("Telegram: %s in the update handler", type(context.error).__name__,
                     exc_info=context.error)

    # ------------------------------------------------------------- outgoing

    async def send(self, chat_id: str, reply: Reply) -> str:
        """Send `reply` (split if long, buttons on the last part); returns the last message id."""
        try:
            return await self._send(chat_id, reply)
        except TelegramError as error:
            raise platform_error(error) from error

    async def _send(self, chat_id: str, reply: Reply) -> str:
        parts = split_text(reply.text)
        markup = keyboard(reply.choices)
        message_id = ""
        for index, part in enumerate(parts):
            last = index == len(parts) - 1
            message_id = await self._deliver(chat_id, functools.partial(
                self._send_message, chat_id, escape(part), parse_mode=ParseMode.HTML,
                reply_markup=markup if last else None, link_preview_options=NO_PREVIEW,
                reply_parameters=_quote(chat_id, reply) if index == 0 else None))
        if reply.attachment_name:
            document = InputFile(reply.attachment, filename=reply.attachment_name)
            message = await self._deliver(chat_id, functools.partial(
                self.bot.send_document, chat_id, document,
                reply_markup=None if parts else markup))
            message_id = str(message.message_id)
        return message_id

    async def _send_message(self, chat_id: str, text: str, **fields: object) -> str:
        """`bot.send_message` without building PTB's `Message` from the answer (a third of a
        push's CPU in the worker): only its id is needed. PTB's `_post` sends the same
        request and raises the same errors."""
        data = {"chat_id": chat_id, "text": text, **fields}
        result = await self.bot._post("sendMessage", data)
        return str(result["message_id"])

    async def _deliver(self, chat_id: str, request: Callable[[], Awaitable[T]]) -> T:
        """One message. A reply waits out a 429 for its own chat only (PTB would hold back the
        whole bot) and retries a 5xx or a connection lost before an answer; the outbox does
        both for pushes. A timeout is not retried: Telegram may have delivered the message."""
        if not _REPLYING.get():
            return await request()
        wait, failures, held = FIRST_RETRY_WAIT, 0, 0.0
        while True:
            await self.pacer.wait(chat_id)
            try:
                return await request()
            except RetryAfter as error:
                # Telegram named the moment it takes the message: wait for it, however often
                # it is named, up to REPLY_WAIT_LIMIT in all (a burst of residents at once).
                seconds = _seconds(error) + 0.1
                held += seconds
                if held > REPLY_WAIT_LIMIT:
                    raise
                self.pacer.hold(chat_id, seconds)
            except (TimedOut, BadRequest):
                raise
            except NetworkError as error:
                failures += 1
                if failures > self.reply_retries:
                    raise
                logger.warning("Telegram: a reply failed (%s); retrying in %.1f s",
                               type(error).__name__, wait)
                await asyncio.sleep(wait)
                wait *= 2

def platform_error(error: TelegramError) -> Exception:
    """The core's view of a Bot API error: wait and retry, stop sending, or give up."""
    if isinstance(error, RetryAfter):
        return RetryLater(_seconds(error), "Telegram flood limit")
    if isinstance(error, Forbidden):  # blocked by the user, user deactivated, kicked
        return RecipientGone(error.message)
    if isinstance(error, ChatMigrated):  # the group became a supergroup with a new id
        return RecipientGone(f"chat migrated to {error.new_chat_id}")
    if isinstance(error, BadRequest):
        if "chat not found" in error.message.lower():
            return RecipientGone(error.message)
        return PermanentFailure(error.message)
    if isinstance(error, NetworkError):  # 5xx, timeouts, dropped connections
        return RetryLater(5.0, type(error).__name__)
    return PermanentFailure(type(error).__name__)


def _build(settings: Settings, processor: ChatOrderedProcessor, intake: Intake,
           rate_limits: bool) -> Application:
    """The PTB Application pointed at TELEGRAM_API_URL (`{url}/bot<token>/<method>`),
    its bot and update queue storing updates through `intake` before they are confirmed."""
    api = settings.telegram_api_url.rstrip("/")
    # Telegram: ~30 messages/s overall, 20/min per group. No retries here: a retry_after
    # would hold back every chat; replies retry per chat (see _deliver), pushes in the outbox.
    limiter = AIORateLimiter(overall_max_rate=30 if rate_limits else 0,
                             group_max_rate=20 if rate_limits else 0, max_retries=0)
    bot = IntakeBot(settings.telegram_bot_token, base_url=f"{api}/bot",
                    base_file_url=f"{api}/file/bot", request=AiohttpRequest(),
                    get_updates_request=AiohttpRequest(pool_size=1), rate_limiter=limiter)
    bot.attach(intake)
    queue = IntakeQueue(intake, hold_webhook=bool(settings.telegram_webhook_url))
    return (ApplicationBuilder().bot(bot).update_queue(queue)
            .concurrent_updates(processor).job_queue(None).build())


def _quote(chat_id: str, reply: Reply) -> ReplyParameters | None:
    """In a group, answer as a reply to the resident's message so the thread stays readable."""
    if reply.chat_id or not chat_id.startswith("-") or not reply.reply_to.isdigit():
        return None
    return ReplyParameters(message_id=int(reply.reply_to), allow_sending_without_reply=True)


def _seconds(error: RetryAfter) -> float:
    with warnings.catch_warnings():  # PTB warns that the int form will become a timedelta
        warnings.simplefilter("ignore")
        after = error.retry_after
    return after.total_seconds() if isinstance(after, dt.timedelta) else float(after)


def _polling_failed(error: TelegramError) -> None:
    """PTB retries getUpdates with back-off; we only note it (the error text may hold a URL)."""
    logger.warning("Telegram: getUpdates failed (%s); retrying", type(error).__name__)


async def _quietly(call: Awaitable[object], method: str) -> None:
    """Courtesy calls (answer a button, tidy a keyboard) must never stop the answer."""
    try:
        await call
    except TelegramError as error:
        logger.debug("Telegram: %s failed: %s", method, type(error).__name__)
