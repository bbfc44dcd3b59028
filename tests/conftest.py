"""Shared fixtures: settings on a temporary database, an assistant, and a chat helper."""

from __future__ import annotations

from pathlib import Path

import pytest

from assistant.core import Assistant
from assistant.messages import Incoming, Reply
from assistant.settings import Settings
from tests.pg import fresh_postgres_url, postgres_cluster, postgres_url  # noqa: F401  (fixtures)

REPO = Path(__file__).resolve().parent.parent
SAMPLE_KNOWLEDGE = Path(__file__).resolve().parent / "assistant" / "data" / "knowledge"


def make_settings(tmp_path: Path, **overrides: str) -> Settings:
    env = {"DATABASE_URL": f"sqlite:///{tmp_path}/test.db", "QUIET_HOURS": ""}
    env.update(overrides)
    return Settings.from_env(env)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database: a SQLite file, then a new database on the session's PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/backend.db"
    return request.getfixturevalue("fresh_postgres_url")


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path, ASSISTANT_ADMINS="console:admin")


@pytest.fixture
def assistant(settings: Settings) -> Assistant:
    """An assistant on the shipped knowledge base and a fresh database."""
    bot = Assistant(settings)
    yield bot
    bot.db.dispose()


@pytest.fixture
def sample_assistant(tmp_path: Path) -> Assistant:
    """An assistant on the two-topic sample knowledge base in tests/assistant/data."""
    bot = Assistant(make_settings(tmp_path, KNOWLEDGE_DIR=str(SAMPLE_KNOWLEDGE)))
    yield bot
    bot.db.dispose()


class Chat:
    """Builds `Incoming` messages from one resident and returns the replies."""

    def __init__(self, assistant: Assistant, user_id: str = "resident-1",
                 platform: str = "console", language_hint: str = ""):
        self.assistant, self.user_id, self.platform = assistant, user_id, platform
        self.language_hint = language_hint
        self.count = 0

    def incoming(self, text: str = "", choice: str | None = None, kind: str = "text") -> Incoming:
        self.count += 1
        return Incoming(platform=self.platform, user_id=self.user_id, chat_id=f"chat-{self.user_id}",
                        text=text, choice=choice, language_hint=self.language_hint, kind=kind,
                        message_id=str(self.count))

    async def send(self, text: str = "", choice: str | None = None, kind: str = "text") -> list[Reply]:
        return await self.assistant.handle(self.incoming(text, choice, kind))

    async def text(self, text: str = "", **kwargs) -> str:
        """The text of all replies to this chat, joined."""
        return "\n".join(r.text for r in await self.send(text, **kwargs) if not r.chat_id)


@pytest.fixture
def chat_factory():
    return Chat
