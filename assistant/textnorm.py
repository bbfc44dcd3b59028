"""Turns residents' free text into comparable keys: normalised, tokenised, stemmed, folded.

Residents type on phones: inflected Finnish, Swedish and English, often without the
dots of ä/ö/å. Every word becomes a *key*: its Snowball stem with diacritics folded
away, so "Leppävaarassa", "leppavaaran" and "Leppävaara" meet on one key.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from typing import Iterable

import snowballstemmer

from .stopwords import STOPWORDS

_STEMMERS = {
    "fi": snowballstemmer.stemmer("finnish"),
    "sv": snowballstemmer.stemmer("swedish"),
    "en": snowballstemmer.stemmer("english"),
}
_FOLD = str.maketrans({"ä": "a", "ö": "o", "å": "a", "é": "e", "è": "e", "ü": "u", "æ": "a",
                       "ø": "o", "š": "s", "ž": "z", "á": "a", "à": "a", "í": "i", "ó": "o"})
_WORD = re.compile(r"[^\W_]+(?:[-'’][^\W_]+)*", re.UNICODE)
_PART_BREAK = re.compile(r"[-']")
MAX_WORDS = 60  # a question longer than this is judged on its first 60 words


def normalise(text: str) -> str:
    """NFKC, lower case, control characters dropped, white space folded."""
    text = unicodedata.normalize("NFKC", text)
    if not text.isprintable():  # the per-character look-up only when something needs it
        text = "".join(ch if unicodedata.category(ch)[0] != "C" else " " for ch in text)
    return " ".join(text.lower().split())


def fold(word: str) -> str:
    """ä->a, ö->o, å->a and friends: what a resident typing without dots would write."""
    return word.translate(_FOLD)


def words(text: str) -> list[str]:
    """Lower-case words of `text`; hyphenated compounds are split into their parts too."""
    return list(_words(text))  # a list of one's own: callers may change it


@lru_cache(maxsize=256)  # a message's text is split by the guesser, the matcher, intents ...
def _words(text: str) -> tuple[str, ...]:
    found: list[str] = []
    for match in _WORD.finditer(normalise(text)):
        word = match.group(0)
        if "-" in word or "'" in word or "’" in word:
            found.extend(_parts(word))
        else:  # most words: nothing to split
            found.append(word)
        if len(found) >= MAX_WORDS:
            break
    return tuple(found[:MAX_WORDS])


def _parts(word: str) -> list[str]:
    """"lähi-ilta" -> lähi, ilta and lähiilta; "it’s" -> it, s and its."""
    word = word.replace("’", "'")
    parts = [p for p in _PART_BREAK.split(word) if p]
    if len(parts) > 1:
        return [*parts, "".join(parts)]
    return [word.replace("'", "")]


@lru_cache(maxsize=65536)
def key(word: str, language: str) -> str:
    """The comparable key of one lower-case word in `language` (fi, sv or en)."""
    stemmer = _STEMMERS.get(language, _STEMMERS["fi"])
    return fold(stemmer.stemWord(word))


@lru_cache(maxsize=65536)
def key_variants(word: str) -> tuple[str, ...]:
    """Keys of `word` under every language's stemmer, the word's own folded form last.

    A query's language is a guess, so the matcher tries each reading of a word.
    """
    variants = [key(word, lang) for lang in ("fi", "sv", "en")] + [fold(word)]
    return tuple(dict.fromkeys(variants))


def is_stopword(word: str) -> bool:
    """True for words that carry no topic (question words, pronouns, fillers)."""
    return fold(word) in STOPWORDS


def content_words(text: str) -> list[str]:
    """The words of `text` that can carry a topic, in order, stop words dropped."""
    return content_words_of(words(text))


def content_words_of(found: Iterable[str]) -> list[str]:
    """`content_words` of words already split by `words()`."""
    return [w for w in found if not is_stopword(w) and (len(w) > 1 or w.isdigit())]


def keys(text: str, language: str) -> list[str]:
    """Keys of the content words of `text` read as `language` (for indexing curated text)."""
    return [key(w, language) for w in content_words(text)]
