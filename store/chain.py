"""Decision-log records: validation, normalisation and the hash chain.

A record as stored and hashed is ``{seq, decision_id, time, action, input, result,
policy_version}``. ``time`` is normalised to ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` (UTC) so that it
sorts as text on every database. The chain: ``hash = sha256(prev_hash + canonical_json(record))``
as lowercase hex, ``prev_hash`` of the first entry is ``GENESIS`` (64 zeros).
"""
from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

import orjson

from .errors import InvalidInput

GENESIS = "0" * 64
RECORD_KEYS = ("decision_id", "time", "action", "input", "result", "policy_version")
#: who asked: the caller's name (an access token's name, never its secret) and the request id it
#: sent; optional (entries logged before they existed have neither) and hashed only when present
WHO_KEYS = ("caller", "request_id")
MAX_WHO = 200
_MAX_ID = 64
_MAX_ACTION = 200
_MAX_VERSION = 100
_MAX_RULE = 100


# json.dumps with these arguments builds this same encoder on every call
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
# orjson, sorted keys; datetimes, dataclasses and subclasses of str/int/dict/list go to _refuse
# (the standard library refuses or writes them its own way)
_ORJSON_OPTIONS = (orjson.OPT_SORT_KEYS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
                   | orjson.OPT_PASSTHROUGH_SUBCLASS)
#: a float that orjson writes differently from the standard library is written in exponent form
#: (orjson 1e16 / 1e-7, the standard library 1e+16 / 1e-07) or below 1e-4 (0.00001 against
#: 1e-05). With every digit turned into ``0``, ``e``/``E`` into ``e``, ``.`` kept and every other
#: byte a space, such a number shows as ``0e`` or ``0.0000``; the same characters inside a string
#: ("a1e5", "x0.00001") only send that value down the slow path, same bytes. A translation and
#: two substring searches run at memory speed, many times faster than a regular expression.
_NUMBER_SHAPE = bytes(0x30 if 0x30 <= b <= 0x39 else 0x65 if b in (0x45, 0x65) else 0x2E if b == 0x2E else 0x20
                      for b in range(256))


def _may_differ(text: bytes) -> bool:
    """Whether orjson's ``text`` may hold a float the standard library writes otherwise."""
    shape = text.translate(_NUMBER_SHAPE)
    return b"0e" in shape or b"0.0000" in shape


_NOT_PLAIN, _PLAIN, _PLAIN_WITH_FLOATS = 0, 1, 2


def _refuse(value: Any) -> Any:
    raise TypeError


def canonical_json(value: Any) -> str:
    """Sorted keys, no whitespace, UTF-8 text, no NaN/Infinity: the same bytes on every machine.

    The text is the standard library's ``json.dumps(value, sort_keys=True, separators=(",", ":"),
    ensure_ascii=False, allow_nan=False)``, byte for byte (the hash chain depends on it). orjson
    writes it, several times faster, whenever its text is certainly the same: ``value`` is plain
    JSON (``_plain``) and holds no float that the two write differently (``_may_differ``).
    Everything else (such floats, NaN, integers beyond 64 bits, non-text keys, other types, lone
    surrogates, nesting deeper than orjson goes) is written by the standard library, which
    raises what it always raised.
    """
    fast = _orjson_text(value)
    return _CANONICAL.encode(value) if fast is None else fast


def _orjson_text(value: Any) -> str | None:
    """orjson's canonical text of ``value``, or None when it might not be the standard library's."""
    kind = _plain(value)
    if kind == _NOT_PLAIN:
        return None
    try:
        text = orjson.dumps(value, default=_refuse, option=_ORJSON_OPTIONS)
    except TypeError:  # orjson.JSONEncodeError: a big integer, a lone surrogate, too deep, ...
        return None
    if kind == _PLAIN_WITH_FLOATS and _may_differ(text):
        return None
    return text.decode("utf-8")


def _parsed_text(value: Any) -> str | None:
    """``_orjson_text`` of a value orjson parsed from JSON text (``orjson.loads``): made of dicts
    with text keys, lists, text without lone surrogates, 64-bit integers, finite floats, booleans
    and None only, so plain without a walk; only its floats need a look (``_may_differ``)."""
    try:
        # the same options as _orjson_text: should anything but parsed JSON reach here (a datetime,
        # a subclass), orjson refuses it and the standard library writes or refuses it as ever
        text = orjson.dumps(value, default=_refuse, option=_ORJSON_OPTIONS)
    except TypeError:  # nested deeper than orjson writes, or not parsed JSON
        return None
    return None if _may_differ(text) else text.decode("utf-8")


def _plain(value: Any) -> int:
    """Whether ``value`` is made of dicts with text keys, lists, tuples, text, integers, finite
    floats, booleans and None only (what orjson and the standard library write alike, floats
    aside), and holds floats. Exact types: a subclass, a UUID or an enum member (which orjson
    writes and the standard library refuses) is not plain."""
    floats = False
    stack = [value]
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind is dict:
            for key, child in item.items():
                if type(key) is not str:
                    return _NOT_PLAIN
                child_kind = type(child)
                if child_kind is not str and child_kind is not bool and child_kind is not int and child is not None:
                    stack.append(child)
        elif kind is list or kind is tuple:
            stack.extend(item)
        elif kind is float:
            if item - item != 0.0:  # NaN or an infinity (orjson would write null)
                return _NOT_PLAIN
            floats = True
        elif kind is not str and kind is not int and kind is not bool and item is not None:
            return _NOT_PLAIN
    return _PLAIN_WITH_FLOATS if floats else _PLAIN


def format_time(value: datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    value = value.astimezone(UTC)
    if value.year >= 1000:  # isoformat pads years below 1000, strftime's %Y does not
        return value.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"
    return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def normalize_time(value: Any, what: str = "time") -> str:
    """An ISO-8601 string or a datetime -> the fixed-width UTC text used in the log.

    A time without an offset is taken as UTC.
    """
    if isinstance(value, datetime):
        return format_time(value)
    if not isinstance(value, str) or not value:
        raise InvalidInput(f"{what} must be an ISO-8601 string, got {value!r}")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput(f"{what} is not an ISO-8601 time: {value!r}") from None
    return format_time(parsed)


def _snapshot(value: Any, what: str) -> Any:
    try:
        text = canonical_json(value)
    except (TypeError, ValueError, RecursionError) as exc:
        raise InvalidInput(f"{what} is not JSON-serialisable: {exc}") from None
    return json.loads(text)


def _check_record(record: Any) -> tuple[str, str, str | None, dict[str, Any]]:
    """The checks every decision record passes before it is logged. Raises InvalidInput."""
    if not isinstance(record, dict):
        raise InvalidInput(f"a decision record must be a dict, got {type(record).__name__}")
    if len(record) != len(RECORD_KEYS) or any(k not in record for k in RECORD_KEYS):
        _check_keys(record)
    did, action, version, result = record["decision_id"], record["action"], record["policy_version"], record["result"]
    _check_fields(did, action, version, result, record.get("caller"), record.get("request_id"))
    return did, action, version, result


def _check_fields(did: Any, action: Any, version: Any, result: Any, caller: Any, request_id: Any
                  ) -> list[str] | tuple[str, ...]:
    """The checks of a record's fields (``_check_record``, ``prepare_decision``); the result's rule
    ids. Raises InvalidInput."""
    if type(did) is not str or not 0 < len(did) <= _MAX_ID:
        _checked_name(did, "decision_id", _MAX_ID)
    if type(action) is not str or not 0 < len(action) <= _MAX_ACTION:
        _checked_name(action, "action", _MAX_ACTION)
    if version is not None and (not isinstance(version, str) or len(version) > _MAX_VERSION):
        raise InvalidInput("policy_version must be a string (or null when no version was loaded)")
    rules = _checked_rules(result)
    for name, value in (("caller", caller), ("request_id", request_id)):
        if value is not None and (not isinstance(value, str) or not value or len(value) > MAX_WHO):
            raise InvalidInput(f"{name} must be a string of 1 to {MAX_WHO} characters (or null)")
    # the texts stored in columns of their own, at once: ASCII without NUL (nearly always) passes
    columns = f"{did}{action}{version or ''}{caller or ''}{request_id or ''}{''.join(rules)}"
    if "\x00" in columns or not columns.isascii():
        for name, text in (("caller", caller), ("request_id", request_id), ("decision_id", did), ("action", action),
                           ("policy_version", version)):
            _check_column_text(name, text)
        for rule in rules:
            _check_column_text("a rule id", rule)
    return rules


def _check_keys(record: dict[str, Any]) -> None:
    """A record with other keys than a decision record's: name what is missing or unknown."""
    missing = [k for k in RECORD_KEYS if k not in record]
    if missing:
        raise InvalidInput(f"decision record lacks {', '.join(missing)}")
    extra = sorted(set(record) - set(RECORD_KEYS) - set(WHO_KEYS) - {"seq"})
    if extra:
        raise InvalidInput(f"decision record has unknown field(s) {', '.join(extra)} (they would not be logged)")


def _checked_name(value: Any, name: str, most: int) -> str:
    if not isinstance(value, str) or not value or len(value) > most:
        raise InvalidInput(f"{name} must be a non-empty string of at most {most} characters")
    return value


def _checked_rules(result: Any) -> list[str] | tuple[str, ...]:
    """The rule ids of a decision's result (a dict with a boolean ``allow``)."""
    if not isinstance(result, dict) or type(result.get("allow")) is not bool:
        raise InvalidInput("result must be a dict with a boolean `allow` (Decision.to_dict())")
    rules = result.get("rules", [])
    if not isinstance(rules, (list, tuple)):
        raise InvalidInput(f"result.rules must be a list of rule ids (1 to {_MAX_RULE} characters)")
    for rule in rules:
        if not isinstance(rule, str) or not 0 < len(rule) <= _MAX_RULE:
            raise InvalidInput(f"result.rules must be a list of rule ids (1 to {_MAX_RULE} characters)")
    return rules


def _check_column_text(name: str, text: str | None) -> None:
    """Text stored in a column of its own must be storable on every database: PostgreSQL's text
    cannot hold NUL, and nothing can hold a lone surrogate (it is not UTF-8). Input and result are
    stored as JSON text, where such characters are escaped, so they need no such check."""
    if text is None:
        return
    if "\x00" in text:
        raise InvalidInput(f"{name} contains a NUL character, which the decision log cannot store")
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidInput(f"{name} contains a lone surrogate, which is not UTF-8 text") from None


def normalize_record(record: Any) -> dict[str, Any]:
    """Validate a decision record and return the stored form (time normalised). Raises InvalidInput."""
    did, action, version, result = _check_record(record)
    # a JSON round trip snapshots the record (the caller may reuse its dicts) and makes the stored
    # form exactly what is hashed (tuples become lists, ...)
    normal = {
        "decision_id": did,
        "time": normalize_time(record["time"]),
        "action": action,
        "input": _snapshot(record["input"], "input"),
        "result": _snapshot(result, "result"),
        "policy_version": version,
    }
    normal.update((key, record[key]) for key in WHO_KEYS if record.get(key) is not None)
    return normal


def entry_hash(prev_hash: str, seq: int, record: dict[str, Any]) -> str:
    body = {
        "seq": seq,
        "decision_id": record["decision_id"],
        "time": record["time"],
        "action": record["action"],
        "input": record["input"],
        "result": record["result"],
        "policy_version": record["policy_version"],
    }
    for key in WHO_KEYS:
        if record.get(key) is not None:
            body[key] = record[key]
    return hashlib.sha256((prev_hash + canonical_json(body)).encode("utf-8")).hexdigest()


def rule_ids(result: dict[str, Any]) -> list[str]:
    rules = result.get("rules") or []
    return sorted({r for r in rules if isinstance(r, str)})



# -- prepared records: validated and serialised once, hashed in the log writer ---------------

_encode_text = json.encoder.encode_basestring  # what json.dumps(str, ensure_ascii=False) writes


class PreparedRecord:
    """A validated decision record whose input and result are already canonical JSON text.

    Built by ``prepare_record`` on the caller's thread, where anything wrong with the record can
    still be refused visibly (InvalidInput); what remains for the log writer (the hash, the rule
    index, the rows) cannot fail. The texts are immutable, so the caller may reuse its dicts.
    """

    __slots__ = ("decision_id", "time", "action", "policy_version", "input_json", "result_json",
                 "allow", "rules", "caller", "request_id", "_hashed")

    def __init__(self, decision_id: str, time: str, action: str, policy_version: str | None,
                 input_json: str, result_json: str, allow: bool, rules: list[str],
                 caller: str | None = None, request_id: str | None = None) -> None:
        self.decision_id = decision_id
        self.time = time
        self.action = action
        self.policy_version = policy_version
        self.input_json = input_json
        self.result_json = result_json
        self.allow = allow
        self.rules = rules
        self.caller = caller
        self.request_id = request_id
        self._hashed: tuple[bytes, bytes] | None = None

    def hash_body(self, seq: int) -> str:
        """``canonical_json`` of the hashed body, built from the stored texts (same bytes)."""
        return hash_body(seq, self.decision_id, self.time, self.action, self.policy_version, self.input_json,
                         self.result_json, self.caller, self.request_id)

    def hashed_text(self) -> tuple[bytes, bytes]:
        """The hashed body's UTF-8 bytes before and after its seq, built once: the log writer
        builds them before it takes the chain head's lock, so that only the hashes themselves
        (which depend on the entry before) are computed while the lock is held."""
        if self._hashed is None:
            before, after = _body_around_seq(self.decision_id, self.time, self.action, self.policy_version,
                                             self.input_json, self.result_json, self.caller, self.request_id)
            self._hashed = (before.encode("utf-8"), after.encode("utf-8"))
        return self._hashed

    def entry_hash(self, prev_hash: str, seq: int) -> str:
        return chain_hashes([self], prev_hash, seq)[0]


def chain_hashes(prepared: list[PreparedRecord], prev_hash: str, first_seq: int) -> list[str]:
    """The hashes of ``prepared`` appended in turn after the entry whose hash is ``prev_hash``, the
    first with the sequence number ``first_seq`` (what the log writer computes under the chain
    head's lock: one formatting and one SHA-256 an entry, its text built before)."""
    sha256 = hashlib.sha256
    hashes: list[str] = []
    prev = prev_hash.encode("utf-8")
    seq = int(first_seq)
    for p in prepared:
        before, after = p._hashed or p.hashed_text()
        digest = sha256(b"%s%s%d%s" % (prev, before, seq, after)).hexdigest()
        hashes.append(digest)
        prev = digest.encode("ascii")
        seq += 1
    return hashes


def hash_body(seq: int, decision_id: str, time: str, action: str, policy_version: str | None, input_json: str,
              result_json: str, caller: str | None, request_id: str | None) -> str:
    """``canonical_json`` of an entry's hashed body from its stored texts (input and result are
    stored as canonical JSON, so this is the same text as ``entry_hash`` hashes, without a parse)."""
    before, after = _body_around_seq(decision_id, time, action, policy_version, input_json, result_json, caller,
                                     request_id)
    return f"{before}{int(seq)}{after}"


def _body_around_seq(decision_id: str, time: str, action: str, policy_version: str | None, input_json: str,
                     result_json: str, caller: str | None, request_id: str | None) -> tuple[str, str]:
    """The hashed body's text before and after the seq (keys sorted: seq comes between result and time)."""
    quoted = _QUOTED.get
    version = "null" if policy_version is None else quoted(policy_version) or _quote(policy_version)
    who = "" if caller is None else f'"caller":{quoted(caller) or _quote(caller)},'
    rid = "" if request_id is None else f'"request_id":{_encode_text(request_id)},'
    return (f'{{"action":{_encode_text(action)},{who}"decision_id":{_encode_text(decision_id)},'
            f'"input":{input_json},"policy_version":{version},{rid}"result":{result_json},"seq":',
            f',"time":{quoted(time) or _quote(time)}}}')


#: the quoted text of what entries repeat (the version, a caller, the time of a batch: one object each)
_QUOTED: dict[str, str] = {}


def _quote(text: str) -> str:
    """``_encode_text(text)``, kept in ``_QUOTED`` (a few thousand texts at most)."""
    if len(_QUOTED) >= 4096:
        _QUOTED.clear()
    quoted = _QUOTED[text] = _encode_text(text)
    return quoted


def _has_non_text_key(value: Any) -> bool:
    """True when a dict anywhere in ``value`` has a key that is not a string.

    json.dumps turns such keys into text, so the stored text would load back as a different
    value (and ``{10: .., 9: ..}`` sorts differently once the keys are text); such a record
    is stored in its loaded-back form, as ``normalize_record`` always did.
    """
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for key, child in item.items():
                if not isinstance(key, str):
                    return True
                if isinstance(child, (dict, list, tuple)):
                    stack.append(child)
        elif isinstance(item, (list, tuple)):
            stack.extend(c for c in item if isinstance(c, (dict, list, tuple)))
    return False


def _result_text(result: dict[str, Any]) -> str | None:
    """``_orjson_text`` of a decision's result made of text, booleans, None, lists of text, dicts of
    text or None, and obligations without parameters (the common result: plain and without floats
    once its shape is seen, no walk), or None for any other (``_serialise`` walks it)."""
    for key, value in result.items():
        kind = type(value)
        if kind is list:
            if not (_bare_obligations(value) if key == "obligations" else _texts(value)):
                return None
        elif kind is dict:
            if not _texts(value.values()):
                return None
        elif kind is not bool and kind is not str and value is not None:
            return None
    try:  # keys that are not text: refused
        return orjson.dumps(result, option=orjson.OPT_SORT_KEYS).decode("utf-8")
    except TypeError:
        return None


def _texts(values: Any) -> bool:
    """Whether every one of ``values`` is text or None."""
    return all(type(v) is str or v is None for v in values)


def _bare_obligations(obligations: list[Any]) -> bool:
    """Whether every obligation is ``{"name": text, "params": {}}``."""
    for obligation in obligations:
        if (type(obligation) is not dict or len(obligation) != 2 or type(obligation.get("name")) is not str
                or type(obligation.get("params")) is not dict or obligation["params"]):
            return False
    return True


def _serialise(value: Any, what: str, *, text_keys: bool = False) -> str:
    fast = _orjson_text(value)
    if fast is not None:  # plain JSON: text keys only, and orjson wrote no lone surrogate
        return fast
    try:
        text = _CANONICAL.encode(value)
    except (TypeError, ValueError, RecursionError) as exc:
        raise InvalidInput(f"{what} is not JSON-serialisable: {exc}") from None
    if not text_keys and _has_non_text_key(value):
        text = canonical_json(json.loads(text))
    if not text.isascii():
        try:
            text.encode("utf-8")  # a lone surrogate would fail the hash in the writer, later
        except UnicodeEncodeError:
            raise InvalidInput(f"{what} contains a lone surrogate, which is not UTF-8 text") from None
    return text


def prepare_decision(decision_id: str, time: str, action: str, input: Any, result: dict[str, Any],
                     policy_version: str | None, caller: str | None = None, request_id: str | None = None, *,
                     input_has_text_keys: bool = False, input_parsed: bool = False) -> PreparedRecord:
    """``prepare_record`` of a record given as its fields, for a service that logs what it decides.

    The same checks and the same prepared record, without building and checking a dict first.
    ``time`` must be the log's text of a time already (``format_time``); ``input_has_text_keys``
    as in ``prepare_record``. ``input_parsed``: ``input`` is a value orjson parsed from JSON text
    and not changed since (its types are plain: no walk over it before orjson writes it).
    """
    rules = _check_fields(decision_id, action, policy_version, result, caller, request_id)
    input_json = _parsed_text(input) if input_parsed else None
    return PreparedRecord(
        decision_id, time, action, policy_version,
        _serialise(input, "input", text_keys=input_has_text_keys or input_parsed) if input_json is None else input_json,
        _result_text(result) or _serialise(result, "result"),
        result["allow"], sorted(set(rules)) if len(rules) > 1 else list(rules), caller, request_id,
    )


def prepare_record(record: Any, *, input_has_text_keys: bool = False) -> PreparedRecord:
    """Validate a decision record and serialise it once (the stored and hashed form).

    Same checks and same stored form as ``normalize_record`` (raises InvalidInput), with one
    canonical JSON serialisation of input and result instead of a round trip per use.
    ``input_has_text_keys``: the caller knows every key in the input is a string (it was parsed
    from JSON), so the key walk is skipped.
    """
    if isinstance(record, PreparedRecord):
        return record
    did, action, version, result = _check_record(record)
    return PreparedRecord(
        did, normalize_time(record["time"]), action, version,
        _serialise(record["input"], "input", text_keys=input_has_text_keys),
        _serialise(result, "result"),
        result["allow"], sorted(set(result.get("rules", []))),
        record.get("caller"), record.get("request_id"),
    )
