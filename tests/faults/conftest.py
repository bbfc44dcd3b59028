"""Fault tests: one assistant per module on a SQLite file (building it takes a second);
each test starts its own fake Telegram server, adapter and sender (`rig.fault_rig`)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from assistant.core import Assistant
from tests.conftest import make_settings


@pytest.fixture(scope="module")
def assistant(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Assistant]:
    bot = Assistant(make_settings(tmp_path_factory.mktemp("faults")))
    yield bot
    bot.db.dispose()

