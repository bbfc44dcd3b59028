"""A chat in the terminal: the developer's adapter and the simplest faithful platform."""

from __future__ import annotations

import asyncio
import getpass
import sys
from typing import TextIO

from assistant.messages import Incoming, Reply
from assistant.platform import OnMessage

PROMPT = "> "


class ConsoleAdapter:
    """Reads lines from `stdin`, prints replies with choices as numbered options."""

    platform = "console"

    def __init__(self, stdin: TextIO = sys.stdin, stdout: TextIO = sys.stdout,
                 user_id: str | None = None, language: str = ""):
        self.stdin, self.stdout = stdin, stdout
        self.user_id = user_id or _local_user()
        self.language = language
        self._running = False

    async def start(self, on_message: OnMessage) -> None:
        """Run the read-answer loop until end of input or /quit."""
        self._running = True
        interactive = self.stdin.isatty()
        count = 0
        while self._running:
            if interactive:
                self.stdout.write(PROMPT)
                self.stdout.flush()
            line = await asyncio.to_thread(self.stdin.readline)
            if not line or line.strip() in ("/quit", "/exit", "!quit"):
                break
            count += 1
            await on_message(Incoming(platform=self.platform, user_id=self.user_id,
                                      chat_id=self.user_id, text=line.rstrip("\n"),
                                      language_hint=self.language, message_id=str(count)))

    async def stop(self) -> None:
        self._running = False

    async def send(self, chat_id: str, reply: Reply) -> str:
        self.stdout.write(render(reply, to=None if chat_id == self.user_id else chat_id))
        self.stdout.flush()
        return ""


def render(reply: Reply, to: str | None = None) -> str:
    """Plain text with numbered options; messages for other chats are labelled."""
    lines = [f"[to {to}]"] if to else []
    lines.append(reply.text)
    lines += [f"  {n}. {choice.label}" for n, choice in enumerate(reply.choices, start=1)]
    if reply.attachment_name:
        lines.append(f"  [file {reply.attachment_name}, {len(reply.attachment)} bytes]")
    return "\n".join(lines) + "\n\n"


def _local_user() -> str:
    try:
        return getpass.getuser()
    except Exception:
        return "local"
