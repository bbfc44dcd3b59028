"""Espoo's districts: the gazetteer in `knowledge/districts.yaml` and a resolver of free text.

Residents name their area the way they speak: inflected ("Espoonlahdessa",
"Niittykummussa"), in Swedish ("i Hagalund"), without dots ("Matinkyla") or
misspelt. The resolver answers with one district only when exactly one fits;
otherwise it offers candidates, so a resident is asked rather than guessed for.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .placenames import LOOSE, NameIndex

logger = logging.getLogger(__name__)

FILE_NAME = "districts.yaml"
MAX_CANDIDATES = 5
RESERVED_IDS = {"all"}  # news for the whole city is stored under "all"
_ID = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
_TELEGRAM_CHANNEL = re.compile(r"^(?:@[A-Za-z][A-Za-z0-9_]{3,31}|-100\d+)$")
_MATRIX_ROOM = re.compile(r"^[!#][^:\s]+:\S+$")
_COMMON_FIELDS = {"id", "fi", "sv", "en", "unconfirmed", "sv_unconfirmed", "note", "aliases",
                  "sub_areas", "telegram_channel", "matrix_room"}
_MAJOR_FIELDS = _COMMON_FIELDS | {"districts"}
_SUB_AREA_FIELDS = {"fi", "sv", "unconfirmed", "note"}


class GazetteerError(Exception):
    """The district file is broken; the message names the file (with the line) and the problem."""


@dataclass(frozen=True)
class SubArea:
    """A named part of a district (Kivenlahti in Espoonlahti); not a district of its own."""

    fi: str
    sv: str = ""
    unconfirmed: bool = False
    note: str = ""


@dataclass(frozen=True)
class District:
    """A major district (suuralue, `major_id` None) or a city district (kaupunginosa)."""

    id: str
    fi: str
    sv: str
    en: str
    major_id: str | None = None
    unconfirmed: bool = False
    sv_unconfirmed: bool = False
    note: str = ""
    aliases: tuple[str, ...] = ()
    sub_areas: tuple[SubArea, ...] = ()
    telegram_channel: str = ""
    matrix_room: str = ""

    @property
    def is_major(self) -> bool:
        return self.major_id is None

    def name(self, language: str) -> str:
        """The district's name for a resident writing `language` (fi, sv or en)."""
        return {"sv": self.sv, "en": self.en}.get(language) or self.fi

    def names(self) -> tuple[str, ...]:
        """Every name a resident may use for this district, sub-areas included."""
        found = [self.fi, self.sv, self.en, *self.aliases]
        for area in self.sub_areas:
            found += [area.fi, area.sv]
        return tuple(dict.fromkeys(n for n in found if n))


@dataclass(frozen=True)
class Resolution:
    """The district free text names, or else up to five candidates (best first), or nothing."""

    district: District | None
    candidates: tuple[District, ...] = ()


class Gazetteer:
    """All districts by id, in file order, and the resolver built from their names."""

    def __init__(self, districts: Iterable[District], path: Path | None = None):
        self.path = path
        self._by_id = {d.id: d for d in districts}
        self._index = NameIndex((d.id, d.names()) for d in self._by_id.values())

    @classmethod
    def load(cls, knowledge_dir: Path) -> Gazetteer:
        """Read and validate `knowledge_dir/districts.yaml`; GazetteerError if it is broken."""
        path = Path(knowledge_dir) / FILE_NAME
        districts = _Reader(path).read()
        logger.debug("loaded %d districts from %s", len(districts), path)
        return cls(districts, path)

    def __iter__(self) -> Iterator[District]:
        return iter(self._by_id.values())

    def __len__(self) -> int:
        return len(self._by_id)

    def __contains__(self, district_id: object) -> bool:
        return district_id in self._by_id

    def get(self, district_id: str) -> District | None:
        return self._by_id.get(district_id)

    def majors(self) -> tuple[District, ...]:
        return tuple(d for d in self if d.is_major)

    def children(self, major_id: str) -> tuple[District, ...]:
        return tuple(d for d in self if d.major_id == major_id)

    def major_of(self, district: District) -> District:
        """The major district a district lies in (a major district is its own)."""
        return self._by_id[district.major_id] if district.major_id else district

    def resolve(self, text: str) -> Resolution:
        """The one district `text` names; when unsure, candidates instead (never a guess)."""
        found = self._index.lookup(text)
        if not found:
            return Resolution(None)
        best = found[0][1]
        top = [self._by_id[owner] for owner, cost in found if cost == best]
        chosen = self._most_specific(top) if best < LOOSE else None
        if chosen is not None:
            return Resolution(chosen)
        return Resolution(None, tuple(self._by_id[owner] for owner, _ in found[:MAX_CANDIDATES]))

    def _most_specific(self, found: list[District]) -> District | None:
        """One district, or one city district named together with its own major district."""
        children = [d for d in found if not d.is_major]
        if len(found) == 1:
            return found[0]
        if len(children) == 1 and all(d.id == children[0].major_id for d in found if d.is_major):
            return children[0]
        return None


class _LineLoader(yaml.SafeLoader):
    """Remembers each mapping's line so problems can point at it."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        mapping = super().construct_mapping(node, deep=deep)
        mapping["__line__"] = node.start_mark.line + 1
        return mapping


class _Reader:
    """Turns the YAML file into validated District rows, collecting every problem."""

    def __init__(self, path: Path):
        self.path = path
        self.problems: list[str] = []

    def read(self) -> list[District]:
        try:
            data = yaml.load(self.path.read_text(encoding="utf-8"), Loader=_LineLoader)
        except (OSError, UnicodeDecodeError, yaml.YAMLError, RecursionError) as exc:
            raise GazetteerError(f"{self.path}: cannot read the district file: {exc}") from exc
        majors = data.get("major_districts") if isinstance(data, dict) else None
        if not isinstance(majors, list) or not majors:
            raise GazetteerError(f"{self.path}: needs a non-empty list 'major_districts'")
        districts: list[District] = []
        for entry in majors:
            districts += self.major(entry)
        self.check_unique(districts)
        if self.problems:
            raise GazetteerError("\n".join(self.problems))
        return districts

    def problem(self, entry: Any, message: str) -> None:
        line = entry.get("__line__", 0) if isinstance(entry, dict) else 0
        self.problems.append(f"{self.path}:{line}: {message}")

    def major(self, entry: Any) -> list[District]:
        major = self.district(entry, None, _MAJOR_FIELDS)
        if major is None:
            return []
        children = entry.get("districts")
        if not isinstance(children, list) or not children:
            self.problem(entry, f"major district {major.id!r} needs a non-empty list 'districts'")
            children = []
        found = [self.district(child, major.id, _COMMON_FIELDS) for child in children]
        return [major, *(d for d in found if d is not None)]

    def district(self, entry: Any, major_id: str | None, allowed: set[str]) -> District | None:
        if not isinstance(entry, dict):
            self.problem(entry, f"a district must be a mapping, got {entry!r}")
            return None
        for name in sorted(set(entry) - allowed - {"__line__"}):
            self.problem(entry, f"unknown field {name!r}")
        district_id, fi, sv = (self.text(entry, name, required=True) for name in ("id", "fi", "sv"))
        if district_id and not _ID.match(district_id):
            self.problem(entry, f"id {district_id!r} must be lower-case ascii words joined by '-'")
        channel, room = self.channels(entry)
        if not (district_id and fi and sv):
            return None
        return District(
            id=district_id, fi=fi, sv=sv, en=self.text(entry, "en") or fi, major_id=major_id,
            unconfirmed=self.flag(entry, "unconfirmed"),
            sv_unconfirmed=self.flag(entry, "sv_unconfirmed"),
            note=self.text(entry, "note"), aliases=self.aliases(entry),
            sub_areas=self.sub_areas(entry), telegram_channel=channel, matrix_room=room)

    def channels(self, entry: dict[str, Any]) -> tuple[str, str]:
        """The district's Telegram channel and Matrix room, when given in a usable form."""
        channel, room = self.text(entry, "telegram_channel"), self.text(entry, "matrix_room")
        if channel and not _TELEGRAM_CHANNEL.match(channel):
            self.problem(entry, f"telegram_channel {channel!r} must look like @name or -100…")
        if room and not _MATRIX_ROOM.match(room):
            self.problem(entry, f"matrix_room {room!r} must be a room id (!…:server) "
                                "or an alias (#…:server)")
        return channel, room

    def text(self, entry: dict[str, Any], name: str, required: bool = False) -> str:
        value = entry.get(name)
        if value is None or value == "":
            if required:
                self.problem(entry, f"missing field {name!r} in {entry.get('id') or 'a district'}")
            return ""
        if not isinstance(value, str) or not value.strip():
            self.problem(entry, f"field {name!r} must be text, got {value!r}")
            return ""
        return value.strip()

    def flag(self, entry: dict[str, Any], name: str) -> bool:
        value = entry.get(name, False)
        if not isinstance(value, bool):
            self.problem(entry, f"field {name!r} must be true or false, got {value!r}")
        return value is True

    def aliases(self, entry: dict[str, Any]) -> tuple[str, ...]:
        value = entry.get("aliases", [])
        if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
            self.problem(entry, "field 'aliases' must be a list of names")
            return ()
        return tuple(v.strip() for v in value)

    def sub_areas(self, entry: dict[str, Any]) -> tuple[SubArea, ...]:
        value = entry.get("sub_areas", [])
        if not isinstance(value, list):
            self.problem(entry, "field 'sub_areas' must be a list")
            return ()
        areas = []
        for item in value:
            if not isinstance(item, dict):
                self.problem(entry, f"a sub-area must be a mapping, got {item!r}")
                continue
            for name in sorted(set(item) - _SUB_AREA_FIELDS - {"__line__"}):
                self.problem(item, f"unknown field {name!r} in a sub-area")
            fi = self.text(item, "fi", required=True)
            if fi:
                areas.append(SubArea(fi, self.text(item, "sv"), self.flag(item, "unconfirmed"),
                                     self.text(item, "note")))
        return tuple(areas)

    def check_unique(self, districts: list[District]) -> None:
        """Ids are unique and not reserved; no name belongs to two districts."""
        seen: set[str] = set()
        owners: dict[str, str] = {}
        for district in districts:
            if district.id in RESERVED_IDS:
                self.problems.append(f"{self.path}: id {district.id!r} is reserved (whole city)")
            elif district.id in seen:
                self.problems.append(f"{self.path}: id {district.id!r} is used twice")
            seen.add(district.id)
            for name in district.names():
                folded = NameIndex.fold_name(name)
                if owners.setdefault(folded, district.id) != district.id:
                    self.problems.append(f"{self.path}: name {name!r} belongs to both "
                                         f"{owners[folded]!r} and {district.id!r}")
