"""Matrix content both ways, on recorded event content (no homeserver)."""

from __future__ import annotations

import pytest

from adapters.matrix_format import (
    event_kind,
    file_content,
    invite_allowed,
    mentions,
    message_text,
    notice_content,
    strip_mention,
)
from assistant.messages import Choice, Reply

BOT = "@espoo-botti:espoo.fi"
NAMES = ("Espoo-botti",)


def test_notice_has_escaped_html_twin_and_numbered_choices() -> None:
    reply = Reply("Valitse <kieli> & paina\nnumeroa", (Choice("Suomi", "lang:fi"),
                                                      Choice("Svenska", "lang:sv")))

    content = notice_content(reply)

    assert content["msgtype"] == "m.notice"
    assert content["body"] == "Valitse <kieli> & paina\nnumeroa\n\n1. Suomi\n2. Svenska"
    assert content["format"] == "org.matrix.custom.html"
    assert content["formatted_body"] == (
        "Valitse &lt;kieli&gt; &amp; paina<br>numeroa<br><br>1. Suomi<br>2. Svenska")
    assert "m.relates_to" not in content


def test_notice_quotes_the_question_only_for_a_matrix_event_id() -> None:
    assert notice_content(Reply("x"), "$abc")["m.relates_to"] == {
        "m.in_reply_to": {"event_id": "$abc"}}
    assert "m.relates_to" not in notice_content(Reply("x"), "17")


def test_file_content_puts_the_url_in_file_when_encrypted() -> None:
    plain = file_content("mydata.json", 2, "mxc://hs/a")
    keys = {"key": {"k": "secret"}, "iv": "iv", "hashes": {"sha256": "h"}, "v": "v2"}
    secret = file_content("mydata.json", 2, "mxc://hs/b", keys)

    assert plain["url"] == "mxc://hs/a" and "file" not in plain
    assert plain["info"] == {"mimetype": "application/json", "size": 2}
    assert secret["file"] == {**keys, "url": "mxc://hs/b"} and "url" not in secret


@pytest.mark.parametrize(("event_type", "content", "kind"), [
    ("m.room.message", {"msgtype": "m.text", "body": "hei"}, "text"),
    ("m.room.message", {"msgtype": "m.emote", "body": "vilkuttaa"}, "text"),
    ("m.room.message", {"msgtype": "m.notice", "body": "toinen botti"}, None),
    ("m.room.message", {"msgtype": "m.image", "body": "a.jpg", "url": "mxc://a/b"}, "file"),
    ("m.room.message", {"msgtype": "m.file", "body": "a.pdf", "url": "mxc://a/b"}, "file"),
    ("m.room.message", {"msgtype": "m.location", "body": "Tapiola",
                        "geo_uri": "geo:60.17,24.80"}, "location"),
    ("m.room.message", {"msgtype": "m.text", "body": "* korjattu",
                        "m.new_content": {"msgtype": "m.text", "body": "korjattu"},
                        "m.relates_to": {"rel_type": "m.replace", "event_id": "$a"}}, "edit"),
    ("m.room.message", {"msgtype": "org.example.poll", "body": "?"}, "other"),
    ("m.sticker", {"body": "kissa", "url": "mxc://a/b"}, "sticker"),
    ("m.reaction", {"m.relates_to": {"rel_type": "m.annotation", "key": "👍"}}, None),
])
def test_event_kind(event_type: str, content: dict, kind: str | None) -> None:
    assert event_kind(event_type, content) == kind


def test_reply_fallback_is_not_part_of_the_question() -> None:
    content = {"msgtype": "m.text",
               "body": "> <@espoo-botti:espoo.fi> Kuntalaisaloite\n> on tapa...\n\nentä nuoret?",
               "m.relates_to": {"m.in_reply_to": {"event_id": "$answer"}}}

    assert message_text(content) == "entä nuoret?"
    assert message_text({"msgtype": "m.text", "body": "> lainaus\n\nteksti"}) == (
        "> lainaus\n\nteksti")  # not a reply: the resident's own quote stays


@pytest.mark.parametrize("content", [
    {"body": "kysymys", "m.mentions": {"user_ids": [BOT]}},
    {"body": "Espoo-botti: kysymys", "formatted_body":
        '<a href="https://matrix.to/#/@espoo-botti:espoo.fi">Espoo-botti</a>: kysymys'},
    {"body": "hei Espoo-botti, miten vaikutan?"},
    {"body": "@espoo-botti:espoo.fi miten vaikutan?"},
])
def test_mentions_of_the_bot(content: dict) -> None:
    assert mentions(content, BOT, NAMES)


@pytest.mark.parametrize("content", [
    {"body": "robotti Espoo-bottinen ei ole"},
    {"body": "kysykää @espoo-botti:espoo.fi.example"},
    {"body": "> <@espoo-botti:espoo.fi> vanha\n\nkiitos kaikille",
     "m.relates_to": {"m.in_reply_to": {"event_id": "$x"}}, "m.mentions": {}},
])
def test_other_text_does_not_mention_the_bot(content: dict) -> None:
    assert not mentions(content, BOT, NAMES)


def test_mention_is_stripped_from_the_question() -> None:
    assert strip_mention("Espoo-botti: miten vaikutan?", BOT, NAMES) == "miten vaikutan?"
    assert strip_mention("@espoo-botti:espoo.fi, /apua", BOT, NAMES) == "/apua"


def test_invites_from_allowed_servers_only_when_a_list_is_set() -> None:
    assert invite_allowed("@anna:matrix.org", frozenset())
    assert invite_allowed("@anna:Espoo.fi", frozenset({"espoo.fi"}))
    assert not invite_allowed("@anna:matrix.org", frozenset({"espoo.fi"}))
