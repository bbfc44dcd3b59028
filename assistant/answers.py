"""Answers free-text questions from the knowledge base, or says honestly that it cannot."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .commands import Command
from .knowledge import Topic
from .messages import Choice, Reply

if TYPE_CHECKING:
    from .context import Context
    from .core import Assistant


@dataclass(frozen=True)
class Answer:
    """The decision on one question and the reply text, as `ask --json` reports it."""

    topic_id: str | None
    score: float
    language: str
    text: str
    suggestions: tuple[str, ...]
    choices: tuple[Choice, ...] = ()


def register(assistant: "Assistant") -> None:
    assistant.commands.add(Command("topics", list_topics, "help_topics", aliases=("aiheet", "amnen", "ämnen")))
    assistant.commands.on_choice("topic", show_topic)


def compose(assistant: "Assistant", question: str, language: str) -> Answer:
    """Match `question` and write the reply in `language` (no storage touched)."""
    match = assistant.matcher.match(question)
    texts = assistant.texts
    if match.topic_id:
        topic = assistant.knowledge.get(match.topic_id)
        return Answer(match.topic_id, match.score, language, topic_text(assistant, topic, language), ())
    if match.suggestions:
        choices = tuple(_topic_choice(assistant, tid, language) for tid in match.suggestions)
        return Answer(None, match.score, language, texts.get(language, "did_you_mean"),
                      match.suggestions, choices)
    return Answer(None, match.score, language, texts.get(language, "dont_know"), ())


def topic_text(assistant: "Assistant", topic: Topic, language: str) -> str:
    """Title, answer and a link to read more, short enough for a phone screen."""
    text = topic.text(language)
    parts = [text.title, text.answer.strip()]
    if topic.links:
        parts.append(f"{assistant.texts.get(language, 'read_more')} {topic.links[0]}")
    return "\n\n".join(parts)


async def answer_question(ctx: "Context", question: str) -> list[Reply]:
    answer = compose(ctx.assistant, question, ctx.language)
    if answer.topic_id is None:
        ctx.assistant.notify_unanswered(question, ctx.language)
    else:
        ctx.assistant.notify_answered(answer.topic_id, ctx.language)
    return ctx.say(answer.text, *answer.choices)


async def show_topic(ctx: "Context", topic_id: str) -> list[Reply]:
    topic = ctx.assistant.knowledge.get(topic_id)
    if topic is None:
        return ctx.reply("choice_expired")
    return ctx.say(topic_text(ctx.assistant, topic, ctx.language))


async def list_topics(ctx: "Context", args: str) -> list[Reply]:
    choices = [_topic_choice(ctx.assistant, t.id, ctx.language) for t in ctx.assistant.knowledge]
    return ctx.reply("topics_intro", *choices)


def _topic_choice(assistant: "Assistant", topic_id: str, language: str) -> Choice:
    topic = assistant.knowledge.get(topic_id)
    label = topic.text(language).title if topic else topic_id
    return Choice(label, f"topic:{topic_id}")
