"""Residents follow districts: /subscribe, /unsubscribe, /subscriptions, /digest."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import text
from sqlmodel import select

from assistant.core import Assistant
from assistant.newsdesk import news_desk
from assistant.store.news import DeliveryPreference, Subscription
from tests.assistant.test_news import news_assistant  # noqa: F401  (fixture)


def followed(assistant: Assistant, user_id: str = "resident-1") -> list[str]:
    resident = assistant.residents.find("console", user_id)
    if resident is None:
        return []
    with assistant.db.session() as session:
        return sorted(session.exec(select(Subscription.district_id).where(
            Subscription.resident_id == resident.id)).all())


def preference(assistant: Assistant, user_id: str = "resident-1") -> DeliveryPreference | None:
    resident = assistant.residents.find("console", user_id)
    with assistant.db.session() as session:
        return session.get(DeliveryPreference, resident.id)


@pytest.fixture
def chat(news_assistant, chat_factory):  # noqa: F811
    return chat_factory(news_assistant)


async def test_subscribe_without_a_district_offers_the_seven_major_districts(chat):
    [reply] = await chat.send("/subscribe")
    assert len(reply.choices) == 7
    assert reply.choices[0].value == "sub:suur-leppavaara"
    assert all(c.value.startswith("sub:") for c in reply.choices)
    assert followed(chat.assistant) == []


async def test_subscribe_by_name_stores_it_and_offers_instant_or_digest(chat):
    [reply] = await chat.send("/tilaa Leppävaarassa")
    assert "Leppävaara" in reply.text
    assert [c.value for c in reply.choices] == ["newsmode:now", "newsmode:8", "newsmode:18"]
    assert followed(chat.assistant) == ["leppavaara"]


async def test_subscribing_twice_keeps_one_row(chat):
    await chat.send("/tilaa Leppävaara")
    [reply] = await chat.send("/tilaa Alberga")
    assert reply.text.startswith(chat.assistant.texts.get("fi", "news_already_subscribed")[:10])
    assert followed(chat.assistant) == ["leppavaara"]


async def test_major_district_button_subscribes(chat):
    [offer] = await chat.send("/subscribe")
    await chat.send(choice=offer.choices[1].value)
    assert followed(chat.assistant) == ["suur-tapiola"]


async def test_typed_number_picks_an_offered_district(chat):
    await chat.send("/subscribe")
    await chat.send("3")
    assert followed(chat.assistant) == ["suur-matinkyla"]


async def test_unsure_name_gets_choices_never_a_guess(chat):
    [reply] = await chat.send("/tilaa Oleri")
    assert [c.value for c in reply.choices] == ["sub:olari"]
    assert followed(chat.assistant) == []
    await chat.send(choice="sub:olari")
    assert followed(chat.assistant) == ["olari"]


async def test_two_districts_in_one_name_get_choices(chat):
    [reply] = await chat.send("/subscribe Leppävaara Tapiola")
    assert {c.value for c in reply.choices} == {"sub:leppavaara", "sub:tapiola"}
    assert followed(chat.assistant) == []


async def test_unknown_name_offers_the_major_districts(chat):
    [reply] = await chat.send("/subscribe Atlantis")
    assert "Atlantis" in reply.text and len(reply.choices) == 7
    assert followed(chat.assistant) == []


async def test_forged_button_for_an_unknown_district_is_refused(chat):
    assert await chat.text(choice="sub:nowhere") == chat.assistant.texts.get("fi", "choice_expired")
    assert followed(chat.assistant) == []


async def test_swedish_alias_answers_in_swedish(news_assistant, chat_factory):  # noqa: F811
    chat = chat_factory(news_assistant, language_hint="sv")
    [reply] = await chat.send("/prenumerera Hagalund")
    assert "Hagalund" in reply.text and "Prenumerationen" in reply.text
    assert followed(news_assistant) == ["tapiola"]


async def test_unsubscribe_one_district(chat):
    await chat.send("/tilaa Leppävaara")
    await chat.send("/tilaa Tapiola")
    await chat.send("/peruta Leppävaara")
    assert followed(chat.assistant) == ["tapiola"]


async def test_unsubscribe_all(chat):
    await chat.send("/tilaa Leppävaara")
    await chat.send("/tilaa Tapiola")
    assert "2" in await chat.text("/avsluta alla")
    assert followed(chat.assistant) == []


async def test_unsubscribe_without_a_name_offers_the_followed_districts(chat):
    await chat.send("/tilaa Leppävaara")
    [reply] = await chat.send("/unsubscribe")
    assert [c.value for c in reply.choices] == ["unsub:leppavaara", "unsub:all"]
    await chat.send(choice="unsub:leppavaara")
    assert followed(chat.assistant) == []


async def test_unsubscribe_something_not_followed_changes_nothing(chat):
    await chat.send("/tilaa Leppävaara")
    reply = await chat.text("/peruta Tapiola")
    assert "Tapiola" in reply
    assert followed(chat.assistant) == ["leppavaara"]


async def test_subscriptions_lists_districts_and_delivery(chat):
    assert await chat.text("/tilaukset") == chat.assistant.texts.get("fi", "news_no_subscriptions")
    await chat.send("/tilaa Leppävaara")
    await chat.send("/tilaa Suur-Tapiola")
    listing = await chat.text("/tilaukset")
    assert "Leppävaara" in listing and "Suur-Tapiola" in listing
    assert chat.assistant.texts.get("fi", "news_mode_instant_is") in listing


async def test_digest_hour_is_stored_and_switched_off(chat):
    news_desk(chat.assistant).clock = lambda: dt.datetime(2025, 1, 15, 10, tzinfo=dt.timezone.utc)
    await chat.send("/tilaa Leppävaara")
    assert "18" in await chat.text("/kooste 18")
    stored = preference(chat.assistant)
    assert stored.digest_hour == 18
    assert stored.last_digest_at == dt.datetime(2025, 1, 15, 10, tzinfo=dt.timezone.utc)
    await chat.send("/digest off")
    assert preference(chat.assistant).digest_hour is None
    await chat.send("/sammandrag kl. 7")
    assert preference(chat.assistant).digest_hour == 7


async def test_mode_buttons_after_subscribing(chat):
    [reply] = await chat.send("/tilaa Leppävaara")
    await chat.send(choice=reply.choices[1].value)
    assert preference(chat.assistant).digest_hour == 8
    await chat.send(choice=reply.choices[0].value)
    assert preference(chat.assistant).digest_hour is None


@pytest.mark.parametrize("bad", ["25", "huomenna", "-1"])
async def test_bad_digest_hour_gets_usage(chat, bad):
    await chat.send("/tilaa Leppävaara")
    assert await chat.text(f"/kooste {bad}") == chat.assistant.texts.get("fi", "news_digest_usage")
    assert preference(chat.assistant) is None


async def test_instant_mode_mentions_quiet_hours(news_assistant, chat_factory):  # noqa: F811
    chat = chat_factory(news_assistant)
    await chat.send("/language en")
    # the test settings turn quiet hours off; this reads the sentence used when they are on
    assert "22:00" in news_assistant.texts.get("en", "news_mode_instant_quiet_is", start=22, end=8)
    assert news_assistant.texts.get("en", "news_mode_instant_is") in await chat.text("/digest")


async def test_forgetting_a_resident_removes_their_subscriptions(chat):
    await chat.send("/tilaa Leppävaara")
    await chat.send("/kooste 8")
    with chat.assistant.db.session() as session:
        session.execute(text("DELETE FROM resident"))
    with chat.assistant.db.session() as session:
        assert session.exec(select(Subscription)).all() == []
        assert session.exec(select(DeliveryPreference)).all() == []


async def test_subscription_commands_stay_out_of_group_chats(assistant):
    from assistant.messages import Incoming

    for text in ("/subscribe Tapiola", "/subscriptions", "/unsubscribe all", "/digest 18"):
        replies = await assistant.handle(Incoming(platform="telegram", user_id="5", chat_id="-100",
                                                  text=text, group=True))
        assert [r.text for r in replies] == [assistant.texts.get("fi", "private_chat_only")]
    with assistant.db.session() as session:
        from sqlmodel import select

        from assistant.store.news import Subscription
        assert session.exec(select(Subscription)).all() == []
