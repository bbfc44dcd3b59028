"""`/answer add <topic-id>`: a guided form for a new topic, language by language, then one
revision, after the same check `kb check` makes.
"""

from __future__ import annotations

import logging
import re
import secrets
from enum import Enum
from typing import TYPE_CHECKING, Awaitable, Callable

from . import kb_export
from .curation_dialogue import confirm_choices, open_flow, save_step
from .curation_overlay import topic_json
from .curation_text import (
    MAX_PHRASE_CHARS,
    clean_text,
    language_name,
    local_today,
    new_items,
    one_line,
    snippet,
    split_items,
)
from .knowledge import MAX_ANSWER_CHARS, MIN_QUESTIONS, Topic, TopicText
from .messages import LANGUAGES, Reply
from .store.residents import Flow

if TYPE_CHECKING:
    from .context import Context

logger = logging.getLogger(__name__)

ADD_FLOW = "answer_add"
MAX_TITLE_CHARS = 120
MAX_KEYWORD_CHARS = 60
_TOPIC_ID = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")  # as knowledge.py requires


class AddStep(str, Enum):
    """`/answer add`: per language title, answer, phrasings and keywords; then confirm."""

    TITLE = "title"
    ANSWER = "answer"
    QUESTIONS = "questions"
    KEYWORDS = "keywords"
    CONFIRM = "confirm"


async def add_topic(ctx: "Context", rest: str) -> list[Reply]:
    """Start the guided form for a new topic."""
    parts = rest.split()
    if len(parts) != 1:
        return ctx.reply("admin_add_usage")
    topic_id = parts[0].lower()
    if not _TOPIC_ID.match(topic_id) or len(topic_id) > 64:
        return ctx.reply("admin_add_bad_id", given=parts[0][:64])
    if ctx.assistant.knowledge.get(topic_id) is not None:
        return ctx.reply("admin_add_exists", topic=topic_id)
    data = {"topic": topic_id, "lang": LANGUAGES[0], "texts": {}}
    return _next(ctx, data, AddStep.TITLE)


async def add_text(ctx: "Context", text: str) -> list[Reply]:
    flow = await open_flow(ctx, ADD_FLOW, text)
    if not isinstance(flow, Flow):
        return flow
    return await ADD_STEPS[AddStep(flow.step)](ctx, dict(flow.data), text)


# the form's steps -----------------------------------------------------------------

async def title_given(ctx: "Context", data: dict, text: str) -> list[Reply]:
    return _keep(ctx, data, "title", one_line(text), MAX_TITLE_CHARS, AddStep.ANSWER)


async def answer_given(ctx: "Context", data: dict, text: str) -> list[Reply]:
    return _keep(ctx, data, "answer", clean_text(text), MAX_ANSWER_CHARS, AddStep.QUESTIONS)


async def questions_given(ctx: "Context", data: dict, text: str) -> list[Reply]:
    if not _collect(ctx, data, "questions", split_items(text), MAX_PHRASE_CHARS):
        return _ask_more(ctx, data, AddStep.QUESTIONS, "questions")
    return _next(ctx, data, AddStep.KEYWORDS)


async def keywords_given(ctx: "Context", data: dict, text: str) -> list[Reply]:
    """Keywords separated by commas or lines; then the next language, or the preview."""
    words = [w for line in text.split("\n") for w in line.split(",")]
    if not _collect(ctx, data, "keywords", words, MAX_KEYWORD_CHARS):
        return _ask_more(ctx, data, AddStep.KEYWORDS, "keywords")
    position = LANGUAGES.index(data["lang"])
    if position + 1 == len(LANGUAGES):
        return _next(ctx, data, AddStep.CONFIRM)
    data["lang"] = LANGUAGES[position + 1]
    return _next(ctx, data, AddStep.TITLE)


async def confirm_typed(ctx: "Context", data: dict, text: str) -> list[Reply]:
    return ctx.reply("admin_pick_button", *confirm_choices(ctx, data.get("nonce", "")))


StepHandler = Callable[["Context", dict, str], Awaitable[list[Reply]]]
ADD_STEPS: dict[AddStep, StepHandler] = {
    AddStep.TITLE: title_given, AddStep.ANSWER: answer_given,
    AddStep.QUESTIONS: questions_given, AddStep.KEYWORDS: keywords_given,
    AddStep.CONFIRM: confirm_typed,
}


def save_topic(ctx: "Context", data: dict) -> list[Reply]:
    """Store the new topic as one revision, after the same check `kb check` makes."""
    actor, today = ctx.incoming.address, local_today(ctx.assistant)
    topic = Topic(id=data["topic"], reviewed=today.isoformat(),
                  sources=(f"added by chat by {actor} on {today.isoformat()}",), links=(),
                  texts={lang: TopicText(t["title"], t["answer"], tuple(t["questions"]),
                                         tuple(t["keywords"]))
                         for lang, t in data["texts"].items()})
    if ctx.assistant.knowledge.get(topic.id) is not None:
        return ctx.reply("admin_add_exists", topic=topic.id)
    problems = kb_export.check_topic(topic, today)
    if problems:
        return ctx.reply("admin_add_problems", problems="\n".join(p.message for p in problems[:8]))
    ctx.assistant.revisions.add(topic.id, "", "topic", topic_json(topic), actor)
    ctx.assistant.audit(actor, "answer.add", topic.id, "", topic.text("fi").title)
    ctx.assistant.reload_knowledge()
    logger.info("topic %s added by chat", topic.id)
    return ctx.reply("admin_add_saved", topic=topic.id)


# the form's state -----------------------------------------------------------------

def _keep(ctx: "Context", data: dict, field: str, value: str, limit: int,
          then: AddStep) -> list[Reply]:
    """Keep the language's title or answer when it fits `limit`, then ask for `then`."""
    if len(value) > limit:
        return ctx.reply("admin_too_long", length=len(value), limit=limit)
    _texts(data)[field] = value
    return _next(ctx, data, then)


def _collect(ctx: "Context", data: dict, field: str, items: list[str], limit: int) -> bool:
    """Add phrasings or keywords to the language's list; True once `kb check` has enough."""
    texts = _texts(data)
    texts[field] = texts.get(field, []) + new_items(texts.get(field, []), items, limit)
    return len(texts[field]) >= MIN_QUESTIONS


def _ask_more(ctx: "Context", data: dict, step: AddStep, field: str) -> list[Reply]:
    save_step(ctx, ADD_FLOW, step, data)
    have = len(_texts(data)[field])
    return ctx.reply("admin_add_more", have=have, need=MIN_QUESTIONS - have)


def _next(ctx: "Context", data: dict, step: AddStep) -> list[Reply]:
    """Save the form at `step` and ask that step's question."""
    if step is AddStep.CONFIRM:
        data["nonce"] = secrets.token_hex(4)
    save_step(ctx, ADD_FLOW, step, data)
    language = language_name(ctx, data["lang"])
    if step is AddStep.TITLE:
        return ctx.reply("admin_add_ask_title", topic=data["topic"], language=language)
    if step is AddStep.ANSWER:
        return ctx.reply("admin_add_ask_answer", language=language, limit=MAX_ANSWER_CHARS)
    if step is AddStep.QUESTIONS:
        return ctx.reply("admin_add_ask_questions", language=language, need=MIN_QUESTIONS)
    if step is AddStep.KEYWORDS:
        return ctx.reply("admin_add_ask_keywords", language=language, need=MIN_QUESTIONS)
    return ctx.say(_add_preview(ctx, data), *confirm_choices(ctx, data["nonce"]))


def _add_preview(ctx: "Context", data: dict) -> str:
    parts = [ctx.t("admin_add_preview", topic=data["topic"])]
    for lang in LANGUAGES:
        text = data["texts"][lang]
        parts.append(ctx.t("admin_add_preview_language", language=language_name(ctx, lang),
                           title=text["title"], answer=snippet(text["answer"], 300),
                           questions=" | ".join(text["questions"][:3]),
                           count=len(text["questions"]), keywords=", ".join(text["keywords"])))
    return "\n\n".join(parts)


def _texts(data: dict) -> dict:
    return data["texts"].setdefault(data["lang"], {})
