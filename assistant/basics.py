"""The commands every resident meets first: /start, /help and /language."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .commands import Command
from .messages import LANGUAGES, Choice, Reply

if TYPE_CHECKING:
    from .context import Context
    from .core import Assistant

LANGUAGE_NAMES = {"fi": "Suomi", "sv": "Svenska", "en": "English"}


def register(assistant: "Assistant") -> None:
    table = assistant.commands
    table.add(Command("start", start, "help_start", aliases=("aloita", "borja")))
    table.add(Command("help", help_, "help_help", aliases=("apua", "ohje", "hjalp", "hjälp")))
    table.add(Command("language", language, "help_language",
                      aliases=("kieli", "sprak", "språk", "lang")))
    table.on_choice("lang", choose_language)


async def start(ctx: "Context", args: str) -> list[Reply]:
    return ctx.reply("welcome", *_language_choices())


async def help_(ctx: "Context", args: str) -> list[Reply]:
    lines = [ctx.t("help_intro"), ""]
    for command in ctx.assistant.commands.visible(ctx.roles):
        names = " ".join("/" + n for n in command.names if n.isascii())
        lines.append(f"{names}: {ctx.t(command.help_key)}" if command.help_key else names)
    lines += ["", ctx.t("help_outro")]
    return ctx.say("\n".join(lines))


async def language(ctx: "Context", args: str) -> list[Reply]:
    wanted = _language_from(args)
    if wanted:
        return await choose_language(ctx, wanted)
    if args:
        return ctx.reply("language_unknown", *_language_choices(), given=args[:40])
    return ctx.reply("language_ask", *_language_choices())


async def choose_language(ctx: "Context", code: str) -> list[Reply]:
    if code not in LANGUAGES:
        return ctx.reply("choice_expired")
    ctx.assistant.residents.set_language(ctx.resident.id, code)
    ctx.language = code
    return ctx.reply("language_set", language=LANGUAGE_NAMES[code])


def _language_choices() -> list[Choice]:
    return [Choice(name, f"lang:{code}") for code, name in LANGUAGE_NAMES.items()]


def _language_from(args: str) -> str | None:
    """'sv', 'svenska', 'ruotsi', 'Swedish' -> 'sv'."""
    word = args.strip().lower()
    names = {
        "fi": {"fi", "suomi", "finska", "finnish", "suomeksi", "fin"},
        "sv": {"sv", "svenska", "ruotsi", "swedish", "på svenska", "ruotsiksi", "swe", "se"},
        "en": {"en", "english", "englanti", "engelska", "englanniksi", "eng"},
    }
    return next((code for code, options in names.items() if word in options), None)
