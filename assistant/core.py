"""The conversational core: one entry point from an `Incoming` to the replies.

It knows nothing of Telegram or Matrix. It resolves the resident and their
language, then hands the message to a command, a pressed choice, an unfinished
dialogue or the knowledge base, in that order. Expected failures become replies.
"""

from __future__ import annotations

import logging
from typing import Awaitable, Callable

from . import admin, answers, basics, commands, feedback, flood, news, privacy, textnorm
from .commands import CommandTable
from .context import Context
from .knowledge import KnowledgeBase, load
from .languages import LanguageGuesser
from .matcher import Matcher
from .messages import LANGUAGES, Incoming, Reply
from .settings import Settings
from .store.db import Database
from .store.residents import Flow, Residents
from .texts import Texts

logger = logging.getLogger(__name__)

MAX_MESSAGE_CHARS = 4100  # a 4,000-character feedback text plus its command fits
FEATURES: list[Callable[["Assistant"], None]] = [basics.register, answers.register,
                                                 feedback.register, news.register,
                                                 privacy.register, admin.register]
RoleResolver = Callable[[Incoming], set[str]]
TextIntent = Callable[[Context, str], Awaitable["list[Reply] | None"]]  # None: not mine


class Assistant:
    """Wires knowledge, storage, texts and the command table; `handle()` answers a message."""

    def __init__(self, settings: Settings, db: Database | None = None,
                 knowledge: KnowledgeBase | None = None, texts: Texts | None = None):
        self.settings = settings
        self.db = db or Database(settings.database_url)
        self.db.create_all()
        self.texts = texts or Texts()
        self.residents = Residents(self.db)
        self.commands = CommandTable()
        self.flood = flood.FloodGuard()  # tests swap in a clock or a higher limit
        self.role_resolvers: list[RoleResolver] = [self._owners]
        self.knowledge_overlays: list[Callable[[KnowledgeBase], KnowledgeBase]] = []
        self.unanswered_listeners: list[Callable[[str, str], None]] = []
        self.answered_listeners: list[Callable[[str, str], None]] = []  # (topic id, language)
        self.handled_listeners: list[Callable[[Incoming], None]] = []  # every message (metrics)
        self.text_intents: list[TextIntent] = []  # e.g. "haluan antaa palautetta" -> the form
        self._file_knowledge = knowledge or load(settings.knowledge_dir)
        self.knowledge = self._file_knowledge
        self.languages = LanguageGuesser(self.knowledge)
        for register in FEATURES:
            register(self)
        self.reload_knowledge()  # builds the matcher once every feature's overlay is in

    def reload_knowledge(self) -> None:
        """Re-apply chat edits (revisions, added phrasings) over the curated files."""
        knowledge = self._file_knowledge
        for overlay in self.knowledge_overlays:
            knowledge = overlay(knowledge)
        self.knowledge = knowledge
        self.matcher = Matcher(knowledge)

    def roles_of(self, incoming: Incoming) -> set[str]:
        roles: set[str] = set()
        for resolver in self.role_resolvers:
            roles |= resolver(incoming)
        return roles

    def _owners(self, incoming: Incoming) -> set[str]:
        return {"owner"} if incoming.address in self.settings.admins else set()

    async def handle(self, incoming: Incoming) -> list[Reply]:
        """Answer one message; never raises for anything a resident can send."""
        try:
            for listener in self.handled_listeners:
                listener(incoming)
            flooded = flood.screen(self, incoming)
            if flooded is not None:
                return flooded
            return await self._handle(incoming)
        except Exception:
            logger.exception("handling a %s message failed", incoming.platform)
            lang = incoming.language_hint if incoming.language_hint in LANGUAGES else "fi"
            return [Reply(self.texts.get(lang, "internal_error"))]

    async def _handle(self, incoming: Incoming) -> list[Reply]:
        ctx, flow, offered = self._arrive(incoming)
        replies = await self._route(ctx, flow, offered)
        self._remember_choices(ctx, replies, offered)
        return replies

    async def _route(self, ctx: Context, flow: Flow | None,
                     offered: list[tuple[str, str]]) -> list[Reply]:
        incoming = ctx.incoming
        if incoming.kind == "encrypted":
            return ctx.reply("encrypted_unreadable")
        if incoming.kind != "text":
            return ctx.reply("unsupported_content")
        if len(incoming.text) > MAX_MESSAGE_CHARS:
            return ctx.reply("message_too_long", limit=MAX_MESSAGE_CHARS)
        if incoming.choice:
            return await self._dispatch_choice(ctx, incoming.choice)
        text = incoming.text.strip()
        parsed = commands.parse(text)
        if parsed is not None:
            return await self._dispatch_command(ctx, parsed)
        picked = _typed_choice(offered, text)
        if picked:
            return await self._dispatch_choice(ctx, picked)
        if not textnorm.normalise(text):
            return ctx.reply("empty_message")
        if flow is not None:
            handler = self.commands.flow_handler(flow.name)
            if handler is not None:
                return await handler(ctx, text)
        for intent in self.text_intents:
            replies = await intent(ctx, text)
            if replies:
                return replies
        return await answers.answer_question(ctx, text)

    def context_for(self, incoming: Incoming) -> Context:
        """Find or create the resident and settle the language of this reply."""
        return self._arrive(incoming)[0]

    def _arrive(self, incoming: Incoming) -> tuple[Context, Flow | None, list[tuple[str, str]]]:
        """The context, the open dialogue and the choices last offered: one read per message."""
        hint = incoming.language_hint[:2].lower()
        first_language = hint if hint in LANGUAGES else self.settings.default_language
        private_chat = None if incoming.group else incoming.chat_id
        arrival = self.residents.arrive(
            incoming.platform, incoming.user_id, private_chat, first_language)
        resident = arrival.resident
        language = resident.language
        is_command = commands.parse(incoming.text) is not None
        if not resident.language_chosen and incoming.text and not incoming.choice and not is_command:
            language = self.languages.guess(incoming.text) or language
        ctx = Context(incoming, resident, language, self, self.roles_of(incoming))
        return ctx, arrival.flow, arrival.offered

    async def _dispatch_command(self, ctx: Context, parsed: commands.ParsedCommand) -> list[Reply]:
        command = self.commands.find(parsed.name)
        if command is None or not ctx.has_role(command.role):
            return ctx.reply("unknown_command", command=parsed.name[:32])
        return await command.handler(ctx, parsed.args)

    async def _dispatch_choice(self, ctx: Context, value: str) -> list[Reply]:
        found = self.commands.choice_handler(value)
        if found is None:
            return ctx.reply("choice_expired")
        handler, argument = found
        return await handler(ctx, argument)

    def _remember_choices(self, ctx: Context, replies: list[Reply],
                          before: list[tuple[str, str]]) -> None:
        """Keep the options of the last reply to this chat, so a typed number can pick one."""
        own = [r for r in replies if not r.chat_id]
        offered = [(c.label, c.value) for c in own[-1].choices] if own else []
        if offered:
            self.residents.set_offered_choices(ctx.resident.id, offered)
        elif before:
            self.residents.clear_offered_choices(ctx.resident.id)

    def notify_unanswered(self, text: str, language: str) -> None:
        for listener in self.unanswered_listeners:
            listener(text, language)

    def notify_answered(self, topic_id: str, language: str) -> None:
        for listener in self.answered_listeners:
            listener(topic_id, language)


def _typed_choice(offered: list[tuple[str, str]], text: str) -> str | None:
    """A number or label typed in answer to numbered options (Matrix, console)."""
    if not offered or not text:
        return None
    if text.isdigit() and 1 <= int(text) <= len(offered):
        return offered[int(text) - 1][1]
    lowered = text.casefold()
    return next((value for label, value in offered if label.casefold() == lowered), None)
