"""The matcher's shortcuts (candidates left unscored by their ceiling, fuzzy keys filtered
by length, remembered decisions and readings) must decide exactly as scoring everything."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import yaml

from assistant import matcher as matcher_module
from assistant.matcher import Matcher

EVAL_DIR = Path(__file__).resolve().parents[1] / "eval"


def _questions() -> list[str]:
    found = []
    for name in ("answer_quality.yaml", "answer_quality_holdout.yaml"):
        data = yaml.safe_load((EVAL_DIR / name).read_text("utf-8"))
        found += [q["q"] for part in ("on_topic", "off_topic") for q in data[part]]
    rng = random.Random(3)
    misspelt = []
    for question in found[::3]:  # letters dropped: fuzzy readings and compound parts
        misspelt.append("".join(c for c in question if rng.random() > 0.1))
    return found + misspelt


@pytest.fixture
def exhaustive(assistant, monkeypatch) -> Matcher:
    """The same index with no shortcut: every candidate scored, every key tried for fuzz."""
    reference = Matcher(assistant.knowledge)
    monkeypatch.setattr(reference, "_near_in_length", lambda length, cutoff: reference._vocabulary)
    return reference


def test_shortcuts_change_no_decision(assistant, exhaustive, monkeypatch) -> None:
    questions = _questions()
    fast = [assistant.matcher.match(q) for q in questions]
    monkeypatch.setattr(matcher_module, "KEEP_SCORED", 10**6)  # ceilings never stop scoring
    slow = [exhaustive._decide_uncached(tuple(matcher_module.textnorm.words(q))) for q in questions]
    differing = [(q, f, s) for q, f, s in zip(questions, fast, slow) if f != s]
    assert not differing, differing[:5]
    assert sum(1 for m in fast if m.topic_id) > len(questions) // 3  # the set is not all misses


def test_a_remembered_decision_is_the_one_made_first(assistant) -> None:
    first = assistant.matcher.match("Miten teen kuntalaisaloitteen?")
    assert first.topic_id == "kuntalaisaloite"
    assert assistant.matcher.match("miten  TEEN kuntalaisaloitteen") is first  # same words
    assert assistant.matcher._decide_words.cache_info().hits >= 1


def test_an_edit_builds_a_new_matcher_so_nothing_stale_is_remembered(assistant) -> None:
    before = assistant.matcher
    before.match("kuntalaisaloite")
    assistant.reload_knowledge()  # what every chat edit of the knowledge base does
    assert assistant.matcher is not before
    assert assistant.matcher._decide_words.cache_info().currsize == 0
