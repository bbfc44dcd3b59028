"""`/answer history` and `/answer undo`: what changed a topic, and taking the newest change back."""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING

from .curation_text import language_name, local_time, snippet, split_word
from .messages import Reply
from .store.admin import AnswerRevision

if TYPE_CHECKING:
    from .context import Context
    from .core import Assistant

logger = logging.getLogger(__name__)

HISTORY_ITEMS = 10


async def history(ctx: "Context", rest: str) -> list[Reply]:
    topic_id, _ = split_word(rest)
    if not topic_id:
        return ctx.reply("admin_answer_usage")
    revisions = ctx.assistant.revisions.of_topic(topic_id, HISTORY_ITEMS)
    if not revisions:
        return ctx.reply("admin_history_empty", topic=topic_id[:64])
    lines = [ctx.t("admin_history_intro", topic=topic_id)]
    for revision in revisions:
        line = ctx.t("admin_history_item", id=revision.id, author=revision.author,
                     time=local_time(ctx, revision.created_at),
                     change=change_name(ctx, revision), value=snippet(revision_text(revision), 80))
        lines.append(line + (" " + ctx.t("admin_history_undone") if revision.undone else ""))
    return ctx.say("\n".join(lines))


async def undo(ctx: "Context", rest: str) -> list[Reply]:
    """Revert the topic's newest revision in force; the one before it (or the file) applies."""
    topic_id, _ = split_word(rest)
    if not topic_id:
        return ctx.reply("admin_answer_usage")
    revision = ctx.assistant.revisions.undo_latest(topic_id)
    if revision is None:
        return ctx.reply("admin_undo_nothing", topic=topic_id[:64])
    ctx.assistant.reload_knowledge()
    target = f"{topic_id}/{revision.language}" if revision.language else topic_id
    ctx.assistant.audit(ctx.incoming.address, "answer.undo", target, revision.value,
                        _value_now(ctx.assistant, revision))
    logger.info("topic %s: revision %s undone", topic_id, revision.id)
    return ctx.reply("admin_undo_done", topic=topic_id, id=revision.id,
                     change=change_name(ctx, revision))


def change_name(ctx: "Context", revision: AnswerRevision) -> str:
    """"answer (Swedish)", "new topic": what a revision changed, in the reader's language."""
    name = ctx.t(f"admin_field_{revision.field}")
    return f"{name} ({language_name(ctx, revision.language)})" if revision.language else name


def revision_text(revision: AnswerRevision) -> str:
    if revision.field == "topic":
        return json.loads(revision.value)["texts"].get("fi", {}).get("title", "")
    return " | ".join(revision.value.split("\n"))


def _value_now(assistant: "Assistant", revision: AnswerRevision) -> str:
    """After an undo: the text now in force for the field the revision had changed."""
    topic = assistant.knowledge.get(revision.topic_id)
    if topic is None or revision.field not in ("answer", "title"):
        return ""
    return getattr(topic.text(revision.language), revision.field)
