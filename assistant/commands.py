"""The one command table: names, aliases, required role, help line and handler.

Every feature registers its commands, button handlers and dialogue steps here, so
`/help` is rendered from the table and never drifts from what exists.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Awaitable, Callable

if TYPE_CHECKING:
    from .context import Context
    from .messages import Reply

Handler = Callable[["Context", str], Awaitable[list["Reply"]]]

PREFIXES = ("/", "!")
_COMMAND = re.compile(r"^[/!]([A-Za-z0-9_äöåÄÖÅ]{1,32})(?:@([A-Za-z0-9_]+))?(?:\s+(.*))?$", re.DOTALL)

ROLES = ("owner", "editor", "moderator")


@dataclass(frozen=True)
class Command:
    """One chat command. `role` None means anyone; otherwise the role (or any of the roles)
    that may use it. Owners may use every command."""

    name: str
    handler: Handler
    help_key: str = ""
    aliases: tuple[str, ...] = ()
    role: str | tuple[str, ...] | None = None
    hidden: bool = False

    @property
    def names(self) -> tuple[str, ...]:
        return (self.name, *self.aliases)


def private_only(handler: Handler, refusal: str = "private_chat_only") -> Handler:
    """Wraps a handler that must never answer in a group (a resident's own data, admin work);
    a group gets the text `refusal` instead, so each feature can say why in its own words."""

    async def guarded(ctx: "Context", args: str) -> list["Reply"]:
        if ctx.incoming.group:
            return ctx.reply(refusal)
        return await handler(ctx, args)

    guarded.__doc__ = handler.__doc__
    return guarded


def allowed(role: str | tuple[str, ...] | None, roles: set[str]) -> bool:
    """May someone holding `roles` use a command that needs `role`?"""
    needed = (role,) if isinstance(role, str) else role
    return needed is None or "owner" in roles or bool(roles.intersection(needed))


@dataclass(frozen=True)
class ParsedCommand:
    """`/name@bot args` split up; `name` lower-cased."""

    name: str
    args: str
    bot: str = ""


def parse(text: str) -> ParsedCommand | None:
    """Split a `/name` or `!name` command; None when the text is not a command."""
    match = _COMMAND.match(text.strip())
    if not match:
        return None
    return ParsedCommand(match.group(1).lower(), (match.group(3) or "").strip(), match.group(2) or "")


class CommandTable:
    """Commands by every name, button handlers by prefix, dialogue steps by flow name."""

    def __init__(self) -> None:
        self._commands: list[Command] = []
        self._by_name: dict[str, Command] = {}
        self._choices: dict[str, Handler] = {}
        self._flows: dict[str, Handler] = {}

    def add(self, command: Command) -> None:
        for name in command.names:
            if name in self._by_name:
                raise ValueError(f"command name {name!r} is registered twice")
            self._by_name[name] = command
        self._commands.append(command)

    def find(self, name: str) -> Command | None:
        return self._by_name.get(name.lower())

    def visible(self, roles: set[str]) -> list[Command]:
        """Commands shown in /help to someone holding `roles`."""
        return [c for c in self._commands if not c.hidden and allowed(c.role, roles)]

    def all(self) -> list[Command]:
        return list(self._commands)

    def on_choice(self, prefix: str, handler: Handler) -> None:
        """Buttons whose value is `prefix:argument` go to `handler(ctx, argument)`."""
        self._choices[prefix] = handler

    def choice_handler(self, value: str) -> tuple[Handler, str] | None:
        prefix, _, argument = value.partition(":")
        handler = self._choices.get(prefix)
        return (handler, argument) if handler else None

    def on_flow(self, flow: str, handler: Handler) -> None:
        """While a resident is in `flow`, their free text goes to `handler(ctx, text)`."""
        self._flows[flow] = handler

    def flow_handler(self, flow: str) -> Handler | None:
        return self._flows.get(flow)
