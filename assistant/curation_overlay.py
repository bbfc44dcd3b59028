"""Answer revisions applied over the curated files: the knowledge residents are answered from.

The overlay reads the revisions in force each time the knowledge is rebuilt, which
happens after every change, so the matcher and `compose` use an edit at once.
"""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from typing import TYPE_CHECKING, Callable

from .curation_text import MAX_PHRASE_CHARS, new_items
from .knowledge import KnowledgeBase, Topic, TopicText
from .store.admin import AnswerRevision, Revisions

if TYPE_CHECKING:
    from .core import Assistant

logger = logging.getLogger(__name__)


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
