"""Matrix event content, both ways: replies as m.notice / m.file, events as text and kind.

Pure functions over plain dicts (the `content` of a Matrix event), so they are
tested with recorded event JSON and no homeserver.
"""

from __future__ import annotations

import html
import mimetypes
import re
from typing import Any

from assistant.commands import parse as parse_command
from assistant.messages import Reply

NOTICE = "m.notice"  # Matrix spec: bots answer with m.notice so other bots do not answer them
HTML = "org.matrix.custom.html"
# msgtype -> Incoming.kind for content the assistant does not read.
MEDIA_KINDS = {"m.image": "file", "m.file": "file", "m.audio": "file", "m.video": "file",
               "m.location": "location"}
TEXT_TYPES = {"m.text", "m.emote"}
_REPLY_FALLBACK = re.compile(r"\A(?:> [^\n]*\n|>\n)+\n?")
_MX_REPLY = re.compile(r"<mx-reply>.*?</mx-reply>", re.DOTALL)


# ------------------------------------------------------------------ outgoing

def reply_text(reply: Reply) -> str:
    """The plain body: the text, then the choices numbered so a typed number picks one."""
    lines = [reply.text] if reply.text else []
    if reply.choices:
        lines.append("\n".join(f"{n}. {c.label}" for n, c in enumerate(reply.choices, start=1)))
    return "\n\n".join(lines)


def to_html(text: str) -> str:
    """Plain text as safe HTML: everything escaped, line breaks kept."""
    return html.escape(text).replace("\n", "<br>")


def notice_content(reply: Reply, in_reply_to: str = "") -> dict[str, Any]:
    """An m.notice with the plain body and its HTML twin; optionally a reply to an event."""
    body = reply_text(reply)
    content: dict[str, Any] = {"msgtype": NOTICE, "body": body, "format": HTML,
                               "formatted_body": to_html(body)}
    if in_reply_to.startswith("$"):
        content["m.relates_to"] = {"m.in_reply_to": {"event_id": in_reply_to}}
    return content


def mimetype_of(name: str) -> str:
    return mimetypes.guess_type(name)[0] or "application/octet-stream"


def file_content(name: str, size: int, url: str,
                 encryption: dict[str, Any] | None = None) -> dict[str, Any]:
    """An m.file; in an encrypted room the uploaded ciphertext is described under `file`."""
    content: dict[str, Any] = {"msgtype": "m.file", "body": name, "filename": name,
                               "info": {"mimetype": mimetype_of(name), "size": size}}
    if encryption is None:
        content["url"] = url
    else:
        content["file"] = {**encryption, "url": url}
    return content


# ------------------------------------------------------------------ incoming

def event_kind(event_type: str, content: dict[str, Any]) -> str | None:
    """"text", "edit", "file", "location", "sticker" or "other"; None for what we never answer."""
    if event_type == "m.sticker":
        return "sticker"
    if event_type != "m.room.message":
        return None
    relation = content.get("m.relates_to") or {}
    if isinstance(relation, dict) and relation.get("rel_type") == "m.replace":
        return "edit"
    msgtype = content.get("msgtype")
    if msgtype == NOTICE:
        return None  # another bot, or a server notice
    if msgtype in TEXT_TYPES:
        return "text"
    return MEDIA_KINDS.get(str(msgtype), "other")


def message_text(content: dict[str, Any]) -> str:
    """The body without the quoted fallback a reply carries (Matrix spec: rich replies)."""
    body = str(content.get("body") or "")
    relation = content.get("m.relates_to") or {}
    if isinstance(relation, dict) and "m.in_reply_to" in relation:
        body = _REPLY_FALLBACK.sub("", body, count=1)
    return body.strip()


def is_command(text: str) -> bool:
    return parse_command(text) is not None


def mentions(content: dict[str, Any], user_id: str, names: tuple[str, ...] = ()) -> bool:
    """Whether the event addresses the bot: m.mentions, a pill link, its id or display name."""
    declared = content.get("m.mentions") or {}
    if isinstance(declared, dict) and user_id in (declared.get("user_ids") or ()):
        return True
    formatted = _MX_REPLY.sub("", str(content.get("formatted_body") or ""))
    if f"matrix.to/#/{user_id}" in formatted or f"matrix.to/#/{_escaped_id(user_id)}" in formatted:
        return True
    body = message_text(content)
    return any(_name_pattern(name).search(body) for name in (user_id, *names) if name)


def strip_mention(text: str, user_id: str, names: tuple[str, ...] = ()) -> str:
    """'Espoo-botti: miten vaikutan?' -> 'miten vaikutan?'."""
    for name in (user_id, *names):
        if name:
            text = _name_pattern(name).sub("", text)
    text = re.sub(r"[ \t]{2,}", " ", text)
    return text.strip().lstrip(",:;").strip()


def invite_allowed(inviter: str, allowed_servers: frozenset[str]) -> bool:
    """Invites from anyone, or only from users on MATRIX_ALLOWED_SERVERS when it is set."""
    return not allowed_servers or server_of(inviter) in allowed_servers


def server_of(user_id: str) -> str:
    """'@anna:espoo.fi' -> 'espoo.fi' (a port, if any, stays part of the name)."""
    return user_id.partition(":")[2].lower()


def _escaped_id(user_id: str) -> str:
    return user_id.replace("@", "%40").replace(":", "%3A")


def _name_pattern(name: str) -> re.Pattern[str]:
    return re.compile(rf"(?<![\w@]){re.escape(name)}(?![\w-]|\.\w)", re.IGNORECASE)
