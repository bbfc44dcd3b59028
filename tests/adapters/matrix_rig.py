"""A Matrix test rig: the real assistant, router and MatrixAdapter as the bot on a real
Synapse, and matrix-nio clients as residents."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from nio import (
    AsyncClient,
    AsyncClientConfig,
    Event,
    MegolmEvent,
    RoomCreateResponse,
    RoomEncryptedFile,
    RoomMessageFile,
    RoomMessageNotice,
    RoomMessageText,
    RoomSendResponse,
)

from adapters.matrix import MatrixAdapter
from assistant.core import Assistant
from assistant.messages import Incoming
from assistant.router import Router
from assistant.settings import Settings
from assistant.store.updates import Updates
from tests.conftest import make_settings
from tests.fakes.synapse_server import SynapseServer

DEADLINE = 30.0
SYNC_FILTER = {"room": {"timeline": {"limit": 100}}}
ENCRYPTION_STATE = {"type": "m.room.encryption", "state_key": "",
                    "content": {"algorithm": "m.megolm.v1.aes-sha2"}}
PASSWORD = "secret-pw"
_names = itertools.count(1)
_RUN = uuid.uuid4().hex[:6]  # the Synapse fixture is shared by the whole session


def localpart(prefix: str) -> str:
    return f"{prefix}{_RUN}{next(_names)}"


class BotRig:
    """The bot: one account and store path, one DB, started and stopped like a process."""

    def __init__(self, synapse: SynapseServer, tmp_path: Path, homeserver: str = "",
                 **adapter_options: Any):
        self.synapse, self.tmp_path = synapse, tmp_path
        self.homeserver = homeserver or synapse.url
        self.user_id, _, _ = synapse.register_user(localpart("bot"), PASSWORD)
        self.store_path = tmp_path / "matrix-store"
        self.adapter_options = adapter_options
        self.incoming: list[Incoming] = []  # every message handed to the core, all runs
        self.assistant: Assistant | None = None
        self.adapter: MatrixAdapter | None = None

    def settings(self) -> Settings:
        return make_settings(self.tmp_path, MATRIX_HOMESERVER=self.homeserver,
                             MATRIX_USER_ID=self.user_id, MATRIX_PASSWORD=PASSWORD,
                             MATRIX_STORE_PATH=str(self.store_path))

    async def start(self) -> None:
        """A fresh Assistant, Router and adapter on the same DB and store (a new process)."""
        self.assistant = Assistant(self.settings())
        self.adapter = MatrixAdapter(self.assistant.settings, **self.adapter_options,
                                     handled=Updates(self.assistant.db).of("matrix"))
        router = Router(self.assistant)
        router.add(self.adapter)

        async def on_message(incoming: Incoming) -> None:
            self.incoming.append(incoming)
            await router.on_message(incoming)

        await self.adapter.start(on_message)
        await asyncio.wait_for(self.adapter.ready.wait(), DEADLINE)

    async def knows_room(self, room_id: str) -> None:
        """Wait until the bot's sync has brought the room it joined."""
        async with asyncio.timeout(DEADLINE):
            while self.adapter is None or room_id not in self.adapter.client.rooms:
                await asyncio.sleep(0.05)

    async def stop(self) -> None:
        """Stop the adapter and close the DB; `core` stays readable for expected answers."""
        if self.adapter is not None:
            await self.adapter.stop()
        if self.assistant is not None:
            self.assistant.db.dispose()
        self.adapter = None

    @property
    def core(self) -> Assistant:
        assert self.assistant is not None, "bot not started"
        return self.assistant


class Gate:
    """A TCP forwarder in front of Synapse that can drop every connection and refuse new
    ones: a lost network, for the bot only."""

    def __init__(self, target_port: int):
        self.target_port, self.port = target_port, 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def open(self) -> None:
        self._server = await asyncio.start_server(self._forward, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.close()
        await self._server.wait_closed()

    async def _forward(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        self._writers |= {writer, up_writer}
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer),
                             return_exceptions=True)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        finally:
            writer.close()
            self._writers.discard(writer)


class Resident:
    """A resident's Matrix client that records what the bot sends it."""

    def __init__(self, client: AsyncClient, bot_id: str):
        self.client, self.bot_id = client, bot_id
        self.received: list[Event] = []
        client.add_event_callback(self._record, (RoomMessageNotice, RoomMessageText,
                                                 RoomMessageFile, RoomEncryptedFile, MegolmEvent))

    @classmethod
    async def create(cls, synapse: SynapseServer, bot_id: str, store: Path | None = None,
                     max_limit_exceeded: int = 3) -> Resident:
        """A freshly registered resident, logged in by token, with encryption if `store`."""
        user_id, token, device_id = synapse.register_user(localpart("resident"), PASSWORD)
        if store is not None:
            store.mkdir(parents=True)
        config = AsyncClientConfig(encryption_enabled=store is not None, store_sync_tokens=True,
                                   max_limit_exceeded=max_limit_exceeded)
        client = AsyncClient(synapse.url, user_id, device_id, str(store or ""), config)
        client.restore_login(user_id, device_id, token)
        if client.olm and client.should_upload_keys:
            await client.keys_upload()
        await client.sync(timeout=0)
        return cls(client, bot_id)

    @property
    def user_id(self) -> str:
        return str(self.client.user_id)

    async def _record(self, room: Any, event: Event) -> None:
        if event.sender == self.bot_id:
            self.received.append(event)

    async def sync_until(self, done: Callable[[], bool], deadline: float = DEADLINE) -> None:
        """Sync until done() holds; fail instead of hanging."""
        async with asyncio.timeout(deadline):
            while not done():
                await self.client.sync(timeout=300, sync_filter=SYNC_FILTER)

    async def open_room(self, invite: list[str], encrypted: bool = False,
                        direct: bool = True) -> str:
        """Create a room, invite the bot (and others), wait until the bot has joined."""
        state = [ENCRYPTION_STATE] if encrypted else []
        created = await self.client.room_create(is_direct=direct, invite=invite,
                                                initial_state=state)
        assert isinstance(created, RoomCreateResponse), created
        await self.sync_until(lambda: self.has_joined(created.room_id, self.bot_id))
        return created.room_id

    def has_joined(self, room_id: str, user_id: str) -> bool:
        room = self.client.rooms.get(room_id)
        return bool(room and user_id in room.users and user_id not in room.invited_users)

    async def send(self, room_id: str, content: dict[str, Any]) -> str:
        sent = await self.client.room_send(room_id, "m.room.message", content,
                                           ignore_unverified_devices=True)
        assert isinstance(sent, RoomSendResponse), sent
        return sent.event_id

    async def say(self, room_id: str, text: str) -> str:
        return await self.send(room_id, {"msgtype": "m.text", "body": text})

    async def replies(self, count: int = 1, deadline: float = DEADLINE) -> list[Event]:
        """The next `count` events from the bot, in order (consumed)."""
        await self.sync_until(lambda: len(self.received) >= count, deadline)
        taken, self.received = self.received[:count], self.received[count:]
        return taken

    async def ask(self, room_id: str, text: str) -> Event:
        """Say something and return the bot's one answer."""
        await self.say(room_id, text)
        return (await self.replies(1))[0]

    async def close(self) -> None:
        await self.client.close()


async def download(resident: Resident, mxc: str) -> bytes:
    """Media by its mxc:// URI through the authenticated media API (Synapse serves new
    media only there; nio 0.26's download() uses the legacy path)."""
    server_name, _, media_id = mxc.removeprefix("mxc://").partition("/")
    client = resident.client
    path = f"/_matrix/client/v1/media/download/{server_name}/{media_id}"
    response = await client.send("GET", path,
                                  headers={"Authorization": f"Bearer {client.access_token}"})
    assert response.status == 200, response.status
    return await response.read()
