"""Admins' side of district news: `/news <district|all> <text>`, a preview, confirm, status.

The pending post is a draft row, so a restart between preview and confirmation
loses nothing; its buttons carry the draft id, so an old preview never confirms
a newer post.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from typing import TYPE_CHECKING

from . import subscriptions
from .commands import Command
from .messages import Choice, Reply
from .newsdesk import Audience, NewsDesk, news_desk, wake_sender
from .store.news import ALL, NewsDraft, NewsItem
from .subscriptions import ALL_WORDS

if TYPE_CHECKING:
    from .context import Context
    from .core import Assistant
    from .districts import District

logger = logging.getLogger(__name__)

ROLE = "moderator"
URGENT_WORDS = {"urgent", "kiireellinen", "tärkeä", "brådskande", "viktig"}
STATUS_WORDS = {"status", "tila", "tilanne", "läge"}
DRAFT_TTL = dt.timedelta(hours=24)
STATUS_ITEMS = 5
MAX_NAME_WORDS = 3


def register(assistant: "Assistant") -> None:
    setattr(assistant, "news_desk", NewsDesk(assistant))
    subscriptions.register(assistant)
    assistant.commands.add(Command("news", news, "news_help_news", aliases=("uutinen", "nyhet"),
                                   role=ROLE))
    assistant.commands.on_choice("news", news_choice)


async def news(ctx: "Context", args: str) -> list[Reply]:
    """`/news [urgent] <district|all> <text>` previews a post; `/news status` reports delivery."""
    first, rest = _take_words(args, 1)
    if first.casefold() in STATUS_WORDS and not rest:
        return status(ctx)
    urgent = first.casefold() in URGENT_WORDS
    target, text = _split_target(news_desk(ctx.assistant), rest if urgent else args)
    if not text or target is None:
        return ctx.reply("news_usage")
    if not target:
        return ctx.reply("news_target_unknown")
    target = _within_scope(ctx, target)
    if not target:
        return _out_of_scope(ctx)
    return _draft(ctx, target, text, urgent)


def _within_scope(ctx: "Context", target: "str | list[District]") -> "str | list[District] | None":
    """What a moderator limited to some districts (`role_scopes`) may post to of `target`."""
    if isinstance(target, str):
        return target if _in_scope(ctx, target) else None
    return [d for d in target if _in_scope(ctx, d.id)]


def _in_scope(ctx: "Context", district_id: str) -> bool:
    """Scoped moderators post in their districts and in those districts' city districts."""
    scopes = ctx.assistant.role_scopes(ctx.incoming, ROLE)
    if scopes is None:
        return True
    desk = news_desk(ctx.assistant)
    district = desk.district(district_id)
    return district_id in scopes or (district is not None
                                     and desk.gazetteer.major_of(district).id in scopes)


def _out_of_scope(ctx: "Context") -> list[Reply]:
    desk = news_desk(ctx.assistant)
    scopes = ctx.assistant.role_scopes(ctx.incoming, ROLE) or set()
    names = ", ".join(sorted(desk.label(d, ctx.language) for d in scopes))
    return ctx.reply("admin_news_out_of_scope", districts=names)


def _draft(ctx: "Context", target: "str | list[District]", text: str, urgent: bool) -> list[Reply]:
    """Keep the post as a draft; preview it, or first ask which district was meant."""
    desk = news_desk(ctx.assistant)
    district_id = target if isinstance(target, str) else ""
    draft = desk.items.create_draft(ctx.resident.id, district_id, text, urgent, desk.clock())
    if isinstance(target, str):
        return preview(ctx, draft)
    choices = [Choice(d.name(ctx.language), f"news:at:{draft.id}:{d.id}") for d in target[:8]]
    return ctx.reply("news_target_ambiguous", *choices)


def _split_target(desk: NewsDesk, args: str) -> "tuple[str | list[District] | None, str]":
    """The district named by the first words, and the news text after it (line breaks kept).

    The longest run of up to three words that names one district wins; otherwise
    the first word decides, and an ambiguous or unknown name yields the candidates.
    """
    first, rest = _take_words(args, 1)
    if not first:
        return None, ""
    if first.casefold() in ALL_WORDS:
        return ALL, rest
    for count in range(MAX_NAME_WORDS, 0, -1):
        name, text = _take_words(args, count)
        district = desk.exact(name) if text else None
        if district is not None:
            return district.id, text
    resolution = desk.gazetteer.resolve(first)
    if resolution.district is not None:
        return resolution.district.id, rest
    return list(resolution.candidates), rest


def _take_words(text: str, count: int) -> tuple[str, str]:
    """The first `count` words of `text` (joined by spaces) and the rest as written."""
    parts = text.split(maxsplit=count)
    return " ".join(parts[:count]), (parts[count] if len(parts) > count else "")


def preview(ctx: "Context", draft: NewsDraft) -> list[Reply]:
    """The post as residents will see it, its reach, and confirm (first) / cancel (second)."""
    desk = news_desk(ctx.assistant)
    audience = desk.audience(draft.district_id)
    quiet = None if draft.urgent else desk.quiet_until(desk.clock())
    lines = [ctx.t("news_preview_urgent" if draft.urgent else "news_preview",
                   district=desk.label(draft.district_id, ctx.language), text=draft.text),
             ctx.t("news_preview_reach", recipients=audience.subscribers,
                   digest=audience.digest, channels=audience.channels)]
    if quiet is not None:
        local = quiet.astimezone(desk.zone)
        lines.append(ctx.t("news_preview_quiet", time=local.strftime("%H:%M")))
    lines.append(ctx.t("news_preview_question"))
    return ctx.say("\n\n".join(lines),
                   Choice(ctx.t("news_confirm_button"), f"news:ok:{draft.id}"),
                   Choice(ctx.t("news_cancel_button"), f"news:no:{draft.id}"))


async def news_choice(ctx: "Context", argument: str) -> list[Reply]:
    """Buttons of the preview: `ok:<draft>`, `no:<draft>`, `at:<draft>:<district>`."""
    if not ctx.has_role(ROLE):  # buttons skip the command table's role check
        return ctx.reply("choice_expired")
    action, _, rest = argument.partition(":")
    draft_id, _, district_id = rest.partition(":")
    if not draft_id.isdigit():
        return ctx.reply("choice_expired")
    if action == "ok":
        return await confirm(ctx, int(draft_id))
    if action == "no":
        cancelled = news_desk(ctx.assistant).items.cancel_draft(int(draft_id), ctx.resident.id)
        return ctx.reply("news_cancelled" if cancelled else "news_draft_gone")
    if action == "at":
        return _choose_target(ctx, int(draft_id), district_id)
    return ctx.reply("choice_expired")


def _choose_target(ctx: "Context", draft_id: int, district_id: str) -> list[Reply]:
    desk = news_desk(ctx.assistant)
    if desk.district(district_id) is None:
        return ctx.reply("choice_expired")
    if not _in_scope(ctx, district_id):
        return _out_of_scope(ctx)
    draft = desk.items.set_draft_district(draft_id, ctx.resident.id, district_id)
    return preview(ctx, draft) if draft else ctx.reply("news_draft_gone")


async def confirm(ctx: "Context", draft_id: int) -> list[Reply]:
    """Publish the draft; a large fan-out runs in a thread so other residents get answers."""
    published = await asyncio.to_thread(
        _publish_draft, news_desk(ctx.assistant), draft_id, ctx.resident.id, ctx.incoming.address)
    if published is None:
        return ctx.reply("news_draft_gone")
    item, audience = published
    ctx.assistant.audit(ctx.incoming.address, "news.post", f"#{item.id} {item.district_id}", "",
                        item.text)
    await wake_sender(ctx.assistant)
    return ctx.reply("news_sent", id=item.id, instant=audience.instant, digest=audience.digest,
                     channels=audience.channels)


def _publish_draft(desk: NewsDesk, draft_id: int, resident_id: int,
                   author: str) -> tuple[NewsItem, Audience] | None:
    """The item and all its outbox rows in one transaction; None when the draft is gone."""
    with desk.db.session() as session:
        draft = desk.items.take_draft(session, draft_id, resident_id, desk.clock() - DRAFT_TTL)
        if draft is None or not draft.district_id:
            return None
        item, audience = desk.publish(session, draft.district_id, draft.text,
                                      urgent=draft.urgent, source="admin", author=author)
        draft.news_item_id = item.id
        session.add(draft)
    return item, audience


def status(ctx: "Context") -> list[Reply]:
    """Sent, pending and failed pushes of the latest items."""
    desk = news_desk(ctx.assistant)
    items = desk.items.latest(STATUS_ITEMS)
    if not items:
        return ctx.reply("news_status_empty")
    lines = [ctx.t("news_status_intro")]
    for item in items:
        counts = desk.outbox.counts(item.id)
        lines.append(ctx.t(
            "news_status_line", id=item.id,
            time=item.created_at.astimezone(desk.zone).strftime("%d.%m. %H:%M"),
            district=desk.label(item.district_id, ctx.language), title=_snippet(item.text),
            sent=counts.get("sent", 0),
            pending=counts.get("pending", 0) + counts.get("sending", 0),
            failed=counts.get("failed", 0) + counts.get("gone", 0)))
    return ctx.say("\n".join(lines))


def _snippet(text: str, limit: int = 40) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"
