"""Residents' feedback: the form in three languages, the shortcut, limits; read back from the DB."""

from __future__ import annotations

import datetime as dt
import pytest
from sqlmodel import select

from assistant import feedback
from assistant.messages import Incoming
from assistant.store.feedback import FeedbackItem
from assistant.store.residents import Resident, utcnow
from tests.assistant.feedback_helpers import (  # noqa: F401  (bot is a fixture)
    CITY, REF, bot, flow_of, items, own, values)

FORM_CASES = [
    # language, command, district typed, district shown, message, words of the ack
    ("fi", "/palaute", "Leppävaarassa", "Leppävaara",
     "Puistoon tarvitaan lisää penkkejä ja roska-astioita, kiitos",
     "Kiitos! Palautteesi on vastaanotettu"),
    ("sv", "/respons", "i Alberga", "Alberga",
     "Det behövs fler bänkar och papperskorgar i parken, tack",
     "Tack! Din respons har tagits emot"),
    ("en", "/feedback", "Leppävaara", "Leppävaara",
     "The park needs more benches and bins, thank you",
     "Thank you! Your feedback has been received"),
]


@pytest.mark.parametrize("lang,command,place,place_name,message,thanks", FORM_CASES)
async def test_form_from_command_to_reference(bot, chat_factory, lang, command, place,
                                              place_name, message, thanks):
    chat = chat_factory(bot, language_hint=lang)
    replies = await chat.send(command)
    assert values(replies) == ["fb:k:feedback", "fb:k:proposal", "fb:k:question", "fb:k:fault"]
    replies = await chat.send("2")  # typed number, as on Matrix and the console
    districts = values(replies)
    assert len(districts) == 8 and districts[-1] == "fb:d:-" and "fb:d:suur-tapiola" in districts
    replies = await chat.send(place)
    assert "4000" in own(replies)
    replies = await chat.send(message)
    assert values(replies) == ["fb:r:1", "fb:r:0"]
    summary = own(await chat.send(choice="fb:r:1"))
    assert message in summary and place_name in summary
    assert items(bot) == []  # nothing is stored before the resident confirms
    ack = own(await chat.send(choice="fb:send"))
    assert thanks in ack
    reference = REF.search(ack).group(0)
    [item] = items(bot)
    assert (item.reference, item.kind, item.district_id, item.text) == (
        reference, "proposal", "leppavaara", message)
    assert (item.reply_wanted, item.status) == (True, "new")
    assert flow_of(bot) is None


async def test_district_can_be_skipped_or_chosen_from_candidates(bot, chat_factory):
    chat = chat_factory(bot)
    await chat.send("/palaute")
    await chat.send(choice="fb:k:question")
    replies = await chat.send("ei mikään tunnettu paikka xyz")
    assert "fb:d:-" in values(replies)
    await chat.send(choice="fb:d:-")
    await chat.send("Milloin seuraava asukasilta on?")
    await chat.send(choice="fb:r:0")
    await chat.send(choice="fb:send")
    [item] = items(bot)
    assert (item.kind, item.district_id, item.reply_wanted) == ("question", None, False)


async def test_major_district_button(bot, chat_factory):
    chat = chat_factory(bot)
    await chat.send("/palaute")
    await chat.send(choice="fb:k:feedback")
    await chat.send(choice="fb:d:suur-tapiola")
    await chat.send("Tapiolan kirjastossa on hyvä palvelu")
    await chat.send(choice="fb:r:0")
    await chat.send(choice="fb:send")
    assert items(bot)[0].district_id == "suur-tapiola"


async def test_one_message_feedback_is_filed_at_once(bot, chat_factory):
    chat = chat_factory(bot)
    ack = own(await chat.send("/palaute Pyöräteiden talvikunnossapito on parantunut!"))
    [item] = items(bot)
    assert item.reference in ack
    assert (item.kind, item.district_id, item.text, item.status) == (
        "feedback", None, "Pyöräteiden talvikunnossapito on parantunut!", "new")
    assert item.resident_id == bot.residents.find("console", "resident-1").id


@pytest.mark.parametrize("text,hint", [
    ("haluan antaa palautetta", "fi"), ("Haluaisin antaa palautetta teille", "fi"),
    ("jag vill ge respons", "sv"), ("I want to give feedback", "en"),
])
async def test_wish_to_give_feedback_offers_the_form(bot, chat_factory, text, hint):
    chat = chat_factory(bot, language_hint=hint)
    replies = await chat.send(text)
    assert values(replies) == ["fb:start"] and CITY in own(replies)
    replies = await chat.send(choice="fb:start")
    assert "fb:k:fault" in values(replies)
    assert flow_of(bot).name == "feedback"


async def test_question_about_feedback_still_gets_the_answer(bot, chat_factory):
    chat = chat_factory(bot)
    replies = await chat.send("Miten annan palautetta kaupungille?")
    assert "fb:start" not in values(replies)


async def test_fault_report_points_to_the_city_service(bot, chat_factory):
    chat = chat_factory(bot)
    await chat.send("/palaute")
    assert CITY in own(await chat.send(choice="fb:k:fault"))
    await chat.send(choice="fb:d:-")
    await chat.send("Katuvalo on rikki Kirkkojärventiellä")
    await chat.send(choice="fb:r:0")
    ack = own(await chat.send(choice="fb:send"))
    assert CITY in ack and REF.search(ack)
    assert items(bot)[0].kind == "fault"


async def test_my_feedback_shows_own_items_and_status(bot, chat_factory):
    chat, other = chat_factory(bot), chat_factory(bot, user_id="resident-2")
    await chat.send("/palaute Ensimmäinen palaute")
    await other.send("/palaute Toisen asukkaan palaute")
    mine = own(await chat.send("/omapalaute"))
    assert "Ensimmäinen palaute" in mine and "uusi" in mine
    assert "Toisen asukkaan" not in mine
    theirs = own(await other.send("/omapalaute"))
    assert "Toisen asukkaan palaute" in theirs and "Ensimmäinen" not in theirs
    assert "Et ole vielä" in own(await chat_factory(bot, user_id="r3").send("/omapalaute"))


async def test_text_up_to_4000_characters_is_kept_whole(bot, chat_factory):
    chat = chat_factory(bot)
    await chat.send("/palaute")
    await chat.send(choice="fb:k:feedback")
    await chat.send(choice="fb:d:-")
    too_long = own(await chat.send("a" * 4001))
    assert "4000" in too_long and items(bot) == []
    assert flow_of(bot).step == "text"
    await chat.send("b" * 4000)
    await chat.send(choice="fb:r:0")
    await chat.send(choice="fb:send")
    assert items(bot)[0].text == "b" * 4000


async def test_too_long_text_gets_a_clear_message(bot):
    incoming = Incoming(platform="console", user_id="resident-1", chat_id="c", text="x")
    ctx = bot.context_for(incoming)
    replies = await feedback.text_given(ctx, {"kind": "feedback"}, "x" * 4001)
    assert "4001" in own(replies) and "4000" in own(replies)
    assert bot.residents.flow(ctx.resident.id) is None


@pytest.mark.parametrize("message", ["/palaute \u200b\u200b", "/palaute \u2060"])
async def test_empty_feedback_is_refused(bot, chat_factory, message):
    chat = chat_factory(bot)
    assert "tyhjä" in own(await chat.send(message))
    assert items(bot) == []


async def test_whitespace_in_the_form_is_refused_and_the_form_waits(bot, chat_factory):
    chat = chat_factory(bot)
    await chat.send("/palaute")
    await chat.send(choice="fb:k:feedback")
    await chat.send(choice="fb:d:-")
    assert "tyhjä" in own(await chat.send("   \n "))
    assert flow_of(bot).step == "text" and items(bot) == []


async def test_at_most_ten_items_an_hour(bot, chat_factory):
    chat = chat_factory(bot)
    for n in range(10):
        assert REF.search(own(await chat.send(f"/palaute Viesti numero {n}")))
    assert "10" in own(await chat.send("/palaute Yksitoista"))
    assert "fb:k:feedback" not in values(await chat.send("/palaute"))
    assert len(items(bot)) == 10
    with bot.db.session() as session:
        for item in session.exec(select(FeedbackItem)).all():
            item.created_at = utcnow() - dt.timedelta(minutes=61)
            session.add(item)
    assert REF.search(own(await chat.send("/palaute Tunnin päästä taas")))
    assert len(items(bot)) == 11


def _age_flow(bot, minutes: int) -> None:
    """Pretend the form's last step was answered `minutes` ago."""
    resident = bot.residents.find("console", "resident-1")
    flow = bot.residents.flow(resident.id)
    data = dict(flow.data, saved_at=(utcnow() - dt.timedelta(minutes=minutes)).isoformat())
    bot.residents.set_flow(resident.id, flow.name, flow.step, data)


async def test_form_times_out_and_says_so(bot, chat_factory):
    chat = chat_factory(bot)
    await chat.send("/palaute")
    await chat.send(choice="fb:k:feedback")
    await chat.send(choice="fb:d:-")
    _age_flow(bot, 31)
    replies = await chat.send("Tämä tuli liian myöhään")
    assert "vanheni" in own(replies) and "30" in own(replies) and values(replies) == ["fb:start"]
    assert flow_of(bot) is None and items(bot) == []


async def test_form_still_open_before_the_timeout(bot, chat_factory):
    chat = chat_factory(bot)
    await chat.send("/palaute")
    _age_flow(bot, 29)
    assert "fb:d:-" in values(await chat.send(choice="fb:k:feedback"))


async def test_stale_button_after_timeout(bot, chat_factory):
    chat = chat_factory(bot)
    await chat.send("/palaute")
    _age_flow(bot, 45)
    assert "vanheni" in own(await chat.send(choice="fb:k:feedback"))
    assert flow_of(bot) is None


@pytest.mark.parametrize("command", ["/cancel", "/peru", "/avbryt", "!peru"])
async def test_cancel_leaves_the_form(bot, chat_factory, command):
    chat = chat_factory(bot)
    await chat.send("/palaute")
    await chat.send(choice="fb:k:feedback")
    assert own(await chat.send(command))
    assert flow_of(bot) is None
    await chat.send(choice="fb:d:-")  # an old button does nothing now
    assert items(bot) == [] and flow_of(bot) is None


async def test_cancel_button_at_confirmation(bot, chat_factory):
    chat = chat_factory(bot)
    await chat.send("/palaute")
    await chat.send(choice="fb:k:feedback")
    await chat.send(choice="fb:d:-")
    await chat.send("Jotain")
    await chat.send(choice="fb:r:0")
    assert "Mitään ei lähetetty" in own(await chat.send(choice="fb:cancel"))
    assert items(bot) == [] and flow_of(bot) is None


async def test_form_survives_a_restart(settings, chat_factory):
    from assistant.core import Assistant

    first = Assistant(settings)
    await chat_factory(first).send("/palaute")
    await chat_factory(first).send(choice="fb:k:proposal")
    first.db.dispose()
    second = Assistant(settings)
    chat = chat_factory(second)
    await chat.send(choice="fb:d:-")
    await chat.send("Lisää penkkejä")
    await chat.send(choice="fb:r:0")
    await chat.send(choice="fb:send")
    assert [i.kind for i in items(second)] == ["proposal"]
    second.db.dispose()


async def test_feedback_is_never_taken_in_a_group(bot):
    group = Incoming(platform="console", user_id="resident-1", chat_id="group-1",
                     text="/palaute Tämä on yksityistä", group=True)
    replies = await bot.handle(group)
    assert "yksityis" in own(replies) and items(bot) == []
    with bot.db.session() as session:
        assert session.exec(select(Resident)).one().platform_id == "resident-1"


async def test_resident_text_is_kept_plain(bot, chat_factory):
    chat = chat_factory(bot)
    await chat.send("/palaute <b>kiitos</b> & <script>")
    assert items(bot)[0].text == "<b>kiitos</b> & <script>"
    assert "<b>kiitos</b> & <script>" in own(await chat.send("/omapalaute"))


async def test_form_on_the_shipped_knowledge_and_districts(assistant, chat_factory):
    """The real assistant loads the district file itself, on first use."""
    chat = chat_factory(assistant)
    await chat.send("/palaute")
    await chat.send(choice="fb:k:feedback")
    await chat.send("Matinkylässä")
    await chat.send("Uimahallin aukioloajat ovat hyvät")
    await chat.send(choice="fb:r:0")
    ack = own(await chat.send(choice="fb:send"))
    [item] = items(assistant)
    assert item.reference in ack and item.district_id == "matinkyla"


async def test_question_about_city_feedback_is_answered_not_offered(assistant, chat_factory):
    replies = await chat_factory(assistant).send("Miten annan palautetta kaupungille?")
    assert "fb:start" not in values(replies) and "palautepalvelu" in own(replies)
