"""What a handler knows about the message it is answering: who, in which language, with what."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .commands import allowed
from .messages import Choice, Incoming, Reply
from .store.residents import Resident

if TYPE_CHECKING:
    from .core import Assistant


@dataclass
class Context:
    """Per-message context handed to every command, button and dialogue handler."""

    incoming: Incoming
    resident: Resident
    language: str
    assistant: "Assistant"
    roles: set[str] = field(default_factory=set)

    def t(self, key: str, **values: object) -> str:
        """A catalogue text in the resident's language."""
        return self.assistant.texts.get(self.language, key, **values)

    def reply(self, key: str, *choices: Choice, **values: object) -> list[Reply]:
        """A one-message answer from the catalogue, with optional buttons."""
        return [Reply(self.t(key, **values), choices=tuple(choices),
                      reply_to=self.incoming.message_id)]

    def say(self, text: str, *choices: Choice) -> list[Reply]:
        """A one-message answer whose text is already composed."""
        return [Reply(text, choices=tuple(choices), reply_to=self.incoming.message_id)]

    def has_role(self, role: str | tuple[str, ...] | None) -> bool:
        """Owners may do everything; others need the named role (or one of them)."""
        return allowed(role, self.roles)

    @property
    def is_admin(self) -> bool:
        return bool(self.roles)
