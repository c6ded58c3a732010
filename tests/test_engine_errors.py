"""Broken rule files are rejected with the exact `file:line:column: code: message` and a hint."""
from __future__ import annotations

from pathlib import Path

import pytest

import engine

MINI = Path(__file__).parent / "fixtures" / "mini" / "policy.yaml"


def errors_for(text: str) -> list[str]:
    with pytest.raises(engine.PolicyErrors) as info:
        engine.compile_files({"policy.yaml": text}, display_root="rules/")
    return [e.render() for e in info.value.errors]


def mutate(old: str, new: str, count: int = 1) -> str:
    text = MINI.read_text()
    assert text.count(old) >= count, old
    return text.replace(old, new, count)


def test_the_fixture_itself_is_valid():
    policy = engine.compile_files({"policy.yaml": MINI.read_text()})
    assert {r.id for r in policy.rules} == {"G-1", "G-2", "E-1", "E-2", "E-3", "M-1", "M-2", "T-1", "T-2", "T-3"}


def test_wrong_key_is_reported_at_the_key_with_a_suggestion():
    text = mutate("    deny_when: {status: {at_least: shipped}}", "    deny_wen: {status: {at_least: shipped}}")
    assert errors_for(text) == [         # one typo, one error: the missing `deny_when` is the same fault
        "rules/policy.yaml:67:5: schema_unknown_field: unknown field `deny_wen` in rule `G-1`\n"
        "    help: did you mean `deny_when`?",
    ]


def test_wrong_type_name_suggests_the_right_one():
    text = mutate("    type: boolean\n", "    type: bool\n")
    assert errors_for(text) == [
        "rules/policy.yaml:9:11: schema_invalid: `type` of fact `member` is `bool`, expected one of `boolean`, "
        "`integer`, `string`, `enum`, `list`, `map`, `object`\n    help: did you mean `boolean`?",
    ]


def test_unknown_status_value_on_a_scale():
    text = mutate("deny_when: {status: {at_least: shipped}}", "deny_when: {status: {at_least: shiped}}")
    assert errors_for(text) == [
        "rules/policy.yaml:67:36: compile_unknown_value: `shiped` is not a value of fact `status`\n"
        "    help: did you mean `shipped`?",
    ]


def test_unknown_fact_name():
    text = mutate("when: {member: true}", "when: {membr: true}")
    assert errors_for(text) == [
        "rules/policy.yaml:80:12: compile_unknown_fact: unknown fact `membr`\n    help: did you mean `member`?",
    ]


def test_malformed_fact_path():
    text = mutate("    path: subject.is_member", "    path: subject..is_member")
    assert errors_for(text) == [
        "rules/policy.yaml:8:11: schema_invalid: `subject..is_member` is not a fact path\n"
        "    help: write names separated by single dots, e.g. `resource.order.status`",
    ]


def test_bad_indentation():
    text = mutate("    source: doc\n", "   source: doc\n")
    assert errors_for(text) == [
        "rules/policy.yaml:65:4: load_syntax: not valid YAML: expected <block end>, but found '<block mapping start>'\n"
        "    help: this line is indented differently from its neighbours",
    ]


def test_duplicate_key():
    text = mutate("    type: boolean\n", "    type: boolean\n    type: boolean\n")
    assert errors_for(text) == [
        "rules/policy.yaml:10:5: load_duplicate_key: key `type` appears twice in this mapping\n"
        "    help: the first `type` is at line 9; keep one of them",
    ]


def test_all_errors_at_once_sorted_by_position():
    text = mutate("  - id: E-3\n", "  - id: E-1\n").replace("obligations: [skip_price]", "obligations: [skip_prize]")
    assert errors_for(text) == [
        "rules/policy.yaml:81:19: compile_unknown_obligation: unknown obligation `skip_prize`\n"
        "    help: did you mean `skip_price`?",
        "rules/policy.yaml:92:9: compile_duplicate_rule: rule id `E-1` is used twice\n"
        "    help: the first `E-1` is at rules/policy.yaml:75:9",
    ]


def test_rule_reading_a_fact_its_action_does_not_read():
    text = mutate("deny_when: {status: {at_least: shipped}}", "deny_when: {count: {at_least: 5}}")
    assert errors_for(text) == [
        "rules/policy.yaml:62:9: compile_fact_not_read: rule `G-1` reads fact `count`, which action `order.delete` "
        "does not read\n    help: add `count` to the `reads` of `order.delete`, or take `order.delete` out of the rule",
    ]


def test_contradictory_obligations_in_one_rule():
    text = mutate("obligations: [skip_price]", "obligations: [skip_price, compute_price]")
    assert errors_for(text) == [
        "rules/policy.yaml:81:18: compile_contradictory_obligations: `skip_price` and `compute_price` are asked for "
        "together, and `skip_price` overrides `compute_price`\n    help: remove `compute_price` from this list",
    ]


def test_obligations_overriding_each_other():
    text = mutate(
        "  compute_price: {says: compute the price}",
        "  compute_price: {says: compute the price, overrides: [skip_price]}",
    )
    assert errors_for(text) == [
        "rules/policy.yaml:46:55: compile_contradictory_obligations: obligations `compute_price` and `skip_price` "
        "override each other\n    help: only one of them can win; keep one `overrides`",
        "rules/policy.yaml:47:49: compile_contradictory_obligations: obligations `skip_price` and `compute_price` "
        "override each other\n    help: only one of them can win; keep one `overrides`",
    ]


def test_unknown_action_in_a_rule():
    text = mutate("actions: [order.delete]\n    obligations: []", "actions: [order.delet]\n    obligations: []")
    assert errors_for(text) == [
        "rules/policy.yaml:96:15: compile_unknown_action: action `order.delet` is not in the catalogue of `shop`\n"
        "    help: did you mean `order.delete`?",
    ]


def test_action_that_no_rule_decides():
    text = mutate('  - names: [order.move]', '  - names: [order.move, order.archive]')
    assert errors_for(text) == [
        "rules/policy.yaml:59:25: compile_action_without_rules: no rule decides action `order.archive`\n"
        "    help: add the action to a rule's `actions`, or remove it from the catalogue",
    ]


def test_unique_table_with_identical_rows():
    text = mutate("    hit: first", "    hit: unique").replace(
        '      - [T-3,  "-",                          "-",                   small]',
        '      - [T-3,  5,  draft,   small]\n      - [T-4,  5,  draft,   big]')
    assert errors_for(text) == [
        "rules/policy.yaml:127:9: compile_table_overlap: rows `T-3` and `T-4` match the same requests\n"
        "    help: hit policy `unique` allows one matching row; use `first` or make them differ",
    ]


def test_every_error_is_one_line_lowercase_without_final_period():
    text = mutate("when: {member: true}", "when: {membr: yes}")
    for line in errors_for(text):
        first = line.split("\n")[0]
        message = first.split(": ", 2)[2]
        assert message[0].islower() and not message.endswith(".")


# -- typos in the order-to-cash fixture: the position is computed from the mutated text itself ----
O2C = Path(__file__).resolve().parent / "fixtures" / "o2c"


def _position(text: str, marker: str, offset: int = 0) -> tuple[int, int]:
    index = text.index(marker) + offset
    line = text.count("\n", 0, index) + 1
    column = index - (text.rfind("\n", 0, index) + 1) + 1
    return line, column


def _o2c_errors(name: str, text: str) -> list[str]:
    files = {p: t for p, t in engine.read_folder(O2C).items() if not engine.is_test_file(p)}
    files[name] = text
    with pytest.raises(engine.PolicyErrors) as info:
        engine.compile_files(files, display_root="rules/")
    return [e.render() for e in info.value.errors]


def test_o2c_pricing_with_a_misspelt_status():
    text = (O2C / "pricing.yaml").read_text()
    marker = "statecode: {is_not: active}"
    bad = text.replace(marker, "statecode: {is_not: actve}", 1)
    line, column = _position(bad, "actve}")
    assert _o2c_errors("pricing.yaml", bad) == [
        f"rules/pricing.yaml:{line}:{column}: compile_unknown_value: `actve` is not a value of fact `statecode`\n"
        "    help: did you mean `active`?",
    ]


def test_o2c_intercompany_with_an_unknown_fact_path_in_a_rule():
    text = (O2C / "intercompany.yaml").read_text()
    fact = next(line.split(":")[0].strip() for line in text.splitlines()
                if line.startswith("  ") and not line.startswith("   ") and line.strip().endswith(":")
                and "document_status" in line)
    bad = text.replace(f"{fact}: {{at_least:", f"{fact}x: {{at_least:", 1)
    line, column = _position(bad, f"{fact}x: {{at_least:")
    errors = _o2c_errors("intercompany.yaml", bad)
    assert errors[0] == (f"rules/intercompany.yaml:{line}:{column}: compile_unknown_fact: unknown fact `{fact}x`\n"
                         f"    help: did you mean `{fact}`?")


def test_o2c_stages_with_bad_indentation():
    text = (O2C / "stages.yaml").read_text()
    marker = "\n    kind: guard\n"
    bad = text.replace(marker, "\n     kind: guard\n", 1)
    line, column = _position(bad, "\n     kind: guard\n", 1)
    errors = _o2c_errors("stages.yaml", bad)
    assert len(errors) == 1 and errors[0].startswith(f"rules/stages.yaml:{line}:") and "load_syntax" in errors[0]


# -- one typo, one error --------------------------------------------------------------------------
PRICING = Path(__file__).parent / "fixtures" / "corpus" / "policy" / "pricing.yaml"


def _pricing_errors(old: str, new: str) -> tuple[list[str], int, int]:
    text = PRICING.read_text()
    assert text.count(old) == 1, old
    bad = text.replace(old, new)
    line, column = _position(bad, new)
    with pytest.raises(engine.PolicyErrors) as info:
        engine.compile_files({"pricing.yaml": bad}, display_root="rules/")
    return [e.render() for e in info.value.errors], line, column


def test_a_misspelt_value_in_a_word_of_an_action_matrix_is_one_error():
    errors, line, column = _pricing_errors("submitted: {sop: true, statecode: submitted}",
                                           "submitted: {sop: true, statecode: submited}")
    assert errors == [f"rules/pricing.yaml:{line}:{column + len('submitted: {sop: true, statecode: ')}: "
                      "compile_unknown_value: `submited` is not a value of fact `statecode`\n"
                      "    help: did you mean `submitted`?"]


def test_a_misspelt_word_in_one_cell_is_one_error_at_the_cell():
    errors, line, column = _pricing_errors("skip when submitted or integ, n/a", "skip when submited or integ, n/a")
    assert errors == [f"rules/pricing.yaml:{line}:{column}: compile_unknown_word: unknown word `submited` in cell "
                      "`skip when submited or integ`\n    help: did you mean `submitted`?"]


def test_schema_errors_do_not_hide_compile_errors_elsewhere():
    text = mutate("    deny_when: {status: {at_least: shipped}}", "    deny_wen: {status: {at_least: shipped}}")
    text = text.replace("when: {member: true}", "when: {membr: true}")
    assert errors_for(text) == [
        "rules/policy.yaml:67:5: schema_unknown_field: unknown field `deny_wen` in rule `G-1`\n"
        "    help: did you mean `deny_when`?",
        "rules/policy.yaml:80:12: compile_unknown_fact: unknown fact `membr`\n    help: did you mean `member`?",
    ]


def test_what_compile_finds_missing_is_one_compile_error():
    text = mutate("    type: enum\n    scale: order_status\n", "    type: enum\n")
    assert errors_for(text) == [           # and only that: the rules reading the fact are not reported too
        "rules/policy.yaml:11:5: compile_missing_field: an `enum` needs `values` or `scale`"]


def test_a_table_row_that_is_not_a_list_is_reported_at_the_row():
    # the rows of a table are checked in one pass, not by jsonschema's descent (validate.py): the
    # errors must still be jsonschema's, one per row, at the row
    row = '      - [T-2,  {at_least: 10, below: 100},   {in: [draft]},         big]'
    assert errors_for(mutate(row, row + "\n      - {T-4: x}\n      - 7")) == [
        "rules/policy.yaml:126:9: schema_invalid: `body` of rule `sizes` must be a list, not a mapping",
        "rules/policy.yaml:127:9: schema_invalid: `body` of rule `sizes` must be a list, not a number",
    ]
    assert errors_for(mutate(row, "      - T-2 is big")) == [
        "rules/policy.yaml:125:9: schema_invalid: `body` of rule `sizes` must be a list, not text",
    ]


def test_each_row_of_a_table_without_row_rules_reports_its_own_problem():
    # such a table's rows are lowered on a short path (compiler/tables.py `_Body.all`); a row with
    # anything to report goes the long way, so each problem is reported as before, at its cell
    from test_engine_rowindex import policy_text
    body = "\n".join([
        "      - [R-0, a, USD, {at_least: 0, below: 10}, small]",
        "      - [R-1, a, USD, {at_least: 10, below: 20}, smal]",
        "      - [R-0, b, USD, {at_least: 0, below: 10}, big]",
        "      - [R-3, b, USD, big]",
        "      - [R-4, c, YEN, {at_least: 0, below: 10}, big]",
        "      - [R-5, c, USD, {at_least: x}, big]",
        "      - [R-6, c, USD, {at_least: 0, below: 10}, 7]",
        "      - [R-7, a, USD, {at_least: 0, below: 10}, small]",
    ])
    with pytest.raises(engine.PolicyErrors) as info:
        engine.compile_files({"t.yaml": policy_text("first", body, "")})
    assert [e.render() for e in info.value.errors] == [
        "t.yaml:29:50: compile_unknown_outcome: unknown outcome `smal`\n    help: did you mean `small`?",
        "t.yaml:30:10: compile_duplicate_rule: rule id `R-0` is used twice\n"
        "    help: the first `R-0` is at t.yaml:28:10",
        "t.yaml:31:9: compile_bad_table: row has 4 cells but the header has 5",
        "t.yaml:32:18: compile_unknown_value: `YEN` is not a value of fact `currency`\n"
        "    help: expected one of `USD`, `EUR`, `GBP`",
        "t.yaml:33:34: compile_bad_value: `at_least` on fact `total` needs a whole number, not `x`",
        "t.yaml:34:49: compile_unknown_outcome: unknown outcome `7`",
    ]
