"""Editors curate answers by chat: show, edit with a preview, add phrasings or topics, undo.

Every change is an `AnswerRevision`. What residents get is the curated files with
the revisions in force applied over them (`overlay_from`, a knowledge overlay),
rebuilt after each change so the matcher and `compose` use it at once.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import secrets
from dataclasses import replace
from enum import Enum
from typing import TYPE_CHECKING, Awaitable, Callable
from zoneinfo import ZoneInfo

from . import answers, kb_export
from .commands import Command
from .knowledge import MAX_ANSWER_CHARS, MIN_QUESTIONS, KnowledgeBase, Topic, TopicText
from .messages import LANGUAGES, Choice, Reply
from .store.admin import AnswerRevision, Revisions
from .store.residents import Flow, utcnow

if TYPE_CHECKING:
    from .context import Context
    from .core import Assistant

logger = logging.getLogger(__name__)

ROLE = "editor"
EDIT_FLOW, ADD_FLOW = "answer_edit", "answer_add"
FLOW_TIMEOUT = dt.timedelta(minutes=60)
MAX_TITLE_CHARS = 120
MAX_PHRASE_CHARS = 300
MAX_KEYWORD_CHARS = 60
HISTORY_ITEMS = 10
_TOPIC_ID = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")  # as knowledge.py requires
_BREAK = re.compile(r"\r\n|[\r\x85\u2028\u2029]")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x84\x86-\x9f\ufffe\uffff\ud800-\udfff]")
_LIST_MARK = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s+")
WORDS = {  # sub-commands in English, Finnish and Swedish
    "show": "show", "näytä": "show", "nayta": "show", "visa": "show",
    "edit": "edit", "muokkaa": "edit", "redigera": "edit",
    "phrase": "phrase", "fraasi": "phrase", "fras": "phrase",
    "add": "add", "lisää": "add", "lisaa": "add", "ny": "add",
    "history": "history", "historia": "history", "historik": "history",
    "undo": "undo", "kumoa": "undo", "ångra": "undo", "angra": "undo",
}


class EditStep(str, Enum):
    """`/answer edit`: the new text, then a preview to confirm."""

    TEXT = "text"
    CONFIRM = "confirm"


class AddStep(str, Enum):
    """`/answer add`: per language title, answer, phrasings and keywords; then confirm."""

    TITLE = "title"
    ANSWER = "answer"
    QUESTIONS = "questions"
    KEYWORDS = "keywords"
    CONFIRM = "confirm"


def register(assistant: "Assistant") -> None:
    assistant.revisions = Revisions(assistant.db)
    assistant.knowledge_overlays.append(overlay_from(assistant.revisions))
    table = assistant.commands
    table.add(Command("answer", answer_command, "admin_help_answer", aliases=("vastaus", "svar"),
                      role=ROLE))
    table.on_choice("ans", on_button)
    table.on_flow(EDIT_FLOW, edit_text)
    table.on_flow(ADD_FLOW, add_text)


# the overlay: revisions over the curated files ---------------------------------

def overlay_from(revisions: Revisions) -> Callable[[KnowledgeBase], KnowledgeBase]:
    """A knowledge overlay that reads the revisions in force each time it is applied."""
    def overlay(base: KnowledgeBase) -> KnowledgeBase:
        return apply_revisions(base, revisions.active())
    return overlay


def apply_revisions(base: KnowledgeBase, revisions: list[AnswerRevision]) -> KnowledgeBase:
    """`base` with `revisions` applied oldest first; the newest text of a field wins."""
    topics = dict(base.topics)
    for revision in revisions:
        topic = topics.get(revision.topic_id)
        if revision.field == "topic":
            if topic is None:  # once exported and merged, the file defines the topic
                topics[revision.topic_id] = topic_from_revision(revision)
        elif topic is not None and revision.language in topic.texts:
            topics[revision.topic_id] = _revised(topic, revision)
    return KnowledgeBase(topics)


def _revised(topic: Topic, revision: AnswerRevision) -> Topic:
    language, value = revision.language, revision.value
    if revision.field == "answer":
        return topic.with_answer(language, value)
    if revision.field == "title":
        texts = dict(topic.texts)
        texts[language] = replace(topic.text(language), title=value)
        return replace(topic, texts=texts)
    return topic.with_questions(language, tuple(new_items(
        topic.text(language).questions, value.split("\n"), MAX_PHRASE_CHARS)))


def topic_from_revision(revision: AnswerRevision) -> Topic:
    """A topic added by chat, from its "topic" revision (JSON)."""
    data = json.loads(revision.value)
    texts = {lang: TopicText(t["title"], t["answer"], tuple(t["questions"]), tuple(t["keywords"]))
             for lang, t in data["texts"].items()}
    return Topic(id=revision.topic_id, reviewed=revision.created_at.date().isoformat(),
                 sources=tuple(data["sources"]), links=tuple(data.get("links", ())), texts=texts)


def topic_json(topic: Topic) -> str:
    texts = {lang: {"title": t.title, "answer": t.answer, "questions": list(t.questions),
                    "keywords": list(t.keywords)} for lang, t in topic.texts.items()}
    return json.dumps({"sources": list(topic.sources), "links": list(topic.links),
                       "texts": texts}, ensure_ascii=False)


def add_phrasings(assistant: "Assistant", actor: str, topic: Topic, language: str,
                  phrasings: list[str], action: str, target: str) -> AnswerRevision | None:
    """One "question" revision with the phrasings the topic lacks; None when it has them all."""
    new = new_items(topic.text(language).questions, phrasings, MAX_PHRASE_CHARS)
    if not new:
        return None
    revision = assistant.revisions.add(topic.id, language, "question", "\n".join(new), actor)
    assistant.audit(actor, action, target, "", "\n".join(new))
    assistant.reload_knowledge()
    logger.info("topic %s: %d phrasing(s) added (%s)", topic.id, len(new), language)
    return revision


# /answer -------------------------------------------------------------------------

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
        return _unknown_topic(ctx, topic_id)
    changes = len([r for r in ctx.assistant.revisions.of_topic(topic.id, 1000) if not r.undone])
    parts = [ctx.t("admin_answer_show_intro", topic=topic.id, reviewed=topic.reviewed,
                   changes=changes)]
    for lang in LANGUAGES:
        text = topic.text(lang)
        parts.append(ctx.t("admin_answer_show_language", language=language_name(ctx, lang),
                           title=text.title, answer=text.answer.strip(),
                           questions=len(text.questions)))
    return ctx.say("\n\n".join(parts))


async def edit(ctx: "Context", rest: str) -> list[Reply]:
    """Start an edit: the next message is the new answer."""
    if ctx.incoming.group:
        return ctx.reply("admin_private_only")
    parts = rest.split()
    if len(parts) != 2:
        return ctx.reply("admin_answer_usage")
    topic, language = ctx.assistant.knowledge.get(parts[0]), parts[1].lower()
    if topic is None:
        return _unknown_topic(ctx, parts[0])
    if language not in LANGUAGES:
        return ctx.reply("admin_answer_language_unknown", given=parts[1][:16])
    _save(ctx, EDIT_FLOW, EditStep.TEXT, {"topic": topic.id, "lang": language})
    return ctx.reply("admin_answer_edit_ask", topic=topic.id, language=language_name(ctx, language),
                     current=topic.text(language).answer.strip(), limit=MAX_ANSWER_CHARS)


async def phrase(ctx: "Context", rest: str) -> list[Reply]:
    """`/answer phrase add <topic> <lang> <question>`."""
    word, rest = split_word(rest)
    parts = rest.split(maxsplit=2)
    if WORDS.get(word.casefold()) != "add" or len(parts) < 3:
        return ctx.reply("admin_phrase_usage")
    topic, language, question = ctx.assistant.knowledge.get(parts[0]), parts[1].lower(), parts[2]
    if topic is None:
        return _unknown_topic(ctx, parts[0])
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


async def add_topic(ctx: "Context", rest: str) -> list[Reply]:
    """Start the guided form for a new topic."""
    if ctx.incoming.group:
        return ctx.reply("admin_private_only")
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


SUBCOMMANDS: dict[str, Callable[["Context", str], Awaitable[list[Reply]]]] = {
    "show": show, "edit": edit, "phrase": phrase, "add": add_topic, "history": history,
    "undo": undo,
}


# dialogues ------------------------------------------------------------------------

async def edit_text(ctx: "Context", text: str) -> list[Reply]:
    """The new answer (at either step: a second text replaces the first); then a preview."""
    flow = await _open_flow(ctx, EDIT_FLOW, text)
    if not isinstance(flow, Flow):
        return flow
    answer = clean_text(text)
    if len(answer) > MAX_ANSWER_CHARS:
        return ctx.reply("admin_too_long", length=len(answer), limit=MAX_ANSWER_CHARS)
    data = dict(flow.data, text=answer, nonce=secrets.token_hex(4))
    _save(ctx, EDIT_FLOW, EditStep.CONFIRM, data)
    return ctx.say(ctx.t("admin_answer_edit_preview", topic=data["topic"], text=answer,
                         language=language_name(ctx, data["lang"])),
                   *_confirm_choices(ctx, data["nonce"]))


async def add_text(ctx: "Context", text: str) -> list[Reply]:
    flow = await _open_flow(ctx, ADD_FLOW, text)
    if not isinstance(flow, Flow):
        return flow
    return await ADD_STEPS[AddStep(flow.step)](ctx, dict(flow.data), text)


async def title_given(ctx: "Context", data: dict, text: str) -> list[Reply]:
    title = one_line(text)
    if len(title) > MAX_TITLE_CHARS:
        return ctx.reply("admin_too_long", length=len(title), limit=MAX_TITLE_CHARS)
    _texts(data)["title"] = title
    return _next(ctx, data, AddStep.ANSWER)


async def answer_given(ctx: "Context", data: dict, text: str) -> list[Reply]:
    answer = clean_text(text)
    if len(answer) > MAX_ANSWER_CHARS:
        return ctx.reply("admin_too_long", length=len(answer), limit=MAX_ANSWER_CHARS)
    _texts(data)["answer"] = answer
    return _next(ctx, data, AddStep.QUESTIONS)


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
    return ctx.reply("admin_pick_button", *_confirm_choices(ctx, data.get("nonce", "")))


StepHandler = Callable[["Context", dict, str], Awaitable[list[Reply]]]
ADD_STEPS: dict[AddStep, StepHandler] = {
    AddStep.TITLE: title_given, AddStep.ANSWER: answer_given,
    AddStep.QUESTIONS: questions_given, AddStep.KEYWORDS: keywords_given,
    AddStep.CONFIRM: confirm_typed,
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
    if _timed_out(flow.data):
        return ctx.reply("admin_timed_out")
    if action == "no":
        return ctx.reply("admin_cancelled")
    if flow.name == EDIT_FLOW:
        return save_edit(ctx, flow.data)
    return save_topic(ctx, flow.data)


def save_edit(ctx: "Context", data: dict) -> list[Reply]:
    topic, language = ctx.assistant.knowledge.get(data["topic"]), data["lang"]
    if topic is None:  # undone while the preview waited
        return _unknown_topic(ctx, data["topic"])
    actor = ctx.incoming.address
    ctx.assistant.revisions.add(topic.id, language, "answer", data["text"], actor)
    ctx.assistant.audit(actor, "answer.edit", f"{topic.id}/{language}",
                        topic.text(language).answer, data["text"])
    ctx.assistant.reload_knowledge()
    logger.info("topic %s: %s answer revised", topic.id, language)
    return ctx.reply("admin_answer_saved", topic=topic.id, language=language_name(ctx, language))


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


# dialogue helpers -------------------------------------------------------------------

async def _open_flow(ctx: "Context", name: str, text: str) -> Flow | list[Reply]:
    """The editor's open dialogue, or the reply when it is gone, expired or no longer allowed."""
    flow = ctx.assistant.residents.flow(ctx.resident.id)
    if ctx.incoming.group:  # the dialogue is private: group talk is not its answer
        return await answers.answer_question(ctx, text)
    if flow is None or flow.name != name or not ctx.has_role(ROLE):
        ctx.assistant.residents.clear_flow(ctx.resident.id)
        return await answers.answer_question(ctx, text)
    if _timed_out(flow.data):
        ctx.assistant.residents.clear_flow(ctx.resident.id)
        return ctx.reply("admin_timed_out")
    return flow


def _collect(ctx: "Context", data: dict, field: str, items: list[str], limit: int) -> bool:
    """Add phrasings or keywords to the language's list; True once `kb check` has enough."""
    texts = _texts(data)
    texts[field] = texts.get(field, []) + new_items(texts.get(field, []), items, limit)
    return len(texts[field]) >= MIN_QUESTIONS


def _ask_more(ctx: "Context", data: dict, step: AddStep, field: str) -> list[Reply]:
    _save(ctx, ADD_FLOW, step, data)
    have = len(_texts(data)[field])
    return ctx.reply("admin_add_more", have=have, need=MIN_QUESTIONS - have)


def _next(ctx: "Context", data: dict, step: AddStep) -> list[Reply]:
    """Save the form at `step` and ask that step's question."""
    if step is AddStep.CONFIRM:
        data["nonce"] = secrets.token_hex(4)
    _save(ctx, ADD_FLOW, step, data)
    language = language_name(ctx, data["lang"])
    if step is AddStep.TITLE:
        return ctx.reply("admin_add_ask_title", topic=data["topic"], language=language)
    if step is AddStep.ANSWER:
        return ctx.reply("admin_add_ask_answer", language=language, limit=MAX_ANSWER_CHARS)
    if step is AddStep.QUESTIONS:
        return ctx.reply("admin_add_ask_questions", language=language, need=MIN_QUESTIONS)
    if step is AddStep.KEYWORDS:
        return ctx.reply("admin_add_ask_keywords", language=language, need=MIN_QUESTIONS)
    return ctx.say(_add_preview(ctx, data), *_confirm_choices(ctx, data["nonce"]))


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


def _save(ctx: "Context", name: str, step: Enum, data: dict) -> None:
    data["saved_at"] = utcnow().isoformat()
    ctx.assistant.residents.set_flow(ctx.resident.id, name, step.value, data)


def _timed_out(data: dict) -> bool:
    try:
        return utcnow() - dt.datetime.fromisoformat(data["saved_at"]) > FLOW_TIMEOUT
    except (KeyError, TypeError, ValueError):
        return True


def _confirm_choices(ctx: "Context", nonce: str) -> tuple[Choice, Choice]:
    return (Choice(ctx.t("admin_confirm_button"), f"ans:ok:{nonce}"),
            Choice(ctx.t("admin_cancel_button"), f"ans:no:{nonce}"))


def _unknown_topic(ctx: "Context", topic_id: str) -> list[Reply]:
    return ctx.reply("admin_answer_topic_unknown", topic=topic_id[:64])


def _value_now(assistant: "Assistant", revision: AnswerRevision) -> str:
    """After an undo: the text now in force for the field the revision had changed."""
    topic = assistant.knowledge.get(revision.topic_id)
    if topic is None or revision.field not in ("answer", "title"):
        return ""
    return getattr(topic.text(revision.language), revision.field)


# shared text helpers ----------------------------------------------------------------

def split_word(text: str) -> tuple[str, str]:
    """The first word and the rest (line breaks in the rest kept)."""
    parts = text.strip().split(maxsplit=1)
    return (parts[0] if parts else ""), (parts[1] if len(parts) > 1 else "")


def clean_text(text: str) -> str:
    """An answer as stored: no control characters or trailing spaces, Unix line ends."""
    text = _CONTROL.sub("", _BREAK.sub("\n", text))  # what YAML files cannot hold
    return "\n".join(line.rstrip() for line in text.strip().split("\n"))


def one_line(text: str) -> str:
    return " ".join(_CONTROL.sub(" ", text).split())


def split_items(text: str) -> list[str]:
    """Phrasings one per line; on a single line, separated by semicolons or else commas."""
    if "\n" in text.strip():
        items = text.split("\n")
    else:
        items = text.split(";") if ";" in text else text.split(",")
    return [_LIST_MARK.sub("", item) for item in items]


def new_items(known: "list[str] | tuple[str, ...]", items: list[str], limit: int) -> list[str]:
    """`items` cleaned, without empty, over-long or repeated ones (case aside)."""
    seen = {k.casefold() for k in known}
    found = []
    for item in (one_line(i) for i in items):
        if item and len(item) <= limit and item.casefold() not in seen:
            seen.add(item.casefold())
            found.append(item)
    return found


def language_name(ctx: "Context", language: str) -> str:
    return ctx.t(f"admin_lang_{language}")


def change_name(ctx: "Context", revision: AnswerRevision) -> str:
    """"answer (Swedish)", "new topic": what a revision changed, in the reader's language."""
    name = ctx.t(f"admin_field_{revision.field}")
    return f"{name} ({language_name(ctx, revision.language)})" if revision.language else name


def revision_text(revision: AnswerRevision) -> str:
    if revision.field == "topic":
        return json.loads(revision.value)["texts"].get("fi", {}).get("title", "")
    return " | ".join(revision.value.split("\n"))


def snippet(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def local_time(ctx: "Context", when: dt.datetime) -> str:
    if when.tzinfo is None:  # SQLite hands back naive UTC
        when = when.replace(tzinfo=dt.timezone.utc)
    local = when.astimezone(ZoneInfo(ctx.assistant.settings.timezone))
    return f"{local.day}.{local.month}.{local.year} {local:%H:%M}"


def local_today(assistant: "Assistant") -> dt.date:
    return dt.datetime.now(ZoneInfo(assistant.settings.timezone)).date()
