"""The per-message resident read and the conversation-state writes (Core statements and
upserts), on SQLite and PostgreSQL: what `arrive` returns must match what was stored."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlmodel import select

from assistant.store.db import Database
from assistant.store.residents import ConversationState, Residents


@pytest.fixture
def residents(database_url: str) -> Iterator[Residents]:
    database = Database(database_url)
    database.create_all()
    yield Residents(database)
    database.dispose()


def _states(residents: Residents) -> list[ConversationState]:
    with residents.db.session() as session:
        return list(session.exec(select(ConversationState)).all())


def test_first_contact_creates_the_resident_and_later_ones_find_it(residents: Residents) -> None:
    first = residents.arrive("telegram", "501", "501", "sv")
    assert first.created and (first.flow, first.offered) == (None, [])
    resident = first.resident
    assert (resident.language, resident.chat_id, resident.active) == ("sv", "501", True)
    again = residents.arrive("telegram", "501", "501", "fi")
    assert (again.resident.id, again.created, again.resident.language) == (resident.id, False, "sv")
    assert residents.by_id(resident.id).first_seen == again.resident.first_seen
    assert residents.arrive("matrix", "501", "501", "fi").resident.id != resident.id


def test_a_group_message_keeps_the_private_chat_a_new_chat_reactivates(
        residents: Residents) -> None:
    resident = residents.arrive("telegram", "502", "502", "fi").resident
    assert residents.arrive("telegram", "502", None, "fi").resident.chat_id == "502"
    residents.mark_inactive("telegram", "502")
    back = residents.arrive("telegram", "502", "9502", "fi").resident
    assert (back.chat_id, back.active) == ("9502", True)
    stored = residents.by_id(resident.id)
    assert (stored.chat_id, stored.active) == ("9502", True)


def test_offered_choices_and_flow_are_read_back_with_the_resident(residents: Residents) -> None:
    resident_id = residents.arrive("telegram", "503", "503", "fi").resident.id
    residents.set_offered_choices(resident_id, [("Kyllä", "fb:yes"), ("Ei", "fb:no")])
    arrival = residents.arrive("telegram", "503", "503", "fi")
    assert (arrival.flow, arrival.offered) == (None, [("Kyllä", "fb:yes"), ("Ei", "fb:no")])
    residents.set_flow(resident_id, "feedback", "text", {"kind": "idea", "ä": "ö"})
    arrival = residents.arrive("telegram", "503", "503", "fi")
    assert (arrival.flow.name, arrival.flow.step, arrival.flow.data) == (
        "feedback", "text", {"kind": "idea", "ä": "ö"})
    assert arrival.offered == [("Kyllä", "fb:yes"), ("Ei", "fb:no")]  # the upsert kept them
    residents.clear_offered_choices(resident_id)
    arrival = residents.arrive("telegram", "503", "503", "fi")
    assert arrival.offered == [] and arrival.flow.name == "feedback"  # and kept the flow
    residents.clear_flow(resident_id)
    assert residents.arrive("telegram", "503", "503", "fi").flow is None
    assert len(_states(residents)) == 1


def test_a_flow_started_without_state_gets_default_choices(residents: Residents) -> None:
    resident_id = residents.arrive("telegram", "504", "504", "fi").resident.id
    residents.set_flow(resident_id, "news", "district", {})
    [state] = _states(residents)
    assert (state.flow, state.choices, state.data) == ("news", "[]", "{}")


def test_clearing_choices_of_someone_without_state_stores_nothing(residents: Residents) -> None:
    resident_id = residents.arrive("telegram", "505", "505", "fi").resident.id
    residents.clear_offered_choices(resident_id)
    residents.clear_offered_choices(resident_id + 1000)  # a resident forgotten meanwhile
    assert _states(residents) == []
