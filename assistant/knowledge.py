"""The curated knowledge base: one YAML file per topic, validated as it is loaded.

`kb check` and start-up share one loader, so a file that passes the check is
exactly a file the assistant can answer from. Problems carry `file:line`.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

import yaml

from .messages import LANGUAGES

TOPIC_FIELDS = {"id", "reviewed", "sources", "links", "unconfirmed", "related", *LANGUAGES}
TEXT_FIELDS = {"title", "answer", "questions", "keywords"}
MAX_ANSWER_CHARS = 900
MIN_QUESTIONS = 6
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml parses ten times faster
_ID = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")


@dataclass(frozen=True)
class TopicText:
    """A topic in one language."""

    title: str
    answer: str
    questions: tuple[str, ...]
    keywords: tuple[str, ...]


@dataclass(frozen=True)
class Topic:
    """One thing residents ask about, in Finnish, Swedish and English, with its sources."""

    id: str
    reviewed: str
    sources: tuple[str, ...]
    links: tuple[str, ...]
    texts: dict[str, TopicText]
    unconfirmed: tuple[str, ...] = ()
    related: tuple[str, ...] = ()
    path: str = ""

    def text(self, language: str) -> TopicText:
        return self.texts.get(language) or self.texts["fi"]

    def with_answer(self, language: str, answer: str) -> "Topic":
        texts = dict(self.texts)
        texts[language] = replace(self.text(language), answer=answer)
        return replace(self, texts=texts)

    def with_questions(self, language: str, extra: tuple[str, ...]) -> "Topic":
        texts = dict(self.texts)
        old = self.text(language)
        texts[language] = replace(old, questions=old.questions + extra)
        return replace(self, texts=texts)


@dataclass(frozen=True)
class Problem:
    """A validation finding, printed as `file:line: message`."""

    path: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


@dataclass
class KnowledgeBase:
    """All topics by id, in file order."""

    topics: dict[str, Topic] = field(default_factory=dict)

    def get(self, topic_id: str) -> Topic | None:
        return self.topics.get(topic_id)

    def __iter__(self):
        return iter(self.topics.values())

    def __len__(self) -> int:
        return len(self.topics)


class KnowledgeError(Exception):
    """The knowledge base has problems; `problems` lists them all."""

    def __init__(self, problems: list[Problem]):
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = problems


def topic_files(directory: Path) -> list[Path]:
    """Topic files live in `knowledge/topics/`."""
    return sorted((directory / "topics").glob("*.yaml"))


def load(directory: Path) -> KnowledgeBase:
    """Load and validate every topic; raise KnowledgeError listing all problems."""
    base, problems = check(directory)
    if problems:
        raise KnowledgeError(problems)
    return base


def check(directory: Path) -> tuple[KnowledgeBase, list[Problem]]:
    """Validate every topic file; return the good topics and all problems found."""
    base = KnowledgeBase()
    problems: list[Problem] = []
    files = topic_files(directory)
    if not files:
        problems.append(Problem(str(directory / "topics"), 0, "no topic files found"))
    first_seen: dict[str, str] = {}
    for path in files:
        topic, found = _load_file(path)
        problems.extend(found)
        if topic is None:
            continue
        if topic.id in first_seen:
            problems.append(Problem(str(path), 1, f"duplicate id {topic.id!r} (also in {first_seen[topic.id]})"))
            continue
        first_seen[topic.id] = str(path)
        if not found:
            base.topics[topic.id] = topic
    problems.extend(_check_related(base, files))
    return base, problems


def _check_related(base: KnowledgeBase, files: list[Path]) -> list[Problem]:
    problems = []
    for topic in base:
        for other in topic.related:
            if other not in base.topics:
                problems.append(Problem(topic.path, 1, f"related topic {other!r} does not exist"))
    return problems


def _load_file(path: Path) -> tuple[Topic | None, list[Problem]]:
    try:
        text = path.read_text(encoding="utf-8")
        root = yaml.compose(text, Loader=_LOADER)
    except (OSError, UnicodeDecodeError, yaml.YAMLError, RecursionError) as exc:
        line = getattr(getattr(exc, "problem_mark", None), "line", -1) + 1
        return None, [Problem(str(path), line, f"cannot read YAML: {exc.__class__.__name__}")]
    if not isinstance(root, yaml.MappingNode):
        return None, [Problem(str(path), 1, "a topic file must be a mapping of fields")]
    return _TopicReader(path).read(root)


class _TopicReader:
    """Reads one topic's YAML node tree, collecting problems with their line numbers."""

    def __init__(self, path: Path):
        self.path = path
        self.problems: list[Problem] = []

    def problem(self, node: yaml.Node, message: str) -> None:
        self.problems.append(Problem(str(self.path), node.start_mark.line + 1, message))

    def read(self, root: yaml.MappingNode) -> tuple[Topic | None, list[Problem]]:
        fields = self.mapping(root, TOPIC_FIELDS, "topic")
        topic_id = self.scalar(fields, root, "id")
        if topic_id and not _ID.match(topic_id):
            self.problem(fields["id"], f"id {topic_id!r} must be lower-case words joined by '-'")
        if topic_id and topic_id != self.path.stem:
            self.problem(fields["id"], f"id {topic_id!r} must match the file name {self.path.stem!r}")
        reviewed = self.scalar(fields, root, "reviewed")
        if reviewed and not _is_date(reviewed):
            self.problem(fields["reviewed"], f"reviewed must be a date like 2026-11-28, got {reviewed!r}")
        sources = self.strings(fields, "sources", root, required=True)
        texts = {lang: self.text(fields, root, lang) for lang in LANGUAGES}
        topic = Topic(
            id=topic_id, reviewed=reviewed, sources=sources,
            links=self.strings(fields, "links", root, required=False),
            texts={k: v for k, v in texts.items() if v is not None},
            unconfirmed=self.strings(fields, "unconfirmed", root, required=False),
            related=self.strings(fields, "related", root, required=False),
            path=str(self.path),
        )
        return (topic if topic_id else None), self.problems

    def mapping(self, node: yaml.Node, allowed: set[str], what: str) -> dict[str, yaml.Node]:
        if not isinstance(node, yaml.MappingNode):
            self.problem(node, f"{what} must be a mapping")
            return {}
        fields: dict[str, yaml.Node] = {}
        for key_node, value_node in node.value:
            name = str(key_node.value)
            if name not in allowed:
                self.problem(key_node, f"unknown field {name!r} in {what}")
            elif name in fields:
                self.problem(key_node, f"field {name!r} given twice in {what}")
            else:
                fields[name] = value_node
        return fields

    def scalar(self, fields: dict[str, yaml.Node], parent: yaml.Node, name: str) -> str:
        node = fields.get(name)
        if node is None:
            self.problem(parent, f"missing field {name!r}")
            return ""
        if not isinstance(node, yaml.ScalarNode) or not str(node.value).strip():
            self.problem(node, f"field {name!r} must be non-empty text")
            return ""
        return str(node.value).strip()

    def strings(self, fields: dict[str, yaml.Node], name: str, parent: yaml.Node,
                required: bool, minimum: int = 1) -> tuple[str, ...]:
        node = fields.get(name)
        if node is None:
            if required:
                self.problem(parent, f"missing field {name!r}")
            return ()
        if not isinstance(node, yaml.SequenceNode):
            self.problem(node, f"field {name!r} must be a list")
            return ()
        items = []
        for item in node.value:
            if not isinstance(item, yaml.ScalarNode) or not str(item.value).strip():
                self.problem(item, f"empty or non-text item in {name!r}")
            else:
                items.append(str(item.value).strip())
        if required and len(items) < minimum:
            self.problem(node, f"field {name!r} needs at least {minimum} item(s), has {len(items)}")
        return tuple(items)

    def text(self, fields: dict[str, yaml.Node], root: yaml.Node, lang: str) -> TopicText | None:
        node = fields.get(lang)
        if node is None:
            self.problem(root, f"missing language {lang!r}")
            return None
        parts = self.mapping(node, TEXT_FIELDS, f"language {lang!r}")
        answer = self.scalar(parts, node, "answer")
        if len(answer) > MAX_ANSWER_CHARS:
            self.problem(parts["answer"], f"{lang} answer has {len(answer)} characters, more than {MAX_ANSWER_CHARS}")
        questions = self.strings(parts, "questions", node, required=True, minimum=MIN_QUESTIONS)
        if len(set(q.lower() for q in questions)) < len(questions):
            self.problem(parts["questions"], f"{lang} questions repeat a phrasing")
        return TopicText(
            title=self.scalar(parts, node, "title"), answer=answer, questions=questions,
            keywords=self.strings(parts, "keywords", node, required=True, minimum=MIN_QUESTIONS),
        )


def _is_date(value: str) -> bool:
    try:
        dt.date.fromisoformat(value)
    except ValueError:
        return False
    return True
