"""Flood limits and injected faults for the fake Telegram server."""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass


class FloodLimiter:
    """Telegram's documented send limits (bots FAQ; PTB's `FloodLimit`).

    Per chat a token bucket (a short burst, then `chat_rate` messages a
    second), per group chat (negative id) at most `group_per_minute` in any
    60 s, and over all chats at most `global_per_second` in any second.
    """

    def __init__(
        self,
        clock: Callable[[], float],
        chat_burst: int = 3,
        chat_rate: float = 1.0,
        group_per_minute: int = 20,
        global_per_second: int = 30,
    ) -> None:
        self._clock = clock
        self.chat_burst = chat_burst
        self.chat_rate = chat_rate
        self.group_per_minute = group_per_minute
        self.global_per_second = global_per_second
        self._buckets: dict[int | str, tuple[float, float]] = {}
        self._groups: dict[int | str, deque[float]] = {}
        self._global: deque[float] = deque()

    def retry_after(self, chat_id: int | str) -> int:
        """Whole seconds until a message to `chat_id` is allowed; 0 when it is allowed now."""
        now = self._clock()
        wait = max(
            self._bucket_wait(chat_id, now), self._group_wait(chat_id, now), self._global_wait(now)
        )
        return max(1, math.ceil(wait)) if wait > 0 else 0

    def record(self, chat_id: int | str) -> None:
        """Count one message sent to `chat_id` now."""
        now = self._clock()
        tokens = self._tokens(chat_id, now)
        self._buckets[chat_id] = (tokens - 1, now)
        if _is_group(chat_id):
            self._groups.setdefault(chat_id, deque()).append(now)
        self._global.append(now)

    def _tokens(self, chat_id: int | str, now: float) -> float:
        tokens, last = self._buckets.get(chat_id, (float(self.chat_burst), now))
        return min(float(self.chat_burst), tokens + (now - last) * self.chat_rate)

    def _bucket_wait(self, chat_id: int | str, now: float) -> float:
        tokens = self._tokens(chat_id, now)
        return 0.0 if tokens >= 1 else (1 - tokens) / self.chat_rate

    def _group_wait(self, chat_id: int | str, now: float) -> float:
        window = self._groups.get(chat_id)
        if window is None:
            return 0.0
        return _window_wait(window, now, 60.0, self.group_per_minute)

    def _global_wait(self, now: float) -> float:
        return _window_wait(self._global, now, 1.0, self.global_per_second)


def _window_wait(window: deque[float], now: float, span: float, limit: int) -> float:
    """Seconds until a sliding window of `span` seconds holds fewer than `limit` entries."""
    while window and window[0] <= now - span:
        window.popleft()
    if len(window) < limit:
        return 0.0
    return window[-limit] + span - now


def _is_group(chat_id: int | str) -> bool:
    return isinstance(chat_id, int) and chat_id < 0


@dataclass
class Fault:
    """One injected misbehaviour for the next `count` calls of a method."""

    kind: str  # "fail", "delay" or "drop"
    count: int = 1
    status: int = 500
    description: str = "Internal Server Error"
    retry_after: int | None = None
    seconds: float = 0.0
    deliver: bool = False  # "drop": process the call, then lose the answer


class FaultPlan:
    """Queued faults per method (lower-cased), consumed in the order they were added."""

    def __init__(self) -> None:
        self._faults: dict[str, deque[Fault]] = {}

    def add(self, method: str, fault: Fault) -> None:
        self._faults.setdefault(method.lower(), deque()).append(fault)

    def take(self, method: str) -> Fault | None:
        """The fault for this call of `method`, if any; O(1) when none are queued."""
        queue = self._faults.get(method)
        if not queue:
            return None
        fault = queue[0]
        fault.count -= 1
        if fault.count <= 0:
            queue.popleft()
        return fault
