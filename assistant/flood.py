"""Per-resident flood control: one polite "slow down", then silence for a while.

A resident (or a script) sending more than `limit` messages within `window`
seconds gets one answer asking them to slow down, then nothing until `silence`
seconds have passed, so one busy sender cannot hog the bot or the database.
Each (platform, user) has its own window, kept in memory: a restart forgets it,
which is harmless. Messages that arrive while silenced still count, so a
sender who keeps flooding stays quiet.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Callable

from .messages import LANGUAGES, Incoming, Reply

if TYPE_CHECKING:
    from .core import Assistant

LIMIT = 20  # messages ...
WINDOW_SECONDS = 60.0  # ... within this many seconds
SILENCE_SECONDS = 60.0
SWEEP_EVERY = 1000  # checks between sweeps of idle senders, so memory stays small

Key = tuple[str, str]


class Verdict(str, Enum):
    """What to do with one message."""

    OK = "ok"  # answer it
    WARN = "warn"  # the limit was just crossed: say "slow down" once
    SILENT = "silent"  # still flooding: no answer at all


@dataclass
class _Sender:
    """The latest arrival times (at most limit + 1 of them) and the end of any silence."""

    times: deque[float]
    silent_until: float = field(default=0.0)


class FloodGuard:
    """Sliding windows per sender; `clock` is injectable for tests (seconds, monotonic)."""

    def __init__(self, limit: int = LIMIT, window: float = WINDOW_SECONDS,
                 silence: float = SILENCE_SECONDS, clock: Callable[[], float] = time.monotonic):
        self.limit, self.window, self.silence, self.clock = max(1, limit), window, silence, clock
        self._senders: dict[Key, _Sender] = {}
        self._checks = 0

    def check(self, key: Key) -> Verdict:
        """Count one message from `key` and say whether to answer it."""
        now = self.clock()
        self._sweep(now)
        sender = self._senders.setdefault(key, _Sender(deque(maxlen=self.limit + 1)))
        sender.times.append(now)
        if now < sender.silent_until:
            return Verdict.SILENT
        if len(sender.times) > self.limit and sender.times[0] > now - self.window:
            sender.silent_until = now + self.silence
            return Verdict.WARN
        return Verdict.OK

    def tracked(self) -> int:
        """How many senders are remembered (for tests of the sweep)."""
        return len(self._senders)

    def _sweep(self, now: float) -> None:
        self._checks += 1
        if self._checks % SWEEP_EVERY:
            return
        self._senders = {key: s for key, s in self._senders.items()
                         if s.silent_until > now or s.times[-1] > now - self.window}


def screen(assistant: "Assistant", incoming: Incoming) -> list[Reply] | None:
    """None when the message may be answered; otherwise the replies instead (maybe none)."""
    guard: FloodGuard | None = getattr(assistant, "flood", None)
    if guard is None or incoming.address in assistant.settings.admins:  # owners are trusted
        return None
    verdict = guard.check((incoming.platform, incoming.user_id))
    if verdict is Verdict.OK:
        return None
    if verdict is Verdict.SILENT:
        return []
    return [Reply(assistant.texts.get(_language(assistant, incoming), "flood_slow_down",
                                      seconds=int(guard.silence)),
                  reply_to=incoming.message_id)]


def _language(assistant: "Assistant", incoming: Incoming) -> str:
    """The resident's language if known; no resident row is created for a flood."""
    resident = assistant.residents.find(incoming.platform, incoming.user_id)
    if resident is not None:
        return resident.language
    hint = incoming.language_hint[:2].lower()
    return hint if hint in LANGUAGES else assistant.settings.default_language
