"""Text in and out of the admin commands: what editors type, cleaned as the YAML files
need it, and the names, snippets and local times the commands show back.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from .messages import Reply

if TYPE_CHECKING:
    from .context import Context
    from .core import Assistant

MAX_PHRASE_CHARS = 300
_BREAK = re.compile(r"\r\n|[\r\x85\u2028\u2029]")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x84\x86-\x9f\ufffe\uffff\ud800-\udfff]")
_LIST_MARK = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s+")


# reading what editors type ---------------------------------------------------------

def split_word(text: str) -> tuple[str, str]:
    """The first word and the rest (line breaks in the rest kept)."""
    parts = text.strip().split(maxsplit=1)
    return (parts[0] if parts else ""), (parts[1] if len(parts) > 1 else "")


def clean_text(text: str) -> str:
    """An answer as stored: no control characters or trailing spaces, Unix line ends."""
    text = _CONTROL.sub("", _BREAK.sub("\n", text))  # what YAML files cannot hold
    return "\n".join(line.rstrip() for line in text.strip().split("\n"))


def one_line(text: str) -> str:
    return " ".join(_CONTROL.sub(" ", text).split())


def split_items(text: str) -> list[str]:
    """Phrasings one per line; on a single line, separated by semicolons or else commas."""
    if "\n" in text.strip():
        items = text.split("\n")
    else:
        items = text.split(";") if ";" in text else text.split(",")
    return [_LIST_MARK.sub("", item) for item in items]


def new_items(known: "list[str] | tuple[str, ...]", items: list[str], limit: int) -> list[str]:
    """`items` cleaned, without empty, over-long or repeated ones (case aside)."""
    seen = {k.casefold() for k in known}
    found = []
    for item in (one_line(i) for i in items):
        if item and len(item) <= limit and item.casefold() not in seen:
            seen.add(item.casefold())
            found.append(item)
    return found


# showing it back -------------------------------------------------------------------

def language_name(ctx: "Context", language: str) -> str:
    return ctx.t(f"admin_lang_{language}")


def snippet(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def unknown_topic(ctx: "Context", topic_id: str) -> list[Reply]:
    return ctx.reply("admin_answer_topic_unknown", topic=topic_id[:64])


def local_time(ctx: "Context", when: dt.datetime) -> str:
    if when.tzinfo is None:  # SQLite hands back naive UTC
        when = when.replace(tzinfo=dt.timezone.utc)
    local = when.astimezone(ZoneInfo(ctx.assistant.settings.timezone))
    return f"{local.day}.{local.month}.{local.year} {local:%H:%M}"


def local_today(assistant: "Assistant") -> dt.date:
    return dt.datetime.now(ZoneInfo(assistant.settings.timezone)).date()
