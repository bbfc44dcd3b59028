"""The audit log: every admin action is recorded; owners read it with `/audit [n]`."""

from __future__ import annotations

from assistant.messages import Incoming
from assistant.store.admin import AuditEntry
from assistant.unanswered import keep
from tests.assistant.test_admin_roles import admin_bot, rows, snapshot, staff, unknown  # noqa: F401
from tests.conftest import Chat


def entries(bot) -> list[AuditEntry]:
    return sorted(rows(bot, AuditEntry), key=lambda e: e.id)


async def test_every_admin_action_is_audited(admin_bot):
    owner = await staff(admin_bot, "owner")
    await owner.send("/admin add telegram:1001 editor")
    editor = Chat(admin_bot, user_id="1001", platform="telegram")
    await editor.send("/kieli fi")
    await editor.send("/answer edit sample-feedback fi")
    [preview] = await editor.send("Uusi vastaus.")
    await editor.send(choice=preview.choices[0].value)
    await editor.send("/answer undo sample-feedback")
    await editor.send("/answer phrase add sample-feedback fi Minne palaute menee?")
    keep(admin_bot, "Milloin uimahalli aukeaa?", "fi")
    await editor.send("/unanswered link 1 sample-initiative")
    resident = Chat(admin_bot)
    await resident.send("/palaute Lisää penkkejä puistoon")
    reference = admin_bot.feedback.all_items()[0].reference
    await owner.send(f"/reply {reference} Kiitos!")
    await owner.send(f"/feedback close {reference}")
    await owner.send("/admin remove telegram:1001")
    assert [(e.actor, e.action, e.target) for e in entries(admin_bot)] == [
        ("console:admin", "role.add", "telegram:1001"),
        ("telegram:1001", "answer.edit", "sample-feedback/fi"),
        ("telegram:1001", "answer.undo", "sample-feedback/fi"),
        ("telegram:1001", "answer.phrase", "sample-feedback/fi"),
        ("telegram:1001", "unanswered.link", "#1 -> sample-initiative/fi"),
        ("console:admin", "feedback.reply", reference),
        ("console:admin", "feedback.close", reference),
        ("console:admin", "role.remove", "telegram:1001"),
    ]
    reply = entries(admin_bot)[5]
    assert (reply.before, reply.after) == ("", "Kiitos!")
    assert all(e.created_at is not None for e in entries(admin_bot))


async def test_audit_shows_the_latest_entries_newest_first(admin_bot):
    for n in range(60):
        admin_bot.audit(f"telegram:{n}", "role.add", f"telegram:{1000 + n}", "", f"editor {n}")
    owner = await staff(admin_bot, "owner")
    lines = (await owner.text("/audit")).splitlines()
    assert len(lines) == 11 and "(uusin ensin, 10 kpl)" in lines[0]
    assert "telegram:59: role.add telegram:1059: – → editor 59" in lines[1]
    assert "telegram:50:" in lines[10]
    assert len((await owner.text("/audit 3")).splitlines()) == 4
    assert len((await owner.text("/loki 500")).splitlines()) == 51
    assert len((await owner.text("/audit 0")).splitlines()) == 2
    assert "Käyttö" in await owner.text("/audit kaikki")


async def test_audit_is_empty_at_first_and_private(admin_bot):
    owner = await staff(admin_bot, "owner")
    assert await owner.text("/audit") == admin_bot.texts.get("fi", "admin_audit_empty")
    [reply] = await admin_bot.handle(Incoming(platform="console", user_id="admin",
                                              chat_id="group", text="/audit", group=True))
    assert reply.text == admin_bot.texts.get("fi", "admin_private_only")


async def test_audit_is_for_owners_only(admin_bot):
    admin_bot.audit("console:admin", "role.add", "telegram:5", "", "editor *")
    chats = [await staff(admin_bot, None), await staff(admin_bot, "editor"),
             await staff(admin_bot, "moderator")]
    before = snapshot(admin_bot)
    for chat in chats:
        assert await chat.text("/audit") == unknown(admin_bot, "audit")
        assert await chat.text("/audit 50") == unknown(admin_bot, "audit")
    assert snapshot(admin_bot) == before


async def test_news_posts_are_audited(admin_bot):
    owner = await staff(admin_bot, "owner")
    [preview] = await owner.send("/news Tapiola Asukasilta torstaina")
    await owner.send(choice=preview.choices[0].value)
    [entry] = entries(admin_bot)
    assert (entry.actor, entry.action, entry.after) == ("console:admin", "news.post",
                                                        "Asukasilta torstaina")
    assert entry.target.endswith(" tapiola")
