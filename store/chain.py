"""Decision-log records: validation, normalisation and the hash chain.

A record as stored and hashed is ``{seq, decision_id, time, action, input, result,
policy_version}``. ``time`` is normalised to ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` (UTC) so that it
sorts as text on every database. The chain: ``hash = sha256(prev_hash + canonical_json(record))``
as lowercase hex, ``prev_hash`` of the first entry is ``GENESIS`` (64 zeros).
"""
from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from typing import Any

from .errors import InvalidInput

GENESIS = "0" * 64
RECORD_KEYS = ("decision_id", "time", "action", "input", "result", "policy_version")
_MAX_ID = 64
_MAX_ACTION = 200
_MAX_VERSION = 100
_MAX_RULE = 100


def canonical_json(value: Any) -> str:
    """Sorted keys, no whitespace, UTF-8 text, no NaN/Infinity: the same bytes on every machine."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def format_time(value: datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


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


def normalize_record(record: Any) -> dict[str, Any]:
    """Validate a decision record and return the stored form (time normalised). Raises InvalidInput."""
    if not isinstance(record, dict):
        raise InvalidInput(f"a decision record must be a dict, got {type(record).__name__}")
    missing = [k for k in RECORD_KEYS if k not in record]
    if missing:
        raise InvalidInput(f"decision record lacks {', '.join(missing)}")
    extra = sorted(set(record) - set(RECORD_KEYS) - {"seq"})
    if extra:
        raise InvalidInput(f"decision record has unknown field(s) {', '.join(extra)} (they would not be logged)")
    did = record["decision_id"]
    if not isinstance(did, str) or not did or len(did) > _MAX_ID:
        raise InvalidInput(f"decision_id must be a non-empty string of at most {_MAX_ID} characters")
    action = record["action"]
    if not isinstance(action, str) or not action or len(action) > _MAX_ACTION:
        raise InvalidInput(f"action must be a non-empty string of at most {_MAX_ACTION} characters")
    version = record["policy_version"]
    if version is not None and (not isinstance(version, str) or len(version) > _MAX_VERSION):
        raise InvalidInput("policy_version must be a string (or null when no version was loaded)")
    result = record["result"]
    if not isinstance(result, dict) or not isinstance(result.get("allow"), bool):
        raise InvalidInput("result must be a dict with a boolean `allow` (Decision.to_dict())")
    rules = result.get("rules", [])
    if not isinstance(rules, (list, tuple)) or not all(isinstance(r, str) and 0 < len(r) <= _MAX_RULE
                                                         for r in rules):
        raise InvalidInput(f"result.rules must be a list of rule ids (1 to {_MAX_RULE} characters)")
    # a JSON round trip snapshots the record (the caller may reuse its dicts) and makes the stored
    # form exactly what is hashed (tuples become lists, ...)
    return {
        "decision_id": did,
        "time": normalize_time(record["time"]),
        "action": action,
        "input": _snapshot(record["input"], "input"),
        "result": _snapshot(result, "result"),
        "policy_version": version,
    }


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
    return hashlib.sha256((prev_hash + canonical_json(body)).encode("utf-8")).hexdigest()


def rule_ids(result: dict[str, Any]) -> list[str]:
    rules = result.get("rules") or []
    return sorted(set(r for r in rules if isinstance(r, str)))

