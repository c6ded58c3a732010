"""Stage 2b + 3: semantic checks and compilation of validated documents into a PolicySet.

Every check reports into one list (all errors at once, sorted later). Compilation indexes the
rules by system and action, so a decision only looks at the rules of its own action, and
decision tables by their most selective column, so cost does not grow with rows that cannot
match.
"""
from __future__ import annotations

import hashlib
import re
from typing import Any, Iterable

from . import types as T
from .conditions import Compiler, Fact, reads_for
from .errors import Location, PolicyError, did_you_mean
from .evaluate import (ActionPlan, Effect, FactRead, Guard, ObligationUse, PolicySet, RowTable,
                       RuleInfo, canonical_json)
from .codegen import generate
from .load import LoadedFile

_BRACES = re.compile(r"\{([^{}]*)\}")
_ACTION = re.compile(r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$")


def expand(pattern: str) -> list[str]:
    """Shell-like brace expansion: ``"{a,b}.{x,y}"`` -> a.x, a.y, b.x, b.y."""
    m = _BRACES.search(pattern)
    if not m:
        return [pattern]
    out = []
    for choice in m.group(1).split(","):
        out.extend(expand(pattern[: m.start()] + choice.strip() + pattern[m.end():]))
    return out


def _refs(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else list(value or [])


class SystemBuilder:
    """Compiles one document (one system section) of a rule file."""

    def __init__(self, loaded: LoadedFile, index: int, doc: dict, errors: list[PolicyError],
                 ids: dict[str, Location]):
        self.file = loaded.path
        self.smap = loaded.source
        self.prefix = (index,)
        self.doc = doc
        self.errors = errors
        self.system: str = doc["system"]
        self.scales: dict[str, T.Scale] = {}
        self.facts: dict[str, Fact] = {}
        self.obligations: dict[str, dict] = {}
        self.actions: dict[str, dict[str, Any]] = {}       # action -> {fact: mode}
        self.action_loc: dict[str, tuple] = {}
        self.units: dict[str, list] = {}                   # action -> units
        self.rule_infos: list[RuleInfo] = []
        self.rule_ids: dict[str, tuple] = {}
        self.cc = Compiler(self.facts, self.loc, errors)
        self.ids = ids                                     # rule id -> where it was first defined

    # -- helpers --------------------------------------------------------------------------------
    def loc(self, path: tuple, key: bool = False) -> Location:
        return self.smap.at(self.prefix + tuple(path), key=key)

    def error(self, code: str, message: str, path: tuple, help: str | None = None, key: bool = False):
        self.errors.append(PolicyError(code, message, self.loc(path, key), help))

    # -- declarations ---------------------------------------------------------------------------
    def build(self) -> None:
        self.build_scales()
        self.build_facts()
        self.build_obligations()
        self.build_actions()
        self.build_rules()
        for action, path in self.action_loc.items():
            if not self.units.get(action):
                self.error("compile_action_without_rules", f"no rule decides action `{action}`", path,
                           "add the action to a rule's `actions`, or remove it from the catalogue")

    def build_scales(self) -> None:
        for name, steps in (self.doc.get("scales") or {}).items():
            rank: dict[str, int] = {}
            for r, step in enumerate(steps):
                for j, value in enumerate(step if isinstance(step, list) else [step]):
                    if value in rank:
                        self.error("compile_bad_value", f"`{value}` appears twice on scale `{name}`",
                                   ("scales", name, r) + ((j,) if isinstance(step, list) else ()))
                    rank[value] = r
            self.scales[name] = T.Scale(name, rank)

    def type_of(self, spec: dict, path: tuple) -> T.TypeSpec | None:
        kind = spec["type"]
        for key in ("values", "scale", "items", "values_type", "min", "max", "allow_empty"):
            if key in spec and not _type_allows(kind, key):
                self.error("compile_bad_value", f"`{key}` does not apply to type `{kind}`", path + (key,), key=True)
                return None
        if kind == "enum":
            if "scale" in spec:
                scale = self.scales.get(spec["scale"])
                if scale is None:
                    self.error("compile_unknown_scale", f"unknown scale `{spec['scale']}`", path + ("scale",),
                               did_you_mean(spec["scale"], self.scales) or "declare it under `scales`")
                    return None
                return T.build("enum", values=tuple(scale.rank), scale=scale)
            if "values" not in spec:
                self.error("schema_missing_field", "an `enum` needs `values` or `scale`", path)
                return None
            return T.build("enum", values=tuple(spec["values"]))
        if kind == "list":
            items = self.type_of(spec["items"], path + ("items",)) if "items" in spec else None
            if "items" in spec and items is None:
                return None
            return T.build("list", items=items)
        if kind == "map":
            inner = self.type_of(spec["values_type"], path + ("values_type",)) if "values_type" in spec else None
            return T.build("map", values_type=inner)
        return T.build(kind, min=spec.get("min"), max=spec.get("max"), allow_empty=spec.get("allow_empty", False))

    def build_facts(self) -> None:
        paths: dict[str, str] = {}
        for slot, (name, spec) in enumerate(self.doc["facts"].items()):
            path = ("facts", name)
            if name in ("all", "any", "not", "move", "action"):
                self.error("compile_bad_value", f"`{name}` is a reserved word and cannot name a fact", path, key=True)
                continue
            ftype = self.type_of(spec, path)
            if ftype is None:
                continue
            if spec["path"] in paths:
                self.error("compile_duplicate_fact", f"facts `{paths[spec['path']]}` and `{name}` have the same path",
                           path + ("path",))
            paths[spec["path"]] = name
            has_default = "default" in spec
            default = spec.get("default")
            if has_default and default is not None and not ftype.checker(default):
                self.error("compile_bad_value", f"the default `{default}` of fact `{name}` is not {ftype.describe()}",
                           path + ("default",))
            self.facts[name] = Fact(name, tuple(spec["path"].split(".")), ftype, slot, has_default, default,
                                    spec.get("says", name), self.loc(path, key=True))
        # `action` is a built-in fact: the request's action name, in the slot after the facts
        self.facts["action"] = Fact("action", ("action",), T.build("string"), len(self.doc["facts"]), False, None,
                                    "the action", self.loc(()))

    def build_obligations(self) -> None:
        decls = self.doc.get("obligations") or {}
        for name, decl in decls.items():
            decl = decl or {}
            params = {}
            for pname, pspec in (decl.get("params") or {}).items():
                t = self.type_of(pspec, ("obligations", name, "params", pname))
                if t is not None:
                    params[pname] = t
            overrides = decl.get("overrides") or []
            for i, other in enumerate(overrides):
                if other not in decls:
                    self.error("compile_unknown_obligation", f"unknown obligation `{other}`",
                               ("obligations", name, "overrides", i), did_you_mean(other, decls))
            self.obligations[name] = {"params": params, "overrides": tuple(overrides)}
        for name, o in self.obligations.items():
            for other in o["overrides"]:
                if other == name or name in self.obligations.get(other, {}).get("overrides", ()):
                    self.error("compile_contradictory_obligations",
                               f"obligations `{name}` and `{other}` override each other",
                               ("obligations", name, "overrides"), "only one of them can win; keep one `overrides`")

    def build_actions(self) -> None:
        for g, group in enumerate(self.doc["actions"]):
            reads = group["reads"]
            modes: dict[str, Any] = {}
            items = reads.items() if isinstance(reads, dict) else ((n, None) for n in reads)
            for i, (fname, mode) in enumerate(items):
                fpath = ("actions", g, "reads", fname if isinstance(reads, dict) else i)
                fact = self.facts.get(fname)
                if fact is None:
                    self.error("compile_unknown_fact", f"unknown fact `{fname}`", fpath,
                               did_you_mean(fname, self.facts) or "declare it under `facts`",
                               key=isinstance(reads, dict))
                    continue
                if mode is None:
                    mode = "optional" if fact.has_default else "required"
                modes[fname] = (mode, fpath)
            for n, pattern in enumerate(group["names"]):
                for action in expand(pattern):
                    apath = ("actions", g, "names", n)
                    if not _ACTION.match(action):
                        self.error("compile_bad_value", f"`{action}` is not an action name", apath,
                                   "write actions as `<entity>.<operation>` in lower snake case")
                        continue
                    if action in self.actions:
                        self.error("compile_duplicate_action", f"action `{action}` is declared twice", apath)
                        continue
                    self.actions[action] = modes
                    self.action_loc[action] = apath

    def actions_of(self, patterns: list, path: tuple) -> list[str]:
        out = []
        for i, pattern in enumerate(patterns):
            for action in expand(str(pattern)):
                if action not in self.actions:
                    self.error("compile_unknown_action", f"action `{action}` is not in the catalogue of `{self.system}`",
                               path + (i,), did_you_mean(action, self.actions) or "declare it under `actions`")
                else:
                    out.append(action)
        return out

    def check_reads(self, rule_id: str, used: set[str], actions: Iterable[str], path: tuple) -> None:
        for action in actions:
            modes = self.actions.get(action, {})
            for fname in sorted((used & set(self.facts)) - set(modes) - {"action"}):
                self.error("compile_fact_not_read",
                           f"rule `{rule_id}` reads fact `{fname}`, which action `{action}` does not read", path,
                           f"add `{fname}` to the `reads` of `{action}`, or take `{action}` out of the rule")

    def sources_of(self, value: Any, path: tuple) -> tuple:
        declared = self.doc.get("sources") or {}
        refs = _refs(value)
        for i, ref in enumerate(refs):
            if ref not in declared:
                self.error("compile_unknown_source", f"unknown source `{ref}`",
                           path + ((i,) if isinstance(value, list) else ()),
                           did_you_mean(ref, declared) or "declare it under `sources`")
        return tuple(refs)

    def register_id(self, rule_id: str, path: tuple) -> None:
        if rule_id in self.ids:
            first = self.ids[rule_id]
            self.error("compile_duplicate_rule", f"rule id `{rule_id}` is used twice", path,
                       f"the first `{rule_id}` is at {first}")
        else:
            self.ids[rule_id] = self.loc(path)

    # -- obligations used by rules ----------------------------------------------------------------
    def uses(self, items: list, path: tuple, used: set[str]) -> tuple | None:
        out = []
        ok = True
        for i, item in enumerate(items):
            ipath = path + (i,)
            if isinstance(item, str):
                name, params, when = item, {}, None
            else:
                name, params, when = item["name"], item.get("params") or {}, item.get("when")
            decl = self.obligations.get(name)
            if decl is None:
                self.error("compile_unknown_obligation", f"unknown obligation `{name}`", ipath,
                           did_you_mean(name, self.obligations) or "declare it under `obligations`")
                ok = False
                continue
            cond = None
            if when is not None:
                cond = self.cc.condition(when, ipath + ("when",), used)
                if cond is None:
                    ok = False
                    continue
            made = self.params(name, decl["params"], params, ipath + ("params",), used)
            if made is False:
                ok = False
                continue
            static, fn = made
            out.append(ObligationUse(name, static, fn, cond))
        if not ok:
            return None
        names = {u.name for u in out if u.when is None}
        for u in out:
            if u.when is None:
                for other in self.obligations[u.name]["overrides"]:
                    if other in names:
                        self.error("compile_contradictory_obligations",
                                   f"`{u.name}` and `{other}` are asked for together, and `{u.name}` overrides `{other}`",
                                   path, f"remove `{other}` from this list")
        return tuple(out)

    def params(self, name: str, declared: dict, given: dict, path: tuple, used: set[str]):
        ok = True
        for pname in given:
            if pname not in declared:
                self.error("compile_bad_param", f"obligation `{name}` has no parameter `{pname}`", path + (pname,),
                           did_you_mean(pname, declared), key=True)
                ok = False
        for pname in declared:
            if pname not in given:
                self.error("compile_bad_param", f"obligation `{name}` needs parameter `{pname}`", path)
                ok = False
        if not ok:
            return False
        dynamic = {}
        static = {}
        for pname, value in given.items():
            ppath = path + (pname,)
            if isinstance(value, dict) and set(value) == {"fact"}:
                fact = self.cc.fact(value["fact"], ppath + ("fact",))
                if fact is None:
                    return False
                used.add(fact.name)
                dynamic[pname] = ("fact", fact)
            elif isinstance(value, dict) and set(value) == {"first_entered"}:
                facts = [self.cc.fact(f, ppath + ("first_entered", i))
                         for i, f in enumerate(_refs(value["first_entered"]))]
                if not facts or any(f is None for f in facts):
                    return False
                used.update(f.name for f in facts)
                dynamic[pname] = ("first_entered", tuple(facts))
            else:
                ptype = declared[pname]
                if not ptype.checker(value):
                    self.error("compile_bad_param", f"parameter `{pname}` of `{name}` must be {ptype.describe()}", ppath)
                    return False
                static[pname] = value
        if not dynamic:
            return static, None
        from .conditions import _read

        def build(vals):
            params = dict(static)
            for pname, (how, ref) in dynamic.items():
                if how == "fact":
                    params[pname] = _read(vals, ref)
                else:
                    params[pname] = next((v for v in (_read(vals, f) for f in ref) if v is not None and v != ""), None)
            return params
        return None, build

    # -- rules ---------------------------------------------------------------------------------
    def info(self, rule_id, kind, says, sources, actions, path, definition) -> None:
        self.rule_infos.append(RuleInfo(rule_id, kind, says, sources, self.system, tuple(actions),
                                        self.file, self.loc(path).line, definition))

    def rule_reads(self, rule: dict, action: str) -> set[str]:
        """The facts a guard or effect may read when deciding ``action`` (see ``reads_for``)."""
        reads, value = reads_for(rule.get("when"), action)
        if value is False:
            return reads
        if rule["kind"] == "guard":
            return reads | reads_for(rule["deny_when"], action)[0]
        for item in rule["obligations"]:
            if isinstance(item, dict):
                r, v = reads_for(item.get("when"), action)
                reads |= r
                if v is not False:
                    for p in (item.get("params") or {}).values():
                        if isinstance(p, dict) and set(p) == {"fact"}:
                            reads.add(p["fact"])
                        elif isinstance(p, dict) and set(p) == {"first_entered"}:
                            reads.update(_refs(p["first_entered"]))
        return reads

    def add_unit(self, actions: Iterable[str], unit) -> None:
        for action in actions:
            self.units.setdefault(action, []).append(unit)

    def build_rules(self) -> None:
        for r, rule in enumerate(self.doc["rules"]):
            path = ("rules", r)
            kind = rule["kind"]
            if kind == "table":
                self.build_table(rule, path)
                continue
            rid = rule["id"]
            self.register_id(rid, path + ("id",))
            sources = self.sources_of(rule["source"], path + ("source",))
            actions = self.actions_of(rule["actions"], path + ("actions",))
            used: set[str] = set()
            when = self.cc.condition(rule["when"], path + ("when",), used) if "when" in rule else None
            if kind == "guard":
                deny = self.cc.condition(rule["deny_when"], path + ("deny_when",), used)
                if deny is not None and ("when" not in rule or when is not None):
                    self.add_unit(actions, Guard(rid, rule["says"], when, deny))
            else:
                uses = self.uses(rule["obligations"], path + ("obligations",), used)
                if uses is not None and ("when" not in rule or when is not None):
                    self.add_unit(actions, Effect(rid, rule["says"], when, (), uses))
            for action in actions:
                self.check_reads(rid, self.rule_reads(rule, action), [action], path + ("id",))
            self.info(rid, kind, rule["says"], sources, actions, path, rule)

    def build_table(self, table: dict, path: tuple) -> None:
        header = table["header"]
        if header[0] != "rule":
            self.error("compile_bad_table", "the first column of a table is `rule`", path + ("header", 0))
            return
        outcomes = {}
        for name, items in table["outcomes"].items():
            used: set[str] = set()
            uses = self.uses(items, path + ("outcomes", name), used)
            if uses is None:
                return
            outcomes[name] = (uses, used)
        if table["layout"] == "action_matrix":
            self.build_matrix(table, path, header, outcomes)
        else:
            self.build_rows(table, path, header, outcomes)

    def row_meta(self, table: dict, rid: str, rpath: tuple, path: tuple):
        meta = (table.get("rules") or {}).get(rid)
        if meta is None:
            self.error("schema_missing_field", f"row `{rid}` needs a sentence under the table's `rules`", rpath,
                       f"add `{rid}: {{says: ..., source: [...]}}` under `rules`")
            return "", ()
        src = meta.get("source", table["source"])
        return meta["says"], self.sources_of(src, path + ("rules", rid, "source") if "source" in meta else path + ("source",))

    def build_matrix(self, table: dict, path: tuple, header: list, outcomes: dict) -> None:
        if len(header) < 3 or header[1] != "entity":
            self.error("compile_bad_table", "an action matrix has the columns `rule`, `entity`, then one per operation",
                       path + ("header",))
            return
        operations = header[2:]
        words = {}
        for wname, cond in (table.get("words") or {}).items():
            used: set[str] = set()
            fn = self.cc.condition(cond, path + ("words", wname), used)
            if fn is None:
                return
            words[wname] = (fn, used)
        otherwise = table.get("otherwise")
        if otherwise is not None and otherwise not in outcomes:
            self.error("compile_unknown_outcome", f"unknown outcome `{otherwise}`", path + ("otherwise",),
                       did_you_mean(otherwise, outcomes))
            return
        seen_entities: dict[str, int] = {}
        for r, row in enumerate(table["body"]):
            rpath = path + ("body", r)
            if len(row) != len(header):
                self.error("compile_bad_table", f"row has {len(row)} cells but the header has {len(header)}", rpath)
                continue
            rid, entity = str(row[0]), str(row[1])
            self.register_id(rid, rpath + (0,))
            if entity in seen_entities:
                self.error("compile_table_overlap", f"entity `{entity}` has two rows (hit policy `{table['hit']}`)",
                           rpath + (1,), f"merge it with the row at line {self.loc(path + ('body', seen_entities[entity])).line}")
            seen_entities[entity] = r
            says, sources = self.row_meta(table, rid, rpath, path)
            actions = []
            for c, op in enumerate(operations):
                cpath = rpath + (c + 2,)
                action = f"{entity}.{op}"
                if action not in self.actions:
                    self.error("compile_unknown_action", f"action `{action}` is not in the catalogue of `{self.system}`",
                               cpath, did_you_mean(action, self.actions))
                    continue
                unit = self.cell(rid, says, row[c + 2], cpath, words, outcomes, otherwise, action)
                if unit is not None:
                    self.add_unit([action], unit)
                    actions.append(action)
            self.info(rid, "table row", says, sources, actions, rpath,
                      {"table": table["id"], "row": dict(zip(header, row)), "words": table.get("words"),
                       "outcomes": table["outcomes"], "otherwise": otherwise})
        if table.get("when") is not None:
            self.error("compile_bad_table", "an action matrix takes no `when`; put conditions in its words", path + ("when",))

    def cell(self, rid, says, text, cpath, words, outcomes, otherwise, action):
        text = str(text).strip()
        outcome, _, cond_text = text.partition(" when ")
        outcome = outcome.strip()
        if outcome not in outcomes:
            self.error("compile_unknown_outcome", f"unknown outcome `{outcome}` in cell `{text}`", cpath,
                       did_you_mean(outcome, outcomes) or "outcomes: " + ", ".join(f"`{o}`" for o in outcomes))
            return None
        uses, used = outcomes[outcome]
        used = set(used)
        if not cond_text:
            self.check_reads(rid, used, [action], cpath)
            return Effect(rid, says, None, (), uses)
        if otherwise is None:
            self.error("compile_bad_table", f"cell `{text}` needs the table's `otherwise`", cpath)
            return None
        conds = []
        for word in (w.strip() for w in cond_text.split(" or ")):
            if word not in words:
                self.error("compile_unknown_word", f"unknown word `{word}` in cell `{text}`", cpath,
                           did_you_mean(word, words) or "declare it under the table's `words`")
                return None
            fn, wused = words[word]
            conds.append(fn)
            used |= wused
        other_uses, other_used = outcomes[otherwise]
        self.check_reads(rid, used | other_used, [action], cpath)
        from .conditions import _any, _tag
        cond = conds[0] if len(conds) == 1 else _tag(_any(conds), ("any", tuple(f.ir for f in conds)))
        return Effect(rid, says, None, ((cond, uses),), other_uses)

    def build_rows(self, table: dict, path: tuple, header: list, outcomes: dict) -> None:
        if header[-1] != "outcome" or len(header) < 3:
            self.error("compile_bad_table", "a row table has the columns `rule`, its input facts, then `outcome`",
                       path + ("header",))
            return
        if "actions" not in table:
            self.error("schema_missing_field", "a row table needs `actions`", path)
            return
        inputs = header[1:-1]
        facts = []
        for c, name in enumerate(inputs):
            fact = self.cc.fact(name, path + ("header", c + 1))
            if fact is None:
                return
            facts.append(fact)
        actions = self.actions_of(table["actions"], path + ("actions",))
        table_used: set[str] = {f.name for f in facts}
        when = None
        if "when" in table:
            when = self.cc.condition(table["when"], path + ("when",), table_used)
            if when is None:
                return
        rows = []
        keys: list[list] = []  # per row: per column, the literal keys or None for wildcard/other
        seen: dict[tuple, int] = {}
        cells: dict[tuple, Any] = {}   # (column, cell as written) -> compiled test, shared by equal cells
        table_sources = self.sources_of(table["source"], path + ("source",))
        for r, row in enumerate(table["body"]):
            rpath = path + ("body", r)
            if len(row) != len(header):
                self.error("compile_bad_table", f"row has {len(row)} cells but the header has {len(header)}", rpath)
                continue
            rid = str(row[0])
            self.register_id(rid, rpath + (0,))
            says, sources = self.row_meta(table, rid, rpath, path) if table.get("rules") else (table["says"], table_sources)
            outcome = row[-1]
            if outcome not in outcomes:
                self.error("compile_unknown_outcome", f"unknown outcome `{outcome}`", rpath + (len(row) - 1,),
                           did_you_mean(str(outcome), outcomes))
                continue
            parts = []
            row_keys = []
            ok = True
            for c, fact in enumerate(facts):
                cell = row[c + 1]
                if cell is None or cell == "-":
                    row_keys.append("*")
                    continue
                memo = (c, canonical_json(cell) if isinstance(cell, (dict, list)) else (type(cell).__name__, cell))
                made = cells.get(memo)
                if made is None:
                    made = self.cc.fact_test(fact, cell, rpath + (c + 1,), set())
                    if made is None:
                        ok = False
                        continue
                    cells[memo] = made
                parts.append(made)
                if not isinstance(cell, dict):
                    row_keys.append((cell,))
                elif set(cell) == {"in"} and isinstance(cell["in"], list):
                    row_keys.append(tuple(cell["in"]))
                else:
                    row_keys.append(None)
            if not ok:
                continue
            uses, oused = outcomes[outcome]
            table_used |= oused
            if table["hit"] == "unique" and all(k is not None and k != "*" and len(k) == 1 for k in row_keys):
                sig = tuple(row_keys)
                if sig in seen:
                    self.error("compile_table_overlap", f"rows `{rows[seen[sig]][0]}` and `{rid}` match the same requests",
                               rpath, "hit policy `unique` allows one matching row; use `first` or make them differ")
                seen[sig] = len(rows)
            rows.append((rid, says, tuple(parts), uses))
            keys.append(row_keys)
            self.info(rid, "table row", says, sources, actions, rpath,
                      {"table": table["id"], "row": dict(zip(header, row))})
        self.check_reads(table["id"], table_used, actions, path + ("id",))
        slot, buckets, wildcards = _index(facts, keys)
        self.add_unit(actions, RowTable(table["id"], table["says"], table["hit"], when, tuple(rows),
                                        slot, buckets, wildcards))

    # -- plans ---------------------------------------------------------------------------------
    def plans(self) -> dict[str, ActionPlan]:
        overrides = {n: o["overrides"] for n, o in self.obligations.items() if o["overrides"]}
        out = {}
        for action, modes in self.actions.items():
            reads = []
            conditional = []
            for fname, (mode, fpath) in modes.items():
                fact = self.facts[fname]
                default = fact.default
                if isinstance(mode, dict) and "default" in mode:
                    default = mode["default"]
                    if default is not None and not fact.type.checker(default):
                        self.error("compile_bad_value", f"the default `{default}` of `{fname}` is not {fact.type.describe()}",
                                   fpath + ("default",))
                    mode = "optional"
                cond = None
                if isinstance(mode, dict):
                    used: set[str] = set()
                    cond = self.cc.condition(mode["required_when"], fpath + ("required_when",), used)
                    missing = used - set(modes) - {"action"}
                    for m in sorted(missing):
                        self.error("compile_fact_not_read",
                                   f"`required_when` of `{fname}` reads fact `{m}`, which action `{action}` does not read",
                                   fpath + ("required_when",))
                    if cond is None or missing:
                        continue
                    conditional.append((fname, used, FactRead(fact.slot, fact.path, fact.dotted, fact.type.checker,
                                                              "conditional", default, cond, fact.type.describe(),
                                                              fact.type)))
                    continue
                reads.append(FactRead(fact.slot, fact.path, fact.dotted, fact.type.checker, mode, default, None,
                                      fact.type.describe(), fact.type))
            # conditional facts after the facts their condition reads
            placed = {self.facts[n].name for n, (m, _) in modes.items() if not (isinstance(m, dict) and "required_when" in m)}
            pending = list(conditional)
            while pending:
                progress = False
                for item in list(pending):
                    fname, used, fr = item
                    if used - {fname, "action"} <= placed:
                        reads.append(fr)
                        placed.add(fname)
                        pending.remove(item)
                        progress = True
                if not progress:
                    names = ", ".join(f"`{p[0]}`" for p in pending)
                    self.error("compile_bad_test", f"the `required_when` conditions of {names} depend on each other",
                               self.action_loc[action])
                    break
            units = self.units.get(action, [])
            units = [u for u in units if u.kind == "guard"] + [u for u in units if u.kind != "guard"]
            out[action] = ActionPlan(action, len(self.doc["facts"]) + 1, tuple(reads), tuple(units), overrides)
        return out


def _type_allows(kind: str, key: str) -> bool:
    return {"values": kind == "enum", "scale": kind == "enum", "items": kind == "list",
            "values_type": kind == "map", "min": kind == "integer", "max": kind == "integer",
            "allow_empty": kind == "string"}[key]


def _index(facts: list[Fact], keys: list[list]):
    """Choose the column whose literal cells best split the rows; map value -> candidate rows."""
    best = None
    for c, fact in enumerate(facts):
        if fact.type.kind not in T.SCALAR_KINDS:
            continue
        column = [k[c] for k in keys]
        if any(k is None for k in column):
            continue
        distinct = len({v for k in column if k != "*" for v in k})
        if distinct > 1 and (best is None or distinct > best[1]):
            best = (c, distinct)
    if best is None:
        return None, {}, ()
    c = best[0]
    wildcards = tuple(i for i, k in enumerate(keys) if k[c] == "*")
    buckets: dict = {}
    for i, k in enumerate(keys):
        if k[c] != "*":
            for v in k[c]:
                buckets.setdefault(v, []).append(i)
    for v, rows in buckets.items():
        buckets[v] = tuple(sorted(set(rows) | set(wildcards)))
    return facts[c].slot, buckets, wildcards


def compile_documents(files: list[LoadedFile], docs: list[tuple[LoadedFile, int, dict]],
                      errors: list[PolicyError], display_root: str = "") -> PolicySet | None:
    ids: dict[str, Location] = {}
    systems: dict[str, dict] = {}
    infos: list[RuleInfo] = []
    catalogue: dict[str, tuple] = {}
    seen_systems: dict[str, Location] = {}
    for loaded, index, doc in docs:
        b = SystemBuilder(loaded, index, doc, errors, ids)
        if b.system in seen_systems:
            b.error("compile_duplicate_system", f"system `{b.system}` has two sections", ("system",),
                    f"the first is at {seen_systems[b.system]}; put its rules in one section")
            continue
        seen_systems[b.system] = b.loc(("system",))
        b.build()
        systems[b.system] = b.plans()
        catalogue[b.system] = tuple(sorted(b.actions))
        infos.extend(b.rule_infos)
    if errors:
        return None
    # the version names the content only: paths relative to the rules folder, never how the
    # folder was named on the command line, so the same files give the same id everywhere
    content = {f.path[len(display_root):] if f.path.startswith(display_root) else f.path: f.documents
               for f in files}
    version = "sha256:" + hashlib.sha256(canonical_json(content).encode()).hexdigest()
    systems = {name: {action: plan._replace(fn=generate(plan, version)) for action, plan in plans.items()}
               for name, plans in systems.items()}
    return PolicySet(version, systems, tuple(infos), catalogue)
