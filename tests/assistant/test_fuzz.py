"""Property-based fuzzing of everything residents' text flows through, and the topic loader.

Over 10,000 generated inputs in all (EXAMPLES): arbitrary Unicode, commands
with random arguments, button values, district names with typos, broken YAML.
The properties are the promises the code makes: no exception escapes, every
message gets an answer, buttons stay within Telegram's 64 bytes, and a file
that passes the check is a file the assistant can load.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from assistant import commands, knowledge, textnorm
from assistant.core import Assistant
from assistant.districts import MAX_CANDIDATES, Gazetteer
from assistant.flood import FloodGuard
from assistant.languages import LanguageGuesser
from assistant.matcher import Matcher
from assistant.messages import LANGUAGES, Incoming, Reply
from tests.conftest import REPO, SAMPLE_KNOWLEDGE, make_settings

# Inputs per property: many where one costs microseconds, fewer where it costs a database
# round trip or a YAML parse: 11,400 in all, about 45 s of CPU time.
EXAMPLES = {"textnorm": 3_000, "parse": 3_000, "matcher": 2_000, "districts": 2_000,
            "handle": 800, "knowledge": 600}
FUZZ = settings(deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

WORDS = ["miten", "teen", "kuntalaisaloitteen", "palaute", "kaavoitus", "vaalit", "hur", "gör",
         "jag", "respons", "how", "do", "i", "vote", "Leppävaara", "Tapiola", "Espoonlahdessa",
         "Matinkyla", "Hagalund", "i", "ja", "och", "and", "?", "!", "1", "2", "P-2026-0001",
         "äö", "å", "-", "'", "https://example.org", "@bot", "\n", "\u200b", "😀", "ﬁ", "Ⅻ"]
KINDS = ["text"] * 8 + ["sticker", "file", "voice", "location", "edit", "photo", "other"]
HINTS = ["", "fi", "sv", "en", "de", "fi-FI", "sv_SE", "EN", "x"]
PLATFORMS = ["console", "telegram", "matrix"]

wordy = st.lists(st.sampled_from(WORDS), max_size=15).map(" ".join)
any_text = st.one_of(st.text(max_size=300), wordy, st.text(alphabet="/!@ _-:0123456789abc",
                                                           max_size=40))


# shared, built once per module: hypothesis calls the test body many times ------

@pytest.fixture(scope="module")
def shipped() -> tuple[knowledge.KnowledgeBase, Matcher, LanguageGuesser, Gazetteer]:
    base = knowledge.load(REPO / "knowledge")
    return base, Matcher(base), LanguageGuesser(base), Gazetteer.load(REPO / "knowledge")


@pytest.fixture(scope="module")
def chat_bot(tmp_path_factory):
    """Sample topics with the shipped districts; flood control out of the way."""
    root = tmp_path_factory.mktemp("fuzz-chat")
    shutil.copytree(SAMPLE_KNOWLEDGE / "topics", root / "knowledge" / "topics")
    shutil.copy(REPO / "knowledge" / "districts.yaml", root / "knowledge" / "districts.yaml")
    bot = Assistant(make_settings(root, KNOWLEDGE_DIR=str(root / "knowledge"),
                                  ASSISTANT_ADMINS="console:admin"))
    bot.flood = FloodGuard(limit=10**9)
    with asyncio.Runner() as runner:
        yield bot, runner
    bot.db.dispose()


# the text pipeline ------------------------------------------------------------

@settings(FUZZ, max_examples=EXAMPLES["textnorm"])
@given(text=any_text, language=st.sampled_from(["fi", "sv", "en", "xx"]))
def test_textnorm_never_fails_and_keeps_its_shape(text, language):
    normal = textnorm.normalise(text)
    assert normal == normal.strip() and "  " not in normal
    assert not any(ch in normal for ch in "\n\t\r\x00")
    found = textnorm.words(text)
    assert len(found) <= textnorm.MAX_WORDS and all(found)
    assert all(isinstance(k, str) for k in textnorm.keys(text, language))
    assert set(textnorm.content_words(text)) <= set(found)


@settings(FUZZ, max_examples=EXAMPLES["matcher"])
@given(text=any_text)
def test_matcher_and_language_guess_answer_anything(shipped, text):
    base, matcher, guesser, _ = shipped
    match = matcher.match(text)
    assert match.topic_id is None or match.topic_id in base.topics
    assert all(topic_id in base.topics for topic_id in match.suggestions)
    assert len(match.suggestions) <= 3 and match.score >= 0
    assert guesser.guess(text) in (*LANGUAGES, None)


@settings(FUZZ, max_examples=EXAMPLES["parse"])
@given(text=st.one_of(any_text, st.builds(lambda p, n, a: f"{p}{n} {a}",
                                          st.sampled_from(["/", "!", " /", "//"]),
                                          st.text(max_size=40), st.text(max_size=60))))
def test_command_parsing_is_total_and_consistent(text):
    parsed = commands.parse(text)
    if parsed is None:
        return
    assert text.strip()[0] in commands.PREFIXES
    assert parsed.name == parsed.name.lower() and 1 <= len(parsed.name) <= 32
    assert parsed.args == parsed.args.strip()
    again = commands.parse(f"/{parsed.name} {parsed.args}")
    assert again is not None and (again.name, again.args) == (parsed.name, parsed.args)


@settings(FUZZ, max_examples=EXAMPLES["districts"])
@given(text=st.one_of(any_text, st.sampled_from(["Tapiola", "Leppävaara", "Espoonlahti",
                                                  "Matinkylä", "Otaniemi", "Kauklahti"]).flatmap(
    lambda name: st.builds(_typo, st.just(name), st.integers(0, len(name)),
                           st.sampled_from(["", "a", "ssa", "n", "sta", " ", "ä", "-"])))))
def test_district_resolution_never_guesses_wildly(shipped, text):
    gazetteer = shipped[3]
    resolution = gazetteer.resolve(text)
    if resolution.district is not None:
        assert resolution.district.id in gazetteer and resolution.candidates == ()
    assert len(resolution.candidates) <= MAX_CANDIDATES
    assert all(d.id in gazetteer for d in resolution.candidates)


def _typo(name: str, position: int, insert: str) -> str:
    """The name with `insert` spliced in at `position` (a suffix, a stray letter, a space)."""
    return name[:position] + insert + name[position:]


# the whole core -----------------------------------------------------------------

@settings(FUZZ, max_examples=EXAMPLES["handle"])
@given(data=st.data())
def test_every_message_gets_an_answer_and_nothing_escapes(chat_bot, data):
    bot, runner = chat_bot
    incoming = data.draw(incomings(bot))
    replies = runner.run(bot.handle(incoming))
    assert isinstance(replies, list) and replies, incoming
    assert all(isinstance(r, Reply) and r.text.strip() for r in replies)
    internal = {bot.texts.get(lang, "internal_error") for lang in LANGUAGES}
    assert not any(r.text in internal for r in replies), incoming
    assert not any(r.chat_id or r.platform for r in replies)  # a resident reaches nobody else
    assert all(len(c.value.encode()) <= 64 for r in replies for c in r.choices)
    if incoming.group:
        assert not any(r.attachment for r in replies)


@st.composite
def incomings(draw, bot: Assistant) -> Incoming:
    names = sorted(name for command in bot.commands.all() for name in command.names)
    command = st.builds(lambda p, n, a: f"{p}{n} {a}".rstrip(), st.sampled_from(["/", "!"]),
                        st.sampled_from(names + ["admin", "grant", "x", "ÄÄ"]),
                        st.one_of(any_text, st.sampled_from(["close P-2026-0001", "all", "18",
                                                             "off", "Tapiola", "sv"])))
    text = draw(st.one_of(any_text, command, st.integers(-3, 12).map(str),
                          st.just("x" * 5000)))
    prefixes = ["fb", "fb:k", "fb:d", "fb:r", "sub", "unsub", "newsmode", "news:ok", "lang",
                "topic", "forget", "forget:yes", "nope"]
    choice = draw(st.one_of(st.none(), st.none(), st.builds(
        lambda p, a: f"{p}:{a}", st.sampled_from(prefixes), st.text(max_size=20))))
    user = draw(st.integers(0, 6))
    return Incoming(platform=draw(st.sampled_from(PLATFORMS)), user_id=f"fuzz-{user}",
                    chat_id=f"chat-{user}", text=text, choice=choice,
                    language_hint=draw(st.sampled_from(HINTS)), kind=draw(st.sampled_from(KINDS)),
                    group=draw(st.booleans()), message_id=str(draw(st.integers(0, 10**6))))


# the knowledge-file loader ------------------------------------------------------

VALID_TOPIC = (SAMPLE_KNOWLEDGE / "topics" / "sample-feedback.yaml").read_text(encoding="utf-8")
FIELD_NAMES = sorted(knowledge.TOPIC_FIELDS | knowledge.TEXT_FIELDS)
yaml_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=30), st.dates()),
    lambda inner: st.one_of(st.lists(inner, max_size=7),
                            st.dictionaries(st.one_of(st.sampled_from(FIELD_NAMES),
                                                      st.text(max_size=8)), inner, max_size=7)),
    max_leaves=25)


def _mutate(text: str, start: int, length: int, insert: str) -> str:
    start %= len(text) + 1
    return text[:start] + insert + text[start + length:]


topic_files = st.one_of(
    yaml_values.map(lambda v: yaml.safe_dump(v, allow_unicode=True)),
    st.builds(_mutate, st.just(VALID_TOPIC), st.integers(0, 3000), st.integers(0, 60),
              st.sampled_from(["", ":", "- ", "\n", "  ", "[", "{", "'", "\t", "&a ", "*a",
                               "!!binary ", "id: x\n", "\n  - kysymys", "\x00", "ä"])),
    st.text(max_size=300),
    st.just(VALID_TOPIC),
)


@pytest.fixture(scope="module")
def kb_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz-kb")


@settings(FUZZ, max_examples=EXAMPLES["knowledge"])
@given(files=st.lists(st.tuples(st.sampled_from(["sample-feedback", "other-topic", "x", "Bad Name"]),
                                topic_files), min_size=1, max_size=3))
def test_topic_check_reports_problems_and_never_crashes(kb_dir, files):
    directory = Path(tempfile.mkdtemp(dir=kb_dir))
    (directory / "topics").mkdir()
    for name, content in files:
        (directory / "topics" / f"{name}.yaml").write_text(content, encoding="utf-8")
    base, problems = knowledge.check(directory)
    assert all(p.path.startswith(str(directory)) and p.line >= 0 and p.message for p in problems)
    for topic in base:
        assert Path(topic.path).stem == topic.id and set(topic.texts) == set(LANGUAGES)
        assert all(len(topic.text(lang).questions) >= knowledge.MIN_QUESTIONS for lang in LANGUAGES)
    if not problems:
        assert set(knowledge.load(directory).topics) == set(base.topics)
    if files == [("sample-feedback", VALID_TOPIC)]:
        assert not problems and "sample-feedback" in base.topics
    shutil.rmtree(directory)


def test_deeply_nested_yaml_is_a_problem_not_a_crash(tmp_path):
    (tmp_path / "topics").mkdir()
    (tmp_path / "topics" / "deep.yaml").write_text("id: " + "[" * 1000 + "]" * 1000)
    _, problems = knowledge.check(tmp_path)
    assert problems


def test_the_fuzzing_budget_is_over_ten_thousand_inputs():
    assert sum(EXAMPLES.values()) >= 10_000
