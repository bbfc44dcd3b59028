"""Send-rate limits per platform: overall, per chat and per group, plus pauses a platform asks for.

Telegram's bot FAQ counts "no more than 30 messages per second" overall and "20
messages per minute" per group, so both are sliding windows here: they never
exceed the count in any window, as a token bucket with a burst could. A private
chat gets at most one message per `per_chat_interval_seconds`.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass
from typing import Callable

# Keep a little below the limits: we count a message when its send starts, the platform
# when it arrives, and a busy event loop or network can shift one against the other.
MARGIN_SECONDS = 0.05


@dataclass(frozen=True)
class RateLimit:
    """One platform's limits; None switches that limit off."""

    per_second_global: float | None = 30.0
    per_chat_interval_seconds: float = 1.0
    per_group_per_minute: float | None = 20.0


TELEGRAM = RateLimit(per_second_global=30.0, per_chat_interval_seconds=1.0,
                     per_group_per_minute=20.0)
# Synapse's limits are set per homeserver (rc_message); obey its M_LIMIT_EXCEEDED instead.
MATRIX = RateLimit(per_second_global=None, per_chat_interval_seconds=0.0,
                   per_group_per_minute=None)
DEFAULT_LIMITS: dict[str, RateLimit] = {"telegram": TELEGRAM, "matrix": MATRIX}


def is_group_chat(chat_id: str) -> bool:
    """Telegram groups and channels have negative ids or an @username."""
    return chat_id.startswith(("-", "@"))


class SlidingWindow:
    """At most `limit` events in any `span` seconds."""

    def __init__(self, limit: int, span: float):
        self.limit, self.span = max(1, int(limit)), span + MARGIN_SECONDS
        self._times: deque[float] = deque()

    def wait(self, now: float) -> float:
        """Seconds until one more event fits; 0 when it fits now."""
        while self._times and self._times[0] <= now - self.span:
            self._times.popleft()
        if len(self._times) < self.limit:
            return 0.0
        return self._times[-self.limit] + self.span - now

    def record(self, now: float) -> None:
        self._times.append(now)

    def idle(self, now: float) -> bool:
        return not self._times or self._times[-1] <= now - self.span


class PlatformLimiter:
    """The limits of one platform, kept in memory by one sender."""

    def __init__(self, limit: RateLimit, clock: Callable[[], float] = time.monotonic):
        self.limit, self.clock = limit, clock
        self.lock = asyncio.Lock()  # FIFO: senders take overall slots in claim order
        self.paused_until = 0.0
        self._global = (SlidingWindow(int(limit.per_second_global), 1.0)
                        if limit.per_second_global else None)
        self._chat_next: dict[str, float] = {}
        self._groups: dict[str, SlidingWindow] = {}

    def pause(self, seconds: float) -> None:
        """The platform said wait (a 429, M_LIMIT_EXCEEDED): nothing goes out until then."""
        self.paused_until = max(self.paused_until, self.clock() + seconds)

    def chat_wait(self, chat_id: str, now: float) -> float:
        """Seconds until this chat may get its next message."""
        wait = self._chat_next.get(chat_id, 0.0) - now
        group = self._groups.get(chat_id)
        if group is not None:
            wait = max(wait, group.wait(now))
        return max(0.0, wait)

    def overall_wait(self, now: float) -> float:
        """Seconds until the platform as a whole may take one more message."""
        wait = self.paused_until - now
        if self._global is not None:
            wait = max(wait, self._global.wait(now))
        return max(0.0, wait)

    def record(self, chat_id: str, now: float) -> None:
        """Count one message to `chat_id` sent at `now`."""
        if self._global is not None:
            self._global.record(now)
        if self.limit.per_chat_interval_seconds > 0:
            self._chat_next[chat_id] = now + self.limit.per_chat_interval_seconds + MARGIN_SECONDS
        if self.limit.per_group_per_minute and is_group_chat(chat_id):
            window = self._groups.setdefault(
                chat_id, SlidingWindow(int(self.limit.per_group_per_minute), 60.0))
            window.record(now)

    def forget_idle(self, now: float) -> None:
        """Drop the state of chats that may be written to again, so memory stays small."""
        self._chat_next = {c: t for c, t in self._chat_next.items() if t > now}
        self._groups = {c: w for c, w in self._groups.items() if not w.idle(now)}
