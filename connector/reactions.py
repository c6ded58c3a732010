"""ERP → CRM back-flow: durable_rules correlates ERP events per order; results go through the gate.

durable_rules is used only here, and only within the limits found in
``shared/research/durable-rules.md``:

* the rules are declared in ``reactions.yaml``, validated by :func:`load_reactions` (the C
  parser's errors are opaque numbers) and compiled to its JSON ruleset API (never the decorator
  DSL, whose rule stacks are module globals);
* :class:`_Host` overrides ``Host._run`` so no dispatcher or timer thread ever starts;
* a :class:`ReactionEngine` belongs to the thread that created it and refuses calls from any
  other (it is not thread-safe); :class:`Correlator` owns one on its own thread, fed by a queue;
* one session (sid) per open order, ``delete_state`` when the order is done, at most
  ``max_sessions`` (< 1000, the C engine crashes past 1024) live at once, least recently used
  evicted: a session is a cache rebuilt from the order book, so eviction loses nothing;
* exceptions inside actions are stored by durable_rules in ``state['exception']`` and would be
  swallowed: they are raised as :class:`ReactionError` and the session is dropped.
"""
from __future__ import annotations

import queue
import threading
from collections import OrderedDict
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import yaml
from durable import engine as durable_engine

REACTIONS_FILE = Path(__file__).with_name("reactions.yaml")
MAX_SESSIONS_LIMIT = 999          # durable_rules: 1024 live sids per ruleset, then MemoryError + segfault
MAX_RULES = 500                   # durable_rules: > 512 sibling tests hang create_ruleset
ACTIONS = ("update_shipped_quantity", "update_invoiced_quantity", "record_order_invoiced", "mark_fully_invoiced")
OPS = {"eq": None, "neq": "$neq", "gt": "$gt", "gte": "$gte", "lt": "$lt", "lte": "$lte"}
_NOOP = "_track"


class ReactionsInvalid(ValueError):
    """reactions.yaml is malformed; ``errors`` lists every problem as ``file:line: message``."""

    def __init__(self, errors: list[str]) -> None:
        self.errors = errors
        super().__init__("\n".join(errors))


class ReactionError(RuntimeError):
    """An action raised inside durable_rules (its traceback text is in the message)."""


class WrongThread(RuntimeError):
    """A ReactionEngine was called from a thread that does not own it."""


# --------------------------------------------------------------------------- YAML loader

class _Map(dict):
    line = 0


class _Loader(yaml.SafeLoader):
    pass


def _construct_map(loader: _Loader, node: yaml.MappingNode) -> _Map:
    m = _Map(loader.construct_mapping(node, deep=True))
    m.line = node.start_mark.line + 1
    return m


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_map)


@dataclass(frozen=True)
class Reactions:
    name: str
    facts: dict[str, tuple[str, ...]]
    events: dict[str, tuple[str, ...]]
    reactions: tuple[dict, ...]
    ruleset: dict = field(repr=False)   # the durable_rules JSON ruleset


def load_reactions(path: Path | str = REACTIONS_FILE, text: str | None = None) -> Reactions:
    """Read, validate (every problem, with its line) and compile the reaction rules."""
    path = Path(path)
    src = text if text is not None else path.read_text()
    try:
        doc = yaml.load(src, Loader=_Loader)
    except yaml.YAMLError as exc:
        raise ReactionsInvalid([f"{path.name}: not valid YAML: {exc}"]) from exc
    errors: list[str] = []

    def err(node: Any, msg: str) -> None:
        errors.append(f"{path.name}:{getattr(node, 'line', 0)}: {msg}")

    if not isinstance(doc, dict):
        raise ReactionsInvalid([f"{path.name}:1: expected a mapping with ruleset, facts, events, reactions"])
    for key in set(doc) - {"ruleset", "facts", "events", "reactions"}:
        err(doc, f"unknown key `{key}`")
    name = doc.get("ruleset")
    if not isinstance(name, str) or not name.isidentifier():
        err(doc, "`ruleset` must be a name (letters, digits, underscore)")
    facts = _names(doc.get("facts"), "facts", err, doc)
    events = _names(doc.get("events"), "events", err, doc)
    reactions = doc.get("reactions")
    if not isinstance(reactions, list) or not reactions:
        err(doc, "`reactions` must be a non-empty list")
        reactions = []
    if len(reactions) > MAX_RULES:
        err(doc, f"{len(reactions)} reactions: at most {MAX_RULES} (durable_rules hangs past 512)")
    seen: set[str] = set()
    compiled: dict[str, dict] = {}
    for r in reactions:
        if not isinstance(r, dict):
            err(doc, "each reaction must be a mapping")
            continue
        for key in set(r) - {"id", "says", "on_event", "test", "when_all", "when_none", "do"}:
            err(r, f"reaction `{r.get('id')}`: unknown key `{key}`")
        rid = r.get("id")
        if not isinstance(rid, str) or not rid:
            err(r, "reaction without an `id`")
            continue
        if rid in seen:
            err(r, f"duplicate reaction id `{rid}`")
        seen.add(rid)
        if r.get("do") not in ACTIONS:
            err(r, f"reaction `{rid}`: `do` must be one of {', '.join(ACTIONS)} (got `{r.get('do')}`)")
        if ("on_event" in r) == ("when_all" in r):
            err(r, f"reaction `{rid}`: give either `on_event` or `when_all` (facts), not both or neither")
            continue
        if "when_none" in r and "when_all" not in r:
            err(r, f"reaction `{rid}`: `when_none` needs `when_all`")
        patterns: list[dict] = []
        if "on_event" in r:
            ev = r["on_event"]
            if ev not in events:
                err(r, f"reaction `{rid}`: `on_event` must be one of {', '.join(events) or '(none declared)'}"
                       f" (got `{ev}`)")
                continue
            tests = [{"kind": "event"}, {"type": ev}]
            tests += _tests(r.get("test") or {}, events[ev], rid, err, r)
            patterns.append({"m": {"$and": tests}})
        else:
            for i, p in enumerate(r.get("when_all") or []):
                t = _fact_pattern(p, facts, rid, err, r)
                if t is not None:
                    patterns.append({f"f{i}": t})
            for i, p in enumerate(r.get("when_none") or []):
                t = _fact_pattern(p, facts, rid, err, r)
                if t is not None:
                    patterns.append({f"n{i}$not": t})
            if not patterns:
                err(r, f"reaction `{rid}`: `when_all` must list at least one fact pattern")
        compiled[rid] = {"all": patterns, "run": r.get("do")}
    # Every fact we assert must match some rule, else durable_rules raises MessageNotHandled.
    for fact in facts:
        compiled[f"{_NOOP}-{fact}"] = {"all": [{"m": {"kind": fact}}], "run": _NOOP}
    if errors:
        raise ReactionsInvalid(sorted(errors))
    return Reactions(name, facts, events, tuple(reactions), {name: compiled})


def _names(value: Any, what: str, err, doc) -> dict[str, tuple[str, ...]]:
    if not isinstance(value, dict):
        err(doc, f"`{what}` must map names to lists of fields")
        return {}
    out = {}
    for k, v in value.items():
        if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
            err(value, f"{what} `{k}`: fields must be a list of names")
            continue
        out[k] = tuple(v)
    return out


def _tests(test: Any, fields: tuple[str, ...], rid: str, err, node) -> list[dict]:
    out = []
    if not isinstance(test, dict):
        err(node, f"reaction `{rid}`: `test` must map fields to values")
        return out
    for fname, cond in test.items():
        if fname not in fields:
            err(node, f"reaction `{rid}`: unknown field `{fname}` (declared: {', '.join(fields)})")
            continue
        if isinstance(cond, dict):
            for op, value in cond.items():
                if op not in OPS:
                    err(node, f"reaction `{rid}`: unknown test `{op}` on `{fname}` (use {', '.join(OPS)})")
                    continue
                out.append({fname: value} if OPS[op] is None else {OPS[op]: {fname: value}})
        else:
            out.append({fname: cond})
    return out


def _fact_pattern(p: Any, facts: dict, rid: str, err, node) -> dict | None:
    if not isinstance(p, dict) or p.get("fact") not in facts:
        err(node, f"reaction `{rid}`: each pattern needs `fact:` one of {', '.join(facts) or '(none declared)'}")
        return None
    return {"$and": [{"kind": p["fact"]}] + _tests(p.get("test") or {}, facts[p["fact"]], rid, err, node)}


# --------------------------------------------------------------------------- the engine

class _Host(durable_engine.Host):
    """A durable_rules host with no background threads; actions record what they decided."""

    def __init__(self, sink: Callable[[str, str], None]) -> None:
        self._sink = sink
        super().__init__()

    def _run(self) -> None:  # the stock Host starts two perpetual timer threads here
        pass

    def get_action(self, action_name: str):
        if action_name == _NOOP:
            return lambda c: None

        def action(c) -> None:
            self._sink(action_name, c.s.sid)
        return action


@dataclass
class OrderState:
    """What a session is rebuilt from: taken from the order book."""

    invoiced: bool
    lines: dict[int, dict[str, int]]     # line_no -> {ordered, shipped, invoiced}


class ReactionEngine:
    """The durable_rules ruleset and its per-order sessions, usable only from its owner thread."""

    def __init__(self, reactions: Reactions, load_order: Callable[[str], OrderState], *,
                 max_sessions: int = 256) -> None:
        if not 0 < max_sessions <= MAX_SESSIONS_LIMIT:
            raise ValueError(f"max_sessions must be 1..{MAX_SESSIONS_LIMIT} (durable_rules caps live sessions at 1024)")
        self._owner = threading.get_ident()
        self.reactions = reactions
        self.max_sessions = max_sessions
        self._load_order = load_order
        self._fired: list[tuple[str, str]] = []
        self._host = _Host(lambda action, sid: self._fired.append((action, sid)))
        self._host.set_rulesets(_deep_copy(reactions.ruleset))
        self._name = reactions.name
        self._sessions: OrderedDict[str, dict] = OrderedDict()   # sid -> {key: asserted fact}
        self._complete: set[str] = set()                        # sids whose order is fully invoiced
        self.rebuilds = 0
        self.evictions = 0

    # -- ownership -----------------------------------------------------------------------------
    def _check_thread(self) -> None:
        if threading.get_ident() != self._owner:
            raise WrongThread("ReactionEngine is owned by another thread (durable_rules is not thread-safe); "
                              "feed events through its Correlator")

    @property
    def live_sessions(self) -> list[str]:
        self._check_thread()
        return list(self._sessions)

    # -- sessions ------------------------------------------------------------------------------
    def _call(self, fn: Callable, sid: str, message: dict) -> None:
        state = fn(self._name, message)
        if isinstance(state, dict) and state.get("exception"):
            self.drop(sid)
            raise ReactionError(f"reaction failed for order {sid}: {state['exception']}")

    def _assert(self, sid: str, key: str, fact: dict) -> None:
        facts = self._sessions[sid]
        old = facts.get(key)
        if old == fact:
            return
        if old is not None:
            self._call(self._host.retract_fact, sid, old)
            del facts[key]
        self._call(self._host.assert_fact, sid, fact)
        facts[key] = fact

    def _ensure(self, sid: str) -> None:
        if sid in self._sessions:
            self._sessions.move_to_end(sid)
            return
        while len(self._sessions) >= self.max_sessions:
            oldest = next(iter(self._sessions))
            self.drop(oldest)
            self.evictions += 1
        state = self._load_order(sid)
        self._sessions[sid] = {}
        self.rebuilds += 1
        try:
            self._assert(sid, "order", {"sid": sid, "kind": "order", "invoiced": bool(state.invoiced)})
            for line_no, q in sorted(state.lines.items()):
                self._assert(sid, f"line:{line_no}", self._line_fact(sid, line_no, q))
        except BaseException:
            self.drop(sid)
            raise
        # A rebuild only restores the cache: what it re-derives was applied before, except that a
        # completed correlation (an order already fully invoiced) must stay known for later events.
        if any(a == "mark_fully_invoiced" and s == sid for a, s in self._fired):
            self._complete.add(sid)
        self._fired.clear()

    @staticmethod
    def _line_fact(sid: str, line_no: int, q: dict) -> dict:
        return {"sid": sid, "kind": "line", "line_no": line_no,
                "open": int(q.get("invoiced", 0)) < int(q.get("ordered", 0)),
                "ordered": int(q.get("ordered", 0)), "invoiced": int(q.get("invoiced", 0))}

    def drop(self, sid: str) -> None:
        """Forget an order's session (done, evicted, or its state can no longer be trusted)."""
        self._check_thread()
        self._complete.discard(sid)
        if self._sessions.pop(sid, None) is not None:
            try:
                self._host.delete_state(self._name, sid)
            except Exception:  # durable_rules: "error code 309" when it holds no state for the sid
                pass

    # -- events --------------------------------------------------------------------------------
    def process(self, event: dict) -> list[tuple[str, dict]]:
        """Correlate one ERP event; returns the actions that fired, each with the event."""
        self._check_thread()
        order = event.get("order")
        etype = event.get("type")
        if not isinstance(order, str) or not order:
            raise ValueError(f"ERP event without an order number: {event!r}")
        if etype not in self.reactions.events:
            raise ValueError(f"unknown ERP event type {etype!r} (known: {', '.join(self.reactions.events)})")
        fields = self.reactions.events[etype]
        missing = [f for f in fields if not isinstance(event.get(f), int) or isinstance(event.get(f), bool)]
        if missing:
            raise ValueError(f"ERP event {etype} needs integer {', '.join(missing)}: {event!r}")
        sid = order
        self._ensure(sid)
        self._fired.clear()
        message = {"sid": sid, "kind": "event", "type": etype, **{f: event[f] for f in fields}}
        self._call(self._host.post, sid, message)
        # then bring the persistent facts up to date (this may complete a correlation)
        facts = self._sessions[sid]
        if etype == "line_invoiced":
            key = f"line:{event['line_no']}"
            old = facts.get(key)
            if old is None:
                self.drop(sid)
                raise ValueError(f"order {order} has no line {event['line_no']}")
            self._assert(sid, key, self._line_fact(sid, event["line_no"],
                                                   {"ordered": old["ordered"], "invoiced": event["quantity"]}))
        elif etype == "order_invoiced":
            self._assert(sid, "order", {"sid": sid, "kind": "order", "invoiced": True})
        out, seen = [], set()
        for action, s in self._fired:       # $or / re-fires can repeat an action: dedupe
            if action == "mark_fully_invoiced" and s == sid:
                self._complete.add(sid)
            if s == sid and action not in seen:
                seen.add(action)
                out.append((action, dict(event)))
        self._fired.clear()
        return out

    def is_complete(self, sid: str) -> bool:
        """The order of this session is fully invoiced (correlated now or found so on rebuild)."""
        self._check_thread()
        return sid in self._complete

    def any_invoiced(self, sid: str) -> bool:
        self._check_thread()
        return any(f.get("invoiced", 0) > 0 for k, f in self._sessions.get(sid, {}).items() if k.startswith("line:"))


def _deep_copy(value: Any) -> Any:
    # durable_rules' Ruleset deletes 'run' from the definitions it is given
    import copy
    return copy.deepcopy(value)


# --------------------------------------------------------------------------- correlator

class Correlator:
    """Owns a ReactionEngine on one thread; ERP events go in through a queue and come out as
    ``opportunity.apply_erp_update`` mutations through the connector's gate.

    ``submit(event)`` returns a Future resolving to the :class:`~connector.gate.Applied` mutation
    (or ``None`` when nothing fired), or raising what the mutation raised (``PolicyDenied``, ...).
    """

    def __init__(self, connector: Any, *, user: str = "integration", max_sessions: int = 256,
                 reactions: Reactions | None = None) -> None:
        self.connector = connector
        self.user = user
        self._reactions = reactions or load_reactions()
        self._max_sessions = max_sessions
        self._queue: queue.Queue = queue.Queue()
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None
        self.engine: ReactionEngine | None = None
        self._thread = threading.Thread(target=self._run, name="ordergate-correlator", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._startup_error is not None:
            raise self._startup_error

    # -- public --------------------------------------------------------------------------------
    def submit(self, event: dict) -> Future:
        fut: Future = Future()
        self._queue.put((event, fut))
        return fut

    def process(self, event: dict, timeout: float = 30.0) -> Any:
        return self.submit(event).result(timeout)

    def call(self, fn: Callable[[ReactionEngine], Any], timeout: float = 30.0) -> Any:
        """Run ``fn(engine)`` on the owner thread (inspection in tests and tools)."""
        fut: Future = Future()
        self._queue.put((fn, fut))
        return fut.result(timeout)

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(10)

    def __enter__(self) -> "Correlator":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- owner thread --------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            self.engine = ReactionEngine(self._reactions, self._load_order, max_sessions=self._max_sessions)
        except BaseException as exc:
            self._startup_error = exc
            self._ready.set()
            return
        self._ready.set()
        while True:
            item = self._queue.get()
            if item is None:
                return
            work, fut = item
            if not fut.set_running_or_notify_cancel():
                continue
            try:
                result = work(self.engine) if callable(work) else self._handle(work)
            except BaseException as exc:
                fut.set_exception(exc)
            else:
                fut.set_result(result)

    def _load_order(self, number: str) -> OrderState:
        from .orders import SalesOrder
        import sqlalchemy as sa
        with self.connector.book.session() as s:
            order = s.scalar(sa.select(SalesOrder).where(SalesOrder.number == number))
            if order is None:
                raise LookupError(f"ERP event for unknown order {number!r}")
            return OrderState(order.erp_invoiced, {l.line_no: {"ordered": l.quantity, "shipped": l.shipped_quantity,
                                                               "invoiced": l.invoiced_quantity}
                                                   for l in order.lines})

    def _handle(self, event: dict) -> Any:
        engine = self.engine
        assert engine is not None
        fired = engine.process(event)
        if not fired:
            return None
        order = event["order"]
        lines: dict[int, dict[str, int]] = {}
        order_invoiced = None
        status = None
        for action, ev in fired:
            if action == "update_shipped_quantity":
                lines.setdefault(ev["line_no"], {})["shipped_quantity"] = ev["quantity"]
            elif action == "update_invoiced_quantity":
                lines.setdefault(ev["line_no"], {})["invoiced_quantity"] = ev["quantity"]
            elif action == "record_order_invoiced":
                order_invoiced = True
            elif action == "mark_fully_invoiced":
                status = "fully_invoiced"
        if status is None:
            if engine.is_complete(order):       # a late event for an order already fully invoiced
                status = "fully_invoiced"
            else:
                status = "partially_invoiced" if engine.any_invoiced(order) else "not_invoiced"
        try:
            applied = self.connector.qad_crm.apply_erp_update(order, user=self.user, lines=lines,
                                                              order_invoiced=order_invoiced, invoice_status=status)
        except BaseException:
            engine.drop(order)      # the order book did not change: the cache must be rebuilt from it
            raise
        if status == "fully_invoiced":
            engine.drop(order)      # the order is done
        return applied
