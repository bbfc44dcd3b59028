"""Platform-neutral messages: what adapters hand to the core and what they get back."""

from __future__ import annotations

from dataclasses import dataclass, field

LANGUAGES = ("fi", "sv", "en")


@dataclass(frozen=True)
class Choice:
    """A button (Telegram) or numbered option (Matrix, console): `label` shown, `value` sent back."""

    label: str
    value: str


@dataclass(frozen=True)
class Incoming:
    """One message or button press from a resident, as the core sees it.

    `choice` is the value of a pressed button; `text` is free text or a command.
    `language_hint` is the platform's idea of the resident's language (may be empty).
    `is_admin` is filled in by the core, never trusted from an adapter.
    `kind` is "text" for ordinary messages; adapters pass e.g. "sticker", "file",
    "location", "voice", "edit" for content the assistant does not read.
    `group` tells that the chat is shared with others: private data is never sent there.
    """

    platform: str
    user_id: str
    chat_id: str
    text: str = ""
    choice: str | None = None
    language_hint: str = ""
    is_admin: bool = False
    kind: str = "text"
    group: bool = False
    message_id: str = ""

    @property
    def address(self) -> str:
        """Platform-qualified user id, as used in ASSISTANT_ADMINS (`telegram:123`)."""
        return f"{self.platform}:{self.user_id}"


@dataclass(frozen=True)
class Reply:
    """One message back to the chat the resident wrote from (or to `chat_id` when set).

    `text` is plain text: adapters escape it for their markup. `choices` become buttons
    or numbered options. `reply_to` names the incoming message id being answered.
    `platform`/`chat_id` are set when the reply goes to another chat (an admin notice,
    an admin's answer delivered to a resident).
    """

    text: str
    choices: tuple[Choice, ...] = ()
    reply_to: str = ""
    platform: str = ""
    chat_id: str = ""
    attachment_name: str = ""
    attachment: bytes = field(default=b"", repr=False)
