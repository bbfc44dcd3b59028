"""Editors curate answers by chat: edit with a preview, phrasings, new topics, history, undo."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys

from assistant.answers import compose
from assistant.kb_export import check_topic
from assistant.messages import Incoming
from assistant.store.admin import AnswerRevision, AuditEntry
from tests.assistant.test_admin_roles import (  # noqa: F401
    admin_bot,
    make_admin_bot,
    rows,
    snapshot,
    staff,
    unknown,
)
from tests.conftest import REPO

QUESTION = "Miten annan palautetta kaupungille?"
OLD_ANSWER = "Palautetta voi antaa palautepalvelussa."
NEW_ANSWER = "Palautteen voi antaa kaupungin palautepalvelussa.\nSe on auki aina."


async def edit_answer(chat, topic: str = "sample-feedback", language: str = "fi",
                      text: str = NEW_ANSWER):
    """Start the edit, send the text, and return the preview reply (not yet saved)."""
    await chat.send(f"/answer edit {topic} {language}")
    [preview] = await chat.send(text)
    return preview


def revisions(bot) -> list[AnswerRevision]:
    return sorted(rows(bot, AnswerRevision), key=lambda r: r.id)


async def test_editor_changes_the_finnish_answer_and_residents_get_it(admin_bot):
    editor = await staff(admin_bot, "editor")
    ask = await editor.text("/answer edit sample-feedback fi")
    assert OLD_ANSWER in ask
    [preview] = await editor.send(NEW_ANSWER)
    assert NEW_ANSWER in preview.text
    assert [c.value.split(":")[1] for c in preview.choices] == ["ok", "no"]
    assert revisions(admin_bot) == []  # nothing is saved before the first button
    assert OLD_ANSWER in compose(admin_bot, QUESTION, "fi").text
    assert "Tallennettu" in await editor.text(choice=preview.choices[0].value)
    [revision] = revisions(admin_bot)
    assert (revision.topic_id, revision.language, revision.field, revision.value,
            revision.author, revision.undone) == (
        "sample-feedback", "fi", "answer", NEW_ANSWER, "telegram:1001", False)
    answer = compose(admin_bot, QUESTION, "fi")
    assert answer.topic_id == "sample-feedback" and NEW_ANSWER in answer.text
    assert OLD_ANSWER not in answer.text
    assert "Feedback can be given" in compose(admin_bot, QUESTION, "en").text  # others unchanged
    [entry] = [e for e in rows(admin_bot, AuditEntry) if e.action == "answer.edit"]
    assert (entry.actor, entry.target, entry.before, entry.after) == (
        "telegram:1001", "sample-feedback/fi", OLD_ANSWER, NEW_ANSWER)


async def test_ask_on_the_same_database_answers_with_the_new_text(admin_bot, tmp_path):
    editor = await staff(admin_bot, "editor")
    preview = await edit_answer(editor)
    await editor.send(choice=preview.choices[0].value)
    env = dict(os.environ, DATABASE_URL=admin_bot.settings.database_url,
               KNOWLEDGE_DIR=str(admin_bot.settings.knowledge_dir), PYTHONPATH=str(REPO))
    command = [sys.executable, "-m", "assistant", "ask", "--language", "fi", QUESTION]
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert NEW_ANSWER in result.stdout and OLD_ANSWER not in result.stdout


async def test_undo_brings_the_old_answer_back(admin_bot):
    editor = await staff(admin_bot, "editor")
    for text in ("Ensimmäinen uusi vastaus.", "Toinen uusi vastaus."):
        preview = await edit_answer(editor, text=text)
        await editor.send(choice=preview.choices[0].value)
    assert "Toinen uusi vastaus." in compose(admin_bot, QUESTION, "fi").text
    assert "#2" in await editor.text("/answer undo sample-feedback")
    assert "Ensimmäinen uusi vastaus." in compose(admin_bot, QUESTION, "fi").text
    await editor.send("/answer kumoa sample-feedback")
    assert OLD_ANSWER in compose(admin_bot, QUESTION, "fi").text
    assert [r.undone for r in revisions(admin_bot)] == [True, True]
    assert "ei ole kumottavia" in await editor.text("/answer undo sample-feedback")
    undos = [e for e in rows(admin_bot, AuditEntry) if e.action == "answer.undo"]
    assert [(e.before, e.after) for e in sorted(undos, key=lambda e: e.id)] == [
        ("Toinen uusi vastaus.", "Ensimmäinen uusi vastaus."),
        ("Ensimmäinen uusi vastaus.", OLD_ANSWER)]


async def test_cancel_button_and_stale_buttons_save_nothing(admin_bot):
    editor = await staff(admin_bot, "editor")
    first = await edit_answer(editor, text="Luonnos yksi.")
    second = (await editor.send("Luonnos kaksi."))[0]  # a new text replaces the preview
    assert "Luonnos kaksi." in second.text
    expired = admin_bot.texts.get("fi", "choice_expired")
    assert await editor.text(choice=first.choices[0].value) == expired
    assert "mitään ei tallennettu" in await editor.text(choice=second.choices[1].value)
    assert await editor.text(choice=second.choices[0].value) == expired
    assert revisions(admin_bot) == []
    assert OLD_ANSWER in compose(admin_bot, QUESTION, "fi").text


async def test_typed_number_confirms_on_matrix_and_console(admin_bot):
    editor = await staff(admin_bot, "editor")
    await edit_answer(editor)
    assert "Tallennettu" in await editor.text("1")
    assert [r.value for r in revisions(admin_bot)] == [NEW_ANSWER]


async def test_too_long_answer_is_refused(admin_bot):
    editor = await staff(admin_bot, "editor")
    await editor.send("/answer edit sample-feedback fi")
    reply = await editor.text("x" * 901)
    assert "901" in reply and "900" in reply
    assert revisions(admin_bot) == []


async def test_cancel_command_leaves_the_edit(admin_bot):
    editor = await staff(admin_bot, "editor")
    await edit_answer(editor)
    await editor.send("/peru")
    assert compose(admin_bot, QUESTION, "fi").topic_id == "sample-feedback"
    assert OLD_ANSWER in await editor.text(QUESTION)  # free text is a question again
    assert revisions(admin_bot) == []


async def test_unknown_topic_or_language(admin_bot):
    editor = await staff(admin_bot, "editor")
    assert "Aihetta \"nothing\" ei ole" in await editor.text("/answer edit nothing fi")
    assert "Tuntematon kieli" in await editor.text("/answer edit sample-feedback de")
    assert "Käyttö" in await editor.text("/answer")
    assert "Käyttö" in await editor.text("/answer frobnicate")
    assert revisions(admin_bot) == []


async def test_show_gives_every_language(admin_bot):
    editor = await staff(admin_bot, "editor")
    shown = await editor.text("/answer näytä sample-feedback")
    for part in ("Palaute kaupungille", "Respons till staden", "Feedback to the city", OLD_ANSWER):
        assert part in shown


async def test_phrase_add_makes_a_new_question_answerable(admin_bot):
    editor = await staff(admin_bot, "editor")
    phrase = "Kenelle kerron rikkinäisestä penkistä?"
    assert compose(admin_bot, phrase, "fi").topic_id != "sample-feedback"
    reply = await editor.text(f"/answer phrase add sample-feedback fi {phrase}")
    assert phrase in reply
    [revision] = revisions(admin_bot)
    assert (revision.field, revision.language, revision.value) == ("question", "fi", phrase)
    assert compose(admin_bot, phrase, "fi").topic_id == "sample-feedback"
    assert "jo tämä kysymysmuoto" in await editor.text(
        f"/answer phrase add sample-feedback fi {phrase.upper()}")
    assert len(revisions(admin_bot)) == 1
    assert [e.action for e in rows(admin_bot, AuditEntry)] == ["answer.phrase"]
    assert "Käyttö" in await editor.text("/answer phrase add sample-feedback fi")


async def test_history_lists_changes_newest_first_with_author(admin_bot):
    editor = await staff(admin_bot, "editor")
    assert "ei ole chatissa tehtyjä" in await editor.text("/answer history sample-feedback")
    await editor.send("/answer phrase add sample-feedback sv Vart skickar jag respons?")
    preview = await edit_answer(editor)
    await editor.send(choice=preview.choices[0].value)
    await editor.send("/answer undo sample-feedback")
    lines = (await editor.text("/answer history sample-feedback")).splitlines()
    assert lines[1].startswith("#2 ") and "telegram:1001" in lines[1]
    assert "vastaus (suomi)" in lines[1] and lines[1].endswith("(kumottu)")
    assert lines[2].startswith("#1 ") and "Vart skickar jag respons?" in lines[2]
    assert "kumottu" not in lines[2]


NEW_TOPIC_STEPS = [
    "Kirjastot",
    "Espoon kirjastot ovat avoinna joka päivä.",
    "Missä on lähin kirjasto?\nMilloin kirjasto on auki?\n- Voiko kirjastossa tulostaa?",
    "Kirjaston aukioloajat; Kirjastokortti espoo; Mistä saan kirjastokortin",
    "kirjasto, kirjastokortti, aukioloaika, laina, tulostus, Sello",
    "Bibliotek", "Esbos bibliotek är öppna varje dag.",
    "Var finns närmaste bibliotek?; När är biblioteket öppet?; Kan man skriva ut på biblioteket?; "
    "Bibliotekskort i Esbo; Bibliotekets öppettider; Var får jag ett bibliotekskort?",
    "bibliotek, bibliotekskort, öppettider, lån, utskrift, Sello",
    "Libraries", "Espoo's libraries are open every day.",
    "Where is the nearest library?, When is the library open?, Can I print at the library?, "
    "library card Espoo, library opening hours, Where do I get a library card?",
    "library\nlibrary card, opening hours, loan, printing, Sello",
]


async def test_new_topic_by_guided_form_is_answered_and_passes_the_check(admin_bot, tmp_path):
    editor = await staff(admin_bot, "editor")
    assert "Kieli: suomi" in await editor.text("/answer add kirjastot")
    replies = [await editor.send(text) for text in NEW_TOPIC_STEPS]
    assert "Sain 3. Tarvitaan vielä 3" in replies[2][0].text
    assert "hakusanaa" in replies[3][0].text and "Kieli: ruotsi" in replies[4][0].text
    preview = replies[-1][0]
    for part in ("kirjastot", "Kirjastot", "Bibliotek", "Libraries", "Sello"):
        assert part in preview.text
    assert revisions(admin_bot) == []
    assert "tallennettu" in await editor.text(choice=preview.choices[0].value)
    [revision] = revisions(admin_bot)
    assert (revision.topic_id, revision.field, revision.language) == ("kirjastot", "topic", "")
    topic = admin_bot.knowledge.get("kirjastot")
    assert topic.sources[0].startswith("added by chat by telegram:1001 on ")
    assert topic.links == () and len(topic.text("fi").questions) == 6
    assert "Voiko kirjastossa tulostaa?" in topic.text("fi").questions  # list mark dropped
    assert topic.text("en").keywords[:2] == ("library", "library card")
    assert check_topic(topic, dt.date(2026, 12, 1)) == []
    answer = compose(admin_bot, "Milloin kirjasto on auki?", "fi")
    assert answer.topic_id == "kirjastot" and "avoinna joka päivä" in answer.text
    assert compose(admin_bot, "When is the library open?", "en").topic_id == "kirjastot"
    [entry] = [e for e in rows(admin_bot, AuditEntry) if e.action == "answer.add"]
    assert (entry.target, entry.after) == ("kirjastot", "Kirjastot")
    again = make_admin_bot(tmp_path)
    assert again.knowledge.get("kirjastot") is not None
    again.db.dispose()


async def test_guided_form_asks_until_the_check_has_enough_phrasings(admin_bot):
    editor = await staff(admin_bot, "editor")
    await editor.send("/answer add kirjastot")
    await editor.send("Kirjastot")
    await editor.send("Kirjastot ovat auki.")
    reply = await editor.text("Missä on kirjasto?\nMissä on kirjasto?\nKirjasto auki?")
    assert "Sain 2. Tarvitaan vielä 4" in reply
    assert "Sain 3. Tarvitaan vielä 3" in await editor.text("missä on KIRJASTO?; Kirjastokortti")
    assert "hakusanaa" in await editor.text("Kirjaston aukiolo, Lainaus, Tulostus")
    flow = admin_bot.residents.flow(admin_bot.residents.find("telegram", "1001").id)
    assert flow.data["texts"]["fi"]["questions"] == [
        "Missä on kirjasto?", "Kirjasto auki?", "Kirjastokortti", "Kirjaston aukiolo",
        "Lainaus", "Tulostus"]
    assert flow.step == "keywords"
    await editor.send("/peru")
    assert admin_bot.residents.flow(admin_bot.residents.find("telegram", "1001").id) is None
    assert revisions(admin_bot) == []


async def test_new_topic_id_must_be_new_and_well_formed(admin_bot):
    editor = await staff(admin_bot, "editor")
    assert "on jo olemassa" in await editor.text("/answer add sample-feedback")
    assert "ei kelpaa" in await editor.text("/answer add Kirjasto_2")
    assert "Käyttö" in await editor.text("/answer add kaksi sanaa")
    assert admin_bot.residents.flow(admin_bot.residents.find("telegram", "1001").id) is None


async def test_edits_survive_a_restart(admin_bot, tmp_path):
    editor = await staff(admin_bot, "editor")
    preview = await edit_answer(editor)
    await editor.send(choice=preview.choices[0].value)
    again = make_admin_bot(tmp_path)
    assert NEW_ANSWER in compose(again, QUESTION, "fi").text
    again.db.dispose()


async def test_open_edit_of_a_demoted_editor_is_dropped(admin_bot):
    editor = await staff(admin_bot, "editor")
    await editor.send("/answer edit sample-feedback fi")
    admin_bot.role_grants.revoke("telegram", "1001")
    assert OLD_ANSWER in await editor.text(QUESTION)  # answered as a question, not saved
    assert admin_bot.residents.flow(admin_bot.residents.find("telegram", "1001").id) is None
    assert revisions(admin_bot) == []


async def test_residents_cannot_press_an_editors_buttons(admin_bot):
    editor = await staff(admin_bot, "editor")
    preview = await edit_answer(editor)
    resident = await staff(admin_bot, None)
    before = snapshot(admin_bot)
    assert await resident.text(choice=preview.choices[0].value) == admin_bot.texts.get(
        "fi", "choice_expired")
    assert snapshot(admin_bot) == before
    assert await resident.text("/answer edit sample-feedback fi") == unknown(admin_bot, "answer")


async def test_edits_start_only_in_private_and_ignore_group_talk(admin_bot):
    editor = await staff(admin_bot, "editor")

    def in_group(text: str) -> Incoming:
        return Incoming(platform="telegram", user_id="1001", chat_id="-100", text=text, group=True)
    [reply] = await admin_bot.handle(in_group("/answer edit sample-feedback fi"))
    assert reply.text == admin_bot.texts.get("fi", "admin_private_only")
    await editor.send("/answer edit sample-feedback fi")  # started in the private chat
    [reply] = await admin_bot.handle(in_group(QUESTION))  # said in a group meanwhile
    assert OLD_ANSWER in reply.text
    [preview] = await editor.send(NEW_ANSWER)  # the private chat's next text is the answer
    assert NEW_ANSWER in preview.text and revisions(admin_bot) == []
