"""`/stats` for moderators and editors: residents, subscribers, feedback, questions (counts)."""

from __future__ import annotations

import datetime as dt
import logging
from typing import TYPE_CHECKING

from .commands import Command

STATS_ROLES = ("moderator", "editor")
from .curation import language_name, local_today
from .messages import Reply
from .store.admin import QuestionCounts, Statistics

if TYPE_CHECKING:
    from .context import Context
    from .core import Assistant

logger = logging.getLogger(__name__)

DAYS = 7
TOP_DISTRICTS = 15


def register(assistant: "Assistant") -> None:
    assistant.question_counts = QuestionCounts(assistant.db)
    assistant.statistics = Statistics(assistant.db)
    assistant.answered_listeners.append(lambda topic, language: count(assistant, True))
    assistant.unanswered_listeners.append(lambda text, language: count(assistant, False))
    # Two roles may read it, and a command takes one role: the handler checks, /help omits it.
    assistant.commands.add(Command("stats", stats, "admin_help_stats",
                                   aliases=("tilastot", "statistik"), role=STATS_ROLES))


def count(assistant: "Assistant", answered: bool) -> None:
    """Count a free-text question for today; a failure here never reaches the resident."""
    try:
        assistant.question_counts.bump(local_today(assistant), answered)
    except Exception:
        logger.exception("counting a question failed")


async def stats(ctx: "Context", args: str) -> list[Reply]:
    statistics: Statistics = ctx.assistant.statistics
    parts = [ctx.t("admin_stats_title"), _residents(ctx, statistics),
             _subscribers(ctx, statistics), _feedback(ctx, statistics), _questions(ctx)]
    return ctx.say("\n\n".join(parts))


def _residents(ctx: "Context", statistics: Statistics) -> str:
    rows = statistics.residents()
    by_platform: dict[str, list[str]] = {}
    for platform, language, number in rows:
        by_platform.setdefault(platform, []).append(f"{language_name(ctx, language)} {number}")
    lines = [ctx.t("admin_stats_residents", total=sum(n for _, _, n in rows))]
    lines += [f"- {platform}: {', '.join(parts)}" for platform, parts in by_platform.items()]
    return "\n".join(lines)


def _subscribers(ctx: "Context", statistics: Statistics) -> str:
    rows = statistics.subscribers()
    if not rows:
        return ctx.t("admin_stats_subscribers_none")
    desk = getattr(ctx.assistant, "news_desk", None)
    lines = [ctx.t("admin_stats_subscribers")]
    for district_id, number in rows[:TOP_DISTRICTS]:
        name = desk.label(district_id, ctx.language) if desk else district_id
        lines.append(f"- {name}: {number}")
    if len(rows) > TOP_DISTRICTS:
        lines.append(ctx.t("admin_stats_more", count=len(rows) - TOP_DISTRICTS))
    return "\n".join(lines)


def _feedback(ctx: "Context", statistics: Statistics) -> str:
    counts = statistics.feedback()
    return ctx.t("admin_stats_feedback", new=counts.get("new", 0),
                 answered=counts.get("answered", 0), closed=counts.get("closed", 0))


def _questions(ctx: "Context") -> str:
    first_day = local_today(ctx.assistant) - dt.timedelta(days=DAYS - 1)
    answered, unanswered = ctx.assistant.question_counts.since(first_day)
    return ctx.t("admin_stats_questions", days=DAYS, answered=answered, unanswered=unanswered)
