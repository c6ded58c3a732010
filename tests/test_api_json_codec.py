"""The decision endpoints parse with orjson and answer with orjson where, and only where, that
gives exactly what the standard library gives."""
from __future__ import annotations

import json

import pytest

from api.body import _loads, _parse, _reject_constant
from api.decisions import encode_json

SAME_AS_JSON = [
    '{"a": 1, "b": [1.0, 1e16, 0.1, -0, 2.5e-7], "c": {"d": null, "e": true}}',
    '{"big": 12345678901234567890123, "neg": -9223372036854775809, "max": 18446744073709551615}',
    '{"in_text": "1234567890123456789012", "n": 1}',
    '{"a": 1, "a": 2}',
    '{"x": 1e400}',            # the standard library reads infinity; orjson refuses, so json decides
    '{"s": "\\ud800"}',         # a lone surrogate parses (check_value refuses it later)
    '{"u": "\\u00e9 \\u2028 \\ud83d\\ude00"}',
    '[' * 40 + ']' * 40,
    '{"n": 1234567890123456789, "t": "\u0661\u0662 é 12345678901234567890"}',  # 19 digits: the standard library
    ' \n {"padded": [1, 2]} \t',
]


@pytest.mark.parametrize("text", SAME_AS_JSON)
def test_loads_gives_the_standard_library_value(text):
    expected = json.loads(text)
    got = _loads(text)
    assert repr(got) == repr(expected)  # repr: 1 vs 1.0 and big ints must not drift


@pytest.mark.parametrize("text", ['{"x": NaN}', '{"x": Infinity}', '{"x": -Infinity}', '{"a": 1,}', "{'a': 1}", "",
                                  "\ufeff{}"])
def test_loads_refuses_what_the_standard_library_refuses(text):
    with pytest.raises(ValueError) as std:
        json.loads(text, parse_constant=_reject_constant)
    with pytest.raises(ValueError) as ours:
        _loads(text)
    assert str(ours.value) == str(std.value)


def test_deep_nesting_still_hits_the_recursion_limit_path():
    with pytest.raises(RecursionError):
        _loads("[" * 100000 + "]" * 100000)


@pytest.mark.parametrize("body", [
    {"decision_id": "01J", "allow": True, "obligations": [{"name": "n", "params": {"é": 1.5}}], "error": None},
    {"big": 2 ** 70, "nested": [1, 2]},          # beyond 64 bits: the standard library writes it
    {1: "non-text key"},
])
def test_encode_writes_the_same_json(body):
    assert json.loads(encode_json(body)) == json.loads(json.dumps(body))


@pytest.mark.parametrize("depth", [0, 1, 2, 5, 31, 32, 33, 40])
def test_the_fast_depth_check_agrees_with_check_value(depth):
    from api.body import check_depth, check_value
    from api.errors import ApiError

    for value in (_nest(depth, "dict"), _nest(depth, "list"), {"a": [1, {"b": _nest(max(depth - 3, 0), "dict")}]}):
        outcomes = []
        for check in (check_value, check_depth):
            try:
                check(value, 32)
                outcomes.append("ok")
            except ApiError as exc:
                outcomes.append(exc.extra.get("reason"))
        assert outcomes[0] == outcomes[1]


def _nest(depth, kind):
    value = "leaf"
    for _ in range(depth):
        value = {"k": value} if kind == "dict" else [value]
    return value


def test_lone_surrogates_are_still_refused_in_keys_and_values(sqlite_url, tmp_path):
    from api import create_app
    from api.testing import SHOP, test_config, write_rules

    app = create_app(test_config(sqlite_url, write_rules(tmp_path / "rules", SHOP)))
    try:
        client = app.test_client()
        for body in ('{"action": "order.create", "input": {"\\ud800": 1}}',
                     '{"action": "order.create", "input": {"x": "\\udfff"}}',
                     '{"requests": [{"action": "order.create", "input": {"x": ["\\ud800"]}}]}'):
            path = "/v1/decisions/batch" if "requests" in body else "/v1/decisions"
            response = client.post(path, data=body, content_type="application/json")
            if "requests" in body:  # only the item is refused, never the whole batch
                assert response.status_code == 200, body
                error = response.get_json()["results"][0]["error"]
                assert (error["code"], error["reason"]) == ("bad_request", "not_json")
                continue
            assert response.status_code == 400, body
            assert response.get_json()["error"]["code"] == "bad_request"
    finally:
        app.extensions["ordergate"].close()


def test_a_run_of_19_digits_anywhere_sends_the_body_to_the_standard_library():
    for body in ('{"big": 12345678901234567890123}', '{"t": "\u00e91234567890123456789"}', '[1234567890123456789]'):
        assert _parse(body.encode())[1] is False, body
    for body in ('{"n": 123456789012345678, "t": "12345678901234567 8"}', '{"e": "\u00e9\u0661"}'):
        assert _parse(body.encode())[1] is True, body
