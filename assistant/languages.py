"""Guesses whether a message is Finnish, Swedish or English, from its words.

Each language's lexicon is its stop words plus every word of the knowledge base's
titles, phrasings and keywords written in it; a message belongs to the language whose lexicon holds clearly
more of its words. Too little evidence gives None, and the caller falls back.
"""

from __future__ import annotations

from collections import defaultdict

from . import textnorm
from .knowledge import KnowledgeBase
from .messages import LANGUAGES
from .stopwords import STOPWORDS_BY_LANGUAGE

_MARKERS = {"å": "sv", "ä": "", "ö": ""}  # å is Swedish; ä and ö are shared by fi and sv


class LanguageGuesser:
    """Built once from the knowledge base; `guess(text)` per message."""

    def __init__(self, knowledge: KnowledgeBase):
        self._lexicon: dict[str, set[str]] = defaultdict(set)
        for lang, words in STOPWORDS_BY_LANGUAGE.items():
            for word in words:
                self._lexicon[word].add(lang)
        for topic in knowledge:
            for lang in LANGUAGES:
                text = topic.text(lang)
                for phrase in (text.title, *text.questions, *text.keywords):
                    for word in textnorm.words(phrase):
                        self._lexicon[textnorm.fold(word)].add(lang)
                        self._lexicon[textnorm.key(word, lang)].add(lang)

    def guess(self, text: str) -> str | None:
        """'fi', 'sv', 'en', or None when the words do not tell."""
        votes = dict.fromkeys(LANGUAGES, 0.0)
        for word in textnorm.words(text):
            langs = self._lexicon.get(textnorm.fold(word)) or self._by_stem(word)
            for lang in langs:
                votes[lang] += 1 / len(langs)
            if "å" in word:
                votes["sv"] += 1
        ranked = sorted(votes.items(), key=lambda kv: -kv[1])
        (best, top), (_, second) = ranked[0], ranked[1]
        if top >= 1 and top > second * 1.3:
            return best
        return None

    def _by_stem(self, word: str) -> set[str]:
        found: set[str] = set()
        for lang in LANGUAGES:
            if lang in self._lexicon.get(textnorm.key(word, lang), ()):
                found.add(lang)
        return found
