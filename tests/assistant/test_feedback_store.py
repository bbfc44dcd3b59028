"""Feedback references (format, never reused: deletes, restarts, concurrent writers); export."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
import threading
from zoneinfo import ZoneInfo

from sqlmodel import delete

from assistant import cli
from assistant.core import Assistant
from assistant.store.db import Database
from assistant.store.feedback import FeedbackItem, FeedbackStore
from tests.assistant.feedback_helpers import REF, bot, items, own  # noqa: F401
from tests.conftest import REPO, SAMPLE_KNOWLEDGE, make_settings

FULL_REF = re.compile(r"^P-(\d{4})-(\d{4,})$")


def this_year() -> int:
    return dt.datetime.now(ZoneInfo("Europe/Helsinki")).year


async def test_reference_format_and_running_number(bot, chat_factory):
    chat = chat_factory(bot)
    for n in range(3):
        await chat.send(f"/palaute Viesti {n}")
    references = [i.reference for i in items(bot)]
    assert references == [f"P-{this_year()}-{n:04d}" for n in (1, 2, 3)]
    assert all(FULL_REF.match(r) for r in references)


async def test_references_are_never_reused_after_deletes(bot, chat_factory):
    chat = chat_factory(bot)
    await chat.send("/palaute Ensimmäinen")
    await chat.send("/palaute Toinen")
    with bot.db.session() as session:
        session.exec(delete(FeedbackItem))
    assert items(bot) == []
    ack = own(await chat.send("/palaute Kolmas"))
    assert f"P-{this_year()}-0003" in ack
    assert [i.reference for i in items(bot)] == [f"P-{this_year()}-0003"]


async def test_references_continue_after_a_restart(tmp_path, chat_factory):
    settings = make_settings(tmp_path, KNOWLEDGE_DIR=str(SAMPLE_KNOWLEDGE))
    first = Assistant(settings)
    await chat_factory(first).send("/palaute Ennen uudelleenkäynnistystä")
    with first.db.session() as session:
        session.exec(delete(FeedbackItem))
    first.db.dispose()
    second = Assistant(settings)
    ack = own(await chat_factory(second).send("/palaute Uudelleenkäynnistyksen jälkeen"))
    assert f"P-{this_year()}-0002" in ack
    assert [i.reference for i in items(second)] == [f"P-{this_year()}-0002"]
    second.db.dispose()


def test_concurrent_writers_get_unique_references(tmp_path):
    url = f"sqlite:///{tmp_path}/shared.db"
    Database(url).create_all()
    stores = [FeedbackStore(Database(url)) for _ in range(6)]  # separate engines, like processes
    found: list[str] = []

    def write(store: FeedbackStore) -> None:
        for n in range(15):
            found.append(store.file(None, "feedback", f"viesti {n}", None, False).reference)

    threads = [threading.Thread(target=write, args=(s,)) for s in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(found) == 90 and len(set(found)) == 90
    numbers = sorted(int(FULL_REF.match(r).group(2)) for r in found)
    assert numbers == list(range(1, 91))
    for store in stores:
        store.db.dispose()


async def _two_items(bot, chat_factory) -> tuple[str, str]:
    """One answered proposal in Suur-Tapiola and one closed one-message feedback."""
    chat, admin = chat_factory(bot), chat_factory(bot, user_id="admin")
    await chat.send("/palaute")
    await chat.send(choice="fb:k:proposal")
    await chat.send(choice="fb:d:suur-tapiola")
    await chat.send("Lisää penkkejä, \"kiitos\"; myös\nrivinvaihto")
    await chat.send(choice="fb:r:1")
    first = REF.search(own(await chat.send(choice="fb:send"))).group(0)
    second = REF.search(own(await chat.send("/palaute Hyvä palvelu"))).group(0)
    await admin.send(f"/reply {first} Kiitos, viemme eteenpäin.")
    await admin.send(f"/feedback close {second}")
    return first, second


def _environment(bot, tmp_path, monkeypatch, knowledge) -> None:
    monkeypatch.chdir(tmp_path)  # no stray .env
    monkeypatch.setenv("DATABASE_URL", bot.settings.database_url)
    monkeypatch.setenv("KNOWLEDGE_DIR", str(knowledge))


def _export(bot, tmp_path, monkeypatch, capsys, *args: str) -> str:
    _environment(bot, tmp_path, monkeypatch, tmp_path / "no-such-dir")
    assert cli.main(["feedback", "export", *args]) == 0
    return capsys.readouterr().out


async def test_export_json_follows_open311(bot, chat_factory, tmp_path, monkeypatch, capsys):
    first, second = await _two_items(bot, chat_factory)
    rows = json.loads(_export(bot, tmp_path, monkeypatch, capsys, "--format", "json"))
    assert [r["service_request_id"] for r in rows] == [first, second]
    answered, closed = rows
    assert (answered["status"], answered["detailed_status"], answered["service_name"]) == (
        "open", "answered", "proposal")
    assert answered["status_notes"] == "Kiitos, viemme eteenpäin."
    assert answered["description"] == "Lisää penkkejä, \"kiitos\"; myös\nrivinvaihto"
    assert answered["address"] == "suur-tapiola"  # no gazetteer in KNOWLEDGE_DIR: the id
    assert (closed["status"], closed["detailed_status"]) == ("closed", "closed")
    assert closed["address"] == "" and closed["reply_wanted"] is False
    for row in rows:
        for name in ("requested_datetime", "updated_datetime"):
            assert dt.datetime.fromisoformat(row[name]).tzinfo is not None


async def test_export_csv_to_a_file_with_district_names(
        bot, chat_factory, tmp_path, monkeypatch, capsys):
    first, second = await _two_items(bot, chat_factory)
    target = tmp_path / "out.csv"
    _environment(bot, tmp_path, monkeypatch, REPO / "knowledge")  # the shipped districts
    assert cli.main(["feedback", "export", "--format", "csv", "--output", str(target)]) == 0
    assert capsys.readouterr().out == ""
    rows = list(csv.DictReader(io.StringIO(target.read_text(encoding="utf-8"))))
    assert [r["service_request_id"] for r in rows] == [first, second]
    assert rows[0]["address"] == "Suur-Tapiola" and rows[0]["status"] == "open"
    assert rows[0]["description"] == "Lisää penkkejä, \"kiitos\"; myös\nrivinvaihto"
    assert rows[1]["status"] == "closed" and rows[1]["service_name"] == "feedback"


async def test_export_of_an_empty_database(bot, tmp_path, monkeypatch, capsys):
    assert json.loads(_export(bot, tmp_path, monkeypatch, capsys, "--format", "json")) == []
    csv_text = _export(bot, tmp_path, monkeypatch, capsys, "--format", "csv")
    assert csv_text.startswith("service_request_id,")
