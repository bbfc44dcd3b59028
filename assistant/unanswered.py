"""Questions the assistant could not answer, grouped by similarity, for editors to link.

Only the text and its language are kept (never who asked); `retention.py` deletes
them after RETENTION_DAYS.
Linking a group adds its phrasings to a topic, so the next resident asking the
same thing gets that topic's answer.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from rapidfuzz import fuzz, process

from . import textnorm
from .commands import Command, private_only
from .curation import ROLE, add_phrasings, language_name, snippet
from .messages import Reply
from .store.admin import UnansweredQuestions

if TYPE_CHECKING:
    from .context import Context
    from .core import Assistant

logger = logging.getLogger(__name__)

SIMILAR_AT = 80       # token_set_ratio to a group's first question
MAX_TEXT_CHARS = 300  # longer messages are not questions an editor would link
LIST_GROUPS = 10
LINK_PHRASINGS = 10   # a group's most common texts become phrasings, at most this many
LINK_WORDS = {"link", "linkitä", "linkita", "länka", "lanka"}


def register(assistant: "Assistant") -> None:
    assistant.unanswered = UnansweredQuestions(assistant.db)
    assistant.unanswered_listeners.append(lambda text, language: keep(assistant, text, language))
    listing = private_only(unanswered_command, "admin_private_only")
    assistant.commands.add(Command("unanswered", listing, "admin_help_unanswered",
                                   aliases=("vastaamattomat", "obesvarade"), role=ROLE))


def keep(assistant: "Assistant", text: str, language: str) -> None:
    """Store one unanswered question in its group; a failure here never reaches the resident."""
    try:
        _keep(assistant, text, language)
    except Exception:
        logger.exception("keeping an unanswered question failed")


def _keep(assistant: "Assistant", text: str, language: str) -> None:
    store: UnansweredQuestions = assistant.unanswered
    text = " ".join(text.split())
    normalised = plain(text)
    if not normalised or len(text) > MAX_TEXT_CHARS:
        return
    heads = dict(store.heads(language))
    hit = process.extractOne(normalised, heads, scorer=fuzz.token_set_ratio,
                             score_cutoff=SIMILAR_AT)
    store.add(text, normalised, language, hit[2] if hit else None)


def plain(text: str) -> str:
    """Lower-case words with ä/ö/å folded: what similarity is measured on."""
    return " ".join(textnorm.fold(w) for w in textnorm.words(text))


async def unanswered_command(ctx: "Context", args: str) -> list[Reply]:
    """`/unanswered` lists the groups; `/unanswered link <n> <topic>` links one (private chats)."""
    parts = args.split()
    if not parts:
        return list_groups(ctx)
    if parts[0].casefold() in LINK_WORDS and len(parts) == 3 and parts[1].lstrip("#").isdigit():
        return link(ctx, int(parts[1].lstrip("#")), parts[2])
    return ctx.reply("admin_unanswered_usage")


def list_groups(ctx: "Context") -> list[Reply]:
    groups = ctx.assistant.unanswered.groups(LIST_GROUPS)
    if not groups:
        return ctx.reply("admin_unanswered_empty")
    lines = [ctx.t("admin_unanswered_intro")]
    for group in groups:
        lines.append(ctx.t("admin_unanswered_item", number=group.group_id, count=group.count,
                           language=language_name(ctx, group.language),
                           example=snippet(group.example, 160)))
    return ctx.say("\n".join(lines))


def link(ctx: "Context", number: int, topic_id: str) -> list[Reply]:
    """Add the group's phrasings to the topic (in the group's language) and close the group."""
    members = ctx.assistant.unanswered.members(number)
    if not members:
        return ctx.reply("admin_unanswered_group_unknown", number=number)
    topic = ctx.assistant.knowledge.get(topic_id)
    if topic is None:
        return ctx.reply("admin_answer_topic_unknown", topic=topic_id[:64])
    language = members[0].language
    counts: dict[str, int] = {}
    for member in members:
        counts[member.text] = counts.get(member.text, 0) + 1
    phrasings = sorted(counts, key=lambda t: -counts[t])[:LINK_PHRASINGS]
    revision = add_phrasings(ctx.assistant, ctx.incoming.address, topic, language, phrasings,
                             "unanswered.link", f"#{number} -> {topic.id}/{language}")
    if revision is None:
        return ctx.reply("admin_unanswered_nothing_new", number=number, topic=topic.id)
    ctx.assistant.unanswered.link(number, revision.id)
    return ctx.reply("admin_unanswered_linked", number=number, topic=topic.id,
                     count=len(revision.value.split("\n")))
