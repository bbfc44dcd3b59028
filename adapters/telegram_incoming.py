"""Turns Telegram updates into the core's `Incoming`: who, where, what, and whether it is for us."""

from __future__ import annotations

import re
from dataclasses import dataclass

from telegram import CallbackQuery, Message, Update, User
from telegram.constants import ChatType

from assistant.messages import LANGUAGES, Incoming

PLATFORM = "telegram"
GROUP_TYPES = {ChatType.GROUP, ChatType.SUPERGROUP}
# Content the assistant does not read, by the Message field that carries it. Order
# matters: an animation also fills `document`, a venue also fills `location`.
CONTENT_KINDS = (
    ("sticker", "sticker"), ("photo", "photo"), ("animation", "file"), ("document", "file"),
    ("video", "video"), ("video_note", "video"), ("voice", "voice"), ("audio", "audio"),
    ("venue", "location"), ("location", "location"), ("contact", "contact"), ("poll", "poll"),
    ("dice", "other"), ("game", "other"), ("story", "other"),
)
_COMMAND = re.compile(r"^/([A-Za-z0-9_]+)(?:@([A-Za-z0-9_]+))?(?=\s|$)")


@dataclass(frozen=True)
class Me:
    """The bot's own identity, for telling which group messages address it."""

    id: int
    username: str

    @classmethod
    def of(cls, bot_user: User) -> Me:
        return cls(bot_user.id, bot_user.username or "")


def incoming_from(update: Update, me: Me) -> Incoming | None:
    """The message or button press in `update`; None when it is not for the assistant."""
    if update.callback_query is not None:
        return from_callback(update.callback_query)
    if update.message is not None:
        return from_message(update.message, me)
    if update.edited_message is not None:
        return from_edit(update.edited_message)
    return None


def from_message(message: Message, me: Me) -> Incoming | None:
    """Text (a command, a question) or unread content; in groups only what addresses us."""
    if message.from_user is None or message.from_user.is_bot:
        return None
    group = message.chat.type in GROUP_TYPES
    text = message.text
    if text is not None:
        text = addressed_text(message, me) if group else strip_bot_name(text, me)
        return None if text is None else _incoming(message, text=text, group=group)
    kind = content_kind(message)
    if kind is None or (group and not replies_to_me(message, me)):
        return None  # a service message (member joined, pinned...), or chatter in a group
    return _incoming(message, kind=kind, group=group)


def from_edit(message: Message) -> Incoming | None:
    """An edited message: the core says politely that edits are not read (not in groups)."""
    if message.from_user is None or message.chat.type in GROUP_TYPES:
        return None
    return _incoming(message, kind="edit")


def from_callback(query: CallbackQuery) -> Incoming | None:
    """A pressed inline button: `callback_data` is the Choice value."""
    message = query.message
    if message is None or not query.data:
        return None  # a button of an inline-mode message: not ours
    return Incoming(platform=PLATFORM, user_id=str(query.from_user.id),
                    chat_id=str(message.chat.id), choice=query.data,
                    language_hint=language_hint(query.from_user),
                    group=message.chat.type in GROUP_TYPES)


def _incoming(message: Message, text: str = "", kind: str = "text",
              group: bool = False) -> Incoming:
    user = message.from_user
    assert user is not None
    return Incoming(platform=PLATFORM, user_id=str(user.id), chat_id=str(message.chat.id),
                    text=text, language_hint=language_hint(user), kind=kind, group=group,
                    message_id=str(message.message_id))


def language_hint(user: User) -> str:
    """fi, sv or en from the app's language (`language_code` is an IETF tag); else empty."""
    code = (user.language_code or "").split("-")[0].lower()
    return code if code in LANGUAGES else ""


def content_kind(message: Message) -> str | None:
    """"sticker", "file", "photo"... for content that is not text; None for service messages."""
    return next((kind for field, kind in CONTENT_KINDS if getattr(message, field, None)), None)


def addressed_text(message: Message, me: Me) -> str | None:
    """In a group: the text without our @name when it is a command, mention or reply to us."""
    text = message.text or ""
    command = _COMMAND.match(text)
    if command and command.group(2) and command.group(2).lower() != me.username.lower():
        return None  # /help@some_other_bot
    mentioned = bool(me.username) and _mention(me).search(text) is not None
    if command or mentioned or replies_to_me(message, me):
        return strip_bot_name(text, me)
    return None


def strip_bot_name(text: str, me: Me) -> str:
    """'/help@espoo_bot x' -> '/help x'; '@espoo_bot how do I...' -> 'how do I...'."""
    if not me.username:
        return text
    name = re.escape(me.username)
    text = re.sub(rf"^(/[A-Za-z0-9_]+)@{name}\b", r"\1", text, flags=re.IGNORECASE)
    text = re.sub(r"[ \t]{2,}", " ", _mention(me).sub("", text))
    return text.strip().lstrip(",:;").strip()


def replies_to_me(message: Message, me: Me) -> bool:
    original = message.reply_to_message
    return bool(original and original.from_user and original.from_user.id == me.id)


def _mention(me: Me) -> re.Pattern[str]:
    return re.compile(rf"(?<![\w@])@{re.escape(me.username)}(?!\w)", re.IGNORECASE)
