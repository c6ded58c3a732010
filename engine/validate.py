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


def _where(path: tuple) -> str:
    names = [p for p in path if isinstance(p, str)]
    return f"`{names[-1]}`" if names else "this section"


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
            out.extend(_translate(err, prefix, smap))
    return out


def _translate(err: jsonschema.ValidationError, prefix: tuple, smap: SourceMap) -> Iterator[PolicyError]:
    path = prefix + tuple(err.absolute_path)
    kw = err.validator
    inst = err.instance
    if kw == "additionalProperties" and isinstance(inst, dict):
        allowed = set(err.schema.get("properties", {}))
        for key in inst:
            if key not in allowed:
                yield PolicyError("schema_unknown_field", f"unknown field `{key}` in {_where(path)}",
                                  smap.at(path + (key,), key=True),
                                  did_you_mean(key, allowed) or
                                  ("allowed here: " + ", ".join(f"`{k}`" for k in sorted(allowed)) if allowed else None))
        return
    if kw == "required":
        missing = [k for k in err.validator_value if isinstance(inst, dict) and k not in inst]
        for key in missing:
            yield PolicyError("schema_missing_field", f"missing field `{key}` in {_where(path)}",
                              smap.at(path), None)
        return
    if kw == "type":
        want = err.validator_value if isinstance(err.validator_value, list) else [err.validator_value]
        words = " or ".join(_TYPE_WORDS.get(w, w) for w in want)
        yield PolicyError("schema_invalid", f"{_where(path)} must be {words}, not {_kind(inst)}", smap.at(path))
        return
    if kw in ("enum", "const"):
        options = err.validator_value if kw == "enum" else [err.validator_value]
        yield PolicyError("schema_invalid",
                          f"{_where(path)} is `{inst}`, expected one of " + ", ".join(f"`{o}`" for o in options),
                          smap.at(path), did_you_mean(inst, [str(o) for o in options]))
        return
    if kw == "pattern":
        yield PolicyError("schema_invalid", f"{_where(path)} `{inst}` is not a valid name",
                          smap.at(path), "use lower-case letters, digits and `_`, starting with a letter"
                          if "a-z" in str(err.validator_value) else None)
        return
    if kw in ("minItems", "minLength", "minProperties"):
        yield PolicyError("schema_invalid", f"{_where(path)} must not be empty", smap.at(path))
        return
    if kw in ("oneOf", "anyOf"):
        yield PolicyError("schema_invalid", f"{_where(path)} has the wrong shape ({_kind(inst)})", smap.at(path))
        return
    yield PolicyError("schema_invalid", f"{_where(path)}: {err.message}", smap.at(path))
