"""Finds place names in free text through Finnish and Swedish inflection, missing dots and typos.

Snowball stems do not meet across Finnish consonant gradation ("Espoonlahti" ->
"espoonlaht", "Espoonlahdessa" -> "espoonlahd"), so each name word instead gets
its own inflection stems (strong and weak grade, i- and e-stems), and a word of
the text matches when it is such a stem plus a known case ending. Misspellings
fall back to edit distance (rapidfuzz) between the text word, minus its ending,
and the stems.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable

from rapidfuzz import process
from rapidfuzz.distance import OSA

from .textnorm import fold, is_stopword, normalise, words

LOOSE = 10           # added to the cost of a loose match: offered as a candidate, never chosen
MIN_FUZZY = 7        # shorter stems are matched exactly, or loosely in a short text
MIN_LOOSE = 5        # shorter stems are matched exactly or not at all
LOOSE_MAX_WORDS = 3  # a text this short may be just a (misspelt) name
CACHE_SIZE = 20_000  # words' typo matches remembered: residents' vocabulary repeats
MIN_DERIVED = 5      # shorter inflection stems ("luke-" from "Luk") would match ordinary words
_VOWELS = set("aeiouy")
# Finnish consonant gradation, strong -> weak, for the consonants before a name's last vowel.
_GRADATION = (("kk", "k"), ("pp", "p"), ("tt", "t"), ("mp", "mm"), ("nt", "nn"), ("lt", "ll"),
              ("rt", "rr"), ("nk", "ng"), ("ht", "hd"))
_SINGLE_GRADATION = {"k": "", "t": "d", "p": "v"}   # mäki -> mäe-, after a vowel only
# Case endings with dots folded away; "s" is the Swedish genitive ("Hagalunds").
_CASES = ("", "a", "ta", "n", "na", "ksi", "ssa", "sta", "lla", "lta", "lle", "an", "en", "in",
          "on", "un", "yn", "seen", "hin", "s")
_CLITICS = ("", "kin", "kaan", "ko", "han", "pa", "ni", "si", "mme", "nne", "nsa")
_ENDINGS = frozenset(case + clitic for case in _CASES for clitic in _CLITICS)
_MAX_ENDING = 12

# Ordinary words one edit away from a name: never read as a misspelt name.
_NOT_TYPOS = frozenset({"bredvid"})

WordCosts = dict[str, int]          # name word -> cost of matching it (0 exact, else typos)
Hit = tuple[int, int, int, str]     # start, end, cost, owner
Token = tuple[int, int, str]        # start, end (in parts of hyphenated words), folded text


def is_ending(suffix: str) -> bool:
    """True for a case ending (with clitics) or a resident word ending ("-lainen", "-laisille")."""
    return suffix in _ENDINGS or (suffix.startswith("lai") and len(suffix) <= _MAX_ENDING)


def name_words(name: str) -> tuple[str, ...]:
    """A name's folded words: "Suur-Leppävaara" -> ("suur", "leppavaara")."""
    return tuple(fold(w) for w in re.findall(r"[^\W_]+", normalise(name)))


def weaken(body: str) -> str:
    """The weak grade of a stem's last consonants (soukk- -> souk-, niittykump- -> niittykumm-)."""
    for strong, weak in _GRADATION:
        if body.endswith(strong):
            return body[: -len(strong)] + weak
    last = body[-1:]
    if last in _SINGLE_GRADATION and len(body) > 1 and body[-2] in _VOWELS:
        return body[:-1] + _SINGLE_GRADATION[last]
    return body


def inflection_stems(word: str) -> set[str]:
    """Stems that the inflected forms of one folded name word begin with.

    Over-generating is harmless (no real name collides); missing a stem loses a case.
    """
    stems = {word}
    if word.endswith("nen"):
        stems.add(word[:-3] + "se")                    # -nen -> -se- (Virtanen -> Virtasella)
    if word[-1] not in _VOWELS:
        stems.add(word + "i")                          # Westendissä, Bodomissa
        if word.endswith("us"):
            stems.add(word[:-1] + "kse")               # keskus -> keskuksessa
    elif len(word) > 2 and word[-2] not in _VOWELS:    # consonant + one vowel: gradation applies
        body, vowel = word[:-1], word[-1]
        for grade in {body, weaken(body)}:
            stems.add(grade + vowel)
            if vowel == "i":
                stems.add(grade + "e")                 # lahti -> lahde-/lahte-, niemi -> nieme-
    return {s for s in stems if len(s) >= MIN_DERIVED or s == word}


def allowed_typos(stem: str) -> int:
    """Edits tolerated in a stem: short names lie too close to ordinary words ("kello", "Sello")."""
    return 0 if len(stem) < MIN_FUZZY else 1 if len(stem) < 10 else 2


class NameIndex:
    """Names of owners (district ids), searchable in free text; built once, queried often."""

    def __init__(self, entries: Iterable[tuple[str, Iterable[str]]]):
        self._single: dict[str, list[str]] = defaultdict(list)
        self._phrases: dict[str, list[tuple[tuple[str, ...], str]]] = defaultdict(list)
        stems: dict[str, set[str]] = defaultdict(set)
        for owner, names in entries:
            for name in names:
                parts = name_words(name)
                if not parts:
                    continue
                if len(parts) > 1:
                    self._phrases[parts[0]].append((parts, owner))
                for word in {"".join(parts), *parts}:
                    for stem in inflection_stems(word):
                        stems[stem].add(word)
                self._single["".join(parts)].append(owner)
        self._stems = {stem: tuple(found) for stem, found in stems.items()}
        self._near = _windows(list(self._stems))
        self._cache: dict[tuple[str, int], WordCosts] = {}

    @staticmethod
    def fold_name(name: str) -> str:
        return " ".join(name_words(name))

    def lookup(self, text: str) -> list[tuple[str, int]]:
        """Owners named in `text` with their cost, cheapest first; loose ones cost LOOSE or more.

        Exact matches win; typos are tried only when nothing matched exactly, and loose
        resemblance only when the text is short enough to be meant as a name ("/tilaa Kalio").
        """
        tokens = _tokens(text)
        exact = [self._exact(t) for _, _, t in tokens]
        found = self._owners(tokens, exact)
        if not found:
            found = self._owners(tokens, self._with_typos(tokens, exact, 0))
        if not found and len({start for start, _, _ in tokens}) <= LOOSE_MAX_WORDS:
            found = [(owner, cost + LOOSE) for owner, cost in
                     self._owners(tokens, self._with_typos(tokens, exact, 1))]
        return found

    def _owners(self, tokens: list[Token], costs: list[WordCosts]) -> list[tuple[str, int]]:
        """Owners whose names the matched words spell out, each at its cheapest cost."""
        parts = {start: c for (start, end, _), c in zip(tokens, costs) if end == start + 1}
        hits: list[Hit] = []
        for (start, end, _), word_costs in zip(tokens, costs):
            for word, cost in word_costs.items():
                hits += [(start, end, cost, owner) for owner in self._single.get(word, ())]
                if end == start + 1:
                    hits += self._phrase_hits(word, cost, start, parts)
        best: dict[str, int] = {}
        for start, end, cost, owner in sorted(h for h in hits if not _covered(h, hits)):
            best[owner] = min(cost, best.get(owner, cost))
        return sorted(best.items(), key=lambda item: item[1])

    def _phrase_hits(self, first: str, cost: int, start: int,
                     parts: dict[int, WordCosts]) -> list[Hit]:
        """Multi-word names ("Espoon keskus") whose first word is `first` at `start`."""
        hits = []
        for phrase, owner in self._phrases.get(first, ()):
            total = cost
            for offset, word in enumerate(phrase[1:], start=1):
                step = parts.get(start + offset, {}).get(word)
                if step is None:
                    break
                total += step
            else:
                hits.append((start, start + len(phrase), total, owner))
        return hits

    def _exact(self, token: str) -> WordCosts:
        """Name words that `token` is an inflected form of."""
        return {word: 0 for head in _heads(token, minimum=1) for word in self._stems.get(head, ())}

    def _with_typos(self, tokens: list[Token], exact: list[WordCosts],
                    extra: int) -> list[WordCosts]:
        return [{**self._typos(t, extra), **found} for (_, _, t), found in zip(tokens, exact)]

    def _typos(self, token: str, extra: int) -> WordCosts:
        """Name words within `allowed_typos + extra` edits of the token minus an ending.

        Loose matches (extra > 0) must also keep the first letter, which residents rarely mistype.
        """
        if len(token) < MIN_LOOSE - 1 or is_stopword(token) or token in _NOT_TYPOS:
            return {}
        cached = self._cache.get((token, extra))
        if cached is not None:
            return cached
        found: WordCosts = {}
        for head in _heads(token, minimum=MIN_LOOSE - 1):
            near = self._near.get((len(head), head[0] if extra else ""), [])
            for stem, distance, _ in process.extract(head, near, scorer=OSA.distance,
                                                     score_cutoff=2 + extra, limit=None):
                if distance > allowed_typos(stem) + extra:
                    continue
                for word in self._stems[stem]:
                    found[word] = min(distance, found.get(word, distance))
        if len(self._cache) >= CACHE_SIZE:
            self._cache.clear()
        self._cache[(token, extra)] = found
        return found


def _windows(stems: list[str]) -> dict[tuple[int, str], list[str]]:
    """Stems worth comparing with a word of each length, so an edit search scans a few dozen.

    Key (length, ""): stems that may hold typos (MIN_FUZZY+) within two letters of the length.
    Key (length, letter): stems for loose matching, within three letters and with that initial.
    """
    windows: dict[tuple[int, str], list[str]] = defaultdict(list)
    for length in range(MIN_LOOSE - 1, max(map(len, stems), default=0) + 4):
        for stem in stems:
            if len(stem) >= MIN_FUZZY and abs(len(stem) - length) <= 2:
                windows[(length, "")].append(stem)
            if len(stem) >= MIN_LOOSE and abs(len(stem) - length) <= 3:
                windows[(length, stem[0])].append(stem)
    return dict(windows)


def _heads(token: str, minimum: int) -> list[str]:
    """The token minus each case ending it may carry, longest head first."""
    longest = min(len(token) - minimum, _MAX_ENDING)
    return [token[: len(token) - k] for k in range(0, longest + 1)
            if is_ending(token[len(token) - k:])]


def _tokens(text: str) -> list[Token]:
    """Folded words with the span of parts they cover; a joined "suurtapiola" spans two parts."""
    tokens: list[Token] = []
    parts: list[str] = []
    for word in words(text):
        folded = fold(word)
        joined = next((k for k in range(2, min(len(parts), 6) + 1)
                       if "".join(parts[-k:]) == folded), 0)
        if joined:
            tokens.append((len(parts) - joined, len(parts), folded))
        else:
            parts.append(folded)
            tokens.append((len(parts) - 1, len(parts), folded))
    return tokens


def _covered(hit: Hit, hits: list[Hit]) -> bool:
    """A match inside a longer, no worse match ("Tapiola" inside "Suur-Tapiola") does not count."""
    start, end, cost, _ = hit
    return any(s <= start and end <= e and e - s > end - start and c <= cost
               for s, e, c, _ in hits)
