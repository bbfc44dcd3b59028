"""Turns a plain-text `Reply` into Telegram messages: escaped HTML, split to fit, buttons."""

from __future__ import annotations

import html
import logging
from collections.abc import Sequence

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from assistant.messages import Choice

logger = logging.getLogger(__name__)

# Bot API: a message holds at most 4096 characters after entity parsing, counted in
# UTF-16 code units; callback_data is 1-64 bytes.
MAX_TEXT = 4096
MAX_CALLBACK_DATA = 64
SHORT_LABEL = 16  # labels up to this long go two to a row
_BOUNDARIES = ("\n\n", "\n", " ")


def escape(text: str) -> str:
    """The core's plain text, safe in parse_mode=HTML (quotes need no escaping outside tags)."""
    return html.escape(text, quote=False)


def utf16_len(text: str) -> int:
    """Length in UTF-16 code units, the unit of Telegram's message limit."""
    return len(text) if text.isascii() else len(text.encode("utf-16-le")) // 2


def split_text(text: str, limit: int = MAX_TEXT) -> list[str]:
    """Parts of at most `limit` units, cut at a paragraph, else a line, else a word."""
    parts: list[str] = []
    rest = text.strip()
    while rest:
        if utf16_len(rest) <= limit:
            parts.append(rest)
            break
        cut = _cut_point(rest, limit)
        parts.append(rest[:cut].rstrip())
        rest = rest[cut:].strip()
    return [part for part in parts if part]


def _cut_point(text: str, limit: int) -> int:
    """Index to cut `text` at: the last boundary that keeps the head within `limit`."""
    fits = _fitting_prefix(text, limit)
    head = text[:fits]
    for boundary in _BOUNDARIES:
        at = head.rfind(boundary)
        if at > fits // 4:  # a boundary too near the start would leave a tiny part
            return at + len(boundary)
    return fits


def _fitting_prefix(text: str, limit: int) -> int:
    """Most characters of `text` whose UTF-16 length is within `limit`, not splitting a pair."""
    units = 0
    for index, char in enumerate(text):
        units += 2 if ord(char) > 0xFFFF else 1
        if units > limit:
            return index
    return len(text)


def keyboard(choices: Sequence[Choice]) -> InlineKeyboardMarkup | None:
    """Inline buttons, one per row, or two per row when every label is short."""
    buttons = [InlineKeyboardButton(c.label, callback_data=c.value)
               for c in choices if _fits(c)]
    if not buttons:
        return None
    width = 2 if all(len(b.text) <= SHORT_LABEL for b in buttons) else 1
    return InlineKeyboardMarkup([buttons[i:i + width] for i in range(0, len(buttons), width)])


def _fits(choice: Choice) -> bool:
    if 1 <= len(choice.value.encode("utf-8")) <= MAX_CALLBACK_DATA and choice.label.strip():
        return True
    logger.warning("button %s... left out: callback_data must be 1-64 bytes",
                   choice.value.partition(":")[0][:16])
    return False
