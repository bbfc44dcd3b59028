"""What Telegram's servers know about a bot's world: users, chats, messages and files."""

from __future__ import annotations

import itertools
import time
from typing import Any

from tests.fakes.telegram_api import chat_type_for

JSON = dict[str, Any]


class TelegramWorld:
    """Users, chats, messages (with per-chat message ids) and stored files."""

    def __init__(self, bot_user: JSON) -> None:
        self.bot_user = bot_user
        self.users: dict[int, JSON] = {}
        self.chats: dict[int | str, JSON] = {}
        self.blocked: set[int | str] = set()
        self.messages: dict[tuple[int | str, int], JSON] = {}
        self.bot_messages: dict[int | str, list[int]] = {}
        self.files: dict[str, JSON] = {}
        self.file_paths: dict[str, bytes] = {}
        self.ids = itertools.count(1)
        self._next_message_id: dict[int | str, int] = {}

    def user(
        self,
        user_id: int,
        first_name: str = "Testi",
        language_code: str | None = "fi",
        username: str | None = None,
        last_name: str | None = None,
    ) -> JSON:
        """A resident's Telegram User object, remembered for later updates."""
        user: JSON = {"id": user_id, "is_bot": False, "first_name": first_name}
        for key, value in (
            ("last_name", last_name),
            ("username", username),
            ("language_code", language_code),
        ):
            if value:
                user[key] = value
        self.users[user_id] = user
        return user

    def add_chat(
        self,
        chat_id: int | str,
        chat_type: str | None = None,
        title: str | None = None,
        user: JSON | None = None,
    ) -> JSON:
        """Make a chat known, so the bot may send to it without an update from it first."""
        chat_type = chat_type or chat_type_for(chat_id)
        if chat_type == "private":
            user = user or self.users.get(int(chat_id)) or self.user(int(chat_id))
            chat: JSON = {"id": chat_id, "type": "private", "first_name": user["first_name"]}
            for key in ("last_name", "username"):
                if key in user:
                    chat[key] = user[key]
        else:
            chat = {"id": chat_id, "type": chat_type, "title": title or f"Chat {chat_id}"}
        self.chats[chat_id] = chat
        return chat

    def block(self, chat_id: int | str) -> None:
        """The resident blocks the bot (or kicks it from the group): sends get 403."""
        self.blocked.add(chat_id)

    def unblock(self, chat_id: int | str) -> None:
        self.blocked.discard(chat_id)

    def resolve_user(self, user: int | JSON) -> JSON:
        """A User dict from an id (known or new) or from a dict made by `user()`."""
        if isinstance(user, dict):
            self.users[user["id"]] = user
            return user
        return self.users.get(user) or self.user(user)

    def chat_for(
        self, user: JSON, chat_id: int | str | None, chat_type: str | None, title: str | None
    ) -> JSON:
        """The chat a resident writes in: their private chat unless a group is named."""
        chat_id = user["id"] if chat_id is None else chat_id
        known = self.chats.get(chat_id)
        if (
            known
            and (chat_type is None or known["type"] == chat_type)
            and (title is None or known.get("title") == title)
        ):
            return known
        return self.add_chat(chat_id, chat_type, title, user if chat_id == user["id"] else None)

    def new_message(self, chat: JSON, sender: JSON, **fields: Any) -> JSON:
        """A Message with the chat's next message_id (bot and residents share the sequence)."""
        message_id = self._next_message_id.get(chat["id"], 1)
        self._next_message_id[chat["id"]] = message_id + 1
        message = {
            "message_id": message_id,
            "from": sender,
            "chat": chat,
            "date": int(time.time()),
            **fields,
        }
        self.messages[(chat["id"], message_id)] = message
        return message

    def build_message(
        self,
        user: int | JSON,
        chat_id: int | str | None = None,
        chat_type: str | None = None,
        chat_title: str | None = None,
        reply_to_message_id: int | None = None,
        **fields: Any,
    ) -> JSON:
        """A Message from a resident with a fresh message_id, e.g. `location={...}`."""
        sender = self.resolve_user(user)
        chat = self.chat_for(sender, chat_id, chat_type, chat_title)
        message = self.new_message(chat, sender, **fields)
        if reply_to_message_id is not None:
            target = self.messages.get((chat["id"], reply_to_message_id))
            if target is None:
                raise ValueError(f"no message {reply_to_message_id} in chat {chat['id']}")
            message["reply_to_message"] = {
                k: v for k, v in target.items() if k != "reply_to_message"
            }
        return message

    def add_file(
        self,
        content: bytes,
        filename: str | None = None,
        mime_type: str | None = None,
        folder: str = "documents",
    ) -> JSON:
        """Store a file; returns its Document-like JSON, downloadable through getFile."""
        n = next(self.ids)
        file_id = f"BQACAgQAAx0FakeFile{n:08d}"
        meta: JSON = {
            "file_id": file_id,
            "file_unique_id": f"AgAD{n:08d}",
            "file_size": len(content),
        }
        if filename:
            meta["file_name"] = filename
        if mime_type:
            meta["mime_type"] = mime_type
        suffix = "." + filename.rsplit(".", 1)[1] if filename and "." in filename else ""
        path = f"{folder}/file_{n}{suffix}"
        self.files[file_id] = {"meta": meta, "content": content, "file_path": path}
        self.file_paths[path] = content
        return meta

    def learn(self, update: JSON) -> None:
        """Remember the users, chats and messages a hand-made update mentions."""
        for payload in update.values():
            if not isinstance(payload, dict):
                continue
            for item in (payload, payload.get("message") or {}):
                if isinstance(item.get("from"), dict):
                    self.users.setdefault(item["from"]["id"], item["from"])
                chat = item.get("chat")
                if isinstance(chat, dict) and "id" in chat:
                    self.chats.setdefault(chat["id"], chat)
                    if "message_id" in item:
                        self._remember(chat["id"], item)

    def _remember(self, chat_id: int | str, message: JSON) -> None:
        message_id = message["message_id"]
        self.messages.setdefault((chat_id, message_id), message)
        next_id = self._next_message_id.get(chat_id, 1)
        self._next_message_id[chat_id] = max(next_id, message_id + 1)
