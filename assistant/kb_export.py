"""`kb export`: chat edits written back into the topic files, so they are reviewed in git.

A changed file is patched in place at the YAML node positions (answer, title, added
phrasings, `reviewed`), so comments, field order and quoting stay as curated and the
git diff shows only the change. A topic added by chat gets a new file in the same layout.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable
from zoneinfo import ZoneInfo

import yaml

from . import knowledge
from .knowledge import KnowledgeBase, Problem, Topic, TopicText
from .messages import LANGUAGES

if TYPE_CHECKING:
    from .settings import Settings

logger = logging.getLogger(__name__)

Overlay = Callable[[KnowledgeBase], KnowledgeBase]


@dataclass(frozen=True)
class _Edit:
    """Replace text[start:end] by `text` (an insertion when start == end)."""

    start: int
    end: int
    text: str


def export(directory: Path, overlay: Overlay, today: dt.date) -> list[Path]:
    """Write the overlay's changes into `directory`/topics; the files written."""
    base = knowledge.load(directory)
    merged = overlay(base)
    written = []
    for topic in merged:
        original = base.get(topic.id)
        if original is None:
            path = Path(directory) / "topics" / f"{topic.id}.yaml"
            path.write_text(render_topic(topic, today), encoding="utf-8")
        else:
            path = Path(original.path)
            old = path.read_text(encoding="utf-8")
            new = patch_topic(old, original, topic, today)
            if new == old:
                continue
            path.write_text(new, encoding="utf-8")
        logger.info("exported topic %s to %s", topic.id, path)
        written.append(path)
    return written


def check_topic(topic: Topic, today: dt.date) -> list[Problem]:
    """The problems `kb check` would find in the file `export` writes for a new topic."""
    with tempfile.TemporaryDirectory() as folder:
        topics = Path(folder) / "topics"
        topics.mkdir()
        (topics / f"{topic.id}.yaml").write_text(render_topic(topic, today), encoding="utf-8")
        return knowledge.check(Path(folder))[1]


# a changed topic: patch the curated file ------------------------------------

def patch_topic(text: str, original: Topic, topic: Topic, today: dt.date) -> str:
    """The file text with `topic`'s differences from `original` written in."""
    root = yaml.compose(text)
    fields = _fields(root)
    edits: list[_Edit] = []
    for lang in LANGUAGES:
        if lang in fields and lang in topic.texts:
            edits += _language_edits(text, fields[lang], original.text(lang), topic.text(lang))
    if not edits:
        return text
    if "reviewed" in fields:
        edits.append(_replace(fields["reviewed"], today.isoformat()))
    for edit in sorted(edits, key=lambda e: e.start, reverse=True):
        text = text[:edit.start] + edit.text + text[edit.end:]
    return text


def _language_edits(text: str, node: yaml.Node, old: TopicText, new: TopicText) -> list[_Edit]:
    fields = _fields(node)
    edits = []
    if new.title != old.title and "title" in fields:
        edits.append(_replace(fields["title"], scalar(new.title)))
    if new.answer.strip() != old.answer.strip() and "answer" in fields:
        edits.append(_answer_edit(text, node, fields["answer"], new.answer))
    known = {q.casefold() for q in old.questions}
    added = [q for q in new.questions if q.casefold() not in known]
    if added and isinstance(fields.get("questions"), yaml.SequenceNode):
        edits.append(_append_items(fields["questions"], added))
    return edits


def _fields(node: yaml.Node) -> dict[str, yaml.Node]:
    if not isinstance(node, yaml.MappingNode):
        return {}
    return {str(key.value): value for key, value in node.value}


def _replace(node: yaml.Node, text: str) -> _Edit:
    return _Edit(node.start_mark.index, node.end_mark.index, text)


def _answer_edit(text: str, parent: yaml.MappingNode, node: yaml.Node, answer: str) -> _Edit:
    """A literal block at the field's indentation, keeping the blank lines that followed."""
    key = next(k for k, v in parent.value if v is node)
    span = text[node.start_mark.index:node.end_mark.index]
    trailing = span[len(span.rstrip("\n")):]
    return _Edit(node.start_mark.index, node.end_mark.index,
                 literal(answer, key.start_mark.column + 2) + trailing)


def _append_items(node: yaml.SequenceNode, items: list[str]) -> _Edit:
    """New items after the last one, in the sequence's own style (block or flow, quoted or not)."""
    last = node.value[-1]
    quoted = last.style == '"'
    if node.flow_style:
        added = "".join(", " + scalar(item, quoted=quoted, flow=True) for item in items)
    else:
        indent = " " * (last.start_mark.column - 2)
        added = "".join(f"\n{indent}- {scalar(item, quoted=quoted)}" for item in items)
    return _Edit(last.end_mark.index, last.end_mark.index, added)


# a new topic: a file in the curated layout ------------------------------------

def render_topic(topic: Topic, today: dt.date) -> str:
    """A topic file in the layout of the curated ones (see knowledge/topics/)."""
    lines = [f"id: {topic.id}", f"reviewed: {today.isoformat()}", "sources:"]
    lines += [f"  - {scalar(source)}" for source in topic.sources]
    lines.append("links:" if topic.links else "links: []")
    lines += [f"  - {scalar(link)}" for link in topic.links]
    for lang in LANGUAGES:
        text = topic.text(lang)
        lines += [f"{lang}:", f"  title: {scalar(text.title)}",
                  f"  answer: {literal(text.answer, 4)}", "  questions:"]
        lines += [f"    - {scalar(q)}" for q in text.questions]
        lines.append("  keywords: [" + ", ".join(scalar(k, flow=True) for k in text.keywords) + "]")
    return "\n".join(lines) + "\n"


def scalar(value: str, quoted: bool = False, flow: bool = False) -> str:
    """`value` plain when YAML reads it back unchanged, else double-quoted."""
    if not quoted and value == value.strip() and "\n" not in value:
        probe = f"k: [{value}]" if flow else f"k: {value}"
        try:
            loaded = yaml.safe_load(probe)
        except yaml.YAMLError:
            loaded = None
        if loaded == {"k": [value] if flow else value}:
            return value
    return json.dumps(value, ensure_ascii=False)  # a JSON string is a YAML double-quoted scalar


def literal(text: str, indent: int) -> str:
    """A `|` block: the text's lines at `indent` spaces, empty lines left empty."""
    pad = " " * indent
    lines = text.strip("\n").split("\n")
    return "|" + "".join("\n" + (pad + line if line.strip() else "") for line in lines)


# the command line ---------------------------------------------------------------

def run(settings: "Settings", args: argparse.Namespace) -> int:
    """`python -m assistant kb export [--dir DIR]`: write, then check the result like `kb check`."""
    from .curation import overlay_from
    from .store.admin import Revisions
    from .store.db import Database

    directory = Path(args.dir or settings.knowledge_dir)
    db = Database(settings.database_url)
    db.create_all()
    try:
        today = dt.datetime.now(ZoneInfo(settings.timezone)).date()
        written = export(directory, overlay_from(Revisions(db)), today)
    except knowledge.KnowledgeError as exc:
        print(exc, file=sys.stderr)
        return 1
    finally:
        db.dispose()
    for path in written:
        print(path)
    problems = knowledge.check(directory)[1]
    for problem in problems:
        print(problem, file=sys.stderr)
    print(f"exported {len(written)} topic file(s) to {directory}", file=sys.stderr)
    return 1 if problems else 0
