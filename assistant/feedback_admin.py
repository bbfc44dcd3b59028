"""The admins' side of feedback: notices of new items, the open list, answers and closing.

Resident data goes only to private chats: admin notices go to each owner's own chat,
and the commands refuse to list anything in a group.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from .commands import Command
from .districts import Gazetteer, GazetteerError
from .messages import Reply
from .store.feedback import REFERENCE, FeedbackItem
from .store.residents import Resident

if TYPE_CHECKING:
    from .context import Context
    from .core import Assistant

logger = logging.getLogger(__name__)

LIST_LIMIT = 15


def register(assistant: "Assistant") -> None:
    table = assistant.commands
    table.add(Command("feedbacks", list_open, "feedback_help_list",
                      aliases=("palautteet", "responser"), role="moderator"))
    table.add(Command("reply", reply, "feedback_help_reply", aliases=("vastaa", "svara"),
                      role="moderator"))


def notifications(assistant: "Assistant", item: FeedbackItem) -> list[Reply]:
    """One notice per owner in ASSISTANT_ADMINS whose private chat is known."""
    notices = []
    for address in sorted(assistant.settings.admins):
        target = admin_chat(assistant, address)
        if target is None:
            logger.info("admin %s has no known private chat; not notified", address)
            continue
        platform, chat_id, language = target
        notices.append(Reply(_describe(assistant, item, language, "feedback_admin_new"),
                             platform=platform, chat_id=chat_id))
    return notices


def admin_chat(assistant: "Assistant", address: str) -> tuple[str, str, str] | None:
    """(platform, private chat id, language) of an owner, or None when unknown."""
    platform, _, user_id = address.partition(":")
    known = assistant.residents.find(platform, user_id)
    language = known.language if known else assistant.settings.default_language
    if known is not None and not known.active:
        return None
    if platform == "telegram" and user_id.isdigit():
        return platform, user_id, language  # Telegram: a private chat's id is the user's id
    if known is None:
        return None
    return platform, private_chat(known), language


def private_chat(resident: Resident) -> str:
    """Where a resident's private messages go: on Telegram their user id, never a group."""
    if resident.platform == "telegram" and resident.platform_id.isdigit():
        return resident.platform_id
    return resident.chat_id


async def list_open(ctx: "Context", args: str) -> list[Reply]:
    """`/feedbacks` lists open items; `/feedbacks <reference>` shows one in full."""
    if ctx.incoming.group:
        return ctx.reply("feedback_private_only")
    if args:
        return _show_one(ctx, args.split()[0])
    items = ctx.assistant.feedback.open_items()
    if not items:
        return ctx.reply("feedback_admin_list_none")
    lines = [ctx.t("feedback_admin_list_intro", count=len(items))]
    for item in items[:LIST_LIMIT]:
        lines += ["", _list_line(ctx, item)]
    if len(items) > LIST_LIMIT:
        lines += ["", ctx.t("feedback_admin_list_more", count=len(items) - LIST_LIMIT)]
    return ctx.say("\n".join(lines))


async def reply(ctx: "Context", args: str) -> list[Reply]:
    """`/reply <reference> <text>`: store the answer, then send it to the resident's chat."""
    if ctx.incoming.group:
        return ctx.reply("feedback_private_only")
    parts = args.split(maxsplit=1)
    if len(parts) < 2 or not REFERENCE.match(parts[0]):
        return ctx.reply("feedback_admin_reply_usage")
    reference, text = parts[0].upper(), parts[1].strip()
    store = ctx.assistant.feedback
    item = store.answer(reference, text, ctx.incoming.address)
    if item is None:
        existing = store.by_reference(reference)
        key = "feedback_admin_already_closed" if existing else "feedback_admin_not_found"
        return ctx.reply(key, reference=reference)
    logger.info("feedback %s answered", reference)
    ctx.assistant.audit(ctx.incoming.address, "feedback.reply", reference, "", text)
    if item.resident_id is None:  # the sender used /forget: stored, but nobody to deliver to
        return ctx.reply("privacy_feedback_unreachable", reference=reference)
    resident = ctx.assistant.residents.by_id(item.resident_id)
    if resident is None or not resident.active:
        return ctx.reply("feedback_admin_reply_stored", reference=reference)
    answer = ctx.assistant.texts.get(resident.language, "feedback_answer_to_resident",
                                     reference=reference, answer=text)
    delivery = Reply(answer, platform=resident.platform, chat_id=private_chat(resident))
    return ctx.reply("feedback_admin_reply_sent", reference=reference) + [delivery]


async def close(ctx: "Context", reference: str) -> list[Reply]:
    """`/feedback close <reference>` (moderators; checked by the caller)."""
    if not reference:
        return ctx.reply("feedback_admin_close_usage")
    item = ctx.assistant.feedback.close(reference)
    if item is None:
        return ctx.reply("feedback_admin_not_found", reference=reference.upper())
    logger.info("feedback %s closed", item.reference)
    ctx.assistant.audit(ctx.incoming.address, "feedback.close", item.reference, "", "closed")
    return ctx.reply("feedback_admin_closed", reference=item.reference)


def _show_one(ctx: "Context", reference: str) -> list[Reply]:
    item = ctx.assistant.feedback.by_reference(reference)
    if item is None:
        return ctx.reply("feedback_admin_not_found", reference=reference.upper()[:24])
    text = _describe(ctx.assistant, item, ctx.language, "feedback_admin_item")
    if item.answer_text:
        text += "\n\n" + ctx.t("feedback_admin_answered", by=item.answered_by or "",
                               answer=item.answer_text)
    return ctx.say(text)


def _describe(assistant: "Assistant", item: FeedbackItem, language: str, key: str) -> str:
    """An item in full, for admins: reference, kind, district, status, reply wish, text."""
    def t(name: str) -> str:
        return assistant.texts.get(language, name)

    district = district_name(assistant, item.district_id, language)
    text = assistant.texts.get(
        language, key, reference=item.reference, kind=t(f"feedback_kind_{item.kind}"),
        district=district or t("feedback_no_district"), status=t(f"feedback_status_{item.status}"),
        reply=t("feedback_yes" if item.reply_wanted else "feedback_no"),
        date=local_date(assistant, item), text=item.text)
    return text if item.resident_id else text + "\n\n" + t("privacy_feedback_anonymous")


def _list_line(ctx: "Context", item: FeedbackItem) -> str:
    district = district_name(ctx.assistant, item.district_id, ctx.language)
    line = ctx.t("feedback_admin_list_item", reference=item.reference,
                 date=local_date(ctx.assistant, item),
                 kind=ctx.t(f"feedback_kind_{item.kind}"),
                 district=district or ctx.t("feedback_no_district"),
                 status=ctx.t(f"feedback_status_{item.status}"),
                 reply=ctx.t("feedback_yes" if item.reply_wanted else "feedback_no"),
                 text=shorten(item.text, 200))
    return line if item.resident_id else f"{line}\n[{ctx.t('privacy_feedback_anonymous_short')}]"


# shown to residents and admins alike --------------------------------------

def shorten(text: str, limit: int) -> str:
    """For lists only: the stored text is never cut."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def local_date(assistant: "Assistant", item: FeedbackItem) -> str:
    day = item.created_at.astimezone(assistant.feedback.zone)
    return f"{day.day}.{day.month}.{day.year}"


def gazetteer_of(assistant: "Assistant") -> Gazetteer | None:
    """The assistant's gazetteer, loaded on first use; None when there is no districts file."""
    if not hasattr(assistant, "gazetteer"):
        assistant.gazetteer = load_gazetteer(assistant.settings.knowledge_dir)
    return assistant.gazetteer


def load_gazetteer(knowledge_dir: Path) -> Gazetteer | None:
    try:
        return Gazetteer.load(knowledge_dir)
    except GazetteerError:  # a missing or broken districts file must not stop feedback
        logger.warning("no district gazetteer in %s; feedback has no districts", knowledge_dir)
        return None


def district_name(assistant: "Assistant", district_id: str | None, language: str) -> str:
    """The district's name in `language`; the bare id when the gazetteer no longer knows it."""
    if not district_id:
        return ""
    gazetteer = gazetteer_of(assistant)
    district = gazetteer.get(district_id) if gazetteer else None
    return district.name(language) if district else district_id
