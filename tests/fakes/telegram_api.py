"""Bot API request decoding, validation and error answers for the fake Telegram server.

Error descriptions are Telegram's own, so code under test sees what it would
see in production (python-telegram-bot maps them to BadRequest, Forbidden...).
"""

from __future__ import annotations

import itertools
import json
from typing import Any

from aiohttp import web

JSON = dict[str, Any]

MAX_TEXT = 4096
MAX_CAPTION = 1024
MAX_CALLBACK_DATA = 64
_JSON_FIELDS = {
    "reply_markup", "entities", "caption_entities", "reply_parameters",
    "link_preview_options", "commands", "scope", "allowed_updates",
}  # fmt: skip
_INT_FIELDS = {
    "chat_id",
    "message_id",
    "offset",
    "limit",
    "reply_to_message_id",
    "cache_time",
    "max_connections",
}
_FLOAT_FIELDS = {"timeout"}
_BOOL_FIELDS = {
    "disable_notification", "show_alert", "drop_pending_updates", "protect_content",
    "allow_sending_without_reply", "disable_web_page_preview", "disable_content_type_detection",
}  # fmt: skip
_INLINE_ACTIONS = {
    "url", "callback_data", "web_app", "login_url", "switch_inline_query", "pay", "copy_text",
    "switch_inline_query_current_chat", "switch_inline_query_chosen_chat", "callback_game",
}  # fmt: skip
CHAT_ACTIONS = {
    "typing", "upload_photo", "record_video", "upload_video", "record_voice", "upload_voice",
    "upload_document", "choose_sticker", "find_location", "record_video_note", "upload_video_note",
}  # fmt: skip
RATE_LIMITED = {"sendmessage", "senddocument"}
UPDATE_KINDS_OFF_BY_DEFAULT = {"chat_member", "message_reaction", "message_reaction_count"}
NOT_MODIFIED = (
    "message is not modified: specified new message content and reply markup are"
    " exactly the same as a current content and reply markup of the message"
)
QUERY_INVALID = "Bad Request: query is too old and response timeout expired or query ID is invalid"
WEBHOOK_ACTIVE = (
    "Conflict: can't use getUpdates method while webhook is active;"
    " use deleteWebhook to delete the webhook first"
)
POLL_TERMINATED = (
    "Conflict: terminated by other getUpdates request;"
    " make sure that only one bot instance is running"
)


class ApiError(Exception):
    """A Bot API error answer: HTTP status, description and optional parameters."""

    def __init__(self, status: int, description: str, parameters: JSON | None = None) -> None:
        super().__init__(description)
        self.status = status
        self.description = description
        self.parameters = parameters

    def body(self) -> JSON:
        body: JSON = {"ok": False, "error_code": self.status, "description": self.description}
        if self.parameters:
            body["parameters"] = self.parameters
        return body


def bad_request(what: str) -> ApiError:
    return ApiError(400, f"Bad Request: {what}")


def too_many_requests(retry_after: int) -> ApiError:
    return ApiError(
        429, f"Too Many Requests: retry after {retry_after}", {"retry_after": retry_after}
    )


async def read_params(request: web.Request) -> JSON:
    """Query, JSON or form parameters with Bot API types restored (PTB form-encodes JSON values)."""
    params: JSON = dict(request.query)
    if request.body_exists:
        if request.content_type == "application/json":
            try:
                body = await request.json()
            except ValueError:
                raise bad_request("can't parse JSON encoded request body") from None
            if not isinstance(body, dict):
                raise bad_request("JSON request body must be an object")
            params.update(body)
        else:
            params.update((await request.post()).items())
    return {key: _coerce(key, value) for key, value in params.items()}


def _coerce(key: str, value: Any) -> Any:
    if not isinstance(value, str):
        return value
    try:
        if key in _JSON_FIELDS:
            return json.loads(value)
        if key in _INT_FIELDS:
            return value if key == "chat_id" and value.startswith("@") else int(value)
        if key in _FLOAT_FIELDS:
            return float(value)
    except ValueError:
        if key == "reply_markup":
            raise bad_request("can't parse reply keyboard markup JSON object") from None
        raise bad_request(
            f"can't parse {key}" if key in _JSON_FIELDS else f"invalid {key} specified"
        ) from None
    if key in _BOOL_FIELDS:
        return value.lower() in ("true", "1")
    return value


def check_reply_markup(markup: Any) -> JSON | None:
    """Validate reply_markup the way Telegram does for the common mistakes."""
    if markup is None:
        return None
    if not isinstance(markup, dict) or not markup.keys() & {
        "inline_keyboard",
        "keyboard",
        "remove_keyboard",
        "force_reply",
    }:
        raise bad_request("can't parse reply keyboard markup JSON object")
    rows = markup.get("inline_keyboard")
    if rows is None:
        return markup
    if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
        raise bad_request(
            'field "inline_keyboard" of the InlineKeyboardMarkup should be an Array of Arrays'
        )
    for button in itertools.chain.from_iterable(rows):
        _check_inline_button(button)
    return markup


def _check_inline_button(button: Any) -> None:
    if not isinstance(button, dict) or not button.get("text"):
        raise bad_request('can\'t find field "text"')
    if len(button.keys() & _INLINE_ACTIONS) != 1:
        raise bad_request("text buttons are unallowed in the inline keyboard")
    data = button.get("callback_data")
    if data is not None and not 1 <= len(str(data).encode("utf-8")) <= MAX_CALLBACK_DATA:
        raise bad_request("BUTTON_DATA_INVALID")
    url = button.get("url")
    if url is not None and not str(url).startswith(("http://", "https://", "tg://")):
        raise bad_request("BUTTON_URL_INVALID")


def check_command(command: Any) -> None:
    """Bot API: command is 1-32 of a-z, 0-9 and _; description 1-256 characters."""
    if not isinstance(command, dict):
        raise bad_request("can't parse BotCommand JSON object")
    name = str(command.get("command", ""))
    if not 1 <= len(name) <= 32 or any(
        ch not in "abcdefghijklmnopqrstuvwxyz0123456789_" for ch in name
    ):
        raise bad_request("BOT_COMMAND_INVALID")
    if not 1 <= len(str(command.get("description", ""))) <= 256:
        raise bad_request("BOT_COMMAND_DESCRIPTION_INVALID")


def chat_type_for(chat_id: int | str) -> str:
    if isinstance(chat_id, str) or chat_id > 0:
        return "private" if isinstance(chat_id, int) else "channel"
    return "supergroup" if str(chat_id).startswith("-100") else "group"


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
