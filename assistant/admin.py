"""Roles by chat: owners (ASSISTANT_ADMINS) grant and revoke editors and moderators.

People are named by what their platform cannot reassign: numeric Telegram user ids
and full Matrix user ids, never usernames. A moderator's role may be limited to
districts (`role_scopes`), which the news feature checks before a post.
Registering this feature also registers the rest of admin curation.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING

from . import audit, curation, stats, unanswered
from .commands import Command, private_only
from .curation_text import local_time, split_word
from .messages import Incoming, Reply
from .store.admin import Role, Roles

if TYPE_CHECKING:
    from .context import Context
    from .core import Assistant
    from .districts import District

logger = logging.getLogger(__name__)

GRANTABLE = ("editor", "moderator")
ROLE_WORDS = {"editor": "editor", "toimittaja": "editor", "redaktör": "editor",
              "redaktor": "editor", "moderator": "moderator", "moderaattori": "moderator"}
WORDS = {"add": "add", "lisää": "add", "lisaa": "add", "lägg": "add", "lagg": "add",
         "remove": "remove", "poista": "remove", "ta": "remove", "radera": "remove",
         "list": "list", "lista": "list", "listaa": "list"}
FILLERS = {"till", "bort"}
_ADDRESS = re.compile(r"^(?:telegram:\d{1,20}|matrix:@[A-Za-z0-9._=\-/+]+:"
                      r"(?:[A-Za-z0-9.\-]+|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?)$")


def register(assistant: "Assistant") -> None:
    grants = Roles(assistant.db)
    assistant.role_grants = grants
    assistant.role_resolvers.append(
        lambda incoming: {r.role for r in grants.of(incoming.platform, incoming.user_id)})
    assistant.role_scopes = lambda incoming, role: role_scopes(assistant, incoming, role)
    audit.register(assistant)
    assistant.commands.add(Command("admin", private_only(admin_command, "admin_private_only"),
                                   "admin_help_admin", aliases=("roolit", "roller"), role="owner"))
    curation.register(assistant)
    unanswered.register(assistant)
    stats.register(assistant)


def role_scopes(assistant: "Assistant", incoming: Incoming, role: str) -> set[str] | None:
    """District ids where the sender holds `role`; None for everywhere, empty for nowhere."""
    roles = assistant.roles_of(incoming)
    if "owner" in roles:
        return None
    grants = [g for g in assistant.role_grants.of(incoming.platform, incoming.user_id)
              if g.role == role]
    if not grants:
        return None if role in roles else set()  # a role from elsewhere has no districts
    if any(g.district_id is None for g in grants):
        return None
    return {g.district_id for g in grants if g.district_id}


async def admin_command(ctx: "Context", args: str) -> list[Reply]:
    """`/admin add|remove|list`: owners only (the command table checks), private chats only."""
    word, rest = split_word(args)
    action = WORDS.get(word.casefold())
    filler, after = split_word(rest)
    if filler.casefold() in FILLERS:  # "lägg till", "ta bort"
        rest = after
    if action == "add":
        return add(ctx, rest)
    if action == "remove":
        return remove(ctx, rest)
    if action == "list" and not rest:
        return list_roles(ctx)
    return ctx.reply("admin_roles_usage")


def add(ctx: "Context", rest: str) -> list[Reply]:
    """`/admin add <platform:id> editor|moderator [district]`."""
    parts = rest.split(maxsplit=2)
    if len(parts) < 2:
        return ctx.reply("admin_roles_usage")
    address, role = parts[0], ROLE_WORDS.get(parts[1].casefold())
    if not _ADDRESS.match(address):
        return ctx.reply("admin_roles_bad_id", given=address[:80])
    if role is None:
        return ctx.reply("admin_roles_bad_role", given=parts[1][:32])
    district = None
    if len(parts) == 3:
        if role != "moderator":
            return ctx.reply("admin_roles_district_editor")
        district = find_district(ctx.assistant, parts[2])
        if district is None:
            return ctx.reply("admin_roles_district_unknown", given=parts[2][:40])
    platform, _, user_id = address.partition(":")
    district_id = district.id if district else None
    added = ctx.assistant.role_grants.grant(platform, user_id, role, district_id,
                                            ctx.incoming.address)
    scope = scope_name(ctx, district_id)
    if not added:
        return ctx.reply("admin_roles_exists", who=address, role=role_name(ctx, role), scope=scope)
    ctx.assistant.audit(ctx.incoming.address, "role.add", address, "",
                        f"{role} {district_id or '*'}")
    logger.info("role %s granted (%s)", role, district_id or "all districts")
    return ctx.reply("admin_roles_added", who=address, role=role_name(ctx, role), scope=scope)


def remove(ctx: "Context", rest: str) -> list[Reply]:
    """`/admin remove <platform:id> [role] [district]`: every matching grant."""
    parts = rest.split(maxsplit=2)
    if not parts:
        return ctx.reply("admin_roles_usage")
    address = parts[0]
    if not _ADDRESS.match(address):
        return ctx.reply("admin_roles_bad_id", given=address[:80])
    role = ROLE_WORDS.get(parts[1].casefold()) if len(parts) > 1 else None
    if len(parts) > 1 and role is None:
        return ctx.reply("admin_roles_bad_role", given=parts[1][:32])
    district = find_district(ctx.assistant, parts[2]) if len(parts) == 3 else None
    if len(parts) == 3 and district is None:
        return ctx.reply("admin_roles_district_unknown", given=parts[2][:40])
    platform, _, user_id = address.partition(":")
    removed = ctx.assistant.role_grants.revoke(platform, user_id, role,
                                               district.id if district else None)
    if not removed:
        return ctx.reply("admin_roles_none_removed", who=address)
    ctx.assistant.audit(ctx.incoming.address, "role.remove", address,
                        ", ".join(f"{r.role} {r.district_id or '*'}" for r in removed), "")
    logger.info("%d role grant(s) revoked", len(removed))
    return ctx.reply("admin_roles_removed", who=address, count=len(removed))


def list_roles(ctx: "Context") -> list[Reply]:
    lines = [ctx.t("admin_roles_list_intro")]
    owners = sorted(ctx.assistant.settings.admins)
    lines += [ctx.t("admin_roles_list_owner", who=who) for who in owners]
    grants = ctx.assistant.role_grants.all()
    lines += [_grant_line(ctx, g) for g in grants]
    if not grants:
        lines.append(ctx.t("admin_roles_list_empty"))
    return ctx.say("\n".join(lines))


def _grant_line(ctx: "Context", grant: Role) -> str:
    return ctx.t("admin_roles_list_item", who=f"{grant.platform}:{grant.platform_id}",
                 role=role_name(ctx, grant.role), scope=scope_name(ctx, grant.district_id),
                 by=grant.granted_by, time=local_time(ctx, grant.granted_at))


def find_district(assistant: "Assistant", text: str) -> "District | None":
    """A district by id or by a name that names exactly one."""
    desk = getattr(assistant, "news_desk", None)
    if desk is None:
        return None
    text = text.strip()
    found = desk.district(text.lower()) or desk.exact(text)
    if found is None:
        found = desk.gazetteer.resolve(text).district
    return found


def role_name(ctx: "Context", role: str) -> str:
    return ctx.t(f"admin_role_{role}")


def scope_name(ctx: "Context", district_id: str | None) -> str:
    if not district_id:
        return ctx.t("admin_scope_all")
    desk = getattr(ctx.assistant, "news_desk", None)
    return desk.label(district_id, ctx.language) if desk else district_id
