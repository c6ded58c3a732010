"""The grid model: every decision table of a policy version as the grid its rule file writes.

One model, read by everything that shows or exchanges a table: the HTML pages, the CSV and XLSX
export, the sheet import and the grid diff. A table is read from the rule file itself (not from
the compiled IR), so each cell shows exactly what the YAML writes: a text cell as its text, any
other cell (a condition such as ``{at_least: 100}``, a number) as its source text with the
whitespace folded. Each cell keeps where it was written (file, line, column and the span of
characters), which is how an edited sheet is written back into the file.

Row keys are rule ids (the first column of every table); column keys are the header's names;
``(row key, column)`` names a cell in both versions of a diff.
"""
from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from engine import is_test_file
from engine.load import SourceMap, Written, load_text

LABELS = {"action_matrix": 2, "rows": 1}   # leading columns that name a row (rule, entity)
_SPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class Span:
    """Where a value was written: 1-based line and column, and its character offsets in the file."""

    file: str
    line: int
    column: int
    start: int
    end: int

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


@dataclass(frozen=True)
class Cell:
    column: str
    text: str        # as shown: a text cell's text, any other value's source text
    value: Any       # the YAML value, for comparing cells
    span: Span
    is_text: bool    # written as a text (string) value


@dataclass(frozen=True)
class GridRow:
    key: str                       # the rule id
    says: str
    sources: tuple[str, ...]
    labels: tuple[Cell, ...]       # the row's name: rule (and entity)
    cells: tuple[Cell, ...]        # one per remaining column

    @property
    def all_cells(self) -> tuple[Cell, ...]:
        return self.labels + self.cells

    def cell(self, column: str) -> Cell | None:
        return next((c for c in self.all_cells if c.column == column), None)


@dataclass(frozen=True)
class Grid:
    """One decision table as written: header, rows, and what decides around them."""

    system: str
    id: str
    layout: str                               # action_matrix | rows
    says: str
    sources: tuple[str, ...]
    hit: str
    no_match: str | None                      # row tables: deny | error | an outcome | None
    otherwise: str | None                     # action matrices: the outcome when no word holds
    words: tuple[tuple[str, str], ...]        # matrix words and their condition, as written
    outcomes: tuple[tuple[str, str], ...]     # outcome name and its obligations, as written
    when: str | None                          # row tables: the condition the whole table needs
    actions: tuple[str, ...]                  # row tables: the actions it decides
    header: tuple[str, ...]
    rows: tuple[GridRow, ...]
    span: Span
    document: int                             # index of the YAML document in its file
    index: int                                # index of the table in the document's `rules`

    @property
    def key(self) -> tuple[str, str]:
        return (self.system, self.id)

    @property
    def file(self) -> str:
        return self.span.file

    @property
    def label_count(self) -> int:
        return LABELS.get(self.layout, 1)

    @property
    def hit_words(self) -> str:
        return {"unique": "unique: at most one row matches", "first": "first: the first matching row, top down",
                "collect": "collect: every matching row"}.get(self.hit, self.hit)

    def no_match_words(self) -> str:
        if self.layout != "rows":
            return f"a cell whose words do not hold: {self.otherwise}" if self.otherwise else ""
        if self.no_match is None:
            return "nothing (no row decides, so the table asks for nothing)"
        return {"deny": "deny", "error": "an evaluation error"}.get(self.no_match, f"outcome {self.no_match}")

    def sheet(self) -> list[list[str]]:
        """The grid as a sheet shows it: the header row, then one row per table row."""
        return [list(self.header)] + [[c.text for c in r.all_cells] for r in self.rows]

    def row(self, key: str) -> GridRow | None:
        return next((r for r in self.rows if r.key == key), None)


@dataclass(frozen=True)
class Source:
    id: str
    kind: str
    title: str
    url: str | None


@dataclass(frozen=True)
class Section:
    """One system's document: its title, sources and tables."""

    system: str
    title: str
    file: str
    sources: tuple[Source, ...]
    grids: tuple[Grid, ...]


# -- reading the rule files -----------------------------------------------------------------------
class UnreadableFile(yaml.YAMLError):
    """A rule file the engine's loader refuses (not YAML, or over one of its limits)."""


def _span(written: Written) -> Span:
    return Span(written.file, written.line, written.column, written.start, written.end)


def _text(source: str, written: Written, value: Any) -> tuple[str, bool]:
    if isinstance(value, str):           # only a scalar reads as a text
        return value, True
    return _SPACE.sub(" ", source[written.start:written.end]).strip(), False


def _cell(source: str, column: str, written: Written, value: Any) -> Cell:
    text, is_text = _text(source, written, value)
    return Cell(str(column), text, value, _span(written), is_text)


def _flow(source: str, written: Written | None) -> str:
    return "" if written is None else _SPACE.sub(" ", source[written.start:written.end]).strip()


def _refs(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    return (str(value),) if isinstance(value, str) else tuple(str(v) for v in value)


def _documents(file: str, source: str) -> tuple[list[Any], SourceMap]:
    """The file's documents and where each value was written, read by the engine's loader (its
    limits, its duplicate-key and tag checks); a file it refuses raises ``UnreadableFile``."""
    loaded, errors = load_text(file, source, extents=True)
    if loaded is None:
        raise UnreadableFile("; ".join(f"{e.location}: {e.message}" for e in errors) or "not a rule file")
    return loaded.documents, loaded.source


def _written(smap: SourceMap, mapping: Any) -> list[tuple[str, Written]]:
    """(key, where its value was written) of each entry of a mapping, in the file's order."""
    if not isinstance(mapping, dict):
        return []
    return [(str(k), w) for k, w in zip(mapping, smap.written(mapping), strict=False)]


def _grid(source: str, smap: SourceMap, system: str, spec: dict[str, Any], path: tuple[Any, ...],
          where: tuple[int, int]) -> Grid:
    layout = str(spec.get("layout"))
    labels = LABELS.get(layout, 1)
    header = [str(h) for h in spec.get("header") or ()]
    metas = spec.get("rules") or {}
    rows = []
    body = spec.get("body")
    for row in body if isinstance(body, list) else ():
        if not isinstance(row, list) or not row:
            continue
        cells = [_cell(source, column, w, value) for column, w, value in zip(header, smap.written(row), row,
                                                                              strict=False)]
        meta = metas.get(str(row[0])) or {}
        rows.append(GridRow(str(row[0]), str(meta.get("says", "")), _refs(meta.get("source", spec.get("source"))),
                            tuple(cells[:labels]), tuple(cells[labels:])))
    span = smap.written_at(path)
    if span is None:  # the loader kept no extent for a table it read: refuse the file, never guess a place
        raise UnreadableFile(f"{smap.file}: table `{spec.get('id')}` has no recorded place in the file")
    return Grid(
        system=system, id=str(spec.get("id")), layout=layout, says=str(spec.get("says", "")),
        sources=_refs(spec.get("source")), hit=str(spec.get("hit")),
        no_match=None if spec.get("no_match") is None else str(spec["no_match"]),
        otherwise=None if spec.get("otherwise") is None else str(spec["otherwise"]),
        words=tuple((k, _flow(source, w)) for k, w in _written(smap, spec.get("words"))),
        outcomes=tuple((k, _flow(source, w)) for k, w in _written(smap, spec.get("outcomes"))),
        when=_flow(source, smap.written_at(path + ("when",)) if "when" in spec else None) or None,
        actions=_refs(spec.get("actions")), header=tuple(header), rows=tuple(rows), span=_span(span),
        document=where[0], index=where[1])


def _sources(doc: dict[str, Any]) -> tuple[Source, ...]:
    out = []
    for sid, spec in (doc.get("sources") or {}).items():
        spec = spec if isinstance(spec, dict) else {}
        url = spec.get("url")
        out.append(Source(str(sid), str(spec.get("kind", "")), str(spec.get("title", "")),
                          url if isinstance(url, str) and url.startswith(("https://", "http://")) else None))
    return tuple(out)


def file_sections(file: str, source: str) -> list[Section]:
    """The sections (one per YAML document) of one rule file, with their tables."""
    sections = []
    documents, smap = _documents(file, source)
    for d, (at, doc) in enumerate((at, doc) for at, doc in enumerate(documents) if doc is not None):
        if not isinstance(doc, dict):
            continue
        system = str(doc.get("system"))
        rules = doc.get("rules")
        grids = tuple(_grid(source, smap, system, rule, (at, "rules", i), (d, i))
                      for i, rule in enumerate(rules if isinstance(rules, list) else ())
                      if isinstance(rule, dict) and rule.get("kind") == "table")
        sections.append(Section(system, str(doc.get("title", "")), file, _sources(doc), grids))
    return sections


def sections(files: Mapping[str, str]) -> tuple[Section, ...]:
    """Every section of every rule file of a version (tests left out), in file order."""
    return tuple(s for path in sorted(files) if not is_test_file(path) for s in file_sections(path, files[path]))


def grids(files: Mapping[str, str]) -> tuple[Grid, ...]:
    """Every decision table of a version, in file order."""
    return tuple(g for s in sections(files) for g in s.grids)


_CACHE: OrderedDict[str, tuple[Section, ...]] = OrderedDict()
_CACHE_SIZE = 32
_LOCK = threading.Lock()


def version_sections(version_id: str, files: Mapping[str, str]) -> tuple[Section, ...]:
    """:func:`sections` of a stored version, read once per version id (a stored version's files
    never change: its id is the hash of their content)."""
    with _LOCK:
        found = _CACHE.get(version_id)
        if found is not None:
            _CACHE.move_to_end(version_id)
            return found
    made = sections(files)
    with _LOCK:
        _CACHE[version_id] = made
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return made


def find(all_grids: tuple[Grid, ...], system: str, table_id: str) -> Grid | None:
    return next((g for g in all_grids if g.system == system and g.id == table_id), None)
