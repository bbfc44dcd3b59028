"""Logs hold no message text at INFO and above, and no tokens whatever logs them."""

from __future__ import annotations

import io
import logging
import shutil

import pytest

from assistant import cli, logredact
from assistant.core import Assistant
from assistant.delivery import Sender
from assistant.messages import Reply
from assistant.newsdesk import news_desk
from tests.conftest import REPO, SAMPLE_KNOWLEDGE, make_settings

BOT_TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw0"
SYNAPSE_TOKEN = "syt_YWxpY2U_HJQmHqkyzLplXfoOlQvm_2OnaNu"
MACAROON = "MDAxOGxvY2F0aW9uIGxvY2FsaG9zdAowMDEzaWRlbnRpZmllciBrZXkKMDAxMGNpZCBnZW4gPSAx"
# Words that appear only in what residents and admins typed.
TYPED = ["Kurpitsakeitto", "Zorblaxian", "Pelargoniapenkki", "Huvimajahanke", "Sammakkolampi",
         "Glimmerstig", "Katuremonttiuutinen", "Kiitoskortti", "Tervehdyslause"]


@pytest.fixture
def bot(tmp_path):
    knowledge = tmp_path / "knowledge"
    shutil.copytree(SAMPLE_KNOWLEDGE / "topics", knowledge / "topics")
    shutil.copy(REPO / "knowledge" / "districts.yaml", knowledge / "districts.yaml")
    assistant = Assistant(make_settings(tmp_path, KNOWLEDGE_DIR=str(knowledge),
                                        ASSISTANT_ADMINS="console:admin"))
    yield assistant
    assistant.db.dispose()


class RecordingAdapter:
    """A platform that accepts every message."""

    platform = "console"

    def __init__(self) -> None:
        self.sent: list[tuple[str, Reply]] = []

    async def start(self, on_message) -> None: ...

    async def stop(self) -> None: ...

    async def send(self, chat_id: str, reply: Reply) -> str:
        self.sent.append((chat_id, reply))
        return str(len(self.sent))


async def converse(bot: Assistant, chat_factory) -> None:
    """Questions, feedback (form and shortcut), subscriptions, news, answers, privacy."""
    resident = chat_factory(bot, language_hint="fi")
    admin = chat_factory(bot, user_id="admin")
    await admin.send("/kieli suomi")
    await resident.send("Miten teen kuntalaisaloitteen, kysyy Tervehdyslause?")
    await resident.send("Missä on Kurpitsakeitto ja Zorblaxian?")
    await resident.send("/tilaa Tapiola")
    await resident.send("/palaute")
    await resident.send(choice="fb:k:proposal")
    await resident.send("Sammakkolampi")  # a district the gazetteer does not know
    await resident.send(choice="fb:d:tapiola")
    await resident.send("Pelargoniapenkki puistoon, kiitos")
    await resident.send(choice="fb:r:1")
    await resident.send(choice="fb:send")
    ack = "\n".join(r.text for r in await resident.send("/palaute Huvimajahanke Glimmerstig"))
    reference = ack.split("Viite: ")[1].split(".")[0]
    await admin.send(f"/reply {reference} Kiitoskortti tulossa")
    [preview] = await admin.send("/news tapiola Katuremonttiuutinen maanantaina")
    await admin.send(choice=preview.choices[0].value)
    adapter = RecordingAdapter()
    await Sender(bot, news_desk(bot).outbox, {"console": adapter}, limits=None).drain_once()
    assert adapter.sent, "the news should have been delivered"
    await resident.send("/mydata")
    [question] = await resident.send("/forget")
    await resident.send(choice=question.choices[0].value)


async def test_no_typed_text_reaches_the_log_at_info(bot, chat_factory, caplog):
    caplog.set_level(logging.INFO)
    await converse(bot, chat_factory)
    assert caplog.records, "the conversation should log something (ids, counts)"
    for record in caplog.records:
        logged = record.getMessage() + (record.exc_text or "") + repr(record.args)
        for word in TYPED:
            assert word not in logged, f"{record.name}: {logged}"


def test_conversation_words_are_really_typed():
    """Guard the test above: its words must not be in any catalogue or knowledge text."""
    catalogue = (REPO / "assistant" / "locales").rglob("*.yaml")
    corpus = " ".join(p.read_text(encoding="utf-8") for p in catalogue)
    assert not [w for w in TYPED if w in corpus]


@pytest.fixture
def captured():
    """A logger of its own whose formatted output is kept, with the redacting filter."""
    stream = io.StringIO()
    logger = logging.getLogger("tests.redact")
    logger.handlers = [logging.StreamHandler(stream)]
    logger.propagate, logger.level = False, logging.DEBUG
    logredact.install(["my-webhook-secret-123", "short"], logger=logger)
    yield logger, stream
    logger.handlers = []


@pytest.mark.parametrize("message,secret", [
    (f"GET https://api.telegram.org/bot{BOT_TOKEN}/getUpdates", BOT_TOKEN.split(":")[1]),
    (f"token is {BOT_TOKEN}", BOT_TOKEN.split(":")[1]),
    (f"PUT /_matrix/client/v3/rooms/x/send?access_token={SYNAPSE_TOKEN}", SYNAPSE_TOKEN),
    ("GET /sync?since=s1&access_token=plainsecretvalue&timeout=0", "plainsecretvalue"),
    ("headers {'Authorization': 'Bearer abc.def-ghi'}", "abc.def-ghi"),
    (f"logged in with {SYNAPSE_TOKEN}", SYNAPSE_TOKEN),
    (f"old token {MACAROON}", MACAROON),
    ("webhook secret my-webhook-secret-123 set", "my-webhook-secret-123"),
])
def test_tokens_are_masked_in_messages(captured, message, secret):
    logger, stream = captured
    logger.info(message)
    logger.warning("%s", message)  # in the arguments too
    output = stream.getvalue()
    assert secret not in output and output.count(logredact.MASK) == 2


def test_tokens_are_masked_in_tracebacks(captured):
    logger, stream = captured
    try:
        raise RuntimeError(f"connect to https://api.telegram.org/bot{BOT_TOKEN}/getMe failed")
    except RuntimeError:
        logger.exception("Telegram: start failed")
    output = stream.getvalue()
    assert BOT_TOKEN.split(":")[1] not in output
    assert "RuntimeError" in output and "bot123456789:[redacted]" in output


def test_ordinary_log_lines_are_left_alone(captured):
    logger, stream = captured
    lines = ["feedback P-2026-0001 answered", "matrix user @bot:example.org joined !room:hs",
             "at 12:30:45 push 42 sent", "event $abc123:example.org", "short words stay"]
    for line in lines:
        logger.info(line)
    assert stream.getvalue().splitlines() == lines


def test_the_cli_logging_setup_installs_the_filter():
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    stream = io.StringIO()
    root.handlers = [logging.StreamHandler(stream)]
    try:
        cli._configure_logging("INFO", secrets=("configured-secret-value",))
        logging.getLogger("telegram.ext.Updater").error(
            "Network error for https://api.telegram.org/bot%s/getUpdates", BOT_TOKEN)
        logging.getLogger("nio.client").error("configured-secret-value leaked")
    finally:
        root.handlers, root.level = saved_handlers, saved_level
    output = stream.getvalue()
    assert BOT_TOKEN.split(":")[1] not in output and "configured-secret-value" not in output
    assert output.count(logredact.MASK) == 2
