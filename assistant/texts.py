"""The catalogue of every sentence a resident sees, one per language.

Each language is a folder `locales/<lang>/` of YAML files (one per feature) that
are merged into one catalogue; the three catalogues must have the same keys and
the same `{placeholders}`. The language is chosen per message, never per process.
"""

from __future__ import annotations

import re
import string
from pathlib import Path

import yaml

from .messages import LANGUAGES

LOCALES_DIR = Path(__file__).resolve().parent / "locales"
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_PLACEHOLDER = re.compile(r"\{(\w+)\}")


class CatalogueError(Exception):
    """A catalogue file is malformed or the languages disagree."""


class Texts:
    """Look up a text by key in a language and fill in its placeholders."""

    def __init__(self, directory: Path = LOCALES_DIR):
        self._catalogues = {lang: _load_language(directory / lang) for lang in LANGUAGES}
        problems = consistency_problems(self._catalogues)
        if problems:
            raise CatalogueError("; ".join(problems))

    def get(self, language: str, key: str, /, **values: object) -> str:
        """The text for `key` in `language` (Finnish when the language is unknown)."""
        catalogue = self._catalogues.get(language) or self._catalogues["fi"]
        template = catalogue[key]
        return string.Formatter().vformat(template, (), _Defaults(values)) if values else template

    def keys(self) -> set[str]:
        return set(self._catalogues["fi"])

    def all_languages(self, key: str) -> dict[str, str]:
        return {lang: self._catalogues[lang][key] for lang in LANGUAGES}


class _Defaults(dict):
    """Leaves an unfilled placeholder visible instead of raising mid-conversation."""

    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def _load_language(folder: Path) -> dict[str, str]:
    merged: dict[str, str] = {}
    for path in sorted(folder.glob("*.yaml")):
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_LOADER) or {}
        if not isinstance(data, dict):
            raise CatalogueError(f"{path}: must be a mapping of key: text")
        for key, value in data.items():
            if key in merged:
                raise CatalogueError(f"{path}: key {key!r} is defined twice in {folder.name}")
            if not isinstance(value, str):
                raise CatalogueError(f"{path}: {key!r} must be text")
            merged[key] = value.rstrip("\n")
    return merged


def consistency_problems(catalogues: dict[str, dict[str, str]]) -> list[str]:
    """Keys missing in a language, or placeholders that differ between languages."""
    problems = []
    reference = catalogues["fi"]
    for lang, catalogue in catalogues.items():
        for key in set(reference) ^ set(catalogue):
            problems.append(f"{key!r} missing in {'fi' if key in catalogue else lang}")
        for key in set(reference) & set(catalogue):
            if set(_PLACEHOLDER.findall(reference[key])) != set(_PLACEHOLDER.findall(catalogue[key])):
                problems.append(f"{key!r} has different placeholders in fi and {lang}")
    return problems
