"""The fake's automatic entities: the quick scan finds what a scan of every position finds."""

from __future__ import annotations

import random
from collections import Counter

from tests.fakes.telegram_markup import _AUTO, _auto_matches, detect_entities

PIECES = ["/", "#", "@", "h", "w", ".", ":", "_", "-", "(", " ", "\n", "a", "Z", "0", "ä", "😀",
          "https://", "http://", "www.", "/start", "/help@espoo_bot", "#Leppävaara", "#2024",
          "@espoo_bot", "nimi@espoo.fi", "espoo.fi/", "www.espoo.fi", "https://www.espoo.fi/a?b=1",
          "(https://x.fi)", "a/b", "https:// ", "wwww.", "HTTP://"]


def test_the_quick_scan_matches_a_scan_of_every_position():
    rng, kinds = random.Random(2024), Counter()
    for _ in range(20_000):
        text = "".join(rng.choice(PIECES) for _ in range(rng.randint(0, 14)))
        expected = [(m.span(), m.lastgroup) for m in _AUTO.finditer(text)]
        assert [(m.span(), m.lastgroup) for m in _auto_matches(text)] == expected, repr(text)
        if "@" not in text:
            kinds.update(kind for _, kind in expected)
    # The quick path really ran, and met every kind it can find.
    assert {"bot_command", "hashtag", "url"} <= set(kinds), kinds


def test_entities_of_a_news_push():
    text = "Asukasilta /start #Leppävaara www.espoo.fi ja https://www.espoo.fi/uutiset."
    assert [(e["type"], text[e["offset"]:e["offset"] + e["length"]])
            for e in detect_entities(text)] == [
        ("bot_command", "/start"), ("hashtag", "#Leppävaara"), ("url", "www.espoo.fi"),
        ("url", "https://www.espoo.fi/uutiset")]
