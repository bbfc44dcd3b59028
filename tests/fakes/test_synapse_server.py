"""End-to-end checks of the Synapse harness with matrix-nio clients.

What these tests established about nio 0.26 is summarised in the docstring
of synapse_server.py (e2e calls, and how room_send treats 429).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from nio import (
    AsyncClient,
    AsyncClientConfig,
    MegolmEvent,
    RoomCreateResponse,
    RoomMessageText,
    RoomSendError,
    RoomSendResponse,
)

from .synapse_server import SynapseError, SynapseServer, synapse, synapse_fixture

__all__ = ["synapse"]  # the imported fixture, used by name below

# Default rc_message is 0.2/s after a burst of 10: 25 messages took 80 s.
# A faster refill keeps the same burst and 429 behaviour in a few seconds.
synapse_ratelimited = synapse_fixture(
    rate_limits=True,
    config_overrides={"rc_message": {"per_second": 5, "burst_count": 10}},
    scope="module",
    name="synapse_ratelimited",
)

SYNC_DEADLINE = 20.0
# Synapse sends at most 10 timeline events per room per sync without a filter.
SYNC_FILTER = {"room": {"timeline": {"limit": 100}}}
ENCRYPTION_STATE = {
    "type": "m.room.encryption",
    "state_key": "",
    "content": {"algorithm": "m.megolm.v1.aes-sha2"},
}
_names = itertools.count()


def _text(body: str) -> dict[str, str]:
    return {"msgtype": "m.text", "body": body}


async def _client(
    server: SynapseServer, config: AsyncClientConfig, store: Path | None = None
) -> AsyncClient:
    """A freshly registered user, logged in by token, with one initial sync done."""
    localpart = f"user{next(_names)}"
    user_id, token, device_id = server.register_user(localpart, "secret")
    store_path = str(store) if store else ""
    client = AsyncClient(server.url, user_id, device_id, store_path, config)
    client.restore_login(user_id, device_id, token)
    if client.olm and client.should_upload_keys:
        await client.keys_upload()
    await client.sync(timeout=0)
    return client


async def _sync_until(client: AsyncClient, done: Callable[[], bool]) -> None:
    """Sync until done() holds; fail instead of hanging."""
    async with asyncio.timeout(SYNC_DEADLINE):
        while not done():
            await client.sync(timeout=500, sync_filter=SYNC_FILTER)


async def _open_dm(sender: AsyncClient, recipient: AsyncClient, encrypted: bool) -> str:
    """Sender creates a direct room, recipient joins from its invite."""
    created = await sender.room_create(
        is_direct=True,
        invite=[recipient.user_id],
        initial_state=[ENCRYPTION_STATE] if encrypted else [],
    )
    assert isinstance(created, RoomCreateResponse), created
    room_id = created.room_id
    await _sync_until(recipient, lambda: room_id in recipient.invited_rooms)
    await recipient.join(room_id)
    await _sync_until(sender, lambda: _has_joined(sender, room_id, recipient.user_id))
    return room_id


async def _send_all(client: AsyncClient, room_id: str, bodies: list[str]) -> list[object]:
    """Send concurrently: a real burst, whatever the machine's speed (sequential
    sends on a slow machine can stay under the refill rate)."""
    sends = (client.room_send(room_id, "m.room.message", _text(body)) for body in bodies)
    return list(await asyncio.gather(*sends))


def _has_joined(client: AsyncClient, room_id: str, user_id: str) -> bool:
    room = client.rooms.get(room_id)
    return room is not None and user_id in room.users


def _collect(client: AsyncClient) -> list[object]:
    """Record the message events (decrypted or not) a client receives."""
    seen: list[object] = []

    async def record(room: object, event: object) -> None:
        seen.append(event)

    client.add_event_callback(record, (RoomMessageText, MegolmEvent))
    return seen


Factory = Callable[..., Awaitable[AsyncClient]]


@pytest.fixture
async def new_client(tmp_path: Path) -> AsyncIterator[Factory]:
    """Make logged-in clients on a given server; close them all afterwards."""
    clients: list[AsyncClient] = []

    async def make(server: SynapseServer, **config: Any) -> AsyncClient:
        store = None
        if config.get("encryption_enabled"):
            store = tmp_path / f"store{len(clients)}"
            store.mkdir()
        clients.append(await _client(server, AsyncClientConfig(**config), store))
        return clients[-1]

    yield make
    for client in clients:
        await client.close()


@pytest.mark.asyncio
async def test_dm_message_reaches_invited_user(
    synapse: SynapseServer, new_client: Factory
) -> None:
    a = await new_client(synapse, encryption_enabled=False, max_limit_exceeded=3)
    b = await new_client(synapse, encryption_enabled=False, max_limit_exceeded=3)
    room_id = await _open_dm(a, b, encrypted=False)
    seen = _collect(b)

    sent = await a.room_send(room_id, "m.room.message", _text("Hei Espoo"))

    assert isinstance(sent, RoomSendResponse), sent
    await _sync_until(b, lambda: bool(seen))
    assert isinstance(seen[0], RoomMessageText)
    assert seen[0].body == "Hei Espoo"


@pytest.mark.asyncio
async def test_encrypted_dm_is_decrypted_by_recipient(
    synapse: SynapseServer, new_client: Factory
) -> None:
    e2e = {"store_sync_tokens": True, "encryption_enabled": True, "max_limit_exceeded": 3}
    a = await new_client(synapse, **e2e)
    b = await new_client(synapse, **e2e)
    room_id = await _open_dm(a, b, encrypted=True)
    assert a.rooms[room_id].encrypted
    seen = _collect(b)

    sent = await a.room_send(
        room_id, "m.room.message", _text("Salainen viesti"), ignore_unverified_devices=True
    )

    assert isinstance(sent, RoomSendResponse), sent
    await _sync_until(b, lambda: bool(seen))
    assert isinstance(seen[0], RoomMessageText), f"not decrypted: {seen[0]!r}"
    assert seen[0].body == "Salainen viesti"
    assert seen[0].decrypted


@pytest.mark.asyncio
async def test_burst_is_rate_limited_but_nio_retries_until_all_arrive(
    synapse_ratelimited: SynapseServer, new_client: Factory
) -> None:
    a = await new_client(synapse_ratelimited, encryption_enabled=False, max_limit_exceeded=30)
    b = await new_client(synapse_ratelimited, encryption_enabled=False)
    room_id = await _open_dm(a, b, encrypted=False)
    limited: list[RoomSendError] = []

    async def on_429(response: RoomSendError) -> None:
        limited.append(response)

    a.add_response_callback(on_429, RoomSendError)  # type: ignore[arg-type]
    seen = _collect(b)

    sent = [f"uutinen {n}" for n in range(25)]

    results = await _send_all(a, room_id, sent)

    assert all(isinstance(r, RoomSendResponse) for r in results), results
    assert limited and all(r.status_code == "M_LIMIT_EXCEEDED" for r in limited)
    # Synapse may answer retry_after_ms 0 (then nio sleeps 5 s): only its presence is sure.
    assert all(r.retry_after_ms is not None for r in limited)
    await _sync_until(b, lambda: len(seen) >= len(sent))
    assert sorted(e.body for e in seen) == sorted(sent)  # type: ignore[attr-defined]


@pytest.mark.asyncio
async def test_room_send_returns_error_once_max_limit_exceeded_is_used_up(
    synapse_ratelimited: SynapseServer, new_client: Factory
) -> None:
    a = await new_client(synapse_ratelimited, encryption_enabled=False, max_limit_exceeded=0)
    b = await new_client(synapse_ratelimited, encryption_enabled=False)
    room_id = await _open_dm(a, b, encrypted=False)

    results = await _send_all(a, room_id, [f"viesti {n}" for n in range(15)])

    errors = [r for r in results if isinstance(r, RoomSendError)]
    assert errors, "expected 429 after the burst of 10"
    assert errors[0].status_code == "M_LIMIT_EXCEEDED"
    assert errors[0].retry_after_ms is not None
    assert errors[0].transport_response is not None
    assert errors[0].transport_response.status == 429


@pytest.mark.asyncio
async def test_override_ratelimit_lifts_the_message_limit(
    synapse_ratelimited: SynapseServer, new_client: Factory
) -> None:
    bot = await new_client(synapse_ratelimited, encryption_enabled=False, max_limit_exceeded=0)
    resident = await new_client(synapse_ratelimited, encryption_enabled=False)
    room_id = await _open_dm(bot, resident, encrypted=False)
    _, admin_token, _ = synapse_ratelimited.register_user("admin", "secret", admin=True)

    synapse_ratelimited.override_ratelimit(bot.user_id, admin_token)
    results = await _send_all(bot, room_id, [f"tiedote {n}" for n in range(25)])

    assert all(isinstance(r, RoomSendResponse) for r in results), results


def test_start_failure_reports_the_synapse_log() -> None:
    server = SynapseServer(config_overrides={"database": {"name": "no-such-engine"}})

    with pytest.raises(SynapseError, match="no-such-engine"):
        server.start()
