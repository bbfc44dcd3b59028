"""Bot API text formatting for the fake Telegram server.

Turns `parse_mode` text into plain text plus MessageEntity dicts the way
Telegram does, so the fake rejects what Telegram rejects (malformed HTML,
unescaped MarkdownV2 characters) and measures length after formatting.
Offsets and lengths are in UTF-16 code units, as in the Bot API.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from typing import Any

Entity = dict[str, Any]

_HTML_TAGS = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "a": "text_link",
    "code": "code",
    "pre": "pre",
    "tg-spoiler": "spoiler",
    "span": "spoiler",
    "blockquote": "blockquote",
    "tg-emoji": "custom_emoji",
}
_TAG = re.compile(r"<(/?)([a-zA-Z][a-zA-Z0-9-]*)((?:\s[^<>]*)?)>")
_ATTR = re.compile(r"""([a-zA-Z-]+)(?:\s*=\s*("[^"]*"|'[^']*'|[^\s"'>]+))?""")
_HTML_ENTITY = re.compile(r"&(#[0-9]{1,7}|#x[0-9a-fA-F]{1,6}|lt|gt|amp|quot);")
_NAMED = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
_MDV2_RESERVED = set("_*[]()~`>#+-=|{}.!")
_MDV2_TOGGLES = (
    ("||", "spoiler"),
    ("__", "underline"),
    ("*", "bold"),
    ("_", "italic"),
    ("~", "strikethrough"),
)
_MDV2_NAMES = {
    "bold": "Bold",
    "italic": "Italic",
    "underline": "Underline",
    "strikethrough": "Strikethrough",
    "spoiler": "Spoiler",
    "text_link": "TextUrl",
}
_AUTO = re.compile(
    r"(?P<bot_command>(?<![^\s(])/[A-Za-z0-9_]{1,64}(?:@[A-Za-z0-9_]{3,32})?(?![A-Za-z0-9_@/]))"
    r"|(?P<email>(?<![\w.@])[\w.+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,})"
    r"|(?P<mention>(?<![\w@/])@[A-Za-z0-9_]{4,32}(?![A-Za-z0-9_]))"
    r"|(?P<hashtag>(?<![\w#])#\w*[^\W\d]\w*)"
    r"|(?P<url>(?<![\w/])(?:https?://|www\.)[^\s<>\"]+[^\s<>\"\.,;:!?)\]'])"
)
_AUTO_HINT = re.compile(r"[/@#]|www\.")
# Every position where a command, a hashtag or a link could start (zero-width matches).
_AUTO_START = re.compile(r"(?=[/#]|https?://|www\.)")
_NO_AUTO_INSIDE = {"code", "pre", "text_link"}


class EntityParseError(ValueError):
    """Text that Telegram refuses with "can't parse entities"."""


def utf16_len(text: str) -> int:
    """Length in UTF-16 code units, the unit of Bot API entity offsets."""
    return len(text) if text.isascii() else len(text.encode("utf-16-le")) // 2


def _byte_offset(text: str, index: int) -> int:
    return len(text[:index].encode("utf-8"))


def parse_text(text: str, parse_mode: str | None) -> tuple[str, list[Entity]]:
    """Plain text and formatting entities of `text` under `parse_mode`."""
    mode = (parse_mode or "").lower()
    if mode == "html":
        return parse_html(text)
    if mode == "markdownv2":
        return parse_markdown_v2(text)
    if mode == "markdown":
        return parse_markdown(text)
    if mode:
        raise EntityParseError(f"Unsupported parse_mode {parse_mode!r}")
    return text, []


def format_text(text: str, parse_mode: str | None) -> tuple[str, list[Entity]]:
    """Everything Telegram does to a text: parse, trim, then detect commands, links, mentions."""
    plain, entities = parse_text(text, parse_mode)
    plain, entities = strip_text(plain, entities)
    return plain, sort_entities(entities + detect_entities(plain, entities))


def sort_entities(entities: list[Entity]) -> list[Entity]:
    """Entities ordered by offset, longer (outer) ones first, as Telegram returns them."""
    return sorted(entities, key=lambda e: (e["offset"], -e["length"]))


def _parse_attrs(raw: str) -> dict[str, str]:
    attrs = {}
    for m in _ATTR.finditer(raw):
        value = m.group(2) or ""
        attrs[m.group(1).lower()] = value[1:-1] if value[:1] in "\"'" and value else value
    return attrs


def _html_entity(tag: str, attrs: dict[str, str], text: str, at: int) -> Entity | None:
    """The entity an opening tag starts (length filled in later), or None for no entity."""
    kind = _HTML_TAGS[tag]
    if tag == "span" and attrs.get("class") != "tg-spoiler":
        raise EntityParseError(
            f'Tag "span" must have class "tg-spoiler" at byte offset {_byte_offset(text, at)}'
        )
    entity: Entity = {"type": kind}
    if kind == "text_link":
        if not attrs.get("href"):
            return None
        entity["url"] = _decode_html_entities(attrs["href"])
    elif kind == "blockquote" and "expandable" in attrs:
        entity["type"] = "expandable_blockquote"
    elif kind == "custom_emoji":
        entity["custom_emoji_id"] = attrs.get("emoji-id", "")
    return entity


def _decode_html_entities(text: str) -> str:
    return _HTML_ENTITY.sub(lambda m: _decode_one(m.group(1)), text)


def _decode_one(name: str) -> str:
    if name.startswith("#x"):
        return chr(int("0" + name[1:], 0))  # "#x1F600" -> 0x1F600
    if name.startswith("#"):
        return chr(int(name[1:]))
    return _NAMED[name]


def parse_html(text: str) -> tuple[str, list[Entity]]:
    """Parse Bot API HTML: a small set of tags, four named entities, numeric entities."""
    out: list[str] = []
    pos = 0  # UTF-16 offset in the plain text
    stack: list[tuple[str, int, Entity | None]] = []
    entities: list[Entity] = []
    i = 0
    for m in re.finditer(r"[<&]", text):
        if m.start() < i:
            continue
        chunk = text[i : m.start()]
        out.append(chunk)
        pos += utf16_len(chunk)
        if m.group() == "&":
            ent = _HTML_ENTITY.match(text, m.start())
            char = _decode_one(ent.group(1)) if ent else "&"
            i = ent.end() if ent else m.start() + 1
            out.append(char)
            pos += utf16_len(char)
            continue
        tag_m = _TAG.match(text, m.start())
        if not tag_m:
            raise EntityParseError(
                f"Unclosed start tag at byte offset {_byte_offset(text, m.start())}"
            )
        i = tag_m.end()
        closing, tag, raw_attrs = tag_m.group(1) == "/", tag_m.group(2).lower(), tag_m.group(3)
        if closing:
            _close_html_tag(text, m.start(), tag, pos, stack, entities)
            continue
        if tag not in _HTML_TAGS:
            raise EntityParseError(
                f'Unsupported start tag "{tag}" at byte offset {_byte_offset(text, m.start())}'
            )
        attrs = _parse_attrs(raw_attrs)
        entity = _html_entity(tag, attrs, text, m.start())
        if tag == "code" and stack and stack[-1][0] == "pre" and stack[-1][2] is not None:
            language = attrs.get("class", "")
            if language.startswith("language-"):
                stack[-1][2]["language"] = language[len("language-") :]
                entity = None
        stack.append((tag, pos, entity))
    out.append(text[i:])
    if stack:
        raise EntityParseError(f'Can\'t find end tag corresponding to start tag "{stack[-1][0]}"')
    return "".join(out), entities


def _close_html_tag(
    text: str,
    at: int,
    tag: str,
    pos: int,
    stack: list[tuple[str, int, Entity | None]],
    entities: list[Entity],
) -> None:
    if not stack:
        raise EntityParseError(f"Unexpected end tag at byte offset {_byte_offset(text, at)}")
    open_tag, start, entity = stack.pop()
    if open_tag != tag:
        raise EntityParseError(
            f"Unmatched end tag at byte offset {_byte_offset(text, at)},"
            f' expected "</{open_tag}>", found "</{tag}>"'
        )
    if entity is not None and pos > start:
        entity.update(offset=start, length=pos - start)
        entities.append(entity)


class _MarkdownV2:
    """A one-pass MarkdownV2 reader; see https://core.telegram.org/bots/api#markdownv2-style."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.i = 0
        self.out: list[str] = []
        self.pos = 0
        self.open: list[tuple[str, int, int]] = []  # kind, utf16 start, source index
        self.entities: list[Entity] = []
        self.quote_start: int | None = None

    def emit(self, chunk: str) -> None:
        self.out.append(chunk)
        self.pos += utf16_len(chunk)

    def error(self, message: str, at: int | None = None) -> EntityParseError:
        return EntityParseError(
            f"{message} at byte offset {_byte_offset(self.text, self.i if at is None else at)}"
        )

    def add(self, kind: str, start: int, **extra: Any) -> None:
        if self.pos > start:
            self.entities.append(
                {"type": kind, "offset": start, "length": self.pos - start, **extra}
            )

    def run(self) -> tuple[str, list[Entity]]:
        text = self.text
        while self.i < len(text):
            self.step(text[self.i])
        self.close_blockquote()
        if self.open:
            kind, _, at = self.open[-1]
            raise self.error(f"Can't find end of {_MDV2_NAMES[kind]} entity", at)
        return "".join(self.out), self.entities

    def step(self, ch: str) -> None:
        text = self.text
        at_line_start = self.i == 0 or text[self.i - 1] == "\n"
        if ch == "\\" and self.i + 1 < len(text):
            self.emit(text[self.i + 1])
            self.i += 2
        elif ch == "`":
            self.code()
        elif ch == ">" and at_line_start:
            self.blockquote()
        elif ch == "[":
            self.open.append(("text_link", self.pos, self.i))
            self.i += 1
        elif ch == "]" and self.open and self.open[-1][0] == "text_link":
            self.link_end()
        elif self.toggle():
            pass
        elif ch in _MDV2_RESERVED:
            raise self.error(
                f"Character '{ch}' is reserved and must be escaped with the preceding '\\'"
            )
        else:
            if (
                ch == "\n"
                and self.quote_start is not None
                and not self.text.startswith(">", self.i + 1)
            ):
                self.close_blockquote()
            self.emit(ch)
            self.i += 1

    def blockquote(self) -> None:
        if self.quote_start is None:
            self.quote_start = self.pos
        self.i += 1

    def close_blockquote(self) -> None:
        if self.quote_start is not None:
            self.add("blockquote", self.quote_start)
            self.quote_start = None

    def toggle(self) -> bool:
        for marker, kind in _MDV2_TOGGLES:
            if self.text.startswith(marker, self.i):
                self.i += len(marker)
                opened = [k for k, _, _ in self.open]
                if kind in opened:
                    index = len(opened) - 1 - opened[::-1].index(kind)
                    _, start, _ = self.open.pop(index)
                    self.add(kind, start)
                else:
                    self.open.append((kind, self.pos, self.i - len(marker)))
                return True
        return False

    def scan_until(self, end: str, start: int, entity: str) -> tuple[str, int]:
        """Raw text up to an unescaped `end`, with only backslash escapes undone."""
        chunk: list[str] = []
        j = start
        while j < len(self.text):
            if self.text[j] == "\\" and j + 1 < len(self.text):
                chunk.append(self.text[j + 1])
                j += 2
            elif self.text.startswith(end, j):
                return "".join(chunk), j
            else:
                chunk.append(self.text[j])
                j += 1
        raise self.error(f"Can't find end of {entity} entity")

    def code(self) -> None:
        fence = "```" if self.text.startswith("```", self.i) else "`"
        body, end = self.scan_until(fence, self.i + len(fence), "Pre" if fence == "```" else "Code")
        start = self.pos
        language = ""
        if fence == "```":
            first, newline, rest = body.partition("\n")
            if newline and first and " " not in first:
                language, body = first, rest
        self.emit(body)
        if fence == "```":
            self.add("pre", start, **({"language": language} if language else {}))
        else:
            self.add("code", start)
        self.i = end + len(fence)

    def link_end(self) -> None:
        _, start, _ = self.open.pop()
        if not self.text.startswith("(", self.i + 1):
            raise self.error(
                "Character ']' is reserved and must be escaped with the preceding '\\'"
            )
        url, end = self.scan_until(")", self.i + 2, "TextUrl")
        self.add("text_link", start, url=url)
        self.i = end + 1


def parse_markdown_v2(text: str) -> tuple[str, list[Entity]]:
    """Parse MarkdownV2; unescaped reserved characters are errors, as in Telegram."""
    return _MarkdownV2(text).run()


_LEGACY = re.compile(r"\*([^*]*)\*|_([^_]*)_|```([^`]*)```|`([^`]*)`|\[([^\]]*)\]\(([^)]*)\)")
_LEGACY_KINDS = {1: "bold", 2: "italic", 3: "pre", 4: "code", 5: "text_link"}


def parse_markdown(text: str) -> tuple[str, list[Entity]]:
    """Parse legacy Markdown: no nesting, unclosed markers are errors."""
    out: list[str] = []
    entities: list[Entity] = []
    pos = 0
    i = 0
    while i < len(text):
        m = _LEGACY.match(text, i)
        if m:
            group = next(g for g in _LEGACY_KINDS if m.group(g) is not None)
            body = m.group(group)
            if body:
                entity: Entity = {
                    "type": _LEGACY_KINDS[group],
                    "offset": pos,
                    "length": utf16_len(body),
                }
                if group == 5:
                    entity["url"] = m.group(6)
                entities.append(entity)
            out.append(body)
            pos += utf16_len(body)
            i = m.end()
        elif text[i] in "*_`[":
            raise EntityParseError(
                f"Can't find end of the entity starting at byte offset {_byte_offset(text, i)}"
            )
        else:
            if text[i] == "\\" and i + 1 < len(text) and text[i + 1] in "*_`[":
                i += 1
            out.append(text[i])
            pos += utf16_len(text[i])
            i += 1
    return "".join(out), entities


def strip_text(text: str, entities: list[Entity]) -> tuple[str, list[Entity]]:
    """Trim surrounding whitespace like Telegram does, clipping entities to what remains."""
    stripped = text.strip()
    if stripped == text:
        return text, entities
    shift = utf16_len(text[: len(text) - len(text.lstrip())])
    end = utf16_len(stripped)
    kept = []
    for entity in entities:
        start = max(entity["offset"] - shift, 0)
        stop = min(entity["offset"] + entity["length"] - shift, end)
        if stop > start:
            kept.append({**entity, "offset": start, "length": stop - start})
    return stripped, kept


def _auto_matches(text: str) -> Iterator[re.Match[str]]:
    """`_AUTO.finditer(text)`, in a fraction of the time when the text has no "@".

    Without one no e-mail or mention can match, and the rest start only where
    `_AUTO_START` matches, so `_AUTO` is tried there instead of at every character
    (an e-mail's local part could begin at any of them).
    """
    if "@" in text:
        yield from _AUTO.finditer(text)
        return
    end = 0
    for start in _AUTO_START.finditer(text):
        if start.start() >= end and (match := _AUTO.match(text, start.start())):
            yield match
            end = match.end()


def detect_entities(text: str, existing: Sequence[Entity] = ()) -> list[Entity]:
    """Commands, mentions, hashtags, URLs and e-mails that Telegram marks up by itself."""
    if not _AUTO_HINT.search(text):
        return []
    blocked = [
        (e["offset"], e["offset"] + e["length"]) for e in existing if e["type"] in _NO_AUTO_INSIDE
    ]
    found = []
    for m in _auto_matches(text):
        offset = utf16_len(text[: m.start()])
        length = utf16_len(m.group())
        if not any(start < offset + length and offset < stop for start, stop in blocked):
            found.append({"type": m.lastgroup, "offset": offset, "length": length})
    return found
