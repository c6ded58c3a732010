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
from dataclasses import dataclass
from typing import Any, NamedTuple

import yaml

from .errors import Location, PolicyError

Path = tuple[Any, ...]


class SourceMap:
    """Where each value (and each mapping key) of a file's documents was written.

    Positions are packed (``line << 20 | column``, a column past 1,048,575 kept at that; 0 when not
    written there) and kept in one array, ``flat``, a *block* per list and mapping of the documents
    (and one for the list of the documents, at ``root``): the container's own position, the number
    of its entries, then per list item its position and the offset of its block, per mapping entry
    (in the mapping's order) its key's and its value's positions and the offset of the value's
    block; -1 where the value is not a list or mapping (or is one that an alias repeats). A block
    follows the blocks of its values. ``at`` walks a path down the documents and their blocks and
    gives back the deepest position known as a ``Location``; a value an alias or a merge key
    (``<<``) repeats points at where it is repeated, not into the anchored value. One array, not an
    array per list and mapping keyed by its id: a 10,000-row table has 40,000 of them.
    """

    __slots__ = ("file", "documents", "flat", "root", "extents", "_parent", "_orders")

    def __init__(self, file: str, extents: bool = False) -> None:
        self.file = file
        self.documents: list[Any] = []
        self.flat: array[int] = array("q", [0, 0])      # no documents, until a loader gives its blocks
        self.root = 0
        #: with ``extents``: per list and mapping, (position, start, end) of itself, then of each item or
        #: value in order (character offsets in the file: where each value's written text begins and ends)
        self.extents: dict[int, array[int]] | None = {id(self.documents): array("q", [0, 0, 0])} if extents else None
        self._parent: tuple[Path | None, Any, int, int] = (None, None, 0, 0)
        self._orders: dict[int, dict[Any, int]] = {}    # a large mapping looked into: key -> its place

    def at(self, path: Path, *, key: bool = False) -> Location:
        """The closest known location for ``path`` (its deepest part that was written)."""
        path = tuple(path)
        found = self.packed(path, key=key)
        return Location(self.file, found >> 20, found & 0xFFFFF) if found else Location(self.file, 1, 1)

    def packed(self, path: Path, *, key: bool = False) -> int:
        """``at`` as a packed position, 0 when nothing of ``path`` is known."""
        last = len(path) - 1
        # read once: a compiled policy looks locations up when read, from any thread
        parent_path, parent_node, parent_block, parent_found = self._parent
        if last > 0 and path[:-1] == parent_path:
            # the parent of the last path asked (compile asks for every row of a table in turn)
            node, block, found = parent_node, parent_block, parent_found
            start = last
        else:
            node, block, found, start = self.documents, self.root, 0, 0
        for depth in range(start, last + 1):
            if depth == last:
                self._parent = (path[:-1], node, block, found)
            kpos, vpos, child, inner = self._entry(node, block, path[depth])
            if depth == last and key and kpos:
                return kpos
            if not vpos:
                break
            found = vpos
            if depth == last or inner < 0:
                break       # a scalar, or repeated by an alias or a merge: its parts were written elsewhere
            node, block = child, inner
        return found


    def written(self, container: list[Any] | dict[Any, Any]) -> list[Written]:
        """Where each item of a list (each value of a mapping, in its order) of these documents was
        written, and its text's extent; empty unless loaded with ``extents``. A value an alias repeats
        is where its anchor wrote it."""
        found = self.extents.get(id(container)) if self.extents is not None else None
        if found is None:
            return []
        return [Written(self.file, found[i] >> 20, found[i] & 0xFFFFF, found[i + 1], found[i + 2])
                for i in range(3, len(found), 3)]

    def written_at(self, path: Path) -> Written | None:
        """``written`` of the one value at ``path`` (None when there is none, or no extents)."""
        node: Any = self.documents
        here: Written | None = None
        for step in path:
            found = self.extents.get(id(node)) if self.extents is not None and isinstance(node, (list, dict)) else None
            i = None if found is None else self._slot(node, step)
            if found is None or i is None or 3 * i + 5 >= len(found):
                return None
            j = 3 * i + 3
            here, node = Written(self.file, found[j] >> 20, found[j] & 0xFFFFF, found[j + 1], found[j + 2]), node[step]
        return here

    def _slot(self, node: Any, step: Any) -> int | None:
        """The place of ``step`` among a list's items or a mapping's keys, or None (a large mapping's
        places are found once, so looking into it stays one step whatever its size)."""
        if isinstance(node, list):
            return step if type(step) is int and 0 <= step < len(node) else None
        try:
            if len(node) <= 8:
                return list(node).index(step) if step in node else None
            order = self._orders.get(id(node))
            if order is None:
                order = self._orders[id(node)] = {k: i for i, k in enumerate(node)}
            return order.get(step)
        except TypeError:
            return None

    def _entry(self, node: Any, block: int, step: Any) -> tuple[int, int, Any, int]:
        """(key position, value position, value, the value's block) of ``step`` in a list or mapping
        whose block is at ``block``; zeros and -1 when absent."""
        i = self._slot(node, step) if isinstance(node, (list, dict)) else None
        flat = self.flat
        if i is None or i >= flat[block + 1]:
            return 0, 0, None, -1
        if isinstance(node, list):
            j = block + 2 + 2 * i
            return 0, flat[j], node[i], flat[j + 1]
        j = block + 2 + 3 * i
        return flat[j], flat[j + 1], node[step], flat[j + 2]


class Written(NamedTuple):
    """Where a value was written: 1-based line and column, and the character offsets of its text."""

    file: str
    line: int
    column: int
    start: int
    end: int


@dataclass
class LoadedFile:
    path: str
    documents: list[Any]
    source: SourceMap
    #: the loader found the documents plain JSON (``engine.evaluate.canonical_json``'s ``plain``);
    #: False when it did not look (the Python path), which is never wrong
    plain: bool = False


def _loc(file: str, mark: Any) -> Location:
    return Location(file, mark.line + 1, mark.column + 1)


def _packed(mark: Any) -> int:
    """``line << 20 | column`` of a mark, both from 1; a column past the 20 bits is kept at their
    largest value (as engine/_fastload.c does), never carried into the line."""
    column: int = min(mark.column + 1, 0xFFFFF)
    return (int(mark.line) + 1) << 20 | column


def _unpack(file: str, packed: int) -> Location:
    return Location(file, packed >> 20, packed & 0xFFFFF)


_STR = "tag:yaml.org,2002:str"
_SCALAR = yaml.ScalarEvent
_ALIAS = yaml.AliasEvent
_SEQ_START = yaml.SequenceStartEvent
_SEQ_END = yaml.SequenceEndEvent
_MAP_START = yaml.MappingStartEvent
_MAP_END = yaml.MappingEndEvent
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
    in a fraction of the time and memory. The common event, a plain scalar whose text was
    already seen in this file, is handled inline by the loops of ``sequence`` and ``mapping``.
    """

    def __init__(self, loader: Any, smap: SourceMap, errors: list[PolicyError]):
        self.loader = loader
        self.get = loader.get_event
        self.flat = array("q")    # the source map's blocks, as they are made
        self.block = -1        # the offset of the block of the value built last (-1: none of its own)
        self.extents = smap.extents     # None unless asked for (``load_text(..., extents=True)``)
        self.last: tuple[int, int, int] = (0, 0, 0)   # the extent of the value built last, when kept
        self.errors = errors
        self.anchors: dict[str, tuple[Any, int, tuple[int, int, int]]] = {}  # anchor -> (value, values in it, extent)
        self.file = smap.file
        self.values = 0        # values built so far, aliases counted at their full size
        self.alias_values = 0  # of which added by aliases
        self.depth = 0
        self.resolved: dict[tuple[str, Any], Any] = {}   # (text, implicit) -> value of an untagged scalar

    def _refuse(self, code: str, message: str, mark: Any, help: str) -> _Refused:
        return _Refused(PolicyError(code, message, _loc(self.file, mark), help))

    def build(self, event: Any) -> Any:
        """Build the value that starts with ``event`` (its position is recorded by the caller)."""
        self.values += 1
        if self.values > MAX_VALUES:
            raise self._refuse("load_too_large", f"the file has more than {MAX_VALUES:,} values", event.start_mark,
                               "split it into several files")
        first_value = self.values
        cls = type(event)
        if cls is _SCALAR:
            value = self.scalar(event)
            self.block = -1
            if self.extents is not None:
                mark = event.start_mark
                self.last = (_packed(mark), mark.index, event.end_mark.index)
        elif cls is _ALIAS:
            self.block = -1     # what an alias repeats has its block where it was written
            return self.alias(event)
        else:
            value = self.collection(event)
        anchor = event.anchor
        if anchor:
            self.anchors[anchor] = (value, self.values - first_value + 1, self.last)
        return value

    def alias(self, event: Any) -> Any:
        if event.anchor not in self.anchors:
            self.errors.append(PolicyError("load_syntax", f"unknown alias `*{event.anchor}`",
                                           _loc(self.file, event.start_mark)))
            return None
        value, size, self.last = self.anchors[event.anchor]
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

    def collection(self, event: Any) -> Any:
        if event.tag is not None:
            raise self._refuse("load_tag", f"the tag `{_short(event.tag)}` is not supported here", event.start_mark,
                               "remove the tag: rule files use plain mappings and lists")
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self._refuse("load_too_deep", f"mappings and lists are nested more than {MAX_DEPTH} deep here",
                               event.start_mark, "flatten the structure; rule files never need this depth")
        mark = event.start_mark
        own = _packed(mark)
        written = None if self.extents is None else array("q", (own, mark.index, 0))
        if isinstance(event, _SEQ_START):
            value: Any = self.sequence(own, written)
        elif isinstance(event, _MAP_START):
            value = self.mapping(own, written)
        else:  # pragma: no cover - the parser only yields the events above here
            raise yaml.YAMLError(f"unexpected {type(event).__name__}")
        self.depth -= 1
        return value

    def sequence(self, own: int, written: array[int] | None) -> list[Any]:
        get = self.get
        resolved = self.resolved
        value: list[Any] = []
        span = array("q", (own,))       # its own position, then per item: position, block
        while True:
            event: Any = get()
            cls = type(event)
            mark: Any = event.start_mark
            pos = _packed(mark)
            if cls is _SCALAR and event.tag is None and event.anchor is None:
                # the common item, a plain value already seen: what ``build`` does, inline
                known = resolved.get((event.value, event.implicit), _UNSET)
                if known is not _UNSET and self.values < MAX_VALUES:
                    self.values += 1
                    span.extend((pos, -1))
                    value.append(known)
                    if written is not None:
                        written.extend((pos, mark.index, event.end_mark.index))
                    continue
            elif cls is _SEQ_END:
                break
            value.append(self.build(event))
            span.extend((pos, self.block))
            if written is not None:
                written.extend(self.last)
        self.emit(span, 2)
        self.ended(value, written, event)
        return value

    def emit(self, span: array[int], width: int) -> None:
        """A list's or mapping's block (``SourceMap``), after the blocks of its values; its offset
        becomes the block of the value built last."""
        flat = self.flat
        self.block = len(flat)
        flat.extend((span[0], (len(span) - 1) // width))
        flat.extend(span[1:])

    def ended(self, value: Any, written: array[int] | None, event: Any) -> None:
        """Keep the extents of a list or mapping that ``event`` ends, when they are asked for."""
        if written is not None and self.extents is not None:
            written[2] = event.end_mark.index
            self.extents[id(value)] = written
            self.last = (written[0], written[1], written[2])

    def plain(self, event: Any) -> Any:
        """The value of ``event`` when it is a plain scalar whose text was already seen (counted), else _UNSET."""
        if type(event) is _SCALAR and event.tag is None and event.anchor is None and self.values < MAX_VALUES:
            known = self.resolved.get((event.value, event.implicit), _UNSET)
            if known is not _UNSET:
                self.values += 1
            return known
        return _UNSET

    def mapping(self, own: int, written: array[int] | None) -> dict[Any, Any]:
        get = self.get
        value: dict[Any, Any] = {}
        span = array("q", (own,))       # its own position, then per entry: key's and value's positions, block
        first_seen: dict[Any, int] = {}
        while True:
            event: Any = get()
            if type(event) is _MAP_END:
                break
            mark: Any = event.start_mark
            kpos = _packed(mark)
            key = self.plain(event)
            if key is _UNSET:
                key = self.build(event)
            if key == "<<" and type(event) is _SCALAR and event.tag is None:
                self.merge(value, span, written, self.build(get()))
                continue
            if self.refused_key(key, kpos, first_seen):
                self.build(get())
                continue
            first_seen[key] = kpos
            event = get()
            mark = event.start_mark
            vpos = _packed(mark)
            item = self.plain(event)
            block = -1
            if item is not _UNSET and written is not None:
                self.last = (vpos, mark.index, event.end_mark.index)
            elif item is _UNSET:
                item = self.build(event)
                block = self.block
            if key in value:       # merged in before: this key overrides it where the merge put it
                i = list(value).index(key)
                span[3 * i + 1:3 * i + 4] = array("q", (kpos, vpos, block))
                if written is not None:
                    written[3 * i + 3:3 * i + 6] = array("q", self.last)
            else:
                span.extend((kpos, vpos, block))
                if written is not None:
                    written.extend(self.last)
            value[key] = item
        self.emit(span, 3)
        self.ended(value, written, event)
        return value

    def refused_key(self, key: Any, kpos: int, first_seen: dict[Any, int]) -> bool:
        """Report a key that cannot be used (not a plain value, or written twice); True when reported."""
        try:
            seen = first_seen.get(key)
        except TypeError:
            self.errors.append(PolicyError("load_syntax", "a mapping key must be a plain value",
                                           _unpack(self.file, kpos)))
            return True
        if seen is not None:
            self.errors.append(PolicyError(
                "load_duplicate_key", f"key `{key}` appears twice in this mapping", _unpack(self.file, kpos),
                f"the first `{key}` is at line {seen >> 20}; keep one of them"))
            return True
        return False

    @staticmethod
    def merge(value: dict[Any, Any], span: array[int], written: array[int] | None, merged: Any) -> None:
        """``<<: *name`` (or a list of them): the keys not written in the mapping, where it is merged."""
        for m in merged if isinstance(merged, list) else [merged]:
            if isinstance(m, dict):
                for k, v in m.items():
                    if k not in value:
                        value[k] = v
                        span.extend((0, 0, -1))
                        if written is not None:
                            written.extend((0, 0, 0))

    def scalar(self, event: Any) -> Any:
        tag = event.tag
        if tag is None or tag == "!":
            # an untagged scalar's value depends only on its text and how it was written: each is
            # resolved once per file (a large table repeats the same few texts many times)
            key = (event.value, event.implicit)
            known = self.resolved.get(key, _UNSET)
            if known is _UNSET:
                known = self.resolved[key] = _construct(
                    self.loader, self.loader.resolve(yaml.ScalarNode, event.value, event.implicit), event.value, event)
            return known
        if tag not in _SCALAR_TAGS:
            raise self._refuse("load_tag", f"the tag `{_short(tag)}` is not supported", event.start_mark,
                               "remove the tag; to keep a value as text, quote it")
        return _construct(self.loader, tag, event.value, event)


def _construct(loader: Any, tag: str, text: str, event: Any = None) -> Any:
    """The value of a scalar written ``text`` with ``tag`` (``event`` gives the marks of an error)."""
    if tag == _STR:
        return text  # most scalars of a rule file are text: skip the generic constructor
    node = yaml.ScalarNode(tag, text, event and event.start_mark, event and event.end_mark, event and event.style)
    return loader.construct_object(node, deep=True)


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
# faster still: the common file's documents and positions built in C (engine/_fastload.c, built with
# the package where a C compiler and libyaml's headers are found; without it the loaders above serve).
# It drives libyaml as PyYAML's CSafeLoader does, so it serves only where that is the reference.
try:
    from . import _fastload
except ImportError:  # pragma: no cover - depends on how the package was built
    _fastload = None  # type: ignore[assignment]
if _FAST_LOADER is yaml.SafeLoader:  # pragma: no cover - PyYAML built without libyaml
    _fastload = None  # type: ignore[assignment]
#: the interface of engine/_fastload.c this module calls; an extension built from another version of
#: it (an install not rebuilt since) is not used, and the Python path serves
_FASTLOAD_INTERFACE = 3
if getattr(_fastload, "INTERFACE", None) != _FASTLOAD_INTERFACE:  # pragma: no cover - a stale build
    _fastload = None  # type: ignore[assignment]


def load_text(path: str, text: str, *, extents: bool = False,
              share: bool = False) -> tuple[LoadedFile | None, list[PolicyError]]:
    """Parse one file into documents (one per ``---`` section) and its source map; with ``extents``
    the source map also says where each value's written text begins and ends (``SourceMap.written``).
    ``share`` (for a caller that only reads the documents, such as the compiler): a small list or
    mapping may be one object wherever it is written alike, as if by an alias (the native path does
    so: the cells a large table repeats are then one object each, not thousands)."""
    size = len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_FILE_BYTES:
        return None, [too_large(path, size)]
    if _fastload is not None:
        native = _load_native(path, text, extents, share)
        if native is not None:
            return native, []
    if _FAST_LOADER is not yaml.SafeLoader:
        try:
            return _load_with(_FAST_LOADER, path, text, extents)
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
        return _load_with(yaml.SafeLoader, path, text, extents)
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


def _load_native(path: str, text: str, extents: bool, share: bool = False) -> LoadedFile | None:
    """The file loaded by engine/_fastload.c, or None when it needs the Python path (``_Builder``):
    anything but plain mappings, lists and untagged scalars, or any error or limit, which the Python
    path then reports. Both give the same documents and source map; the native one builds them
    without a Python object per parser event (tests/test_engine_load_native.py holds them equal);
    it also says whether the documents are plain JSON (``LoadedFile.plain``)."""
    smap = SourceMap(path, extents)
    loader = _FAST_LOADER("")  # the resolver and constructor of the scalars

    def resolve(value: str, implicit: tuple[bool, bool]) -> Any:
        return _construct(loader, loader.resolve(yaml.ScalarNode, value, implicit), value)

    try:
        assert _fastload is not None
        done = _fastload.load(text, smap.documents, smap.extents, resolve, _resolved_firsts(loader), MAX_VALUES,
                              MAX_DEPTH, share)
    finally:
        loader.dispose()
    if done is None:
        return None
    smap.flat, smap.root, plain = done
    return LoadedFile(path, smap.documents, smap, plain)


def _resolved_firsts(loader: Any) -> str | None:
    """The first characters of a plain scalar that the loader's implicit resolvers look at (the value
    of any other untagged scalar is its text), or None when they may look at any scalar."""
    table = loader.yaml_implicit_resolvers
    if None in table or loader.yaml_path_resolvers:
        return None
    return "".join(first for first in table if first)


def _load_with(loader_class: Any, path: str, text: str, extents: bool) -> tuple[LoadedFile, list[PolicyError]]:
    smap = SourceMap(path, extents)
    errors: list[PolicyError] = []
    documents = smap.documents
    positions = array("q", [0])     # the documents' block: its own position, then each document's and block
    loader = loader_class(text)
    builder = _Builder(loader, smap, errors)
    try:
        loader.get_event()  # stream start
        while not loader.check_event(yaml.StreamEndEvent):
            loader.get_event()  # document start
            builder.anchors.clear()
            if loader.check_event(yaml.DocumentEndEvent):
                documents.append(None)
                positions.extend((0, -1))
                builder.last = (0, 0, 0)
            else:
                event = loader.get_event()
                documents.append(builder.build(event))
                positions.extend(((event.start_mark.line + 1) << 20 | (event.start_mark.column + 1), builder.block))
            if smap.extents is not None:
                smap.extents[id(documents)].extend(builder.last)
            loader.get_event()  # document end
    finally:
        loader.dispose()
    builder.emit(positions, 2)
    smap.flat, smap.root = builder.flat, builder.block
    return LoadedFile(path, documents, smap), errors


def load_files(files: Mapping[str, str], *, share: bool = False) -> tuple[list[LoadedFile], list[PolicyError]]:
    loaded, errors = [], []
    for path in sorted(files):
        item, errs = load_text(path, files[path], share=share)
        errors.extend(errs)
        if item is not None:
            loaded.append(item)
    return loaded, errors
