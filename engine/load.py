"""Stage 1, load: YAML text to plain documents, keeping where every value came from.

``yaml.compose`` gives nodes with marks; we build the Python values ourselves so that each path
such as ``(3, "rules", 4, "deny_when")`` maps to the ``Location`` of its value (and of its key),
which is how schema and compile errors point at ``file:line:column``. Duplicate keys, which
PyYAML would silently accept, are reported.

A rule or test file may come from anyone who can publish, so loading it costs bounded time and
memory whatever it holds: the file size, the nesting depth, the number of values (counting what
aliases repeat) and the values aliases add are capped below (a "billion laughs" file of a few
hundred bytes is refused at the alias that crosses the cap, long before it is expanded), and
explicit tags other than the plain scalar ones are refused instead of being ignored.
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
_SCALAR = yaml.ScalarEvent
_UNSET: Any = object()
#: explicit tags a scalar may carry (``!!str 0123``); every other tag is refused
_SCALAR_TAGS = {_STR} | {f"tag:yaml.org,2002:{name}" for name in ("int", "float", "bool", "null")}

#: the largest rule or test file read, in bytes of UTF-8 (a 10,000-row table is about 1 MB)
MAX_FILE_BYTES = 8 * 1024 * 1024
#: mappings and lists nested deeper than this are refused (rule files need fewer than 20)
MAX_DEPTH = 64
#: values in one file, counting each value an alias repeats once per alias
MAX_VALUES = 1_000_000
#: values that aliases add to one file (each alias adds the size of the value it repeats)
MAX_ALIAS_VALUES = 100_000
#: the slower parser re-reads a broken file for a clearer message only when it is this small
_REPARSE_BYTES = 1024 * 1024


class _Refused(Exception):
    """A file over one of the limits: one error, and the file is not read any further."""

    def __init__(self, error: PolicyError) -> None:
        super().__init__(error.message)
        self.error = error


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
        self.anchors: dict[str, tuple[Any, int]] = {}  # anchor -> (value, values in it)
        self.file = smap.file
        self.values = 0        # values built so far, aliases counted at their full size
        self.alias_values = 0  # of which added by aliases
        self.depth = 0
        self.resolved: dict[tuple[str, Any], Any] = {}   # (text, implicit) -> value of an untagged scalar

    def _refuse(self, code: str, message: str, mark: Any, help: str) -> _Refused:
        return _Refused(PolicyError(code, message, _loc(self.file, mark), help))

    def value(self, path: Path | None, positions: array[int] | None = None) -> Any:
        """Build the next value and record where it starts: in ``positions`` (the packed array of
        the list it is an item of), else under ``path`` unless that is None (keys, skipped values)."""
        return self.build(self.loader.get_event(), path, positions)

    def build(self, event: Any, path: Path | None, positions: array[int] | None = None) -> Any:
        """Build the value that starts with ``event`` (see ``value``)."""
        smap = self.smap
        mark = event.start_mark
        self.values += 1
        if self.values > MAX_VALUES:
            raise self._refuse("load_too_large", f"the file has more than {MAX_VALUES:,} values", mark,
                               "split it into several files")
        first_value = self.values
        if positions is not None:
            positions.append((mark.line + 1) << 20 | (mark.column + 1))
        elif path is not None:
            smap.values[path] = (mark.line + 1) << 20 | (mark.column + 1)
        if type(event) is _SCALAR:
            value = self.scalar(event)
        elif isinstance(event, yaml.AliasEvent):
            return self.alias(event)
        else:
            value = self.collection(event, path)
        anchor = getattr(event, "anchor", None)
        if anchor:
            self.anchors[anchor] = (value, self.values - first_value + 1)
        return value

    def alias(self, event: Any) -> Any:
        if event.anchor not in self.anchors:
            self.errors.append(PolicyError("load_syntax", f"unknown alias `*{event.anchor}`",
                                           _loc(self.file, event.start_mark)))
            return None
        value, size = self.anchors[event.anchor]
        # the alias itself was counted as one value; the values it repeats are added here
        self.alias_values += size
        self.values += size - 1
        if self.alias_values > MAX_ALIAS_VALUES:
            raise self._refuse(
                "load_alias_limit", f"aliases repeat more than {MAX_ALIAS_VALUES:,} values in this file",
                event.start_mark, "write the repeated parts out, or repeat fewer of them (`*name` repeats the "
                "whole value anchored `&name`, with every alias inside it)")
        if self.values > MAX_VALUES:
            raise self._refuse("load_too_large", f"the file has more than {MAX_VALUES:,} values",
                               event.start_mark, "split it into several files")
        return value

    def collection(self, event: Any, path: Path | None) -> Any:
        if event.tag is not None:
            raise self._refuse("load_tag", f"the tag `{_short(event.tag)}` is not supported here", event.start_mark,
                               "remove the tag: rule files use plain mappings and lists")
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self._refuse("load_too_deep", f"mappings and lists are nested more than {MAX_DEPTH} deep here",
                               event.start_mark, "flatten the structure; rule files never need this depth")
        if isinstance(event, yaml.SequenceStartEvent):
            value: Any = self.sequence(path)
        elif isinstance(event, yaml.MappingStartEvent):
            value = self.mapping(path)
        else:  # pragma: no cover - the parser only yields the events above here
            raise yaml.YAMLError(f"unexpected {type(event).__name__}")
        self.depth -= 1
        return value

    def sequence(self, path: Path | None) -> list[Any]:
        get = self.loader.get_event
        value: list[Any] = []
        i = 0
        items = array("q") if path is not None else None
        resolved = self.resolved
        while True:
            event: Any = get()
            if type(event) is _SCALAR and event.tag is None and event.anchor is None:
                # the common item, a plain value already seen: what ``build`` does, inline
                known = resolved.get((event.value, event.implicit), _UNSET)
                if known is not _UNSET and self.values < MAX_VALUES:
                    self.values += 1
                    if items is not None:
                        mark: Any = event.start_mark
                        items.append((mark.line + 1) << 20 | (mark.column + 1))
                    value.append(known)
                    i += 1
                    continue
            if isinstance(event, yaml.SequenceEndEvent):
                break
            # an item's position goes to `items`; its path is needed only for what it contains
            value.append(self.build(event, None if path is None or type(event) is _SCALAR else path + (i,), items))
            i += 1
        if items is not None and path is not None:
            self.smap.items[path] = items
        return value

    def mapping(self, path: Path | None) -> dict[Any, Any]:
        loader = self.loader
        smap = self.smap
        value: dict[Any, Any] = {}
        first_seen: dict[Any, Location] = {}
        while True:
            key_event = loader.get_event()
            if isinstance(key_event, yaml.MappingEndEvent):
                break
            key_loc = _loc(self.file, key_event.start_mark)
            key = self.build(key_event, None)
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
        return value

    def scalar(self, event: Any) -> Any:
        tag = event.tag
        if tag is None or tag == "!":
            # an untagged scalar's value depends only on its text and how it was written: each is
            # resolved once per file (a large table repeats the same few texts many times)
            key = (event.value, event.implicit)
            known = self.resolved.get(key, _UNSET)
            if known is _UNSET:
                known = self.resolved[key] = self.construct(
                    self.loader.resolve(yaml.ScalarNode, event.value, event.implicit), event)
            return known
        if tag not in _SCALAR_TAGS:
            raise self._refuse("load_tag", f"the tag `{_short(tag)}` is not supported", event.start_mark,
                               "remove the tag; to keep a value as text, quote it")
        return self.construct(tag, event)

    def construct(self, tag: str, event: Any) -> Any:
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
    size = len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_FILE_BYTES:
        return None, [too_large(path, size)]
    if _FAST_LOADER is not yaml.SafeLoader:
        try:
            return _load_with(_FAST_LOADER, path, text)
        except _Refused as exc:
            return None, [exc.error]
        except yaml.YAMLError as exc:
            if "nesting depth" in str(getattr(exc, "problem", "")):  # libyaml's own cap, far above ours
                mark = exc.problem_mark  # type: ignore[attr-defined]
                return None, [PolicyError("load_too_deep", f"mappings and lists are nested more than {MAX_DEPTH} "
                                          "deep here", _loc(path, mark), "flatten the structure; rule files never "
                                          "need this depth")]
            if size > _REPARSE_BYTES:
                return None, [_syntax_error(path, text, exc)]
    try:
        return _load_with(yaml.SafeLoader, path, text)
    except _Refused as exc:
        return None, [exc.error]
    except yaml.YAMLError as exc:
        return None, [_syntax_error(path, text, exc)]


def too_large(path: str, size: int) -> PolicyError:
    return PolicyError("load_too_large", f"the file has {size:,} bytes; at most {MAX_FILE_BYTES:,} are read",
                       Location(path, 1, 1), "split it into several files")


def _short(text: str, limit: int = 40) -> str:
    """A tag or value short enough for a one-line message, without backticks."""
    text = text.replace("tag:yaml.org,2002:", "!!").replace("`", "'")
    text = "".join(c if c.isprintable() else "?" for c in text)
    return text if len(text) <= limit else text[:limit] + "..."


def _syntax_error(path: str, text: str, exc: yaml.YAMLError) -> PolicyError:
    """One ``load_syntax`` error at the mark (or byte position) PyYAML or libyaml gave."""
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        problem = (exc.problem or exc.context or "invalid YAML").strip()
        loc = _loc(path, mark) if mark else Location(path, 1, 1)
        return PolicyError("load_syntax", f"not valid YAML: {_short(problem, 200)}", loc, _YAML_HELP.get(problem))
    if isinstance(exc, yaml.reader.ReaderError):  # a character YAML does not allow (NUL, control characters)
        before = text[:exc.position]
        if exc.encoding != "unicode":  # libyaml counts bytes of UTF-8
            before = text.encode("utf-8", "surrogatepass")[:exc.position].decode("utf-8", "replace")
        loc = Location(path, before.count("\n") + 1, len(before) - before.rfind("\n"))
        character = exc.character if isinstance(exc.character, int) else ord(exc.character or "\0")
        return PolicyError("load_syntax", f"the character U+{character:04X} is not allowed in a YAML file", loc,
                           "rule files are text: remove the character (is this a binary file?)")
    return PolicyError("load_syntax", f"not valid YAML: {_short(str(exc).splitlines()[0] if str(exc) else '', 200)}",
                       Location(path, 1, 1))


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
