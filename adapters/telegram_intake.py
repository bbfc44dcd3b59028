"""Durable intake of Telegram updates: stored before Telegram hears they arrived, marked
handled after their answers went out, replayed when the process that took them died.

PTB confirms updates in two ways, both after `update_queue.put(update)`: polling asks
getUpdates with an offset past the last batch put into the queue, and the webhook
answers 200 once `put` returns. So `IntakeBot.get_updates` stores each polled batch in
one transaction before the Updater sees it, and `IntakeQueue.put` stores a webhook
update (or drops a polled one known before) before it is queued; in webhook mode it
returns only once the update was handled, which keeps each chat's order across processes.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import OrderedDict
from collections.abc import Collection, Mapping, Sequence
from typing import Any, Protocol

from telegram import Update
from telegram._utils.types import JSONDict
from telegram.ext import ExtBot

from assistant.store.updates import Claimed, Entry

logger = logging.getLogger(__name__)
CLAIM_BATCH = 100  # pending updates claimed per transaction
# How long a webhook answer waits for its update to be handled; past it the update (stored)
# is confirmed anyway, rather than have Telegram time out and post it again.
WEBHOOK_HOLD_SECONDS = 30.0


class UpdateLog(Protocol):
    """Where updates are kept until handled (`assistant.store.updates.UpdateLog`)."""

    lease_seconds: float

    def take(self, entries: Sequence[Entry]) -> set[str]: ...
    def handled(self, keys: Collection[str]) -> None: ...
    def renew(self, keys: Collection[str]) -> None: ...
    def release(self, keys: Collection[str]) -> None: ...
    def claim_expired(self, exclude: Collection[str] = ..., limit: int = ...) -> list[Claimed]: ...


class RecentUpdates:
    """An `UpdateLog` in memory, for when no database is given: it drops redeliveries within
    one process (the last `capacity` update ids) and keeps nothing across a crash."""

    lease_seconds = 30.0

    def __init__(self, capacity: int = 10_000):
        self.capacity = capacity
        self._seen: OrderedDict[str, None] = OrderedDict()

    def take(self, entries: Sequence[Entry]) -> set[str]:
        new = set()
        for entry in entries:
            if entry.key in self._seen:
                self._seen.move_to_end(entry.key)
                continue
            new.add(entry.key)
            self._seen[entry.key] = None
            if len(self._seen) > self.capacity:
                self._seen.popitem(last=False)
        return new

    def handled(self, keys: Collection[str]) -> None:
        """Nothing to clear: no payload is kept."""

    def renew(self, keys: Collection[str]) -> None:
        """Nobody else could claim them."""

    def release(self, keys: Collection[str]) -> None:
        """Nothing survives the process."""

    def claim_expired(self, exclude: Collection[str] = (), limit: int = 100) -> list[Claimed]:
        return []


class Intake:
    """The adapter's side of the log: which updates this process holds, and what was taken."""

    def __init__(self, log: UpdateLog):
        self.log = log
        self.held: set[int] = set()  # taken or claimed here, not yet handled
        self._polled: dict[int, bool] = {}  # update id -> new, for the Updater's next puts
        self._waiting: dict[int, asyncio.Future[None]] = {}  # webhook updates not yet handled

    @property
    def sweep_seconds(self) -> float:
        """How often to renew our leases and look for a dead process's updates."""
        return self.log.lease_seconds / 3

    async def take_batch(self, updates: Sequence[Update],
                         raw: Mapping[int, JSONDict] | None = None) -> None:
        """A getUpdates batch, stored in one transaction before PTB may confirm it;
        `raw` is the JSON as Telegram sent it, by update id (else rebuilt from the objects)."""
        new = await self._take(updates, raw or {})
        self._polled.update((u.update_id, str(u.update_id) in new) for u in updates)

    def polled(self, update: Update) -> bool:
        """Whether the update came in a getUpdates batch (else by webhook)."""
        return update.update_id in self._polled

    async def admit(self, update: Update) -> bool:
        """True when the update is ours to handle; False for one taken in before."""
        new = self._polled.pop(update.update_id, None)
        if new is None:  # not polled: a webhook update
            new = str(update.update_id) in await self._take([update], {})
        return new

    async def _take(self, updates: Sequence[Update], raw: Mapping[int, JSONDict]) -> set[str]:
        entries = [Entry(str(u.update_id), _json(u, raw.get(u.update_id)), _sender_id(u))
                   for u in updates]
        new = await asyncio.to_thread(self.log.take, entries)
        self.held.update(u.update_id for u in updates if str(u.update_id) in new)
        return new

    def done(self, update: Update) -> None:
        """The update was handled (answers sent or failed): it is not replayed."""
        self.held.discard(update.update_id)
        self.log.handled([str(update.update_id)])
        waiter = self._waiting.pop(update.update_id, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def until_handled(self, update: Update, timeout: float) -> None:
        """Return once the update was handled, or after `timeout` (it is stored either way)."""
        waiter = self._waiting.setdefault(update.update_id,
                                          asyncio.get_running_loop().create_future())
        try:
            await asyncio.wait_for(asyncio.shield(waiter), timeout)
        except asyncio.TimeoutError:
            logger.warning("Telegram: update %s not handled within %.0f s; confirmed anyway",
                           update.update_id, timeout)
        finally:
            self._waiting.pop(update.update_id, None)

    async def claim(self, bot: ExtBot[Any]) -> list[Update]:
        """Renew our leases, then claim updates whose process died; oldest first."""
        held = [str(k) for k in self.held]
        await asyncio.to_thread(self.log.renew, held)
        claimed: list[Claimed] = []
        while True:  # all of them: at a start they come before anything new
            batch = await asyncio.to_thread(self.log.claim_expired, held, CLAIM_BATCH)
            claimed += batch
            if len(batch) < CLAIM_BATCH:
                break
        updates = []
        for row in claimed:
            update = _rebuilt(row, bot)
            if update is None:
                self.log.handled([row.key])
                continue
            self.held.add(update.update_id)
            updates.append(update)
        if updates:
            logger.warning("Telegram: replaying %d update(s) a stopped process took in",
                           len(updates))
        return sorted(updates, key=lambda u: u.update_id)

    async def release(self) -> None:
        """At a clean stop: what is still held goes to the next start at once."""
        self._polled.clear()
        for waiter in self._waiting.values():
            if not waiter.done():
                waiter.set_result(None)
        if self.held:
            await asyncio.to_thread(self.log.release, [str(k) for k in self.held])
            self.held.clear()


class IntakeBot(ExtBot[Any]):
    """The bot, whose getUpdates stores each batch before returning it to the Updater."""

    __slots__ = ("_intake", "_raw")

    async def get_updates(self, *args: Any, **kwargs: Any) -> tuple[Update, ...]:
        self._raw: dict[int, JSONDict] = {}
        updates = await super().get_updates(*args, **kwargs)
        if updates:
            await self._intake.take_batch(updates, self._raw)
        return updates

    async def _post(self, endpoint: str, data: JSONDict | None = None, **kwargs: Any) -> Any:
        """Keeps getUpdates' JSON as it came: dumping it again is cheaper than `to_json()`."""
        result = await super()._post(endpoint, data, **kwargs)
        if endpoint == "getUpdates" and isinstance(result, list):
            self._raw = {item["update_id"]: item for item in result}
        return result

    def attach(self, intake: Intake) -> None:
        self._intake = intake


class IntakeQueue(asyncio.Queue):  # type: ignore[type-arg]
    """PTB's update queue: an update enters it only once stored, and only once ever.

    With `hold_webhook` set, a webhook update's `put` (and so PTB's 200 to Telegram) also
    waits until the update was handled: Telegram posts a chat's next update only after the
    previous one was answered, so a resident's messages keep their order even when
    several processes share the webhook.
    """

    def __init__(self, intake: Intake, hold_webhook: bool = False,
                 hold_seconds: float = WEBHOOK_HOLD_SECONDS):
        super().__init__()
        self.intake = intake
        self.hold_webhook, self.hold_seconds = hold_webhook, hold_seconds

    async def put(self, item: object) -> None:
        if not isinstance(item, Update):
            await super().put(item)
            return
        webhook = not self.intake.polled(item)
        if not await self.intake.admit(item):
            logger.debug("Telegram: update %s taken in before, dropped", item.update_id)
            return
        await super().put(item)
        if webhook and self.hold_webhook:
            await self.intake.until_handled(item, self.hold_seconds)

    async def put_claimed(self, update: Update) -> None:
        """An update claimed from the log: stored already, ours to handle."""
        await super().put(update)


def _json(update: Update, raw: JSONDict | None) -> str:
    return json.dumps(raw, ensure_ascii=False) if raw is not None else update.to_json()


def _sender_id(update: Update) -> str:
    user = update.effective_user
    return str(user.id) if user is not None else ""


def _rebuilt(row: Claimed, bot: ExtBot[Any]) -> Update | None:
    if row.payload is None:
        return None
    try:
        return Update.de_json(json.loads(row.payload), bot)
    except (ValueError, TypeError, KeyError):
        logger.exception("Telegram: stored update %s cannot be read; dropped", row.key)
        return None
