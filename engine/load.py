"""Stage 1, load: YAML text to plain documents, keeping where every value came from.

``yaml.compose`` gives nodes with marks; we build the Python values ourselves so that each path
such as ``(3, "rules", 4, "deny_when")`` maps to the ``Location`` of its value (and of its key),
which is how schema and compile errors point at ``file:line:column``. Duplicate keys, which
PyYAML would silently accept, are reported.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import yaml

from .errors import Location, PolicyError

Path = tuple


@dataclass
class SourceMap:
    """Where each value (and each mapping key) of a file's documents was written."""

    file: str
    values: dict[Path, Location] = field(default_factory=dict)
    keys: dict[Path, Location] = field(default_factory=dict)

    def at(self, path: Path, *, key: bool = False) -> Location:
        """The closest known location for ``path`` (walking up to its parents)."""
        path = tuple(path)
        if key and path in self.keys:
            return self.keys[path]
        while path:
            if path in self.values:
                return self.values[path]
            path = path[:-1]
        return self.values.get((), Location(self.file, 1, 1))


@dataclass
class LoadedFile:
    path: str
    documents: list[Any]
    source: SourceMap


def _loc(file: str, mark) -> Location:
    return Location(file, mark.line + 1, mark.column + 1)


def _build(loader: yaml.SafeLoader, node: yaml.Node, path: Path, smap: SourceMap,
           errors: list[PolicyError]) -> Any:
    smap.values[path] = _loc(smap.file, node.start_mark)
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)
        out: dict = {}
        first_seen: dict = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            try:
                hash(key)
            except TypeError:
                errors.append(PolicyError("load_syntax", "a mapping key must be a plain value",
                                          _loc(smap.file, key_node.start_mark)))
                continue
            if key in first_seen:
                errors.append(PolicyError(
                    "load_duplicate_key", f"key `{key}` appears twice in this mapping",
                    _loc(smap.file, key_node.start_mark),
                    f"the first `{key}` is at line {first_seen[key].line}; keep one of them"))
                continue
            first_seen[key] = _loc(smap.file, key_node.start_mark)
            smap.keys[path + (key,)] = first_seen[key]
            out[key] = _build(loader, value_node, path + (key,), smap, errors)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_build(loader, item, path + (i,), smap, errors) for i, item in enumerate(node.value)]
    return loader.construct_object(node, deep=True)


_YAML_HELP = {
    "mapping values are not allowed here": "check the indentation of this line, or quote a value that contains `: `",
    "could not find expected ':'": "a key needs a colon after it; check the indentation of this line and the one above",
    "found character '\\t' that cannot start any token": "YAML does not allow tabs for indentation; use spaces",
    "expected <block end>, but found '<block sequence start>'": "this list item is indented differently from the ones before it",
    "expected <block end>, but found '<block mapping start>'": "this line is indented differently from its neighbours",
}


def load_text(path: str, text: str) -> tuple[LoadedFile | None, list[PolicyError]]:
    """Parse one file into documents (one per ``---`` section) and its source map."""
    smap = SourceMap(path)
    errors: list[PolicyError] = []
    documents: list[Any] = []
    loader = yaml.SafeLoader(text)
    try:
        index = 0
        while loader.check_node():
            node = loader.get_node()
            documents.append(_build(loader, node, (index,), smap, errors))
            index += 1
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = (exc.problem or exc.context or "invalid YAML").strip()
        loc = _loc(path, mark) if mark else Location(path, 1, 1)
        return None, [PolicyError("load_syntax", f"not valid YAML: {problem}", loc,
                                  _YAML_HELP.get(problem))]
    except yaml.YAMLError as exc:  # reader errors (bad characters) carry no mark
        return None, [PolicyError("load_syntax", f"not valid YAML: {exc}", Location(path, 1, 1))]
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
