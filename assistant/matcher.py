"""Finds the topic a free-text question is about, or says honestly that none fits.

Each topic's titles, phrasings and keywords in all three languages become keys
(see `textnorm`). A question's words are looked up by every stemmer's reading,
then by compound parts and by fuzzy spelling (rapidfuzz), weighted by how rare
the key is among topics. A topic scores by how much of the question it covers
and by its closest phrasing (rapidfuzz over key strings).
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from functools import lru_cache

from rapidfuzz import fuzz, process

from . import textnorm
from .knowledge import KnowledgeBase, Topic
from .messages import LANGUAGES

ANSWER_AT = 0.55        # a topic this sure is answered
SUGGEST_AT = 0.3        # below this, nothing is offered
CLEAR_MARGIN = 0.02      # the best must lead the second by this much to be answered alone
MAX_SUGGESTIONS = 3
FUZZY_CUTOFF = 84       # rapidfuzz ratio for a misspelt word to count
MIN_PART = 4            # shortest key accepted as part of a compound word
MAX_EXTENSION = 4       # a derived word may add this many letters to a known stem
MAX_CANDIDATES = 40     # topics re-ranked by phrasing similarity
COVERAGE_WEIGHT = 0.6    # the rest is the closest phrasing's similarity
TITLE_BONUS = 0.2        # a question that names the whole title leans to that topic
UNKNOWN_WEIGHT = 1.3     # an unknown word weighs this share of the rarest key
PROMINENCE_WEIGHT = 0.2  # how much a key's share of the topic's phrasings matters
FUZZY_WEIGHT = 0.7        # a misspelt match counts this much of an exact one
SHORT_WORD = 4            # unknown words this short are mostly chat filler ...
SHORT_WEIGHT = 0.6        # ... and weigh this share of a longer unknown word
CHATTER_WORDS = 6         # beyond this many content words, unknown words weigh less
PROMINENT_SHARE = 3.0    # a key in a third of the phrasings counts as fully prominent
KEEP_SCORED = 5          # scores reported in Match.scores; the decision reads the top 3
DECISIONS_KEPT = 4096    # recent questions (by their words) whose Match is kept (1.4 MB full)
READINGS_KEPT = 8192     # recent words whose index keys are remembered (about 2.6 MB full)


@dataclass(frozen=True)
class Match:
    """What the matcher decided: an answer, suggestions, or nothing."""

    topic_id: str | None
    score: float
    suggestions: tuple[str, ...] = ()
    scores: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True)
class _QueryKey:
    key: str
    weight: float  # how well the resident's word matched this key (1.0 exact)
    unknown: str = ""  # the word itself, when no key matched it


class Matcher:
    """An index over a knowledge base, built once and queried many times."""

    def __init__(self, knowledge: KnowledgeBase):
        self._topic_keys: dict[str, set[str]] = {}
        self._prominence: dict[tuple[str, str], float] = {}
        self._title_keys: dict[str, set[str]] = {}
        self._exact: dict[str, str] = {}
        self._order: dict[str, int] = {}
        self._phrases: dict[str, list[str]] = defaultdict(list)
        self._postings: dict[str, set[str]] = defaultdict(set)
        for topic in knowledge:
            self._index_topic(topic)
        count = max(len(self._topic_keys), 1)
        self._idf = {k: math.log((count + 1) / (len(t) + 0.5)) for k, t in self._postings.items()}
        self._title_mass = {tid: sum(self._idf[k] for k in keys) or 1.0
                            for tid, keys in self._title_keys.items()}
        # Only the best similarity of a topic's phrasings counts: a repeated one adds nothing.
        self._phrases = {tid: list(dict.fromkeys(p)) for tid, p in self._phrases.items()}
        self._vocabulary = list(self._postings)
        self._near_lengths: dict[tuple[int, int], list[str]] = {}
        # Both depend only on their argument and this index, which never changes.
        self._decide_words = lru_cache(maxsize=DECISIONS_KEPT)(self._decide_uncached)
        self._word_readings = lru_cache(maxsize=READINGS_KEPT)(self._word_readings_uncached)
        # A word no topic knows may be what was asked (off-topic) or chatter around it.
        self._unknown_mass = UNKNOWN_WEIGHT * max(self._idf.values(), default=1.0)
        self._by_head: dict[str, list[str]] = defaultdict(list)
        for k in self._vocabulary:
            if len(k) >= MIN_PART:
                self._by_head[k[:MIN_PART]].append(k)

    def _index_topic(self, topic: Topic) -> None:
        bag: set[str] = set()
        title_keys: set[str] = set()
        counts: dict[str, int] = defaultdict(int)
        phrases = 0
        for lang in LANGUAGES:
            text = topic.text(lang)
            title_keys.update(textnorm.keys(text.title, lang))
            for phrase in text.questions:
                self._exact.setdefault(_plain(phrase), topic.id)
            for phrase in (text.title, *text.questions, *text.keywords):
                phrase_keys = textnorm.keys(phrase, lang)
                if phrase_keys:
                    phrases += 1
                    bag.update(phrase_keys)
                    for k in set(phrase_keys):
                        counts[k] += 1
                    self._phrases[topic.id].append(" ".join(phrase_keys))
        self._topic_keys[topic.id] = bag
        self._title_keys[topic.id] = title_keys
        for k in bag:
            self._postings[k].add(topic.id)
            share = 1.0 if k in title_keys else min(1.0, PROMINENT_SHARE * counts[k] / phrases)
            self._prominence[(topic.id, k)] = 1 - PROMINENCE_WEIGHT + PROMINENCE_WEIGHT * share
        self._order[topic.id] = len(self._order)

    def match(self, question: str) -> Match:
        """Score every topic that shares a key with `question` and decide.

        The decision depends only on the question's words and this index, which never
        changes (an edit builds a new Matcher), so recent decisions are remembered.
        """
        return self._decide_words(tuple(textnorm.words(question)))

    def _decide_uncached(self, words: tuple[str, ...]) -> Match:
        """`match` for a question's words, without the memory of recent decisions."""
        exact = self._exact.get(" ".join(textnorm.fold(w) for w in words))
        if exact:
            return Match(exact, 1.0, scores=((exact, 1.0),))
        query = self._query_keys(words)
        if not query:
            return Match(None, 0.0)
        return _decide(self._rank(query))

    def _query_keys(self, words: tuple[str, ...]) -> list[tuple[_QueryKey, ...]]:
        """For each content word, the index keys it may stand for (best reading first)."""
        return [self._word_readings(word) for word in textnorm.content_words_of(words)]

    def _word_readings_uncached(self, word: str) -> tuple[_QueryKey, ...]:
        """A word's readings; an unknown word still counts as asked, in its own spelling."""
        return tuple(self._readings(word)) or (_QueryKey("", 0.0, textnorm.fold(word)),)

    def _readings(self, word: str) -> list[_QueryKey]:
        variants = textnorm.key_variants(word)
        exact = [_QueryKey(v, 1.0) for v in variants if v in self._postings]
        if exact:
            return exact
        parts = self._compound_parts(variants[0]) or self._derivations(variants)
        if parts:
            return parts
        return self._fuzzy(variants)

    def _derivations(self, variants: tuple[str, ...]) -> list[_QueryKey]:
        """Known keys that extend the word's stem a little ("kaavoit" -> "kaavoitus")."""
        found: dict[str, float] = {}
        for variant in variants:
            if len(variant) < MIN_PART + 1:
                continue
            for k in self._by_head.get(variant[:MIN_PART], ()):
                if k.startswith(variant) and len(k) - len(variant) <= MAX_EXTENSION:
                    found[k] = max(found.get(k, 0.0), 0.9 - 0.05 * (len(k) - len(variant)))
        best = sorted(found.items(), key=lambda kv: (-kv[1], kv[0]))[:2]
        return [_QueryKey(k, w) for k, w in best]

    def _compound_parts(self, word_key: str) -> list[_QueryKey]:
        """Keys that begin or end a compound word ("asukasiltaan" -> "asukasil")."""
        if len(word_key) < MIN_PART * 2:
            return []
        found = []
        for k in self._by_head.get(word_key[:MIN_PART], ()):
            if word_key.startswith(k) and len(k) >= MIN_PART + 1:
                found.append(_QueryKey(k, 0.8 * len(k) / len(word_key) + 0.2))
        for i in range(1, len(word_key) - MIN_PART):
            tail = word_key[i:]
            if tail in self._postings and len(tail) >= MIN_PART + 1:
                found.append(_QueryKey(tail, 0.8 * len(tail) / len(word_key) + 0.2))
                break
        return sorted(found, key=lambda q: -q.weight)[:2]

    def _fuzzy(self, variants: tuple[str, ...]) -> list[_QueryKey]:
        """Misspelt words: the closest known key by edit similarity."""
        best: _QueryKey | None = None
        for variant in variants:
            if len(variant) < 4:
                continue
            cutoff = FUZZY_CUTOFF if len(variant) >= 6 else 88
            hit = process.extractOne(variant, self._near_in_length(len(variant), cutoff),
                                     scorer=fuzz.ratio, score_cutoff=cutoff)
            if hit and (best is None or hit[1] / 100 > best.weight):
                best = _QueryKey(hit[0], FUZZY_WEIGHT * hit[1] / 100)
        return [best] if best else []

    def _near_in_length(self, length: int, cutoff: int) -> list[str]:
        """The keys whose length lets `fuzz.ratio` reach `cutoff` with a word of `length`.

        The ratio is at most 200 * shorter / (sum of lengths): longer or shorter keys
        can never match, so they are left out (in vocabulary order, so ties pick the same key).
        """
        found = self._near_lengths.get((length, cutoff))
        if found is None:
            found = [k for k in self._vocabulary
                     if 200 * min(len(k), length) / (len(k) + length) >= cutoff - 1e-6]
            self._near_lengths[(length, cutoff)] = found
        return found

    def _rank(self, query: list[tuple[_QueryKey, ...]]) -> list[tuple[str, float]]:
        # Long questions carry chatter around the point: each unknown word weighs less.
        unknown = self._unknown_mass * min(1.0, CHATTER_WORDS / max(len(query), 1))
        word_mass = [max(self._idf.get(r.key, 0.0) for r in readings)
                     or unknown * (1.0 if len(readings[0].unknown) > SHORT_WORD else SHORT_WEIGHT)
                     for readings in query]
        total = sum(word_mass)
        coverage: dict[str, float] = defaultdict(float)
        matched: dict[str, set[str]] = defaultdict(set)
        for readings, mass in zip(query, word_mass):
            gained: dict[str, float] = {}
            for reading in readings:
                for topic_id in self._postings.get(reading.key, ()):
                    value = (reading.weight * self._idf[reading.key]
                             * self._prominence[(topic_id, reading.key)])
                    gained[topic_id] = max(gained.get(topic_id, 0.0), min(value, mass))
                    matched[topic_id].add(reading.key)
            for topic_id, value in gained.items():
                coverage[topic_id] += value / total
        candidates = sorted(coverage.items(), key=lambda kv: -kv[1])[:MAX_CANDIDATES]
        query_string = " ".join(r[0].key or r[0].unknown for r in query)
        return self._best_scored(candidates, query_string, matched)

    def _best_scored(self, candidates: list[tuple[str, float]], query_string: str,
                     matched: dict[str, set[str]]) -> list[tuple[str, float]]:
        """The candidates' scores, best first; exact for at least the best KEEP_SCORED.

        The phrasing similarity (rapidfuzz) is the costly part and at most 1, so a
        candidate's score has a ceiling without it. Candidates are scored in order of
        their ceilings and the rest are left out once a ceiling falls below the
        KEEP_SCORED-th best score: they could not reach the top, which is all `_decide`
        and `Match.scores` read.
        """
        bounded = []
        for topic_id, coverage in candidates:
            title_cover = (sum(self._idf[k] for k in self._title_keys[topic_id]
                               if k in matched[topic_id]) / self._title_mass[topic_id])
            ceiling = _score(coverage, 1.0, title_cover)
            bounded.append((ceiling, topic_id, coverage, title_cover))
        bounded.sort(key=lambda b: -b[0])
        scored: list[tuple[str, float]] = []
        best: list[float] = []  # the KEEP_SCORED best scores so far, highest first
        for ceiling, topic_id, coverage, title_cover in bounded:
            if len(best) == KEEP_SCORED and ceiling < best[-1]:
                break
            hit = process.extractOne(query_string, self._phrases.get(topic_id, []),
                                     scorer=fuzz.token_set_ratio)
            score = _score(coverage, hit[1] / 100 if hit else 0.0, title_cover)
            scored.append((topic_id, score))
            best = sorted(best + [score], reverse=True)[:KEEP_SCORED]
        return sorted(scored, key=lambda kv: (-kv[1], self._order[kv[0]]))


def _score(coverage: float, similarity: float, title_cover: float) -> float:
    """Mostly how much of the question the topic covers; then its closest phrasing and title."""
    support = min(coverage * 2, 1.0)
    return round(COVERAGE_WEIGHT * coverage
                 + (1 - COVERAGE_WEIGHT) * similarity * support
                 + TITLE_BONUS * title_cover * support, 4)


def _plain(text: str) -> str:
    """A phrasing reduced to its folded words, for exact lookups."""
    return " ".join(textnorm.fold(w) for w in textnorm.words(text))


def _decide(ranked: list[tuple[str, float]]) -> Match:
    if not ranked or ranked[0][1] < SUGGEST_AT:
        best = ranked[0][1] if ranked else 0.0
        return Match(None, best, scores=tuple(ranked[:5]))
    top_id, top = ranked[0]
    second = ranked[1][1] if len(ranked) > 1 else 0.0
    if top >= ANSWER_AT and top - second >= CLEAR_MARGIN:
        return Match(top_id, top, scores=tuple(ranked[:5]))
    close = tuple(tid for tid, s in ranked[:MAX_SUGGESTIONS] if s >= SUGGEST_AT and s >= top - 0.25)
    return Match(None, top, suggestions=close, scores=tuple(ranked[:5]))
