"""The audit log: every admin action with its actor, target and values before and after.

Features record through `assistant.audit(actor, action, target, before, after)`;
owners read the latest entries with `/audit [n]`.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from .commands import Command, private_only
from .curation import local_time, snippet
from .messages import Reply
from .store.admin import AuditLog

if TYPE_CHECKING:
    from .context import Context
    from .core import Assistant

logger = logging.getLogger(__name__)

DEFAULT_ENTRIES = 10
MAX_ENTRIES = 50
VALUE_CHARS = 60


def register(assistant: "Assistant") -> None:
    log = AuditLog(assistant.db)
    assistant.audit_log = log

    def audit(actor: str, action: str, target: str, before: str = "", after: str = "") -> None:
        log.record(actor, action, target, before, after)
        logger.info("audit: %s %s", action, target)

    assistant.audit = audit
    assistant.commands.add(Command("audit", private_only(show_audit, "admin_private_only"),
                                   "admin_help_audit",
                                   aliases=("loki", "logg"), role="owner"))


async def show_audit(ctx: "Context", args: str) -> list[Reply]:
    """`/audit [n]`: the latest n entries, newest first (private chats only)."""
    word = args.strip()
    if word and not word.isdigit():
        return ctx.reply("admin_audit_usage", max=MAX_ENTRIES)
    count = min(max(int(word or DEFAULT_ENTRIES), 1), MAX_ENTRIES)
    entries = ctx.assistant.audit_log.latest(count)
    if not entries:
        return ctx.reply("admin_audit_empty")
    lines = [ctx.t("admin_audit_intro", count=len(entries))]
    for entry in entries:
        change = " → ".join(snippet(v, VALUE_CHARS) or "–" for v in (entry.before, entry.after))
        lines.append(ctx.t("admin_audit_item", time=local_time(ctx, entry.created_at),
                           actor=entry.actor, action=entry.action, target=entry.target,
                           change=change))
    return ctx.say("\n".join(lines))
