"""The decision log's fast paths give the bytes of the slow ones: canonical JSON written by orjson
is the standard library's text byte for byte (the hash chain depends on it), records prepared
from their fields equal records prepared from a dict, and decision ids are python-ulid's ULIDs."""
from __future__ import annotations

import datetime as dt
import enum
import json
import math
import struct
import time
import uuid
from collections import OrderedDict

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_store_helpers import record
from ulid import ULID

from api.ids import IdMaker, new_ids
from store import InvalidInput
from store.chain import _result_text, canonical_json, format_time, prepare_decision, prepare_record


def stdlib(value):
    """The canonical form as the log has always written it."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12)
FLOATS = st.floats(allow_nan=False, allow_infinity=False) | st.builds(
    lambda bits: struct.unpack("d", struct.pack("Q", bits))[0], st.integers(0, 2 ** 64 - 1)).filter(math.isfinite)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2 ** 63), 2 ** 64 - 1) | FLOATS | TEXT,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(TEXT, children, max_size=5),
    max_leaves=30)


@settings(max_examples=400, deadline=None)
@given(JSON)
def test_canonical_json_is_the_standard_librarys_text(value):
    expected = stdlib(value)
    assert canonical_json(value) == expected
    assert canonical_json(orjson.loads(expected)) == expected  # what orjson parsed from a body


def _prepared_input(value):
    return prepare_decision("01J0000000000000000000000A", "2026-11-29T00:00:00.000000Z", "a.b", value,
                            {"allow": True, "rules": []}, None, input_has_text_keys=True, input_parsed=True).input_json


@settings(max_examples=400, deadline=None)
@given(JSON)
def test_an_input_orjson_parsed_is_stored_as_the_standard_librarys_text(value):
    parsed = orjson.loads(stdlib(value))  # what a request body gives (``input_parsed``: no walk)
    assert _prepared_input(parsed) == stdlib(parsed)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(TEXT, JSON | st.lists(TEXT, max_size=3), max_size=6),
       st.lists(st.dictionaries(TEXT, JSON, max_size=3) | st.builds(lambda n: {"name": n, "params": {}}, TEXT),
                max_size=3))
def test_a_result_is_stored_as_the_standard_librarys_text(members, obligations):
    result = {**members, "allow": True, "rules": ["R-1"]}
    as_given = prepare_decision("01J0000000000000000000000A", "2026-11-29T00:00:00.000000Z", "a.b", {}, result, None)
    assert as_given.result_json == stdlib(result)
    with_obligations = {**result, "obligations": obligations}
    try:
        expected = stdlib(with_obligations)
    except ValueError:  # NaN or an infinity: refused either way
        with pytest.raises(InvalidInput):
            prepare_decision("01J0000000000000000000000A", "2026-11-29T00:00:00.000000Z", "a.b", {}, with_obligations,
                             None)
        return
    assert prepare_decision("01J0000000000000000000000A", "2026-11-29T00:00:00.000000Z", "a.b", {}, with_obligations,
                            None).result_json == expected


def test_the_common_result_is_written_without_a_walk():
    result = {"allow": False, "obligations": [{"name": "notify", "params": {}}], "rules": ["R-2", "R-1"],
              "error": {"code": "c", "field": None, "message": "é"}, "policy_version": "sha256:ab"}
    assert _result_text(result) == stdlib(result)
    for odd in ({"obligations": [{"name": "n", "params": {"x": 1.5}}]}, {"rules": ["R", 1]}, {"n": 1e16},
                {"error": {"code": float("nan")}}, {"obligations": [{"name": "n", "params": {}, "x": 1}]}):
        assert _result_text({**result, **odd}) is None  # walked: these may need the standard library


@pytest.mark.parametrize("number", [
    1e16, 1e-5, 1e-7, 0.0001, 0.00012, 1.5e300, 5e-324, -0.0, 0.0, 1e15, 9999999999999998.0, 123456789.125,
    1.7976931348623157e308, -2.5e-10, 1e22, 3.0, 1e-4, 12345678901234567890.0, 1.5e-5, -1e16,
])
def test_floats_written_differently_by_orjson_take_the_slow_path(number):
    value = {"n": number, "list": [number, "0.00001", "2e5"]}
    assert canonical_json(value) == stdlib(value)
    for alone in ({"n": number}, [[number]]):
        assert canonical_json(alone) == stdlib(alone)
        assert _prepared_input({"v": orjson.loads(stdlib(alone))}) == stdlib({"v": alone})


def test_an_input_deeper_than_orjson_writes_is_stored_by_the_standard_library():
    value: dict = {}
    for _ in range(300):
        value = {"a": value, "f": 1e-7}
    assert _prepared_input(value) == stdlib(value)


def test_an_input_said_parsed_that_holds_other_types_is_written_as_the_standard_library_does():
    # a value said to come from orjson.loads but holding what a parse never gives (a datetime, a
    # str subclass): the stored text is still the standard library's, or refused as it refuses it
    class Text(str):
        pass

    assert _prepared_input({"name": Text("x"), "n": 1}) == stdlib({"name": "x", "n": 1})
    with pytest.raises(InvalidInput):
        _prepared_input({"when": dt.datetime(2026, 11, 29)})


class Colour(enum.Enum):
    RED = "red"


class Level(enum.IntEnum):
    HIGH = 3


class Text(str):
    pass


@pytest.mark.parametrize("value", [
    {"id": uuid.UUID(int=5)}, {"when": dt.date(2026, 1, 1)}, {"c": Colour.RED}, {"n": float("nan")},
    {"n": float("inf")}, [float("-inf")], {"big": 2 ** 70}, {"neg": -(2 ** 64)}, {1: "x"}, {"t": Text("a")},
    {"l": Level.HIGH}, OrderedDict(b=1, a=2), {"bytes": b"x"}, {"s": "\ud800"},
])
def test_values_orjson_writes_otherwise_get_what_the_standard_library_gives(value):
    try:
        expected = stdlib(value)
    except (TypeError, ValueError) as exc:
        with pytest.raises(type(exc)):
            canonical_json(value)
    else:
        assert canonical_json(value) == expected


def test_deep_nesting_beyond_orjson_is_written_by_the_standard_library():
    value: list = []
    for _ in range(300):
        value = [value, 1.5]
    assert canonical_json(value) == stdlib(value)


@pytest.mark.parametrize("plain", [False, True])
def test_a_record_prepared_from_its_fields_equals_one_prepared_from_a_dict(plain):
    """``plain``: the input as orjson parses it from a body (text keys only)."""
    asked_at = format_time(dt.datetime.now(dt.UTC))
    for i in range(12):
        rec = {**record(i), "time": asked_at, "caller": "crm", "request_id": f"r-{i}" if i % 2 else None}
        rec["input"] = {"a": [1, 2.5, 1e-7, "é\u2028"], "z": {"y": None, "x": i}}
        if plain:
            rec["input"] = orjson.loads(orjson.dumps(rec["input"]))
        fields = prepare_decision(rec["decision_id"], asked_at, rec["action"], rec["input"], rec["result"],
                                  rec["policy_version"], rec["caller"], rec["request_id"], input_has_text_keys=plain)
        slow = prepare_record(rec, input_has_text_keys=plain)
        assert {k: getattr(fields, k) for k in fields.__slots__} == {k: getattr(slow, k) for k in slow.__slots__}
        assert fields.entry_hash("0" * 64, i + 1) == slow.entry_hash("0" * 64, i + 1)


@pytest.mark.parametrize("change, message", [
    ({"action": ""}, "action must be"), ({"action": "a\x00b"}, "NUL"),
    ({"policy_version": "v" * 101}, "policy_version"),
    ({"caller": ""}, "caller must be"), ({"request_id": "r\ud800"}, "lone surrogate"),
    ({"result": {"allow": "yes"}}, "boolean `allow`"), ({"result": {"allow": True, "rules": [""]}}, "rule ids"),
    ({"input": {"x": float("nan")}}, "not JSON-serialisable"), ({"input": {"x": "\ud800"}}, "lone surrogate"),
    ({"action": "é\ud800"}, "action contains a lone surrogate"), ({"caller": "c\x00"}, "caller contains a NUL"),
    ({"result": {"allow": True, "rules": ["R\x00"]}}, "a rule id contains a NUL"),
    ({"result": {"allow": True, "rules": ["R-1", 7]}}, "rule ids"), ({"decision_id": "x" * 65}, "decision_id must"),
    ({"result": {"allow": 1}}, "boolean `allow`"), ({"policy_version": "v\x00"}, "policy_version contains a NUL"),
])
def test_a_record_prepared_from_its_fields_is_refused_as_a_dict_would_be(change, message):
    rec = {**record(1), "caller": "crm", "request_id": None, **change}
    with pytest.raises(InvalidInput, match=message):
        prepare_record(rec)
    with pytest.raises(InvalidInput, match=message):
        prepare_decision(rec["decision_id"], format_time(dt.datetime.now(dt.UTC)), rec["action"],
                         rec["input"], rec["result"], rec["policy_version"], rec["caller"], rec["request_id"])


def test_decision_ids_are_ulids_in_increasing_order():
    ids = new_ids(5000) + new_ids(1) + new_ids(300)
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    for text in ids[::97]:
        parsed = ULID.from_str(text)
        assert str(parsed) == text and len(text) == 26
        assert abs(parsed.timestamp - time.time()) < 60


def test_decision_ids_are_the_ulid_of_their_time_and_randomness():
    maker = IdMaker()
    for count in (1, 3, 40):
        made = maker.new(count)
        ms, first = maker._last_ms, maker._next - count
        expected = [str(ULID.from_bytes(ms.to_bytes(6, "big") + (first + k).to_bytes(10, "big"))) for k in range(count)]
        assert made == expected
    # consecutive ids that carry into the shared first characters
    maker._last_ms, maker._next = time.time_ns() // 1_000_000 + 60_000, (1 << 20) - 2
    made = maker.new(5)
    assert made == [str(ULID.from_bytes(maker._last_ms.to_bytes(6, "big") + ((1 << 20) - 2 + k).to_bytes(10, "big")))
                    for k in range(5)]
    assert made == sorted(made)
