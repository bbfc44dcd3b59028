"""Editors curate answers by chat: show, edit with a preview, add phrasings or topics, undo.

Every change is an `AnswerRevision`; `curation_overlay` applies the revisions in force
over the curated files. This module registers the feature and hands each `/answer` word
and confirm button to its part: the guided dialogues in `curation_edit` and `curation_add`,
history and undo in `curation_history`, the shared text helpers in `curation_text`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Awaitable, Callable

from .commands import Command, private_only
from .curation_add import ADD_FLOW, add_text, add_topic, save_topic
from .curation_dialogue import ROLE, timed_out
from .curation_edit import EDIT_FLOW, edit, edit_text, save_edit
from .curation_history import history, undo
from .curation_overlay import add_phrasings, overlay_from
from .curation_text import (
    MAX_PHRASE_CHARS,
    language_name,
    one_line,
    split_word,
    unknown_topic,
)
from .messages import LANGUAGES, Reply
from .store.admin import Revisions

# other modules and tests import these from here
from .curation_overlay import apply_revisions, topic_json  # noqa: F401
from .curation_text import clean_text, local_time, local_today, snippet  # noqa: F401

if TYPE_CHECKING:
    from .context import Context
    from .core import Assistant

WORDS = {  # sub-commands in English, Finnish and Swedish
    "show": "show", "näytä": "show", "nayta": "show", "visa": "show",
    "edit": "edit", "muokkaa": "edit", "redigera": "edit",
    "phrase": "phrase", "fraasi": "phrase", "fras": "phrase",
    "add": "add", "lisää": "add", "lisaa": "add", "ny": "add",
    "history": "history", "historia": "history", "historik": "history",
    "undo": "undo", "kumoa": "undo", "ångra": "undo", "angra": "undo",
}


def register(assistant: "Assistant") -> None:
    assistant.revisions = Revisions(assistant.db)
    assistant.knowledge_overlays.append(overlay_from(assistant.revisions))
    table = assistant.commands
    table.add(Command("answer", answer_command, "admin_help_answer", aliases=("vastaus", "svar"),
                      role=ROLE))
    table.on_choice("ans", on_button)
    table.on_flow(EDIT_FLOW, edit_text)
    table.on_flow(ADD_FLOW, add_text)


async def answer_command(ctx: "Context", args: str) -> list[Reply]:
    """`/answer show|edit|phrase add|add|history|undo ...`."""
    word, rest = split_word(args)
    handler = SUBCOMMANDS.get(WORDS.get(word.casefold(), ""))
    if handler is None:
        return ctx.reply("admin_answer_usage")
    return await handler(ctx, rest)


async def show(ctx: "Context", rest: str) -> list[Reply]:
    topic_id, _ = split_word(rest)
    topic = ctx.assistant.knowledge.get(topic_id)
    if topic is None:
        return unknown_topic(ctx, topic_id)
    changes = len([r for r in ctx.assistant.revisions.of_topic(topic.id, 1000) if not r.undone])
    parts = [ctx.t("admin_answer_show_intro", topic=topic.id, reviewed=topic.reviewed,
                   changes=changes)]
    for lang in LANGUAGES:
        text = topic.text(lang)
        parts.append(ctx.t("admin_answer_show_language", language=language_name(ctx, lang),
                           title=text.title, answer=text.answer.strip(),
                           questions=len(text.questions)))
    return ctx.say("\n\n".join(parts))


async def phrase(ctx: "Context", rest: str) -> list[Reply]:
    """`/answer phrase add <topic> <lang> <question>`."""
    word, rest = split_word(rest)
    parts = rest.split(maxsplit=2)
    if WORDS.get(word.casefold()) != "add" or len(parts) < 3:
        return ctx.reply("admin_phrase_usage")
    topic, language, question = ctx.assistant.knowledge.get(parts[0]), parts[1].lower(), parts[2]
    if topic is None:
        return unknown_topic(ctx, parts[0])
    if language not in LANGUAGES:
        return ctx.reply("admin_answer_language_unknown", given=parts[1][:16])
    if len(one_line(question)) > MAX_PHRASE_CHARS:
        return ctx.reply("admin_too_long", length=len(one_line(question)), limit=MAX_PHRASE_CHARS)
    actor = ctx.incoming.address
    if add_phrasings(ctx.assistant, actor, topic, language, [question], "answer.phrase",
                     f"{topic.id}/{language}") is None:
        return ctx.reply("admin_phrase_exists", topic=topic.id,
                         language=language_name(ctx, language))
    return ctx.reply("admin_phrase_added", topic=topic.id, language=language_name(ctx, language),
                     question=one_line(question))


SUBCOMMANDS: dict[str, Callable[["Context", str], Awaitable[list[Reply]]]] = {
    "show": show, "edit": private_only(edit, "admin_private_only"), "phrase": phrase,
    "add": private_only(add_topic, "admin_private_only"), "history": history, "undo": undo,
}


async def on_button(ctx: "Context", argument: str) -> list[Reply]:
    """`ans:ok:<nonce>` saves what the preview showed, `ans:no:<nonce>` drops it."""
    if not ctx.has_role(ROLE):  # buttons skip the command table's role check
        return ctx.reply("choice_expired")
    action, _, nonce = argument.partition(":")
    flow = ctx.assistant.residents.flow(ctx.resident.id)
    if (flow is None or flow.name not in (EDIT_FLOW, ADD_FLOW) or flow.step != "confirm"
            or flow.data.get("nonce") != nonce or action not in ("ok", "no")):
        return ctx.reply("choice_expired")
    ctx.assistant.residents.clear_flow(ctx.resident.id)
    if timed_out(flow.data):
        return ctx.reply("admin_timed_out")
    if action == "no":
        return ctx.reply("admin_cancelled")
    if flow.name == EDIT_FLOW:
        return save_edit(ctx, flow.data)
    return save_topic(ctx, flow.data)
