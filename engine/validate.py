"""Stage 2a, validate the shape: JSON Schema errors turned into positioned, plain-words errors.

The schemas in ``engine/schemas/`` are the reference of the file format. jsonschema reports the
path of each problem; the source map turns that path into ``file:line:column``. Unknown keys are
reported one by one at the key, with a did-you-mean among the keys allowed there.
"""
from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from functools import cache
from importlib import resources
from typing import Any, NamedTuple

import jsonschema

from .errors import PolicyError, did_you_mean
from .load import SourceMap


@cache
def schema(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(resources.files("engine.schemas").joinpath(f"{name}.schema.json").read_text())
    return loaded


@cache
def _validator(name: str) -> jsonschema.protocols.Validator:
    s = schema(name)
    cls = jsonschema.validators.validator_for(s)
    cls.check_schema(s)
    return cls(s)


#: a table's rows: the schema requires each to be a list, and jsonschema's descent into each of
#: them costs more than the rest of the document when a table has thousands of rows, so
#: ``schema_problems`` checks them in one pass and leaves jsonschema the rest (the same errors)
_ROWS = "body"


def _without_row_checks(node: Any) -> Any:
    """The schema without the item checks of every ``body`` property."""
    if isinstance(node, dict):
        out = {k: _without_row_checks(v) for k, v in node.items()}
        body = out.get("properties", {}).get(_ROWS) if isinstance(out.get("properties"), dict) else None
        if isinstance(body, dict) and body.get("items") == {"type": "array"}:
            out["properties"] = {**out["properties"], _ROWS: {k: v for k, v in body.items() if k != "items"}}
        return out
    if isinstance(node, list):
        return [_without_row_checks(v) for v in node]
    return node


@cache
def _row_validator(name: str) -> jsonschema.protocols.Validator | None:
    """``_validator`` without the item checks of tables' rows, or None when the schema has none."""
    s = schema(name)
    lighter = _without_row_checks(s)
    if lighter == s:
        return None
    cls = jsonschema.validators.validator_for(lighter)
    return cls(lighter)


def _rows_are_lists(document: Any) -> bool:
    """Every row of every rule's ``body`` is a list (what the dropped item checks require)."""
    rules = document.get("rules") if isinstance(document, dict) else None
    for rule in rules if isinstance(rules, list) else ():
        body = rule.get(_ROWS) if isinstance(rule, dict) else None
        if isinstance(body, list) and not all(isinstance(row, list) for row in body):
            return False
    return True


_TYPE_WORDS = {"object": "a mapping", "array": "a list", "string": "text", "integer": "a whole number",
               "boolean": "`true` or `false`", "null": "empty", "number": "a number"}


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "`true`/`false`"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "text"
    if isinstance(value, int):
        return "a number"
    if value is None:
        return "empty"
    return type(value).__name__


_KINDS = {"facts": "fact", "obligations": "obligation", "scales": "scale", "sources": "source"}


def _of(inner: tuple[Any, ...], base: str) -> str:
    """``base``, or its innermost named field: "`when` of rule `G-1`"."""
    names = [p for p in inner if isinstance(p, str)]
    return f"`{names[-1]}` of {base}" if names else base


def _item(doc: Any, section: str, index: int) -> str:
    item = None
    with contextlib.suppress(KeyError, IndexError, TypeError):
        item = doc[section][index]
    label = item.get("id") or item.get("name") if isinstance(item, dict) else None
    word = "rule" if section == "rules" else "test"
    return f"{word} `{label}`" if label else f"{word} {index + 1}"


def _where(path: tuple[Any, ...], doc: Any) -> str:
    """Name the part of the file a path points into, in the words of the format."""
    rel = path[1:] if path and isinstance(path[0], int) else path  # drop the document index
    names = [p for p in rel if isinstance(p, str)]
    if len(rel) < 2:
        return f"`{names[-1]}`" if names else "the section"
    section, key, inner = rel[0], rel[1], rel[2:]
    if section in ("rules", "tests") and isinstance(key, int):
        return _of(inner, _item(doc, section, key))
    if section in _KINDS:
        return _of(inner, f"{_KINDS[section]} `{key}`")
    if section == "actions" and isinstance(key, int):
        return _of(inner, f"actions entry {key + 1}")
    return f"`{names[-1]}`" if names else "the section"


def _leaves(error: jsonschema.ValidationError) -> Iterator[jsonschema.ValidationError]:
    """For oneOf/anyOf keep the deepest sub-errors; they say most about the typo."""
    if error.validator in ("oneOf", "anyOf") and error.context:
        deepest = max(len(e.absolute_path) for e in error.context)
        if deepest > 0:
            for sub in error.context:
                if len(sub.absolute_path) == deepest:
                    yield from _leaves(sub)
            return
    yield error


class SchemaProblem(NamedTuple):
    """One schema error and the document path it is about (``field``: the missing or unknown key)."""

    path: tuple[Any, ...]
    error: PolicyError
    field: str | None = None


def schema_problems(name: str, document: Any, prefix: tuple[Any, ...], smap: SourceMap) -> list[SchemaProblem]:
    """Every schema problem of one document, root causes only: a required field reported missing
    where an unknown field is a misspelling of it gives only the unknown field, with the suggestion."""
    out: list[SchemaProblem] = []
    lighter = _row_validator(name)
    validator = lighter if lighter is not None and _rows_are_lists(document) else _validator(name)
    for top in validator.iter_errors(document):
        for err in _leaves(top):
            out.extend(_translate(err, prefix, smap, document))
    unknown = [(p.path, p.field) for p in out if p.error.code == "schema_unknown_field"]
    return [p for p in out if not (p.error.code == "schema_missing_field" and any(
        where == p.path and did_you_mean(field, [p.field or ""]) for where, field in unknown))]


def check_document(name: str, document: Any, prefix: tuple[Any, ...], smap: SourceMap) -> list[PolicyError]:
    """Every schema problem of one document, in plain words, at its position."""
    return [p.error for p in schema_problems(name, document, prefix, smap)]


def _translate(err: jsonschema.ValidationError, prefix: tuple[Any, ...], smap: SourceMap,
               document: Any) -> Iterator[SchemaProblem]:
    path = prefix + tuple(err.absolute_path)
    for error, field in _errors(err, path, smap, document):
        yield SchemaProblem(path, error, field)


def _errors(err: jsonschema.ValidationError, path: tuple[Any, ...], smap: SourceMap,
            document: Any) -> Iterator[tuple[PolicyError, str | None]]:
    inst = err.instance
    if err.validator == "additionalProperties" and isinstance(inst, dict):
        schema_here: Any = err.schema
        allowed = set(schema_here.get("properties", {}))
        listed = "allowed here: " + ", ".join(f"`{k}`" for k in sorted(allowed)) if allowed else None
        for key in inst:
            if key not in allowed:
                yield PolicyError("schema_unknown_field", f"unknown field `{key}` in {_where(path, document)}",
                                  smap.at(path + (key,), key=True), did_you_mean(key, allowed) or listed), key
        return
    if err.validator == "required":
        required: Any = err.validator_value
        for key in required:
            if isinstance(inst, dict) and key not in inst:
                yield PolicyError("schema_missing_field", f"missing field `{key}` in {_where(path, document)}",
                                  smap.at(path), None), key
        return
    message, help = _invalid(err, path, document)
    yield PolicyError("schema_invalid", message, smap.at(path), help), None


def _invalid(err: jsonschema.ValidationError, path: tuple[Any, ...], document: Any) -> tuple[str, str | None]:
    """The message and help of a value of the wrong type, shape or form."""
    kw, inst = err.validator, err.instance
    value: Any = err.validator_value
    where = _where(path, document)
    if kw == "type":
        want = value if isinstance(value, list) else [value]
        return f"{where} must be {' or '.join(str(_TYPE_WORDS.get(w, w)) for w in want)}, not {_kind(inst)}", None
    if kw in ("enum", "const"):
        options = value if kw == "enum" else [value]
        return (f"{where} is `{inst}`, expected one of " + ", ".join(f"`{o}`" for o in options),
                did_you_mean(inst, [str(o) for o in options]))
    if kw == "pattern" and path and path[-1] == "path":
        return f"`{inst}` is not a fact path", "write names separated by single dots, e.g. `resource.order.status`"
    if kw == "pattern":
        names = "use lower-case letters, digits and `_`, starting with a letter"
        return f"{where} `{inst}` is not a valid name", names if str(value).startswith("^[a-z]") else None
    if kw in ("minItems", "minLength", "minProperties"):
        return f"{where} must not be empty", None
    if kw in ("oneOf", "anyOf"):
        return f"{where} has the wrong shape ({_kind(inst)})", None
    return f"{where}: {err.message}", None
