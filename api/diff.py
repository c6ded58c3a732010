"""Rule-level difference between two policy versions (for auditors; not a text diff).

A rule is identified by its id (and system). For each rule the diff compares

* what the compiled PolicySet says about it (``PolicySet.rules``: kind, says, sources, system,
  actions, file) and
* its definition: ``RuleInfo.definition`` as the engine gives it (for a table row: the row, and
  the table's words and outcomes). When a RuleInfo carries none, the definition is taken from the
  rule files: every YAML fragment that names the rule (the mapping whose ``id`` is the rule id, a
  mapping entry keyed by it, a table row starting with it) with the settings of the enclosing
  rule that shape it. That fallback knows no rule kinds, so a new construct needs no change here.

Non-rule sections that changed (facts, obligations, actions, ...) are listed per system, since a
fact's new path changes every rule that reads it. The line a rule starts on is reported, never counted as a change.
"""
from __future__ import annotations

import dataclasses
import typing as t

import yaml

#: RuleInfo fields compared (``line`` moves when anything above it changes, so it is not)
_INFO_FIELDS = ("kind", "says", "sources", "system", "actions", "file")


def rule_info_dict(info: t.Any) -> dict[str, t.Any]:
    if dataclasses.is_dataclass(info):
        data = dataclasses.asdict(info)
    elif hasattr(info, "_asdict"):
        data = dict(info._asdict())
    elif isinstance(info, dict):
        data = dict(info)
    else:
        data = {k: v for k, v in vars(info).items() if not k.startswith("_")}
    return {k: _plain(v) for k, v in data.items()}


def _plain(value: t.Any) -> t.Any:
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (frozenset, set)):
        return sorted(_plain(v) for v in value)
    return value


def _key(info: dict[str, t.Any]) -> tuple[str, str]:
    return (str(info.get("id")), str(info.get("system") or ""))


def _documents(files: t.Mapping[str, str]) -> t.Iterator[tuple[str, t.Any]]:
    for path in sorted(files):
        if path.startswith("tests/") or "/tests/" in path:
            continue
        try:
            for document in yaml.safe_load_all(files[path]):
                yield path, document
        except yaml.YAMLError:
            continue  # a stored version compiled, so this does not happen; never fail a diff on it


def definitions(files: t.Mapping[str, str], rule_ids: t.Iterable[str]) -> dict[tuple[str, str], dict[str, t.Any]]:
    """``{(rule id, system): {"fragments": [...], "context": {...}}}`` found in the rule files."""
    wanted = set(rule_ids)
    found: dict[tuple[str, str], dict[str, t.Any]] = {}

    def note(rule_id: str, system: str, fragment: t.Any, owner: dict | None, skip_key: str | None) -> None:
        entry = found.setdefault((rule_id, system), {"fragments": [], "context": {}})
        entry["fragments"].append(_plain(fragment))
        if owner is not None and owner.get("id") != rule_id:
            # the enclosing rule's own settings (a table's header, words, outcomes), not its rows
            entry["context"][str(owner.get("id"))] = {
                k: _plain(v) for k, v in owner.items() if k not in _ROW_KEYS and k != skip_key
            }

    def walk(node: t.Any, system: str, owner: dict | None, key_in_owner: str | None) -> None:
        if isinstance(node, dict):
            node_id = node.get("id")
            if isinstance(node_id, str) and node_id in wanted:
                note(node_id, system, node, owner, key_in_owner)
            next_owner = node if isinstance(node_id, str) else owner
            for key, value in node.items():
                if isinstance(key, str) and key in wanted and key != node_id:
                    note(key, system, {key: value}, next_owner, key if next_owner is node else key_in_owner)
                walk(value, system, next_owner, key if next_owner is node else key_in_owner)
        elif isinstance(node, list):
            if node and isinstance(node[0], str) and node[0] in wanted:
                note(node[0], system, node, owner, key_in_owner)
                return
            for value in node:
                walk(value, system, owner, key_in_owner)

    for _path, document in _documents(files):
        if not isinstance(document, dict):
            continue
        system = str(document.get("system") or "")
        walk(document.get("rules"), system, None, None)
    return found


#: keys of a table that hold its rows and per-row texts: their content belongs to each row's rule
_ROW_KEYS = ("body", "rules", "rows")


def _changes(before: t.Any, after: t.Any, path: str = "") -> list[dict[str, t.Any]]:
    """Leaf-level differences as ``[{"path", "before", "after"}]`` (``None`` = absent)."""
    if isinstance(before, dict) and isinstance(after, dict):
        out: list[dict[str, t.Any]] = []
        for key in sorted(set(before) | set(after), key=str):
            sub = f"{path}.{key}" if path else str(key)
            if key not in before:
                out.append({"path": sub, "before": None, "after": after[key]})
            elif key not in after:
                out.append({"path": sub, "before": before[key], "after": None})
            else:
                out.extend(_changes(before[key], after[key], sub))
        return out
    if isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
        out = []
        for index, (b, a) in enumerate(zip(before, after)):
            out.extend(_changes(b, a, f"{path}[{index}]"))
        return out
    if before != after:
        return [{"path": path or "$", "before": before, "after": after}]
    return []


def _sections(files: t.Mapping[str, str]) -> dict[str, t.Any]:
    """Non-rule sections (facts, scales, obligations, actions, ...) by ``system.section``."""
    out: dict[str, t.Any] = {}
    for _path, document in _documents(files):
        if not isinstance(document, dict):
            continue
        system = str(document.get("system") or "")
        for key, value in document.items():
            if key in ("rules", "system"):
                continue
            out[f"{system}.{key}"] = _plain(value)
    return out


def _rule_definitions(files: t.Mapping[str, str], infos: dict[tuple[str, str], dict[str, t.Any]]) -> dict:
    """The engine's own ``RuleInfo.definition`` when it gives one, else the fragments in the files."""
    out = {key: info["definition"] for key, info in infos.items() if info.get("definition") is not None}
    missing = [key for key in infos if key not in out]
    if missing:
        found = definitions(files, [key[0] for key in missing])
        out.update({key: found.get(key, {}) for key in missing})
    return out


def diff_versions(
    a_files: t.Mapping[str, str], a_rules: t.Iterable[t.Any],
    b_files: t.Mapping[str, str], b_rules: t.Iterable[t.Any],
) -> dict[str, t.Any]:
    """The rule-level diff from version a (before) to version b (after)."""
    a_info = {_key(d): d for d in map(rule_info_dict, a_rules)}
    b_info = {_key(d): d for d in map(rule_info_dict, b_rules)}
    a_defs = _rule_definitions(a_files, a_info)
    b_defs = _rule_definitions(b_files, b_info)

    def summary(info: dict[str, t.Any]) -> dict[str, t.Any]:
        return {k: info.get(k) for k in ("id", "system", "kind", "says", "file", "line")}

    added = [summary(b_info[k]) for k in sorted(set(b_info) - set(a_info))]
    removed = [summary(a_info[k]) for k in sorted(set(a_info) - set(b_info))]
    changed, unchanged = [], 0
    for key in sorted(set(a_info) & set(b_info)):
        before, after = a_info[key], b_info[key]
        fields = [
            {"field": f, "before": before.get(f), "after": after.get(f)}
            for f in _INFO_FIELDS if before.get(f) != after.get(f)
        ]
        definition = _changes(a_defs.get(key, {}), b_defs.get(key, {}))
        if fields or definition:
            changed.append({
                "id": key[0], "system": key[1] or None,
                "fields": fields, "definition": definition,
                "location": {"before": f"{before.get('file')}:{before.get('line')}",
                             "after": f"{after.get('file')}:{after.get('line')}"},
            })
        else:
            unchanged += 1
    a_sections, b_sections = _sections(a_files), _sections(b_files)
    sections = []
    for name in sorted(set(a_sections) | set(b_sections)):
        detail = _changes(a_sections.get(name), b_sections.get(name))
        if detail:
            sections.append({"section": name, "changes": detail})
    a_names, b_names = set(a_files), set(b_files)
    return {
        "added": added,
        "removed": removed,
        "changed": changed,
        "unchanged": unchanged,
        "sections_changed": sections,
        "files": {
            "added": sorted(b_names - a_names),
            "removed": sorted(a_names - b_names),
            "changed": sorted(p for p in a_names & b_names if a_files[p] != b_files[p]),
        },
    }
