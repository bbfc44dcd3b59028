"""The Matrix adapter: matrix-nio's AsyncClient in, the core's Incoming/Reply across.

One sync loop. nio's callbacks only collect the events of a /sync; then the
loop joins invited rooms, hands the messages to the core one by one (replies
go out as m.notice), and only after that saves the sync token. A restart thus
resumes where handling stopped; an event is marked handled after its answer, and
one marked before is skipped, so a replay answers only what was not answered. The
very first start skips the history. Encrypted rooms work through nio's Olm store,
kept with the login under MATRIX_STORE_PATH (matrix_session).
Send errors become the core's RetryLater, RecipientGone and PermanentFailure.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from aiohttp import ClientError
from nio import (
    ErrorResponse,
    Event,
    InviteMemberEvent,
    JoinedRoomsResponse,
    JoinError,
    LocalProtocolError,
    MatrixInvitedRoom,
    MatrixRoom,
    MegolmEvent,
    RoomMemberEvent,
    RoomMessage,
    StickerEvent,
    SyncResponse,
)

from adapters import matrix_session as session
from adapters.matrix_delivery import RoomSender, describe
from adapters.matrix_format import invite_allowed, server_of
from adapters.matrix_incoming import PLATFORM, RecentEvents, incoming_from
from assistant.messages import Incoming, Reply
from assistant.platform import OnMessage, RecipientGone, RetryLater
from assistant.settings import Settings

logger = logging.getLogger(__name__)
# nio logs every response body at DEBUG (access tokens, message text) and every room
# event at INFO; keep only its warnings.
logging.getLogger("nio").setLevel(logging.WARNING)

SYNC_TIMEOUT_MS = 30_000
# Synapse sends only the last 10 timeline events per room unless a filter asks for more;
# more than that may arrive while the bot is down.
SYNC_FILTER = {"room": {"timeline": {"limit": 100}}}
FIRST_SYNC_FILTER = {"room": {"timeline": {"limit": 1}}}  # history is not answered anyway
BACKOFF_MAX_SECONDS = 30.0
STOP_GRACE_SECONDS = 20.0
# Set while the adapter answers an event: such sends wait out rate limits themselves
# (the router would drop the answer); other sends (the outbox) get RetryLater and reschedule.
_REPLYING: contextvars.ContextVar[bool] = contextvars.ContextVar("matrix_replying", default=False)


class SyncFailed(Exception):
    """/sync answered with an error (the loop backs off and tries again)."""

    def __init__(self, status_code: str):
        super().__init__(status_code)
        self.status_code = status_code


class HandledLog(Protocol):
    """Which events were answered (`assistant.store.updates.UpdateLog`, or `RecentEvents`)."""

    def is_handled(self, key: str) -> bool: ...
    def handled(self, keys: Iterable[str]) -> None: ...


@dataclass
class Pending:
    """A timeline event from the last sync, waiting to be handled."""

    room_id: str
    event: Event
    before_join: bool = False  # room history the bot saw on joining


class MatrixAdapter:
    """One bot account: `start(on_message)` logs in and begins syncing, `send()` answers."""

    platform = PLATFORM

    def __init__(self, settings: Settings, *, handled: HandledLog | None = None,
                 sync_timeout_ms: int = SYNC_TIMEOUT_MS, max_limit_exceeded: int = 3,
                 reply_attempts: int = 10):
        self.settings = settings
        self.handled = handled or RecentEvents()
        self.sync_timeout_ms = sync_timeout_ms
        config = session.client_config(max_limit_exceeded, max_timeouts=2)
        self.client = session.new_client(settings, config)
        self.sender = RoomSender(self.client, reply_attempts)
        self.ready = asyncio.Event()  # set once the first sync has brought the rooms
        self._on_message: OnMessage | None = None
        self._pending: list[Pending] = []
        self._invites: dict[str, str] = {}  # room id -> inviter
        self._since = ""
        self._resume = self._logged_in = False
        self._stopping = False
        self._wake = asyncio.Event()
        self._poll: asyncio.Future[Any] | None = None
        self._task: asyncio.Task[None] | None = None

    # ------------------------------------------------------------- lifecycle

    async def start(self, on_message: OnMessage) -> None:
        """Log in (or reuse the saved login), then sync in the background; returns at once.

        Refused credentials raise here. An unreachable homeserver does not: the sync
        loop keeps trying, so the other platforms in this process still start.
        """
        self._on_message = on_message
        self.client.add_event_callback(self._collect, (RoomMessage, MegolmEvent, StickerEvent,
                                                       RoomMemberEvent))
        self.client.add_event_callback(self._collect_invite, InviteMemberEvent)
        try:
            await self._log_in()
        except (ClientError, TimeoutError) as error:
            logger.warning("Matrix: homeserver unreachable (%s); will keep trying",
                           describe(error))
        self._task = asyncio.create_task(self._run(), name="matrix-sync")

    async def _log_in(self) -> None:
        await session.log_in(self.client, self.settings)
        if self.client.olm is None:
            logger.warning("Matrix: no encryption store; encrypted rooms will not work")
        elif self.client.should_upload_keys:
            await self.client.keys_upload()
        self._since = session.saved_sync_token(self.client)
        # Resuming from a token: nio keeps no room state across restarts, so ask for it.
        self._resume, self._logged_in = bool(self._since), True
        logger.info("Matrix: syncing as %s, device %s, %s", self.client.user_id,
                    self.client.device_id, "resuming" if self._since else "first start")

    async def stop(self) -> None:
        """Finish the batch under way (its token is saved), then close the connection."""
        self._stopping = True
        self._wake.set()
        if self._poll is not None:
            self._poll.cancel()
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, STOP_GRACE_SECONDS)
            except (TimeoutError, asyncio.CancelledError):
                logger.warning("Matrix: the sync loop did not stop in time; cancelled")
            self._task = None
        await self.client.close()

    async def _run(self) -> None:
        """Sync forever; errors and lost connections back off 1, 2, 4... 30 s (logins too:
        Synapse limits them)."""
        backoff = 1.0
        while not self._stopping:
            try:
                if not self._logged_in:
                    await self._log_in()
                await self._sync_once()
                backoff = 1.0
            except Exception as error:
                self.client.next_batch = self._since  # replay the failed batch, not skip it
                logger.warning("Matrix: sync failed (%s); retrying in %.0f s",
                               describe(error), backoff)
                logger.debug("Matrix: sync failure", exc_info=True)
                await self._pause(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX_SECONDS)

    async def _pause(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self._wake.wait(), seconds)
        except TimeoutError:
            pass

    # ------------------------------------------------------------- syncing

    async def _sync_once(self) -> None:
        """One /sync, its events handled, then its token saved."""
        self._pending, self._invites = [], {}
        live = bool(self._since)  # without a token this is the first start: skip history
        quick = self._resume or not live or not self.ready.is_set()
        response = await self._poll_server(0 if quick else self.sync_timeout_ms,
                                           SYNC_FILTER if live else FIRST_SYNC_FILTER)
        if response is None:
            return
        if not isinstance(response, SyncResponse):
            await self._recover(response)
            raise SyncFailed(response.status_code or "error")
        self.ready.set()  # nio knows the rooms now: sending works
        await self._keep_keys()
        await self._handle_invites()
        if live:
            await self._handle_events()
        self._since, self._resume = response.next_batch, False
        session.save_sync_token(self.client, self._since)

    async def _poll_server(self, timeout_ms: int, sync_filter: dict[str, Any]) -> Any:
        """The long poll; None when stop() interrupted it (nothing was handled then)."""
        self._poll = asyncio.ensure_future(self.client.sync(
            timeout_ms, sync_filter, since=self._since or None, full_state=self._resume or None))
        try:
            return await self._poll
        except asyncio.CancelledError:
            if self._stopping:
                return None
            raise
        finally:
            self._poll = None

    async def _recover(self, error: ErrorResponse) -> None:
        """A revoked token: log in again with the password, keeping the device."""
        if error.status_code == "M_UNKNOWN_TOKEN" and self.settings.matrix_password:
            await session.password_login(self.client, self.settings, self.client.device_id)

    async def _keep_keys(self) -> None:
        """What nio's sync_forever does between syncs: keys out, device lists in."""
        client = self.client
        if client.olm is None:
            return
        await client.send_to_device_messages()
        if client.should_upload_keys:
            await client.keys_upload()
        if client.should_query_keys:
            await client.keys_query()
        if client.should_claim_keys:
            await client.keys_claim(client.get_users_for_key_claiming())

    async def _collect(self, room: MatrixRoom, event: Event) -> None:
        """nio callback: keep the event for after the sync; note where the bot joined."""
        if isinstance(event, RoomMemberEvent):
            if (event.state_key == self.client.user_id and event.membership == "join"
                    and event.prev_membership != "join"):
                for item in self._pending:
                    item.before_join = item.before_join or item.room_id == room.room_id
            return
        self._pending.append(Pending(room.room_id, event))

    async def _collect_invite(self, room: MatrixInvitedRoom, event: InviteMemberEvent) -> None:
        if event.state_key == self.client.user_id and event.membership == "invite":
            self._invites[room.room_id] = event.sender

    # ------------------------------------------------------------- incoming

    async def _handle_invites(self) -> None:
        """Join rooms we are invited to, unless the inviter's server is not allowed."""
        for room_id, inviter in self._invites.items():
            if not invite_allowed(inviter, self.settings.matrix_allowed_servers):
                logger.info("Matrix: declined an invitation from %s", server_of(inviter))
                await self.client.room_leave(room_id)
                continue
            joined = await self.client.join(room_id)
            if isinstance(joined, JoinError):
                logger.warning("Matrix: joining a room failed: %s", joined.status_code)
            else:
                logger.info("Matrix: joined a room on invitation")

    async def _handle_events(self) -> None:
        for item in self._pending:
            try:
                await self._handle(item)
            except Exception:
                logger.exception("Matrix: handling event %s failed", item.event.event_id)

    async def _handle(self, item: Pending) -> None:
        incoming = await self._incoming(item)
        if incoming is None or self._on_message is None:
            return
        if self.handled.is_handled(incoming.message_id):
            logger.debug("Matrix: event %s handled before, skipped", incoming.message_id)
            return
        token = _REPLYING.set(True)
        try:
            await self._on_message(incoming)
        finally:
            _REPLYING.reset(token)
        self.handled.handled([incoming.message_id])

    async def _incoming(self, item: Pending) -> Incoming | None:
        room = self.client.rooms.get(item.room_id)
        if room is None:
            return None
        if isinstance(item.event, MegolmEvent) and item.event.sender != self.client.user_id:
            await self._ask_for_key(item.event)
        return incoming_from(item.event, room, self.client.user_id, item.before_join)

    async def _ask_for_key(self, event: MegolmEvent) -> None:
        """Ask the sender's devices for the Megolm key; a later message may then be readable."""
        logger.info("Matrix: could not decrypt an event; requesting its key")
        try:
            await self.client.request_room_key(event)
        except LocalProtocolError:
            pass  # already requested for this session
        except (ClientError, TimeoutError) as error:  # a courtesy: the notice goes out anyway
            logger.warning("Matrix: key request failed: %s", describe(error))

    # ------------------------------------------------------------- outgoing

    async def send(self, chat_id: str, reply: Reply) -> str:
        """Send `reply` as an m.notice (and its attachment as m.file); returns the event id."""
        if not self.ready.is_set():
            raise RetryLater(5.0, "Matrix: not synced yet")
        room = await self._room(chat_id)
        if room.member_count < 2:  # the resident left; the bot would talk to itself
            raise RecipientGone("nobody else in the room")
        return await self.sender.send(room, reply, patient=_REPLYING.get())

    async def _room(self, room_id: str) -> MatrixRoom:
        """The room as nio knows it; a room joined since the last sync is not known yet."""
        room = self.client.rooms.get(room_id)
        if room is not None:
            return room
        try:
            joined = await self.client.joined_rooms()
        except (ClientError, TimeoutError) as error:
            raise RetryLater(5.0, describe(error)) from error
        if isinstance(joined, JoinedRoomsResponse) and room_id not in joined.rooms:
            raise RecipientGone("the bot is not in this room")
        raise RetryLater(2.0, "Matrix: room not synced yet")
