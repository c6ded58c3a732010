"""Stage 2a, validate the shape: JSON Schema errors turned into positioned, plain-words errors.

The schemas in ``engine/schemas/`` are the reference of the file format. jsonschema reports the
path of each problem; the source map turns that path into ``file:line:column``. Unknown keys are
reported one by one at the key, with a did-you-mean among the keys allowed there.
"""
from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from typing import Any, Iterator

import jsonschema

from .errors import PolicyError, did_you_mean
from .load import SourceMap


@lru_cache(maxsize=None)
def schema(name: str) -> dict:
    return json.loads(resources.files("engine.schemas").joinpath(f"{name}.schema.json").read_text())


@lru_cache(maxsize=None)
def _validator(name: str) -> jsonschema.protocols.Validator:
    s = schema(name)
    cls = jsonschema.validators.validator_for(s)
    cls.check_schema(s)
    return cls(s)


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


def _where(path: tuple, doc: Any) -> str:
    """Name the part of the file a path points into, in the words of the format."""
    rel = path[1:] if path and isinstance(path[0], int) else path  # drop the document index
    if len(rel) >= 2 and rel[0] in ("rules", "tests") and isinstance(rel[1], int):
        item = None
        try:
            item = doc[rel[0]][rel[1]]
        except (KeyError, IndexError, TypeError):
            pass
        label = item.get("id") or item.get("name") if isinstance(item, dict) else None
        word = "rule" if rel[0] == "rules" else "test"
        base = f"{word} `{label}`" if label else f"{word} {rel[1] + 1}"
        inner = [p for p in rel[2:] if isinstance(p, str)]
        return f"`{inner[-1]}` of {base}" if inner else base
    if len(rel) >= 2 and rel[0] in ("facts", "obligations", "scales", "sources"):
        kind = {"facts": "fact", "obligations": "obligation", "scales": "scale", "sources": "source"}[rel[0]]
        inner = [p for p in rel[2:] if isinstance(p, str)]
        return f"`{inner[-1]}` of {kind} `{rel[1]}`" if inner else f"{kind} `{rel[1]}`"
    if len(rel) >= 2 and rel[0] == "actions" and isinstance(rel[1], int):
        inner = [p for p in rel[2:] if isinstance(p, str)]
        base = f"actions entry {rel[1] + 1}"
        return f"`{inner[-1]}` of {base}" if inner else base
    names = [p for p in rel if isinstance(p, str)]
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


def check_document(name: str, document: Any, prefix: tuple, smap: SourceMap) -> list[PolicyError]:
    """Every schema problem of one document, in plain words, at its position."""
    out: list[PolicyError] = []
    for top in _validator(name).iter_errors(document):
        for err in _leaves(top):
            out.extend(_translate(err, prefix, smap, document))
    return out


def _translate(err: jsonschema.ValidationError, prefix: tuple, smap: SourceMap,
               document: Any) -> Iterator[PolicyError]:
    path = prefix + tuple(err.absolute_path)
    kw = err.validator
    inst = err.instance
    if kw == "additionalProperties" and isinstance(inst, dict):
        allowed = set(err.schema.get("properties", {}))
        for key in inst:
            if key not in allowed:
                yield PolicyError("schema_unknown_field", f"unknown field `{key}` in {_where(path, document)}",
                                  smap.at(path + (key,), key=True),
                                  did_you_mean(key, allowed) or
                                  ("allowed here: " + ", ".join(f"`{k}`" for k in sorted(allowed)) if allowed else None))
        return
    if kw == "required":
        missing = [k for k in err.validator_value if isinstance(inst, dict) and k not in inst]
        for key in missing:
            yield PolicyError("schema_missing_field", f"missing field `{key}` in {_where(path, document)}",
                              smap.at(path), None)
        return
    if kw == "type":
        want = err.validator_value if isinstance(err.validator_value, list) else [err.validator_value]
        words = " or ".join(_TYPE_WORDS.get(w, w) for w in want)
        yield PolicyError("schema_invalid", f"{_where(path, document)} must be {words}, not {_kind(inst)}", smap.at(path))
        return
    if kw in ("enum", "const"):
        options = err.validator_value if kw == "enum" else [err.validator_value]
        yield PolicyError("schema_invalid",
                          f"{_where(path, document)} is `{inst}`, expected one of " + ", ".join(f"`{o}`" for o in options),
                          smap.at(path), did_you_mean(inst, [str(o) for o in options]))
        return
    if kw == "pattern" and path and path[-1] == "path":
        yield PolicyError("schema_invalid", f"`{inst}` is not a fact path", smap.at(path),
                          "write names separated by single dots, e.g. `resource.order.status`")
        return
    if kw == "pattern":
        yield PolicyError("schema_invalid", f"{_where(path, document)} `{inst}` is not a valid name",
                          smap.at(path), "use lower-case letters, digits and `_`, starting with a letter"
                          if str(err.validator_value).startswith("^[a-z]") else None)
        return
    if kw in ("minItems", "minLength", "minProperties"):
        yield PolicyError("schema_invalid", f"{_where(path, document)} must not be empty", smap.at(path))
        return
    if kw in ("oneOf", "anyOf"):
        yield PolicyError("schema_invalid", f"{_where(path, document)} has the wrong shape ({_kind(inst)})", smap.at(path))
        return
    yield PolicyError("schema_invalid", f"{_where(path, document)}: {err.message}", smap.at(path))
