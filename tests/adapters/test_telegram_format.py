"""Replies formatted for Telegram (escaped, split under the limit, buttons) and error mapping."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from telegram.error import BadRequest, ChatMigrated, Forbidden, NetworkError, RetryAfter, TimedOut

from adapters.telegram import platform_error
from adapters.telegram_format import escape, keyboard, split_text, utf16_len
from assistant.messages import Choice
from assistant.platform import PermanentFailure, RecipientGone, RetryLater


def test_escape_leaves_nothing_for_the_html_parser() -> None:
    assert escape('<b>x</b> & <script> "q"') == '&lt;b&gt;x&lt;/b&gt; &amp; &lt;script&gt; "q"'


def test_short_text_is_one_part() -> None:
    assert split_text("  Hei Espoo!  ") == ["Hei Espoo!"]
    assert split_text("   ") == []


def test_split_prefers_paragraphs_then_lines_then_words() -> None:
    assert split_text("aaaa bbbb\n\ncccc dddd", limit=12) == ["aaaa bbbb", "cccc dddd"]
    assert split_text("aaaa bbbb\ncccc dddd", limit=12) == ["aaaa bbbb", "cccc dddd"]
    assert split_text("aaaa bbbb cccc dddd", limit=12) == ["aaaa bbbb", "cccc dddd"]
    assert split_text("x" * 25, limit=10) == ["x" * 10, "x" * 10, "x" * 5]


def test_split_counts_utf16_units_and_keeps_emoji_whole() -> None:
    text = "😀" * 3000  # 6000 UTF-16 units
    parts = split_text(text)
    assert [utf16_len(p) for p in parts] == [4096, 1904]
    assert "".join(parts) == text


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.sampled_from("ab ä\n😀."), max_size=300),
       st.integers(min_value=2, max_value=40))
def test_split_parts_fit_and_lose_only_whitespace(text: str, limit: int) -> None:
    parts = split_text(text, limit)
    assert all(0 < utf16_len(p) <= limit for p in parts)
    assert "".join("".join(parts).split()) == "".join(text.split())


def test_short_labels_go_two_to_a_row_long_ones_one() -> None:
    short = keyboard([Choice("Suomi", "lang:fi"), Choice("Svenska", "lang:sv"),
                      Choice("English", "lang:en")])
    assert short is not None
    assert [[b.callback_data for b in row] for row in short.inline_keyboard] == [
        ["lang:fi", "lang:sv"], ["lang:en"]]
    long = keyboard([Choice("Kuntalaisaloite ja miten se tehdään", "topic:a"),
                     Choice("Kyllä", "yes:1")])
    assert long is not None and [len(row) for row in long.inline_keyboard] == [1, 1]
    assert keyboard([]) is None


def test_buttons_with_oversized_data_are_left_out() -> None:
    markup = keyboard([Choice("Liian pitkä", "topic:" + "x" * 60), Choice("OK", "ok:1")])
    assert markup is not None
    assert [b.callback_data for row in markup.inline_keyboard for b in row] == ["ok:1"]


@pytest.mark.parametrize("error, expected", [
    (RetryAfter(dt.timedelta(seconds=7)), RetryLater),
    (Forbidden("Forbidden: bot was blocked by the user"), RecipientGone),
    (Forbidden("Forbidden: user is deactivated"), RecipientGone),
    (BadRequest("Bad Request: chat not found"), RecipientGone),
    (ChatMigrated(-100123), RecipientGone),
    (BadRequest("Bad Request: can't parse entities"), PermanentFailure),
    (TimedOut(), RetryLater),
    (NetworkError("Bad Gateway"), RetryLater),
])
def test_bot_api_errors_map_to_the_core_contract(error: Exception, expected: type) -> None:
    mapped = platform_error(error)  # type: ignore[arg-type]
    assert isinstance(mapped, expected)
    if isinstance(error, RetryAfter):
        assert mapped.after_seconds == 7  # type: ignore[attr-defined]
