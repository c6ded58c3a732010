"""Stage 4, decide: a compiled PolicySet answers ``decide(action, input)``.

The order is fixed by the decision contract: system, then action catalogue, then the facts the
action reads, then every rule of the action; guards can only deny, effects can only allow, and
deny overrides. Any error — including an exception raised while evaluating — is
``allow: false`` with an error code (fail closed); ``decide`` never raises.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

import orjson

from .decision import DecideFn, Decision, DecisionError
from .runtime import MissingFact, frozen_trace

if TYPE_CHECKING:
    from .errors import SourceRef
    from .ir import PolicyIR

__all__ = ["Decision", "DecisionError", "PolicySet", "RuleInfo", "TableRow", "canonical_json"]


class TableRow(NamedTuple):
    """A row of a row table as written: its definition is made when asked for (a large table has
    thousands of rows, and few definitions are ever read)."""

    table: str
    header: list[Any]
    row: list[Any]

    def definition(self) -> dict[str, Any]:
        return {"table": self.table, "row": dict(zip(self.header, self.row, strict=True))}


class RuleInfo(NamedTuple):
    """What an auditor needs to know about one rule."""

    id: str
    kind: str            # guard | effect | table row
    says: str
    sources: tuple[str, ...]
    system: str
    actions: tuple[str, ...]
    file: str
    where: int | SourceRef     # the line it begins on, or (a table row) where that line is looked up
    written: dict[str, Any] | TableRow

    @property
    def line(self) -> int:
        """The line of ``file`` the rule begins on."""
        return self.where if isinstance(self.where, int) else self.where.location.line

    @property
    def definition(self) -> dict[str, Any]:
        """The rule as written (for rule-level diffs)."""
        return self.written.definition() if isinstance(self.written, TableRow) else self.written


def _err(code: str, field: str | None, message: str, version: str,
         trace: tuple[dict[str, Any], ...] | None = None) -> Decision:
    return Decision(False, (), (), DecisionError(code, field, message), version, trace)


class PolicySet:
    """An immutable, compiled set of policies: compile once, decide many times."""

    def __init__(self, policy_ir: PolicyIR, functions: Mapping[str, Mapping[str, DecideFn]],
                 rules: tuple[RuleInfo, ...]):
        self.ir = policy_ir                  # the typed IR every decision was generated from
        self.version = policy_ir.version
        self._systems = functions            # system -> {action: generated decide function}
        self.rules = rules                   # RuleInfo, in file order
        self.catalogue = {name: tuple(sorted(s.plans)) for name, s in policy_ir.systems.items()}
        self._interpreters: dict[str, dict[str, DecideFn]] | None = None

    def function(self, system: str, action: str) -> DecideFn | None:
        """The generated decide function of an action (see ``codegen.source_of``)."""
        return self._systems.get(system, {}).get(action)

    def __repr__(self) -> str:
        return f"<PolicySet {self.version[:19]} {len(self.rules)} rules>"

    def rule(self, rule_id: str) -> RuleInfo | None:
        for r in self.rules:
            if r.id == rule_id:
                return r
        return None

    def decide(self, action: Any, input: Any, *, explain: bool = False, debug: bool = False) -> Decision:
        """Decide one request. Never raises: every failure is a denial with an error (fail closed).
        With ``debug``, an exception raised while evaluating reaches the caller instead, traceback
        and generated source lines included."""
        if not explain and type(input) is dict and type(action) is str:
            # the common case, a request for a known system and action, without a second call;
            # every other case, and every failure, is answered (or re-raised) by ``_answer``
            context = input.get("context")
            system = context.get("system") if type(context) is dict else None
            plans = self._systems.get(system) if type(system) is str else None
            fn = plans.get(action) if plans is not None else None
            if fn is not None:
                try:
                    return fn(input, None)
                except Exception:  # decided again below, where the failure is answered
                    pass
        return self._answer(self._systems, action, input, explain, debug)

    def interpret(self, action: Any, input: Any, *, explain: bool = False, debug: bool = False) -> Decision:
        """The same decision made by walking the IR (``engine.interpret``), the reference the
        generated functions are tested against; slower, never used to serve decisions."""
        if self._interpreters is None:
            from functools import partial

            from .interpret import interpret

            self._interpreters = {
                name: {action: partial(interpret, plan, self.version) for action, plan in s.plans.items()}
                for name, s in self.ir.systems.items()}
        return self._answer(self._interpreters, action, input, explain, debug)

    def _answer(self, systems: Mapping[str, Mapping[str, DecideFn]], action: Any, input: Any, explain: bool,
                debug: bool) -> Decision:
        version = self.version
        tr: list[dict[str, Any]] | None = [] if explain else None
        try:
            if type(input) is not dict:
                return _err("invalid_fact", None, "the input must be an object", version, _t(tr))
            context = input.get("context")
            if context is None:
                return _err("missing_fact", "context.system", "`context.system` is required", version, _t(tr))
            if type(context) is not dict:
                return _err("invalid_fact", "context", "`context` must be an object", version, _t(tr))
            system = context.get("system")
            if system is None:
                return _err("missing_fact", "context.system", "`context.system` is required", version, _t(tr))
            if type(system) is not str:
                return _err("invalid_fact", "context.system", "`context.system` must be text", version, _t(tr))
            plans = systems.get(system)
            if plans is None:
                return _err("unknown_system", "context.system", f"unknown system `{system}`", version, _t(tr))
            fn = plans.get(action) if type(action) is str else None
            if fn is None:
                return _err("unknown_action", None, f"action `{action}` is not in the catalogue of `{system}`",
                            version, _t(tr))
            return fn(input, tr)
        except MissingFact as missing:
            return _err("missing_fact", missing.path, f"`{missing.path}` is required", version, _t(tr))
        except Exception as exc:  # fail closed, and say so
            if debug:
                raise
            return _err("evaluation_error", None, f"evaluation failed: {type(exc).__name__}: {exc}",
                        version, () if explain else None)


_t = frozen_trace


def canonical_json(value: Any, *, acyclic: bool = False, plain: bool = False) -> str:
    """Sorted keys, no spaces, UTF-8 text. ``acyclic``: the caller knows ``value`` holds no cycle
    (loaded documents: the loader refuses an alias inside its own anchor), so it is not checked.
    ``plain``: the caller knows ``value`` is plain JSON that orjson writes as the standard library
    does (``LoadedFile.plain``: text keys; text, booleans, None, 64-bit integers and finite floats
    without an exponent), so orjson writes it, several times faster; should anything else be in it
    after all, orjson refuses it and the standard library writes it as ever."""
    if plain:
        try:
            return orjson.dumps(value, default=_refuse, option=_ORJSON_OPTIONS).decode()
        except TypeError:   # orjson.JSONEncodeError: not plain after all
            pass
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str,
                      check_circular=not acyclic)


# sorted keys; datetimes, dataclasses and subclasses of str, int, dict and list go to _refuse
_ORJSON_OPTIONS = (orjson.OPT_SORT_KEYS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
                   | orjson.OPT_PASSTHROUGH_SUBCLASS)


def _refuse(value: Any) -> Any:
    raise TypeError
