"""A local Telegram Bot API server for end-to-end tests and benchmarks.

The real python-telegram-bot stack talks HTTP to it (`base_url=server.base_url`,
`base_file_url=server.file_url`). It answers with the Bot API's JSON shapes and
errors, records what the bot sent, injects updates as residents would, and can
misbehave on purpose: flood limits (429), blocked chats (403), server errors,
slow answers and dropped connections. See https://core.telegram.org/bots/api.

Webhook delivery (`telegram_webhook`) is Telegram's: several connections at once,
one chat's updates in order, a failed delivery posted again with the same update_id.

Deliberate deviations: webhooks may be plain http on loopback; a failed webhook
delivery is retried a few times, sooner than Telegram would, and then given up
(Telegram keeps trying for hours); only the methods an assistant bot needs exist,
others answer 404.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Self

import aiohttp
from aiohttp import web

from tests.fakes.telegram_api import (
    CHAT_ACTIONS,
    MAX_CAPTION,
    MAX_TEXT,
    NOT_MODIFIED,
    POLL_TERMINATED,
    QUERY_INVALID,
    RATE_LIMITED,
    UPDATE_KINDS_OFF_BY_DEFAULT,
    WEBHOOK_ACTIVE,
    ApiError,
    bad_request,
    check_command,
    check_reply_markup,
    dumps,
    read_params,
    too_many_requests,
)
from tests.fakes.telegram_limits import Fault, FaultPlan, FloodLimiter
from tests.fakes.telegram_markup import EntityParseError, detect_entities, format_text, utf16_len
from tests.fakes.telegram_webhook import WebhookDelivery
from tests.fakes.telegram_world import TelegramWorld

log = logging.getLogger(__name__)

JSON = dict[str, Any]


class FakeTelegramServer(TelegramWorld):
    """The Bot API on 127.0.0.1 for one bot: start it, point the bot at `base_url`.

    Inherited from `TelegramWorld`: `user()`, `add_chat()`, `block()`,
    `build_message()`, `add_file()`. Call everything from the event loop's thread.
    """

    def __init__(
        self,
        token: str = "123456789:TEST-espoo-token",
        bot_username: str = "espoo_test_bot",
        bot_id: int | None = None,
        enforce_limits: bool = False,
        clock: Callable[[], float] = time.monotonic,
        webhook_retries: int = 3,
        webhook_timeout: float = 10.0,
    ) -> None:
        prefix = token.split(":", 1)[0]
        super().__init__({
            "id": bot_id if bot_id is not None else int(prefix) if prefix.isdigit() else 123456789,
            "is_bot": True,
            "first_name": "Espoo Test Bot",
            "username": bot_username,
        })  # fmt: skip
        self.token = token
        self.enforce_limits = enforce_limits
        self.limiter = FloodLimiter(clock)
        self._clock = clock
        self._faults = FaultPlan()
        self._methods = self._method_table()
        # What the bot did, for assertions.
        self.sent: list[JSON] = []
        self.all_requests: list[JSON] = []
        self.commands: dict[tuple[str, str], list[JSON]] = {}
        self.answered_callbacks: list[JSON] = []
        self.chat_actions: list[JSON] = []
        self.uploads: list[JSON] = []
        self.rejected_429 = 0
        self.webhook: JSON | None = None
        self.delivery = WebhookDelivery(self._next_for_webhook, self._give_back,
                                        self._check_waiters, webhook_retries,
                                        timeout=webhook_timeout, clock=clock)
        self.injected: list[JSON] = []
        self._callbacks: dict[str, bool] = {}  # callback_query_id -> answered
        self._next_update_id = 100_000_001
        # Update delivery.
        self._pending: deque[JSON] = deque()
        self._redelivered: deque[JSON] = deque()
        self._allowed_updates: set[str] | None = None
        self._wakeup = asyncio.Event()
        self._poll_seq = 0
        self._waiters: list[tuple[Callable[[], bool], asyncio.Future[None]]] = []
        self._closing = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._port = 0

    # ----------------------------------------------------------------- lifecycle

    async def start(self, port: int = 0) -> None:
        """Listen on loopback, on an ephemeral port unless one is given."""
        app = web.Application(client_max_size=60 * 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._handle)
        app.router.add_get("/file/bot{token}/{path:.+}", self._download)
        app.router.add_get("/_fake/stats", self._stats)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port)
        await site.start()
        self._port = self._runner.addresses[0][1]
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        self.delivery.session = self._session
        log.debug("fake Telegram listening on %s", self.url)

    async def stop(self) -> None:
        """Answer open long polls, stop webhook delivery, close the listener."""
        self._closing.set()
        self._notify()
        await self.delivery.close()
        if self._session:
            await self._session.close()
        if self._runner:
            await self._runner.cleanup()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    @property
    def base_url(self) -> str:
        """What to give `Bot(base_url=...)` / `ApplicationBuilder().base_url(...)`."""
        return f"{self.url}/bot"

    @property
    def file_url(self) -> str:
        """What to give `base_file_url`."""
        return f"{self.url}/file/bot"

    # ------------------------------------------------------------------ HTTP

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["method"].lower()
        record: JSON = {"method": name, "params": {}, "time": self._clock(), "status": 200}
        self.all_requests.append(record)
        try:
            if request.match_info["token"] != self.token:
                raise ApiError(401, "Unauthorized")
            method, handler = self._methods.get(name, (name, None))
            record["method"] = method
            if handler is None:
                raise ApiError(404, "Not Found")
            params = record["params"] = await read_params(request)
            fault = self._faults.take(name)
            if fault:
                await self._misbehave(fault)
            if fault and fault.kind == "drop" and not fault.deliver:
                return self._drop(request, record)
            body: JSON = {"ok": True, "result": await handler(params)}
            if fault and fault.kind == "drop":
                return self._drop(request, record)
        except ApiError as error:
            record["status"] = error.status
            if error.status == 429:
                self.rejected_429 += 1
            body = error.body()
        except Exception:
            log.exception("fake Telegram failed on %s", record["method"])
            record["status"] = 500
            body = ApiError(500, "Internal Server Error").body()
        finally:
            self._check_waiters()
        return web.json_response(body, status=record["status"], dumps=dumps)

    async def _misbehave(self, fault: Fault) -> None:
        """Apply an injected failure or delay; drops are handled by the caller."""
        if fault.kind == "fail":
            params = {"retry_after": fault.retry_after} if fault.retry_after else None
            raise ApiError(fault.status, fault.description, params)
        if fault.kind == "delay":
            await self._sleep(fault.seconds)

    @staticmethod
    def _drop(request: web.Request, record: JSON) -> web.StreamResponse:
        """Close the connection without answering; the client sees a network error."""
        record["status"] = None
        if request.transport:
            request.transport.close()
        return web.Response()

    async def _sleep(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self._closing.wait(), seconds)
        except TimeoutError:
            pass

    async def _download(self, request: web.Request) -> web.StreamResponse:
        content = self.file_paths.get(request.match_info["path"])
        if request.match_info["token"] != self.token or content is None:
            return web.json_response(ApiError(404, "Not Found").body(), status=404)
        return web.Response(body=content, content_type="application/octet-stream")

    async def _stats(self, request: web.Request) -> web.StreamResponse:
        """Counters for a benchmark that runs the server in its own process."""
        return web.json_response({
            "requests": len(self.all_requests),
            "sent": len(self.sent),
            "rejected_429": self.rejected_429,
            "messages_sent_per_second": self.messages_sent_per_second(),
            "max_sent_in_window": self.max_sent_in_window(),
        })  # fmt: skip

    def _method_table(self) -> dict[str, tuple[str, Callable[[JSON], Any]]]:
        methods = {
            "getMe": self._get_me,
            "getUpdates": self._get_updates,
            "setWebhook": self._set_webhook,
            "deleteWebhook": self._delete_webhook,
            "getWebhookInfo": self._get_webhook_info,
            "sendMessage": self._send_message,
            "editMessageText": self._edit_message_text,
            "editMessageReplyMarkup": self._edit_message_reply_markup,
            "answerCallbackQuery": self._answer_callback_query,
            "setMyCommands": self._set_my_commands,
            "getMyCommands": self._get_my_commands,
            "deleteMyCommands": self._delete_my_commands,
            "sendChatAction": self._send_chat_action,
            "sendDocument": self._send_document,
            "getFile": self._get_file,
        }
        return {name.lower(): (name, handler) for name, handler in methods.items()}

    # ------------------------------------------------------- updates and webhook

    async def _get_me(self, params: JSON) -> JSON:
        return {
            **self.bot_user,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    async def _get_updates(self, params: JSON) -> list[JSON]:
        if self.webhook:
            raise ApiError(409, WEBHOOK_ACTIVE)
        self._poll_seq += 1
        me = self._poll_seq
        self._notify()  # an older long poll still waiting is terminated, as in Telegram
        if "allowed_updates" in params:
            self._allowed_updates = set(params["allowed_updates"] or ()) or None
        self._confirm(params.get("offset", 0))
        limit = min(max(params.get("limit") or 100, 1), 100)
        deadline = time.monotonic() + max(params.get("timeout", 0.0), 0.0)
        batch = self._take(limit)
        while (
            not batch
            and not self._closing.is_set()
            and (remaining := deadline - time.monotonic()) > 0
        ):
            wakeup = self._wakeup
            try:
                await asyncio.wait_for(wakeup.wait(), remaining)
            except TimeoutError:
                break
            if me != self._poll_seq:
                raise ApiError(409, POLL_TERMINATED)
            batch = self._take(limit)
        return batch

    def _confirm(self, offset: int) -> None:
        """Forget updates below `offset`; a negative offset keeps only the last -offset."""
        if offset < 0:
            while len(self._pending) > -offset:
                self._pending.popleft()
            return
        while self._pending and self._pending[0]["update_id"] < offset:
            self._pending.popleft()

    def _take(self, limit: int) -> list[JSON]:
        batch = [self._redelivered.popleft() for _ in range(min(limit, len(self._redelivered)))]
        for update in itertools.islice(self._pending, limit - len(batch)):
            if self._allowed(update):
                batch.append(update)
        return batch

    def _allowed(self, update: JSON) -> bool:
        kind = next((key for key in update if key != "update_id"), "")
        if self._allowed_updates is None:
            return kind not in UPDATE_KINDS_OFF_BY_DEFAULT
        return kind in self._allowed_updates

    async def _set_webhook(self, params: JSON) -> bool:
        url = params.get("url", "")
        if not url:
            return await self._delete_webhook(params)
        if not url.startswith(("http://", "https://")):
            raise bad_request("bad webhook: An HTTPS URL must be provided for webhook")
        if params.get("drop_pending_updates"):
            self._pending.clear()
        if "allowed_updates" in params:
            self._allowed_updates = set(params["allowed_updates"] or ()) or None
        self.webhook = {"url": url, "secret_token": params.get("secret_token")}
        self.delivery.set(url, params.get("secret_token"), params.get("max_connections"))
        self._notify()
        return True

    async def _delete_webhook(self, params: JSON) -> bool:
        self.webhook = None
        self.delivery.delete()
        if params.get("drop_pending_updates"):
            self._pending.clear()
        self._notify()
        return True

    async def _get_webhook_info(self, params: JSON) -> JSON:
        info: JSON = {
            "url": "",
            "has_custom_certificate": False,
            "pending_update_count": len(self._pending) + len(self._redelivered)
            + self.delivery.loaded,
        }
        if self.webhook and self.delivery.config:
            info.update(url=self.webhook["url"],
                        max_connections=self.delivery.config["max_connections"])
        return info

    def _next_for_webhook(self) -> JSON | None:
        """The next update for the webhook to post (a redelivery first), None if none."""
        while self._redelivered or self._pending:
            update = (self._redelivered or self._pending).popleft()
            if self._allowed(update):
                return update
        return None

    def _give_back(self, updates: list[JSON]) -> None:
        """Updates the webhook did not deliver before it was deleted: pending again, in order."""
        self._pending = deque(sorted([*updates, *self._pending], key=lambda u: u["update_id"]))

    @property
    def webhook_deliveries(self) -> list[JSON]:
        """Updates the webhook answered with a 2xx: {"update", "attempts"}."""
        return self.delivery.delivered

    @webhook_deliveries.setter
    def webhook_deliveries(self, deliveries: list[JSON]) -> None:
        self.delivery.delivered = deliveries

    @property
    def failed_webhook_deliveries(self) -> list[JSON]:
        """Updates given up after every retry failed: {"update", "error"}."""
        return self.delivery.failed

    def _notify(self) -> None:
        """Wake long polls and the webhook's delivery."""
        self._wakeup.set()
        self._wakeup = asyncio.Event()
        self.delivery.wake()

    # ------------------------------------------------------------- sending

    async def _send_message(self, params: JSON) -> JSON:
        chat = self._target_chat(params)
        if "text" not in params or params["text"] == "":
            raise bad_request("message text is empty")
        text, entities = self._formatted(
            params, "text", "entities", MAX_TEXT, "message is too long"
        )
        if not text:
            raise bad_request("message text is empty")
        fields: JSON = {"text": text}
        if entities:
            fields["entities"] = entities
        return self._deliver_bot_message("sendMessage", chat, params, fields)

    async def _send_document(self, params: JSON) -> JSON:
        chat = self._target_chat(params)
        caption, entities = self._formatted(
            params, "caption", "caption_entities", MAX_CAPTION, "message caption is too long"
        )
        document = self._document(params.get("document"))
        fields: JSON = {"document": document}
        if caption:
            fields["caption"] = caption
        if entities:
            fields["caption_entities"] = entities
        message = self._deliver_bot_message("sendDocument", chat, params, fields)
        content = self.files[document["file_id"]]["content"]
        self.uploads.append({
            "chat_id": chat["id"],
            "filename": document.get("file_name"),
            "content": content,
            "mime_type": document.get("mime_type"),
            "caption": caption,
            "message": message,
        })  # fmt: skip
        return message

    def _deliver_bot_message(self, method: str, chat: JSON, params: JSON, fields: JSON) -> JSON:
        """Shared tail of the send methods: reply target, markup, flood limits, recording."""
        markup = check_reply_markup(params.get("reply_markup"))
        reply_to = self._reply_target(chat["id"], params)
        self._check_flood(method, chat["id"])
        message = self.new_message(chat, self.bot_user, **fields)
        if reply_to:
            message["reply_to_message"] = reply_to
        if markup and "inline_keyboard" in markup:
            message["reply_markup"] = markup  # Telegram echoes only inline keyboards
        self.bot_messages.setdefault(chat["id"], []).append(message["message_id"])
        self._record(method, chat["id"], params, markup, message)
        return message

    def _record(
        self, method: str, chat_id: int | str, params: JSON, markup: JSON | None, message: JSON
    ) -> None:
        self.sent.append({
            "method": method,
            "chat_id": chat_id,
            "text": message.get("text", message.get("caption")),
            "parse_mode": params.get("parse_mode"),
            "reply_markup": markup,
            "disable_notification": params.get("disable_notification", False),
            "link_preview_options": params.get("link_preview_options"),
            "time": self._clock(),
            "message": message,
        })  # fmt: skip

    def _formatted(
        self, params: JSON, key: str, entities_key: str, limit: int, too_long: str
    ) -> tuple[str, list[JSON]]:
        raw = params.get(key) or ""
        if not isinstance(raw, str):
            raise bad_request(f"{key} must be a string")
        try:
            if params.get(entities_key):
                text, entities = raw, list(params[entities_key])
            else:
                text, entities = format_text(raw, params.get("parse_mode"))
        except EntityParseError as error:
            raise bad_request(f"can't parse entities: {error}") from None
        if utf16_len(text) > limit:
            raise bad_request(too_long)
        return text, entities

    def _check_flood(self, method: str, chat_id: int | str) -> None:
        if not self.enforce_limits or method.lower() not in RATE_LIMITED:
            return
        retry_after = self.limiter.retry_after(chat_id)
        if retry_after:
            raise too_many_requests(retry_after)
        self.limiter.record(chat_id)

    def _target_chat(self, params: JSON) -> JSON:
        chat_id = params.get("chat_id")
        if chat_id in (None, ""):
            raise bad_request("chat_id is empty")
        chat = self.chats.get(chat_id)
        if chat is None:
            raise bad_request("chat not found")
        if chat_id in self.blocked:
            if chat["type"] == "private":
                raise ApiError(403, "Forbidden: bot was blocked by the user")
            raise ApiError(403, f"Forbidden: bot was kicked from the {chat['type']} chat")
        return chat

    def _reply_target(self, chat_id: int | str, params: JSON) -> JSON | None:
        reply = params.get("reply_parameters") or {}
        if not isinstance(reply, dict):
            raise bad_request("can't parse reply parameters JSON object")
        message_id = reply.get("message_id", params.get("reply_to_message_id"))
        if not message_id:
            return None
        target = self.messages.get((reply.get("chat_id", chat_id), int(message_id)))
        if target is None:
            if reply.get("allow_sending_without_reply", params.get("allow_sending_without_reply")):
                return None
            raise bad_request("message to be replied not found")
        return {key: value for key, value in target.items() if key != "reply_to_message"}

    def _document(self, document: Any) -> JSON:
        if isinstance(document, str):
            known = self.files.get(document)
            if known is None:
                raise bad_request("wrong file identifier/HTTP URL specified")
            return dict(known["meta"])
        if not isinstance(document, web.FileField):
            raise bad_request("there is no document in the request")
        content = document.file.read()
        if not content:
            raise bad_request("file must be non-empty")
        return self.add_file(content, document.filename, document.content_type, folder="documents")

    # ------------------------------------------------------------- editing

    async def _edit_message_text(self, params: JSON) -> JSON:
        message = self._editable(params)
        if "text" not in message:
            raise bad_request("there is no text in the message to edit")
        if not params.get("text"):
            raise bad_request("message text is empty")
        text, entities = self._formatted(params, "text", "entities", MAX_TEXT, "MESSAGE_TOO_LONG")
        markup = check_reply_markup(params.get("reply_markup"))
        changes: JSON = {"text": text, "entities": entities or None, "reply_markup": markup}
        return self._apply_edit("editMessageText", message, params, changes)

    async def _edit_message_reply_markup(self, params: JSON) -> JSON:
        message = self._editable(params)
        markup = check_reply_markup(params.get("reply_markup"))
        return self._apply_edit("editMessageReplyMarkup", message, params, {"reply_markup": markup})

    def _editable(self, params: JSON) -> JSON:
        if params.get("inline_message_id"):
            raise bad_request("MESSAGE_ID_INVALID")
        chat = self._target_chat(params)
        message = self.messages.get((chat["id"], params.get("message_id", 0)))
        if message is None:
            raise bad_request("message to edit not found")
        if message["from"]["id"] != self.bot_user["id"]:
            raise bad_request("message can't be edited")
        return message

    def _apply_edit(self, method: str, message: JSON, params: JSON, changes: JSON) -> JSON:
        edited = {**message, "edit_date": int(time.time())}
        for key, value in changes.items():
            if value:
                edited[key] = value
            else:
                edited.pop(key, None)
        if all(edited.get(key) == message.get(key) for key in changes):
            raise bad_request(NOT_MODIFIED)
        self.messages[(message["chat"]["id"], message["message_id"])] = edited
        self._record(method, message["chat"]["id"], params, changes.get("reply_markup"), edited)
        return edited

    # --------------------------------------------------------- other methods

    async def _answer_callback_query(self, params: JSON) -> bool:
        query_id = str(params.get("callback_query_id", ""))
        if self._callbacks.get(query_id, True):
            raise ApiError(400, QUERY_INVALID)
        if len(params.get("text") or "") > 200:
            raise bad_request("MESSAGE_TOO_LONG")
        self._callbacks[query_id] = True
        self.answered_callbacks.append({
            "callback_query_id": query_id,
            "text": params.get("text"),
            "show_alert": params.get("show_alert", False),
            "url": params.get("url"),
            "cache_time": params.get("cache_time", 0),
        })  # fmt: skip
        return True

    async def _set_my_commands(self, params: JSON) -> bool:
        commands = params.get("commands")
        if not isinstance(commands, list) or len(commands) > 100:
            raise bad_request("can't parse commands JSON object")
        for command in commands:
            check_command(command)
        key = self._commands_key(params)
        self.commands[key] = [
            {"command": c["command"], "description": c["description"]} for c in commands
        ]
        return True

    async def _get_my_commands(self, params: JSON) -> list[JSON]:
        return self.commands.get(self._commands_key(params), [])

    async def _delete_my_commands(self, params: JSON) -> bool:
        self.commands.pop(self._commands_key(params), None)
        return True

    def _commands_key(self, params: JSON) -> tuple[str, str]:
        """(scope, language_code), e.g. ("default", "fi") or ("chat:42", "")."""
        language = params.get("language_code") or ""
        if language and (len(language) != 2 or not language.isalpha()):
            raise bad_request("invalid language code specified")
        scope = params.get("scope") or {"type": "default"}
        if not isinstance(scope, dict) or "type" not in scope:
            raise bad_request("can't parse BotCommandScope JSON object")
        parts = [scope["type"]] + [
            str(scope[key]) for key in ("chat_id", "user_id") if key in scope
        ]
        return ":".join(parts), language

    async def _send_chat_action(self, params: JSON) -> bool:
        chat = self._target_chat(params)
        if params.get("action") not in CHAT_ACTIONS:
            raise bad_request("wrong parameter action in request")
        self.chat_actions.append(
            {"chat_id": chat["id"], "action": params["action"], "time": self._clock()}
        )
        return True

    async def _get_file(self, params: JSON) -> JSON:
        known = self.files.get(str(params.get("file_id", "")))
        if known is None:
            raise bad_request("invalid file_id")
        meta = known["meta"]
        return {"file_id": meta["file_id"], "file_unique_id": meta["file_unique_id"],
                "file_size": meta["file_size"], "file_path": known["file_path"]}  # fmt: skip

    # ----------------------------------------------------- residents' updates

    def send_text(
        self,
        user: int | JSON,
        text: str,
        chat_id: int | str | None = None,
        chat_type: str | None = None,
        chat_title: str | None = None,
        reply_to_message_id: int | None = None,
    ) -> JSON:
        """A resident writes `text`; commands, mentions and links get their entities."""
        message = self.build_message(
            user, chat_id, chat_type, chat_title, reply_to_message_id, text=text
        )
        entities = detect_entities(text)
        if entities:
            message["entities"] = entities
        return self.send_raw_update({"message": message})

    def press_button(self, user: int | JSON, message: JSON, callback_data: str) -> JSON:
        """A resident presses an inline button of a bot message (as it is now, after edits)."""
        sender = self.resolve_user(user)
        key = (message["chat"]["id"], message["message_id"])
        current = self.messages.get(key)
        if current is None:
            raise ValueError(f"no message {key[1]} in chat {key[0]}")
        offered = [
            button.get("callback_data")
            for row in current.get("reply_markup", {}).get("inline_keyboard", [])
            for button in row
        ]
        if callback_data not in offered:
            raise ValueError(
                f"message {key[1]} has no button {callback_data!r}; it has {offered!r}"
            )
        query_id = str(4_000_000_000_000 + next(self.ids))
        self._callbacks[query_id] = False
        query = {"id": query_id, "from": sender, "message": current,
                 "chat_instance": str(abs(hash(key[0]))), "data": callback_data}  # fmt: skip
        return self.send_raw_update({"callback_query": query})

    def send_raw_update(self, update: JSON) -> JSON:
        """Queue any update (stickers, locations, edits, voice...); adds update_id if missing."""
        if "update_id" not in update:
            update = {"update_id": self._next_update_id, **update}
        self._next_update_id = max(self._next_update_id, update["update_id"] + 1)
        self.learn(update)
        self.injected.append(update)
        self._pending.append(update)
        self._notify()
        return update

    def redeliver(self, update: JSON) -> None:
        """Deliver an update again with its old update_id, as Telegram does after a failure."""
        self._redelivered.append(update)
        self._notify()

    # --------------------------------------------------------- fault injection

    def fail_next(
        self,
        method: str,
        status: int,
        description: str,
        count: int = 1,
        retry_after: int | None = None,
    ) -> None:
        """The next `count` calls of `method` fail with this error and change nothing."""
        self._faults.add(method, Fault("fail", count, status, description, retry_after))

    def delay_next(self, method: str, seconds: float, count: int = 1) -> None:
        """The next calls of `method` wait `seconds`, then succeed (even if the client gave up)."""
        self._faults.add(method, Fault("delay", count, seconds=seconds))

    def drop_next(self, method: str, count: int = 1, deliver: bool = False) -> None:
        """Close the connection without an answer; with `deliver`, after doing the work."""
        self._faults.add(method, Fault("drop", count, deliver=deliver))

    # --------------------------------------------------------------- reading

    def messages_to(self, chat_id: int | str) -> list[JSON]:
        """The bot's messages in a chat, oldest first, as they are now (after edits)."""
        return [self.messages[(chat_id, mid)] for mid in self.bot_messages.get(chat_id, [])]

    def texts_to(self, chat_id: int | str) -> list[str]:
        return [str(m.get("text", m.get("caption", ""))) for m in self.messages_to(chat_id)]

    def requests_for(self, method: str) -> list[JSON]:
        return [r for r in self.all_requests if r["method"].lower() == method.lower()]

    async def wait_for_messages(
        self, chat_id: int | str, count: int, timeout: float = 10
    ) -> list[JSON]:
        """Wait until the bot has sent at least `count` messages to the chat."""
        try:
            await self.wait_until(lambda: len(self.bot_messages.get(chat_id, ())) >= count, timeout)
        except TimeoutError:
            texts = self.texts_to(chat_id)
            raise TimeoutError(
                f"chat {chat_id} got {len(texts)} of {count} messages: {texts!r}"
            ) from None
        return self.messages_to(chat_id)

    async def wait_until(self, condition: Callable[[], bool], timeout: float = 10) -> None:
        """Wait until `condition()` holds; it is checked after every request and delivery."""
        if condition():
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiter = (condition, future)
        self._waiters.append(waiter)
        try:
            await asyncio.wait_for(future, timeout)
        finally:
            if waiter in self._waiters:
                self._waiters.remove(waiter)

    def _check_waiters(self) -> None:
        for condition, future in list(self._waiters):
            if not future.done() and condition():
                future.set_result(None)

    def messages_sent_per_second(self, chat_id: int | str | None = None) -> float:
        """Average send rate between the first and the last recorded send."""
        times = self._send_times(chat_id)
        if len(times) < 2 or times[-1] == times[0]:
            return float(len(times))
        return (len(times) - 1) / (times[-1] - times[0])

    def max_sent_in_window(self, window: float = 1.0, chat_id: int | str | None = None) -> int:
        """Most sends within any `window` seconds: compare with Telegram's limits."""
        times = self._send_times(chat_id)
        best, start = 0, 0
        for end, moment in enumerate(times):
            while moment - times[start] >= window:
                start += 1
            best = max(best, end - start + 1)
        return best

    def _send_times(self, chat_id: int | str | None) -> list[float]:
        return [
            entry["time"]
            for entry in self.sent
            if entry["method"].startswith("send")
            and (chat_id is None or entry["chat_id"] == chat_id)
        ]


async def _serve(port: int, token: str, enforce_limits: bool, chats: int) -> None:
    server = FakeTelegramServer(token=token, enforce_limits=enforce_limits)
    await server.start(port)
    for chat_id in range(1, chats + 1):
        server.add_chat(chat_id)
    print(f"fake Telegram at {server.url} (stats at {server.url}/_fake/stats)", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await server.stop()


def main() -> None:
    """Run the server alone, e.g. so a benchmark's client gets a CPU of its own."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--token", default="123456789:TEST-espoo-token")
    parser.add_argument("--enforce-limits", action="store_true")
    parser.add_argument("--chats", type=int, default=1000, help="private chats 1..N are known")
    args = parser.parse_args()
    asyncio.run(_serve(args.port, args.token, args.enforce_limits, args.chats))


if __name__ == "__main__":
    main()
