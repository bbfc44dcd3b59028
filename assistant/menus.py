"""Command menus per language, from the one command table, for platforms that show them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .messages import LANGUAGES

if TYPE_CHECKING:
    from .core import Assistant

MAX_DESCRIPTION = 256  # Telegram's BotCommand limit


def command_menus(assistant: Assistant) -> dict[str, list[tuple[str, str]]]:
    """{language: [(command, help line)]} for fi, sv, en, and "" (the default language).

    Only commands anyone may use are listed; the canonical names are used, as
    they are plain a-z0-9_ in every language (the aliases still work when typed).
    """
    menus = {lang: _menu(assistant, lang) for lang in LANGUAGES}
    menus[""] = menus.get(assistant.settings.default_language, menus["fi"])
    return menus


def _menu(assistant: Assistant, language: str) -> list[tuple[str, str]]:
    entries = []
    for command in assistant.commands.visible(set()):
        help_line = assistant.texts.get(language, command.help_key) if command.help_key else ""
        entries.append((command.name, (help_line or command.name)[:MAX_DESCRIPTION]))
    return entries
