"""Stage 1, load: YAML text to plain documents, keeping where every value came from.

``yaml.compose`` gives nodes with marks; we build the Python values ourselves so that each path
such as ``(3, "rules", 4, "deny_when")`` maps to the ``Location`` of its value (and of its key),
which is how schema and compile errors point at ``file:line:column``. Duplicate keys, which
PyYAML would silently accept, are reported.
"""
from __future__ import annotations

from array import array
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from .errors import Location, PolicyError

Path = tuple[Any, ...]


@dataclass
class SourceMap:
    """Where each value (and each mapping key) of a file's documents was written.

    Positions are stored packed as ``line << 20 | column`` (large tables have one per cell);
    ``at`` gives them back as a ``Location``.
    """

    file: str
    values: dict[Path, int] = field(default_factory=dict)
    keys: dict[Path, Location] = field(default_factory=dict)
    items: dict[Path, array[int]] = field(default_factory=dict)   # list path -> packed item positions

    def at(self, path: Path, *, key: bool = False) -> Location:
        """The closest known location for ``path`` (walking up to its parents)."""
        path = tuple(path)
        if key and path in self.keys:
            return self.keys[path]
        while path:
            packed = self.values.get(path)
            if packed is None and isinstance(path[-1], int):
                positions = self.items.get(path[:-1])
                if positions is not None and 0 <= path[-1] < len(positions):
                    packed = positions[path[-1]]
            if packed is not None:
                return Location(self.file, packed >> 20, packed & 0xFFFFF)
            path = path[:-1]
        return Location(self.file, 1, 1)


@dataclass
class LoadedFile:
    path: str
    documents: list[Any]
    source: SourceMap


def _loc(file: str, mark: Any) -> Location:
    return Location(file, mark.line + 1, mark.column + 1)


_STR = "tag:yaml.org,2002:str"


class _Builder:
    """Builds documents straight from parser events, recording positions as it goes.

    Composing a node tree first (``yaml.compose``) keeps every node of a large file alive at
    once; reading events builds each value and drops the event, so a 10,000-row table loads
    in a fraction of the time and memory.
    """

    def __init__(self, loader: Any, smap: SourceMap, errors: list[PolicyError]):
        self.loader = loader
        self.smap = smap
        self.errors = errors
        self.anchors: dict[str, Any] = {}
        self.file = smap.file

    def value(self, path: Path | None, positions: array[int] | None = None) -> Any:
        """Build the next value and record where it starts: in ``positions`` (the packed array of
        the list it is an item of), else under ``path`` unless that is None (keys, skipped values)."""
        loader = self.loader
        event = loader.get_event()
        smap = self.smap
        mark = event.start_mark
        if positions is not None:
            positions.append((mark.line + 1) << 20 | (mark.column + 1))
        elif path is not None:
            smap.values[path] = (mark.line + 1) << 20 | (mark.column + 1)
        if isinstance(event, yaml.ScalarEvent):
            value = self.scalar(event)
        elif isinstance(event, yaml.SequenceStartEvent):
            value = []
            i = 0
            items = array("q") if path is not None else None
            while not loader.check_event(yaml.SequenceEndEvent):
                value.append(self.value(None if path is None else path + (i,), items))
                i += 1
            loader.get_event()
            if items is not None and path is not None:
                smap.items[path] = items
        elif isinstance(event, yaml.MappingStartEvent):
            value = {}
            first_seen: dict[Any, Location] = {}
            while not loader.check_event(yaml.MappingEndEvent):
                key_event = loader.peek_event()
                key_loc = _loc(self.file, key_event.start_mark)
                key = self.value(None)
                if key == "<<" and isinstance(key_event, yaml.ScalarEvent) and key_event.tag is None:
                    merged = self.value(None)
                    for m in merged if isinstance(merged, list) else [merged]:
                        if isinstance(m, dict):
                            for k, v in m.items():
                                value.setdefault(k, v)
                    continue
                try:
                    hash(key)
                except TypeError:
                    self.errors.append(PolicyError("load_syntax", "a mapping key must be a plain value", key_loc))
                    self.value(None)
                    continue
                if key in first_seen:
                    self.errors.append(PolicyError(
                        "load_duplicate_key", f"key `{key}` appears twice in this mapping", key_loc,
                        f"the first `{key}` is at line {first_seen[key].line}; keep one of them"))
                    self.value(None)
                    continue
                first_seen[key] = key_loc
                if path is not None:
                    smap.keys[path + (key,)] = key_loc
                value[key] = self.value(None if path is None else path + (key,))
            loader.get_event()
        elif isinstance(event, yaml.AliasEvent):
            if event.anchor not in self.anchors:
                self.errors.append(PolicyError("load_syntax", f"unknown alias `*{event.anchor}`",
                                               _loc(self.file, event.start_mark)))
                return None
            return self.anchors[event.anchor]
        else:  # pragma: no cover - the parser only yields the events above here
            raise yaml.YAMLError(f"unexpected {type(event).__name__}")
        anchor = getattr(event, "anchor", None)
        if anchor:
            self.anchors[anchor] = value
        return value

    def scalar(self, event: Any) -> Any:
        tag = event.tag
        if tag is None or tag == "!":
            tag = self.loader.resolve(yaml.ScalarNode, event.value, event.implicit)
        if tag == _STR:
            return event.value  # most scalars of a rule file are text: skip the generic constructor
        node = yaml.ScalarNode(tag, event.value, event.start_mark, event.end_mark, event.style)
        return self.loader.construct_object(node, deep=True)


_YAML_HELP = {
    "mapping values are not allowed here": "check the indentation of this line, or quote a value that contains `: `",
    "could not find expected ':'": "a key needs a colon after it; check the indentation of this line and the one above",
    "found character '\\t' that cannot start any token": "YAML does not allow tabs for indentation; use spaces",
    "expected <block end>, but found '<block sequence start>'":
        "this list item is indented differently from the ones before it",
    "expected <block end>, but found '<block mapping start>'": "this line is indented differently from its neighbours",
}


# libyaml parses large files about 10x faster; the pure-Python parser words syntax errors more
# helpfully, so it re-reads a file only when the fast one fails.
_FAST_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_text(path: str, text: str) -> tuple[LoadedFile | None, list[PolicyError]]:
    """Parse one file into documents (one per ``---`` section) and its source map."""
    if _FAST_LOADER is not yaml.SafeLoader:
        try:
            return _load_with(_FAST_LOADER, path, text)
        except yaml.YAMLError:
            pass
    try:
        return _load_with(yaml.SafeLoader, path, text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = (exc.problem or exc.context or "invalid YAML").strip()
        loc = _loc(path, mark) if mark else Location(path, 1, 1)
        return None, [PolicyError("load_syntax", f"not valid YAML: {problem}", loc, _YAML_HELP.get(problem))]
    except yaml.YAMLError as exc:  # reader errors (bad characters) carry no mark
        return None, [PolicyError("load_syntax", f"not valid YAML: {exc}", Location(path, 1, 1))]


def _load_with(loader_class: Any, path: str, text: str) -> tuple[LoadedFile, list[PolicyError]]:
    smap = SourceMap(path)
    errors: list[PolicyError] = []
    documents: list[Any] = []
    loader = loader_class(text)
    builder = _Builder(loader, smap, errors)
    try:
        loader.get_event()  # stream start
        index = 0
        while not loader.check_event(yaml.StreamEndEvent):
            loader.get_event()  # document start
            builder.anchors.clear()
            if loader.check_event(yaml.DocumentEndEvent):
                documents.append(None)
            else:
                documents.append(builder.value((index,)))
            loader.get_event()  # document end
            index += 1
    finally:
        loader.dispose()
    return LoadedFile(path, documents, smap), errors


def load_files(files: Mapping[str, str]) -> tuple[list[LoadedFile], list[PolicyError]]:
    loaded, errors = [], []
    for path in sorted(files):
        item, errs = load_text(path, files[path])
        errors.extend(errs)
        if item is not None:
            loaded.append(item)
    return loaded, errors
