"""Recorded Matrix events (as Synapse sends them) turned into the core's Incoming."""

from __future__ import annotations

from typing import Any

from nio import Event, MatrixRoom

from adapters.matrix_incoming import RecentEvents, incoming_from

BOT, ANNA, BERTIL = "@espoo-botti:espoo.fi", "@anna:espoo.fi", "@bertil:matrix.org"


def room(*members: str) -> MatrixRoom:
    matrix_room = MatrixRoom("!room:espoo.fi", BOT)
    matrix_room.add_member(BOT, "Espoo-botti", None)
    for member in members:
        matrix_room.add_member(member, member[1:].split(":")[0].title(), None)
    return matrix_room


def event(content: dict[str, Any], sender: str = ANNA, event_type: str = "m.room.message",
          event_id: str = "$e1") -> Event:
    return Event.parse_event({"type": event_type, "sender": sender, "event_id": event_id,
                              "origin_server_ts": 1_700_000_000_000, "content": content,
                              "room_id": "!room:espoo.fi"})


def text(body: str, **extra: Any) -> dict[str, Any]:
    return {"msgtype": "m.text", "body": body, **extra}


def test_direct_chat_text_becomes_incoming_with_the_room_as_chat() -> None:
    incoming = incoming_from(event(text("miten vaikutan?")), room(ANNA), BOT)

    assert incoming is not None
    assert (incoming.platform, incoming.user_id, incoming.chat_id) == ("matrix", ANNA,
                                                                       "!room:espoo.fi")
    assert (incoming.text, incoming.kind, incoming.group, incoming.message_id) == (
        "miten vaikutan?", "text", False, "$e1")


def test_own_events_and_other_bots_notices_are_ignored() -> None:
    assert incoming_from(event(text("vastaus"), sender=BOT), room(ANNA), BOT) is None
    notice = {"msgtype": "m.notice", "body": "toinen botti"}
    assert incoming_from(event(notice), room(ANNA), BOT) is None


def test_direct_chat_content_the_assistant_cannot_read_has_a_kind_and_no_text() -> None:
    image = {"msgtype": "m.image", "body": "kuva.jpg", "url": "mxc://espoo.fi/kuva"}
    incoming = incoming_from(event(image), room(ANNA), BOT)

    assert incoming is not None and (incoming.kind, incoming.text) == ("file", "")


def test_undecryptable_event_is_encrypted_kind_in_a_direct_chat_only() -> None:
    megolm = {"algorithm": "m.megolm.v1.aes-sha2", "ciphertext": "AwgA", "sender_key": "key",
              "session_id": "s1", "device_id": "DEV"}
    undecryptable = event(megolm, event_type="m.room.encrypted")

    direct = incoming_from(undecryptable, room(ANNA), BOT)
    assert direct is not None and direct.kind == "encrypted"
    assert incoming_from(undecryptable, room(ANNA, BERTIL), BOT) is None


def test_group_answers_commands_and_mentions_only() -> None:
    group = room(ANNA, BERTIL)

    assert incoming_from(event(text("hei kaikki")), group, BOT) is None
    assert incoming_from(event({"msgtype": "m.image", "body": "a", "url": "mxc://a/b"}),
                         group, BOT) is None
    command = incoming_from(event(text("!apua")), group, BOT)
    mention = incoming_from(event(text("Espoo-botti: miten vaikutan?")), group, BOT)

    assert command is not None and (command.text, command.group) == ("!apua", True)
    assert mention is not None and mention.text == "miten vaikutan?"


def test_history_seen_on_joining_is_answered_in_a_direct_chat_but_not_in_a_group() -> None:
    question = event(text("!apua"))

    assert incoming_from(question, room(ANNA), BOT, before_join=True) is not None
    assert incoming_from(question, room(ANNA, BERTIL), BOT, before_join=True) is None


def test_recent_events_know_each_handled_event_id() -> None:
    recent = RecentEvents(capacity=2)
    assert not recent.is_handled("$a")
    recent.handled(["$a"])
    assert recent.is_handled("$a")
    recent.handled(["$b", "$c"])
    assert [recent.is_handled(k) for k in ("$a", "$b", "$c")] == [
        False, True, True]  # "$a" forgotten beyond the capacity
