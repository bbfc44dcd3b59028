"""Adapter test fixtures: a real Synapse for the session, a Matrix bot and its residents."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from tests.adapters.matrix_rig import BotRig, Resident
from tests.fakes.synapse_server import SynapseServer, synapse, synapse_fixture

__all__ = ["synapse", "synapse_limited"]  # fixtures, used by name

# Synapse's default limits (rc_message 0.2/s after a burst of 10), on a server of their own.
synapse_limited = synapse_fixture(rate_limits=True, scope="module", name="synapse_limited")

ResidentFactory = Callable[..., Awaitable[Resident]]


@pytest.fixture
async def matrix_bot(synapse: SynapseServer, tmp_path: Path) -> AsyncIterator[BotRig]:
    """The assistant running as a Matrix bot on the shared Synapse, stopped afterwards."""
    rig = BotRig(synapse, tmp_path)
    await rig.start()
    yield rig
    await rig.stop()


@pytest.fixture
async def resident_factory(tmp_path: Path) -> AsyncIterator[ResidentFactory]:
    """Make residents on a given server and bot (`encrypted=True` gives a key store)."""
    residents: list[Resident] = []

    async def make(server: SynapseServer, bot_id: str, encrypted: bool = False,
                   max_limit_exceeded: int = 3) -> Resident:
        store = tmp_path / f"resident-store-{len(residents)}" if encrypted else None
        residents.append(await Resident.create(server, bot_id, store, max_limit_exceeded))
        return residents[-1]

    yield make
    for resident in residents:
        await resident.close()


@pytest.fixture
async def matrix_resident(synapse: SynapseServer, matrix_bot: BotRig,
                   resident_factory: ResidentFactory) -> Resident:
    """One resident without encryption, on the bot's server."""
    return await resident_factory(synapse, matrix_bot.user_id)
