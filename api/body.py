"""Reading a JSON request body within the configured limits.

Everything that can be wrong with an envelope becomes an ``ApiError("bad_request")`` (413 for
size) here, before any rule is looked at, so the decision endpoints never answer a malformed
request with a 500 or an allow.
"""
from __future__ import annotations

import json
import typing as t

import orjson
from flask import Request

from api.errors import bad_request


def _reject_constant(name: str) -> t.NoReturn:
    # json.loads accepts NaN and Infinity by default; they are not JSON
    raise ValueError(f"`{name}` is not JSON")


# a run of 19+ digits may be an integer beyond 64 bits, which orjson would turn into a float: with
# every ASCII digit turned into b"0" and every other byte into b" " (UTF-8 puts no ASCII byte inside
# a multi-byte character), such a run is a run of 19 b"0"s. A translation and a substring search
# run at memory speed, many times faster than a regular expression over the text.
_DIGITS_ONLY = bytes(0x30 if 0x30 <= byte <= 0x39 else 0x20 for byte in range(256))
_LONG_RUN = b"0" * 19


def _loads(text: str) -> t.Any:
    """``json.loads`` semantics, with orjson doing the work whenever it gives the same value."""
    return _parse(text.encode("utf-8"))[0]


def _parse(data: bytes) -> tuple[t.Any, bool]:
    """``(value, by_orjson)`` of a body.

    orjson is used only when it parses the body and the body has no run of 19 digits (orjson
    reads integers beyond 64 bits as floats); anything it refuses (NaN, Infinity, lone
    surrogates, a number that overflows to infinity, bad JSON, text that is not UTF-8) is
    decoded and parsed again by the standard library, so values and errors stay exactly those of
    ``json.loads(data.decode("utf-8"))`` (UnicodeDecodeError, ValueError, RecursionError).
    """
    if _LONG_RUN not in data.translate(_DIGITS_ONLY):
        try:
            return orjson.loads(data), True
        except orjson.JSONDecodeError:
            pass
    return json.loads(data.decode("utf-8"), parse_constant=_reject_constant), False


def read_json(request: Request, *, max_bytes: int, max_depth: int) -> t.Any:
    """Read, decode and parse the body of ``request``; check its size and nesting depth."""
    value, by_orjson = parse_json(request, max_bytes=max_bytes, max_depth=max_depth)
    check_parsed(value, max_depth, by_orjson)
    return value


def parse_json(request: Request, *, max_bytes: int, max_depth: int) -> tuple[t.Any, bool]:
    """Read, decode and parse the body of ``request`` within ``max_bytes``: ``(value, by_orjson)``,
    not yet checked (``check_parsed`` does that, for the whole body or one part at a time)."""
    return parse_body(read_body(request, max_bytes), max_bytes=max_bytes, max_depth=max_depth)


def read_body(request: Request, max_bytes: int) -> bytes:
    """The body of ``request``, read only when its declared length is within ``max_bytes`` (413
    otherwise), and never more than ``max_bytes + 1`` bytes of it (``parse_body`` refuses those)."""
    length = request.content_length
    if length is not None and length > max_bytes:
        raise _too_large(max_bytes)
    return _read_at_most(request.stream, max_bytes + 1)


def parse_body(data: bytes, *, max_bytes: int, max_depth: int) -> tuple[t.Any, bool]:
    """Decode and parse a whole request body of at most ``max_bytes``: ``(value, by_orjson)``, not
    yet checked (``check_parsed`` does that, for the whole body or one part at a time)."""
    if len(data) > max_bytes:
        raise _too_large(max_bytes)
    if not data.strip():
        raise bad_request("the request body is empty; send a JSON object", "not_json")
    try:
        return _parse(data)
    except UnicodeDecodeError as exc:
        raise bad_request(f"the request body is not UTF-8: {exc.reason} at byte {exc.start}", "not_json") from exc
    except RecursionError:
        raise bad_request(
            f"the JSON body is nested deeper than {max_depth} levels", "too_deep", limit=max_depth
        ) from None
    except ValueError as exc:
        raise bad_request(f"the request body is not JSON: {exc}", "not_json") from exc


def check_parsed(value: t.Any, max_depth: int, by_orjson: bool) -> None:
    """The depth and text checks of a parsed value (orjson refuses lone surrogates itself)."""
    if by_orjson:
        check_depth(value, max_depth)
    else:
        check_value(value, max_depth)


def _read_at_most(stream: t.IO[bytes], size: int) -> bytes:
    """Up to ``size`` bytes; a stream's ``read(n)`` may return less than it has, so loop to EOF."""
    chunks: list[bytes] = []
    remaining = size
    while remaining > 0:
        chunk = stream.read(remaining)
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def _too_large(max_bytes: int):
    return bad_request(
        f"the request body is larger than {max_bytes} bytes", "body_too_large", status=413, limit=max_bytes
    )


def check_value(value: t.Any, max_depth: int) -> None:
    """Reject nesting deeper than ``max_depth`` and strings that cannot be stored as UTF-8.

    A scalar body has depth 0, ``{}`` depth 1, ``{"a": []}`` depth 2. Lone surrogates
    (``"\\ud800"``) parse in Python but cannot be written to the decision log, so they are refused
    up front rather than failing a log batch later.
    """
    stack: list[tuple[t.Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            depth += 1
            if depth > max_depth:
                raise bad_request(
                    f"the JSON body is nested deeper than {max_depth} levels", "too_deep", limit=max_depth
                )
            for key, child in item.items():
                _check_text(key)
                if isinstance(child, (dict, list, str)):
                    stack.append((child, depth))
        elif isinstance(item, list):
            depth += 1
            if depth > max_depth:
                raise bad_request(
                    f"the JSON body is nested deeper than {max_depth} levels", "too_deep", limit=max_depth
                )
            for child in item:
                if isinstance(child, (dict, list, str)):
                    stack.append((child, depth))
        elif isinstance(item, str):
            _check_text(item)


def check_depth(value: t.Any, max_depth: int) -> None:
    """``check_value``'s depth rule alone, for values whose strings are known to be UTF-8 text
    (orjson parsed them): only containers are visited, one level at a time."""
    if not within_depth(value, max_depth):
        raise bad_request(
            f"the JSON body is nested deeper than {max_depth} levels", "too_deep", limit=max_depth
        )


def within_depth(value: t.Any, max_depth: int) -> bool:
    """Whether ``value`` is nested at most ``max_depth`` levels (``check_depth``'s rule)."""
    if type(value) is not dict and type(value) is not list:
        return True
    level: list[t.Any] = [value]
    depth = 1
    while True:
        below = [child for item in level for child in (item.values() if type(item) is dict else item)
                 if type(child) is dict or type(child) is list]
        if not below:
            return True
        depth += 1
        if depth > max_depth:
            return False
        level = below


def _check_text(text: str) -> None:
    if text.isascii():
        return
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise bad_request("the JSON body contains a lone surrogate escape (e.g. `\\ud800`)", "not_json") from None
