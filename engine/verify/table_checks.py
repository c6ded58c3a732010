"""Findings about row tables: overlaps, shadowed rows, gaps and values no row mentions."""
from __future__ import annotations

from collections.abc import Iterator

from .adapter import Section
from .findings import ERROR, WARNING, Finding, names, shown, value_text
from .tables import Analysis, Table, unmentioned

GAPS_SHOWN = 3


def table_findings(section: Section) -> Iterator[Finding]:
    for table in section.row_tables():
        if not isinstance(table, Table):
            tid, where, reason = table
            yield Finding(ERROR, "table_unverified",
                          f"the verifier cannot prove that table `{tid}` has no gap: {reason}", where,
                          "declare what happens when no row matches with `no_match:`, or use tests the verifier "
                          "reads (values, `in`, `not_in`, `is_not`, ranges, `-`)")
            continue
        yield from _findings(table)


def _findings(table: Table) -> Iterator[Finding]:
    analysis = Analysis(table)
    pairs = analysis.overlaps()
    if table.hit == "unique":
        for o in pairs:
            a, b = table.rows[o.first], table.rows[o.second]
            yield Finding(ERROR, "table_overlap",
                          f"rows `{a.id}` and `{b.id}` of table `{table.id}` both match some requests, "
                          f"e.g. `{shown(o.witness)}`; hit policy `unique` allows one",
                          b.location, f"make the rows differ (row `{a.id}` is at line {a.location.line}), "
                          "or use `hit: first`", witness=o.witness, rules=(a.id, b.id))
    for i in analysis.empty_rows():
        row = table.rows[i]
        yield Finding(ERROR, "row_shadowed", f"row `{row.id}` of table `{table.id}` never applies: "
                      "no request the table applies to matches all its cells", row.location,
                      "a cell allows no value of its fact, or none that the table's `when` lets through "
                      "(check ranges against the fact's `min` and `max`)",
                      rules=(row.id,))
    if table.hit == "first":
        for s in analysis.shadowed(pairs):
            row = table.rows[s.row]
            by = [table.rows[j].id for j in s.by]
            yield Finding(ERROR, "row_shadowed",
                          f"row `{row.id}` of table `{table.id}` never applies: earlier rows {names(by)} "
                          "match every request it matches", row.location,
                          f"remove row `{row.id}`, or move it above row `{by[0]}` if it is the more specific one",
                          witness=s.witness, rules=(row.id, *by))
    if table.no_match is None:          # with `no_match:` an unmatched request is answered as declared
        for gap in analysis.gaps(GAPS_SHOWN):
            cells = ", ".join('"-"' if v == "-" else value_text(v) for v in gap.row.values())
            yield Finding(ERROR, "table_gap",
                          f"no row of table `{table.id}` matches some requests, e.g. `{shown(gap.witness)}`",
                          table.location,
                          f"add a row such as `[<rule id>, {cells}, <outcome>]`, or declare what happens then "
                          "with `no_match:`", witness=gap.witness, suggested=gap.row)
    for col, missing in unmentioned(table):
        values = ", ".join(f"`{v}`" for v in missing)
        yield Finding(WARNING, "table_value_unmentioned",
                      f"no row of table `{table.id}` is written for {values} of fact `{col.name}`: "
                      "only rows with `-` in that column match it", col.location,
                      "add rows for these values, or confirm that the `-` rows are meant for them")

