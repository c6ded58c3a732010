"""The semantic difference between two policy versions: what changes in behaviour, rule by rule
and cell by cell, and which requests it changes.

Each version is brought to a normal form that drops what cannot change a decision: the order of
rules, of table rows (except under hit policy ``first``), of mapping keys, of the values of an
``in`` list, of obligations and actions; how the rules are split over files; YAML formatting and
comments. Two versions with equal normal forms are the same policy. The wording (``says``,
sources, titles) is compared separately: it explains decisions but never changes one.

Where every fact an action reads has a finite domain (:mod:`engine.domains`), the two versions
are also compared request by request over every combination of values: that is the list of
requests a change affects.
"""
from __future__ import annotations

from collections.abc import Iterator, Mapping
from itertools import product
from typing import Any

from . import compare
from .compiler.context import expand
from .domains import FactDomain, actions, fact_domains, with_value
from .load import load_files

Key = tuple[str, str, str]          # (system, section, name)
Json = dict[str, Any]

#: keys that word a rule or declaration; they explain a decision and never change one
WORDING = ("says", "source", "sources", "title")
#: condition and test keys whose list order carries no meaning
UNORDERED = ("in", "not_in")
#: at most this many combinations are decided per action in an exhaustive comparison
MAX_COMBINATIONS = 20_000


def _sorted(values: list[Any]) -> list[Any]:
    return sorted(values, key=repr)


def _norm(value: Any, key: str | None = None) -> Any:
    if isinstance(value, dict):
        return {k: _norm(v, k) for k, v in value.items()}
    if isinstance(value, list):
        items = [_norm(v) for v in value]
        return _sorted(items) if key in UNORDERED else items
    return value


def _split(entry: Json) -> tuple[Json, Json]:
    behaviour = {k: _norm(v, k) for k, v in entry.items() if k not in WORDING}
    wording = {k: v for k, v in entry.items() if k in WORDING}
    return behaviour, wording


def _actions(patterns: Any) -> list[str]:
    patterns = [patterns] if isinstance(patterns, str) else list(patterns or ())
    return sorted({a for p in patterns for a in expand(str(p))})


def _obligations(items: Any) -> list[Any]:
    return _sorted([_norm(i) for i in items or ()])


def _rule_entries(system: str, rule: Json) -> Iterator[tuple[Key, Any, Json]]:
    kind = rule.get("kind")
    if kind != "table":
        behaviour, wording = _split({k: v for k, v in rule.items() if k != "id"})
        behaviour["actions"] = _actions(rule.get("actions"))
        if "obligations" in rule:
            behaviour["obligations"] = _obligations(rule["obligations"])
        yield (system, "rules", str(rule.get("id"))), behaviour, wording
        return
    table_id = str(rule.get("id"))
    header = list(rule.get("header") or ())
    settings = {k: v for k, v in rule.items() if k not in ("id", "body", "rules", "header")}
    behaviour, wording = _split(settings)
    behaviour["columns"] = sorted(map(str, header[1:]))
    if "actions" in rule:
        behaviour["actions"] = _actions(rule["actions"])
    behaviour["outcomes"] = {name: _obligations(items) for name, items in (rule.get("outcomes") or {}).items()}
    yield (system, "tables", table_id), behaviour, wording
    ordered = rule.get("hit") == "first"
    metas = rule.get("rules") or {}
    for position, row in enumerate(rule.get("body") or ()):
        if not isinstance(row, list) or not row:
            continue
        rid = str(row[0])
        cells = {str(col): _norm(cell) for col, cell in zip(header[1:], row[1:], strict=False)}
        entry: dict[str, Any] = {"table": table_id, "cells": cells}
        if ordered:
            entry["position"] = position
        yield (system, "rules", rid), entry, dict(metas.get(rid) or {})


def _declarations(system: str, doc: Json) -> Iterator[tuple[Key, Any, Json]]:
    for name, spec in (doc.get("facts") or {}).items():
        behaviour, wording = _split(spec if isinstance(spec, dict) else {})
        yield (system, "facts", str(name)), behaviour, wording
    for name, steps in (doc.get("scales") or {}).items():
        yield (system, "scales", str(name)), [_sorted(s) if isinstance(s, list) else [s] for s in steps or ()], {}
    for name, decl in (doc.get("obligations") or {}).items():
        behaviour, wording = _split(decl or {})
        if "overrides" in behaviour:
            behaviour["overrides"] = _sorted(behaviour["overrides"])
        yield (system, "obligations", str(name)), behaviour, wording
    for group in doc.get("actions") or ():
        reads = group.get("reads") or {}
        modes = _norm(reads) if isinstance(reads, dict) else {str(f): None for f in reads}
        for action in _actions(group.get("names")):
            yield (system, "actions", action), modes, {}
    yield (system, "system", "title"), None, {"title": doc.get("title"), "sources": doc.get("sources")}


def normal_form(files: Mapping[str, str]) -> tuple[dict[Key, Any], dict[Key, Json]]:
    """``(behaviour, wording)``: each keyed by ``(system, section, name)``; sections are
    ``facts``, ``scales``, ``obligations``, ``actions``, ``rules`` (a table row is a rule),
    ``tables`` (a table's own settings) and ``system``."""
    from . import is_test_file

    loaded, _errors = load_files({p: t for p, t in files.items() if not is_test_file(p)})
    behaviour: dict[Key, Any] = {}
    wording: dict[Key, Json] = {}
    for f in loaded:
        for doc in f.documents:
            if not isinstance(doc, dict):
                continue
            system = str(doc.get("system"))
            entries = list(_declarations(system, doc))
            for rule in doc.get("rules") or ():
                if isinstance(rule, dict):
                    entries.extend(_rule_entries(system, rule))
            for key, b, w in entries:
                behaviour[key] = b
                if w:
                    wording[key] = w
    return behaviour, wording


def leaf_changes(before: Any, after: Any, path: str = "") -> list[dict[str, Any]]:
    """Leaf-level differences as ``[{"path", "from", "to"}]`` (``None`` = absent)."""
    if isinstance(before, dict) and isinstance(after, dict):
        out: list[dict[str, Any]] = []
        for key in sorted(set(before) | set(after), key=str):
            sub = f"{path}.{key}" if path else str(key)
            out.extend(leaf_changes(before.get(key), after.get(key), sub) if key in before and key in after
                       else [{"path": sub, "from": before.get(key), "to": after.get(key)}])
        return out
    if isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
        pairs = enumerate(zip(before, after, strict=True))
        return [c for i, (b, a) in pairs for c in leaf_changes(b, a, f"{path}[{i}]")]
    return [] if before == after else [{"path": path or "$", "from": before, "to": after}]


def _merged_domains(a: tuple[FactDomain, ...], b: tuple[FactDomain, ...]) -> tuple[list[FactDomain], bool]:
    """The facts either version reads, each with the values of both; finite when all are."""
    by_path: dict[str, FactDomain] = {}
    values: dict[str, list[Any]] = {}
    finite = True
    for d in a + b:
        by_path.setdefault(d.dotted, d)
        seen = values.setdefault(d.dotted, [])
        seen.extend(v for v in d.values if not any(type(v) is type(s) and v == s for s in seen))
        finite = finite and d.finite
    return [by_path[p] for p in by_path], finite and all(values.values())


def combinations(a_ps: Any, b_ps: Any, system: str, action: str) -> tuple[int, Iterator[Json]] | None:
    """Every combination of the declared values of the facts either version reads for
    ``action``, as request inputs; ``None`` when a domain is not finite or too large."""
    a_domains = fact_domains(a_ps, system, action) or ()
    b_domains = fact_domains(b_ps, system, action) or ()
    domains, finite = _merged_domains(a_domains, b_domains)
    if not finite:
        return None
    by_path: dict[str, list[Any]] = {}
    for d in a_domains + b_domains:
        seen = by_path.setdefault(d.dotted, [])
        seen.extend(v for v in d.values if not any(type(v) is type(s) and v == s for s in seen))
    count = 1
    for d in domains:
        count *= len(by_path[d.dotted])
    if count > MAX_COMBINATIONS:
        return None

    def generate() -> Iterator[Json]:
        for values in product(*(by_path[d.dotted] for d in domains)):
            data: Json = {"context": {"system": system}}
            for d, v in zip(domains, values, strict=True):
                data = with_value(data, d.path, v)
            yield data
    return count, generate()


def compare_requests(a_ps: Any, b_ps: Any, *, examples: int = 3) -> dict[str, Any]:
    """Decide every combination of declared fact values with both versions, action by action."""
    compared, skipped = [], []
    keys = sorted(set(actions(a_ps)) | set(actions(b_ps)))
    for system, action in keys:
        made = combinations(a_ps, b_ps, system, action)
        if made is None:
            skipped.append({"system": system, "action": action})
            continue
        count, inputs = made
        kinds: dict[str, int] = {}
        rules: dict[str, int] = {}
        shown: dict[str, list[Any]] = {}
        for data in inputs:
            before, after = a_ps.decide(action, data).to_dict(), b_ps.decide(action, data).to_dict()
            kind = compare.change_kind(before, after)
            if kind is None:
                continue
            kinds[kind] = kinds.get(kind, 0) + 1
            for rid in compare.responsible_rules(kind, before, after):
                rules[rid] = rules.get(rid, 0) + 1
            if len(shown.setdefault(kind, [])) < examples:
                shown[kind].append({"input": data, "from": brief(before), "to": brief(after)})
        if kinds:
            compared.append({"system": system, "action": action, "requests": count,
                             "changed": sum(kinds.values()), "kinds": kinds, "rules": rules, "examples": shown})
    return {"changed": compared, "not_finite": skipped}


def brief(result: dict[str, Any]) -> dict[str, Any]:
    """A decision in a line: outcome, rules, obligation names, error."""
    return {"allow": result["allow"], "rules": result["rules"],
            "obligations": [o["name"] for o in result["obligations"]], "error": result["error"]}


def _entry(key: Key, before: Any, after: Any, infos: Mapping[tuple[str, str], Any], present: tuple[bool, bool]) -> Json:
    """One changed rule or declaration: added, removed, or changed leaf by leaf (cell by cell)."""
    system, section, name = key
    entry: Json = {"system": system, "section": section, "id": name}
    if section == "rules":
        info = infos.get((system, name))
        entry.update(kind=getattr(info, "kind", None), says=getattr(info, "says", None))
    if not present[0]:
        return dict(entry, change="added", to=after)
    if not present[1]:
        entry.update(change="removed")
        entry["from"] = before
        return entry
    entry.update(change="changed", changes=leaf_changes(before, after))
    if section == "rules" and isinstance(before, dict) and "cells" in before:
        entry["cells"] = [{"column": c["path"].removeprefix("cells."), "from": c["from"], "to": c["to"]}
                          for c in entry["changes"] if c["path"].startswith("cells.")]
    return entry


def _rules_by_change(entries: list[Json]) -> dict[str, list[Json]]:
    return {kind: [{k: v for k, v in e.items() if k != "section"}
                   for e in entries if e["section"] == "rules" and e["change"] == kind]
            for kind in ("added", "removed", "changed")}


def _wording(a_words: dict[Key, Json], b_words: dict[Key, Json], kept: set[Key]) -> list[Json]:
    """Wording changes of the rules and declarations both versions have."""
    return [{"system": k[0], "section": k[1], "id": k[2], "changes": leaf_changes(a_words.get(k), b_words.get(k))}
            for k in sorted(set(a_words) | set(b_words), key=repr)
            if a_words.get(k) != b_words.get(k) and k in kept]


def semantic_diff(a_files: Mapping[str, str], a_ps: Any, b_files: Mapping[str, str], b_ps: Any,
                  *, requests: bool = True) -> dict[str, Any]:
    """What changes from version a to version b; see the module docstring."""
    a_form, a_words = normal_form(a_files)
    b_form, b_words = normal_form(b_files)
    same = a_form == b_form
    infos = {(r.system, r.id): r for r in a_ps.rules} | {(r.system, r.id): r for r in b_ps.rules}
    entries = [_entry(k, a_form.get(k), b_form.get(k), infos, (k in a_form, k in b_form))
               for k in sorted(set(a_form) | set(b_form), key=repr)
               if k not in a_form or k not in b_form or a_form[k] != b_form[k]]
    rules = _rules_by_change(entries)
    declarations = [e for e in entries if e["section"] != "rules"]
    wording = _wording(a_words, b_words, set(a_form) & set(b_form))
    summary = ("no change in behaviour" if same else
               f"{len(rules['added'])} rules added, {len(rules['removed'])} removed, {len(rules['changed'])} changed, "
               f"{len(declarations)} declarations changed")
    body: dict[str, Any] = {
        "same_behaviour": same,
        "summary": summary,
        "hash": {"from": a_ps.version, "to": b_ps.version, "same": a_ps.version == b_ps.version,
                 "layout_only": a_ps.version != b_ps.version and same and a_words == b_words},
        "rules_added": rules["added"],
        "rules_removed": rules["removed"],
        "rules_changed": rules["changed"],
        "declarations_changed": declarations,
        "wording_changed": wording,
    }
    if requests and not same:
        body["requests"] = compare_requests(a_ps, b_ps)
    return body
