"""Answer quality on resident questions written apart from the knowledge files.

Both sets in tests/eval/ were written without looking at the topic files (the
holdout set also without seeing the first set or any code). Targets, over both
sets together: at least 90 % of on-topic questions get the right topic, at
least 90 % of off-topic ones get no answer.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from assistant.answers import compose

EVAL_DIR = Path(__file__).resolve().parents[1] / "eval"
SETS = [yaml.safe_load((EVAL_DIR / name).read_text("utf-8"))
        for name in ("answer_quality.yaml", "answer_quality_holdout.yaml")]
EVAL = {part: [q for s in SETS for q in s[part]] for part in ("on_topic", "off_topic")}
TARGET = 0.90


def _answer(assistant, question: str) -> str | None:
    language = assistant.languages.guess(question) or "fi"
    return compose(assistant, question, language).topic_id


def test_eval_set_is_large_enough_and_apart_from_the_knowledge(assistant):
    on_topic = EVAL["on_topic"]
    assert len(on_topic) >= 120
    assert {q["lang"] for q in on_topic} == {"fi", "sv", "en"}
    phrasings = {p.casefold() for t in assistant.knowledge for lang in ("fi", "sv", "en")
                 for p in t.text(lang).questions}
    assert not [q["q"] for q in on_topic if q["q"].casefold() in phrasings]
    assert {q["topic"] for q in on_topic} <= set(assistant.knowledge.topics)


def test_on_topic_questions_get_the_right_topic(assistant):
    misses = [(q["q"], q["topic"], _answer(assistant, q["q"])) for q in EVAL["on_topic"]]
    misses = [m for m in misses if m[1] != m[2]]
    rate = 1 - len(misses) / len(EVAL["on_topic"])
    assert rate >= TARGET, f"on-topic accuracy {rate:.1%}; misses: {misses[:40]}"


def test_off_topic_questions_get_no_answer(assistant):
    wrong = [(q["q"], _answer(assistant, q["q"])) for q in EVAL["off_topic"]]
    wrong = [w for w in wrong if w[1] is not None]
    rate = 1 - len(wrong) / len(EVAL["off_topic"])
    assert rate >= TARGET, f"off-topic rejection {rate:.1%}; answered: {wrong}"


@pytest.mark.parametrize("question,topic", [
    ("aloitteen", "kuntalaisaloite"), ("aloitteesta", "kuntalaisaloite"),
    ("kuntalaisaloitteen tekeminen", "kuntalaisaloite"),
])
def test_inflected_forms_reach_their_topic(assistant, question, topic):
    assert _answer(assistant, question) == topic
