"""The loader's source map: positions of values and keys, and (asked for) each value's written text."""
from __future__ import annotations

import yaml

from engine.load import load_text

TEXT = """\
a: "é😀x"
b: [1, {c: d}, &x [p, q], *x]
r:
  - kind: table
    body:
      - [R1, x, {at_least: 1}]
      - [R2, "-", 5]
"""


def _loaded(text: str = TEXT, extents: bool = True):
    loaded, errors = load_text("f.yaml", text, extents=extents)
    assert errors == [] and loaded is not None
    return loaded


def test_written_text_of_each_value_is_the_slice_the_parser_read():
    loaded = _loaded()
    smap = loaded.source
    texts = {path: TEXT[w.start:w.end] for path in [(0, "a"), (0, "b", 1), (0, "b", 2), (0, "r", 0, "body", 1, 1),
                                                     (0, "r", 0, "body", 0, 2), (0, "b")]
             if (w := smap.written_at(path)) is not None}
    assert texts == {(0, "a"): '"é😀x"', (0, "b", 1): "{c: d}", (0, "b", 2): "&x [p, q]",
                     (0, "r", 0, "body", 1, 1): '"-"', (0, "r", 0, "body", 0, 2): "{at_least: 1}",
                     (0, "b"): "[1, {c: d}, &x [p, q], *x]"}
    row = loaded.documents[0]["r"][0]["body"][0]
    assert [(w.line, w.column, TEXT[w.start:w.end]) for w in smap.written(row)] == [
        (6, 10, "R1"), (6, 14, "x"), (6, 17, "{at_least: 1}")]


def test_written_agrees_with_pyyaml_nodes_on_every_cell():
    """Same line, column and character offsets as PyYAML's composed nodes (which the workbench read before)."""
    loaded = _loaded()
    node = yaml.compose(TEXT, Loader=yaml.SafeLoader)
    body = [v for k, v in node.value if k.value == "r"][0].value[0].value[1][1]
    for row_node, row in zip(body.value, loaded.documents[0]["r"][0]["body"], strict=True):
        for cell_node, w in zip(row_node.value, loaded.source.written(row), strict=True):
            start, end = cell_node.start_mark, cell_node.end_mark
            assert (w.line, w.column, w.start, w.end) == (start.line + 1, start.column + 1, start.index, end.index)


def test_an_alias_is_written_where_its_anchor_is_but_located_where_it_repeats():
    smap = _loaded().source
    assert smap.written_at((0, "b", 3)) == smap.written_at((0, "b", 2))
    assert str(smap.at((0, "b", 3))) == "f.yaml:2:27"       # errors point at the `*x`
    assert str(smap.at((0, "b", 3, 1))) == "f.yaml:2:27"    # and never into the anchored value


def test_positions_without_extents_walk_to_the_deepest_written_part():
    loaded = _loaded(extents=False)
    smap = loaded.source
    assert smap.written_at((0, "a")) is None and smap.written(loaded.documents[0]) == []
    assert str(smap.at((0, "r", 0, "body", 1, 2))) == "f.yaml:7:19"
    assert str(smap.at((0, "r", 0, "body", 1, 2, "missing"))) == "f.yaml:7:19"
    assert str(smap.at((0, "r", 0, "body", 9))) == "f.yaml:6:7"    # no row 9: the body
    assert str(smap.at((0, "r", 0, "kind"), key=True)) == "f.yaml:4:5"
    assert str(smap.at((0, "r", 0, "kind"))) == "f.yaml:4:11"
    assert str(smap.at(())) == "f.yaml:1:1"


def test_a_large_table_keeps_every_row_position():
    rows = "\n".join(f"  - [R{i}, {{in: [a, b]}}, {i}]" for i in range(3000))
    loaded = _loaded(f"body:\n{rows}\n", extents=False)
    smap = loaded.source
    assert [smap.at((0, "body", i, 1, "in", 1)).line for i in (0, 1500, 2999)] == [2, 1502, 3001]
    assert str(smap.at((0, "body", 2999, 2))) == "f.yaml:3001:27"


def test_a_large_mapping_keeps_every_key_and_value_position():
    text = "facts:\n" + "".join(f"  f{i}: {{type: string}}\n" for i in range(2000))
    loaded = _loaded(text, extents=True)
    smap = loaded.source
    keys = [str(smap.at((0, "facts", f"f{i}", "type"), key=True)) for i in (0, 1999)]
    assert keys == ["f.yaml:2:8", "f.yaml:2001:11"]
    assert str(smap.at((0, "facts", "f1000"))) == "f.yaml:1002:10"
    assert str(smap.at((0, "facts", "nope"))) == "f.yaml:2:3"
    w = smap.written_at((0, "facts", "f1999", "type"))
    assert w is not None and text[w.start:w.end] == "string"
