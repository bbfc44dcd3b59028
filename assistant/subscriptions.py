"""Residents' side of district news: follow a district, stop following, instant or daily digest."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from .commands import Command, private_only
from .messages import Choice, Reply
from .newsdesk import news_desk

if TYPE_CHECKING:
    from .context import Context
    from .core import Assistant
    from .districts import District

ALL_WORDS = {"all", "kaikki", "alla", "allt"}
OFF_WORDS = {"off", "pois", "av", "now", "heti", "genast", "instant", "ei"}
DIGEST_HOURS = (8, 18)  # offered as buttons; /digest takes any hour
MAX_CANDIDATES = 8


def register(assistant: "Assistant") -> None:
    table = assistant.commands
    table.add(Command("subscribe", private_only(subscribe), "news_help_subscribe",
                      aliases=("tilaa", "prenumerera")))
    table.add(Command("unsubscribe", private_only(unsubscribe), "news_help_unsubscribe",
                      aliases=("peruta", "avsluta")))
    table.add(Command("subscriptions", private_only(list_subscriptions), "news_help_subscriptions",
                      aliases=("tilaukset", "prenumerationer")))
    table.add(Command("digest", private_only(digest), "news_help_digest", aliases=("kooste", "sammandrag")))
    table.on_choice("sub", subscribe_to)
    table.on_choice("unsub", unsubscribe_from)
    table.on_choice("newsmode", choose_mode)


async def subscribe(ctx: "Context", args: str) -> list[Reply]:
    """Follow the named district; without a name, offer the major districts."""
    if not args:
        return ctx.reply("news_subscribe_ask", *_major_choices(ctx))
    resolution = news_desk(ctx.assistant).gazetteer.resolve(args)
    if resolution.district is not None:
        return await subscribe_to(ctx, resolution.district.id)
    if resolution.candidates:
        return ctx.reply("news_district_ambiguous", *_choices(ctx, resolution.candidates, "sub"),
                         given=args[:40])
    return ctx.reply("news_district_unknown", *_major_choices(ctx), given=args[:40])


async def subscribe_to(ctx: "Context", district_id: str) -> list[Reply]:
    desk = news_desk(ctx.assistant)
    if desk.district(district_id) is None:
        return ctx.reply("choice_expired")
    added = desk.subscriptions.add(ctx.resident.id, district_id)
    key = "news_subscribed" if added else "news_already_subscribed"
    return ctx.reply(key, *_mode_choices(ctx), district=desk.label(district_id, ctx.language),
                     mode=_mode_text(ctx))


async def unsubscribe(ctx: "Context", args: str) -> list[Reply]:
    """Stop following one district or all; without a name, offer the ones followed."""
    desk = news_desk(ctx.assistant)
    followed = desk.subscriptions.of_resident(ctx.resident.id)
    if not followed:
        return ctx.reply("news_no_subscriptions")
    if args.strip().casefold() in ALL_WORDS:
        return await unsubscribe_from(ctx, "all")
    if not args:
        return ctx.reply("news_unsubscribe_ask", *_followed_choices(ctx, followed))
    resolution = desk.gazetteer.resolve(args)
    if resolution.district is not None:
        return await unsubscribe_from(ctx, resolution.district.id)
    if resolution.candidates:
        return ctx.reply("news_district_ambiguous",
                         *_choices(ctx, resolution.candidates, "unsub"), given=args[:40])
    return ctx.reply("news_unsubscribe_ask", *_followed_choices(ctx, followed))


async def unsubscribe_from(ctx: "Context", district_id: str) -> list[Reply]:
    desk = news_desk(ctx.assistant)
    if district_id == "all":
        count = desk.subscriptions.remove_all(ctx.resident.id)
        return ctx.reply("news_unsubscribed_all", count=count)
    label = desk.label(district_id, ctx.language)
    if desk.subscriptions.remove(ctx.resident.id, district_id):
        return ctx.reply("news_unsubscribed", district=label)
    return ctx.reply("news_not_subscribed", district=label)


async def list_subscriptions(ctx: "Context", args: str) -> list[Reply]:
    desk = news_desk(ctx.assistant)
    followed = desk.subscriptions.of_resident(ctx.resident.id)
    if not followed:
        return ctx.reply("news_no_subscriptions")
    names = "\n".join("- " + desk.label(d, ctx.language) for d in followed)
    return ctx.reply("news_subscriptions_list", districts=names, mode=_mode_text(ctx))


async def digest(ctx: "Context", args: str) -> list[Reply]:
    """`/digest 18` for a daily digest at 18, `/digest off` for instant pushes."""
    word = args.strip().casefold()
    if not word:
        return ctx.reply("news_digest_ask", *_mode_choices(ctx), mode=_mode_text(ctx))
    if word in OFF_WORDS:
        return await choose_mode(ctx, "now")
    hour = _hour_from(word)
    if hour is None:
        return ctx.reply("news_digest_usage")
    return await choose_mode(ctx, str(hour))


async def choose_mode(ctx: "Context", value: str) -> list[Reply]:
    """A button or /digest: "now" for instant pushes, an hour for a daily digest."""
    desk = news_desk(ctx.assistant)
    hour = None if value == "now" else _hour_from(value)
    if value != "now" and hour is None:
        return ctx.reply("choice_expired")
    desk.subscriptions.set_digest_hour(ctx.resident.id, hour, desk.clock())
    return ctx.say(_mode_text(ctx))


def _mode_text(ctx: "Context") -> str:
    """How this resident gets news now, as one sentence."""
    desk = news_desk(ctx.assistant)
    hour = desk.subscriptions.digest_hour(ctx.resident.id)
    if hour is not None:
        return ctx.t("news_mode_digest_is", hour=hour)
    quiet = desk.settings.quiet_hours
    if quiet is None:
        return ctx.t("news_mode_instant_is")
    return ctx.t("news_mode_instant_quiet_is", start=quiet[0], end=quiet[1])


def _hour_from(word: str) -> int | None:
    """"18", "18:00", "klo 18", "kl. 8" -> the hour; None when it is not an hour 0-23."""
    match = re.fullmatch(r"(?:klo|kl|at)?\.?\s*(\d{1,2})(?:[:.]00)?", word.strip().casefold())
    if not match or not 0 <= int(match.group(1)) <= 23:
        return None
    return int(match.group(1))


def _mode_choices(ctx: "Context") -> list[Choice]:
    return [Choice(ctx.t("news_mode_instant_button"), "newsmode:now"),
            *(Choice(ctx.t("news_mode_digest_button", hour=h), f"newsmode:{h}")
              for h in DIGEST_HOURS)]


def _major_choices(ctx: "Context") -> list[Choice]:
    return _choices(ctx, news_desk(ctx.assistant).gazetteer.majors(), "sub")


def _choices(ctx: "Context", districts: "list[District] | tuple[District, ...]",
             prefix: str) -> list[Choice]:
    return [Choice(d.name(ctx.language), f"{prefix}:{d.id}")
            for d in list(districts)[:MAX_CANDIDATES]]


def _followed_choices(ctx: "Context", followed: list[str]) -> list[Choice]:
    desk = news_desk(ctx.assistant)
    return [*(Choice(desk.label(d, ctx.language), f"unsub:{d}") for d in followed),
            Choice(ctx.t("news_unsubscribe_all_button"), "unsub:all")]
