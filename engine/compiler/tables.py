"""Decision tables: an action matrix (one row per entity, one cell per operation) and a row table
(one row per combination of input facts). Checks and lowering to ``ir.ActionMatrix`` (one
``ir.Effect`` per cell) and ``ir.RowTable``."""
from __future__ import annotations

from typing import Any

from .. import ir
from ..errors import SourceRef, did_you_mean
from ..evaluate import RuleInfo, TableRow
from .catalogue import actions_of, check_reads
from .conditions import condition, fact_condition
from .context import Context, Path, Rejected, expand
from .obligations import uses

Outcomes = dict[str, tuple[ir.Outcome, set[str]]]   # name -> outcome, facts its obligations read


def table(ctx: Context, spec: dict[str, Any], path: Path) -> None:
    header = spec["header"]
    covered = covered_actions(spec)
    try:
        if header[0] != "rule":
            raise ctx.reject("compile_bad_table", "the first column of a table is `rule`", path + ("header", 0))
        outcomes = _outcomes(ctx, spec, path)
        if spec["layout"] == "action_matrix":
            matrix(ctx, spec, path, header, outcomes)
        else:
            rows(ctx, spec, path, header, outcomes)
    except Rejected:
        ctx.broken.update(covered)


def covered_actions(spec: dict[str, Any]) -> set[str]:
    """The actions a table decides, as far as they can be told without reporting anything."""
    if spec["layout"] == "rows":
        return {a for p in spec.get("actions") or [] for a in expand(str(p))}
    operations = spec["header"][2:]
    return {f"{row[1]}.{op}" for row in spec["body"] if len(row) > 1 for op in operations}


def _outcomes(ctx: Context, spec: dict[str, Any], path: Path) -> Outcomes:
    out: Outcomes = {}
    for name, items in spec["outcomes"].items():
        used: set[str] = set()
        opath = path + ("outcomes", name)
        out[name] = (ir.Outcome(name, uses(ctx, items, opath, used), ctx.loc(opath, key=True)), used)
    return out


def row_meta(ctx: Context, spec: dict[str, Any], rid: str, rpath: Path, path: Path) -> tuple[str, tuple[str, ...]]:
    meta = (spec.get("rules") or {}).get(rid)
    if meta is None:
        ctx.error("compile_missing_field", f"row `{rid}` needs a sentence under the table's `rules`", rpath,
                  f"add `{rid}: {{says: ..., source: [...]}}` under `rules`")
        return "", ()
    src = meta.get("source", spec["source"])
    where = path + ("rules", rid, "source") if "source" in meta else path + ("source",)
    return meta["says"], ctx.sources_of(src, where)


# -- action matrix ------------------------------------------------------------------------------------
def matrix(ctx: Context, spec: dict[str, Any], path: Path, header: list[Any], outcomes: Outcomes) -> None:
    if len(header) < 3 or header[1] != "entity":
        raise ctx.reject("compile_bad_table",
                         "an action matrix has the columns `rule`, `entity`, then one per operation",
                         path + ("header",))
    operations = tuple(header[2:])
    words: dict[str, tuple[ir.Condition, set[str]] | None] = {}   # None: the word was refused
    for wname, cond in (spec.get("words") or {}).items():
        used: set[str] = set()
        try:
            words[wname] = (condition(ctx, cond, path + ("words", wname), used), used)
        except Rejected:
            words[wname] = None
    otherwise = spec.get("otherwise")
    if otherwise is not None and otherwise not in outcomes:
        raise ctx.reject("compile_unknown_outcome", f"unknown outcome `{otherwise}`", path + ("otherwise",),
                         did_you_mean(otherwise, outcomes))
    seen_entities: dict[str, int] = {}
    rows_ir = []
    for r, row in enumerate(spec["body"]):
        rpath = path + ("body", r)
        if len(row) != len(header):
            ctx.error("compile_bad_table", f"row has {len(row)} cells but the header has {len(header)}", rpath)
            continue
        rid, entity = str(row[0]), str(row[1])
        ctx.register_id(rid, rpath + (0,))
        if entity in seen_entities:
            first = ctx.loc(path + ("body", seen_entities[entity])).line
            ctx.error("compile_table_overlap", f"entity `{entity}` has two rows (hit policy `{spec['hit']}`)",
                      rpath + (1,), f"merge it with the row at line {first}")
        seen_entities[entity] = r
        says, sources = row_meta(ctx, spec, rid, rpath, path)
        actions = []
        cells = []
        for c, op in enumerate(operations):
            cpath = rpath + (c + 2,)
            action = f"{entity}.{op}"
            if action not in ctx.actions:
                ctx.error("compile_unknown_action", f"action `{action}` is not in the catalogue of `{ctx.system}`",
                          cpath, did_you_mean(action, ctx.actions))
                continue
            try:
                cell_ir, unit = cell(ctx, rid, says, row[c + 2], cpath, words, outcomes, otherwise, action)
            except Rejected:
                ctx.broken.add(action)
                continue
            ctx.add_unit([action], unit)
            actions.append(action)
            cells.append(cell_ir)
        rows_ir.append(ir.MatrixRow(rid, entity, says, tuple(cells), ctx.loc(rpath)))
        ctx.info(rid, "table row", says, sources, actions, rpath,
                 {"table": spec["id"], "row": dict(zip(header, row, strict=True)), "words": spec.get("words"),
                  "outcomes": spec["outcomes"], "otherwise": otherwise})
    if spec.get("when") is not None:
        ctx.error("compile_bad_table", "an action matrix takes no `when`; put conditions in its words",
                  path + ("when",))
    if "no_match" in spec:
        ctx.error("compile_bad_table", "`no_match` is for row tables; an action matrix has a cell for every action",
                  path + ("no_match",), "remove `no_match`; a cell's `when` words fall back to `otherwise`", key=True)
    ctx.tables.append(ir.ActionMatrix(
        spec["id"], spec["says"], spec["hit"], tuple((w, c[0]) for w, c in words.items() if c is not None),
        tuple(o for o, _ in outcomes.values()), otherwise, operations, tuple(rows_ir), ctx.loc(path)))


def cell(ctx: Context, rid: str, says: str, written: Any, cpath: Path,
         words: dict[str, tuple[ir.Condition, set[str]] | None], outcomes: Outcomes, otherwise: str | None,
         action: str) -> tuple[ir.MatrixCell, ir.Effect]:
    """One cell, ``outcome`` or ``outcome when word [or word ...]``: its IR and the effect it lowers to."""
    text = str(written).strip()
    outcome, _, cond_text = text.partition(" when ")
    outcome = outcome.strip()
    where = ctx.loc(cpath)
    if outcome not in outcomes:
        raise ctx.reject("compile_unknown_outcome", f"unknown outcome `{outcome}` in cell `{text}`", cpath,
                         did_you_mean(outcome, outcomes) or "outcomes: " + ", ".join(f"`{o}`" for o in outcomes))
    chosen, used = outcomes[outcome]
    used = set(used)
    if not cond_text:
        check_reads(ctx, rid, used, [action], cpath)
        return ir.MatrixCell(action, outcome, (), where), ir.Effect(rid, says, None, (), chosen.obligations, where)
    if otherwise is None:
        raise ctx.reject("compile_bad_table", f"cell `{text}` needs the table's `otherwise`", cpath)
    conds = []
    names = tuple(w.strip() for w in cond_text.split(" or "))
    for word in names:
        if word not in words:
            raise ctx.reject("compile_unknown_word", f"unknown word `{word}` in cell `{text}`", cpath,
                             did_you_mean(word, words) or "declare it under the table's `words`")
        compiled = words[word]
        if compiled is None:          # the word's own error is the root cause
            raise Rejected()
        conds.append(compiled[0])
        used |= compiled[1]
    other, other_used = outcomes[otherwise]
    check_reads(ctx, rid, used | other_used, [action], cpath)
    cond = conds[0] if len(conds) == 1 else ir.AnyOf(tuple(conds), where)
    return (ir.MatrixCell(action, outcome, names, where),
            ir.Effect(rid, says, None, (ir.Case(cond, chosen.obligations),), other.obligations, where))


# -- row table ------------------------------------------------------------------------------------------
class _Body:
    """The rows of one row table as they are lowered, with what the table reads so far."""

    def __init__(self, ctx: Context, spec: dict[str, Any], path: Path, columns: tuple[ir.Fact, ...],
                 actions: list[str], outcomes: Outcomes, used: set[str]):
        self.ctx, self.spec, self.path, self.columns = ctx, spec, path, columns
        self.actions, self.outcomes, self.used = actions, outcomes, used
        self.rows: list[ir.Row] = []
        self.seen: dict[tuple[Any, ...], int] = {}       # single-value rows of a `unique` table
        self.tests: dict[tuple[Any, ...], ir.RowCell] = {}  # (column, cell as written) -> the cell, shared
        self.sources = ctx.sources_of(spec["source"], path + ("source",))
        self.header = spec["header"]
        self.body = (ctx.index,) + path + ("body",)    # the path of the rows in the file's documents
        self.covered = tuple(actions)

    def all(self, rows: list[Any]) -> None:
        """Every row, in order. A row with the right length, a known outcome and a new id, of a table
        without per-row `rules` or `unique` checks, is lowered here in a few steps (a large table's rows
        nearly all are; a cell not seen before in its column is lowered, and reported, as ``row`` does);
        any other row goes through ``row``, which reports what is wrong with it."""
        spec, ctx = self.spec, self.ctx
        if spec.get("rules") or spec["hit"] == "unique":
            for r, row in enumerate(rows):
                self.row(r, row)
            return
        width, outcomes, shared, ids = len(self.header), self.outcomes, self.tests, ctx.ids
        source, body, says, sources = ctx.loaded.source, self.body, spec["says"], self.sources
        lowered, infos, chosen_ones = self.rows, ctx.rule_infos, set[str]()
        system, covered, file, table_id, header = ctx.system, self.covered, ctx.file, spec["id"], self.header
        new = tuple.__new__     # each named tuple made without a Python-level call
        for r, row in enumerate(rows):
            outcome = row[-1] if type(row) is list and len(row) == width else None
            chosen = outcomes.get(outcome) if type(outcome) is str else None
            rid = (row[0] if type(row[0]) is str else str(row[0])) if chosen is not None else ""
            if chosen is None or rid in ids:
                self.row(r, row)
                continue
            where = new(SourceRef, (source, body + (r,)))
            ids[rid] = new(SourceRef, (source, body + (r, 0)))
            cells = _row_cells(width - 2, row, shared)
            if cells is None:     # a cell seen for the first time: lowered (and located) as written
                try:
                    cells = _new_row_cells(ctx, self.columns, row, self.path + ("body", r), shared)
                except Rejected:
                    continue
            chosen_ones.add(str(outcome))
            lowered.append(new(ir.Row, (rid, says, cells, outcome, chosen[0].obligations, where)))
            infos.append(new(RuleInfo, (rid, "table row", says, sources, system, covered, file, where,
                                        new(TableRow, (table_id, header, row)))))
        for outcome in chosen_ones:
            self.used |= outcomes[outcome][1]

    def row(self, r: int, row: list[Any]) -> None:
        """One row, with every check a row has. ``all`` lowers the rows that pass them all without
        coming here: a check added here must also send the rows it can fail from ``all`` to here."""
        ctx, spec, header = self.ctx, self.spec, self.header
        rpath = self.path + ("body", r)
        if len(row) != len(header):
            ctx.error("compile_bad_table", f"row has {len(row)} cells but the header has {len(header)}", rpath)
            return
        rid = str(row[0])
        where = SourceRef._make((ctx.loaded.source, self.body + (r,)))
        ctx.register_id(rid, SourceRef._make((ctx.loaded.source, where.path + (0,))))
        if spec.get("rules"):
            says, sources = row_meta(ctx, spec, rid, rpath, self.path)
        else:
            says, sources = spec["says"], self.sources
        outcome = row[-1]
        if outcome not in self.outcomes:
            ctx.error("compile_unknown_outcome", f"unknown outcome `{outcome}`", rpath + (len(row) - 1,),
                      did_you_mean(str(outcome), self.outcomes))
            return
        cells = _row_cells(len(self.columns), row, self.tests)
        if cells is None:     # a cell seen for the first time: lowered (and located) as written
            try:
                cells = _new_row_cells(ctx, self.columns, row, rpath, self.tests)
            except Rejected:
                return
        chosen, oused = self.outcomes[outcome]
        self.used |= oused
        if spec["hit"] == "unique":
            self.check_unique(rid, cells, rpath)
        self.rows.append(ir.Row._make((rid, says, cells, str(outcome), chosen.obligations, where)))
        ctx.info(rid, "table row", says, sources, self.covered, where, TableRow._make((spec["id"], header, row)))

    def check_unique(self, rid: str, cells: tuple[ir.RowCell, ...], rpath: Path) -> None:
        """Two rows of single values only, equal in every column: both always match together."""
        keys = row_keys(cells)
        if not all(k is not None and k != "*" and len(k) == 1 for k in keys):
            return
        sig = tuple(keys)
        if sig in self.seen:
            self.ctx.error("compile_table_overlap",
                           f"rows `{self.rows[self.seen[sig]].id}` and `{rid}` match the same requests", rpath,
                           "hit policy `unique` allows one matching row; use `first` or make them differ")
        self.seen[sig] = len(self.rows)


def rows(ctx: Context, spec: dict[str, Any], path: Path, header: list[Any], outcomes: Outcomes) -> None:
    if header[-1] != "outcome" or len(header) < 3:
        raise ctx.reject("compile_bad_table", "a row table has the columns `rule`, its input facts, then `outcome`",
                         path + ("header",))
    if "actions" not in spec:
        raise ctx.reject("compile_missing_field", "a row table needs `actions`", path)
    columns = tuple(ctx.fact(name, path + ("header", c + 1)) for c, name in enumerate(header[1:-1]))
    actions = actions_of(ctx, spec["actions"], path + ("actions",))
    used: set[str] = {f.name for f in columns}
    when = condition(ctx, spec["when"], path + ("when",), used) if "when" in spec else None
    body = _Body(ctx, spec, path, columns, actions, outcomes, used)
    body.all(spec["body"])
    unmatched = no_match(ctx, spec, path, outcomes)
    if unmatched is not None and unmatched.outcome in outcomes:
        used |= outcomes[unmatched.outcome][1]
    check_reads(ctx, spec["id"], used, actions, path + ("id",))
    table_ir = ir.RowTable(spec["id"], spec["says"], spec["hit"], when, columns, tuple(body.rows), unmatched,
                           ctx.loc(path))
    ctx.tables.append(table_ir)
    ctx.add_unit(actions, table_ir)


NO_MATCH_WORDS = ("deny", "error")


def no_match(ctx: Context, spec: dict[str, Any], path: Path, outcomes: Outcomes) -> ir.NoMatch | None:
    """What the table decides when no row matches, if it says (``deny``, ``error`` or an outcome)."""
    if "no_match" not in spec:
        return None
    chosen = spec["no_match"]
    npath = path + ("no_match",)
    if chosen in NO_MATCH_WORDS:
        return ir.NoMatch(chosen, (), ctx.loc(npath))
    if chosen not in outcomes:
        raise ctx.reject("compile_unknown_outcome", f"unknown outcome `{chosen}` for `no_match`", npath,
                         did_you_mean(chosen, list(outcomes) + list(NO_MATCH_WORDS))
                         or "write `deny`, `error`, or one of the table's outcomes")
    return ir.NoMatch(chosen, outcomes[chosen][0].obligations, ctx.loc(npath))


def _memo(c: int, written: Any) -> tuple[Any, ...]:
    """The key of a cell as written in column ``c``: equal keys, equal cells (text, most cells, is its
    own key; `-` and an empty cell share the key of `-`). A list or mapping is also found by
    ``_same``, without its repr."""
    if type(written) is str:
        return (c, written)
    if written is None:
        return (c, "-")
    return (c, "", repr(written)) if isinstance(written, (dict, list)) else (c, type(written).__name__, written)


def _row_cells(columns: int, row: list[Any],
               shared: dict[tuple[Any, ...], ir.RowCell]) -> tuple[ir.RowCell, ...] | None:
    """The cells of one row (of ``columns`` cells after its id) when each was seen before in its column
    (the shared objects), else None. A large table repeats a few cells thousands of times: this is the
    path of nearly every row."""
    cells = []
    for c in range(columns):
        written = row[c + 1]
        kind = type(written)
        if kind is str:
            known = shared.get((c, written))    # _memo of text, inline
        elif kind is dict or kind is list:
            known = shared.get(_same(c, written))
            if known is None:
                known = shared.get(_memo(c, written))
                if known is not None:
                    shared[_same(c, written)] = known
        else:
            known = shared.get(_memo(c, written))
        if known is None:
            return None
        cells.append(known)
    return tuple(cells)


def _same(c: int, written: list[Any] | dict[Any, Any]) -> tuple[int, int]:
    """The key of a list or mapping cell as the object it is: the compiler's loader makes a small list
    or mapping one object wherever it is written alike (``load_text(share=True)``), so a large table's
    repeated cells are found without their repr. The documents outlive the lowering of their tables,
    so no other object takes the id meanwhile."""
    return (c, id(written))


def _new_row_cells(ctx: Context, columns: tuple[ir.Fact, ...], row: list[Any], rpath: Path,
                   shared: dict[tuple[Any, ...], ir.RowCell]) -> tuple[ir.RowCell, ...]:
    """The cells of one row. Equal cells of a column are one shared object, located where the first
    of them was written."""
    cells: list[ir.RowCell] = []
    refused = False
    for c, fact in enumerate(columns):
        written = row[c + 1]
        wildcard = written is None or written == "-"
        memo = _memo(c, written)
        known = shared.get(memo)
        if known is not None:
            cells.append(known)
            continue
        cpath = rpath + (c + 1,)
        try:
            made: ir.RowCell = ir.Wildcard(ctx.ref(cpath)) if wildcard else fact_condition(ctx, fact, written, cpath,
                                                                                          set())
        except Rejected:
            refused = True
            continue
        shared[memo] = made
        if isinstance(written, (dict, list)):
            shared[_same(c, written)] = made
        cells.append(made)
    if refused:
        raise Rejected()
    return tuple(cells)


def row_keys(cells: tuple[ir.RowCell, ...]) -> list[tuple[Any, ...] | str | None]:
    """Per cell, the values it matches when it is a literal or an `in:` list, `*` for any, else None."""
    out: list[tuple[Any, ...] | str | None] = []
    for cell in cells:
        if isinstance(cell, ir.Wildcard):
            out.append("*")
        elif isinstance(cell.test, ir.Compare) and cell.test.op == "is":
            out.append((cell.test.value,))
        elif isinstance(cell.test, ir.Member) and cell.test.op == "in":
            out.append(cell.test.values)
        else:
            out.append(None)
    return out
