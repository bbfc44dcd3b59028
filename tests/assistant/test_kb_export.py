"""`kb export`: chat edits written back into the topic files in their curated layout."""

from __future__ import annotations

import datetime as dt
import difflib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from assistant import knowledge
from assistant.curation import apply_revisions, clean_text, local_today, one_line, topic_json
from assistant.kb_export import export, literal, render_topic, scalar
from assistant.knowledge import Topic, TopicText
from assistant.store.admin import AnswerRevision
from tests.assistant.test_admin_roles import admin_bot, staff  # noqa: F401
from tests.conftest import REPO

TRICKY = ('Uusi vastaus: "lainausmerkit" # ei kommentti\n\n- kohta yksi\n  sisennetty jatko\n'
          "{ei: mapping}")
DAY = dt.date(2026, 12, 1)


def run_cli(bot, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, DATABASE_URL=bot.settings.database_url, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", "assistant", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def copy_knowledge(source: Path, target: Path, reviewed: str = "2020-01-01") -> Path:
    """A copy whose topics were last reviewed long ago, so a changed date shows."""
    shutil.copytree(source, target)
    for path in (target / "topics").glob("*.yaml"):
        text = path.read_text(encoding="utf-8")
        old = next(line for line in text.splitlines() if line.startswith("reviewed:"))
        path.write_text(text.replace(old, f"reviewed: {reviewed}"), encoding="utf-8")
    return target


def new_topic(topic_id: str = "kirjastot") -> Topic:
    def text(title: str, answer: str, words: list[str]) -> TopicText:
        return TopicText(title, answer, tuple(f"{w}?" for w in words), tuple(words))
    return Topic(id=topic_id, reviewed="", links=(),
                 sources=("added by chat by telegram:1001 on 2026-12-01",), texts={
                     "fi": text("Kirjastot", "Kirjastot ovat auki: joka päivä.",
                                ["kirjasto", "laina", "kortti", "aukiolo", "tulostus", "Sello"]),
                     "sv": text("Bibliotek", "Biblioteken är öppna.",
                                ["bibliotek", "lån", "kort", "öppettider", "utskrift", "yes"]),
                     "en": text("Libraries", "Libraries are open.",
                                ["library", "loan", "card", "hours", "printing", "no"])})


async def test_export_writes_chat_edits_and_kb_check_passes(admin_bot, tmp_path):
    target = copy_knowledge(admin_bot.settings.knowledge_dir, tmp_path / "export")
    untouched = (target / "topics" / "sample-initiative.yaml").read_text(encoding="utf-8")
    editor = await staff(admin_bot, "editor")
    await editor.send("/answer edit sample-feedback fi")
    [preview] = await editor.send(TRICKY)
    await editor.send(choice=preview.choices[0].value)
    await editor.send("/answer phrase add sample-feedback sv Vart går min respons, egentligen?")
    admin_bot.revisions.add("sample-feedback", "en", "title", "Feedback: to the city", "x")
    admin_bot.revisions.add("kirjastot", "", "topic", topic_json(new_topic()), "telegram:1001")
    admin_bot.reload_knowledge()

    result = run_cli(admin_bot, "kb", "export", "--dir", str(target), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert sorted(Path(p).name for p in result.stdout.split()) == ["kirjastot.yaml",
                                                                  "sample-feedback.yaml"]
    check = run_cli(admin_bot, "kb", "check", "--dir", str(target), cwd=tmp_path)
    assert check.returncode == 0, check.stdout + check.stderr

    exported = knowledge.load(target)
    for topic_id in ("sample-feedback", "kirjastot"):
        assert exported.get(topic_id).texts == admin_bot.knowledge.get(topic_id).texts
    feedback = exported.get("sample-feedback")
    assert feedback.text("fi").answer.strip() == TRICKY
    assert feedback.text("sv").questions[-1] == "Vart går min respons, egentligen?"
    assert feedback.text("en").title == "Feedback: to the city"
    assert feedback.reviewed == local_today(admin_bot).isoformat()
    assert exported.get("sample-initiative").reviewed == "2020-01-01"
    assert (target / "topics" / "sample-initiative.yaml").read_text(encoding="utf-8") == untouched
    assert exported.get("kirjastot").sources == ("added by chat by telegram:1001 on 2026-12-01",)


async def test_export_changes_only_the_edited_lines(admin_bot, tmp_path):
    target = copy_knowledge(admin_bot.settings.knowledge_dir, tmp_path / "export")
    path = target / "topics" / "sample-feedback.yaml"
    before = path.read_text(encoding="utf-8").splitlines()
    admin_bot.revisions.add("sample-feedback", "fi", "answer", "Uusi vastaus.\nToinen rivi.", "x")
    admin_bot.revisions.add("sample-feedback", "sv", "question", "Ny fråga?\nAndra frågan?", "x")
    export(target, lambda base: apply_revisions(base, admin_bot.revisions.active()), DAY)
    after = path.read_text(encoding="utf-8").splitlines()
    changes = [line for line in difflib.unified_diff(before, after, lineterm="", n=0)
               if line[:1] in "+-" and not line.startswith(("---", "+++"))]
    assert changes == [
        "-reviewed: 2020-01-01", "+reviewed: 2026-12-01",
        "-  answer: Palautetta voi antaa palautepalvelussa.",
        "+  answer: |", "+    Uusi vastaus.", "+    Toinen rivi.",
        '+    - "Ny fråga?"', '+    - "Andra frågan?"',  # the file quotes its phrasings
    ]
    assert export(target, lambda base: apply_revisions(base, admin_bot.revisions.active()),
                  DAY) == []  # a second export finds nothing new


def test_export_of_every_shipped_topic_keeps_kb_check_passing(tmp_path):
    target = copy_knowledge(REPO / "knowledge", tmp_path / "knowledge", reviewed="2026-11-28")
    base = knowledge.load(target)
    revisions = []
    for topic in base:
        for lang in ("fi", "sv", "en"):
            revisions += [
                AnswerRevision(topic_id=topic.id, language=lang, field="answer", value=TRICKY,
                               author="x"),
                AnswerRevision(topic_id=topic.id, language=lang, field="title",
                               value=f"{topic.text(lang).title}: [uusi] #1", author="x"),
                AnswerRevision(topic_id=topic.id, language=lang, field="question",
                               value="yes\n- lista?\n'lainattu', ja: kaksoispiste", author="x")]
    revisions.append(AnswerRevision(topic_id="kirjastot", language="", field="topic",
                                    value=topic_json(new_topic()), author="x"))

    def overlay(kb):
        return apply_revisions(kb, revisions)
    written = export(target, overlay, DAY)
    assert len(written) == len(base) + 1
    exported, problems = knowledge.check(target)
    assert problems == []
    expected = overlay(base)
    for topic in expected:
        assert exported.get(topic.id).texts == topic.texts, topic.id
        assert exported.get(topic.id).reviewed == DAY.isoformat()
    original = (REPO / "knowledge" / "topics" / "kuntalaisaloite.yaml").read_text(encoding="utf-8")
    patched = (target / "topics" / "kuntalaisaloite.yaml").read_text(encoding="utf-8")
    assert original.splitlines()[2:12] == patched.splitlines()[2:12]  # sources, links, notes kept


def test_new_topic_file_has_the_curated_layout():
    text = render_topic(new_topic(), DAY)
    assert text.startswith("id: kirjastot\nreviewed: 2026-12-01\nsources:\n"
                           "  - added by chat by telegram:1001 on 2026-12-01\nlinks: []\nfi:\n"
                           "  title: Kirjastot\n  answer: |\n    Kirjastot ovat auki: joka päivä.\n"
                           "  questions:\n    - kirjasto?\n")
    assert '  keywords: [bibliotek, lån, kort, öppettider, utskrift, "yes"]' in text
    assert list(yaml.safe_load(text)) == ["id", "reviewed", "sources", "links", "fi", "sv", "en"]


@settings(max_examples=300, deadline=None)
@given(st.text(min_size=1, max_size=40))
def test_scalars_read_back_unchanged(value):
    value = one_line(value)  # as titles and phrasings are stored
    if not value:
        return
    assert yaml.safe_load(f"k: {scalar(value)}") == {"k": value}
    assert yaml.safe_load(f"k: [{scalar(value, flow=True)}, x]") == {"k": [value, "x"]}
    assert yaml.safe_load(f"k:\n  - {scalar(value, quoted=True)}") == {"k": [value]}


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=120))
def test_literal_blocks_read_back_unchanged(raw):
    text = clean_text(raw)  # as answers are stored
    if not text or text[0].isspace():
        return
    loaded = yaml.safe_load(f"a:\n  answer: {literal(text, 4)}\n  next: 1\n")
    assert loaded["a"]["answer"].strip() == text and loaded["a"]["next"] == 1
