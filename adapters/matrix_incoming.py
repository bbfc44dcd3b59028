"""Turns Matrix timeline events into the core's `Incoming`: who, where, what, and whether
it is for the bot. Pure functions over nio's events and rooms, so recorded event JSON
tests them without a homeserver."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

from nio import Event, MatrixRoom, MegolmEvent

from adapters.matrix_format import event_kind, is_command, mentions, message_text, strip_mention
from assistant.messages import Incoming

PLATFORM = "matrix"


def incoming_from(event: Event, room: MatrixRoom, me: str,
                  before_join: bool = False) -> Incoming | None:
    """The event as the core sees it; None for our own events, notices and group chatter.

    `before_join`: the event is room history the bot saw on joining. In a direct chat
    it is the resident's first question (answered); in a group it is old talk (not).
    """
    if event.sender == me:
        return None
    group = is_group(room)
    if group and before_join:
        return None
    if isinstance(event, MegolmEvent):  # undecryptable: the core says so politely
        return None if group else _make(event, room, "encrypted", "")
    content = event.source.get("content") or {}
    kind = event_kind(str(event.source.get("type")), content)
    if kind is None or (group and kind != "text"):
        return None
    text: str | None = message_text(content) if kind == "text" else ""
    if group:
        text = addressed_text(room, content, text or "", me)
    return None if text is None else _make(event, room, kind, text)


def is_group(room: MatrixRoom) -> bool:
    """More than the resident and the bot (invited members count: they will read it)."""
    return bool(room.member_count > 2)


def addressed_text(room: MatrixRoom, content: dict[str, Any], text: str,
                   me: str) -> str | None:
    """In a group: commands, and messages that mention the bot (without the mention)."""
    names = tuple(name for name in (room.user_name(me),) if name)
    if mentions(content, me, names):
        return strip_mention(text, me, names)
    return text if is_command(text) else None


def _make(event: Event, room: MatrixRoom, kind: str, text: str) -> Incoming:
    return Incoming(platform=PLATFORM, user_id=event.sender, chat_id=room.room_id,
                    text=text, kind=kind, group=is_group(room), message_id=event.event_id)


class RecentEvents:
    """In-memory record of handled events (the last `capacity`), for when no database is given."""

    def __init__(self, capacity: int = 10_000):
        self.capacity = capacity
        self._seen: OrderedDict[str, None] = OrderedDict()

    def is_handled(self, key: str) -> bool:
        return key in self._seen

    def handled(self, keys: Iterable[str]) -> None:
        for key in keys:
            self._seen[key] = None
            if len(self._seen) > self.capacity:
                self._seen.popitem(last=False)
