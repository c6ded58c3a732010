"""The loader's native path (engine/_fastload.c) gives exactly what the Python path gives.

Every file is loaded both ways: ``engine.load._load_native`` (None when it leaves the file to the
Python path) and ``load_text`` with the native module switched off. Where the native path loads a
file, the documents (with the type of every value), the source map's arrays of every list and
mapping (the source map's blocks), and every ``packed``/``at``/``written`` answer must be the same; where it gives up,
``load_text`` must still answer what the Python path answers.
"""
from __future__ import annotations

import gc
import math
import os
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine import load
from engine.evaluate import canonical_json

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
import rowtable  # noqa: E402

native = pytest.mark.skipif(load._fastload is None, reason="engine._fastload is not built (no C compiler or "
                            "libyaml headers); the Python path serves alone")


@pytest.mark.skipif(not os.environ.get("CI") or not Path("/usr/include/yaml.h").exists(),
                    reason="CI checks that its install built the extension")
def test_the_install_built_the_native_path_where_libyaml_is():
    assert load._fastload is not None


def _python(text: str, extents: bool) -> Any:
    saved, load._fastload = load._fastload, None
    try:
        return load.load_text("f.yaml", text, extents=extents)
    except Exception as exc:  # the Python path's own failure (a value its constructor refuses)
        return type(exc)
    finally:
        load._fastload = saved


def _canon(value: Any) -> Any:
    """``value`` with the type of every part, so that 1, 1.0 and True (or two NaNs) compare as written."""
    if isinstance(value, list):
        return ["list", [_canon(v) for v in value]]
    if isinstance(value, dict):
        return ["dict", [(_canon(k), _canon(v)) for k, v in value.items()]]
    if isinstance(value, float) and math.isnan(value):
        return ["float", "nan"]
    return [type(value).__name__, value]


def _plain(value: Any) -> bool:
    """What ``LoadedFile.plain`` promises, walked in Python: text keys; text, booleans, None, 64-bit
    integers and finite floats written without an exponent."""
    if isinstance(value, list):
        return all(map(_plain, value))
    if isinstance(value, dict):
        return all(type(k) is str for k in value) and all(map(_plain, value.values()))
    if type(value) is int:
        return -2**63 <= value < 2**63
    if type(value) is float:
        return math.isfinite(value) and "e" not in repr(value)
    return value is None or type(value) in (str, bool)


def _containers(value: Any, path: tuple[Any, ...] = ()):
    """(path, container) of every list and mapping, the value itself first."""
    if isinstance(value, (list, dict)):
        yield path, value
        for k, v in (enumerate(value) if isinstance(value, list) else value.items()):
            yield from _containers(v, (*path, k))


def assert_same(text: str, extents: bool, probe_every: int = 1) -> bool:
    """Both paths agree on ``text``; True when the native path loaded it itself. Every list's and
    mapping's arrays are compared, and the answers of the lookups on every ``probe_every``-th one."""
    native = load._load_native("f.yaml", text, extents)
    expected = _python(text, extents)
    if native is None:
        try:
            served = load.load_text("f.yaml", text, extents=extents)
        except Exception as exc:
            assert type(exc) is expected
            return False
        assert not isinstance(expected, type) and served[1] == expected[1]
        assert (served[0] is None) == (expected[0] is None)
        assert served[0] is None or _canon(served[0].documents) == _canon(expected[0].documents)
        return False
    assert not isinstance(expected, type), f"the Python path failed with {expected}, the native one did not"
    loaded, errors = expected
    assert errors == [] and loaded is not None
    assert _canon(native.documents) == _canon(loaded.documents)
    assert loaded.plain is False      # the Python path does not look
    assert native.plain == _plain(native.documents)
    if native.plain:
        content = {"f.yaml": native.documents}
        assert canonical_json(content, acyclic=True, plain=True) == canonical_json(content, acyclic=True)
    nmap, pmap = native.source, loaded.source
    pairs = list(zip(_containers(native.documents), _containers(loaded.documents), strict=True))
    # the same blocks, in the same order: every position and every link from a value to its block
    assert nmap.flat.typecode == pmap.flat.typecode == "q"
    assert (nmap.flat, nmap.root) == (pmap.flat, pmap.root)
    # one block per list and mapping (the documents' list first among them), none left over
    assert len(nmap.flat) == sum(2 + (2 if isinstance(c, list) else 3) * len(c) for (_, c), _ in pairs)
    assert (nmap.extents is None) == (pmap.extents is None)
    if nmap.extents is not None:
        assert len(nmap.extents) == len(pmap.extents) == len(pairs)
    for n, ((path, mine), (_, theirs)) in enumerate(pairs):
        if nmap.extents is not None:
            assert nmap.extents[id(mine)] == pmap.extents[id(theirs)], path
        assert gc.is_tracked(mine) == gc.is_tracked(theirs), path
        if n % probe_every:
            continue
        steps = list(range(len(mine))) if isinstance(mine, list) else list(mine)
        for step in [*steps[:50], "missing", 10**6]:
            try:
                full = (*path, step)
                hash(full)
            except TypeError:
                continue
            for key in (False, True):
                assert nmap.packed(full, key=key) == pmap.packed(full, key=key), full
                assert nmap.at((*full, "deeper"), key=key) == pmap.at((*full, "deeper"), key=key), full
            assert nmap.written_at(full) == pmap.written_at(full), full
        assert nmap.written(mine) == pmap.written(theirs), path
    assert_shared_alike(text, extents, native)
    return True


def assert_shared_alike(text: str, extents: bool, native: Any) -> None:
    """Loaded with ``share`` (what the compiler asks), the same documents by value and the same blocks;
    only small lists and mappings written alike inside flow lists and mappings are one object."""
    shared = load._load_native("f.yaml", text, extents, True)
    assert shared is not None
    assert _canon(shared.documents) == _canon(native.documents)
    assert (shared.source.flat, shared.source.root, shared.plain) == (native.source.flat, native.source.root,
                                                                      native.plain)
    seen: dict[int, Any] = {}
    for (path, mine), (_, theirs) in zip(_containers(shared.documents), _containers(native.documents), strict=True):
        assert gc.is_tracked(mine) == gc.is_tracked(theirs), path
        if id(mine) in seen:      # one object for two places: written alike, small, not the documents' top
            assert not extents and len(path) >= 2 and _canon(seen[id(mine)]) == _canon(theirs), path
        seen[id(mine)] = theirs


def _files(*folders: str) -> list[Path]:
    return sorted(p for folder in folders for p in (ROOT / folder).rglob("*") if p.suffix in (".yaml", ".yml"))


@native
@pytest.mark.parametrize("path", _files("tests/fixtures") + [ROOT / "connector" / "reactions.yaml",
                                                            ROOT / "api" / "openapi.yaml"],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_every_fixture_file_loads_the_same(path):
    text = path.read_text(encoding="utf-8")
    assert assert_same(text, False) and assert_same(text, True)


@native
@pytest.mark.shipped_policy
@pytest.mark.parametrize("path", _files("rules"), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_shipped_rule_file_loads_the_same_and_natively(path):
    """The native path is the one that serves: every shipped file is plain mappings and lists."""
    text = path.read_text(encoding="utf-8")
    assert assert_same(text, False) and assert_same(text, True)


@native
@pytest.mark.parametrize("text, plain", [
    ("a: [x, 1, -9223372036854775808, 9223372036854775807, 0.5, 1.0, 123456789012345.5, true, ~, '']\n", True),
    ("a: 9223372036854775808\n", False), ("a: -9223372036854775809\n", False), ("a: 1.0e+16\n", False),
    ("a: 0.00001\n", False), ("a: .inf\n", False), ("a: .nan\n", False), ("a: 2024-01-31\n", False),
    ("1: a\n", False), ("~: a\n", False), ("true: a\n", False), ("a: {1: b}\n", False),
    ("a: 1\n---\nb: 2024-01-31\n", False), ("", True), ("---\n...\n", True),
])
def test_the_native_path_says_which_documents_are_plain_json(text, plain):
    loaded = load._load_native("f.yaml", text, False)
    assert loaded is not None and loaded.plain is plain
    assert_same(text, False)


@pytest.mark.parametrize("value", [{"d": __import__("datetime").date(2024, 1, 31)}, {1: "a", "b": 2},
                                   {"s": {1, 2}}, {"t": (1, 2)}, {"big": 2**64}, ["x" * 3, [{"é": "😀"}]]])
def test_a_value_that_is_not_plain_after_all_gets_the_standard_librarys_text(value):
    try:
        expected = canonical_json(value, acyclic=True)
    except TypeError:       # keys that do not sort: refused either way
        with pytest.raises(TypeError):
            canonical_json(value, acyclic=True, plain=True)
        return
    assert canonical_json(value, acyclic=True, plain=True) == expected


@native
@pytest.mark.parametrize("size", [0, 1, 9, 1_000, 10_000])
def test_generated_row_tables_load_the_same(size):
    text = rowtable.ordergate_yaml(rowtable.rows(size))
    probe = max(1, size // 100)
    assert assert_same(text, False, probe) and assert_same(text, True, probe)


SAME_AS_PYTHON = [
    "", "---\n", "--- \n...\n---\n", "a: 1\n---\nb: 2\n...\n", "~", "[]", "{}", "- - - []\n",
    "a:\nb: ~\nc: null\nd: Null\ne: ''\n", "x: 0o17\ny: 0x1F\nz: 017\nw: 1_000\nv: 1:20\nu: -.inf\nt: .NaN\n",
    "d: 2024-01-31\nt: 2024-01-31T10:00:00Z\nb: [yes, No, on, OFF, true, False]\n",
    'q: "a\\tb\\u00e9\\U0001F600"\np: \'it\'\'s\'\nl: |\n  two\n  lines\nf: >-\n  folded\n  text\n',
    "\ufeffa: 1\n", "a: b\r\nc: d\r\n", "a: é😀x\n\"k é\": [\"é\", 😀]\n", "? a\n: b\n? c\n",
    "{a: 1, b: [1, 2, {c: [3]}]}", "- a\n- {b: c, d: [e, f]}\n- - g\n  - h\n",
    "a: 1\nb: 1.0\nc: 1e3\nd: .5\ne: +1\nf: 0b101\ng: 1_0.5\n", "1: a\n2.5: b\nnull: c\ntrue: d\n2024-01-01: e\n",
    "'<<': x\n", "<<: {a: 1}\nb: 2\n", "a: &x 1\nb: *x\n", "a: !!str 1\n", "a: !x 1\n", "a: ! 1\n",
    "a: 1\na: 2\n", "1: a\n1.0: b\n", "? [a]\n: b\n", "{[a]: 1}", "a: [1, 2\n", "a: b: c\n", "\t- a\n",
    "a: x\x00y\n", "a: \x07\n", "a: 2024-13-45\n", "a: =\n", "- *nope\n", "%YAML 1.1\n---\na: 1\n",
    "%TAG !e! tag:example.com,2000:\n---\na: !e!x 1\n", "a: 1\n... \n--- b\n", "'a\n  b': c\n",
]


@native
@pytest.mark.parametrize("text", SAME_AS_PYTHON, ids=range(len(SAME_AS_PYTHON)))
def test_unusual_files_load_the_same(text):
    for extents in (False, True):
        assert_same(text, extents)


@native
@pytest.mark.parametrize("text", ["a: &x 1\nb: *x\n", "a: !!str 1\n", "<<: {a: 1}\n", "'<<': x\n", "a: 1\na: 2\n",
                                  "? [a]\n: b\n", "a: [1, 2\n", "a: x\x00y\n", "- *nope\n", "a: !x 1\n",
                                  "a: 2024-13-45\n", "x: \ud800\n"])
def test_the_native_path_leaves_unusual_files_to_the_python_path(text):
    assert load._load_native("f.yaml", text, True) is None


@native
def test_limits_are_the_python_paths(monkeypatch):
    monkeypatch.setattr(load, "MAX_VALUES", 7)
    assert assert_same("a: [1, 2]\nb: c\n", False)                   # 7 values: loaded natively
    assert not assert_same("a: [1, 2]\nb: c\nd: e\n", False)         # 9: the Python path refuses it
    assert [e.code for e in load.load_text("f.yaml", "a: [1, 2]\nb: c\nd: e\n")[1]] == ["load_too_large"]
    monkeypatch.setattr(load, "MAX_DEPTH", 3)
    assert assert_same("a: [[1]]\n", False)
    assert not assert_same("a: [[[1]]]\n", False)
    assert [e.code for e in load.load_text("f.yaml", "a: [[[1]]]\n")[1]] == ["load_too_deep"]


@native
@pytest.mark.parametrize("text", [
    "[" * 200 + "]" * 200, "a:\n" + "".join("  " * i + "- \n" for i in range(1, 80)),
    "a: &a [1, 2]\n" + "".join(f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}]\n"
                               for i in range(20)),
    "x: " + "y" * 2_000_000 + "\n", "x: '" + "é" * 100_000 + "'\n",
    "".join(f"k{i}: [{i}, v{i}]\n" for i in range(50_000)),
    "- " + "\n- ".join(["a", "b"] * 100_000) + "\n",
    "a: b\x00\n", "a: \udcff\n", "a: \ufffe\n", "\ufeff\ufeffa: 1\n",
])
def test_hostile_shapes_load_the_same(text):
    assert_same(text, False, probe_every=97)


scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-10**20, 10**20), st.floats(allow_nan=False),
    st.text(max_size=12), st.sampled_from(["", "-", "yes", "~", "0x1f", "1_000", "2024-01-31", "1:30", ".inf",
                                           "<<", "=", "a: b", "#x", "é😀", "'", '"', "- x", "null"]),
    st.dates(),
)
keys = st.one_of(st.text(max_size=8), st.integers(-1000, 1000), st.sampled_from(["a", "b", "é", "on", "1.5", "~"]))
documents = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=6),
                                                          st.dictionaries(keys, inner, max_size=6)), max_leaves=40)


@native
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=documents, flow=st.sampled_from([None, True, False]), style=st.sampled_from([None, '"', "'", "|"]),
       width=st.sampled_from([20, 80, 10**6]), extents=st.booleans())
def test_random_documents_load_the_same(doc, flow, style, width, extents):
    text = yaml.safe_dump(doc, default_flow_style=flow, default_style=style, width=width, allow_unicode=True)
    assert_same(text, extents)


@native
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=documents, cuts=st.lists(st.tuples(st.integers(0, 10**6), st.sampled_from(
    ["&a ", "*a", "!!str ", "!x ", "<<: ", "\x00", "\t", "\ud800", "\ufeff", "---\n", "...\n", "[", "]", "{", "}",
     ": ", "- ", "\n  ", '"', "'", "#", "? ", "\x85", "\u2028", "%YAML 1.1\n", "a: 1\n", "a: 1\n"])), max_size=4))
def test_mutated_documents_load_the_same(doc, cuts):
    text = yaml.safe_dump(doc, allow_unicode=True)
    for at, piece in cuts:
        at %= len(text) + 1
        text = text[:at] + piece + text[at:]
    assert_same(text, True)


@native
def test_cells_written_alike_are_one_object_when_shared():
    text = rowtable.ordergate_yaml(rowtable.rows(40))
    body = load._load_native("f.yaml", text, False, True).documents[0]["rules"][0]["body"]
    ranges = {}
    for row in body[:-1]:
        ranges.setdefault(repr(row[3]), set()).add(id(row[3]))
    assert len(ranges) == 4 and all(len(ids) == 1 for ids in ranges.values())    # 40 rows, 4 bands
    assert len({id(row) for row in body}) == len(body)                            # rows are not shared
    alone = load._load_native("f.yaml", text, False, False).documents[0]["rules"][0]["body"]
    assert len({id(row[3]) for row in alone[:-1]}) == len(alone) - 1
    # not shared: a block list or mapping, one of more than 16 items, anything when extents are kept
    block = "a:\n  - [[x, y], [x, y]]\n  - - - x\n      - y\n    - - x\n      - y\n  - [%s]\n  - [%s]\n" % (
        ("[" + ", ".join("z" * 17) + "]",) * 2)
    docs = load._load_native("f.yaml", block, False, True).documents[0]["a"]
    assert docs[0][0] is docs[0][1] and docs[1][0] is not docs[1][1] and docs[2][0] is not docs[3][0]
    kept = load._load_native("f.yaml", block, True, True).documents[0]["a"]
    assert kept[0][0] is not kept[0][1]
    assert_same(block, False) and assert_same(block, True)


def _rss_kb() -> int:
    with open(f"/proc/{os.getpid()}/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024


@native
@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="reads the RSS from /proc")
def test_loading_the_same_file_again_and_again_does_not_grow_memory():
    table = rowtable.ordergate_yaml(rowtable.rows(300))
    given_up = table + "\nlast: *nope\n"   # built almost whole, then left to the Python path
    for text, extents, share in ((table, True, False), (given_up, True, False), (table, False, True),
                                 (given_up, False, True)):
        for _ in range(100):
            load._load_native("f.yaml", text, extents, share)
        gc.collect()
        before = _rss_kb()
        for _ in range(1_000):
            load._load_native("f.yaml", text, extents, share)
        gc.collect()
        assert _rss_kb() - before < 2_048, "RSS grew by 2 MB or more over 1,000 loads"


@native
def test_loads_leave_no_reference_behind():
    """The values every file shares (None, True, False, small numbers) neither keep nor lose a reference
    per load, whether the file is loaded natively or given up on (a leak of one per load would show
    as 1,000 here; the interpreter's own bookkeeping moves a count by one or two)."""
    text = "- [~, true, false, 1, 2.5, '', x, [1, x], {a: [1, x]}]\n" * 50
    shared = [None, True, False, 1]

    def counts() -> list[int]:
        gc.collect()
        return [sys.getrefcount(v) for v in shared]

    for tail, share in (("", False), ("- *nope\n", False), ("", True), ("- *nope\n", True)):
        for _ in range(10):
            load._load_native("f.yaml", text + tail, not share, share)
        first = counts()
        for _ in range(1_000):
            load._load_native("f.yaml", text + tail, not share, share)
        assert all(abs(now - then) < 10 for now, then in zip(counts(), first, strict=True))


@native
def test_a_column_past_twenty_bits_is_kept_at_their_largest_not_carried_into_the_line():
    """A hostile file may write a value a megabyte into one line: its position stays on its own
    line (the column kept at 1,048,575), the same on both paths."""
    text = "a: [" + "1, " * 400_000 + "2]\nb: 3\n"
    assert_same(text, False)
    loaded, errors = load.load_text("f.yaml", text)
    assert loaded is not None and not errors
    where = loaded.source.at((0, "a", 400_000))
    assert (where.line, where.column) == (1, 0xFFFFF)
    assert (loaded.source.at((0, "b")).line, loaded.source.at((0, "b")).column) == (2, 4)
