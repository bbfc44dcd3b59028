"""`/answer edit <topic> <lang>`: the new answer, a preview to confirm, then one revision."""

from __future__ import annotations

import logging
import secrets
from enum import Enum
from typing import TYPE_CHECKING

from .curation_dialogue import confirm_choices, open_flow, save_step
from .curation_text import clean_text, language_name, unknown_topic
from .knowledge import MAX_ANSWER_CHARS
from .messages import LANGUAGES, Reply
from .store.residents import Flow

if TYPE_CHECKING:
    from .context import Context

logger = logging.getLogger(__name__)

EDIT_FLOW = "answer_edit"


class EditStep(str, Enum):
    """`/answer edit`: the new text, then a preview to confirm."""

    TEXT = "text"
    CONFIRM = "confirm"


async def edit(ctx: "Context", rest: str) -> list[Reply]:
    """Start an edit: the next message is the new answer."""
    parts = rest.split()
    if len(parts) != 2:
        return ctx.reply("admin_answer_usage")
    topic, language = ctx.assistant.knowledge.get(parts[0]), parts[1].lower()
    if topic is None:
        return unknown_topic(ctx, parts[0])
    if language not in LANGUAGES:
        return ctx.reply("admin_answer_language_unknown", given=parts[1][:16])
    save_step(ctx, EDIT_FLOW, EditStep.TEXT, {"topic": topic.id, "lang": language})
    return ctx.reply("admin_answer_edit_ask", topic=topic.id, language=language_name(ctx, language),
                     current=topic.text(language).answer.strip(), limit=MAX_ANSWER_CHARS)


async def edit_text(ctx: "Context", text: str) -> list[Reply]:
    """The new answer (at either step: a second text replaces the first); then a preview."""
    flow = await open_flow(ctx, EDIT_FLOW, text)
    if not isinstance(flow, Flow):
        return flow
    answer = clean_text(text)
    if len(answer) > MAX_ANSWER_CHARS:
        return ctx.reply("admin_too_long", length=len(answer), limit=MAX_ANSWER_CHARS)
    data = dict(flow.data, text=answer, nonce=secrets.token_hex(4))
    save_step(ctx, EDIT_FLOW, EditStep.CONFIRM, data)
    return ctx.say(ctx.t("admin_answer_edit_preview", topic=data["topic"], text=answer,
                         language=language_name(ctx, data["lang"])),
                   *confirm_choices(ctx, data["nonce"]))


def save_edit(ctx: "Context", data: dict) -> list[Reply]:
    """The confirmed preview becomes an "answer" revision in force at once."""
    topic, language = ctx.assistant.knowledge.get(data["topic"]), data["lang"]
    if topic is None:  # undone while the preview waited
        return unknown_topic(ctx, data["topic"])
    actor = ctx.incoming.address
    ctx.assistant.revisions.add(topic.id, language, "answer", data["text"], actor)
    ctx.assistant.audit(actor, "answer.edit", f"{topic.id}/{language}",
                        topic.text(language).answer, data["text"])
    ctx.assistant.reload_knowledge()
    logger.info("topic %s: %s answer revised", topic.id, language)
    return ctx.reply("admin_answer_saved", topic=topic.id, language=language_name(ctx, language))
