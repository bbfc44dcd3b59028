"""Roles by chat: owners grant and revoke editors and moderators; everyone else sees nothing.

Also holds the helpers the other admin-curation tests share (`admin_bot`, `staff`, `rows`).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from sqlmodel import select

from assistant.core import Assistant
from assistant.messages import Incoming
from assistant.store.admin import (
    AnswerRevision,
    AuditEntry,
    QuestionCount,
    Role,
    UnansweredQuestion,
)
from assistant.store.news import NewsItem
from tests.conftest import REPO, SAMPLE_KNOWLEDGE, Chat, make_settings

EDITOR, MODERATOR = "1001", "1002"  # Telegram user ids


def admin_knowledge(tmp_path: Path) -> Path:
    """The two sample topics (quick to load) with the shipped districts."""
    knowledge = tmp_path / "knowledge"
    if not knowledge.exists():
        shutil.copytree(SAMPLE_KNOWLEDGE / "topics", knowledge / "topics")
        shutil.copy(REPO / "knowledge" / "districts.yaml", knowledge / "districts.yaml")
    return knowledge


def make_admin_bot(tmp_path: Path) -> Assistant:
    return Assistant(make_settings(tmp_path, ASSISTANT_ADMINS="console:admin",
                                   KNOWLEDGE_DIR=str(admin_knowledge(tmp_path))))


@pytest.fixture
def admin_bot(tmp_path):
    """Owner console:admin; sample topics; districts; a fresh database."""
    bot = make_admin_bot(tmp_path)
    yield bot
    bot.db.dispose()


async def finnish(chat: Chat) -> Chat:
    await chat.send("/kieli fi")
    return chat


async def staff(bot: Assistant, role: str | None, user_id: str = "") -> Chat:
    """A Finnish chat: the owner ("owner"), a Telegram editor or moderator, or a resident (None)."""
    if role == "owner":
        return await finnish(Chat(bot, user_id="admin"))
    if role is None:
        return await finnish(Chat(bot, user_id=user_id or "resident-1"))
    user_id = user_id or (EDITOR if role == "editor" else MODERATOR)
    bot.role_grants.grant("telegram", user_id, role, None, "console:admin")
    return await finnish(Chat(bot, user_id=user_id, platform="telegram"))


def rows(bot: Assistant, model) -> list:
    with bot.db.session() as session:
        return list(session.exec(select(model)).all())


def snapshot(bot: Assistant) -> dict:
    """Everything admin commands may change, to prove that an attempt changed nothing."""
    return {model.__name__: [r.model_dump() for r in rows(bot, model)]
            for model in (Role, AnswerRevision, AuditEntry, UnansweredQuestion, QuestionCount)}


def unknown(bot: Assistant, name: str) -> str:
    return bot.texts.get("fi", "unknown_command", command=name)


# granting -----------------------------------------------------------------------

async def test_owner_grants_an_editor_who_then_may_edit(admin_bot):
    owner = await staff(admin_bot, "owner")
    editor = await finnish(Chat(admin_bot, user_id=EDITOR, platform="telegram"))
    assert await editor.text("/answer show sample-feedback") == unknown(admin_bot, "answer")
    reply = await owner.text(f"/admin add telegram:{EDITOR} editor")
    assert f"telegram:{EDITOR}" in reply and "toimittaja" in reply
    [role] = rows(admin_bot, Role)
    assert (role.platform, role.platform_id, role.role, role.district_id, role.granted_by) == (
        "telegram", EDITOR, "editor", None, "console:admin")
    assert "Palaute kaupungille" in await editor.text("/answer show sample-feedback")
    [entry] = rows(admin_bot, AuditEntry)
    assert (entry.actor, entry.action, entry.target, entry.after) == (
        "console:admin", "role.add", f"telegram:{EDITOR}", "editor *")


async def test_moderator_limited_to_a_district_has_that_scope(admin_bot):
    owner = await staff(admin_bot, "owner")
    await owner.send(f"/admin add telegram:{MODERATOR} moderator Suur-Tapiola")
    await owner.send("/admin add matrix:@mod:example.org moderator")
    [scoped, everywhere] = sorted(rows(admin_bot, Role), key=lambda r: r.platform, reverse=True)
    assert (scoped.platform_id, scoped.role, scoped.district_id) == (
        MODERATOR, "moderator", "suur-tapiola")
    assert everywhere.district_id is None

    def incoming(platform: str, user_id: str) -> Incoming:
        return Incoming(platform=platform, user_id=user_id, chat_id=user_id)
    assert admin_bot.role_scopes(incoming("telegram", MODERATOR), "moderator") == {"suur-tapiola"}
    assert admin_bot.role_scopes(incoming("matrix", "@mod:example.org"), "moderator") is None
    assert admin_bot.role_scopes(incoming("console", "admin"), "moderator") is None
    assert admin_bot.role_scopes(incoming("console", "resident-1"), "moderator") == set()
    assert admin_bot.role_scopes(incoming("telegram", MODERATOR), "editor") == set()


@pytest.mark.parametrize("address", ["telegram:@someone", "telegram:someone", "matrix:someone",
                                     "matrix:@someone", "@someone:example.org", "console:admin",
                                     "telegram:-100123", "signal:12345"])
async def test_only_numeric_telegram_ids_and_full_matrix_ids_are_accepted(admin_bot, address):
    owner = await staff(admin_bot, "owner")
    reply = await owner.text(f"/admin add {address} editor")
    assert reply.startswith(f'"{address.split()[0]}" ei ole kelvollinen tunniste')
    assert rows(admin_bot, Role) == [] and rows(admin_bot, AuditEntry) == []


async def test_bad_role_or_district_grants_nothing(admin_bot):
    owner = await staff(admin_bot, "owner")
    assert "Tuntematon rooli" in await owner.text("/admin add telegram:5 owner")
    assert "vain moderaattorille" in await owner.text("/admin add telegram:5 editor Tapiola")
    assert "En tunnista aluetta" in await owner.text("/admin add telegram:5 moderator Atlantis")
    assert "Käyttö" in await owner.text("/admin add telegram:5")
    assert rows(admin_bot, Role) == []


async def test_granting_twice_keeps_one_row(admin_bot):
    owner = await staff(admin_bot, "owner")
    await owner.send("/admin add telegram:5 moderator tapiola")
    again = await owner.text("/admin lisää telegram:5 moderator Tapiola")
    assert "on jo moderaattori (Tapiola)" in again
    assert len(rows(admin_bot, Role)) == 1 and len(rows(admin_bot, AuditEntry)) == 1


async def test_remove_one_role_then_all(admin_bot):
    owner = await staff(admin_bot, "owner")
    for text in ("/admin add telegram:5 editor", "/admin add telegram:5 moderator Tapiola",
                 "/admin add telegram:5 moderator Leppävaara", "/admin add telegram:6 editor"):
        await owner.send(text)
    assert "1" in await owner.text("/admin remove telegram:5 moderator Tapiola")
    assert {(r.platform_id, r.role, r.district_id) for r in rows(admin_bot, Role)} == {
        ("5", "editor", None), ("5", "moderator", "leppavaara"), ("6", "editor", None)}
    assert "2" in await owner.text("/admin poista telegram:5")
    assert [(r.platform_id, r.role) for r in rows(admin_bot, Role)] == [("6", "editor")]
    assert "ei ollut tällaista roolia" in await owner.text("/admin remove telegram:5 editor")
    removals = [e for e in rows(admin_bot, AuditEntry) if e.action == "role.remove"]
    assert [e.before for e in removals] == ["moderator tapiola",
                                            "editor *, moderator leppavaara"]


async def test_removed_role_stops_working_at_once(admin_bot):
    owner = await staff(admin_bot, "owner")
    editor = await staff(admin_bot, "editor")
    assert "Palaute kaupungille" in await editor.text("/answer show sample-feedback")
    await owner.send(f"/admin remove telegram:{EDITOR} editor")
    assert await editor.text("/answer show sample-feedback") == unknown(admin_bot, "answer")


async def test_list_shows_owners_and_grants(admin_bot):
    owner = await staff(admin_bot, "owner")
    assert "Muita rooleja ei ole annettu" in await owner.text("/admin list")
    await owner.send("/admin add telegram:5 moderator Tapiola")
    listing = await owner.text("/roolit lista")
    assert "console:admin: omistaja" in listing
    assert "telegram:5: moderaattori, Tapiola (antoi console:admin" in listing


async def test_roles_survive_a_restart(admin_bot, tmp_path):
    owner = await staff(admin_bot, "owner")
    await owner.send(f"/admin add telegram:{EDITOR} editor")
    again = make_admin_bot(tmp_path)
    editor = await finnish(Chat(again, user_id=EDITOR, platform="telegram"))
    assert "Palaute kaupungille" in await editor.text("/answer show sample-feedback")
    again.db.dispose()


async def test_role_commands_stay_out_of_group_chats(admin_bot):
    owner = Chat(admin_bot, user_id="admin")
    replies = await admin_bot.handle(Incoming(platform="console", user_id="admin", chat_id="group",
                                              text="/admin list", group=True))
    assert replies[0].text == admin_bot.texts.get("fi", "admin_private_only")
    assert owner  # the owner's private chat is unaffected
    assert rows(admin_bot, Role) == []


# nothing for those without the role ----------------------------------------------

ADMIN_COMMANDS = [
    "/admin add telegram:5 editor", "/admin remove telegram:5", "/admin list", "/roolit list",
    "/answer show sample-feedback", "/answer edit sample-feedback fi",
    "/answer phrase add sample-feedback fi Uusi kysymys?", "/answer add uusi-aihe",
    "/answer history sample-feedback", "/answer undo sample-feedback",
    "!answer undo sample-feedback",
    "/vastaus show sample-feedback", "/unanswered", "/unanswered link 1 sample-feedback",
    "/stats", "/tilastot", "/audit", "/audit 5", "/loki",
]


@pytest.mark.parametrize("command", ADMIN_COMMANDS)
async def test_a_resident_gets_the_unknown_command_answer_and_changes_nothing(admin_bot, command):
    owner = await staff(admin_bot, "owner")
    await owner.send("/admin add telegram:5 editor")
    editor = await staff(admin_bot, "editor")
    await editor.send("/answer phrase add sample-feedback fi Mihin palaute menee?")
    resident = await staff(admin_bot, None)
    await resident.send("Milloin uimahalli aukeaa?")  # one unanswered question to link
    before, knowledge = snapshot(admin_bot), admin_bot.knowledge
    name = command[1:].split()[0]
    assert await resident.text(command) == unknown(admin_bot, name)
    assert snapshot(admin_bot) == before and admin_bot.knowledge is knowledge
    resident_id = admin_bot.residents.find("console", "resident-1").id
    assert admin_bot.residents.flow(resident_id) is None


@pytest.mark.parametrize("command", ["/admin list", "/admin add telegram:5 editor", "/audit"])
@pytest.mark.parametrize("role", ["editor", "moderator"])
async def test_editors_and_moderators_cannot_use_owner_commands(admin_bot, command, role):
    chat = await staff(admin_bot, role)
    before = snapshot(admin_bot)
    assert await chat.text(command) == unknown(admin_bot, command[1:].split()[0])
    assert snapshot(admin_bot) == before


async def test_moderators_cannot_curate_answers(admin_bot):
    moderator = await staff(admin_bot, "moderator")
    before = snapshot(admin_bot)
    for command in ("/answer show sample-feedback", "/answer undo sample-feedback", "/unanswered"):
        assert await moderator.text(command) == unknown(admin_bot, command[1:].split()[0])
    assert snapshot(admin_bot) == before


async def test_resident_help_lists_no_admin_command(admin_bot):
    resident = await staff(admin_bot, None)
    help_text = await resident.text("/help")
    for name in ("/admin", "/answer", "/unanswered", "/stats", "/audit"):
        assert name not in help_text
    owner_help = await (await staff(admin_bot, "owner")).text("/help")
    for name in ("/admin", "/answer", "/unanswered", "/audit"):
        assert name in owner_help


# district news within a moderator's scope -----------------------------------------

async def post(chat: Chat, text: str) -> str:
    """Send `/news ...`, confirm the preview if one came, and return the last reply's text."""
    [reply] = await chat.send(text)
    if reply.choices and reply.choices[0].value.startswith("news:ok:"):
        [reply] = await chat.send(choice=reply.choices[0].value)
    return reply.text


def news_items(bot: Assistant) -> list:
    return [(item.district_id, item.author) for item in rows(bot, NewsItem)]


async def test_a_scoped_moderator_posts_only_in_their_districts(admin_bot):
    owner = await staff(admin_bot, "owner")
    await owner.send(f"/admin add telegram:{MODERATOR} moderator Suur-Tapiola")
    moderator = await finnish(Chat(admin_bot, user_id=MODERATOR, platform="telegram"))
    refused = admin_bot.texts.get("fi", "admin_news_out_of_scope", districts="Suur-Tapiola")
    assert await post(moderator, "/news Leppävaara Katutöitä") == refused
    assert await post(moderator, "/news all Katutöitä") == refused
    assert news_items(admin_bot) == []
    await post(moderator, "/news Suur-Tapiola Asukasilta")
    await post(moderator, "/news Tapiola Kirjasto kiinni")  # a city district of Suur-Tapiola
    assert news_items(admin_bot) == [("suur-tapiola", f"telegram:{MODERATOR}"),
                                     ("tapiola", f"telegram:{MODERATOR}")]


async def test_unscoped_moderators_and_owners_post_anywhere(admin_bot):
    owner = await staff(admin_bot, "owner")
    moderator = await staff(admin_bot, "moderator")
    await post(moderator, "/news Leppävaara Katutöitä")
    await post(owner, "/news all Kaikille")
    assert news_items(admin_bot) == [("leppavaara", f"telegram:{MODERATOR}"),
                                     ("all", "console:admin")]


async def test_a_scoped_moderator_is_offered_only_their_candidates(admin_bot):
    owner = await staff(admin_bot, "owner")
    await owner.send(f"/admin add telegram:{MODERATOR} moderator Leppävaara")
    moderator = await finnish(Chat(admin_bot, user_id=MODERATOR, platform="telegram"))
    refused = admin_bot.texts.get("fi", "admin_news_out_of_scope", districts="Leppävaara")
    [question] = await moderator.send("/news Oleri Kokous")  # "Olari?" is in Suur-Matinkylä
    assert question.text == refused
    await owner.send(f"/admin add telegram:{MODERATOR} moderator Suur-Matinkylä")
    [question] = await moderator.send("/news Oleri Kokous")
    [olari] = [c.value for c in question.choices]
    assert olari.endswith(":olari")
    forged = olari.replace(":olari", ":leppavaara-no")  # a district that does not exist
    assert await moderator.text(choice=forged) == admin_bot.texts.get("fi", "choice_expired")
    await owner.send(f"/admin remove telegram:{MODERATOR} moderator Suur-Matinkylä")
    assert await moderator.text(choice=olari) == refused  # the scope is checked again
    assert news_items(admin_bot) == []
