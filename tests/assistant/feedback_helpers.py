"""Shared fixtures and readers for the feedback tests."""

from __future__ import annotations

import re

import pytest
from sqlmodel import select

from assistant.core import Assistant
from assistant.districts import Gazetteer
from assistant.messages import Reply
from assistant.store.feedback import FeedbackItem
from tests.conftest import REPO, SAMPLE_KNOWLEDGE, make_settings

REF = re.compile(r"P-\d{4}-\d{4}")
CITY = "https://www.espoo.fi/fi/palautepalvelu"


@pytest.fixture
def bot(tmp_path):
    """The small sample knowledge base (fast) with the shipped districts; admin console:admin."""
    assistant = Assistant(make_settings(tmp_path, KNOWLEDGE_DIR=str(SAMPLE_KNOWLEDGE),
                                        ASSISTANT_ADMINS="console:admin"))
    assistant.gazetteer = Gazetteer.load(REPO / "knowledge")
    yield assistant
    assistant.db.dispose()


def items(assistant: Assistant) -> list[FeedbackItem]:
    with assistant.db.session() as session:
        return list(session.exec(select(FeedbackItem).order_by(FeedbackItem.id)).all())


def own(replies: list[Reply]) -> str:
    """The text of the replies to the chat written from (not to other chats)."""
    return "\n".join(r.text for r in replies if not r.chat_id)


def values(replies: list[Reply]) -> list[str]:
    return [c.value for r in replies for c in r.choices]


def flow_of(assistant: Assistant, user_id: str = "resident-1"):
    resident = assistant.residents.find("console", user_id)
    return assistant.residents.flow(resident.id)
